// `lsp-sweeper check`, the real binary against a real database and the node simulator.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "integration/process.hpp"
#include "integration/test_db.hpp"
#include "lsp_sweeper/store/store.hpp"
#include "sim/simulator.hpp"

namespace lsp_sweeper {
namespace {

using testing::ProcessResult;
using testing::run_process;
using testing::suite_backend;
using testing::TestDatabase;

constexpr const char* kToken = "check-test-token-Jr4w";

class Check : public ::testing::Test {
 protected:
  void serve(const std::string& dialect = "paginated") {
    nlohmann::json doc{
        {"dialect", dialect}, {"height", 812345}, {"payments", nlohmann::json::array()}};
    node_ = std::make_unique<sim::NodeSimulator>(sim::parse_scenario(doc, sim::unix_now()), kToken);
    node_->start();
  }

  ProcessResult check(const std::string& db_uri, const std::string& token = kToken) {
    return run_process({LSP_SWEEPER_BINARY, "check"}, {{"LSP_SWEEPER_NODE_URL", node_->url()},
                                                       {"LSP_SWEEPER_DB_URL", db_uri},
                                                       {"LSP_SWEEPER_NODE_TOKEN", token}});
  }

  static bool has_line(const ProcessResult& r, const std::string& line) {
    std::istringstream lines(r.out);
    for (std::string l; std::getline(lines, l);) {
      if (l == line) return true;
    }
    return false;
  }

  static int count_prefix(const ProcessResult& r, const std::string& prefix) {
    int n = 0;
    std::istringstream lines(r.out);
    for (std::string l; std::getline(lines, l);) n += l.starts_with(prefix);
    return n;
  }

  TestDatabase db_;
  std::unique_ptr<sim::NodeSimulator> node_;
};

TEST_F(Check, EverythingInPlaceForTheSweeperRolePasses) {
  serve();
  const ProcessResult r = check(db_.uri_as_sweeper());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(has_line(r, "ok    node reachable: " + node_->url())) << r.out;
  EXPECT_TRUE(has_line(r, "ok    node token accepted")) << r.out;
  EXPECT_TRUE(has_line(r, "ok    node unlocked")) << r.out;
  EXPECT_TRUE(has_line(r, "ok    node API dialect: paginated")) << r.out;
  EXPECT_TRUE(has_line(r, "ok    node block height: 812345")) << r.out;
  if (db_.is_sqlite()) {
    EXPECT_TRUE(has_line(r, "ok    database opened: " + db_.path())) << r.out;
    EXPECT_TRUE(has_line(r, "ok    journal mode: rollback journal (delete)")) << r.out;
    EXPECT_TRUE(has_line(r, "ok    LSP tables present")) << r.out;
    EXPECT_TRUE(has_line(r, "ok    relay table lightning_send_mappings: present")) << r.out;
    EXPECT_EQ(count_prefix(r, "ok    writable: "), 1) << r.out;
    EXPECT_EQ(count_prefix(r, "ok    "), 11) << r.out;
  } else {
    EXPECT_TRUE(has_line(r,
                         "ok    LSP tables present: async_rotating_invoices, "
                         "async_rotating_invoice_outbox"))
        << r.out;
    EXPECT_TRUE(has_line(r, "ok    privileges of role lsp_sweeper: all the sweep needs")) << r.out;
    EXPECT_EQ(count_prefix(r, "ok    "), 9) << r.out;
  }
  EXPECT_TRUE(has_line(
      r, "ok    sweeper schema: version " + std::to_string(store::expected_schema_version()) +
             ", this build expects " + std::to_string(store::expected_schema_version())))
      << r.out;
  EXPECT_EQ(count_prefix(r, "FAIL"), 0) << r.out;
  EXPECT_EQ(count_prefix(r, "warn"), 0) << r.out;
  EXPECT_EQ(r.out.find(kToken), std::string::npos);
}

// Without the relay table (the LSP's PostgreSQL form), check passes and says so.
TEST_F(Check, AnLspWithoutTheRelayTablePasses) {
  TestDatabase no_relay(suite_backend(), {.relay = false});
  serve();
  const ProcessResult r = check(no_relay.uri_as_sweeper());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(count_prefix(r, "FAIL"), 0) << r.out;
  const std::string says =
      no_relay.is_sqlite()
          ? "ok    relay table lightning_send_mappings: absent: relay flow not reconciled"
          : "ok    LSP tables present: async_rotating_invoices, async_rotating_invoice_outbox; no "
            "lightning_send_mappings: the relay flow is not reconciled";
  EXPECT_TRUE(has_line(r, says)) << r.out;
}

// The README's example of a passing check shows what check prints, the same host and height
// aside.
TEST_F(Check, ReadmeExampleMatchesWhatCheckPrints) {
  serve();
  const ProcessResult r = check(db_.uri_as_sweeper());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::ifstream in(std::string(LSP_SWEEPER_SOURCE_DIR) + "/README.md");
  const std::string readme{std::istreambuf_iterator<char>(in), {}};
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("ok    node reachable") || line.starts_with("ok    node block height") ||
        line.starts_with("ok    database reachable") || line.starts_with("ok    database opened") ||
        line.starts_with("ok    writable")) {
      continue;
    }
    EXPECT_NE(readme.find("\n" + line + "\n"), std::string::npos) << "not in README.md: " << line;
  }
}

TEST_F(Check, SuperuserPassesWithAWarning) {
  if (db_.is_sqlite()) GTEST_SKIP() << "PostgreSQL roles";
  serve();
  const ProcessResult r = check(db_.uri());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(count_prefix(r, "warn  privileges of role postgres: superuser"), 1) << r.out;
}

