// The PostgreSQL backend behind the store seam (store.hpp) against a real server (see
// test_db.hpp): the LSP's tables built from its own DDL (../shared/lsp/postgres-schema.sql) plus
// sql/lsp/postgres-relay.sql for the relay flow, the sweeper connecting as the least-privilege
// role of sql/roles/lsp_sweeper_role.sql, and the LSP's own statements run beside the sweeper's
// through a second connection. The PostgreSQL counterpart of sqlite_store_test.cpp; every test
// skips itself on the suite's SQLite run.
#include "lsp_sweeper/store/store.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "integration/test_db.hpp"
#include "lsp_sweeper/util/file.hpp"
#include "lsp_sweeper/util/hex.hpp"
#include "support/store_error.hpp"

namespace lsp_sweeper::store {
namespace {

using lsp_sweeper::testing::shared_file;
using lsp_sweeper::testing::suite_backend;
using lsp_sweeper::testing::TestBackend;
using lsp_sweeper::testing::TestDatabase;
using lsp_sweeper::testing::TestDatabaseOptions;
using plan::Repair;
using plan::RepairKind;

std::string hash_of(const std::string& seed) { return util::sha256_hex(seed); }

std::string read_source_file(const std::string& relative) {
  const std::string path = std::string(LSP_SWEEPER_SOURCE_DIR) + "/" + relative;
  auto text = util::read_file(path);
  if (!text) throw std::runtime_error("cannot read " + path);
  return *std::move(text);
}

// The repairs of DOMAIN.md's transition table, as the planner builds them, for row `row`.
Repair missed_claimable(Flow flow, std::int64_t row, const std::string& hash,
                        std::int64_t deadline = 900) {
  Repair r;
  r.kind = RepairKind::MissedClaimable;
  r.flow = flow;
  r.row_id = row;
  r.payment_hash = hash;
  r.observed_status = flow == Flow::Apay ? "active" : "quoted";
  r.from = {r.observed_status};
  r.to = "claimable";
  r.outbox_action = flow == Flow::Apay ? "request_outbound_invoice" : "lightning_send_pay_outbound";
  r.claim_deadline_height = deadline;
  return r;
}

Repair missed_payment_sent(Flow flow, std::int64_t row, const std::string& hash,
                           const std::string& preimage = std::string(64, 'b')) {
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
  r.preimage = preimage;
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

using testing::message_of;

const std::vector<RequiredJob> kApayJobs{{"claimable", "request_outbound_invoice"},
                                         {"outbound_claimed", "claim_inbound_invoice"}};
const std::vector<RequiredJob> kRelayJobs{{"claimable", "lightning_send_pay_outbound"}};

// Every test here is about PostgreSQL: on the suite's SQLite run it skips itself before any
// database is made (sqlite_store_test.cpp covers that backend).
class PostgresOnly : public ::testing::Test {
 protected:
  void SetUp() override {
    if (suite_backend() != TestBackend::Postgres) {
      GTEST_SKIP() << "PostgreSQL backend only; this run covers "
                   << lsp_sweeper::testing::to_string(suite_backend());
    }
  }
};

// A fresh LSP database with one order, and a backend on it as the sweeper's own role, as in
// production.
class StoreTest : public PostgresOnly {
 protected:
  void SetUp() override {
    PostgresOnly::SetUp();
    if (IsSkipped()) return;
    db_ = std::make_unique<TestDatabase>(TestBackend::Postgres, options());
    order_id_ = db().query_value<std::int64_t>(
        "INSERT INTO async_orders (peer_pubkey, status) VALUES ('02peer', 'active') "
        "RETURNING order_id");
  }

  virtual TestDatabaseOptions options() const { return {}; }

  TestDatabase& db() { return *db_; }

  // Opens the backend as the sweeper's role and begins a run, which audit rows refer to.
  Backend open_with_run(const std::string& run_id = "run-1") {
    Backend backend = open_backend(db().uri_as_sweeper(), Access::ReadWrite);
    backend.ledger->begin_run(run_id, false);
    return backend;
  }

  // Records are seeded with every NOT NULL column of the LSP's DDL, and updated_at in the
  // past, so a test can tell whether it moved. Each returns the row's id.
  std::int64_t seed_apay(const std::string& hash, const std::string& status,
                         std::int64_t amount = 5000) {
    return db().query_value<std::int64_t>(
        "INSERT INTO async_rotating_invoices (order_id, invoice_slot, hash_index, payment_hash, "
        "amount_msat, expires_at, status, updated_at) VALUES ($1, (SELECT COALESCE(max("
        "invoice_slot), 0) + 1 FROM async_rotating_invoices), 0, $2, $3, now() + interval "
        "'1 day', $4, '2000-01-01') RETURNING id",
        order_id_, hash, amount, status);
  }
  std::int64_t seed_relay(const std::string& hash, const std::string& status,
                          std::int64_t amount = 7000) {
    return db().query_value<std::int64_t>(
        "INSERT INTO lightning_send_mappings (payment_hash, outbound_invoice, "
        "outbound_amount_msat, payee_pubkey, inbound_invoice, inbound_amount_msat, status, "
        "expires_at, updated_at) VALUES ($1, 'lnbc-out', $2::bigint - 100, '03bb', 'lnbc-in', "
        "$2::bigint, $3, now() + interval '1 day', '2000-01-01') RETURNING id",
        hash, amount, status);
  }
  void seed_job(const std::string& hash, const std::string& action,
                const std::string& status = "pending") {
    db().exec(
        "INSERT INTO async_rotating_invoice_outbox (payment_hash, action, status) "
        "VALUES ($1, $2, $3)",
        hash, action, status);
  }

  std::string status_of(const std::string& table, std::int64_t id) {
    return db().query_value<std::string>("SELECT status FROM " + table + " WHERE id = $1", id);
  }
  int jobs_for(const std::string& hash) {
    return db().query_value<int>(
        "SELECT count(*) FROM async_rotating_invoice_outbox WHERE payment_hash = $1", hash);
  }
  int audit_rows(const std::string& hash, bool applied) {
    return db().query_value<int>(
        "SELECT count(*) FROM lsp_sweeper.actions WHERE payment_hash = $1 AND applied = $2", hash,
        applied);
  }

  // The outbox holds exactly one job for `hash`, new and of `action`.
  void expect_one_new_job(const std::string& hash, const std::string& action) {
    EXPECT_EQ(db().query_value<int>("SELECT count(*) FROM async_rotating_invoice_outbox WHERE "
                                    "payment_hash = $1 AND action = $2 AND status = 'pending' AND "
                                    "attempts = 0 AND available_at <= now()",
                                    hash, action),
              1)
        << hash;
    EXPECT_EQ(jobs_for(hash), 1) << hash;
  }

  // Waits until some session of the test database waits for a lock, so a race test really
  // races; false after 10 seconds.
  bool wait_until_blocked() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (db().query_value<int>("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                "current_database() AND wait_event_type = 'Lock'") > 0) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // `count` active APay records with per-row slots 1..count; their (id, hash) in slot order.
  std::vector<std::pair<std::int64_t, std::string>> seed_many_active(int count) {
    db().exec(
        "INSERT INTO async_rotating_invoices (order_id, invoice_slot, hash_index, payment_hash, "
        "amount_msat, expires_at, status) SELECT $1, i, i, encode(sha256(i::text::bytea), "
        "'hex'), 5000, now() + interval '1 day', 'active' FROM generate_series(1, $2) AS i",
        order_id_, count);
    std::vector<std::pair<std::int64_t, std::string>> rows;
    std::istringstream text(
        db().rows_text("SELECT id, payment_hash FROM async_rotating_invoices ORDER BY "
                       "invoice_slot"));
    std::int64_t id = 0;
    std::string hash;
    while (text >> id >> hash) rows.emplace_back(id, hash);
    return rows;
  }

  std::unique_ptr<TestDatabase> db_;
  std::int64_t order_id_ = 0;
};

// Each group of tests under its own name (all start with "Store").
using StoreMigrate = StoreTest;
using StoreOpen = StoreTest;
using StoreRecords = StoreTest;
using StoreApply = StoreTest;
using StoreRace = StoreTest;
using StoreLedger = StoreTest;
using StoreReadOnly = StoreTest;
using StoreRole = StoreTest;

// An LSP on its own PostgreSQL branch: no lightning_send_mappings.
class StoreWithoutRelay : public StoreTest {
 protected:
  TestDatabaseOptions options() const override { return {.relay = false}; }
};

// --- The schema -------------------------------------------------------------------------------

TEST(StoreSchemaCopy, LspDdlCopyEqualsSharedByteForByte) {
  if (suite_backend() != TestBackend::Postgres) GTEST_SKIP() << "PostgreSQL backend only";
  const std::string shared = shared_file("lsp/postgres-schema.sql");
  ASSERT_FALSE(shared.empty());
  EXPECT_EQ(read_source_file("sql/lsp/postgres-schema.sql"), shared);
}

// Columns and constraints of the LSP's tables, one line each.
std::string lsp_catalog(TestDatabase& db) {
  return db.rows_text(
             "SELECT table_name, column_name, data_type, is_nullable, COALESCE(column_default, "
             "'-') FROM information_schema.columns WHERE table_schema = 'public' ORDER BY "
             "table_name, ordinal_position") +
         db.rows_text(
             "SELECT conrelid::regclass::text, contype, pg_get_constraintdef(oid) FROM "
             "pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 3");
}

TEST_F(StoreWithoutRelay, MigrateWithLspSchemaCreatesTheLspTablesAsTheLspDoes) {
  const std::string from_shared_ddl = lsp_catalog(db());
  ASSERT_NE(from_shared_ddl.find("async_rotating_invoice_outbox"), std::string::npos);
  db().exec(
      "DROP TABLE onchain_send_mappings, lightning_receive_mappings, lnaddr_accounts, "
      "async_hash_pool, async_rotating_invoice_outbox, async_rotating_invoices, async_orders");
  ASSERT_EQ(lsp_catalog(db()), "");
  EXPECT_EQ(migrate(db().uri(), true), expected_schema_version());
  EXPECT_EQ(lsp_catalog(db()), from_shared_ddl);
  // Exactly as the LSP creates them: no relay table.
  EXPECT_TRUE(db().query_value<bool>("SELECT to_regclass('lightning_send_mappings') IS NULL"));
}

TEST_F(StoreMigrate, IsIdempotentAndKeepsTheLspsRows) {
  const std::string hash = hash_of("kept");
  const std::int64_t id = seed_apay(hash, "active");
  seed_relay(hash_of("relay"), "quoted");
  EXPECT_EQ(migrate(db().uri(), false), expected_schema_version());  // migrated once already
  EXPECT_EQ(migrate(db().uri(), true), expected_schema_version());
  EXPECT_EQ(migrate(db().uri(), true), expected_schema_version());
  EXPECT_GE(expected_schema_version(), 4);
  EXPECT_EQ(db().rows_text("SELECT version FROM lsp_sweeper.schema_version ORDER BY version"),
            "1\n2\n3\n4\n");
  EXPECT_EQ(db().rows_text("SELECT id, payment_hash, status FROM async_rotating_invoices"),
            std::to_string(id) + " " + hash + " active\n");
  EXPECT_EQ(db().query_value<int>("SELECT count(*) FROM lightning_send_mappings"), 1);
  for (const char* table : {"lsp_sweeper.schema_version", "lsp_sweeper.runs", "lsp_sweeper.actions",
                            "lsp_sweeper.divergences"}) {
    EXPECT_TRUE(db().query_value<bool>("SELECT to_regclass($1) IS NOT NULL", std::string(table)))
        << table;
  }
  EXPECT_EQ(db().query_value<std::string>(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = "
                "'lsp_sweeper' AND table_name = 'actions' AND column_name = 'record_id'"),
            "bigint");
}

TEST_F(StoreMigrate, WithoutLspSchemaLeavesTheLspTablesAlone) {
  db().exec("DROP SCHEMA lsp_sweeper CASCADE; DROP TABLE async_rotating_invoice_outbox");
  EXPECT_EQ(migrate(db().uri(), false), expected_schema_version());
  EXPECT_TRUE(db().query_value<bool>("SELECT to_regclass('lsp_sweeper.actions') IS NOT NULL"));
  EXPECT_TRUE(
      db().query_value<bool>("SELECT to_regclass('async_rotating_invoice_outbox') IS NULL"));
}

TEST_F(StoreMigrate, ConcurrentMigratesSerialize) {
  db().exec("DROP SCHEMA lsp_sweeper CASCADE");
  std::vector<std::future<int>> migrations;
  for (int i = 0; i < 4; ++i) {
    migrations.push_back(std::async(std::launch::async, [&] { return migrate(db().uri(), true); }));
  }
  for (auto& m : migrations) EXPECT_EQ(m.get(), expected_schema_version());
  EXPECT_EQ(db().query_value<int>("SELECT count(*) FROM lsp_sweeper.schema_version"),
            expected_schema_version());
}

TEST_F(StoreMigrate, RefusesANewerSchema) {
  const int newer = expected_schema_version() + 1;
  db().exec("INSERT INTO lsp_sweeper.schema_version (version) VALUES ($1)", newer);
  EXPECT_EQ(message_of([&] { migrate(db().uri(), false); }),
            "database schema version " + std::to_string(newer) +
                " is newer than this lsp-sweeper supports (" +
                std::to_string(expected_schema_version()) + ")");
  EXPECT_EQ(db().query_value<int>("SELECT max(version) FROM lsp_sweeper.schema_version"), newer);
}

// --- Opening ----------------------------------------------------------------------------------

TEST_F(StoreOpen, ABackendOnTheLspsDatabaseHasBothFlows) {
  Backend backend = open_backend(db().uri_as_sweeper(), Access::ReadWrite);
  EXPECT_EQ(backend.kind, "postgresql");
  EXPECT_EQ(backend.records->flows(), (std::vector<Flow>{Flow::Apay, Flow::Relay}));
  ASSERT_NE(backend.applier, nullptr);
  ASSERT_NE(backend.ledger, nullptr);
}

TEST_F(StoreOpen, RefusesADatabaseNotMigrated) {
  db().exec("DROP SCHEMA lsp_sweeper CASCADE");
  for (Access access : {Access::ReadOnly, Access::ReadWrite}) {
    const std::string message = message_of([&] { open_backend(db().uri(), access); });
    EXPECT_NE(message.find("the sweeper's tables are not in " + redact_db_url(db().uri())),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("run `lsp-sweeper migrate"), std::string::npos) << message;
  }
}

TEST_F(StoreOpen, RefusesANewerSchemaNamingBothVersions) {
  const int newer = expected_schema_version() + 4;
  db().exec("INSERT INTO lsp_sweeper.schema_version (version) VALUES ($1)", newer);
  const std::string message =
      message_of([&] { open_backend(db().uri_as_sweeper(), Access::ReadWrite); });
  EXPECT_NE(message.find("is version " + std::to_string(newer)), std::string::npos) << message;
  EXPECT_NE(message.find("this build expects " + std::to_string(expected_schema_version())),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("upgrade lsp-sweeper"), std::string::npos) << message;
}

TEST_F(StoreOpen, RefusesAnOlderSchemaAskingForMigrate) {
  db().exec("DELETE FROM lsp_sweeper.schema_version WHERE version = $1", expected_schema_version());
  const std::string message =
      message_of([&] { open_backend(db().uri_as_sweeper(), Access::ReadOnly); });
  EXPECT_NE(message.find("is version " + std::to_string(expected_schema_version() - 1) +
                         ", this build expects " + std::to_string(expected_schema_version()) +
                         ": run `lsp-sweeper migrate`"),
            std::string::npos)
      << message;
}

TEST_F(StoreOpen, RefusesADatabaseWithoutTheLspsRecords) {
  db().exec("DROP TABLE async_rotating_invoices");
  const std::string message = message_of([&] { open_backend(db().uri(), Access::ReadOnly); });
  EXPECT_NE(message.find("async_rotating_invoices does not exist"), std::string::npos) << message;
}

// --- The LSP's records ------------------------------------------------------------------------

// Orders records by flow, then row, for lookups that promise no order.
std::vector<LspRecord> sorted(std::vector<LspRecord> records) {
  std::sort(records.begin(), records.end(), [](const LspRecord& a, const LspRecord& b) {
    return std::tie(a.flow, a.row_id) < std::tie(b.flow, b.row_id);
  });
  return records;
}

TEST_F(StoreRecords, RecordsForReturnsEveryRowOfBothFlowsWithTheirJobs) {
  const std::string twin = hash_of("twin"), relay = hash_of("relay");
  const std::int64_t terminal = seed_apay(twin, "failed");
  const std::int64_t live = seed_apay(twin, "claimable", 5000);
  const std::int64_t relay_id = seed_relay(relay, "quoted", 7000);
  db().exec("UPDATE lightning_send_mappings SET claim_deadline_height = 812");
  seed_job(twin, "request_outbound_invoice", "processing");
  seed_job(twin, "claim_inbound_invoice", "pending");
  seed_job(relay, "lightning_send_pay_outbound", "done");

  Backend backend = open_backend(db().uri_as_sweeper(), Access::ReadOnly);
  const auto records = sorted(backend.records->records_for({twin, relay, hash_of("unknown")}));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].flow, Flow::Apay);
  EXPECT_EQ(records[0].row_id, terminal);
  EXPECT_EQ(records[0].payment_hash, twin);
  EXPECT_EQ(records[0].status, "failed");
  EXPECT_EQ(records[1].row_id, live);
  EXPECT_EQ(records[1].status, "claimable");
  EXPECT_EQ(records[1].amount_msat, 5000);
  EXPECT_EQ(records[1].claim_deadline_height, std::nullopt);
  const std::vector<OutboxJob> twin_jobs{{"request_outbound_invoice", "processing"},
                                         {"claim_inbound_invoice", "pending"}};
  EXPECT_EQ(records[0].outbox_jobs, twin_jobs);  // the jobs of the hash, for either row
  EXPECT_EQ(records[1].outbox_jobs, twin_jobs);
  EXPECT_EQ(records[2].flow, Flow::Relay);
  EXPECT_EQ(records[2].row_id, relay_id);
  EXPECT_EQ(records[2].status, "quoted");
  EXPECT_EQ(records[2].amount_msat, 7000);  // the inbound amount, not the outbound one
  EXPECT_EQ(records[2].claim_deadline_height, 812);
  EXPECT_EQ(records[2].outbox_jobs,
            (std::vector<OutboxJob>{{"lightning_send_pay_outbound", "done"}}));
}

TEST_F(StoreRecords, RecordsForNothingOrUnknownIsEmpty) {
  seed_apay(hash_of("apay"), "active");
  Backend backend = open_backend(db().uri_as_sweeper(), Access::ReadOnly);
  EXPECT_TRUE(backend.records->records_for({}).empty());
  EXPECT_TRUE(backend.records->records_for({hash_of("unknown")}).empty());
  EXPECT_EQ(backend.records->records_for({hash_of("apay")}).size(), 1u);
}

// SQLite reads where each APay hash's rows are once per run (the LSP's table has no index on
// payment_hash); rows the LSP adds or deletes after that must still be seen as they are.
TEST_F(StoreRecords, RecordsForSeesRowsAddedAndDeletedSinceItsFirstLookup) {
  const std::string a = hash_of("a"), b = hash_of("b");
  std::string upper = hash_of("upper");
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::int64_t first = seed_apay(a, "failed");
  seed_apay(upper, "active");
  Backend backend = open_backend(db().uri_as_sweeper(), Access::ReadOnly);
  ASSERT_EQ(backend.records->records_for({a}).size(), 1u);

  const std::int64_t twin = seed_apay(a, "active");  // the hash back from the pool
  const std::int64_t added = seed_apay(b, "active");
  db().exec("DELETE FROM async_rotating_invoices WHERE id = $1", first);
  const auto records = sorted(backend.records->records_for({a, b}));
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].row_id, twin);
  EXPECT_EQ(records[0].payment_hash, a);
  EXPECT_EQ(records[1].row_id, added);
  EXPECT_EQ(records[1].payment_hash, b);
  // A hash is compared as the text it is, as `=` does.
  EXPECT_TRUE(backend.records->records_for({hash_of("upper")}).empty());
  ASSERT_EQ(backend.records->records_for({upper}).size(), 1u);
  EXPECT_EQ(backend.records->records_for({upper}).at(0).payment_hash, upper);
}

TEST_F(StoreRecords, RecordsForTreatsHashesAsData) {
  seed_apay(hash_of("apay"), "active");
  Backend backend = open_backend(db().uri_as_sweeper(), Access::ReadOnly);
  const std::vector<std::string> hostile = {
      "' OR '1'='1",
      "x'); DROP TABLE async_rotating_invoices; --",
      "\"}, {\"" + hash_of("apay"),
      "a\\",
      "NULL",
      "{" + hash_of("apay") + "}",
  };
  EXPECT_TRUE(backend.records->records_for(hostile).empty());
  EXPECT_EQ(db().query_value<int>("SELECT count(*) FROM async_rotating_invoices"), 1);
}

TEST_F(StoreRecords, RecordsLackingOutboxJobPagesByIdWithJobsFilled) {
  std::vector<std::int64_t> lacking;
  for (int i = 0; i < 5; ++i) {
    const std::string h = hash_of("c" + std::to_string(i));
    const std::int64_t id = seed_apay(h, "claimable");
    if (i % 2 == 1) {
      seed_job(h, "request_outbound_invoice", "done");  // has its job, in any status
    } else {
      seed_job(h, "claim_inbound_invoice", "pending");  // a job of another action
      lacking.push_back(id);
    }
  }
  const std::string claimed = hash_of("outbound_claimed, only the earlier job");
  const std::int64_t claimed_id = seed_apay(claimed, "outbound_claimed");
  seed_job(claimed, "request_outbound_invoice", "done");
  lacking.push_back(claimed_id);
  seed_apay(hash_of("active"), "active");  // no job needed
  const std::string relay = hash_of("relay claimable"), settled = hash_of("relay settled");
  const std::int64_t relay_id = seed_relay(relay, "claimable");
  seed_job(relay, "some_other_action", "failed");
  seed_relay(settled, "settled");

  Backend backend = open_backend(db().uri_as_sweeper(), Access::ReadOnly);
  std::vector<std::size_t> pages;
  std::vector<std::int64_t> seen;
  backend.records->records_lacking_outbox_job(
      Flow::Apay, kApayJobs, 2, [&](std::vector<LspRecord>& page) {
        pages.push_back(page.size());
        for (const LspRecord& r : page) {
          seen.push_back(r.row_id);
          EXPECT_EQ(r.flow, Flow::Apay);
          if (r.row_id == claimed_id) {
            EXPECT_EQ(r.status, "outbound_claimed");
            EXPECT_EQ(r.outbox_jobs,
                      (std::vector<OutboxJob>{{"request_outbound_invoice", "done"}}));
          } else {
            EXPECT_EQ(r.status, "claimable");
            EXPECT_EQ(r.outbox_jobs,
                      (std::vector<OutboxJob>{{"claim_inbound_invoice", "pending"}}));
          }
        }
        return true;
      });
  EXPECT_EQ(pages, (std::vector<std::size_t>{2, 2}));
  EXPECT_EQ(seen, lacking);

  std::vector<LspRecord> relays;
  backend.records->records_lacking_outbox_job(
      Flow::Relay, kRelayJobs, 2, [&](std::vector<LspRecord>& page) {
        relays.insert(relays.end(), page.begin(), page.end());
        return true;
      });
  ASSERT_EQ(relays.size(), 1u);
  EXPECT_EQ(relays[0].row_id, relay_id);
  EXPECT_EQ(relays[0].amount_msat, 7000);
  EXPECT_EQ(relays[0].outbox_jobs, (std::vector<OutboxJob>{{"some_other_action", "failed"}}));

  // A sink that says stop gets no second page.
  int calls = 0;
  backend.records->records_lacking_outbox_job(Flow::Apay, kApayJobs, 1,
                                              [&](std::vector<LspRecord>&) {
                                                ++calls;
                                                return false;
                                              });
  EXPECT_EQ(calls, 1);

  // Once the jobs exist, nothing is left to page through.
  for (std::int64_t id : lacking) {
    const std::string h = db().query_value<std::string>(
        "SELECT payment_hash FROM async_rotating_invoices WHERE id = $1", id);
    seed_job(h, id == claimed_id ? "claim_inbound_invoice" : "request_outbound_invoice");
  }
  seed_job(relay, "lightning_send_pay_outbound");
  calls = 0;
  for (Flow flow : {Flow::Apay, Flow::Relay}) {
    backend.records->records_lacking_outbox_job(flow, flow == Flow::Apay ? kApayJobs : kRelayJobs,
                                                1000, [&](std::vector<LspRecord>&) {
                                                  ++calls;
                                                  return true;
                                                });
  }
  EXPECT_EQ(calls, 0);
}

TEST_F(StoreRecords, RecordsAwaitingNodeCountsAndPagesWithoutQuietStates) {
  std::vector<std::int64_t> awaiting;
  for (int i = 0; i < 5; ++i) {
    awaiting.push_back(seed_apay(hash_of("a" + std::to_string(i)), "active"));
    seed_apay(hash_of("q" + std::to_string(i)), "inbound_claimed");
  }
  seed_relay(hash_of("relay quiet"), "failed");
  Backend backend = open_backend(db().uri_as_sweeper(), Access::ReadOnly);
  const std::vector<std::string> quiet{"inbound_claimed", "failed"};
  const auto awaiting_of = [&](Flow flow, const std::vector<std::string>& q) {
    return backend.records->awaiting_node_since(flow, {q}, {})[0].records;
  };
  EXPECT_EQ(awaiting_of(Flow::Apay, quiet), 5);
  EXPECT_EQ(awaiting_of(Flow::Apay, {}), 10);
  EXPECT_EQ(awaiting_of(Flow::Relay, quiet), 0);
  std::vector<std::int64_t> seen;
  int pages = 0;
  backend.records->records_awaiting_node(Flow::Apay, quiet, 2, [&](std::vector<LspRecord>& p) {
    ++pages;
    for (const LspRecord& r : p) {
      seen.push_back(r.row_id);
      EXPECT_EQ(r.status, "active");
      EXPECT_TRUE(r.outbox_jobs.empty());
    }
    return pages < 2;  // stops after the second page
  });
  EXPECT_EQ(seen, std::vector<std::int64_t>(awaiting.begin(), awaiting.begin() + 4));
  seen.clear();
  backend.records->records_awaiting_node(Flow::Apay, quiet, 2, [&](std::vector<LspRecord>& p) {
    for (const LspRecord& r : p) seen.push_back(r.row_id);
    return true;
  });
  EXPECT_EQ(seen, awaiting);
}

// The LSP's PostgreSQL branch has no relay table: the backend reconciles APay alone and
// nothing of it fails.
TEST_F(StoreWithoutRelay, RelayFlowAbsentIsApayAloneAndNothingFails) {
  ASSERT_FALSE(db().has_relay());
  const std::string active = hash_of("active"), claimable = hash_of("claimable");
  const std::int64_t a = seed_apay(active, "active");
  const std::int64_t c = seed_apay(claimable, "claimable");
  Backend backend = open_with_run();
  EXPECT_EQ(backend.records->flows(), std::vector<Flow>{Flow::Apay});
  EXPECT_EQ(sorted(backend.records->records_for({active, claimable, hash_of("x")})).size(), 2u);
  EXPECT_EQ(backend.records->awaiting_node_since(Flow::Apay, {{"inbound_claimed"}}, {})[0].records,
            2);
  std::vector<std::int64_t> lacking;
  backend.records->records_lacking_outbox_job(Flow::Apay, kApayJobs, 10,
                                              [&](std::vector<LspRecord>& page) {
                                                for (const auto& r : page) {
                                                  lacking.push_back(r.row_id);
                                                }
                                                return true;
                                              });
  EXPECT_EQ(lacking, std::vector<std::int64_t>{c});

  std::vector<Repair> repairs{
      missed_claimable(Flow::Apay, a, active),
      missing_job(Flow::Apay, c, claimable, "claimable", "request_outbound_invoice")};
  backend.applier->apply(repairs, "run-1");
  EXPECT_TRUE(repairs[0].applied);
  EXPECT_TRUE(repairs[1].applied);
  EXPECT_EQ(status_of("async_rotating_invoices", a), "claimable");
  expect_one_new_job(claimable, "request_outbound_invoice");
  backend.ledger->record_divergences({}, true, {});
  backend.ledger->finish_run({"run-1", "ok", 0, "{}"});
  EXPECT_EQ(backend.ledger->recent_runs(1).at(0).status, "ok");

  const auto checks = check_database(db().uri_as_sweeper());
  EXPECT_TRUE(util::all_pass(checks));
  EXPECT_TRUE(std::any_of(checks.begin(), checks.end(), [](const util::Check& check) {
    return check.what == "LSP tables present" &&
           check.detail.find("no lightning_send_mappings") != std::string::npos;
  }));
}

// --- Applying repairs -------------------------------------------------------------------------

// Applies one repair (a batch of one) and returns whether it was applied.
bool apply_one(Backend& backend, Repair repair, const std::string& run_id = "run-1") {
  std::vector<Repair> batch{std::move(repair)};
  backend.applier->apply(batch, run_id);
  return batch[0].applied;
}

TEST_F(StoreApply, AppliesMissedClaimableApayWithItsJobAndAuditRow) {
  const std::string hash = hash_of("apay");
  const std::int64_t id = seed_apay(hash, "active");
  Backend backend = open_with_run();

  EXPECT_TRUE(apply_one(backend, missed_claimable(Flow::Apay, id, hash, 900)));

  EXPECT_TRUE(db().query_value<bool>(
      "SELECT status = 'claimable' AND claimable_at IS NOT NULL AND claim_deadline_height = 900 "
      "AND updated_at > '2000-01-01' FROM async_rotating_invoices WHERE id = $1",
      id));
  expect_one_new_job(hash, "request_outbound_invoice");
  EXPECT_EQ(db().rows_text("SELECT run_id, kind, flow, record_id, payment_hash, from_status, "
                           "to_status, outbox_action, applied FROM lsp_sweeper.actions"),
            "run-1 missed_claimable apay " + std::to_string(id) + " " + hash +
                " active claimable request_outbound_invoice t\n");
}

TEST_F(StoreApply, MissedClaimableApayKeepsTheLspsOwnValues) {
  const std::string hash = hash_of("apay");
  const std::int64_t id = seed_apay(hash, "active");
  db().exec(
      "UPDATE async_rotating_invoices SET claimable_at = '2001-02-03T04:05:06Z', "
      "claim_deadline_height = 777");
  Backend backend = open_with_run();

  EXPECT_TRUE(apply_one(backend, missed_claimable(Flow::Apay, id, hash, 900)));

  EXPECT_TRUE(db().query_value<bool>(
      "SELECT status = 'claimable' AND claimable_at = '2001-02-03T04:05:06Z' AND "
      "claim_deadline_height = 777 FROM async_rotating_invoices WHERE id = $1",
      id));
}

TEST_F(StoreApply, AppliesMissedClaimableRelay) {
  const std::string hash = hash_of("relay");
  const std::int64_t id = seed_relay(hash, "quoted");
  db().exec("UPDATE lightning_send_mappings SET claim_deadline_height = 777");
  Backend backend = open_with_run();

  EXPECT_TRUE(apply_one(backend, missed_claimable(Flow::Relay, id, hash, 900)));

  EXPECT_TRUE(db().query_value<bool>(
      "SELECT status = 'claimable' AND claim_deadline_height = 900 AND updated_at > "
      "'2000-01-01' FROM lightning_send_mappings WHERE id = $1",
      id));
  expect_one_new_job(hash, "lightning_send_pay_outbound");
  EXPECT_EQ(audit_rows(hash, true), 1);
  EXPECT_EQ(db().query_value<std::int64_t>("SELECT record_id FROM lsp_sweeper.actions"), id);
}

TEST_F(StoreApply, AppliesMissedPaymentSentApay) {
  const std::string preimage(64, '7');
  const std::string hash = hash_of("apay");
  const std::int64_t id = seed_apay(hash, "outbound_paid");
  db().exec("UPDATE async_rotating_invoices SET outbound_paid_at = '2002-01-01T00:00:00Z'");
  Backend backend = open_with_run();

  EXPECT_TRUE(apply_one(backend, missed_payment_sent(Flow::Apay, id, hash, preimage)));

  EXPECT_TRUE(db().query_value<bool>(
      "SELECT status = 'outbound_claimed' AND payment_preimage = $2 AND outbound_paid_at = "
      "'2002-01-01T00:00:00Z' AND updated_at > '2000-01-01' FROM async_rotating_invoices "
      "WHERE id = $1",
      id, preimage));
  expect_one_new_job(hash, "claim_inbound_invoice");
  EXPECT_EQ(audit_rows(hash, true), 1);
}

TEST_F(StoreApply, AppliesMissedPaymentSentRelayFromEitherState) {
  const std::string preimage(64, '8');
  const std::string pending = hash_of("pending"), paid = hash_of("paid");
  const std::int64_t pending_id = seed_relay(pending, "outbound_pending");
  const std::int64_t paid_id = seed_relay(paid, "outbound_paid");
  Backend backend = open_with_run();

  for (const auto& [id, hash] : {std::pair{pending_id, pending}, std::pair{paid_id, paid}}) {
    EXPECT_TRUE(apply_one(backend, missed_payment_sent(Flow::Relay, id, hash, preimage)));
    EXPECT_TRUE(db().query_value<bool>(
        "SELECT status = 'outbound_claimed' AND payment_preimage = $2 AND updated_at > "
        "'2000-01-01' FROM lightning_send_mappings WHERE id = $1",
        id, preimage));
    expect_one_new_job(hash, "lightning_send_claim_inbound");
    EXPECT_EQ(audit_rows(hash, true), 1);
  }
}

TEST_F(StoreApply, AddsAMissingOutboxJobOnlyWhileTheStateLasts) {
  const std::string hash = hash_of("apay");
  const std::int64_t id = seed_apay(hash, "claimable");
  Backend backend = open_with_run();
  const Repair repair = missing_job(Flow::Apay, id, hash, "claimable", "request_outbound_invoice");

  EXPECT_TRUE(apply_one(backend, repair));
  expect_one_new_job(hash, "request_outbound_invoice");
  EXPECT_TRUE(db().query_value<bool>(
      "SELECT status = 'claimable' AND updated_at = '2000-01-01' FROM async_rotating_invoices "
      "WHERE id = $1",
      id));
  EXPECT_FALSE(apply_one(backend, repair));  // the job exists now
  EXPECT_EQ(jobs_for(hash), 1);

  const std::string moved = hash_of("moved");
  const std::int64_t moved_id = seed_relay(moved, "outbound_pending");
  EXPECT_FALSE(apply_one(backend, missing_job(Flow::Relay, moved_id, moved, "claimable",
                                              "lightning_send_pay_outbound")));
  EXPECT_EQ(jobs_for(moved), 0);
  EXPECT_EQ(audit_rows(hash, true), 1);
  EXPECT_EQ(audit_rows(hash, false), 1);
  EXPECT_EQ(audit_rows(moved, false), 1);
}

TEST_F(StoreApply, ApplyingTwiceChangesNothingMore) {
  const std::string hash = hash_of("relay");
  const std::int64_t id = seed_relay(hash, "quoted");
  Backend backend = open_with_run();
  const Repair repair = missed_claimable(Flow::Relay, id, hash, 900);

  EXPECT_TRUE(apply_one(backend, repair));
  EXPECT_FALSE(apply_one(backend, repair));

  EXPECT_EQ(status_of("lightning_send_mappings", id), "claimable");
  expect_one_new_job(hash, "lightning_send_pay_outbound");
  EXPECT_EQ(audit_rows(hash, true), 1);
  EXPECT_EQ(audit_rows(hash, false), 1);
}

// Repairs of several transitions in one call, interleaved: each is judged on its own record,
// and `applied` lands on the right repair whatever order the batches ran in.
TEST_F(StoreApply, AppliesAMixedBatchEachRepairOnItsOwn) {
  const std::string preimage(64, '6');
  const std::string active = hash_of("active"), moved = hash_of("moved");
  const std::string pending = hash_of("relay pending"), paid = hash_of("relay paid");
  const std::string no_job = hash_of("claimable, no job"), claimed = hash_of("claimed, no job");
  const std::int64_t active_id = seed_apay(active, "active");
  const std::int64_t moved_id = seed_apay(moved, "claimable");  // the LSP moved it after the plan
  seed_job(moved, "request_outbound_invoice");
  const std::int64_t pending_id = seed_relay(pending, "outbound_pending");
  const std::int64_t paid_id = seed_relay(paid, "outbound_paid");
  const std::int64_t no_job_id = seed_apay(no_job, "claimable");
  const std::int64_t claimed_id = seed_apay(claimed, "outbound_claimed");
  Backend backend = open_with_run();

  std::vector<Repair> batch{
      missing_job(Flow::Apay, claimed_id, claimed, "outbound_claimed", "claim_inbound_invoice"),
      missed_claimable(Flow::Apay, active_id, active, 900),
      missed_payment_sent(Flow::Relay, pending_id, pending, preimage),
      missed_claimable(Flow::Apay, moved_id, moved, 900),
      missing_job(Flow::Apay, no_job_id, no_job, "claimable", "request_outbound_invoice"),
      missed_payment_sent(Flow::Relay, paid_id, paid, preimage),
  };
  backend.applier->apply(batch, "run-1");

  std::vector<bool> applied;
  for (const Repair& r : batch) applied.push_back(r.applied);
  EXPECT_EQ(applied, (std::vector<bool>{true, true, true, false, true, true}));
  EXPECT_EQ(status_of("async_rotating_invoices", active_id), "claimable");
  EXPECT_EQ(status_of("lightning_send_mappings", pending_id), "outbound_claimed");
  EXPECT_EQ(status_of("lightning_send_mappings", paid_id), "outbound_claimed");
  expect_one_new_job(active, "request_outbound_invoice");
  expect_one_new_job(pending, "lightning_send_claim_inbound");
  expect_one_new_job(paid, "lightning_send_claim_inbound");
  expect_one_new_job(no_job, "request_outbound_invoice");
  expect_one_new_job(claimed, "claim_inbound_invoice");
  EXPECT_EQ(jobs_for(moved), 1);  // the LSP's own, untouched
  EXPECT_EQ(db().query_value<int>("SELECT count(*) FROM lsp_sweeper.actions WHERE applied"), 5);
  EXPECT_EQ(audit_rows(moved, false), 1);
  // Each audit row names its own record.
  EXPECT_EQ(db().query_value<int>(
                "SELECT count(*) FROM lsp_sweeper.actions a WHERE a.record_id = CASE a.flow WHEN "
                "'apay' THEN (SELECT id FROM async_rotating_invoices r WHERE r.payment_hash = "
                "a.payment_hash) ELSE (SELECT id FROM lightning_send_mappings r WHERE "
                "r.payment_hash = a.payment_hash) END"),
            6);
}

// Counts the statements that write audit rows, each with its transaction and its row count.
void log_audit_statements(TestDatabase& db) {
  db.exec(R"(
    CREATE TABLE public.audit_statements (seq bigserial, txid bigint, audit_rows bigint);
    CREATE FUNCTION public.log_audit_statement() RETURNS trigger LANGUAGE plpgsql
      SECURITY DEFINER SET search_path = public AS $$
    BEGIN
      INSERT INTO public.audit_statements (txid, audit_rows)
        SELECT txid_current(), count(*) FROM new_rows;
      RETURN NULL;
    END $$;
    CREATE TRIGGER audit_statements AFTER INSERT ON lsp_sweeper.actions
      REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
      EXECUTE FUNCTION public.log_audit_statement();
  )");
}

// More repairs than one statement takes: every one is applied, once, with its own value, in
// three statements (1000, 1000, 500), each its own transaction.
TEST_F(StoreApply, AppliesA2500RepairBatchInThreeStatementsInFullAndOnce) {
  constexpr int kRepairs = 2500;
  const auto rows = seed_many_active(kRepairs);
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(kRepairs));
  std::vector<Repair> batch;
  for (int i = 0; i < kRepairs; ++i) {
    batch.push_back(missed_claimable(Flow::Apay, rows[i].first, rows[i].second, 1001 + i));
  }
  log_audit_statements(db());
  Backend backend = open_with_run();
  backend.applier->apply(batch, "run-1");

