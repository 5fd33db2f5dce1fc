// The SQLite backend against real SQLite files in a temporary directory, the LSP's tables built
// from its verbatim DDL (../shared/lsp/sqlite-schema.sql), and the LSP's own statements
// (../shared/lsp/README.md) run beside the sweeper's through a second connection.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "lsp_sweeper/embedded_sql.hpp"
#include "lsp_sweeper/store/store.hpp"
#include "lsp_sweeper/util/hex.hpp"
#include "support/other_process.hpp"
#include "support/store_error.hpp"

namespace lsp_sweeper::store {
namespace {

namespace fs = std::filesystem;
using plan::Repair;
using plan::RepairKind;
using Rows = std::vector<std::vector<std::string>>;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string hash_of(const std::string& seed) { return util::sha256_hex(seed); }

// A second connection, as the LSP (or the test's inspection) has its own.
class Raw {
 public:
  explicit Raw(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      throw std::runtime_error("open " + path);
    }
  }
  ~Raw() { sqlite3_close(db_); }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;

  void exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      const std::string message = error ? error : "?";
      sqlite3_free(error);
      throw std::runtime_error(sql + ": " + message);
    }
  }

  // Every row as text ("NULL" for NULL).
  Rows rows(const std::string& sql) {
    Rows out;
    char* error = nullptr;
    const auto collect = [](void* into, int n, char** values, char**) {
      auto& rows = *static_cast<Rows*>(into);
      rows.emplace_back();
      for (int i = 0; i < n; ++i) rows.back().emplace_back(values[i] ? values[i] : "NULL");
      return 0;
    };
    if (sqlite3_exec(db_, sql.c_str(), collect, &out, &error) != SQLITE_OK) {
      const std::string message = error ? error : "?";
      sqlite3_free(error);
      throw std::runtime_error(sql + ": " + message);
    }
    return out;
  }

  std::string one(const std::string& sql) {
    const Rows r = rows(sql);
    return r.empty() || r[0].empty() ? "" : r[0][0];
  }

 private:
  sqlite3* db_ = nullptr;
};

// The LSP's own enqueue (lsp/README.md), values inlined: test data only.
std::string lsp_enqueue(const std::string& hash, const std::string& action) {
  return "INSERT OR IGNORE INTO async_rotating_invoice_outbox (payment_hash, action, status, "
         "available_at) VALUES ('" +
         hash + "', '" + action + "', 'pending', CURRENT_TIMESTAMP)";
}

// The LSP's own claim of the next job (lsp/README.md).
constexpr const char* kLspClaim =
    "SELECT id, payment_hash, action, status, attempts, available_at, locked_until, last_error, "
    "created_at, updated_at FROM async_rotating_invoice_outbox WHERE (status = 'pending' AND "
    "available_at <= CURRENT_TIMESTAMP) OR (status = 'processing' AND locked_until IS NOT NULL "
    "AND locked_until <= CURRENT_TIMESTAMP) ORDER BY id ASC LIMIT 1";

// The LSP's timestamp form, as a LIKE pattern.
constexpr const char* kLspTimestamp = "____-__-__ __:__:__";

Repair missed_claimable(Flow flow, std::int64_t row, const std::string& hash) {
  Repair r;
  r.kind = RepairKind::MissedClaimable;
  r.flow = flow;
  r.row_id = row;
  r.payment_hash = hash;
  r.observed_status = flow == Flow::Apay ? "active" : "quoted";
  r.from = {r.observed_status};
  r.to = "claimable";
  r.outbox_action = flow == Flow::Apay ? "request_outbound_invoice" : "lightning_send_pay_outbound";
  r.claim_deadline_height = 900123;
  return r;
}

Repair missed_payment_sent(Flow flow, std::int64_t row, const std::string& hash) {
  Repair r;
  r.kind = RepairKind::MissedPaymentSent;
  r.flow = flow;
  r.row_id = row;
  r.payment_hash = hash;
  r.observed_status = flow == Flow::Apay ? "outbound_paid" : "outbound_pending";
  r.from = flow == Flow::Apay ? std::vector<std::string>{"outbound_paid"}
                              : std::vector<std::string>{"outbound_pending", "outbound_paid"};
  r.to = "outbound_claimed";
  r.outbox_action = flow == Flow::Apay ? "claim_inbound_invoice" : "lightning_send_claim_inbound";
  r.preimage = std::string(64, 'b');
  return r;
}

Repair missing_job(Flow flow, std::int64_t row, const std::string& hash, const std::string& status,
                   const std::string& action) {
  Repair r;
  r.kind = RepairKind::MissingOutboxJob;
  r.flow = flow;
  r.row_id = row;
  r.payment_hash = hash;
  r.observed_status = status;
  r.from = {status};
  r.to = status;
  r.outbox_action = action;
  return r;
}

class SqliteStore : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "sqlite-store-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "utexo_lsp.db").string();
    url_ = "sqlite:" + path_;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string lsp_schema() {
    return read_file(fs::path(LSP_SWEEPER_SHARED_DIR) / "lsp" / "sqlite-schema.sql");
  }

  // The LSP's database as the LSP creates it, with one order, then migrated.
  void make_lsp_db(bool migrated = true) {
    Raw raw(path_);
    raw.exec(lsp_schema());
    raw.exec("INSERT INTO async_orders (peer_pubkey, status) VALUES ('02aa', 'active')");
    if (migrated) {
      ASSERT_EQ(migrate(url_, false), expected_schema_version());
    }
  }

  // An APay record; returns its id.
  std::int64_t add_apay(const std::string& hash, const std::string& status,
                        std::int64_t amount = 5000) {
    Raw raw(path_);
    raw.exec(
        "INSERT INTO async_rotating_invoices (order_id, invoice_slot, hash_index, payment_hash, "
        "amount_msat, expires_at, status) VALUES (1, (SELECT COALESCE(max(invoice_slot), 0) + 1 "
        "FROM async_rotating_invoices), 0, '" +
        hash + "', " + std::to_string(amount) + ", '2099-01-01 00:00:00', '" + status + "')");
    return std::stoll(raw.one("SELECT last_insert_rowid()"));
  }

  std::int64_t add_relay(const std::string& hash, const std::string& status) {
    Raw raw(path_);
    raw.exec(
        "INSERT INTO lightning_send_mappings (payment_hash, outbound_invoice, "
        "outbound_amount_msat, payee_pubkey, inbound_invoice, inbound_amount_msat, status, "
        "expires_at) VALUES ('" +
        hash + "', 'lnbc-out', 4000, '03bb', 'lnbc-in', 4100, '" + status +
        "', '2099-01-01 00:00:00')");
    return std::stoll(raw.one("SELECT last_insert_rowid()"));
  }

  void add_job(const std::string& hash, const std::string& action, const std::string& status) {
    Raw(path_).exec(
        "INSERT INTO async_rotating_invoice_outbox (payment_hash, action, status) VALUES ('" +
        hash + "', '" + action + "', '" + status + "')");
  }

  std::string q(const std::string& sql) { return Raw(path_).one(sql); }
  Rows rows(const std::string& sql) { return Raw(path_).rows(sql); }

  // Opens read-write and begins a run, which audit rows refer to.
  Backend open_with_run(const std::string& run_id = "run-1") {
    Backend backend = open_backend(url_, Access::ReadWrite);
    backend.ledger->begin_run(run_id, false);
    return backend;
  }

  fs::path dir_;
  std::string path_;
  std::string url_;
};