TEST_F(Check, AMissingPrivilegeFailsAndAnExtraOneWarns) {
  if (db_.is_sqlite()) GTEST_SKIP() << "PostgreSQL privileges";
  serve();
  db_.exec("REVOKE UPDATE (payment_preimage) ON async_rotating_invoices FROM lsp_sweeper");
  db_.exec("GRANT DELETE ON async_rotating_invoice_outbox TO lsp_sweeper");
  db_.exec("GRANT UPDATE (amount_msat) ON async_rotating_invoices TO lsp_sweeper");
  const ProcessResult r = check(db_.uri_as_sweeper());
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(has_line(r,
                       "FAIL  privileges of role lsp_sweeper: missing: "
                       "UPDATE(payment_preimage) on async_rotating_invoices"))
      << r.out;
  EXPECT_TRUE(has_line(r,
                       "warn  privileges of role lsp_sweeper: more than the sweeper needs: "
                       "UPDATE(amount_msat) on async_rotating_invoices, "
                       "DELETE on async_rotating_invoice_outbox"))
      << r.out;
}

TEST_F(Check, SchemaNotMigratedFails) {
  serve();
  db_.exec("DELETE FROM lsp_sweeper.schema_version");
  const ProcessResult r = check(db_.uri_as_sweeper());
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_EQ(count_prefix(r, "FAIL  sweeper schema: version 0"), 1) << r.out;
}

TEST_F(Check, NodeProblemsAreNamed) {
  serve();
  const ProcessResult refused = check(db_.uri_as_sweeper(), "wrong-token-Pq7");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_TRUE(has_line(refused, "ok    node reachable: " + node_->url())) << refused.out;
  EXPECT_EQ(count_prefix(refused, "FAIL  node token accepted"), 1) << refused.out;
  EXPECT_EQ(refused.out.find("wrong-token-Pq7"), std::string::npos);

  node_->set_locked(true);
  const ProcessResult locked = check(db_.uri_as_sweeper());
  EXPECT_EQ(locked.exit_code, 1);
  EXPECT_TRUE(has_line(locked, "ok    node token accepted")) << locked.out;
  EXPECT_EQ(count_prefix(locked, "FAIL  node unlocked"), 1) << locked.out;

  node_->set_locked(false);
  node_->fail_next("/networkinfo", 403, 1, "NotInitialized");
  const ProcessResult uninitialised = check(db_.uri_as_sweeper());
  EXPECT_EQ(uninitialised.exit_code, 1);
  EXPECT_EQ(count_prefix(uninitialised,
                         "FAIL  node unlocked: GET /networkinfo: node is not "
                         "initialised"),
            1)
      << uninitialised.out;

  node_->fail_next("/networkinfo", 403, 1, "Forbidden");
  const ProcessResult forbidden = check(db_.uri_as_sweeper());
  EXPECT_EQ(forbidden.exit_code, 1);
  EXPECT_TRUE(has_line(forbidden, "ok    node reachable: " + node_->url())) << forbidden.out;
  EXPECT_EQ(count_prefix(forbidden, "FAIL  node token accepted"), 1) << forbidden.out;
}

TEST_F(Check, LegacyNodeIsNamed) {
  serve("legacy");
  const ProcessResult r = check(db_.uri_as_sweeper());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(count_prefix(r, "ok    node API dialect: legacy"), 1) << r.out;
}

TEST_F(Check, UnreachableDatabaseFailsWithoutItsPassword) {
  serve();
  const ProcessResult r = check("postgresql://sweeper:s3cret-pw@127.0.0.1:1/lsp?connect_timeout=2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_prefix(r, "FAIL  database reachable"), 1) << r.out;
  EXPECT_EQ(r.out.find("s3cret-pw"), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find("s3cret-pw"), std::string::npos) << r.err;
}

// Issue 12.13: a database that cannot be reached still gets its schema, tables and privileges
// lines, as "not checked", as the node's do. Both URL forms, whatever the suite's backend.
TEST_F(Check, UnreachableDatabaseListsWhatWasNotChecked) {
  serve();
  const ProcessResult pg = check("postgresql://sweeper@127.0.0.1:1/lsp?connect_timeout=2");
  EXPECT_EQ(pg.exit_code, 1);
  EXPECT_EQ(count_prefix(pg, "FAIL  database reachable"), 1) << pg.out;
  const std::string pg_not = ": not checked: the database is unreachable";
  EXPECT_TRUE(has_line(pg, "FAIL  sweeper schema" + pg_not)) << pg.out;
  EXPECT_TRUE(has_line(pg, "FAIL  LSP tables present" + pg_not)) << pg.out;
  EXPECT_TRUE(has_line(pg, "FAIL  privileges of the role" + pg_not)) << pg.out;

  const std::string missing = "/nonexistent-" + db_.name() + "/utexo_lsp.db";
  const ProcessResult lite = check("sqlite:" + missing);
  EXPECT_EQ(lite.exit_code, 1);
  EXPECT_TRUE(
      has_line(lite, "FAIL  database opened: SQLite database " + missing + " does not exist"))
      << lite.out;
  const std::string lite_not = ": not checked: the database could not be opened";
  for (const char* what : {"journal mode", "sweeper schema", "LSP tables present",
                           "relay table lightning_send_mappings", "writable"}) {
    EXPECT_TRUE(has_line(lite, "FAIL  " + std::string(what) + lite_not)) << lite.out;
  }
  EXPECT_EQ(count_prefix(lite, "FAIL  "), 6) << lite.out;
  EXPECT_EQ(lite.out.find("ok    database"), std::string::npos) << lite.out;
}

}  // namespace
}  // namespace lsp_sweeper