  EXPECT_TRUE(std::all_of(batch.begin(), batch.end(), [](const Repair& r) { return r.applied; }));
  EXPECT_EQ(db().rows_text("SELECT audit_rows FROM audit_statements ORDER BY seq"),
            "1000\n1000\n500\n");
  EXPECT_EQ(db().query_value<int>("SELECT count(DISTINCT txid) FROM audit_statements"), 3);
  EXPECT_EQ(db().query_value<int>(
                "SELECT count(*) FROM async_rotating_invoices WHERE status = 'claimable' AND "
                "claim_deadline_height = 1000 + invoice_slot"),
            kRepairs);
  EXPECT_EQ(db().query_value<int>("SELECT count(DISTINCT payment_hash) FROM "
                                  "async_rotating_invoice_outbox WHERE action = "
                                  "'request_outbound_invoice'"),
            kRepairs);
  EXPECT_EQ(db().query_value<int>("SELECT count(*) FROM async_rotating_invoice_outbox"), kRepairs);
  EXPECT_EQ(db().query_value<int>(
                "SELECT count(*) FROM lsp_sweeper.actions a JOIN async_rotating_invoices r ON "
                "r.id = a.record_id AND r.payment_hash = a.payment_hash WHERE a.applied"),
            kRepairs);

  backend.applier->apply(batch, "run-1");  // again: nothing more
  EXPECT_TRUE(std::none_of(batch.begin(), batch.end(), [](const Repair& r) { return r.applied; }));
  EXPECT_EQ(db().query_value<int>("SELECT count(*) FROM async_rotating_invoice_outbox"), kRepairs);
  EXPECT_EQ(db().query_value<int>("SELECT count(*) FROM audit_statements"), 6);
}

