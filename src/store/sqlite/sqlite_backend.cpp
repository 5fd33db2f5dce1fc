// The SQLite backend's five entry points (backends.hpp): the LSP's own SQLite file, which the
// sweeper shares with a live LSP. It never creates the file (except migrate
// --with-lsp-schema), never changes its journal mode, never vacuums and never touches the
// LSP's table definitions.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "../backends.hpp"
#include "lsp_sweeper/embedded_sql.hpp"
#include "sqlite_store.hpp"

namespace lsp_sweeper::store::sqlite {

Session::~Session() {
  if (lock_fd >= 0) ::close(lock_fd);
}

const RecordTable& record_table(Flow flow) {
  for (const RecordTable& t : kRecordTables) {
    if (t.flow == flow) return t;
  }
  throw StoreError("no record table for flow " + std::string(to_string(flow)));
}

bool table_exists(Db& db, std::string_view name) {
  Stmt find(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            "looking up table " + std::string(name));
  find.bind(1, name);
  const bool found = find.step();
  find.reset();
  return found;
}

std::string json_array(const std::vector<std::string>& values) {
  return nlohmann::json(values).dump();
}

std::string json_array(const std::vector<std::int64_t>& values) {
  return nlohmann::json(values).dump();
}

std::string repair_context(const plan::Repair& repair) {
  return "apply " + std::string(plan::to_string(repair.kind)) + " " +
         std::string(to_string(repair.flow)) + " " + repair.payment_hash;
}

void bind_audit(Stmt& insert, const std::string& run_id, const plan::Repair& repair, bool applied) {
  insert.bind(1, run_id)
      .bind(2, plan::to_string(repair.kind))
      .bind(3, to_string(repair.flow))
      .bind(4, repair.row_id)
      .bind(5, repair.payment_hash)
      .bind(6, repair.observed_status)
      .bind(7, repair.to)
      .bind(8, repair.outbox_action)
      .bind(9, std::int64_t{applied ? 1 : 0});
}

namespace {

constexpr std::string_view kScheme = "sqlite:";
constexpr std::string_view kSchemaVersionTable = "lsp_sweeper_schema_version";

// The file a `sqlite:PATH` or `sqlite:///abs/path` URL names.
std::string path_of(const std::string& db_url) {
  const std::string_view rest = std::string_view(db_url).substr(kScheme.size());
  if (rest.starts_with("//")) {
    if (rest.size() > 2 && rest[2] == '/') return std::string(rest.substr(2));
    throw StoreError("database URL " + db_url +
                     ": a SQLite file has no host; use sqlite:PATH or sqlite:///abs/path");
  }
  if (rest.empty()) {
    throw StoreError("database URL " + db_url +
                     " names no file; use sqlite:PATH or sqlite:///abs/path");
  }
  return std::string(rest);
}

std::string migrate_hint(const std::string& path) {
  return "run `lsp-sweeper migrate --db sqlite:" + path + "`";
}

// Refuses a path that is not an existing regular file, before SQLite would create one or
// report only "unable to open database file".
void require_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw StoreError("SQLite database " + path + " does not exist");
  }
  if (!S_ISREG(st.st_mode)) throw StoreError("SQLite database " + path + " is not a file");
}

// A real read, so a file that is not a database says so now, naming the path.
void require_database(Db& db) {
  Stmt read(db, "SELECT count(*) FROM sqlite_master", "reading SQLite database " + db.path());
  read.step();
  read.reset();
}

// SQLite creates its rollback journal beside the file, so writing needs the directory too.
std::string unwritable_reason(const std::string& path) {
  std::filesystem::path directory = std::filesystem::path(path).parent_path();
  if (directory.empty()) directory = ".";
  if (::access(path.c_str(), W_OK) != 0) return path + " is not writable by this user";
  if (::access(directory.c_str(), W_OK) != 0) {
    return "directory " + directory.string() +
           " is not writable by this user (SQLite writes its journal there)";
  }
  return "";
}

int schema_version(Db& db) {
  if (!table_exists(db, kSchemaVersionTable)) return 0;
  Stmt read(db, "SELECT COALESCE(max(version), 0) FROM " + std::string(kSchemaVersionTable),
            "reading the sweeper schema version");
  read.step();
  const auto version = static_cast<int>(read.int64(0));
  read.reset();
  return version;
}

void require_schema(Db& db) {
  const int version = schema_version(db);
  const int expected = expected_schema_version();
  if (version == 0) {
    throw StoreError("SQLite database " + db.path() +
                     " has no lsp-sweeper schema: " + migrate_hint(db.path()));
  }
  if (version != expected) {
    throw StoreError("SQLite database " + db.path() + " has lsp-sweeper schema version " +
                     std::to_string(version) + ", this build expects " + std::to_string(expected) +
                     (version < expected ? ": " + migrate_hint(db.path())
                                         : ": it was migrated by a newer lsp-sweeper"));
  }
}

using util::Check;

using util::fail;
using util::ok;

}  // namespace

