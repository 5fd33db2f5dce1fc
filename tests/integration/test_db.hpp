// A fresh, migrated PostgreSQL database per test, on the throwaway server that
// scripts/test.sh starts (its admin URI in LSP_SWEEPER_TEST_DB). The database has the
// sweeper's schema and the LSP's tables, and is dropped when the object goes away.
//
//   TestDatabase db;
//   db.exec("INSERT INTO lightning_send_mappings (payment_hash, status) VALUES ($1, 'quoted')",
//           hash);
//   lsp_sweeper::store::PgStore store(db.uri_as_sweeper());
//   EXPECT_EQ(db.query_value<int>("SELECT count(*) FROM async_rotating_invoice_outbox"), 1);
#pragma once

#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <utility>

namespace lsp_sweeper::testing {

class TestDatabase {
 public:
  // Creates and migrates the database; throws (failing the test) when LSP_SWEEPER_TEST_DB
  // is not set or the server cannot be reached.
  TestDatabase();
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  // A connection URI for this database as the admin (the owner of every table), for
  // migrate and for seeding.
  const std::string& uri() const { return uri_; }
  // The same database as the role sql/roles/lsp_sweeper_role.sql creates, with its grants
  // applied: what PgStore and the lsp-sweeper binary connect as in production.
  const std::string& uri_as_sweeper() const { return sweeper_uri_; }
  const std::string& name() const { return name_; }

  // A new connection in place of one the server dropped (e.g. a test restarted it).
  void reconnect() { conn_ = std::make_unique<pqxx::connection>(uri_); }

  // Runs `sql` in autocommit mode, for seeding: without params any number of statements,
  // with params one statement whose $1, $2, ... they bind to.
  template <typename... Params>
  void exec(const std::string& sql, Params&&... params) {
    pqxx::nontransaction txn(*conn_);
    if constexpr (sizeof...(Params) == 0) {
      txn.exec(sql);
    } else {
      txn.exec_params(sql, std::forward<Params>(params)...);
    }
  }

  // The single value of a one-row, one-column query; params bind to $1, $2, ... A NULL
  // value throws (libpqxx 6.4 as packaged cannot read into std::optional): ask `IS NULL`.
  template <typename T, typename... Params>
  T query_value(const std::string& sql, Params&&... params) {
    pqxx::nontransaction txn(*conn_);
    return txn.exec_params1(sql, std::forward<Params>(params)...)[0].template as<T>();
  }

 private:
  void drop() noexcept;

  std::string admin_uri_;
  std::string name_;
  std::string uri_;
  std::string sweeper_uri_;
  std::unique_ptr<pqxx::connection> conn_;
};

// `admin_uri` (a libpq URI or key=value string) pointed at database `dbname` instead.
std::string with_database(const std::string& admin_uri, const std::string& dbname);

// `uri` (a libpq URI or key=value string) connecting as `user` instead, without a password.
std::string with_user(const std::string& uri, const std::string& user);

}  // namespace lsp_sweeper::testing
