// Races on one database and one node: sweeper processes against each other, and against the
// LSP's own live callback path. Every repair lands exactly once whoever wins.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "integration/sweep_fixture.hpp"

namespace lsp_sweeper {
namespace {

using nlohmann::json;
using namespace testing;

constexpr int kTransitions = 2000;
constexpr int kSweepers = 8;
// What a second sweeper exits with when another one holds the run lock (if the build has it).
constexpr int kExitLocked = 75;

class Race : public SweepFixture {
 protected:
  void race_live_callbacks(bool serializable);

  int applied_actions(bool applied) {
    return db_.query_value<int>("SELECT count(*) FROM lsp_sweeper.actions WHERE applied = $1",
                                applied);
  }
};

TEST_F(Race, EightSweepersApplyEveryRepairExactlyOnce) {
  const auto all = many_hashes(kTransitions);
  seed_missed_claimables(db_, all);
  serve(held_payments(all));

  std::vector<std::future<ProcessResult>> runs;
  for (int i = 0; i < kSweepers; ++i) {
    runs.push_back(std::async(std::launch::async, [this] {
      return run_process({LSP_SWEEPER_BINARY, "run"},
                         {{"LSP_SWEEPER_NODE_URL", node_->url()},
                          {"LSP_SWEEPER_DB_URL", db_.uri_as_sweeper()},
                          {"LSP_SWEEPER_NODE_TOKEN", kToken}},
                         std::chrono::seconds(600));
    }));
  }
  int worked = 0;
  for (auto& run : runs) {
    const ProcessResult r = run.get();
    ASSERT_FALSE(r.timed_out) << "a sweeper hung (deadlock?)";
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == kExitLocked) << r.exit_code << "\n" << r.err;
    worked += r.exit_code == 0;
  }
  EXPECT_GE(worked, 1);
  EXPECT_EQ(count("async_rotating_invoice_outbox"), kTransitions);
  EXPECT_EQ(db_.query_value<int>("SELECT count(DISTINCT payment_hash) FROM "
                                 "async_rotating_invoice_outbox WHERE action = "
                                 "'request_outbound_invoice'"),
            kTransitions);
  EXPECT_EQ(applied_actions(true), kTransitions);
  EXPECT_EQ(db_.query_value<int>(
                "SELECT count(*) FROM async_rotating_invoices WHERE status = 'claimable'"),
            kTransitions);
}

// What the LSP's claimable handler does for one hash, in its own transaction: the same
// conditional UPDATE, then the outbox job only when the row moved. True when it moved it.
bool live_callback_once(pqxx::connection& conn, const std::string& hash) {
  pqxx::work txn(conn);
  const bool moved =
      txn.exec_params(
             "UPDATE async_rotating_invoices SET status = 'claimable', claimable_at = "
             "COALESCE(claimable_at, now()), claim_deadline_height = "
             "COALESCE(claim_deadline_height, $2::bigint), updated_at = now() "
             "WHERE payment_hash = $1 AND status = 'active'",
             hash, kHeight + 144)
          .affected_rows() == 1;
  if (moved) {
    txn.exec_params(
        "INSERT INTO async_rotating_invoice_outbox (payment_hash, action, status, available_at) "
        "VALUES ($1, 'request_outbound_invoice', 'pending', now()) "
        "ON CONFLICT (payment_hash, action) DO NOTHING",
        hash);
  }
  txn.commit();
  return moved;
}

// The handler retried on a serialization failure, as an LSP running SERIALIZABLE must.
bool live_callback(pqxx::connection& conn, const std::string& hash, int& serialization_failures) {
  for (;;) {
    try {
      return live_callback_once(conn, hash);
    } catch (const pqxx::serialization_failure&) {
      ++serialization_failures;
    }
  }
}

// The callbacks race one sweeper on every hash. With `serializable`, the database's default
// isolation is SERIALIZABLE: the callbacks then meet serialization failures and retry, while
// the sweeper keeps READ COMMITTED for its own session and must not fail.
void Race::race_live_callbacks(bool serializable) {
  if (db_.is_sqlite()) GTEST_SKIP() << "PostgreSQL sessions; SQLite: the lsp-writer races";
  const auto all = many_hashes(kTransitions);
  if (serializable) {
    db_.exec("ALTER DATABASE " + db_.name() +
             " SET default_transaction_isolation TO 'serializable'");
  }
  seed_missed_claimables(db_, all);
  serve(held_payments(all));

  // The sweeper walks newest first (the end of `all`); the callbacks walk from the start, so
  // the two meet in the middle of the list.
  constexpr int kCallbackThreads = 4;
  std::atomic<int> serialization_failures{0};
  std::vector<std::future<std::vector<std::string>>> callbacks;
  auto sweeper = std::async(std::launch::async, [this] { return sweep({}); });
  for (int t = 0; t < kCallbackThreads; ++t) {
    callbacks.push_back(std::async(std::launch::async, [this, t, &all, &serialization_failures] {
      pqxx::connection conn(db_.uri());
      std::vector<std::string> won;
      int failures = 0;
      for (std::size_t i = static_cast<std::size_t>(t); i < all.size(); i += kCallbackThreads) {
        if (live_callback(conn, all[i], failures)) won.push_back(all[i]);
      }
      serialization_failures += failures;
      return won;
    }));
  }
  std::set<std::string> won_by_callback;
  for (auto& c : callbacks) {
    for (auto& h : c.get()) won_by_callback.insert(h);
  }
  const ProcessResult run = sweeper.get();
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json r = report(run);

  int sweeper_applied = 0;
  int reported_lost = 0;
  for (const auto& repair : r["repairs"]) {
    const std::string hash = repair["payment_hash"];
    if (repair["applied"]) {
      ++sweeper_applied;
      EXPECT_EQ(won_by_callback.count(hash), 0u) << hash << " moved by both";
    } else {
      ++reported_lost;
      EXPECT_EQ(won_by_callback.count(hash), 1u) << hash << " reported lost but nobody moved it";
    }
  }
  EXPECT_EQ(sweeper_applied + static_cast<int>(won_by_callback.size()), kTransitions);
  EXPECT_EQ(applied_actions(true), sweeper_applied);
  EXPECT_EQ(applied_actions(false), reported_lost);
  EXPECT_EQ(db_.query_value<int>("SELECT count(*) FROM (SELECT payment_hash, action FROM "
                                 "async_rotating_invoice_outbox GROUP BY 1, 2 HAVING count(*) "
                                 "<> 1) d"),
            0);
  EXPECT_EQ(count("async_rotating_invoice_outbox"), kTransitions);

  // The same hashes, the sweeper alone: the final state does not depend on who won.
  TestDatabase sequential;
  seed_missed_claimables(sequential, all);
  ASSERT_EQ(run_sweeper(node_->url(), sequential.uri_as_sweeper()).exit_code, 0);
  EXPECT_EQ(lsp_state(db_), lsp_state(sequential));
  std::cout << "callbacks won " << won_by_callback.size() << ", sweeper applied " << sweeper_applied
            << ", sweeper lost " << reported_lost << ", callback serialization failures "
            << serialization_failures << '\n';
}

TEST_F(Race, LiveCallbacksRacingTheSweeperLeaveOneJobPerHash) { race_live_callbacks(false); }

TEST_F(Race, SerializableDatabaseDefaultDoesNotFailTheSweeper) { race_live_callbacks(true); }

}  // namespace
}  // namespace lsp_sweeper
