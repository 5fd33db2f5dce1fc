// A thin RAII wrapper of the SQLite C API: a connection, prepared statements with positional
// parameters, and a transaction that rolls back unless committed. Every failure is a StoreError
// naming the step and SQLite's message on one line; a database still locked after the busy
// timeout is a StoreBusy.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "lsp_sweeper/store/store.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace lsp_sweeper::store::sqlite {

// How long a statement waits for a lock another connection holds before it fails with
// StoreBusy. The LSP's writers hold the file for milliseconds, so 5 s is far more than a healthy
// LSP needs, and a sweep that waits no longer than the LSP's own driver does (about 5 s) fails
// its step instead of piling up behind a stuck writer; the next run does the work.
constexpr int kBusyTimeoutMs = 5000;

enum class OpenMode { ReadOnly, ReadWrite, ReadWriteCreate };

class Db {
 public:
  // Opens `path` (never a URI); throws StoreError naming the path.
  Db(const std::string& path, OpenMode mode);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }

  // Runs statements without parameters (a migration file); `step` names it in errors.
  void exec_script(std::string_view sql, const std::string& step);

  // Whether SQLite opened the main database read-only (the file is not writable).
  bool read_only() const;

  // Rows changed by the last INSERT, UPDATE or DELETE.
  std::int64_t changes() const;

  // Throws StoreError (StoreBusy for SQLITE_BUSY or SQLITE_LOCKED) for result code `rc`.
  [[noreturn]] void fail(int rc, const std::string& step) const;

  // Whether the file is in WAL mode (the LSP's choice; the sweeper never changes it).
  bool wal();

  // Whether a connection of another process holds any of SQLite's locks on this file, i.e. is
  // inside a transaction. Asked of the kernel (fcntl F_GETLK) without taking a lock. False when
  // the file cannot be opened for asking: the caller then behaves as if it had not asked.
  bool another_process_holds_a_lock();

  // When the last write transaction on this connection ended (committed or rolled back).
  std::chrono::steady_clock::time_point last_write_ended() const { return last_write_ended_; }
  void write_ended() { last_write_ended_ = std::chrono::steady_clock::now(); }

 private:
  struct ProbeFile;

  sqlite3* db_ = nullptr;
  std::string path_;
  // Opened at the first question and shared by every Db of this process on the same file: a
  // close() drops all of a process's POSIX locks on a file, SQLite's included, so it is closed
  // only after the last such Db has closed its connection.
  std::shared_ptr<const ProbeFile> probe_;
  std::chrono::steady_clock::time_point last_write_ended_{};
};

// A prepared statement. Parameters are 1-based, columns 0-based. The statement is reset when a
// step reaches the end, on reset(), and when it is destroyed, so none keeps a read transaction
// open beyond its use.
class Stmt {
 public:
  Stmt(Db& db, std::string_view sql, std::string step);
  ~Stmt();
  Stmt(Stmt&& other) noexcept;
  Stmt& operator=(Stmt&&) = delete;
  Stmt(const Stmt&) = delete;

  Stmt& bind(int position, std::int64_t value);
  Stmt& bind(int position, std::string_view text);
  Stmt& bind(int position, const std::optional<std::int64_t>& value);
  Stmt& bind_null(int position);

  // true: a row is ready; false: done (and the statement is reset).
  bool step();
  // Steps to the end, for statements without rows; returns the rows changed.
  std::int64_t run();
  // Ends the current execution and clears the bindings.
  void reset();

  bool is_null(int column) const;
  std::int64_t int64(int column) const;
  double real(int column) const;
  std::string text(int column) const;  // "" for NULL
  std::optional<std::int64_t> optional_int64(int column) const;
  std::optional<std::string> optional_text(int column) const;

 private:
  void check_bind(int rc);

  Db* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string step_;
};

// How often a write transaction tries again for its lock (Transaction::Kind::Write).
constexpr std::chrono::milliseconds kWriteRetryInterval{2};

// How long the file is left free after a write transaction of the sweeper before its next one
// begins. A writer of the LSP that met the sweeper's lock sleeps in its driver's busy handler
// (SQLite's default: 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, ... ms between tries) and holds no
// lock meanwhile, so back-to-back writes would keep it out across all of them; a gap longer
// than its tries are apart in its first 100 ms lets it in after the first.
constexpr std::chrono::milliseconds kWriteGap{30};

// BEGIN ... COMMIT, rolled back by the destructor unless commit() ran.
class Transaction {
 public:
  // Deferred: reads only. Write: begins no sooner than kWriteGap after this connection's last
  // write ended, then BEGIN EXCLUSIVE, tried again every kWriteRetryInterval with no lock held
  // in between, for at most kBusyTimeoutMs (then StoreBusy); in the rollback journal tried only
  // while no other process holds a lock on the file.
  //
  // Why not BEGIN IMMEDIATE: the LSP's claimable callback reads the record, then updates it, in
  // one deferred transaction. SQLite refuses that upgrade at once, without a busy wait (it could
  // deadlock), while another connection holds the write lock, and the LSP loses the callback.
  // In the rollback journal (the LSP's default) an EXCLUSIVE lock is granted only while no
  // connection is inside a read, so the sweeper's write never lands inside the LSP's
  // read-then-write; and not waiting in SQLite's busy handler keeps its PENDING lock, which
  // refuses the same upgrade, from being held across the wait. In WAL mode EXCLUSIVE is
  // IMMEDIATE; there any commit between the LSP's read and its write fails that transaction
  // (RELIABILITY.md has the figures).
  //
  // Why ask the kernel first: an attempt that meets the LSP inside a read still takes RESERVED
  // and PENDING for a moment before it finds the LSP's SHARED lock and lets go, and an LSP
  // UPDATE in that moment fails at once. While any other process holds a lock the attempt
  // cannot succeed anyway, so it is not made; what is left is an LSP transaction starting in
  // the microseconds between the question and the attempt.
  enum class Kind { Deferred, Write };
  Transaction(Db& db, Kind kind, std::string step);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit();

  // BEGIN EXCLUSIVE statements this write transaction sent before it began (0 for Deferred).
  int attempts() const { return attempts_; }

 private:
  Db& db_;
  Kind kind_;
  std::string step_;
  int attempts_ = 0;
};

}  // namespace lsp_sweeper::store::sqlite