// A batch whose statement fails is rolled back whole (records, jobs, audit rows); the batch
// committed before it stays, with `applied` set, and the error names the failing batch.
TEST_F(StoreApply, AFailingBatchRollsBackWholeAndEarlierBatchesStay) {
  const auto rows = seed_many_active(1200);
  std::vector<Repair> repairs;
  for (const auto& [id, hash] : rows) repairs.push_back(missed_claimable(Flow::Apay, id, hash));
  // The audit row of repair 1100 (in the second batch) fails.
  db().exec(R"(
    CREATE FUNCTION public.fail_one() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'injected failure'; END $$;
  )");
  db().exec(
      "CREATE TRIGGER fail_one BEFORE INSERT ON lsp_sweeper.actions FOR EACH ROW WHEN "
      "(NEW.payment_hash = '" +
      repairs[1100].payment_hash + "') EXECUTE FUNCTION public.fail_one()");
  Backend backend = open_with_run();
  const std::string message = message_of([&] { backend.applier->apply(repairs, "run-1"); });
  EXPECT_NE(message.find("apply missed_claimable apay " + repairs[1000].payment_hash +
                         " and 199 more: update, outbox job and audit row: "),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("injected failure"), std::string::npos) << message;
  EXPECT_EQ(
      std::count_if(repairs.begin(), repairs.end(), [](const Repair& r) { return r.applied; }),
      1000);
  EXPECT_TRUE(repairs[999].applied);
  EXPECT_FALSE(repairs[1000].applied);
  EXPECT_EQ(db().query_value<int>(
                "SELECT count(*) FROM async_rotating_invoices WHERE status = 'claimable'"),
            1000);
  EXPECT_EQ(db().query_value<std::int64_t>(
                "SELECT max(invoice_slot) FROM async_rotating_invoices WHERE status = "
                "'claimable'"),
            1000);
  EXPECT_EQ(db().query_value<int>("SELECT count(*) FROM async_rotating_invoice_outbox"), 1000);
  EXPECT_EQ(db().query_value<int>("SELECT count(*) FROM lsp_sweeper.actions"), 1000);
}

