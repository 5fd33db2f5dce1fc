// The database backends behind store.hpp's open_backend, migrate, check_database and
// redact_db_url. Each is a namespace of the same five functions; backend.cpp lists them in one
// table and picks the first whose accepts() takes the URL.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lsp_sweeper/store/store.hpp"

namespace lsp_sweeper::store {

namespace sqlite {
// `sqlite:PATH` or `sqlite:///abs/path`.
bool accepts(std::string_view db_url);
Backend open(const std::string& db_url, Access access);
int migrate(const std::string& db_url, bool with_lsp_schema);
std::vector<util::Check> check(const std::string& db_url, ApplyMode mode);
std::string redact(const std::string& db_url);
}  // namespace sqlite

namespace postgres {
// Any libpq connection string (URI or key=value): the default.
bool accepts(std::string_view db_url);
Backend open(const std::string& db_url, Access access);
int migrate(const std::string& db_url, bool with_lsp_schema);
std::vector<util::Check> check(const std::string& db_url, ApplyMode mode);
std::string redact(const std::string& db_url);
}  // namespace postgres

}  // namespace lsp_sweeper::store
