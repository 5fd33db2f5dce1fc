#include "integration/test_db.hpp"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <cstdlib>
#include <iostream>
#include <stdexcept>

#include "lsp_sweeper/store/store.hpp"
#include "lsp_sweeper/util/file.hpp"

namespace lsp_sweeper::testing {

namespace {

std::string admin_uri_from_env() {
  const char* uri = std::getenv("LSP_SWEEPER_TEST_DB");
  if (uri == nullptr || *uri == '\0') {
    throw std::runtime_error(
        "LSP_SWEEPER_TEST_DB is not set: run the integration tests through scripts/test.sh, "
        "which starts a throwaway PostgreSQL server and sets it");
  }
  return uri;
}

// Unique within this process (the counter) and across test processes running at the same
// time against the same server (the pid).
std::string fresh_name() {
  static std::atomic<int> counter{0};
  return "lsp_sweeper_test_" + std::to_string(getpid()) + "_" + std::to_string(++counter);
}

// CREATE or DROP DATABASE `dbname` (quoted as an identifier) on the admin connection, outside
// a transaction: neither can run inside one.
void admin_command(const std::string& admin_uri, const std::string& command,
                   const std::string& dbname, const std::string& options = "") {
  pqxx::connection admin(admin_uri);
  pqxx::nontransaction txn(admin);
  txn.exec("SET client_min_messages = warning");  // DROP ... IF EXISTS would NOTICE on stderr
  txn.exec(command + " " + txn.quote_name(dbname) + options);
}

// FORCE terminates any backend still connected to the database (a store not yet destroyed,
// a child process), which would otherwise make DROP fail.
void drop_database(const std::string& admin_uri, const std::string& dbname) {
  admin_command(admin_uri, "DROP DATABASE IF EXISTS", dbname, " WITH (FORCE)");
}

std::string read_source_file(const std::string& relative) {
  const std::string path = std::string(LSP_SWEEPER_SOURCE_DIR) + "/" + relative;
  auto text = util::read_file(path);
  if (!text) throw std::runtime_error("cannot read " + path);
  return *std::move(text);
}

}  // namespace

std::string with_database(const std::string& admin_uri, const std::string& dbname) {
  const std::size_t scheme = admin_uri.find("://");
  if (scheme == std::string::npos) return admin_uri + " dbname=" + dbname;  // key=value form
  // postgresql://[userinfo@]host[:port][/dbname][?query]: replace or add the path.
  const std::size_t authority = scheme + 3;
  const std::size_t path = admin_uri.find_first_of("/?", authority);
  if (path == std::string::npos) return admin_uri + "/" + dbname;
  const std::size_t query = admin_uri.find('?', path);
  return admin_uri.substr(0, path) + "/" + dbname +
         (query == std::string::npos ? "" : admin_uri.substr(query));
}

std::string with_user(const std::string& uri, const std::string& user) {
  const std::size_t scheme = uri.find("://");
  if (scheme == std::string::npos) return uri + " user=" + user;  // key=value: the last wins
  // postgresql://[userinfo@]host...: replace or add the userinfo.
  const std::size_t authority = scheme + 3;
  const std::size_t end = uri.find_first_of("@/?", authority);
  const std::size_t host = end != std::string::npos && uri[end] == '@' ? end + 1 : authority;
  return uri.substr(0, authority) + user + "@" + uri.substr(host);
}

TestBackend suite_backend() {
  const char* name = std::getenv("LSP_SWEEPER_TEST_BACKEND");
  if (name == nullptr || *name == '\0' || std::string(name) == "postgres") {
    return TestBackend::Postgres;
  }
  if (std::string(name) == "sqlite") return TestBackend::Sqlite;
  throw std::runtime_error("LSP_SWEEPER_TEST_BACKEND must be postgres or sqlite, not " +
                           std::string(name));
}

const char* to_string(TestBackend backend) {
  return backend == TestBackend::Sqlite ? "sqlite" : "postgres";
}

std::string shared_file(const std::string& relative) {
  const std::string path = std::string(LSP_SWEEPER_SOURCE_DIR) + "/../shared/" + relative;
  auto text = util::read_file(path);
  if (!text) throw std::runtime_error("cannot read " + path);
  return *std::move(text);
}

TestDatabase::TestDatabase(TestBackend backend, TestDatabaseOptions options)
    : backend_(backend), relay_(options.relay), name_(fresh_name()) {
  if (backend_ == TestBackend::Sqlite) {
    create_sqlite(options);
  } else {
    create_postgres(options);
  }
}

void TestDatabase::create_postgres(const TestDatabaseOptions& options) {
  admin_uri_ = admin_uri_from_env();
  uri_ = with_database(admin_uri_, name_);
  sweeper_uri_ = with_user(uri_, "lsp_sweeper");
  callbacks_sweeper_uri_ = with_user(uri_, "lsp_sweeper_callbacks");
  // A database left behind by a crashed run with a recycled pid would make CREATE fail.
  drop_database(admin_uri_, name_);
  admin_command(admin_uri_, "CREATE DATABASE", name_);
  try {
    setup_postgres(options);
  } catch (const std::exception&) {
    drop();  // the destructor does not run for a constructor that throws
    throw;
  }
}

void TestDatabase::setup_postgres(const TestDatabaseOptions& options) {
  pg_ = std::make_unique<pqxx::connection>(uri_);
  exec("SET client_min_messages = warning");
  exec(shared_file("lsp/postgres-schema.sql"));
  if (options.relay) exec(read_source_file("sql/lsp/postgres-relay.sql"));
  store::migrate(uri_, /*with_lsp_schema=*/false);
  exec(read_source_file("sql/roles/lsp_sweeper_role.sql"));
  exec(read_source_file("sql/roles/lsp_sweeper_callbacks_role.sql"));
}

void TestDatabase::create_sqlite(const TestDatabaseOptions& options) {
  char dir[] = "/tmp/lsp-sweeper-test-sqlite.XXXXXX";
  if (mkdtemp(dir) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = dir;
  path_ = dir_ + "/utexo_lsp.db";
  uri_ = sweeper_uri_ = callbacks_sweeper_uri_ = "sqlite:" + path_;
  try {
    if (sqlite3_open_v2(path_.c_str(), &sqlite_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        nullptr) != SQLITE_OK) {
      throw std::runtime_error("cannot create " + path_);
    }
    // As the LSP's own driver waits on a locked file.
    sqlite3_busy_timeout(sqlite_, 5000);
    exec(shared_file("lsp/sqlite-schema.sql"));
    // An LSP without the relay flow, as on PostgreSQL: the table is simply not there.
    if (!options.relay) exec("DROP TABLE lightning_send_mappings");
    store::migrate(uri_, /*with_lsp_schema=*/false);
  } catch (const std::exception&) {
    drop();
    throw;
  }
}

TestDatabase::~TestDatabase() { drop(); }

void TestDatabase::reconnect() {
  if (pg_) pg_ = std::make_unique<pqxx::connection>(uri_);
}

void TestDatabase::drop() noexcept {
  pg_.reset();
  if (sqlite_ != nullptr) {
    sqlite3_close_v2(sqlite_);
    sqlite_ = nullptr;
  }
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    return;
  }
  try {
    if (!admin_uri_.empty()) drop_database(admin_uri_, name_);
  } catch (const std::exception& e) {
    std::cerr << "TestDatabase: could not drop " << name_ << ": " << e.what() << "\n";
  }
}

std::string TestDatabase::rows_text(const std::string& sql) {
  std::string out;
  if (pg_) {
    pqxx::nontransaction txn(*pg_);
    for (const pqxx::row& row : txn.exec(sql)) {
      for (const pqxx::field& field : row) {
        out += (field.num() > 0 ? " " : "") + (field.is_null() ? "NULL" : field.as<std::string>());
      }
      out += '\n';
    }
    return out;
  }
  Statement st(*this, sql);
  while (st.step()) out += st.row_text() + '\n';
  return out;
}

std::string TestDatabase::Statement::row_text() {
  std::string out;
  for (int i = 0; i < sqlite3_column_count(stmt_); ++i) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    out += (i > 0 ? " " : "") + std::string(text != nullptr ? text : "NULL");
  }
  return out;
}