TEST_F(StoreApply, RecordAlreadyMovedGetsNoJob) {
  const std::string hash = hash_of("apay");
  const std::int64_t id = seed_apay(hash, "claimable");  // planned active; the LSP moved it
  Backend backend = open_with_run();

  EXPECT_FALSE(apply_one(backend, missed_claimable(Flow::Apay, id, hash, 900)));

  EXPECT_EQ(status_of("async_rotating_invoices", id), "claimable");
  EXPECT_TRUE(db().query_value<bool>(
      "SELECT claim_deadline_height IS NULL AND updated_at = '2000-01-01' FROM "
      "async_rotating_invoices WHERE id = $1",
      id));
  EXPECT_EQ(jobs_for(hash), 0);
  EXPECT_EQ(audit_rows(hash, false), 1);
}

TEST_F(StoreApply, CallbackThatLandedFirstWins) {
  const std::string preimage(64, '9');
  const std::string hash = hash_of("apay");
  const std::int64_t id = seed_apay(hash, "outbound_paid");
  Backend backend = open_with_run();
  // The LSP's own payment_sent handler, between the plan and the apply.
  db().exec(
      "UPDATE async_rotating_invoices SET status = 'outbound_claimed', payment_preimage = $1 "
      "WHERE id = $2",
      preimage, id);
  seed_job(hash, "claim_inbound_invoice");

  EXPECT_FALSE(apply_one(backend, missed_payment_sent(Flow::Apay, id, hash, preimage)));
  expect_one_new_job(hash, "claim_inbound_invoice");
  EXPECT_EQ(audit_rows(hash, false), 1);
}