using testing::message_of;

// --- The schema -------------------------------------------------------------------------------

TEST(SqliteSchema, LspDdlCopyEqualsSharedByteForByte) {
  const std::string shared =
      read_file(fs::path(LSP_SWEEPER_SHARED_DIR) / "lsp" / "sqlite-schema.sql");
  EXPECT_EQ(read_file(fs::path(LSP_SWEEPER_SOURCE_DIR) / "sql" / "lsp" / "sqlite-schema.sql"),
            shared);
  EXPECT_EQ(std::string(embedded::kSqliteLspSchema), shared);
}

TEST(SqliteSchema, MigrationsEndAtTheExpectedVersion) {
  int version = 0;
  for (const auto& m : embedded::kSqliteMigrations) version = std::max(version, m.version);
  EXPECT_EQ(version, expected_schema_version());
}

TEST_F(SqliteStore, MigrateIsIdempotentAndChangesNoLspDefinitionNorJournalMode) {
  make_lsp_db(false);
  const std::string lsp_objects =
      "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name NOT LIKE "
      "'lsp\\_sweeper\\_%' ESCAPE '\\' ORDER BY type, name";
  const Rows before = rows(lsp_objects);
  const std::string journal = q("PRAGMA journal_mode");
  EXPECT_EQ(migrate(url_, false), expected_schema_version());
  EXPECT_EQ(migrate(url_, false), expected_schema_version());
  EXPECT_EQ(rows(lsp_objects), before);
  EXPECT_EQ(q("PRAGMA journal_mode"), journal);
  EXPECT_EQ(rows("SELECT version FROM lsp_sweeper_schema_version ORDER BY version"),
            (Rows{{"1"}, {"2"}, {"3"}, {"4"}}));
  EXPECT_EQ(q("SELECT applied_at LIKE '____-__-__ __:__:__.___' FROM lsp_sweeper_schema_version "
              "LIMIT 1"),
            "1");
}

TEST_F(SqliteStore, MigrateRefusesAMissingFileUnlessCreatingTheLspSchema) {
  EXPECT_NE(message_of([&] { migrate(url_, false); }).find("does not exist"), std::string::npos);
  EXPECT_FALSE(fs::exists(path_));

  EXPECT_EQ(migrate(url_, true), expected_schema_version());
  EXPECT_EQ(q("SELECT count(*) FROM sqlite_master WHERE name IN ('async_rotating_invoices', "
              "'async_rotating_invoice_outbox', 'lightning_send_mappings')"),
            "3");
  EXPECT_EQ(migrate(url_, true), expected_schema_version());  // the LSP's DDL is idempotent
}

TEST_F(SqliteStore, MigrateRefusesANewerSchema) {
  make_lsp_db();
  Raw(path_).exec("INSERT INTO lsp_sweeper_schema_version (version) VALUES (99)");
  const std::string message = message_of([&] { migrate(url_, false); });
  EXPECT_NE(message.find("99"), std::string::npos) << message;
  EXPECT_NE(message.find("newer"), std::string::npos) << message;
}

// --- Opening ----------------------------------------------------------------------------------