std::string TestDatabase::sqlite_sql(const std::string& sql) const {
  std::string out = sql;
  for (std::size_t at = out.find("lsp_sweeper."); at != std::string::npos;
       at = out.find("lsp_sweeper.", at + 1)) {
    out[at + std::string("lsp_sweeper").size()] = '_';
  }
  return out;
}

void TestDatabase::sqlite_exec_script(const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(sqlite_, sqlite_sql(sql).c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string message = error != nullptr ? error : "unknown error";
    sqlite3_free(error);
    throw std::runtime_error("sqlite: " + message + " in: " + sql.substr(0, 200));
  }
}

TestDatabase::Statement::Statement(TestDatabase& db, const std::string& sql) : db_(db) {
  const std::string text = db.sqlite_sql(sql);
  if (sqlite3_prepare_v2(db.sqlite_, text.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) {
    throw std::runtime_error("sqlite: " + std::string(sqlite3_errmsg(db.sqlite_)) +
                             " in: " + sql.substr(0, 200));
  }
}

TestDatabase::Statement::~Statement() { sqlite3_finalize(stmt_); }

int TestDatabase::Statement::index(int n) {
  const int i = sqlite3_bind_parameter_index(stmt_, ("$" + std::to_string(n)).c_str());
  if (i == 0) throw std::runtime_error("no parameter $" + std::to_string(n));
  return i;
}

void TestDatabase::Statement::check(int rc) {
  if (rc != SQLITE_OK) throw std::runtime_error("sqlite bind: " + std::to_string(rc));
}

void TestDatabase::Statement::bind(int n, const std::string& value) {
  check(sqlite3_bind_text(stmt_, index(n), value.data(), static_cast<int>(value.size()),
                          SQLITE_TRANSIENT));
}

bool TestDatabase::Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw std::runtime_error("sqlite: " + std::string(sqlite3_errmsg(db_.sqlite_)));
}

}  // namespace lsp_sweeper::testing
