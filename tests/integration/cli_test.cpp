// The command line of the real binary: usage errors (exit 64) say what is wrong in the terms
// the operator used, and --help and --version answer. No database or node is needed: every
// case here ends before either is contacted.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
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

TEST(Cli, UnknownCommandIsNamedWithTheValidOnes) {
  const ProcessResult r = sweeper({"rnu"});
  EXPECT_USAGE_ERROR(r, "unknown command 'rnu' (commands: run, check, migrate, history, version)");
  EXPECT_USAGE_ERROR(sweeper({"--log-level", "debug", "rnu"}), "unknown command 'rnu'");
  EXPECT_USAGE_ERROR(sweeper({}), "a command is required: run, check, migrate, history, version");
}

TEST(Cli, VersionFlagPrintsTheVersion) {
  for (const char* how : {"--version", "version"}) {
    const ProcessResult r = sweeper({how});
    EXPECT_EQ(r.exit_code, 0) << how << r.err;
    EXPECT_EQ(r.out, "lsp-sweeper " LSP_SWEEPER_VERSION "\n") << how;
  }
}

TEST(Cli, UnknownOptionIsReportedBeforeAMissingOne) {
  const ProcessResult r = sweeper({"run", "--bogus"});
  EXPECT_USAGE_ERROR(r, "The following argument was not expected: --bogus");
  EXPECT_EQ(r.err.find("--node-url is required"), std::string::npos) << r.err;
}

TEST(Cli, ABadValueFromTheEnvironmentNamesTheVariable) {
  const ProcessResult r = sweeper({"run"}, {{"LSP_SWEEPER_NODE_URL", "http://127.0.0.1:1"},
                                            {"LSP_SWEEPER_DB_URL", "dbname=x"},
                                            {"LSP_SWEEPER_MIN_AGE", "-5"}});
  EXPECT_USAGE_ERROR(r, "--min-age: must be >= 0, not -5 (set by LSP_SWEEPER_MIN_AGE)");
  // On the command line the flag itself is the answer.
  const ProcessResult flag = run_with({"--page-size", "zero"});
  EXPECT_USAGE_ERROR(flag, "--page-size: ");
  EXPECT_EQ(flag.err.find("(set by"), std::string::npos) << flag.err;
}

class CliConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/lsp-sweeper-cli.XXXXXX";
    dir_ = mkdtemp(dir_template);
    path_ = dir_ + "/lsp-sweeper.ini";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& text) {
    std::ofstream(path_, std::ios::trunc) << text;
    std::filesystem::permissions(
        path_, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    return path_;
  }
  std::string dir_, path_;
};

TEST_F(CliConfig, ABadValueInTheFileNamesTheFileAndLine) {
  const std::string config =
      write("# lsp-sweeper\nnode-url = \"http://127.0.0.1:1\"\ndb = \"dbname=x\"\nlookback = 0\n");
  EXPECT_USAGE_ERROR(sweeper({"--config", config, "run"}),
                     "--lookback: must be more than 0: 0 would list no succeeded, failed or "
                     "cancelled payment, and no payment_sent callback would ever be repaired (set "
                     "in config file " +
                         config + ", line 4)");
}

TEST_F(CliConfig, ACommandsSectionAppliesToThatCommandOnly) {
  // [run] is read by run (its bad value is found, on its line); [check] is not (its keys must
  // still be options of check).
  const std::string config = write(
      "[check]\ntimeout = 0\n[run]\nnode-url = \"http://127.0.0.1:1\"\n"
      "db = \"host=" +
      dir_ + "/no-such-socket-dir dbname=x\"\nmin-age = -5\n");
  EXPECT_USAGE_ERROR(sweeper({"run", "--config", config}),
                     "--min-age: must be >= 0, not -5 (set in config file " + config + ", line 6)");
  write("[check]\ntimeout = 0\n[run]\nnode-url = \"http://127.0.0.1:1\"\ndb = \"host=" + dir_ +
        "/no-such-socket-dir dbname=x\"\n");
  const ProcessResult run = sweeper({"run", "--config", config}, {{"LSP_SWEEPER_NODE_TOKEN", "t"}});
  EXPECT_EQ(run.exit_code, 2) << "parsed, then the database is unreachable\n" << run.err;
  EXPECT_NE(run.err.find("no-such-socket-dir"), std::string::npos) << run.err;
  EXPECT_USAGE_ERROR(sweeper({"check", "--config", config}), "--timeout: ");
}

TEST_F(CliConfig, ASecretInACommandsSectionOfAWorldReadableFileIsRefused) {
  write("[run]\nalert-webhook = \"https://hooks.example/secret-Hk2\"\n");
  std::filesystem::permissions(path_, std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  const ProcessResult r = sweeper({"run", "--config", path_});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("chmod o-r " + path_), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("secret-Hk2"), std::string::npos) << r.err;
}

TEST(Cli, EveryCommandsHelpListsTheGlobalOptions) {
  for (const char* command : {"run", "check", "migrate", "history", "version"}) {
    const ProcessResult r = sweeper({command, "--help"});
    EXPECT_EQ(r.exit_code, 0) << command << r.err;
    EXPECT_NE(r.out.find("--config PATH"), std::string::npos) << command << r.out;
    EXPECT_NE(r.out.find("--log-level LEVEL"), std::string::npos) << command << r.out;
  }
  const ProcessResult version = sweeper({"version", "--help"});
  EXPECT_EQ(version.out.find("lsp-sweeper migrate"), std::string::npos)
      << "the top-level examples\n"
      << version.out;
}

}  // namespace
}  // namespace lsp_sweeper
