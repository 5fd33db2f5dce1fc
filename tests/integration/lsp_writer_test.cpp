// lsp-writer run as a program against an SQLite file built from the LSP's own DDL, with a
// second connection in the test holding the write lock the way a sweeper's transaction does.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "integration/process.hpp"

namespace {

namespace fs = std::filesystem;
using lsp_sweeper::testing::run_process;
using nlohmann::json;

class Db {
 public:
  explicit Db(const fs::path& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) throw std::runtime_error("open failed");
    sqlite3_busy_timeout(db_, 5000);
  }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string msg = err != nullptr ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error(msg + " in: " + sql);
    }
  }
  // The first column of the first row, as text ("" for none or NULL).
  std::string text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string(sqlite3_errmsg(db_)) + " in: " + sql);
    }
    std::string out;
    const int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) throw std::runtime_error("step failed: " + sql);
    return out;
  }
  long count(const std::string& sql) { return std::stol(text(sql)); }

 private:
  sqlite3* db_ = nullptr;
};

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string hash(char prefix, int i) {
  char buf[65];
  std::snprintf(buf, sizeof buf, "%c%063d", prefix, i);
  return buf;
}

class LspWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // tmpfs when there is one: locking is the same, and the run is not at the mercy of fsync
    // on a shared disk.
    std::string tmpl = (fs::is_directory("/dev/shm") ? "/dev/shm" : "/tmp") +
                       std::string("/lsp_writer_test.XXXXXX");
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    db_path_ = dir_ / "utexo_lsp.db";
    db_ = std::make_unique<Db>(db_path_);
    const std::string schema = slurp(fs::path(LSP_SWEEPER_SHARED_DIR) / "lsp/sqlite-schema.sql");
    ASSERT_FALSE(schema.empty());
    db_->exec(schema);
    db_->exec("INSERT INTO async_orders (peer_pubkey, status) VALUES ('02aa', 'active')");
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(dir_);
  }

  // The LSP's rows as its own writers leave them: `active` once the invoice exists,
  // `outbound_paid` once the outbound leg is paid.
  void seed(const std::string& payment_hash, const std::string& status) {
    const std::string slot = std::to_string(++slot_);
    db_->exec(
        "INSERT INTO async_rotating_invoices (order_id, invoice_slot, hash_index, "
        "payment_hash, invoice_string, amount_msat, expires_at, status) VALUES (1, " +
        slot + ", " + slot + ", '" + payment_hash +
        "', 'lnbc1', 5000, datetime(CURRENT_TIMESTAMP, '+1 hour'), '" + status + "')");
  }
  std::vector<std::string> seed_outbound_paid(int n) {
    std::vector<std::string> lines;
    for (int i = 0; i < n; ++i) {
      seed(hash('b', i), "outbound_paid");
      lines.push_back("payment_sent " + hash('b', i) + " " + hash('c', i));
    }
    return lines;
  }

  fs::path write_hashes(const std::vector<std::string>& lines) {
    const fs::path path = dir_ / "hashes.txt";
    std::ofstream out(path);
    for (const auto& l : lines) out << l << '\n';
    return path;
  }

  lsp_sweeper::testing::ProcessResult run_writer(std::vector<std::string> args) {
    args.insert(args.begin(), {LSP_WRITER_BINARY, "--db", db_path_.string()});
    return run_process(args);
  }
  json run_ok(const std::vector<std::string>& args) {
    const auto r = run_writer(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out);
  }

  // A sweeper's write transaction: BEGIN IMMEDIATE on its own connection, held for `hold`,
  // taken as soon as `ready_sql` counts a row (lsp-writer has started writing).
  std::jthread hold_write_lock(std::string ready_sql, std::chrono::milliseconds hold) {
    return std::jthread([this, ready_sql, hold] {
      Db holder(db_path_);
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (holder.count(ready_sql) == 0 && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      holder.exec("BEGIN IMMEDIATE");
      locked_ = true;
      std::this_thread::sleep_for(hold);
      holder.exec("COMMIT");
    });
  }

  static void expect_consistent(const json& r) {
    EXPECT_EQ(r["writes_tried"].get<long>(), r["writes_applied"].get<long>() +
                                                 r["writes_not_applied"].get<long>() +
                                                 r["writes_failed"].get<long>())
        << r.dump();
    EXPECT_LE(r["p50_wait_ms"].get<double>(), r["p99_wait_ms"].get<double>());
    EXPECT_LE(r["p99_wait_ms"].get<double>(), r["max_wait_ms"].get<double>());
  }

  fs::path dir_;
  fs::path db_path_;
  std::unique_ptr<Db> db_;
  int slot_ = 0;
  std::atomic<bool> locked_{false};
};

