// Which backend a --db URL names: one table, first match wins (as ccache picks a storage
// backend from the URL scheme).
#include <algorithm>
#include <string>
#include <string_view>

#include "backends.hpp"
#include "lsp_sweeper/embedded_sql.hpp"

namespace lsp_sweeper::store {

namespace {

struct BackendEntry {
  std::string_view kind;
  bool (*accepts)(std::string_view db_url);
  Backend (*open)(const std::string& db_url, Access access);
  int (*migrate)(const std::string& db_url, bool with_lsp_schema);
  std::vector<util::Check> (*check)(const std::string& db_url, ApplyMode mode);
  std::string (*redact)(const std::string& db_url);
};

// PostgreSQL last: it takes any other string, as libpq does.
constexpr BackendEntry kBackends[] = {
    {"sqlite", sqlite::accepts, sqlite::open, sqlite::migrate, sqlite::check, sqlite::redact},
    {"postgresql", postgres::accepts, postgres::open, postgres::migrate, postgres::check,
     postgres::redact},
};

const BackendEntry& backend_for(std::string_view db_url) {
  for (const BackendEntry& entry : kBackends) {
    if (entry.accepts(db_url)) return entry;
  }
  return kBackends[std::size(kBackends) - 1];
}

}  // namespace

Backend open_backend(const std::string& db_url, Access access) {
  return backend_for(db_url).open(db_url, access);
}

int migrate(const std::string& db_url, bool with_lsp_schema) {
  return backend_for(db_url).migrate(db_url, with_lsp_schema);
}

std::vector<util::Check> check_database(const std::string& db_url, ApplyMode mode) {
  return backend_for(db_url).check(db_url, mode);
}

std::string redact_db_url(const std::string& db_url) { return backend_for(db_url).redact(db_url); }

int expected_schema_version() {
  int version = 0;
  for (const auto& migration : embedded::kPostgresMigrations) {
    version = std::max(version, migration.version);
  }
  return version;
}

}  // namespace lsp_sweeper::store
