// A fresh LSP database per test, on the backend this run of the integration suite covers:
// ctest runs the whole suite once per backend, with LSP_SWEEPER_TEST_BACKEND set to `sqlite`
// (a new SQLite file in a temporary directory) or `postgres` (a new database on the
// throwaway server scripts/test.sh starts, its admin URI in LSP_SWEEPER_TEST_DB).
//
// The LSP's tables are built from the LSP's own DDL, ../shared/lsp/<backend>-schema.sql, read
// as it is; the sweeper's own tables by `store::migrate`. On PostgreSQL the relay table (which
// the LSP's PostgreSQL branch lacks) comes from sql/lsp/postgres-relay.sql unless the test
// asks for an LSP without it, and the sweeper connects as the least-privilege role of
// sql/roles/lsp_sweeper_role.sql.
//
// Test SQL is written once for both: values are $1, $2, ... parameters, and the sweeper's
// tables are named in PostgreSQL form (`lsp_sweeper.actions`), which the SQLite side reads as
// `lsp_sweeper_actions`.
//
//   TestDatabase db;
//   db.exec("UPDATE async_rotating_invoices SET status = $1 WHERE id = $2", "active", id);
//   EXPECT_EQ(db.query_value<int>("SELECT count(*) FROM lsp_sweeper.actions"), 1);
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace lsp_sweeper::testing {

enum class TestBackend { Postgres, Sqlite };

// The backend of this run of the suite (LSP_SWEEPER_TEST_BACKEND, default postgres).
TestBackend suite_backend();
const char* to_string(TestBackend backend);

struct TestDatabaseOptions {
  bool relay = true;  // an LSP with the relay flow's table, lightning_send_mappings
};

class TestDatabase {
 public:
  // Creates the database with the LSP's tables and the sweeper's, on `backend`; throws
  // (failing the test) when the backend cannot be reached.
  explicit TestDatabase(TestBackend backend = suite_backend(), TestDatabaseOptions options = {});
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  TestBackend backend() const { return backend_; }
  bool is_sqlite() const { return backend_ == TestBackend::Sqlite; }

  // The --db URL as the owner of every table, for migrate and for seeding.
  const std::string& uri() const { return uri_; }
  // The --db URL lsp-sweeper connects with in production: on PostgreSQL the role
  // sql/roles/lsp_sweeper_role.sql creates; on SQLite the same file.
  const std::string& uri_as_sweeper() const { return sweeper_uri_; }
  // The same for --apply lsp-callbacks: on PostgreSQL the role of
  // sql/roles/lsp_sweeper_callbacks_role.sql (SELECT only on the LSP's tables).
  const std::string& uri_as_callbacks_sweeper() const { return callbacks_sweeper_uri_; }
  // A name unique to this database, for temporary paths.
  const std::string& name() const { return name_; }
  // SQLite: the database file.
  const std::string& path() const { return path_; }

  // Whether the LSP's relay table is there.
  bool has_relay() const { return relay_; }

  // Every row of `sql`, columns as text separated by spaces (NULL as "NULL"), one line a row.
  std::string rows_text(const std::string& sql);

  // A new connection in place of one the server dropped (e.g. a test restarted it).
  void reconnect();

  // Runs `sql` in autocommit mode, for seeding: without params any number of statements,
  // with params one statement whose $1, $2, ... they bind to (std::nullopt binds NULL).
  template <typename... Params>
  void exec(const std::string& sql, const Params&... params) {
    if (pg_) {
      pqxx::nontransaction txn(*pg_);
      if constexpr (sizeof...(Params) == 0) {
        txn.exec(sql);
      } else {
        txn.exec_params(sql, params...);
      }
      return;
    }
    if constexpr (sizeof...(Params) == 0) {
      sqlite_exec_script(sql);
    } else {
      Statement st(*this, sql);
      st.bind_all(params...);
      st.step();
    }
  }

  // The single value of a one-row, one-column query; params bind to $1, $2, ... A NULL
  // value throws: ask `IS NULL`. Booleans read from SQLite's 0 and 1.
  template <typename T, typename... Params>
  T query_value(const std::string& sql, const Params&... params) {
    if (pg_) {
      pqxx::nontransaction txn(*pg_);
      return txn.exec_params1(sql, params...)[0].template as<T>();
    }
    Statement st(*this, sql);
    st.bind_all(params...);
    if (!st.step()) throw std::runtime_error("no row: " + sql);
    return st.column<T>();
  }

 private:
  // One SQLite statement, with the sweeper's table names mapped (see the top of this file).
  class Statement {
   public:
    Statement(TestDatabase& db, const std::string& sql);
    ~Statement();
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    template <typename... Params>
    void bind_all(const Params&... params) {
      int i = 0;
      (bind(++i, params), ...);
    }
    bool step();  // true: a row is there
    std::string row_text();  // the current row, as rows_text shows it
    template <typename T>
    T column() {
      if (sqlite3_column_type(stmt_, 0) == SQLITE_NULL) throw std::runtime_error("NULL value");
      if constexpr (std::is_same_v<T, std::string>) {
        return reinterpret_cast<const char*>(sqlite3_column_text(stmt_, 0));
      } else if constexpr (std::is_same_v<T, bool>) {
        return sqlite3_column_int64(stmt_, 0) != 0;
      } else if constexpr (std::is_floating_point_v<T>) {
        return static_cast<T>(sqlite3_column_double(stmt_, 0));
      } else {
        return static_cast<T>(sqlite3_column_int64(stmt_, 0));
      }
    }

   private:
    // $n binds to the parameter named "$n", wherever and however often it appears.
    int index(int n);
    void check(int rc);
    template <typename T>
    void bind(int n, const std::optional<T>& value) {
      if (value) {
        bind(n, *value);
      } else {
        check(sqlite3_bind_null(stmt_, index(n)));
      }
    }
    void bind(int n, const std::string& value);
    void bind(int n, const char* value) { bind(n, std::string(value)); }
    void bind(int n, bool value) { check(sqlite3_bind_int64(stmt_, index(n), value ? 1 : 0)); }
    void bind(int n, double value) { check(sqlite3_bind_double(stmt_, index(n), value)); }
    template <typename T>
      requires std::is_integral_v<T>
    void bind(int n, T value) {
      check(sqlite3_bind_int64(stmt_, index(n), static_cast<sqlite3_int64>(value)));
    }

    TestDatabase& db_;
    sqlite3_stmt* stmt_ = nullptr;
  };

  void sqlite_exec_script(const std::string& sql);
  std::string sqlite_sql(const std::string& sql) const;
  void create_postgres(const TestDatabaseOptions& options);
  void setup_postgres(const TestDatabaseOptions& options);
  void create_sqlite(const TestDatabaseOptions& options);
  void drop() noexcept;

  TestBackend backend_;
  bool relay_ = true;
  std::string admin_uri_;
  std::string name_;
  std::string uri_;
  std::string sweeper_uri_;
  std::string callbacks_sweeper_uri_;
  std::string dir_;
  std::string path_;
  std::unique_ptr<pqxx::connection> pg_;
  sqlite3* sqlite_ = nullptr;
};

// `admin_uri` (a libpq URI or key=value string) pointed at database `dbname` instead.
std::string with_database(const std::string& admin_uri, const std::string& dbname);

// `uri` (a libpq URI or key=value string) connecting as `user` instead, without a password.
std::string with_user(const std::string& uri, const std::string& user);

// The text of a file of ../shared (beside the project), e.g. "lsp/sqlite-schema.sql".
std::string shared_file(const std::string& relative);

}  // namespace lsp_sweeper::testing
