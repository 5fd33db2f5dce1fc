// The node token and the database password never appear in anything a run leaves behind:
// stdout, stderr at the most verbose level, the report file, or the audit tables; and the
// token is never sent in clear beyond loopback.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "integration/sweep_fixture.hpp"
#include "integration/webhook_receiver.hpp"

namespace lsp_sweeper {
namespace {

using nlohmann::json;
using namespace testing;

class Secrets : public SweepFixture {
 protected:
  void expect_absent(const std::string& secret, const std::string& where, const std::string& text) {
    EXPECT_EQ(text.find(secret), std::string::npos) << secret << " found in " << where;
  }
};

TEST_F(Secrets, TokenIsInNoOutputOfAGoodOrAFailedRun) {
  const Secret s = secret('1');
  seed_apay(s.hash, "outbound_paid", 2000000);
  serve(json::array({outbound_succeeded(s.hash, s.preimage)}));
  const auto report_path = std::filesystem::temp_directory_path() / ("report-" + db_.name());

  for (const bool fail : {false, true}) {
    // One record awaits the node: the run looks its payment up (POST /getpayment).
    if (fail) node_->fail_next("/getpayment", 503, 4);
    const ProcessResult r = run_process(
        {LSP_SWEEPER_BINARY, "--log-level", "trace", "run", "--report", report_path.string()},
        {{"LSP_SWEEPER_NODE_URL", node_->url()},
         {"LSP_SWEEPER_DB_URL", db_.uri_as_sweeper()},
         {"LSP_SWEEPER_NODE_TOKEN", kToken}});
    EXPECT_EQ(r.exit_code, fail ? 2 : 0) << r.err;
    std::ifstream in(report_path);
    std::stringstream report_text;
    report_text << in.rdbuf();
    EXPECT_FALSE(report_text.str().empty());
    expect_absent(kToken, "stdout", r.out);
    expect_absent(kToken, "stderr", r.err);
    expect_absent(kToken, "the report file", report_text.str());
  }
  std::filesystem::remove(report_path);
  EXPECT_EQ(db_.query_value<int>("SELECT count(*) FROM lsp_sweeper.runs WHERE CAST(report AS TEXT) "
                                 "LIKE '%' || $1 || '%'",
                                 std::string(kToken)),
            0);
  EXPECT_EQ(count("lsp_sweeper.runs"), 2);
}

// What any local user can read of a running sweeper: its /proc/<pid>/cmdline. Read while the
// run waits for the node's first answer, for every lsp-sweeper process alive at that moment.
TEST_F(Secrets, TokenIsNotInTheCommandLineOfARunningSweeper) {
  serve(json::array());
  const auto binary = std::filesystem::canonical(LSP_SWEEPER_BINARY);
  int sweepers_seen = 0;
  std::string cmdlines;
  sim::Fault read_proc;
  read_proc.kind = sim::FaultKind::Action;
  read_proc.action = [&] {
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      std::error_code ec;
      const auto exe = std::filesystem::read_symlink(entry.path() / "exe", ec);
      if (ec || exe != binary) continue;
      std::ifstream in(entry.path() / "cmdline", std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      cmdlines += text.str() + "\n";
      ++sweepers_seen;
    }
  };
  node_->inject("/networkinfo", 1, read_proc);

  const ProcessResult r = run_process({LSP_SWEEPER_BINARY, "run", "--report", "-"},
                                      {{"LSP_SWEEPER_NODE_URL", node_->url()},
                                       {"LSP_SWEEPER_DB_URL", db_.uri_as_sweeper()},
                                       {"LSP_SWEEPER_NODE_TOKEN", kToken}});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(sweepers_seen, 1);
  EXPECT_NE(cmdlines.find("run"), std::string::npos) << cmdlines;
  expect_absent(kToken, "/proc/<pid>/cmdline", cmdlines);
}

TEST_F(Secrets, DatabasePasswordIsRedactedWhereTheRunFails) {
  serve(json::array());
  const std::string password = "pw-Xk29-secret";
  const ProcessResult r =
      run_process({LSP_SWEEPER_BINARY, "--log-level", "trace", "run", "--report", "-"},
                  {{"LSP_SWEEPER_NODE_URL", node_->url()},
                   {"LSP_SWEEPER_DB_URL",
                    "postgresql://sweeper:" + password + "@127.0.0.1:1/lsp?connect_timeout=2"},
                   {"LSP_SWEEPER_NODE_TOKEN", kToken}});
  EXPECT_EQ(r.exit_code, 2);
  expect_absent(password, "stdout", r.out);
  expect_absent(password, "stderr", r.err);
  expect_absent(kToken, "stderr", r.err);
}

// A token file is held to the rule of a config file holding a secret: no o+r. And a file that
// holds no token says so, not "no node token".
TEST_F(Secrets, TokenFileMustBePrivateAndHoldAToken) {
  serve(json::array());
  char dir_template[] = "/tmp/lsp-sweeper-token.XXXXXX";
  const std::filesystem::path dir = mkdtemp(dir_template);
  const std::string file = dir / "node-token";
  const auto run = [&](const std::string& token_file) {
    return run_process(
        {LSP_SWEEPER_BINARY, "run", "--report", "-", "--node-token-file", token_file},
        {{"LSP_SWEEPER_NODE_URL", node_->url()},
         {"LSP_SWEEPER_DB_URL", db_.uri_as_sweeper()},
         {"LSP_SWEEPER_NODE_TOKEN", ""}});
  };
  const auto error_of = [](const ProcessResult& r) {
    return json::parse(r.out.empty() ? "{}" : r.out).value("error", "");
  };
  std::ofstream(file) << kToken << "\n";
  std::filesystem::permissions(
      file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  const ProcessResult exposed = run(file);
  EXPECT_EQ(exposed.exit_code, 2) << exposed.err;
  EXPECT_EQ(error_of(exposed),
            "node token file: " + file + " is readable by every user: chmod o-r " + file);

  std::filesystem::permissions(file, std::filesystem::perms::others_read,
                               std::filesystem::perm_options::remove);
  const ProcessResult private_file = run(file);
  EXPECT_EQ(private_file.exit_code, 0) << private_file.err;

  std::ofstream(file, std::ios::trunc) << " \n";
  const ProcessResult empty = run(file);
  EXPECT_EQ(empty.exit_code, 2);
  EXPECT_EQ(error_of(empty), "node token file " + file + " is empty");

  const ProcessResult directory = run(dir);
  EXPECT_EQ(directory.exit_code, 2);
  EXPECT_EQ(error_of(directory), "node token file: " + dir.string() + " is not a regular file");
  std::filesystem::remove_all(dir);
}

// The token would cross the network in clear: the run stops on the URL alone, before it
// connects anywhere (not even to the database: no run is recorded).
TEST_F(Secrets, PlainHttpToARemoteNodeIsRefusedBeforeAnyConnection) {
  const ProcessResult r = run_process({LSP_SWEEPER_BINARY, "run", "--report", "-"},
                                      {{"LSP_SWEEPER_NODE_URL", "http://10.0.0.1:1"},
                                       {"LSP_SWEEPER_DB_URL", db_.uri()},
                                       {"LSP_SWEEPER_NODE_TOKEN", kToken}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(error_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("refusing plain http:// to http://10.0.0.1:1"), std::string::npos) << r.err;
  EXPECT_EQ(count("lsp_sweeper.runs"), 0);
  expect_absent(kToken, "stderr", r.err);
}

// A webhook URL is a credential too: plain http:// to a host that is not loopback is refused
// as the node's is, before any connection, unless --allow-insecure-http opts in.
TEST_F(Secrets, PlainHttpWebhookToARemoteHostIsRefusedUnlessOptedIn) {
  const Secret lost = secret('7');
  seed_relay(lost.hash, "outbound_pending", 7000000);
  serve(json::array({outbound_succeeded(lost.hash, lost.preimage)}));
  WebhookReceiver receiver("/hooks/webhook-secret-Q7", 200);
  // 0.0.0.0 is not loopback by name, yet a connection to it reaches this host's receiver.
  const std::string remote =
      "http://0.0.0.0:" + receiver.url().substr(receiver.url().rfind(':') + 1);
  ASSERT_NE(remote.find("/hooks/webhook-secret-Q7"), std::string::npos) << remote;

  const ProcessResult refused = sweep({"--alert-webhook", remote});
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_EQ(error_lines(refused.err), 1) << refused.err;
  EXPECT_NE(refused.err.find("refusing plain http:// to alert webhook http://0.0.0.0:"),
            std::string::npos)
      << refused.err;
  expect_absent("webhook-secret-Q7", "stderr", refused.err);
  expect_absent("webhook-secret-Q7", "stdout", refused.out);
  EXPECT_EQ(node_->request_count(), 0u);
  EXPECT_EQ(count("lsp_sweeper.runs"), 0);
  EXPECT_EQ(relay_status(lost.hash), "outbound_pending");

  const ProcessResult opted_in = sweep({"--alert-webhook", remote, "--allow-insecure-http"});
  EXPECT_EQ(opted_in.exit_code, 0) << opted_in.err;
  EXPECT_EQ(receiver.bodies().size(), 1u);
}

}  // namespace
}  // namespace lsp_sweeper