TEST_F(SqliteStore, OpenRefusesAMissingFileAndCreatesNone) {
  const std::string message = message_of([&] { open_backend(url_, Access::ReadWrite); });
  EXPECT_NE(message.find(path_), std::string::npos) << message;
  EXPECT_NE(message.find("does not exist"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(SqliteStore, OpenRefusesAFileThatIsNotADatabase) {
  std::ofstream(path_) << "this is a text file, not a SQLite database, long enough to matter\n";
  for (Access access : {Access::ReadOnly, Access::ReadWrite}) {
    const std::string message = message_of([&] { open_backend(url_, access); });
    EXPECT_NE(message.find(path_), std::string::npos) << message;
    EXPECT_NE(message.find("file is not a database"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST_F(SqliteStore, OpenRefusesADatabaseNotMigrated) {
  make_lsp_db(false);
  const std::string message = message_of([&] { open_backend(url_, Access::ReadOnly); });
  EXPECT_NE(message.find("no lsp-sweeper schema"), std::string::npos) << message;
  EXPECT_NE(message.find("lsp-sweeper migrate --db " + url_), std::string::npos) << message;
}

TEST_F(SqliteStore, OpenRefusesANewerSchemaNamingBothVersions) {
  make_lsp_db();
  Raw(path_).exec("INSERT INTO lsp_sweeper_schema_version (version) VALUES (7)");
  const std::string message = message_of([&] { open_backend(url_, Access::ReadWrite); });
  EXPECT_NE(message.find("version 7"), std::string::npos) << message;
  EXPECT_NE(message.find("expects " + std::to_string(expected_schema_version())), std::string::npos)
      << message;
}

TEST_F(SqliteStore, OpenRefusesAnUnwritableFileForReadWrite) {
  if (geteuid() == 0) GTEST_SKIP() << "root writes any file";
  make_lsp_db();
  fs::permissions(path_, fs::perms::owner_read);
  EXPECT_NE(message_of([&] { open_backend(url_, Access::ReadWrite); }).find("not writable"),
            std::string::npos);
  EXPECT_NO_THROW(open_backend(url_, Access::ReadOnly));
}

TEST_F(SqliteStore, UrlForms) {
  make_lsp_db();
  EXPECT_NO_THROW(open_backend("sqlite://" + path_, Access::ReadOnly));  // sqlite:///abs/path
  EXPECT_EQ(redact_db_url(url_), url_);
  EXPECT_NE(message_of([] { open_backend("sqlite://host/x.db", Access::ReadOnly); }).find("host"),
            std::string::npos);
  EXPECT_NE(message_of([] { open_backend("sqlite:", Access::ReadOnly); }).find("names no file"),
            std::string::npos);
  // A relative path is relative to the working directory.
  const fs::path cwd = fs::current_path();
  fs::current_path(dir_);
  EXPECT_NO_THROW(open_backend("sqlite:utexo_lsp.db", Access::ReadOnly));
  fs::current_path(cwd);
}

// --- The LSP's records ------------------------------------------------------------------------

TEST_F(SqliteStore, RecordsForReturnsEveryRowOfAHashWithItsJobs) {
  make_lsp_db();
  const std::string h = hash_of("twin");
  const std::int64_t terminal = add_apay(h, "failed");
  const std::int64_t live = add_apay(h, "claimable", 7000);
  const std::string r = hash_of("relay");
  const std::int64_t relay = add_relay(r, "quoted");
  add_job(h, "request_outbound_invoice", "processing");
  add_job(r, "lightning_send_pay_outbound", "done");

  Backend backend = open_backend(url_, Access::ReadOnly);
  EXPECT_EQ(backend.kind, "sqlite");
  EXPECT_EQ(backend.records->flows(), (std::vector<Flow>{Flow::Apay, Flow::Relay}));
  const auto records = backend.records->records_for({h, r, hash_of("unknown")});
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].row_id, terminal);
  EXPECT_EQ(records[0].status, "failed");
  EXPECT_EQ(records[1].row_id, live);
  EXPECT_EQ(records[1].amount_msat, 7000);
  EXPECT_EQ(records[1].outbox_jobs,
            (std::vector<OutboxJob>{{"request_outbound_invoice", "processing"}}));
  EXPECT_EQ(records[2].flow, Flow::Relay);
  EXPECT_EQ(records[2].row_id, relay);
  EXPECT_EQ(records[2].amount_msat, 4100);  // inbound_amount_msat
  EXPECT_EQ(records[2].outbox_jobs,
            (std::vector<OutboxJob>{{"lightning_send_pay_outbound", "done"}}));
}

// The APay table has no index on payment_hash: records_for reads where each hash's rows are
// once, in chunks of 5,000 rows, and then reads rows by id. What the LSP adds or deletes after
// that must still be seen as it is, and a hash compared as the text it is.
TEST_F(SqliteStore, RecordsForSeesRowsAddedAndDeletedSinceItsFirstLookup) {
  make_lsp_db();
  Raw(path_).exec(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10001) "
      "INSERT INTO async_rotating_invoices (order_id, invoice_slot, hash_index, payment_hash, "
      "amount_msat, expires_at, status) SELECT 1, i, 0, printf('%064x', i), 5000, "
      "'2099-01-01 00:00:00', 'inbound_claimed' FROM n");
  const auto numbered = [](int i) {
    char hex[65];
    std::snprintf(hex, sizeof hex, "%064x", i);
    return std::string(hex);
  };
  const std::string a = hash_of("a"), b = hash_of("b");
  std::string upper = hash_of("upper");
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::int64_t first = add_apay(a, "failed");
  const std::int64_t odd = add_apay(upper, "active");
  add_apay("not-hex-and-terminal", "failed");
  Backend backend = open_backend(url_, Access::ReadOnly);
  ASSERT_EQ(backend.records->records_for({a}).size(), 1u);
  // Rows on either side of the chunks' edges; their hashes share the index's 8-byte key.
  for (const int i : {1, 5000, 5001, 10000, 10001}) {
    const auto found = backend.records->records_for({numbered(i)});
    ASSERT_EQ(found.size(), 1u) << i;
    EXPECT_EQ(found[0].row_id, i);
  }

  const std::int64_t twin = add_apay(a, "active");  // the hash back from the pool
  const std::int64_t added = add_apay(b, "active");
  Raw(path_).exec("DELETE FROM async_rotating_invoices WHERE id = " + std::to_string(first));
  const auto records = backend.records->records_for({a, b});
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].row_id, twin);
  EXPECT_EQ(records[0].payment_hash, a);
  EXPECT_EQ(records[1].row_id, added);
  EXPECT_EQ(records[1].payment_hash, b);
  EXPECT_TRUE(backend.records->records_for({hash_of("upper")}).empty());
  const auto exact = backend.records->records_for({upper});
  ASSERT_EQ(exact.size(), 1u);
  EXPECT_EQ(exact[0].payment_hash, upper);

  // The live rows no lookup can find, the one added since the index was read included.
  const std::int64_t late = add_apay("not-hex", "active");
  const auto unfindable =
      backend.records->records_with_malformed_hash(Flow::Apay, {"failed"}, 10);
  ASSERT_EQ(unfindable.size(), 2u);
  EXPECT_EQ(unfindable[0].row_id, odd);
  EXPECT_EQ(unfindable[1].row_id, late);
  EXPECT_EQ(backend.records->records_with_malformed_hash(Flow::Apay, {"failed"}, 1).size(), 1u);
}

TEST_F(SqliteStore, RelayFlowOnlyWhereItsTableExists) {
  make_lsp_db();
  Raw(path_).exec("DROP TABLE lightning_send_mappings");
  Backend backend = open_backend(url_, Access::ReadOnly);
  EXPECT_EQ(backend.records->flows(), std::vector<Flow>{Flow::Apay});
  EXPECT_TRUE(backend.records->records_for({hash_of("x")}).empty());
  Raw(path_).exec("DROP TABLE async_rotating_invoices");
  EXPECT_THROW(backend.records->flows(), StoreError);
}

TEST_F(SqliteStore, RecordsLackingOutboxJobPagesByIdWithJobsFilled) {
  make_lsp_db();
  std::vector<std::int64_t> lacking;
  for (int i = 0; i < 5; ++i) {
    const std::string h = hash_of("c" + std::to_string(i));
    const std::int64_t id = add_apay(h, "claimable");
    if (i % 2 == 1) {
      add_job(h, "request_outbound_invoice", "done");  // has its job, in any status
    } else {
      add_job(h, "claim_inbound_invoice", "pending");  // a job of another action
      lacking.push_back(id);
    }
  }
  add_apay(hash_of("active"), "active");
  Backend backend = open_backend(url_, Access::ReadOnly);
  std::vector<std::size_t> pages;
  std::vector<std::int64_t> seen;
  backend.records->records_lacking_outbox_job(
      Flow::Apay, {{"claimable", "request_outbound_invoice"}}, 2, [&](std::vector<LspRecord>& p) {
        pages.push_back(p.size());
        for (const LspRecord& r : p) {
          seen.push_back(r.row_id);
          EXPECT_EQ(r.outbox_jobs, (std::vector<OutboxJob>{{"claim_inbound_invoice", "pending"}}));
        }
        return true;
      });
  EXPECT_EQ(pages, (std::vector<std::size_t>{2, 1}));
  EXPECT_EQ(seen, lacking);
}

TEST_F(SqliteStore, RecordsAwaitingNodeCountsAndPagesWithoutQuietStates) {
  make_lsp_db();
  std::vector<std::int64_t> awaiting;
  for (int i = 0; i < 5; ++i) {
    awaiting.push_back(add_apay(hash_of("a" + std::to_string(i)), "active"));
    add_apay(hash_of("q" + std::to_string(i)), "inbound_claimed");
  }
  Backend backend = open_backend(url_, Access::ReadOnly);
  const std::vector<std::string> quiet{"inbound_claimed", "failed"};
  EXPECT_EQ(backend.records->awaiting_node_since(Flow::Apay, {quiet}, {})[0].records, 5);
  EXPECT_EQ(backend.records->awaiting_node_since(Flow::Relay, {quiet}, {})[0].records, 0);
  std::vector<std::int64_t> seen;
  int pages = 0;
  backend.records->records_awaiting_node(Flow::Apay, quiet, 2, [&](std::vector<LspRecord>& p) {
    ++pages;
    for (const LspRecord& r : p) seen.push_back(r.row_id);
    return pages < 2;  // stops after the second page
  });
  EXPECT_EQ(seen, std::vector<std::int64_t>(awaiting.begin(), awaiting.begin() + 4));
}

// --- Applying repairs -------------------------------------------------------------------------

TEST_F(SqliteStore, MissedClaimableAppliedOnceWithItsJobAndAuditRow) {
  make_lsp_db();
  const std::string h = hash_of("claim");
  const std::int64_t id = add_apay(h, "active");
  Backend backend = open_with_run();
  std::vector<Repair> repairs{missed_claimable(Flow::Apay, id, h)};
  backend.applier->apply(repairs, "run-1");
  EXPECT_TRUE(repairs[0].applied);
  repairs[0].applied = false;
  backend.applier->apply(repairs, "run-1");
  EXPECT_FALSE(repairs[0].applied);

  EXPECT_EQ(rows("SELECT status, claim_deadline_height, typeof(claim_deadline_height), "
                 "claimable_at LIKE '" +
                 std::string(kLspTimestamp) + "', updated_at LIKE '" + kLspTimestamp +
                 "' FROM async_rotating_invoices WHERE id = " + std::to_string(id)),
            (Rows{{"claimable", "900123", "integer", "1", "1"}}));
  EXPECT_EQ(rows("SELECT payment_hash, action, status FROM async_rotating_invoice_outbox"),
            (Rows{{h, "request_outbound_invoice", "pending"}}));
  EXPECT_EQ(rows("SELECT run_id, kind, flow, record_id, typeof(record_id), payment_hash, "
                 "from_status, to_status, outbox_action, applied, typeof(applied) FROM "
                 "lsp_sweeper_actions ORDER BY id"),
            (Rows{{"run-1", "missed_claimable", "apay", std::to_string(id), "integer", h, "active",
                   "claimable", "request_outbound_invoice", "1", "integer"},
                  {"run-1", "missed_claimable", "apay", std::to_string(id), "integer", h, "active",
                   "claimable", "request_outbound_invoice", "0", "integer"}}));
}

TEST_F(SqliteStore, ApayClaimableKeepsValuesTheLspAlreadyWrote) {
  make_lsp_db();
  const std::string h = hash_of("kept");
  const std::int64_t id = add_apay(h, "active");
  Raw(path_).exec(
      "UPDATE async_rotating_invoices SET claimable_at = '2020-01-01 00:00:00', "
      "claim_deadline_height = 777 WHERE id = " +
      std::to_string(id));
  Backend backend = open_with_run();
  std::vector<Repair> repairs{missed_claimable(Flow::Apay, id, h)};
  backend.applier->apply(repairs, "run-1");
  EXPECT_TRUE(repairs[0].applied);
  EXPECT_EQ(rows("SELECT claimable_at, claim_deadline_height FROM async_rotating_invoices"),
            (Rows{{"2020-01-01 00:00:00", "777"}}));
}

TEST_F(SqliteStore, JobRowIsTheLspsOwnAndItsClaimFindsItAtOnce) {
  make_lsp_db();
  const std::string h = hash_of("sent");
  const std::int64_t id = add_apay(h, "outbound_paid");
  Backend backend = open_with_run();
  std::vector<Repair> repairs{missed_payment_sent(Flow::Apay, id, h)};
  backend.applier->apply(repairs, "run-1");
  ASSERT_TRUE(repairs[0].applied);
  EXPECT_EQ(rows("SELECT status, payment_preimage, updated_at LIKE '" + std::string(kLspTimestamp) +
                 "' FROM async_rotating_invoices"),
            (Rows{{"outbound_claimed", std::string(64, 'b'), "1"}}));

  // The LSP's claim sees the sweeper's job first (the only one yet), at once.
  const Rows claimed = rows(kLspClaim);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0][1], h);

  // Column by column against a job the LSP's own statement writes, ids and hash aside.
  const std::string lsp_hash = hash_of("lsp's own");
  Raw(path_).exec(lsp_enqueue(lsp_hash, "claim_inbound_invoice"));
  const char* columns[] = {"action",       "status",     "attempts",   "available_at",
                           "locked_until", "last_error", "created_at", "updated_at"};
  for (const char* c : columns) {
    const std::string col(c);
    const std::string of = " FROM async_rotating_invoice_outbox WHERE payment_hash = ";
    const std::string ours = "'" + h + "'", theirs = "'" + lsp_hash + "'";
    EXPECT_EQ(q("SELECT typeof(" + col + ")" + of + ours),
              q("SELECT typeof(" + col + ")" + of + theirs))
        << col;
    if (col.ends_with("_at") && col != "locked_until") {
      // Written at (almost) the same second, in the LSP's form.
      EXPECT_EQ(q("SELECT " + col + " LIKE '" + kLspTimestamp + "'" + of + ours), "1") << col;
      EXPECT_LE(std::abs(std::stoll(q("SELECT CAST(strftime('%s', (SELECT " + col + of + ours +
                                      ")) - strftime('%s', (SELECT " + col + of + theirs +
                                      ")) AS INTEGER)"))),
                1)
          << col;
    } else {
      EXPECT_EQ(q("SELECT " + col + of + ours), q("SELECT " + col + of + theirs)) << col;
    }
  }
  EXPECT_EQ(q("SELECT typeof(attempts) FROM async_rotating_invoice_outbox LIMIT 1"), "integer");
}