TEST_F(LspWriterTest, EveryCallbackAppliesOnceWithItsJob) {
  std::vector<std::string> lines = seed_outbound_paid(20);
  for (int i = 0; i < 20; ++i) {
    seed(hash('a', i), "active");
    lines.push_back("claimable " + hash('a', i) + " 5000 " + std::to_string(800000 + i));
  }
  // The node retrying two callbacks, an unknown hash and a wrong amount: none applies.
  lines.push_back(lines.front());
  lines.push_back(lines.back());
  lines.push_back("payment_sent " + hash('f', 1) + " " + hash('c', 1));
  seed(hash('e', 1), "active");
  lines.push_back("claimable " + hash('e', 1) + " 4999 800000");

  // One callback at a time: concurrent claimable callbacks can fail against each other
  // (ConcurrentCallbacksNeverWriteHalf).
  const json r = run_ok({"--hashes", write_hashes(lines).string(), "--threads", "1"});
  expect_consistent(r);
  EXPECT_EQ(r["writes_tried"], 44);
  EXPECT_EQ(r["writes_applied"], 40);
  EXPECT_EQ(r["writes_not_applied"], 4);
  EXPECT_EQ(r["writes_failed"], 0);
  EXPECT_EQ(r["claims"], 0);
  EXPECT_TRUE(r["errors"].empty()) << r.dump();

  // The claim loop alone drains the outbox and stops by itself.
  const json c = run_ok({"--claim-jobs"});
  EXPECT_EQ(c["claims"], 40) << c.dump();
  EXPECT_EQ(c["by_kind"]["done"]["applied"], 40);
  EXPECT_EQ(c["writes_tried"], 0);

  for (int i = 0; i < 20; ++i) {
    const std::string a = "'" + hash('a', i) + "'";
    const std::string b = "'" + hash('b', i) + "'";
    EXPECT_EQ(db_->text("SELECT status || ' ' || claim_deadline_height || ' ' || "
                        "(claimable_at IS NOT NULL) FROM async_rotating_invoices "
                        "WHERE payment_hash = " +
                        a),
              "claimable " + std::to_string(800000 + i) + " 1");
    EXPECT_EQ(db_->text("SELECT status || ' ' || payment_preimage FROM async_rotating_invoices "
                        "WHERE payment_hash = " +
                        b),
              "outbound_claimed " + hash('c', i));
    EXPECT_EQ(db_->text("SELECT group_concat(action || ' ' || status || ' ' || attempts) FROM "
                        "async_rotating_invoice_outbox WHERE payment_hash = " +
                        a),
              "request_outbound_invoice done 1");
    EXPECT_EQ(db_->text("SELECT group_concat(action || ' ' || status || ' ' || attempts) FROM "
                        "async_rotating_invoice_outbox WHERE payment_hash = " +
                        b),
              "claim_inbound_invoice done 1");
  }
  EXPECT_EQ(db_->count("SELECT count(*) FROM async_rotating_invoice_outbox"), 40);
  EXPECT_EQ(db_->text("SELECT status FROM async_rotating_invoices WHERE payment_hash = '" +
                      hash('e', 1) + "'"),
            "active");
  // Timestamps in SQLite's own text form, which the LSP's claim compares as text.
  EXPECT_EQ(
      db_->count("SELECT count(*) FROM async_rotating_invoice_outbox WHERE "
                 "locked_until IS NOT NULL OR available_at NOT GLOB "
                 "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]'"),
      0);
}

// The LSP's pool has a connection per request; its claimable callback reads before it writes,
// so two at once can fail one of them at once (BUSY without waiting), and so can the claim
// loop. Whatever fails must leave nothing half-written: a status change always has its job.
TEST_F(LspWriterTest, ConcurrentCallbacksNeverWriteHalf) {
  std::vector<std::string> lines = seed_outbound_paid(50);
  for (int i = 0; i < 50; ++i) {
    seed(hash('a', i), "active");
    lines.push_back("claimable " + hash('a', i) + " 5000 800000");
  }
  const json r =
      run_ok({"--hashes", write_hashes(lines).string(), "--threads", "4", "--claim-jobs"});
  expect_consistent(r);
  EXPECT_EQ(r["writes_tried"], 100);
  EXPECT_EQ(r["by_kind"]["payment_sent"]["failed"], 0) << r.dump();  // it writes first: waits
  EXPECT_EQ(r["writes_failed"], r["busy_before_timeout"]) << r.dump();
  EXPECT_EQ(db_->count("SELECT count(*) FROM async_rotating_invoice_outbox"),
            r["writes_applied"].get<long>());
  EXPECT_EQ(db_->count("SELECT count(*) FROM async_rotating_invoices i WHERE "
                       "(i.status IN ('claimable', 'outbound_claimed')) <> EXISTS (SELECT 1 FROM "
                       "async_rotating_invoice_outbox o WHERE o.payment_hash = i.payment_hash)"),
            0);
  EXPECT_EQ(r["claims"], db_->count("SELECT count(*) FROM async_rotating_invoice_outbox "
                                    "WHERE status = 'done' AND attempts = 1"));
  std::cerr << "[ figures  ] " << r.dump() << '\n';
}

