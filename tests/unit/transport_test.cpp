// Transport policy of the node client: plain http:// only to loopback unless allowed, decided
// from the URL before any connection.
#include <gtest/gtest.h>

#include "lsp_sweeper/node/client.hpp"

namespace lsp_sweeper::node {
namespace {

TEST(Transport, PlainHttpIsInsecureOnlyBeyondLoopback) {
  EXPECT_FALSE(is_insecure_remote_http("http://127.0.0.1:3001"));
  EXPECT_FALSE(is_insecure_remote_http("http://127.8.9.10"));
  EXPECT_FALSE(is_insecure_remote_http("http://localhost:3001/"));
  EXPECT_FALSE(is_insecure_remote_http("HTTP://LOCALHOST:3001"));
  EXPECT_FALSE(is_insecure_remote_http("http://[::1]:3001"));
  EXPECT_FALSE(is_insecure_remote_http("https://10.0.0.1:3001"));
  EXPECT_TRUE(is_insecure_remote_http("http://10.0.0.1:1"));
  EXPECT_TRUE(is_insecure_remote_http("http://node.internal:3001"));
  EXPECT_TRUE(is_insecure_remote_http("http://127.0.0.1.evil.example"));
  EXPECT_TRUE(is_insecure_remote_http("http://localhost.evil.example"));
  EXPECT_TRUE(is_insecure_remote_http("http://user:pw@10.0.0.1"));
  EXPECT_THROW(is_insecure_remote_http("not a url at all"), std::invalid_argument);
}

TEST(Transport, NodeClientRefusesInsecureRemoteHttpUnlessAllowed) {
  NodeClientOptions options{"http://user:pw-9x@10.0.0.1:1", "token-Qq7"};
  try {
    NodeClient refused(options);
    FAIL() << "constructed";
  } catch (const NodeError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("refusing plain http://"), std::string::npos) << message;
    EXPECT_EQ(message.find("pw-9x"), std::string::npos) << message;
  }
  options.allow_insecure_http = true;
  EXPECT_NO_THROW(NodeClient allowed(options));  // nothing is sent until a request is made
}

}  // namespace
}  // namespace lsp_sweeper::node