// A released reservation leaves a terminal row beside a live one of the same hash: a repair by
// row id touches only its own row, even when its `from` would match the other; one naming the
// terminal row, or a row of another hash, touches nothing.
TEST_F(StoreApply, RepairByRowLeavesATerminalTwinAlone) {
  const std::string h = hash_of("twin");
  const std::int64_t terminal = seed_apay(h, "active");
  db().exec("UPDATE async_rotating_invoices SET status = 'failed' WHERE id = $1", terminal);
  const std::int64_t live = seed_apay(h, "active");
  const std::string other = hash_of("other");
  const std::int64_t other_id = seed_apay(other, "active");
  Backend backend = open_with_run();

  Repair on_terminal = missed_claimable(Flow::Apay, terminal, h);
  Repair wrong_hash = missed_claimable(Flow::Apay, other_id, h);  // the row of another hash
  EXPECT_FALSE(apply_one(backend, on_terminal));
  EXPECT_FALSE(apply_one(backend, wrong_hash));
  EXPECT_EQ(jobs_for(h), 0);

  Repair repair = missed_claimable(Flow::Apay, live, h);
  repair.from = {"active", "failed"};
  EXPECT_TRUE(apply_one(backend, repair));
  EXPECT_EQ(db().rows_text("SELECT id, status, claim_deadline_height IS NULL, updated_at = "
                           "'2000-01-01' FROM async_rotating_invoices ORDER BY id"),
            std::to_string(terminal) + " failed t t\n" + std::to_string(live) + " claimable f f\n" +
                std::to_string(other_id) + " active t t\n");
  expect_one_new_job(h, "request_outbound_invoice");
  EXPECT_EQ(db().rows_text("SELECT record_id, applied FROM lsp_sweeper.actions ORDER BY id"),
            std::to_string(terminal) + " f\n" + std::to_string(other_id) + " f\n" +
                std::to_string(live) + " t\n");
}

