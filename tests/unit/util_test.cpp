#include <gtest/gtest.h>

#include "lsp_sweeper/util/duration.hpp"
#include "lsp_sweeper/util/hex.hpp"

namespace lsp_sweeper::util {
namespace {

TEST(Hex, NormalizesEitherCaseAndRejectsEverythingElse) {
  const std::string lower(64, 'a');
  EXPECT_EQ(normalize_hex32(std::string(64, 'A')), lower);
  EXPECT_EQ(normalize_hex32("0123456789ABCDEFabcdef0123456789ABCDEFabcdef0123456789abcdef0123"),
            "0123456789abcdefabcdef0123456789abcdefabcdef0123456789abcdef0123");
  EXPECT_FALSE(normalize_hex32(std::string(63, 'a')));
  EXPECT_FALSE(normalize_hex32(std::string(65, 'a')));
  EXPECT_FALSE(normalize_hex32(std::string(63, 'a') + "g"));
  EXPECT_FALSE(normalize_hex32(std::string(63, 'a') + std::string(1, '\0')));
  EXPECT_FALSE(normalize_hex32("'; DROP TABLE async_rotating_invoices; --" + std::string(23, 'a')));
}

TEST(Hex, Decodes32BytesOfEitherCaseAndRejectsEverythingElse) {
  const auto bytes = decode_hex32("00ff7F" + std::string(58, 'a'));
  ASSERT_TRUE(bytes);
  EXPECT_EQ((*bytes)[0], 0x00);
  EXPECT_EQ((*bytes)[1], 0xff);
  EXPECT_EQ((*bytes)[2], 0x7f);
  EXPECT_EQ((*bytes)[31], 0xaa);
  EXPECT_FALSE(decode_hex32(std::string(62, 'a')));
  EXPECT_FALSE(decode_hex32(std::string(66, 'a')));
  EXPECT_FALSE(decode_hex32(std::string(63, 'a') + "g"));
  EXPECT_FALSE(decode_hex32(std::string(63, 'a') + std::string(1, '\0')));
}

TEST(Hex, Sha256OfKnownInput) {
  // FIPS 180-2 test vector.
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Hex, PreimageMatchesItsHashOnly) {
  const std::string preimage(64, '0');  // 32 zero bytes
  const std::string hash = sha256_hex(std::string(32, '\0'));
  EXPECT_TRUE(preimage_matches(preimage, hash));
  EXPECT_FALSE(preimage_matches(std::string(63, '0') + "1", hash));
  EXPECT_FALSE(preimage_matches(preimage, std::string(64, '0')));
  EXPECT_FALSE(preimage_matches("", hash));
}

TEST(Hex, PrintableReplacesControlBytesAndTruncates) {
  EXPECT_EQ(printable(std::string("a\0b\n", 4)), "a?b?");
  EXPECT_EQ(printable("abcdef", 3), "abc...");
  EXPECT_EQ(printable("\xc3\xa9"), "??");
}

TEST(Duration, SuffixesAndPlainSeconds) {
  EXPECT_EQ(parse_duration_seconds("90"), 90);
  EXPECT_EQ(parse_duration_seconds("90s"), 90);
  EXPECT_EQ(parse_duration_seconds("15m"), 900);
  EXPECT_EQ(parse_duration_seconds("36h"), 129600);
  EXPECT_EQ(parse_duration_seconds("14d"), 1209600);
  EXPECT_FALSE(parse_duration_seconds(""));
  EXPECT_FALSE(parse_duration_seconds("d"));
  EXPECT_FALSE(parse_duration_seconds("-5m"));
  EXPECT_FALSE(parse_duration_seconds("5w"));
  EXPECT_FALSE(parse_duration_seconds("1.5h"));
  EXPECT_FALSE(parse_duration_seconds("999999999999999999d"));
}

}  // namespace
}  // namespace lsp_sweeper::util
