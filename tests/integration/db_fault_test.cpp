// Faults from the database against the real binary: the sweeper's connection killed while it
// applies repairs, a statement timeout, the server restarted between two runs. Each repair is
// in one transaction with its batch, so the rows and the outbox are always as before it or as
// after it, and a rerun completes the work without a duplicate job.
#include <gtest/gtest.h>

#include <cstdlib>
#include <future>
#include <pqxx/pqxx>
#include <thread>

#include "integration/sweep_fixture.hpp"

namespace lsp_sweeper {
namespace {

using nlohmann::json;
using namespace testing;

constexpr int kTransitions = 2000;

class DbFault : public SweepFixture {
 protected:
  int moved() {
    return db_.query_value<int>(
        "SELECT count(*) FROM async_rotating_invoices WHERE status = 'claimable'");
  }

  // A rerun finishes the work: every transition applied once, nothing else.
  void expect_rerun_completes(int transitions) {
    const ProcessResult rerun = sweep();
    EXPECT_EQ(rerun.exit_code, 0) << rerun.err;
    EXPECT_EQ(moved(), transitions);
    EXPECT_EQ(count("async_rotating_invoice_outbox"), transitions);
    EXPECT_EQ(half_applied(db_), 0);
  }
};

// The sweeper's connection is killed in the middle of a batch of repairs: the LSP holds one
// record of the second page locked, the sweeper's statement for that page's repairs waits for
// it, and then the sweeper's backend is terminated. The first page's batch stays committed;
// the second rolls back whole, rows it had already locked or changed included.
TEST_F(DbFault, ConnectionKilledWhileApplyingRepairs) {
  if (db_.is_sqlite()) GTEST_SKIP() << "PostgreSQL backends; SQLite: SqliteFault.*";
  constexpr int kPage = 500;
  const auto all = many_hashes(kTransitions);
  seed_missed_claimables(db_, all);
  serve(held_payments(all));
  // Newest first: the second page is all[kTransitions - kPage - 1] down to
  // all[kTransitions - 2 * kPage].
  pqxx::connection lsp(db_.uri());
  pqxx::work holding(lsp);
  holding.exec_params("SELECT 1 FROM async_rotating_invoices WHERE payment_hash = $1 FOR UPDATE",
                      all[kTransitions - kPage - kPage / 2]);

  auto run = std::async(std::launch::async, [this] {
    return sweep({"--page-size", std::to_string(kPage), "--lookup", "list"});
  });
  int killed = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (killed == 0 && run.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready &&
         std::chrono::steady_clock::now() < deadline) {
    killed = db_.query_value<int>(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
        "current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
        "AND wait_event_type = 'Lock'");
    if (killed == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  holding.abort();
  const ProcessResult killed_run = run.get();
  ASSERT_EQ(killed, 1) << "the sweeper never waited for the held record\n" << killed_run.err;
  EXPECT_EQ(killed_run.exit_code, 2) << killed_run.err;
  EXPECT_EQ(error_lines(killed_run.err), 1) << killed_run.err;
  EXPECT_NE(killed_run.err.find("error=\"apply missed_claimable apay "), std::string::npos)
      << killed_run.err;
  EXPECT_EQ(half_applied(db_), 0);
  EXPECT_EQ(moved(), kPage);

  expect_rerun_completes(kTransitions);
}

TEST_F(DbFault, StatementTimeoutOnALockedRecord) {
  if (db_.is_sqlite()) GTEST_SKIP() << "PostgreSQL row locks; SQLite: SqliteFault.*";
  const auto all = many_hashes(6);
  seed_missed_claimables(db_, all);
  serve(held_payments(all));

  // The LSP holds one record (the sweeper reaches it third, newest first: on its second page
  // of two) in a long transaction; the sweeper's UPDATE of it waits until its statement
  // timeout, and that page's batch rolls back whole.
  pqxx::connection lsp(db_.uri());
  pqxx::work holding(lsp);
  holding.exec_params("SELECT 1 FROM async_rotating_invoices WHERE payment_hash = $1 FOR UPDATE",
                      all[3]);
  const ProcessResult timed_out =
      run_sweeper(node_->url(), db_.uri() + "&options=-c%20statement_timeout%3D300",
                  {"--lookup", "list", "--page-size", "2"});
  holding.abort();

  EXPECT_EQ(timed_out.exit_code, 2) << timed_out.err;
  EXPECT_EQ(error_lines(timed_out.err), 1) << timed_out.err;
  EXPECT_NE(timed_out.err.find("statement timeout"), std::string::npos) << timed_out.err;
  EXPECT_EQ(half_applied(db_), 0);
  EXPECT_EQ(moved(), 2);

  expect_rerun_completes(6);
}

// The throwaway server's directory, from the suite's admin URI (host=DIR).
std::string server_dir() {
  const std::string uri = std::getenv("LSP_SWEEPER_TEST_DB");
  const auto start = uri.find("host=") + 5;
  return uri.substr(start, uri.find('&', start) - start);
}

TEST_F(DbFault, ServerRestartedBetweenTwoRuns) {
  if (db_.is_sqlite()) GTEST_SKIP() << "a PostgreSQL server restart";
  const auto all = many_hashes(6);
  seed_missed_claimables(db_, all);
  serve(held_payments(all));
  // Page 2 of 3 fails for good: the first run commits page 1's repairs and stops.
  for (std::uint64_t n = 2; n <= 5; ++n) {
    sim::Fault f;
    f.status = 500;
    node_->inject("/listpayments", n, f);
  }
  const ProcessResult first = sweep({"--page-size", "2", "--lookup", "list"});
  EXPECT_EQ(first.exit_code, 2) << first.err;
  EXPECT_EQ(moved(), 2);

  const std::string dir = server_dir();
  ASSERT_EQ(
      std::system(
          (std::string(LSP_SWEEPER_SOURCE_DIR) + "/scripts/pg.sh stop '" + dir + "'").c_str()),
      0);
  ASSERT_EQ(std::system((std::string(LSP_SWEEPER_SOURCE_DIR) + "/scripts/pg.sh start '" + dir +
                         "' >/dev/null")
                            .c_str()),
            0);
  db_.reconnect();

  expect_rerun_completes(6);
}

}  // namespace
}  // namespace lsp_sweeper