// A job of the repair's action the LSP will never run again (done, failed) makes the
// transition useless: the record is left for a person. A job still to run does not.
TEST_F(StoreApply, AStaleDoneOrFailedJobBlocksTheRepair) {
  const std::string done = hash_of("done"), failed = hash_of("failed");
  const std::string waiting = hash_of("pending job"), other = hash_of("other action done");
  const std::int64_t a = seed_apay(done, "outbound_paid");
  const std::int64_t b = seed_apay(failed, "outbound_paid");
  const std::int64_t c = seed_apay(waiting, "outbound_paid");
  const std::int64_t d = seed_apay(other, "outbound_paid");
  seed_job(done, "claim_inbound_invoice", "done");
  seed_job(failed, "claim_inbound_invoice", "failed");
  seed_job(waiting, "claim_inbound_invoice", "pending");
  seed_job(other, "request_outbound_invoice", "done");
  Backend backend = open_with_run();
  std::vector<Repair> repairs{
      missed_payment_sent(Flow::Apay, a, done), missed_payment_sent(Flow::Apay, b, failed),
      missed_payment_sent(Flow::Apay, c, waiting), missed_payment_sent(Flow::Apay, d, other)};
  backend.applier->apply(repairs, "run-1");
  EXPECT_FALSE(repairs[0].applied);
  EXPECT_FALSE(repairs[1].applied);
  EXPECT_TRUE(repairs[2].applied);
  EXPECT_TRUE(repairs[3].applied);
  EXPECT_EQ(db().rows_text("SELECT status, payment_preimage IS NULL FROM "
                           "async_rotating_invoices ORDER BY id"),
            "outbound_paid t\noutbound_paid t\noutbound_claimed f\noutbound_claimed f\n");
  EXPECT_EQ(db().rows_text("SELECT payment_hash, action, status FROM "
                           "async_rotating_invoice_outbox ORDER BY id"),
            done + " claim_inbound_invoice done\n" + failed + " claim_inbound_invoice failed\n" +
                waiting + " claim_inbound_invoice pending\n" + other +
                " request_outbound_invoice done\n" + other + " claim_inbound_invoice pending\n");
  EXPECT_EQ(db().rows_text("SELECT applied FROM lsp_sweeper.actions ORDER BY record_id"),
            "f\nf\nt\nt\n");
}

TEST_F(StoreApply, RefusesARepairWithoutItsValueBeforeAnyWrite) {
  const std::string hash = hash_of("apay");
  const std::int64_t id = seed_apay(hash, "active");
  Backend backend = open_with_run();
  Repair no_deadline = missed_claimable(Flow::Apay, id, hash, 900);
  no_deadline.claim_deadline_height.reset();
  Repair no_preimage = missed_payment_sent(Flow::Apay, id, hash);
  no_preimage.preimage.reset();

  for (const Repair& bad : {no_deadline, no_preimage}) {
    std::vector<Repair> repairs{missed_claimable(Flow::Apay, id, hash), bad};
    const std::string message = message_of([&] { backend.applier->apply(repairs, "run-1"); });
    EXPECT_NE(message.find("apply " + std::string(plan::to_string(bad.kind)) + " apay " + hash),
              std::string::npos)
        << message;
    EXPECT_FALSE(repairs[0].applied);
  }
  EXPECT_EQ(status_of("async_rotating_invoices", id), "active");
  EXPECT_EQ(jobs_for(hash), 0);
  EXPECT_EQ(db().query_value<int>("SELECT count(*) FROM lsp_sweeper.actions"), 0);
}

// An apply whose audit row cannot be written (no such run) leaves the record and the outbox
// as they were: UPDATE, job and audit row are one statement, hence one transaction.
TEST_F(StoreApply, FailedApplyRollsBackAndSaysWhere) {
  const std::string hash = hash_of("apay");
  const std::int64_t id = seed_apay(hash, "active");
  Backend backend = open_backend(db().uri_as_sweeper(), Access::ReadWrite);
  const std::string message = message_of(
      [&] { apply_one(backend, missed_claimable(Flow::Apay, id, hash), "never-begun"); });
  EXPECT_EQ(message.rfind(
                "apply missed_claimable apay " + hash + ": update, outbox job and audit row: ", 0),
            0u)
      << message;
  EXPECT_NE(message.find("actions"), std::string::npos) << message;
  EXPECT_EQ(status_of("async_rotating_invoices", id), "active");
  EXPECT_EQ(jobs_for(hash), 0);

  // The connection is still usable after the failed transaction.
  backend.ledger->begin_run("run-1", false);
  EXPECT_TRUE(apply_one(backend, missed_claimable(Flow::Apay, id, hash)));
}

// A database whose default isolation is serializable: the sweeper's session still applies (it
// sets READ COMMITTED for itself, the level apply's reasoning about callbacks holds under).
TEST_F(StoreApply, SerializableDatabaseDefaultStillApplies) {
  const std::string hash = hash_of("apay");
  const std::int64_t id = seed_apay(hash, "active");
  db().exec("ALTER DATABASE " + db().name() +
            " SET default_transaction_isolation = 'serializable'");
  pqxx::connection other(db().uri_as_sweeper());
  {
    pqxx::nontransaction txn(other);
    ASSERT_EQ(txn.exec1("SHOW default_transaction_isolation")[0].as<std::string>(), "serializable");
  }
  Backend backend = open_with_run();
  EXPECT_TRUE(apply_one(backend, missed_claimable(Flow::Apay, id, hash)));
  EXPECT_EQ(status_of("async_rotating_invoices", id), "claimable");
  expect_one_new_job(hash, "request_outbound_invoice");
}

// --- Races with the LSP's own transactions ----------------------------------------------------

// The callback's transaction is still open when the sweeper's UPDATE reaches the row: the
// UPDATE waits for it, then re-checks its condition against the committed row and changes
// nothing. This holds even on a database whose default isolation level is stricter.
TEST_F(StoreRace, ConcurrentCallbackInFlightWins) {
  const std::string hash = hash_of("relay");
  const std::int64_t id = seed_relay(hash, "quoted");
  db().exec("ALTER DATABASE " + db().name() +
            " SET default_transaction_isolation = 'serializable'");
  Backend strict = open_with_run();  // a session that starts with that default

  pqxx::connection lsp(db().uri());
  pqxx::work callback(lsp);
  callback.exec_params(
      "UPDATE lightning_send_mappings SET status = 'claimable', "
      "claim_deadline_height = 901 WHERE id = $1 AND status = 'quoted'",
      id);
  callback.exec_params(
      "INSERT INTO async_rotating_invoice_outbox (payment_hash, action, status) "
      "VALUES ($1, 'lightning_send_pay_outbound', 'pending') ON CONFLICT DO NOTHING",
      hash);

  auto applied = std::async(std::launch::async, [&] {
    return apply_one(strict, missed_claimable(Flow::Relay, id, hash, 900));
  });
  const bool waited = wait_until_blocked();
  callback.commit();  // either way: apply() would otherwise wait for it forever
  ASSERT_TRUE(waited) << "apply never waited for the callback's row lock";

  EXPECT_FALSE(applied.get());
  EXPECT_TRUE(
      db().query_value<bool>("SELECT status = 'claimable' AND claim_deadline_height = 901 FROM "
                             "lightning_send_mappings WHERE id = $1",
                             id));
  expect_one_new_job(hash, "lightning_send_pay_outbound");
  EXPECT_EQ(audit_rows(hash, false), 1);
}

// The LSP moves the record on (its job ran) while the sweeper adds the job it thought
// missing: the sweeper's check waits for the move, sees the new state, and adds nothing.
TEST_F(StoreRace, MissingOutboxJobRacesTheLspMovingOn) {
  const std::string hash = hash_of("apay");
  const std::int64_t id = seed_apay(hash, "claimable");
  Backend backend = open_with_run();

  pqxx::connection lsp(db().uri());
  pqxx::work move_on(lsp);
  move_on.exec_params(
      "UPDATE async_rotating_invoices SET status = 'outbound_requested' WHERE id = $1", id);

  auto applied = std::async(std::launch::async, [&] {
    return apply_one(backend,
                     missing_job(Flow::Apay, id, hash, "claimable", "request_outbound_invoice"));
  });
  const bool waited = wait_until_blocked();
  move_on.commit();
  ASSERT_TRUE(waited) << "apply never waited for the LSP's row lock";

  EXPECT_FALSE(applied.get());
  EXPECT_EQ(jobs_for(hash), 0);
  EXPECT_EQ(audit_rows(hash, false), 1);
}

// --- Read-only use ----------------------------------------------------------------------------

// A dry run or `history` opens ReadOnly: every read works, every write is refused by the server
// (default_transaction_read_only), and not a row changes.
TEST_F(StoreReadOnly, ReadsEverythingAndRefusesEveryWrite) {
  const std::string h = hash_of("ro");
  const std::int64_t id = seed_apay(h, "active");
  {
    Backend backend = open_with_run();
    backend.ledger->record_divergences(
        {{plan::DivergenceKind::AmountMismatch, Flow::Apay, h, "amount differs", true}}, true, {});
    backend.ledger->finish_run({"run-1", "ok", 0, "{}"});
  }
  const auto snapshot = [&] {
    return db().rows_text("SELECT * FROM async_rotating_invoices ORDER BY id") +
           db().rows_text("SELECT * FROM async_rotating_invoice_outbox ORDER BY id") +
           db().rows_text("SELECT * FROM lsp_sweeper.runs ORDER BY run_id") +
           db().rows_text("SELECT * FROM lsp_sweeper.actions ORDER BY id") +
           db().rows_text("SELECT * FROM lsp_sweeper.divergences ORDER BY id");
  };
  const std::string before = snapshot();

  Backend backend = open_backend(db().uri_as_sweeper(), Access::ReadOnly);
  EXPECT_EQ(backend.records->records_for({h}).size(), 1u);
  EXPECT_EQ(backend.records->awaiting_node_since(Flow::Apay, {{}}, {})[0].records, 1);
  int pages = 0;
  backend.records->records_awaiting_node(Flow::Apay, {}, 10, [&](std::vector<LspRecord>&) {
    ++pages;
    return true;
  });
  EXPECT_EQ(pages, 1);
  backend.records->records_lacking_outbox_job(Flow::Apay, kApayJobs, 10,
                                              [](std::vector<LspRecord>&) { return true; });
  const auto open = backend.ledger->open_divergences();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(backend.ledger->recent_runs(5).size(), 1u);

  std::vector<Repair> repairs{missed_claimable(Flow::Apay, id, h)};
  std::vector<Repair> replayed = repairs;
  replayed[0].delivery = plan::Delivery{plan::DeliveryOutcome::Applied, 200, "", 1};
  for (const std::string& message : {
           message_of([&] { backend.applier->apply(repairs, "run-1"); }),
           message_of([&] { backend.ledger->record_deliveries(replayed, "run-1"); }),
           message_of([&] { backend.ledger->begin_run("run-2", true); }),
           message_of([&] {
             backend.ledger->finish_run({"run-1", "failed", 1, ""});
           }),
           message_of([&] { backend.ledger->record_divergences({}, true, {}); }),
           message_of([&] { backend.ledger->mark_alerted({open[0].id}); }),
       }) {
    EXPECT_NE(message.find("read-only transaction"), std::string::npos) << message;
  }
  EXPECT_FALSE(repairs[0].applied);
  EXPECT_EQ(snapshot(), before);
}