TEST_F(SqliteStore, RepairByRowLeavesATerminalTwinAlone) {
  make_lsp_db();
  const std::string h = hash_of("twin");
  const std::int64_t terminal = add_apay(h, "active");
  Raw(path_).exec(
      "UPDATE async_rotating_invoices SET status = 'failed', updated_at = '2020-01-01 00:00:00'");
  const std::int64_t live = add_apay(h, "active");
  Backend backend = open_with_run();
  // A repair naming the terminal row in `from` still touches only its own row.
  Repair repair = missed_claimable(Flow::Apay, live, h);
  repair.from = {"active", "failed"};
  std::vector<Repair> repairs{repair};
  backend.applier->apply(repairs, "run-1");
  EXPECT_TRUE(repairs[0].applied);
  EXPECT_EQ(rows("SELECT id, status, claim_deadline_height, updated_at = '2020-01-01 00:00:00' "
                 "FROM async_rotating_invoices ORDER BY id"),
            (Rows{{std::to_string(terminal), "failed", "NULL", "1"},
                  {std::to_string(live), "claimable", "900123", "0"}}));
}

TEST_F(SqliteStore, AStaleJobBlocksTheRepair) {
  make_lsp_db();
  const std::string done = hash_of("done"), failed = hash_of("failed");
  const std::int64_t a = add_apay(done, "outbound_paid");
  const std::int64_t b = add_apay(failed, "outbound_paid");
  add_job(done, "claim_inbound_invoice", "done");
  add_job(failed, "claim_inbound_invoice", "failed");
  Backend backend = open_with_run();
  std::vector<Repair> repairs{missed_payment_sent(Flow::Apay, a, done),
                              missed_payment_sent(Flow::Apay, b, failed)};
  backend.applier->apply(repairs, "run-1");
  EXPECT_FALSE(repairs[0].applied);
  EXPECT_FALSE(repairs[1].applied);
  EXPECT_EQ(q("SELECT group_concat(status) FROM async_rotating_invoices"),
            "outbound_paid,outbound_paid");
  EXPECT_EQ(q("SELECT group_concat(applied) FROM lsp_sweeper_actions"), "0,0");
}

