// The sweeper sharing the LSP's SQLite file with a live LSP: lsp-writer (tests/lsp_writer) runs
// the LSP's own callback transactions, with its driver's 5 s busy wait, while a real sweep
// over a slow node repairs the same file. An LSP write that fails is a lost callback, the very
// loss the sweeper exists to repair: none may fail because of the sweeper. SQLite only (the
// PostgreSQL races are race_test.cpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "integration/sweep_fixture.hpp"

namespace lsp_sweeper {
namespace {

using nlohmann::json;
using namespace testing;

constexpr int kRecords = 2000;
constexpr int kRacedByTheLsp = 100;  // the first hashes also get the LSP's live callback

class SqliteSharing : public SweepFixture {
 protected:
  void SetUp() override {
    if (!db_.is_sqlite()) GTEST_SKIP() << "the LSP's SQLite file";
  }

  // Every page of the listings answers after `delay`: a slow node keeps the sweep running
  // while the LSP writes.
  void slow_pages(int pages, std::chrono::milliseconds delay) {
    for (int n = 1; n <= pages; ++n) {
      sim::Fault f;
      f.kind = sim::FaultKind::Slow;
      f.delay = delay;
      node_->inject("/listpayments", static_cast<std::uint64_t>(n), f);
    }
  }

  // lsp-writer on this file with `args`; its JSON figures.
  json lsp_writer(const std::vector<std::string>& args) {
    std::vector<std::string> argv{LSP_WRITER_BINARY, "--db", db_.path()};
    argv.insert(argv.end(), args.begin(), args.end());
    const ProcessResult r = run_process(argv, {}, std::chrono::seconds(120));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out);
  }

  std::string callbacks_file(const std::vector<std::string>& hashes) {
    const auto path = std::filesystem::path(db_.path()).parent_path() / "callbacks.txt";
    std::ofstream out(path);
    for (const auto& h : hashes) out << "claimable " << h << " 3000000 " << kHeight + 144 << "\n";
    return path.string();
  }
};

TEST_F(SqliteSharing, LiveLspWritesNeverFailBehindASweep) {
  const auto all = many_hashes(kRecords);
  seed_missed_claimables(db_, all);
  serve(held_payments(all));
  slow_pages(20, std::chrono::milliseconds(150));
  const std::vector<std::string> raced(all.begin(), all.begin() + kRacedByTheLsp);

  // One LSP connection firing its live callbacks for hashes the sweeper also repairs, and its
  // ordinary writes (invoice reservations) all along.
  auto writer = std::async(std::launch::async, [&] {
    return lsp_writer({"--threads", "1", "--hashes", callbacks_file(raced), "--background-writes",
                       "--duration", "6", "--interval-ms", "2"});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const ProcessResult run = sweep({"--page-size", "100", "--lookup", "list"});
  const json figures = writer.get();

  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(figures["by_kind"]["claimable"]["tried"], kRacedByTheLsp) << figures.dump();
  EXPECT_EQ(figures["writes_failed"], 0) << figures.dump();
  // Every record moved once, with exactly one job, whoever won it.
  EXPECT_EQ(db_.query_value<int>(
                "SELECT count(*) FROM async_rotating_invoices WHERE status = 'claimable'"),
            kRecords);
  EXPECT_EQ(db_.query_value<int>("SELECT count(*) FROM async_rotating_invoice_outbox WHERE "
                                 "action = 'request_outbound_invoice'"),
            kRecords);
  const int lsp_won = db_.query_value<int>(
      "SELECT count(*) FROM async_rotating_invoices WHERE status = 'claimable' AND "
      "claim_deadline_height IS NOT NULL AND payment_hash NOT IN (SELECT payment_hash FROM "
      "lsp_sweeper.actions WHERE applied)");
  EXPECT_EQ(lsp_won + db_.query_value<int>("SELECT count(*) FROM lsp_sweeper.actions WHERE applied"),
            kRecords);
  // For RELIABILITY.md.
  std::cout << "lsp-writer beside a sweep: " << figures.dump() << "\nsweeper applied "
            << db_.query_value<int>("SELECT count(*) FROM lsp_sweeper.actions WHERE applied")
            << ", lost " << db_.query_value<int>("SELECT count(*) FROM lsp_sweeper.actions WHERE "
                                                 "NOT applied")
            << " races to the LSP\n";
}

TEST_F(SqliteSharing, KilledMidRunLeavesTheFileConsistentAndTheNextRunFinishes) {
  const auto all = many_hashes(kRecords);
  seed_missed_claimables(db_, all);
  serve(held_payments(all));
  slow_pages(20, std::chrono::milliseconds(100));

  // SIGKILL after 1 s, while its pages of 100 are being fetched and applied.
  const ProcessResult killed = run_process({LSP_SWEEPER_BINARY, "run", "--page-size", "100",
                                            "--lookup", "list"},
                                           {{"LSP_SWEEPER_NODE_URL", node_->url()},
                                            {"LSP_SWEEPER_DB_URL", db_.uri_as_sweeper()},
                                            {"LSP_SWEEPER_NODE_TOKEN", kToken}},
                                           std::chrono::seconds(1));
  ASSERT_TRUE(killed.timed_out);
  const int moved = db_.query_value<int>(
      "SELECT count(*) FROM async_rotating_invoices WHERE status = 'claimable'");
  EXPECT_GT(moved, 0);
  EXPECT_LT(moved, kRecords);
  EXPECT_EQ(db_.query_value<std::string>("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(half_applied(db_), 0);
  EXPECT_EQ(db_.query_value<std::string>("SELECT status FROM lsp_sweeper.runs"), "running");

  const ProcessResult next = sweep({"--lookup", "list"});
  EXPECT_EQ(next.exit_code, 0) << next.err;
  EXPECT_EQ(report(next)["summary"]["repairs_applied"], kRecords - moved);
  EXPECT_EQ(half_applied(db_), 0);
  EXPECT_EQ(count("async_rotating_invoice_outbox"), kRecords);
}

}  // namespace
}  // namespace lsp_sweeper