// --- The ledger -------------------------------------------------------------------------------

TEST_F(StoreLedger, RecordsARunAndSummarisesIt) {
  Backend backend = open_backend(db().uri_as_sweeper(), Access::ReadWrite);
  backend.ledger->begin_run("run-1", false);
  EXPECT_TRUE(db().query_value<bool>(
      "SELECT status = 'running' AND NOT dry_run AND finished_at IS NULL AND report IS NULL "
      "FROM lsp_sweeper.runs WHERE run_id = 'run-1'"));

  backend.ledger->finish_run(
      {"run-1", "divergences", 3,
       R"({"node":{"payments_scanned":42},"summary":{"repairs_applied":2,"divergences":1}})"});
  EXPECT_TRUE(db().query_value<bool>(
      "SELECT status = 'divergences' AND exit_code = 3 AND finished_at >= started_at AND "
      "(report #>> '{summary,repairs_applied}')::int = 2 FROM lsp_sweeper.runs WHERE run_id = "
      "'run-1'"));

  backend.ledger->begin_run("run-2", true);
  backend.ledger->finish_run({"run-2", "failed", 1, ""});
  EXPECT_TRUE(db().query_value<bool>(
      "SELECT dry_run AND report IS NULL FROM lsp_sweeper.runs WHERE run_id = 'run-2'"));
  backend.ledger->begin_run("run-3", false);

  EXPECT_THROW(backend.ledger->begin_run("run-1", false), StoreError);  // run ids are unique
  EXPECT_THROW(backend.ledger->finish_run({"no-such-run", "ok", 0, "{}"}), StoreError);
  EXPECT_THROW(backend.ledger->finish_run({"run-3", "ok", 0, "not json"}), StoreError);

  const auto runs = backend.ledger->recent_runs(10);
  ASSERT_EQ(runs.size(), 3u);
  const auto find = [&](const std::string& run_id) {
    for (const RunSummary& run : runs) {
      if (run.run_id == run_id) return run;
    }
    ADD_FAILURE() << "no run " << run_id;
    return RunSummary{};
  };
  const RunSummary first = find("run-1");
  EXPECT_EQ(first.status, "divergences");
  EXPECT_EQ(first.exit_code, 3);
  ASSERT_TRUE(first.duration_seconds.has_value());
  EXPECT_GE(*first.duration_seconds, 0.0);
  EXPECT_EQ(first.scanned, 42);
  EXPECT_EQ(first.repaired, 2);
  EXPECT_EQ(first.divergences, 1);
  EXPECT_NEAR(static_cast<double>(first.started_at), static_cast<double>(std::time(nullptr)), 5);
  const RunSummary failed = find("run-2");
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_FALSE(failed.scanned.has_value());
  const RunSummary running = find("run-3");
  EXPECT_EQ(running.status, "running");
  EXPECT_FALSE(running.duration_seconds.has_value());
  EXPECT_FALSE(running.exit_code.has_value());
  EXPECT_EQ(backend.ledger->recent_runs(1).size(), 1u);
}

TEST_F(StoreLedger, DivergencesOpenRefreshResolveAndAlert) {
  Backend backend = open_backend(db().uri_as_sweeper(), Access::ReadWrite);
  const plan::Divergence amount{plan::DivergenceKind::AmountMismatch, Flow::Apay, hash_of("a"),
                                "amount differs", true};
  const plan::Divergence malformed{plan::DivergenceKind::MalformedPayment, std::nullopt, "zz",
                                   "bad hex", true};
  const plan::Divergence kept{plan::DivergenceKind::NodeLegFailed, Flow::Relay, hash_of("k"),
                              "failed", true};

  auto first = backend.ledger->record_divergences({amount, malformed, kept}, true, {});
  ASSERT_EQ(first.seen.size(), 3u);
  EXPECT_TRUE(first.seen[0].is_new && first.seen[1].is_new && first.seen[2].is_new);
  EXPECT_EQ(first.seen[0].divergence.payment_hash, amount.payment_hash);
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
  EXPECT_EQ(open[0].divergence.detail, "amount still differs");
  EXPECT_FALSE(open[1].last_alerted_at.has_value());
  EXPECT_EQ(open[1].divergence.kind, plan::DivergenceKind::NodeLegFailed);
  EXPECT_EQ(open[1].divergence.flow, Flow::Relay);
  EXPECT_LE(open[0].first_seen_at, open[0].last_seen_at);

  // A divergence seen again after it was resolved is a new episode.
  auto third = backend.ledger->record_divergences({malformed}, false, {});
  ASSERT_EQ(third.seen.size(), 1u);
  EXPECT_TRUE(third.seen[0].is_new);
  EXPECT_NE(third.seen[0].id, first.seen[1].id);
  EXPECT_EQ(db().query_value<int>(
                "SELECT count(*) FROM lsp_sweeper.divergences WHERE kind = 'malformed_payment'"),
            2);
  EXPECT_EQ(db().query_value<int>("SELECT count(*) FROM lsp_sweeper.divergences WHERE kind = "
                                  "'malformed_payment' AND resolved_at IS NULL AND flow IS NULL"),
            1);
}

