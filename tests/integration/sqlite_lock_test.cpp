// The SQLite backend's write transaction against a second process holding the file's locks, as
// the LSP does from its own process: the kernel's answer about other processes' locks, and a
// write that makes no attempt (takes no lock) while another process is inside a transaction.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>

#include "store/sqlite/db.hpp"
#include "support/other_process.hpp"

namespace lsp_sweeper::store::sqlite {
namespace {

namespace fs = std::filesystem;
using testing::OtherProcess;

void exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string text = message ? message : "?";
    sqlite3_free(message);
    throw std::runtime_error(std::string(sql) + ": " + text);
  }
}

class SqliteLock : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("lsp-sweeper-lock-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    path_ = (dir_ / "lsp.db").string();
    sqlite3* db = nullptr;
    sqlite3_open(path_.c_str(), &db);
    exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER); INSERT INTO t VALUES (1, 0)");
    sqlite3_close(db);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string path_;
};

// The LSP's claimable callback: a deferred transaction that reads, then writes.
const std::vector<std::string> kReadThenWrite{"BEGIN", "SELECT v FROM t WHERE id = 1",
                                              "UPDATE t SET v = v + 1 WHERE id = 1", "COMMIT"};

TEST_F(SqliteLock, AnotherProcessInsideATransactionIsSeenAndThisProcessNever) {
  Db db(path_, OpenMode::ReadWrite);
  EXPECT_FALSE(db.another_process_holds_a_lock());
  {
    // This process's own locks, another connection's included, are not another process's.
    sqlite3* own = nullptr;
    sqlite3_open(path_.c_str(), &own);
    exec(own, "BEGIN IMMEDIATE");
    EXPECT_FALSE(db.another_process_holds_a_lock());
    exec(own, "COMMIT");
    sqlite3_close(own);
  }
  OtherProcess lsp(path_, kReadThenWrite);
  EXPECT_FALSE(db.another_process_holds_a_lock()) << "idle, with its connection open";
  ASSERT_TRUE(lsp.step());  // BEGIN: deferred, no lock yet
  EXPECT_FALSE(db.another_process_holds_a_lock());
  ASSERT_TRUE(lsp.step());  // its read holds SHARED
  EXPECT_TRUE(db.another_process_holds_a_lock());
  ASSERT_TRUE(lsp.step());  // its write holds RESERVED
  EXPECT_TRUE(db.another_process_holds_a_lock());
  ASSERT_TRUE(lsp.step());  // COMMIT lets go
  EXPECT_FALSE(db.another_process_holds_a_lock());
}

TEST_F(SqliteLock, AWriteMakesNoAttemptWhileAnotherProcessIsInsideARead) {
  Db db(path_, OpenMode::ReadWrite);
  OtherProcess lsp(path_, kReadThenWrite);
  ASSERT_TRUE(lsp.step());
  ASSERT_TRUE(lsp.step());  // inside its read
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    // Its upgrade to a write, then its commit: an attempt of ours in between would fail it.
    EXPECT_TRUE(lsp.step()) << "the LSP's UPDATE after its read";
    EXPECT_TRUE(lsp.step()) << "the LSP's COMMIT";
  });
  {
    Transaction txn(db, Transaction::Kind::Write, "test write");
    // About 150 attempts in 300 ms without asking first; one, after the LSP let go, with.
    EXPECT_EQ(txn.attempts(), 1);
    Stmt(db, "UPDATE t SET v = v + 10 WHERE id = 1", "test update").run();
    txn.commit();
  }
  release.join();
  Stmt read(db, "SELECT v FROM t WHERE id = 1", "test read");
  ASSERT_TRUE(read.step());
  EXPECT_EQ(read.int64(0), 11);
}

TEST_F(SqliteLock, AWriteBehindAnotherProcessHoldingTheFileFailsBusyAfterTheBoundedWait) {
  Db db(path_, OpenMode::ReadWrite);
  OtherProcess lsp(path_, {"BEGIN IMMEDIATE", "ROLLBACK"});
  ASSERT_TRUE(lsp.step());
  const auto start = std::chrono::steady_clock::now();
  try {
    Transaction txn(db, Transaction::Kind::Write, "test write");
    FAIL() << "began while another process held the file";
  } catch (const StoreBusy& e) {
    EXPECT_NE(std::string(e.what()).find("test write: begin: another process holds the database "
                                         "locked (still locked after 5000 ms)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(kBusyTimeoutMs));
  ASSERT_TRUE(lsp.step());
  Transaction txn(db, Transaction::Kind::Write, "test write");
  EXPECT_EQ(txn.attempts(), 1);
}

// The LSP's payment_sent writes first, so it waits in its driver's busy handler, holding no
// lock, while the sweeper writes; back-to-back writes of the sweeper would keep it out across
// all of them (measured beside a repair run: 350-850 ms). Between two of them the file is left
// free for kWriteGap, so it gets in after the write it met. Run for both journal modes.
TEST_F(SqliteLock, AWriterWaitingInItsBusyHandlerGetsInBetweenTwoWrites) {
  for (const bool wal : {false, true}) {
    SCOPED_TRACE(wal ? "WAL" : "rollback journal");
    Db db(path_, OpenMode::ReadWrite);
    if (wal) db.exec_script("PRAGMA journal_mode = WAL", "test: WAL");  // the test's choice
    db.exec_script("DELETE FROM t", "test: empty");
    OtherProcess lsp(path_, {"INSERT INTO t (v) VALUES (-1)"});
    constexpr int kWrites = 12;
    std::thread lsp_write;
    for (int i = 1; i <= kWrites; ++i) {
      Transaction txn(db, Transaction::Kind::Write, "test write");
      Stmt insert(db, "INSERT INTO t (v) VALUES (?)", "test insert");
      insert.bind(1, i).run();
      // The LSP's write arrives while the sweeper holds the file.
      if (i == 2) lsp_write = std::thread([&] { EXPECT_TRUE(lsp.step()); });
      std::this_thread::sleep_for(std::chrono::milliseconds(40));
      txn.commit();
    }
    lsp_write.join();
    Stmt after(db, "SELECT count(*) FROM t WHERE id > (SELECT id FROM t WHERE v = -1)",
               "test read");
    ASSERT_TRUE(after.step());
    // Its tries are at most 25 ms apart in its first 100 ms and 100 ms apart after: it lands in
    // one of the first gaps; without them, after the last write.
    EXPECT_GE(after.int64(0), kWrites - 6) << "the sweeper's writes that came after the LSP's";
  }
}

TEST_F(SqliteLock, InWalModeAWriteDoesNotAsk) {
  {
    Db setup(path_, OpenMode::ReadWrite);
    setup.exec_script("PRAGMA journal_mode = WAL", "test: WAL");  // the test's choice
  }
  Db db(path_, OpenMode::ReadWrite);
  EXPECT_TRUE(db.wal());
  OtherProcess reader(path_, {"BEGIN", "SELECT v FROM t", "COMMIT"});
  ASSERT_TRUE(reader.step());
  ASSERT_TRUE(reader.step());  // a WAL reader does not keep a writer out
  Transaction txn(db, Transaction::Kind::Write, "test write");
  EXPECT_EQ(txn.attempts(), 1);
  txn.commit();
  EXPECT_TRUE(reader.step());
}

}  // namespace
}  // namespace lsp_sweeper::store::sqlite