TEST_F(SqliteStore, ARecordThatMovedMeanwhileIsAZeroRowUpdate) {
  make_lsp_db();
  const std::string h = hash_of("moved");
  const std::int64_t id = add_apay(h, "active");
  Backend backend = open_with_run();
  std::vector<Repair> repairs{missed_claimable(Flow::Apay, id, h)};
  // The LSP's own callback lands between the plan and the apply.
  Raw(path_).exec("UPDATE async_rotating_invoices SET status = 'claimable'");
  backend.applier->apply(repairs, "run-1");
  EXPECT_FALSE(repairs[0].applied);
  EXPECT_EQ(q("SELECT count(*) FROM async_rotating_invoice_outbox"), "0");
  EXPECT_EQ(q("SELECT claim_deadline_height FROM async_rotating_invoices"), "NULL");
  EXPECT_EQ(q("SELECT applied FROM lsp_sweeper_actions"), "0");
}

TEST_F(SqliteStore, MissingOutboxJobOnlyWhileTheRecordIsInItsState) {
  make_lsp_db();
  const std::string stuck = hash_of("stuck"), moved = hash_of("moved"), has = hash_of("has");
  const std::int64_t a = add_apay(stuck, "claimable");
  const std::int64_t b = add_apay(moved, "outbound_requested");
  const std::int64_t c = add_apay(has, "claimable");
  add_job(has, "request_outbound_invoice", "processing");
  Backend backend = open_with_run();
  std::vector<Repair> repairs{
      missing_job(Flow::Apay, a, stuck, "claimable", "request_outbound_invoice"),
      missing_job(Flow::Apay, b, moved, "claimable", "request_outbound_invoice"),
      missing_job(Flow::Apay, c, has, "claimable", "request_outbound_invoice")};
  backend.applier->apply(repairs, "run-1");
  EXPECT_TRUE(repairs[0].applied);
  EXPECT_FALSE(repairs[1].applied);
  EXPECT_FALSE(repairs[2].applied);
  EXPECT_EQ(rows("SELECT payment_hash, status, attempts FROM async_rotating_invoice_outbox "
                 "ORDER BY id"),
            (Rows{{has, "processing", "0"}, {stuck, "pending", "0"}}));
  EXPECT_EQ(q("SELECT group_concat(status) FROM async_rotating_invoices"),
            "claimable,outbound_requested,claimable");  // no record moved
}

TEST_F(SqliteStore, RelayTransitions) {
  make_lsp_db();
  const std::string quoted = hash_of("quoted"), pending = hash_of("pending");
  const std::int64_t a = add_relay(quoted, "quoted");
  const std::int64_t b = add_relay(pending, "outbound_pending");
  Backend backend = open_with_run();
  std::vector<Repair> repairs{missed_claimable(Flow::Relay, a, quoted),
                              missed_payment_sent(Flow::Relay, b, pending)};
  backend.applier->apply(repairs, "run-1");
  EXPECT_TRUE(repairs[0].applied);
  EXPECT_TRUE(repairs[1].applied);
  EXPECT_EQ(
      rows("SELECT status, claim_deadline_height, payment_preimage FROM "
           "lightning_send_mappings ORDER BY id"),
      (Rows{{"claimable", "900123", "NULL"}, {"outbound_claimed", "NULL", std::string(64, 'b')}}));
  EXPECT_EQ(
      rows("SELECT payment_hash, action FROM async_rotating_invoice_outbox ORDER BY id"),
      (Rows{{quoted, "lightning_send_pay_outbound"}, {pending, "lightning_send_claim_inbound"}}));
}