TEST_F(LspWriterTest, CallbacksWaitOutAShortWriteLock) {
  const std::vector<std::string> lines = seed_outbound_paid(400);
  auto holder = hold_write_lock("SELECT count(*) FROM async_rotating_invoice_outbox",
                                std::chrono::milliseconds(200));
  const json r = run_ok({"--hashes", write_hashes(lines).string(), "--interval-ms", "2"});
  holder.join();
  ASSERT_TRUE(locked_);
  expect_consistent(r);
  EXPECT_EQ(r["writes_failed"], 0) << r.dump();
  EXPECT_EQ(r["writes_applied"], 400);
  EXPECT_GE(r["max_wait_ms"].get<double>(), 180) << r.dump();
  EXPECT_LT(r["max_wait_ms"].get<double>(), 5000);
  EXPECT_EQ(db_->count("SELECT count(*) FROM async_rotating_invoice_outbox"), 400);
}

TEST_F(LspWriterTest, OrdinaryWritesWaitOutAShortWriteLock) {
  auto holder = hold_write_lock(
      "SELECT count(*) FROM async_orders WHERE peer_pubkey = 'lsp-writer-background'",
      std::chrono::milliseconds(200));
  const json r = run_ok({"--background-writes", "--count", "300", "--interval-ms", "2"});
  holder.join();
  ASSERT_TRUE(locked_);
  expect_consistent(r);
  EXPECT_EQ(r["writes_tried"], 300);
  EXPECT_EQ(r["writes_failed"], 0) << r.dump();
  EXPECT_GE(r["max_wait_ms"].get<double>(), 180) << r.dump();
  EXPECT_EQ(db_->count("SELECT count(*) FROM async_rotating_invoices WHERE status = 'reserved' "
                       "AND order_id = (SELECT order_id FROM async_orders WHERE "
                       "peer_pubkey = 'lsp-writer-background')"),
            r["writes_applied"].get<long>());
}

TEST_F(LspWriterTest, AWriteLockPastTheBusyTimeoutLosesCallbacks) {
  const std::vector<std::string> lines = seed_outbound_paid(100);
  auto holder = hold_write_lock("SELECT count(*) FROM async_rotating_invoice_outbox",
                                std::chrono::milliseconds(1000));
  const json r = run_ok(
      {"--hashes", write_hashes(lines).string(), "--interval-ms", "2", "--busy-timeout-ms", "300"});
  holder.join();
  ASSERT_TRUE(locked_);
  expect_consistent(r);
  EXPECT_GT(r["writes_failed"].get<long>(), 0) << r.dump();
  EXPECT_GE(r["max_wait_ms"].get<double>(), 300);
  ASSERT_FALSE(r["errors"].empty());
  EXPECT_NE(r["errors"][0].get<std::string>().find("database is locked"), std::string::npos);
  // A lost callback leaves nothing behind: no status change without its job.
  EXPECT_EQ(db_->count("SELECT count(*) FROM async_rotating_invoice_outbox"),
            r["writes_applied"].get<long>());
  EXPECT_EQ(db_->count("SELECT count(*) FROM async_rotating_invoices WHERE status = "
                       "'outbound_paid'"),
            r["writes_failed"].get<long>());
}

// The LSP's claimable callback reads the record before its UPDATE in one deferred transaction;
// SQLite will not let a reader wait for the write lock (it could deadlock), so any write lock
// held at that moment fails the callback at once, however long the busy timeout.
TEST_F(LspWriterTest, ClaimableFailsAtOnceUnderAWriteLock) {
  seed(hash('d', 0), "outbound_paid");
  std::vector<std::string> lines = {"payment_sent " + hash('d', 0) + " " + hash('c', 0)};
  for (int i = 0; i < 10; ++i) {
    seed(hash('a', i), "active");
    lines.push_back("claimable " + hash('a', i) + " 5000 800000");
  }
  auto holder = hold_write_lock("SELECT count(*) FROM async_rotating_invoice_outbox",
                                std::chrono::milliseconds(1000));
  const json r =
      run_ok({"--hashes", write_hashes(lines).string(), "--threads", "1", "--interval-ms", "50"});
  holder.join();
  ASSERT_TRUE(locked_);
  expect_consistent(r);
  EXPECT_EQ(r["by_kind"]["payment_sent"]["applied"], 1);
  EXPECT_EQ(r["by_kind"]["claimable"]["failed"], 10) << r.dump();
  EXPECT_EQ(r["busy_before_timeout"], 10);
  EXPECT_LT(r["by_kind"]["claimable"]["max_wait_ms"].get<double>(), 500) << r.dump();
}

TEST_F(LspWriterTest, UsageAndSetupErrorsExitOne) {
  EXPECT_EQ(run_writer({"--background-writes"}).exit_code, 1);
  EXPECT_EQ(run_writer({"--threads", "0", "--claim-jobs"}).exit_code, 1);
  EXPECT_EQ(run_writer({"--hashes", write_hashes({"claimable nothex 1 2"}).string()}).exit_code, 1);
  const fs::path empty = dir_ / "empty.db";
  { Db create(empty); }
  const auto r = run_process({LSP_WRITER_BINARY, "--db", empty.string(), "--claim-jobs"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no table"), std::string::npos) << r.err;
  EXPECT_EQ(run_process({LSP_WRITER_BINARY, "--db", (dir_ / "missing.db").string(), "--claim-jobs"})
                .exit_code,
            1);
}

}  // namespace