bool accepts(std::string_view db_url) { return db_url.starts_with(kScheme); }

std::string redact(const std::string& db_url) { return db_url; }  // a path holds no secret

Backend open(const std::string& db_url, Access access) {
  const std::string path = path_of(db_url);
  require_file(path);
  auto session = std::make_shared<Session>(
      path, access == Access::ReadOnly ? OpenMode::ReadOnly : OpenMode::ReadWrite);
  Db& db = session->db;
  require_database(db);
  if (access == Access::ReadWrite) {
    std::string reason = db.read_only() ? path + " is not writable by this user" : "";
    if (reason.empty()) reason = unwritable_reason(path);
    if (!reason.empty()) throw StoreError("SQLite database " + path + ": " + reason);
  }
  require_schema(db);
  return Backend{"sqlite", make_records(session), make_applier(session), make_ledger(session)};
}

int migrate(const std::string& db_url, bool with_lsp_schema) {
  const std::string path = path_of(db_url);
  // Only a development database may be created: a typo must not become an empty LSP file.
  if (!with_lsp_schema) require_file(path);
  Db db(path, with_lsp_schema ? OpenMode::ReadWriteCreate : OpenMode::ReadWrite);
  require_database(db);
  if (db.read_only()) throw StoreError("migrate: " + path + " is not writable by this user");
  Transaction txn(db, Transaction::Kind::Write, "migrate");
  if (with_lsp_schema) db.exec_script(embedded::kSqliteLspSchema, "migrate: the LSP schema");
  int version = schema_version(db);
  if (version > expected_schema_version()) {
    throw StoreError("migrate: SQLite database " + path + " has lsp-sweeper schema version " +
                     std::to_string(version) + ", newer than this build's " +
                     std::to_string(expected_schema_version()));
  }
  for (const auto& migration : embedded::kSqliteMigrations) {
    if (migration.version <= version) continue;
    db.exec_script(migration.sql, "migrate: " + std::string(migration.name));
    // Prepared after the first migration has created the table.
    Stmt record(db, "INSERT INTO " + std::string(kSchemaVersionTable) + " (version) VALUES (?)",
                "migrate: recording version " + std::to_string(migration.version));
    record.bind(1, std::int64_t{migration.version}).run();
    version = migration.version;
  }
  txn.commit();
  return version;
}

std::vector<Check> check(const std::string& db_url, ApplyMode apply_mode) {
  std::unique_ptr<Db> db;
  try {
    const std::string path = path_of(db_url);
    require_file(path);
    db = std::make_unique<Db>(path, OpenMode::ReadOnly);
    require_database(*db);
  } catch (const StoreError& e) {
    // The lines an opened database gets, so a reader sees what was not looked at.
    const std::string not_checked = "not checked: the database could not be opened";
    return {fail("database opened", e.what()),
            fail("journal mode", not_checked),
            fail("sweeper schema", not_checked),
            fail("LSP tables present", not_checked),
            fail("relay table " + std::string(record_table(Flow::Relay).table), not_checked),
            fail("writable", not_checked)};
  }
  std::vector<Check> checks{ok("database opened", db->path())};
  try {
    Stmt journal(*db, "PRAGMA journal_mode", "reading the journal mode");
    journal.step();
    const std::string mode = journal.text(0);
    journal.reset();
    checks.push_back(ok("journal mode", mode == "wal" ? "wal" : "rollback journal (" + mode + ")"));

    const int version = schema_version(*db);
    const std::string versions = "version " + std::to_string(version) + ", this build expects " +
                                 std::to_string(expected_schema_version());
    checks.push_back(
        version == expected_schema_version()
            ? ok("sweeper schema", versions)
            : fail("sweeper schema", versions + " (" + migrate_hint(db->path()) + ")"));

    std::string absent;
    for (std::string_view table : {record_table(Flow::Apay).table, kOutboxTable}) {
      if (!table_exists(*db, table)) absent += (absent.empty() ? "" : ", ") + std::string(table);
    }
    checks.push_back(absent.empty() ? ok("LSP tables present")
                                    : fail("LSP tables present", "missing: " + absent));
    const std::string relay(record_table(Flow::Relay).table);
    checks.push_back(ok("relay table " + relay, table_exists(*db, relay)
                                                    ? "present"
                                                    : "absent: relay flow not reconciled"));

    // Both modes write the sweeper's ledger, which lives in the LSP's file; with
    // lsp-callbacks the sweeper writes nothing else of it.
    const std::string reason = unwritable_reason(db->path());
    const std::string writable =
        db->path() + " and its directory" +
        (apply_mode == ApplyMode::LspCallbacks ? " (the sweeper's ledger; the LSP's rows only read)"
                                               : "");
    checks.push_back(reason.empty() ? ok("writable", writable) : fail("writable", reason));
  } catch (const StoreError& e) {
    checks.push_back(fail("database checks", e.what()));
  }
  return checks;
}

}  // namespace lsp_sweeper::store::sqlite