TEST_F(SqliteStore, RepairsMissingTheirValueAreRefusedBeforeAnyWrite) {
  make_lsp_db();
  const std::string h = hash_of("x");
  const std::int64_t id = add_apay(h, "active");
  Backend backend = open_with_run();
  Repair no_deadline = missed_claimable(Flow::Apay, id, h);
  no_deadline.claim_deadline_height.reset();
  Repair no_preimage = missed_payment_sent(Flow::Apay, id, h);
  no_preimage.preimage.reset();
  Repair wrong_to = missed_claimable(Flow::Apay, id, h);
  wrong_to.to = "outbound_paid";
  for (const Repair& bad : {no_deadline, no_preimage, wrong_to}) {
    std::vector<Repair> repairs{missed_claimable(Flow::Apay, id, h), bad};
    const std::string message = message_of([&] { backend.applier->apply(repairs, "run-1"); });
    EXPECT_NE(message.find("apply " + std::string(plan::to_string(bad.kind)) + " apay " + h),
              std::string::npos)
        << message;
  }
  EXPECT_EQ(q("SELECT status FROM async_rotating_invoices"), "active");
  EXPECT_EQ(q("SELECT count(*) FROM lsp_sweeper_actions"), "0");
}

TEST_F(SqliteStore, AFailingBatchRollsBackWholeAndEarlierBatchesStay) {
  make_lsp_db();
  std::vector<Repair> repairs;
  {
    Raw raw(path_);
    raw.exec("BEGIN");
    for (int i = 0; i < 600; ++i) {
      const std::string h = hash_of("batch" + std::to_string(i));
      raw.exec(
          "INSERT INTO async_rotating_invoices (order_id, invoice_slot, hash_index, payment_hash, "
          "amount_msat, expires_at, status) VALUES (1, " +
          std::to_string(i) + ", 0, '" + h + "', 5000, '2099-01-01 00:00:00', 'active')");
      repairs.push_back(missed_claimable(Flow::Apay, i + 1, h));
    }
    raw.exec("COMMIT");
    // The audit row of repair 550 (second batch) fails.
    raw.exec(
        "CREATE TRIGGER fail_one BEFORE INSERT ON lsp_sweeper_actions WHEN "
        "NEW.payment_hash = '" +
        repairs[550].payment_hash + "' BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
  }
  Backend backend = open_with_run();
  const std::string message = message_of([&] { backend.applier->apply(repairs, "run-1"); });
  EXPECT_NE(message.find("apply missed_claimable apay " + repairs[550].payment_hash),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("injected failure"), std::string::npos) << message;
  // Where a batch ends depends on time (at most 500 repairs): the batches before the failing
  // one stayed, the failing one is gone whole, and `applied` says exactly which.
  const auto kept = static_cast<std::size_t>(
      std::count_if(repairs.begin(), repairs.end(), [](const Repair& r) { return r.applied; }));
  EXPECT_GE(kept, 51U) << "a batch holds at most 500 repairs";
  EXPECT_LE(kept, 550U);
  for (std::size_t i = 0; i < repairs.size(); ++i) {
    EXPECT_EQ(repairs[i].applied, i < kept) << "repair " << i;
  }
  const std::string n = std::to_string(kept);
  EXPECT_EQ(q("SELECT count(*) FROM async_rotating_invoices WHERE status = 'claimable'"), n);
  EXPECT_EQ(q("SELECT max(id) FROM async_rotating_invoices WHERE status = 'claimable'"), n);
  EXPECT_EQ(q("SELECT count(*) FROM async_rotating_invoice_outbox"), n);
  EXPECT_EQ(q("SELECT count(*) FROM lsp_sweeper_actions"), n);
}

TEST_F(SqliteStore, ABusyFileMakesApplyThrowStoreBusyAfterTheBoundedWait) {
  make_lsp_db();
  const std::string h = hash_of("busy");
  const std::int64_t id = add_apay(h, "active");
  Backend backend = open_with_run();
  Raw lsp(path_);
  lsp.exec("BEGIN IMMEDIATE");  // the LSP is writing
  std::vector<Repair> repairs{missed_claimable(Flow::Apay, id, h)};
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(backend.applier->apply(repairs, "run-1"), StoreBusy);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(4500));
  EXPECT_LT(waited, std::chrono::milliseconds(9000));
  lsp.exec("COMMIT");
  EXPECT_FALSE(repairs[0].applied);
  EXPECT_EQ(q("SELECT status FROM async_rotating_invoices"), "active");
  // Once the LSP is done, the same backend applies it.
  backend.applier->apply(repairs, "run-1");
  EXPECT_TRUE(repairs[0].applied);
}

TEST_F(SqliteStore, WorksInWalModeAndLeavesItSo) {
  make_lsp_db(false);
  EXPECT_EQ(q("PRAGMA journal_mode = WAL"), "wal");  // the test's choice, never the sweeper's
  EXPECT_EQ(migrate(url_, false), expected_schema_version());
  const std::string h = hash_of("wal");
  const std::int64_t id = add_apay(h, "active");
  {
    Backend backend = open_with_run();
    std::vector<Repair> repairs{missed_claimable(Flow::Apay, id, h)};
    backend.applier->apply(repairs, "run-1");
    EXPECT_TRUE(repairs[0].applied);
    EXPECT_EQ(backend.records->records_for({h}).at(0).status, "claimable");
    Backend reader = open_backend(url_, Access::ReadOnly);
    EXPECT_EQ(reader.records->records_for({h}).at(0).status, "claimable");
  }
  EXPECT_EQ(q("PRAGMA journal_mode"), "wal");
  const auto checks = check_database(url_);
  EXPECT_TRUE(util::all_pass(checks));
  EXPECT_TRUE(std::any_of(checks.begin(), checks.end(), [](const util::Check& c) {
    return c.what == "journal mode" && c.detail == "wal";
  }));
}

// --- Read-only use ----------------------------------------------------------------------------

