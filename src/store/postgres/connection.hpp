// What the PostgreSQL backend's entry points (open, migrate, check) share: opening a
// connection without leaking the password, the schema version, and turning a libpqxx error
// into one line of text.
#pragma once

#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <string_view>

namespace lsp_sweeper::store::postgres::detail {

// Opens a connection; on failure throws StoreError naming the (redacted) connection string
// and libpq's reason, with any password scrubbed from the reason too.
std::unique_ptr<pqxx::connection> connect(const std::string& connection_string);

// The version of the lsp_sweeper schema in place, 0 before the first migration.
int schema_version(pqxx::transaction_base& txn);

// Throws StoreError unless the schema in place is this build's: never migrated ("run
// lsp-sweeper migrate"), older, or newer (naming both versions).
void require_schema_version(pqxx::transaction_base& txn, const std::string& db_url);

// A PostgreSQL or libpqxx error message as one line: libpq ends messages with a newline and
// puts DETAIL and HINT on lines of their own (kept), and the statement excerpt with a caret
// under the error position on two more (dropped).
std::string one_line(std::string_view message);

}  // namespace lsp_sweeper::store::postgres::detail
