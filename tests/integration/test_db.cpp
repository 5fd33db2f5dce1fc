#include "integration/test_db.hpp"

#include <unistd.h>

#include <atomic>
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

std::string read_role_script() {
  const std::string path = std::string(LSP_SWEEPER_SOURCE_DIR) + "/sql/roles/lsp_sweeper_role.sql";
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

TestDatabase::TestDatabase()
    : admin_uri_(admin_uri_from_env()),
      name_(fresh_name()),
      uri_(with_database(admin_uri_, name_)),
      sweeper_uri_(with_user(uri_, "lsp_sweeper")) {
  // A database left behind by a crashed run with a recycled pid would make CREATE fail.
  drop_database(admin_uri_, name_);
  admin_command(admin_uri_, "CREATE DATABASE", name_);
  try {
    store::migrate(uri_, /*with_lsp_schema=*/true);
    conn_ = std::make_unique<pqxx::connection>(uri_);
    exec(read_role_script());
  } catch (const std::exception&) {
    drop();  // the destructor does not run for a constructor that throws
    throw;
  }
}

TestDatabase::~TestDatabase() {
  conn_.reset();
  drop();
}

void TestDatabase::drop() noexcept {
  try {
    drop_database(admin_uri_, name_);
  } catch (const std::exception& e) {
    std::cerr << "TestDatabase: could not drop " << name_ << ": " << e.what() << "\n";
  }
}

}  // namespace lsp_sweeper::testing