TEST_F(SqliteStore, ReadOnlyLeavesTheFileBytesUnchanged) {
  make_lsp_db();
  const std::string h = hash_of("ro");
  const std::int64_t id = add_apay(h, "active");
  {
    Backend backend = open_with_run();
    backend.ledger->finish_run({"run-1", "ok", 0, "{}"});
  }
  const std::string before = read_file(path_);
  {
    Backend backend = open_backend(url_, Access::ReadOnly);
    EXPECT_EQ(backend.records->records_for({h}).size(), 1u);
    EXPECT_EQ(backend.records->awaiting_node_since(Flow::Apay, {{}}, {})[0].records, 1);
    backend.records->records_awaiting_node(Flow::Apay, {}, 10,
                                           [](std::vector<LspRecord>&) { return true; });
    backend.records->records_lacking_outbox_job(Flow::Apay,
                                                plan::jobs_required_by_state(Flow::Apay), 10,
                                                [](std::vector<LspRecord>&) { return true; });
    EXPECT_TRUE(backend.ledger->open_divergences().empty());
    EXPECT_EQ(backend.ledger->recent_runs(5).size(), 1u);
    std::vector<Repair> repairs{missed_claimable(Flow::Apay, id, h)};
    EXPECT_THROW(backend.applier->apply(repairs, "run-1"), StoreError);
    EXPECT_THROW(backend.ledger->begin_run("run-2", true), StoreError);
    repairs[0].delivery = plan::Delivery{plan::DeliveryOutcome::Applied, 200, "", 1};
    EXPECT_THROW(backend.ledger->record_deliveries(repairs, "run-1"), StoreError);
    (void)check_database(url_);
  }
  EXPECT_EQ(read_file(path_), before);
}

// The LSP's claimable callback (a deferred read, then its UPDATE) in another process, inside its
// read while each write of the backend is called: the write waits for it holding no lock, so
// the LSP's UPDATE meets none. A write in autocommit would wait in SQLite's busy handler
// holding RESERVED, and SQLite fails the LSP's upgrade at once.
TEST_F(SqliteStore, NoWriteFailsAnotherProcessesReadThenWrite) {
  make_lsp_db();
  const std::string h = hash_of("shared");
  const std::int64_t id = add_apay(h, "active");
  Backend backend = open_backend(url_, Access::ReadWrite);
  std::vector<Repair> repairs{missed_claimable(Flow::Apay, id, h)};
  std::vector<Repair> delivered = repairs;
  delivered[0].delivery = plan::Delivery{plan::DeliveryOutcome::Applied, 200, "", 1};
  const plan::Divergence seen{plan::DivergenceKind::AmountMismatch, Flow::Apay, h, "differs", true};
  std::vector<std::int64_t> opened;
  const std::vector<std::pair<std::string, std::function<void()>>> writes{
      {"begin_run", [&] { backend.ledger->begin_run("run-1", false); }},
      {"apply", [&] { backend.applier->apply(repairs, "run-1"); }},
      {"record_deliveries", [&] { backend.ledger->record_deliveries(delivered, "run-1"); }},
      {"record_divergences",
       [&] { opened.push_back(backend.ledger->record_divergences({seen}, true, {}).seen.at(0).id); }},
      {"mark_alerted", [&] { backend.ledger->mark_alerted(opened); }},
      {"finish_run", [&] { backend.ledger->finish_run({"run-1", "ok", 0, ""}); }},
  };
  for (const auto& [name, write] : writes) {
    testing::OtherProcess lsp(path_, {"BEGIN", "SELECT count(*) FROM async_rotating_invoices",
                                      "UPDATE async_orders SET status = status", "COMMIT"});
    ASSERT_TRUE(lsp.step());
    ASSERT_TRUE(lsp.step());  // inside its read
    auto done = std::async(std::launch::async, write);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the write waits for the LSP
    EXPECT_TRUE(lsp.step()) << name << ": the LSP's UPDATE failed behind the sweeper's write";
    EXPECT_TRUE(lsp.step()) << name << ": the LSP's COMMIT";
    done.get();
  }
  EXPECT_TRUE(repairs[0].applied);
  EXPECT_EQ(q("SELECT status FROM async_rotating_invoices"), "claimable");
  EXPECT_EQ(q("SELECT count(*) FROM lsp_sweeper_actions"), "2");
  EXPECT_EQ(q("SELECT last_alerted_at IS NOT NULL FROM lsp_sweeper_divergences"), "1");
  EXPECT_EQ(q("SELECT status FROM lsp_sweeper_runs"), "ok");
}

// --- The ledger -------------------------------------------------------------------------------

