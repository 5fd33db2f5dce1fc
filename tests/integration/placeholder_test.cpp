#include <gtest/gtest.h>
TEST(PlaceholderIntegration, BeingWritten) {}
