// The sweeper's schema migrations on PostgreSQL, embedded from sql/postgres/sweeper at build
// time, and the LSP's own DDL (sql/lsp/postgres-schema.sql) for `--with-lsp-schema`.
#include <algorithm>
#include <cstdint>
#include <string>

#include "../backends.hpp"
#include "connection.hpp"
#include "lsp_sweeper/embedded_sql.hpp"
#include "lsp_sweeper/store/store.hpp"

namespace lsp_sweeper::store::postgres {

namespace {

// Any fixed key works as long as every lsp-sweeper uses the same one: concurrent migrates
// (two cron hosts, or a deploy racing a sweep) then run one after the other, and the second
// finds the work done instead of failing on CREATE of something the first just created.
constexpr std::int64_t kMigrationLockKey = 0x6c73705f73776570;  // "lsp_swep"

}  // namespace

namespace detail {

int schema_version(pqxx::transaction_base& txn) {
  // The table does not exist before the first migration; to_regclass says so without an error
  // (which would abort the transaction).
  if (txn.exec1("SELECT to_regclass('lsp_sweeper.schema_version') IS NULL")[0].as<bool>()) {
    return 0;
  }
  return txn.exec1("SELECT COALESCE(max(version), 0) FROM lsp_sweeper.schema_version")[0].as<int>();
}

void require_schema_version(pqxx::transaction_base& txn, const std::string& db_url) {
  const int version = schema_version(txn);
  if (version == 0) {
    throw StoreError("the sweeper's tables are not in " + redact(db_url) +
                     ": run `lsp-sweeper migrate --db ...` first");
  }
  if (version != expected_schema_version()) {
    throw StoreError("the sweeper's schema in " + redact(db_url) + " is version " +
                     std::to_string(version) + ", this build expects " +
                     std::to_string(expected_schema_version()) +
                     (version < expected_schema_version() ? ": run `lsp-sweeper migrate`"
                                                          : ": upgrade lsp-sweeper"));
  }
}

}  // namespace detail

int migrate(const std::string& connection_string, bool with_lsp_schema) {
  const auto conn = detail::connect(connection_string);
  std::string step = "lock";
  try {
    pqxx::work txn(*conn);
    // CREATE ... IF NOT EXISTS reports every existing table as a NOTICE, which libpq would
    // print to stderr on every run.
    txn.exec("SET LOCAL client_min_messages = warning");
    txn.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);

    step = "reading the schema version";
    int version = detail::schema_version(txn);
    if (version > expected_schema_version()) {
      throw StoreError("database schema version " + std::to_string(version) +
                       " is newer than this lsp-sweeper supports (" +
                       std::to_string(expected_schema_version()) + ")");
    }
    for (const auto& migration : embedded::kPostgresMigrations) {
      if (migration.version <= version) continue;
      step = std::string(migration.name);
      txn.exec(std::string(migration.sql));
      txn.exec_params("INSERT INTO lsp_sweeper.schema_version (version) VALUES ($1)",
                      migration.version);
      version = migration.version;
    }
    if (with_lsp_schema) {
      step = "the LSP schema";
      txn.exec(std::string(embedded::kPostgresLspSchema));
    }
    step = "commit";
    txn.commit();
    return version;
  } catch (const StoreError&) {
    throw;
  } catch (const std::exception& e) {
    throw StoreError("migrate: " + step + ": " + detail::one_line(e.what()));
  }
}

}  // namespace lsp_sweeper::store::postgres