TEST_F(SqliteStore, SweepLockExcludesASecondBackendUntilTheFirstIsDestroyed) {
  make_lsp_db();
  auto first = std::make_unique<Backend>(open_backend(url_, Access::ReadWrite));
  Backend second = open_backend(url_, Access::ReadWrite);
  EXPECT_TRUE(first->ledger->try_lock_sweep());
  EXPECT_TRUE(first->ledger->try_lock_sweep());  // already held by this backend
  EXPECT_FALSE(second.ledger->try_lock_sweep());
  const fs::path lock = path_ + ".lsp-sweeper-lock";
  ASSERT_TRUE(fs::exists(lock));
  EXPECT_EQ(fs::status(lock).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  first.reset();
  EXPECT_TRUE(second.ledger->try_lock_sweep());
}

TEST_F(SqliteStore, RunsAreRecordedAndSummarised) {
  make_lsp_db();
  Backend backend = open_backend(url_, Access::ReadWrite);
  backend.ledger->begin_run("run-a", false);
  backend.ledger->finish_run(
      {"run-a", "divergences", 2,
       R"({"node":{"payments_scanned":42},"summary":{"repairs_applied":3,"divergences":1}})"});
  backend.ledger->begin_run("run-b", false);
  EXPECT_THROW(backend.ledger->finish_run({"run-x", "ok", 0, ""}), StoreError);
  EXPECT_THROW(backend.ledger->finish_run({"run-b", "ok", 0, "not json"}), StoreError);

  const auto runs = backend.ledger->recent_runs(10);
  ASSERT_EQ(runs.size(), 2u);
  const RunSummary& a = runs[0].run_id == "run-a" ? runs[0] : runs[1];
  const RunSummary& b = runs[0].run_id == "run-a" ? runs[1] : runs[0];
  EXPECT_EQ(a.status, "divergences");
  EXPECT_EQ(a.exit_code, 2);
  ASSERT_TRUE(a.duration_seconds.has_value());
  EXPECT_GE(*a.duration_seconds, 0.0);
  EXPECT_EQ(a.scanned, 42);
  EXPECT_EQ(a.repaired, 3);
  EXPECT_EQ(a.divergences, 1);
  EXPECT_NEAR(static_cast<double>(a.started_at), static_cast<double>(std::time(nullptr)), 5);
  EXPECT_EQ(b.status, "running");
  EXPECT_FALSE(b.duration_seconds.has_value());
  EXPECT_FALSE(b.exit_code.has_value());
  EXPECT_FALSE(b.scanned.has_value());
  EXPECT_EQ(backend.ledger->recent_runs(1).size(), 1u);
  EXPECT_EQ(q("SELECT started_at LIKE '____-__-__ __:__:__.___' AND typeof(dry_run) = 'integer' "
              "FROM lsp_sweeper_runs WHERE run_id = 'run-a'"),
            "1");
}

TEST_F(SqliteStore, DivergencesOpenRefreshResolveAndAlert) {
  make_lsp_db();
  Backend backend = open_backend(url_, Access::ReadWrite);
  const plan::Divergence amount{plan::DivergenceKind::AmountMismatch, Flow::Apay, hash_of("a"),
                                "amount differs", true};
  const plan::Divergence malformed{plan::DivergenceKind::MalformedPayment, std::nullopt, "zz",
                                   "bad hex", true};
  const plan::Divergence kept{plan::DivergenceKind::NodeLegFailed, Flow::Relay, hash_of("k"),
                              "failed", true};

  auto first = backend.ledger->record_divergences({amount, malformed, kept}, true, {});
  ASSERT_EQ(first.seen.size(), 3u);
  EXPECT_TRUE(first.seen[0].is_new && first.seen[1].is_new && first.seen[2].is_new);
  EXPECT_FALSE(first.seen[1].divergence.flow.has_value());
  EXPECT_TRUE(first.resolved.empty());

  plan::Divergence amount_again = amount;
  amount_again.detail = "amount still differs";
  amount_again.needs_person = false;
  // `kept`'s hash was seen but left for later: it stays open; `malformed` is gone.
  auto second = backend.ledger->record_divergences({amount_again}, true, {kept.payment_hash});
  ASSERT_EQ(second.seen.size(), 1u);
  EXPECT_FALSE(second.seen[0].is_new);
  EXPECT_EQ(second.seen[0].id, first.seen[0].id);
  EXPECT_EQ(second.seen[0].divergence.detail, "amount still differs");
  EXPECT_FALSE(second.seen[0].divergence.needs_person);
  ASSERT_EQ(second.resolved.size(), 1u);
  EXPECT_EQ(second.resolved[0].id, first.seen[1].id);

  // Without resolve_unseen nothing is resolved.
  EXPECT_TRUE(backend.ledger->record_divergences({}, false, {}).resolved.empty());

  backend.ledger->mark_alerted({first.seen[0].id});
  const auto open = backend.ledger->open_divergences();
  ASSERT_EQ(open.size(), 2u);
  EXPECT_EQ(open[0].id, first.seen[0].id);
  EXPECT_TRUE(open[0].last_alerted_at.has_value());
  EXPECT_FALSE(open[1].last_alerted_at.has_value());
  EXPECT_EQ(open[1].divergence.kind, plan::DivergenceKind::NodeLegFailed);
  EXPECT_EQ(open[1].divergence.flow, Flow::Relay);
  EXPECT_LE(open[0].first_seen_at, open[0].last_seen_at);

  // A divergence seen again after it was resolved is a new episode.
  auto third = backend.ledger->record_divergences({malformed}, false, {});
  EXPECT_TRUE(third.seen[0].is_new);
  EXPECT_NE(third.seen[0].id, first.seen[1].id);
  EXPECT_EQ(q("SELECT count(*) FROM lsp_sweeper_divergences WHERE kind = 'malformed_payment'"),
            "2");
}

// --- check ------------------------------------------------------------------------------------

TEST_F(SqliteStore, CheckReportsEachFindingAndNeverWrites) {
  make_lsp_db();
  Raw(path_).exec("DROP TABLE lightning_send_mappings");
  const std::string before = read_file(path_);
  const auto checks = check_database(url_);
  EXPECT_EQ(read_file(path_), before);
  EXPECT_TRUE(util::all_pass(checks));
  std::vector<std::string> lines;
  for (const util::Check& c : checks) lines.push_back(c.what + ": " + c.detail);
  EXPECT_EQ(lines, (std::vector<std::string>{
                       "database opened: " + path_,
                       "journal mode: rollback journal (delete)",
                       "sweeper schema: version 4, this build expects 4",
                       "LSP tables present: ",
                       "relay table lightning_send_mappings: absent: relay flow not reconciled",
                       "writable: " + path_ + " and its directory",
                   }));
}

// SQLite has no roles: --apply lsp-callbacks gets the same checks, the file still writable, since
// the sweeper's ledger lives in it.
TEST_F(SqliteStore, CheckInCallbacksModeStillNeedsTheFileWritable) {
  make_lsp_db();
  const auto checks = check_database(url_, ApplyMode::LspCallbacks);
  EXPECT_TRUE(util::all_pass(checks));
  ASSERT_EQ(checks.size(), 6u);
  EXPECT_EQ(
      checks[5].what + ": " + checks[5].detail,
      "writable: " + path_ + " and its directory (the sweeper's ledger; the LSP's rows only read)");
  if (geteuid() == 0) GTEST_SKIP() << "root writes any file";
  fs::permissions(path_, fs::perms::owner_read);
  const auto unwritable = check_database(url_, ApplyMode::LspCallbacks);
  EXPECT_FALSE(util::all_pass(unwritable));
  EXPECT_EQ(unwritable.at(5).detail, path_ + " is not writable by this user");
}

TEST_F(SqliteStore, CheckFailsWhatIsMissing) {
  EXPECT_EQ(check_database(url_).at(0).status, util::Check::Status::Fail);
  Raw(path_).exec("CREATE TABLE unrelated (x)");
  const auto checks = check_database(url_);
  ASSERT_GE(checks.size(), 4u);
  EXPECT_EQ(checks[2].what, "sweeper schema");
  EXPECT_EQ(checks[2].status, util::Check::Status::Fail);
  EXPECT_EQ(checks[3].status, util::Check::Status::Fail);
  EXPECT_EQ(checks[3].detail, "missing: async_rotating_invoices, async_rotating_invoice_outbox");
}

}  // namespace
}  // namespace lsp_sweeper::store
