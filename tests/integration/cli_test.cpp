// The command line of the real binary: usage errors (exit 64) say what is wrong in the terms
// the operator used, and --help and --version answer. No database or node is needed: every
// case here ends before either is contacted.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "integration/process.hpp"

namespace lsp_sweeper {
namespace {

using testing::ProcessResult;
using testing::run_process;

// `lsp-sweeper ARGS` with the run's required settings absent from the environment, unless
// `env` sets them.
ProcessResult sweeper(const std::vector<std::string>& args,
                      std::map<std::string, std::string> env = {}) {
  std::vector<std::string> argv{LSP_SWEEPER_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  for (const char* name : {"LSP_SWEEPER_NODE_URL", "LSP_SWEEPER_DB_URL", "LSP_SWEEPER_CONFIG"}) {
    env.try_emplace(name, "");
  }
  return run_process(argv, env);
}

// A run whose every other setting is valid, so only `args` can be wrong.
ProcessResult run_with(const std::vector<std::string>& args) {
  std::vector<std::string> all{"run", "--node-url", "http://127.0.0.1:1", "--db", "dbname=x"};
  all.insert(all.end(), args.begin(), args.end());
  return sweeper(all);
}

#define EXPECT_USAGE_ERROR(result, text)                       \
  do {                                                         \
    const ProcessResult& r_ = (result);                        \
    EXPECT_EQ(r_.exit_code, 64) << r_.err;                     \
    EXPECT_NE(r_.err.find(text), std::string::npos) << r_.err; \
  } while (false)

TEST(Cli, NodeUrlThatCannotBeABaseIsAUsageError) {
  EXPECT_USAGE_ERROR(run_with({"--node-url", ""}), "--node-url: '' is empty");
  EXPECT_USAGE_ERROR(run_with({"--node-url", "127.0.0.1:3001"}),
                     "--node-url: '127.0.0.1:3001' must start with http:// or https://");
  EXPECT_USAGE_ERROR(run_with({"--node-url", "ftp://node.internal"}),
                     "must start with http:// or https://");
  EXPECT_USAGE_ERROR(run_with({"--node-url", "http://node.internal/?x=1"}),
                     "must have no query (?...) or fragment (#...)");
  EXPECT_USAGE_ERROR(run_with({"--node-url", "http://node.internal/#x"}),
                     "must have no query (?...) or fragment (#...)");
  EXPECT_USAGE_ERROR(sweeper({"check", "--node-url", "ftp://node.internal", "--db", "dbname=x"}),
                     "must start with http:// or https://");
}

TEST(Cli, WebhookThatIsNotAnHttpUrlIsAUsageErrorThatDoesNotQuoteIt) {
  const ProcessResult r = run_with({"--alert-webhook", "hooks.example/secret-Jq3"});
  EXPECT_USAGE_ERROR(r, "--alert-webhook: a webhook URL must start with http:// or https://");
  EXPECT_EQ(r.err.find("secret-Jq3"), std::string::npos) << r.err;
}

TEST(Cli, ValuesThatWouldTurnACheckOffOrMakeNoSenseAreRefused) {
  EXPECT_USAGE_ERROR(run_with({"--lookback", "0"}),
                     "--lookback: must be more than 0: 0 would list no succeeded");
  EXPECT_USAGE_ERROR(run_with({"--lookback", "2w"}),
                     "--lookback: '2w' is not a duration (e.g. 90s, 15m, 36h, 14d)");
  EXPECT_USAGE_ERROR(run_with({"--waiting-grace", "soon"}), "--waiting-grace: 'soon' is not");
  EXPECT_USAGE_ERROR(run_with({"--realert-after", "-1h"}), "--realert-after: '-1h' is not");
  const ProcessResult min_age = run_with({"--min-age", "-5"});
  EXPECT_USAGE_ERROR(min_age, "--min-age: must be >= 0, not -5");
  EXPECT_EQ(min_age.err.find("1797693"), std::string::npos) << min_age.err;
}

}  // namespace
}  // namespace lsp_sweeper
