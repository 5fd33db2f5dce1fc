// The LSP's SQLite file opened as the LSP's Go driver (mattn/go-sqlite3 v1.14.22, the version of
// utexo-lsp 6cc517f) opens it, for the test tools that act as the LSP on it (tests/lsp_writer,
// tests/lsp_sim): no PRAGMA, so the journal mode stays the file's own; a busy timeout (the
// driver's default 5 s); every transaction a plain deferred `BEGIN` (the driver's default
// `_txlock`; the LSP's DSN sets none). Statements are prepared, run and finalized per use, as
// database/sql does for ExecContext/QueryRowContext.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace lsp_sqlite {

class SqliteError : public std::runtime_error {
 public:
  SqliteError(sqlite3* db, const std::string& what)
      : std::runtime_error(what + ": " + sqlite3_errmsg(db)),
        code(sqlite3_errcode(db)),
        message(sqlite3_errmsg(db)) {}
  int code;
  std::string message;  // SQLite's own text, as the Go driver reports it ("database is locked")
};

inline constexpr int kDriverBusyTimeoutMs = 5000;

class Connection {
 public:
  // An existing file only; throws std::runtime_error when it cannot be opened.
  explicit Connection(const std::string& path, int busy_timeout_ms = kDriverBusyTimeoutMs) {
    const int rc =
        sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      const std::string msg = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      throw std::runtime_error("cannot open " + path + ": " + msg);
    }
    sqlite3_busy_timeout(db_, busy_timeout_ms);
  }
  ~Connection() { sqlite3_close(db_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  sqlite3* get() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      throw SqliteError(db, "prepare");
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, std::int64_t value) {
    check(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  Statement& bind(int index, const std::string& value) {
    check(sqlite3_bind_text(stmt_, index, value.c_str(), static_cast<int>(value.size()),
                            SQLITE_TRANSIENT));
    return *this;
  }
  // True while a row is available.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw SqliteError(db_, "step");
  }
  int type(int index) const { return sqlite3_column_type(stmt_, index); }  // SQLITE_INTEGER, ...
  std::int64_t column(int index) const { return sqlite3_column_int64(stmt_, index); }
  std::string text(int index) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, index));
    return p != nullptr
               ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, index)))
               : std::string();
  }

 private:
  void check(int rc) const {
    if (rc != SQLITE_OK) throw SqliteError(db_, "bind");
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

inline void exec(sqlite3* db, const char* sql) { Statement(db, sql).step(); }

inline std::int64_t changes(sqlite3* db) { return sqlite3_changes64(db); }

}  // namespace lsp_sqlite