TEST_F(StoreLedger, SweepLockExcludesASecondBackendUntilTheFirstIsDestroyed) {
  auto first = std::make_unique<Backend>(open_backend(db().uri_as_sweeper(), Access::ReadWrite));
  Backend second = open_backend(db().uri_as_sweeper(), Access::ReadWrite);
  EXPECT_TRUE(first->ledger->try_lock_sweep());
  EXPECT_TRUE(first->ledger->try_lock_sweep());  // already held by this backend
  EXPECT_FALSE(second.ledger->try_lock_sweep());
  first.reset();
  // The server releases a session lock once it sees the connection closed.
  bool taken = false;
  for (int i = 0; i < 200 && !taken; ++i) {
    taken = second.ledger->try_lock_sweep();
    if (!taken) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(taken);
}

// --- The sweeper's role -----------------------------------------------------------------------

// sql/roles/lsp_sweeper_role.sql grants what the sweep uses (every test above runs as that
// role) and nothing more: each statement here is one the sweeper never needs.
TEST_F(StoreRole, HoldsNothingBeyondWhatTheSweepNeeds) {
  pqxx::connection sweeper(db().uri_as_sweeper());
  {
    pqxx::nontransaction txn(sweeper);
    EXPECT_EQ(txn.exec1("SELECT current_user")[0].as<std::string>(), "lsp_sweeper");
    EXPECT_FALSE(
        txn.exec1("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0].as<bool>());
  }
  for (const std::string statement : {
           "UPDATE async_rotating_invoices SET amount_msat = 1",
           "UPDATE async_rotating_invoices SET hash_index = 1",
           "UPDATE lightning_send_mappings SET inbound_amount_msat = 1",
           "UPDATE async_rotating_invoice_outbox SET status = 'done'",
           "DELETE FROM async_rotating_invoice_outbox",
           "DELETE FROM async_rotating_invoices",
           "DELETE FROM lightning_send_mappings",
           "INSERT INTO async_rotating_invoices (order_id, invoice_slot, hash_index, "
           "payment_hash, amount_msat, expires_at, status) VALUES (1, 99, 0, 'x', 1, now(), "
           "'active')",
           "SELECT count(*) FROM async_orders",
           "SELECT count(*) FROM async_hash_pool",
           "CREATE TABLE lsp_sweeper.extra (id int)",
           "CREATE TABLE public.extra (id int)",
       }) {
    pqxx::nontransaction txn(sweeper);
    EXPECT_THROW(txn.exec(statement), pqxx::insufficient_privilege) << statement;
  }
}

// --- The role of --apply lsp-callbacks --------------------------------------------------------

// The LSP's database with sql/roles/lsp_sweeper_callbacks_role.sql applied too, run twice (it
// is safe to run again), and a URL connecting as that role.
class StoreCallbacksRole : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    if (IsSkipped()) return;
    for (int i = 0; i < 2; ++i) db().exec(read_source_file(kCallbacksRoleScript));
    callbacks_uri_ = lsp_sweeper::testing::with_user(db().uri(), "lsp_sweeper_callbacks");
  }

  // One of each thing a sweep reads: an active record awaiting the node (its id returned), a
  // claimable one lacking its job, a live one with a malformed hash, a stuck job, and a relay
  // record where the LSP has the table.
  std::int64_t seed_a_sweeps_reads() {
    const std::int64_t id = seed_apay(hash_of("active"), "active");
    seed_apay(hash_of("claimable"), "claimable");
    seed_apay("NOT-HEX", "active");
    if (db().has_relay()) seed_relay(hash_of("relay"), "quoted");
    seed_job(hash_of("stuck"), "request_outbound_invoice");
    db().exec(
        "UPDATE async_rotating_invoice_outbox SET attempts = 3, created_at = now() - interval "
        "'1 hour'");
    return id;
  }

  static constexpr const char* kCallbacksRoleScript = "sql/roles/lsp_sweeper_callbacks_role.sql";
  std::string callbacks_uri_;
};

// The LSP's own PostgreSQL form: no relay table.
class StoreCallbacksRoleWithoutRelay : public StoreCallbacksRole {
 protected:
  TestDatabaseOptions options() const override { return {.relay = false}; }
};

// The line of `check` about the role's privileges of `status` ("" when there is none).
std::string privileges_line(const std::vector<util::Check>& checks, util::Check::Status status) {
  for (const util::Check& check : checks) {
    if (check.status == status && check.what.starts_with("privileges of role")) {
      return util::format(check);
    }
  }
  return "";
}

std::string all_lines(const std::vector<util::Check>& checks) {
  std::string out;
  for (const util::Check& check : checks) out += util::format(check) + "\n";
  return out;
}

// check in LspCallbacks mode passes for the role, with nothing to warn about.
void expect_callbacks_check_passes(const std::string& uri) {
  const auto checks = check_database(uri, ApplyMode::LspCallbacks);
  EXPECT_TRUE(util::all_pass(checks)) << all_lines(checks);
  EXPECT_EQ(privileges_line(checks, util::Check::Status::Ok),
            "ok    privileges of role lsp_sweeper_callbacks: all the sweep needs to apply by "
            "lsp-callbacks")
      << all_lines(checks);
  EXPECT_EQ(privileges_line(checks, util::Check::Status::Warn), "") << all_lines(checks);
}

TEST_F(StoreCallbacksRole, CheckInCallbacksModePasses) {
  expect_callbacks_check_passes(callbacks_uri_);
}

TEST_F(StoreCallbacksRoleWithoutRelay, CheckInCallbacksModePasses) {
  ASSERT_TRUE(db().query_value<bool>("SELECT to_regclass('lightning_send_mappings') IS NULL"));
  expect_callbacks_check_passes(callbacks_uri_);
}

TEST_F(StoreCallbacksRole, CheckFailsNamingARevokedSelect) {
  db().exec("REVOKE SELECT ON lightning_send_mappings FROM lsp_sweeper_callbacks");
  db().exec("REVOKE INSERT ON lsp_sweeper.actions FROM lsp_sweeper_callbacks");
  const auto checks = check_database(callbacks_uri_, ApplyMode::LspCallbacks);
  EXPECT_FALSE(util::all_pass(checks));
  EXPECT_EQ(privileges_line(checks, util::Check::Status::Fail),
            "FAIL  privileges of role lsp_sweeper_callbacks: missing: SELECT on "
            "lightning_send_mappings, INSERT on lsp_sweeper.actions")
      << all_lines(checks);
}

// The db-mode role holds what a replaying sweep never needs: every write is named.
TEST_F(StoreCallbacksRole, TheDbModeRoleCheckedInCallbacksModeWarnsOfEveryWrite) {
  const auto checks = check_database(db().uri_as_sweeper(), ApplyMode::LspCallbacks);
  EXPECT_TRUE(util::all_pass(checks)) << all_lines(checks);
  EXPECT_EQ(privileges_line(checks, util::Check::Status::Warn),
            "warn  privileges of role lsp_sweeper: more than the sweeper needs: "
            "UPDATE(claimable_at) on async_rotating_invoices, UPDATE(claim_deadline_height) on "
            "async_rotating_invoices, UPDATE(payment_preimage) on async_rotating_invoices, "
            "UPDATE(status) on async_rotating_invoices, UPDATE(updated_at) on "
            "async_rotating_invoices, UPDATE(status) on lightning_send_mappings, "
            "UPDATE(claim_deadline_height) on lightning_send_mappings, UPDATE(payment_preimage) "
            "on lightning_send_mappings, UPDATE(updated_at) on lightning_send_mappings, INSERT "
            "on async_rotating_invoice_outbox, USAGE on the id sequence of "
            "async_rotating_invoice_outbox")
      << all_lines(checks);
  // And the other way round: the callbacks role cannot repair by SQL.
  const auto db_mode = check_database(callbacks_uri_, ApplyMode::Database);
  const std::string missing = privileges_line(db_mode, util::Check::Status::Fail);
  for (const char* privilege :
       {"UPDATE(status) on async_rotating_invoices", "UPDATE(status) on lightning_send_mappings",
        "INSERT on async_rotating_invoice_outbox"}) {
    EXPECT_NE(missing.find(privilege), std::string::npos) << privilege << "\n"
                                                          << all_lines(db_mode);
  }
}

// Every read a sweep does and every ledger call, as the callbacks role: none needs more than
// SELECT on the LSP's tables (none takes a row lock). Then the SQL applier, which that role
// must not be able to run: permission denied, nothing written.
void expect_every_read_and_ledger_call_works(TestDatabase& db, const std::string& uri,
                                             std::int64_t apay_id, const std::string& apay_hash) {
  Backend backend = open_backend(uri, Access::ReadWrite);
  ASSERT_TRUE(backend.ledger->try_lock_sweep());
  backend.ledger->begin_run("cb-run", false);
  const std::vector<Flow> flows = backend.records->flows();
  EXPECT_EQ(flows.size(), db.has_relay() ? 2u : 1u);
  EXPECT_EQ(backend.records->records_for({apay_hash}).size(), 1u);
  int lacking = 0, awaiting = 0;
  for (Flow flow : flows) {
    backend.records->records_lacking_outbox_job(flow, flow == Flow::Apay ? kApayJobs : kRelayJobs,
                                                10, [&](std::vector<LspRecord>& page) {
                                                  lacking += static_cast<int>(page.size());
                                                  return true;
                                                });
    EXPECT_GE(backend.records->awaiting_node_since(flow, {{"failed"}}, {}).at(0).records, 1);
    backend.records->records_awaiting_node(flow, {"failed"}, 10, [&](std::vector<LspRecord>& p) {
      awaiting += static_cast<int>(p.size());
      return true;
    });
    EXPECT_EQ(backend.records->records_with_malformed_hash(flow, {"failed"}, 10).size(),
              flow == Flow::Apay ? 1u : 0u);
  }
  EXPECT_EQ(lacking, 1);  // the claimable record without its job
  EXPECT_GE(awaiting, 3);
  EXPECT_EQ(backend.records->stuck_jobs(60).size(), 1u);

  plan::Repair replay = missed_claimable(Flow::Apay, apay_id, apay_hash);
  replay.delivery = plan::Delivery{plan::DeliveryOutcome::Refused, 409, "no", 1};
  backend.ledger->record_deliveries({replay}, "cb-run");
  const auto update = backend.ledger->record_divergences(
      {{plan::DivergenceKind::LspCallbackNotApplied, Flow::Apay, apay_hash, "409 no", true}}, true,
      {});
  ASSERT_EQ(update.seen.size(), 1u);
  backend.ledger->mark_alerted({update.seen[0].id});
  EXPECT_EQ(backend.ledger->open_divergences().size(), 1u);
  backend.ledger->finish_run({"cb-run", "divergences", 1, "{}"});
  EXPECT_EQ(backend.ledger->recent_runs(5).at(0).status, "divergences");
  EXPECT_EQ(db.query_value<int>("SELECT count(*) FROM lsp_sweeper.actions WHERE via = "
                                "'lsp_callback' AND callback_outcome = 'refused'"),
            1);

  const auto snapshot = [&] {
    std::string out = db.rows_text("SELECT * FROM async_rotating_invoices ORDER BY id") +
                      db.rows_text("SELECT * FROM async_rotating_invoice_outbox ORDER BY id") +
                      db.rows_text("SELECT * FROM lsp_sweeper.actions ORDER BY id");
    if (db.has_relay()) out += db.rows_text("SELECT * FROM lightning_send_mappings ORDER BY id");
    return out;
  };
  const std::string before = snapshot();
  const std::string claimable_hash = db.query_value<std::string>(
      "SELECT payment_hash FROM async_rotating_invoices WHERE status = 'claimable'");
  const std::int64_t claimable_id = db.query_value<std::int64_t>(
      "SELECT id FROM async_rotating_invoices WHERE status = 'claimable'");
  for (plan::Repair repair : {missed_claimable(Flow::Apay, apay_id, apay_hash),
                              missing_job(Flow::Apay, claimable_id, claimable_hash, "claimable",
                                          "request_outbound_invoice")}) {
    std::vector<plan::Repair> batch{repair};
    const std::string message = message_of([&] { backend.applier->apply(batch, "cb-run"); });
    EXPECT_NE(message.find("permission denied"), std::string::npos) << message;
    EXPECT_FALSE(batch[0].applied);
  }
  EXPECT_EQ(snapshot(), before);
}

TEST_F(StoreCallbacksRole, EveryReadAndLedgerCallWorksAndTheSqlApplierIsRefused) {
  const std::int64_t id = seed_a_sweeps_reads();
  expect_every_read_and_ledger_call_works(db(), callbacks_uri_, id, hash_of("active"));
}

TEST_F(StoreCallbacksRoleWithoutRelay, EveryReadAndLedgerCallWorksAndTheSqlApplierIsRefused) {
  const std::int64_t id = seed_a_sweeps_reads();
  expect_every_read_and_ledger_call_works(db(), callbacks_uri_, id, hash_of("active"));
}

}  // namespace
}  // namespace lsp_sweeper::store
