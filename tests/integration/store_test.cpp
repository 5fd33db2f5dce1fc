// PgStore and migrate against a real PostgreSQL server (see test_db.hpp).
#include "lsp_sweeper/store/store.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "integration/test_db.hpp"
#include "lsp_sweeper/util/hex.hpp"

namespace lsp_sweeper::store {
namespace {

using lsp_sweeper::testing::TestDatabase;
using plan::Repair;
using plan::RepairKind;

std::string hash_of(const std::string& seed) { return util::sha256_hex(seed); }

// The repairs of DOMAIN.md's transition table, as the planner builds them.
Repair missed_claimable(Flow flow, const std::string& hash, std::int64_t deadline) {
  Repair r;
  r.kind = RepairKind::MissedClaimable;
  r.flow = flow;
  r.payment_hash = hash;
  r.observed_status = flow == Flow::Apay ? "active" : "quoted";
  r.from = {r.observed_status};
  r.to = "claimable";
  r.outbox_action = flow == Flow::Apay ? "request_outbound_invoice" : "lightning_send_pay_outbound";
  r.claim_deadline_height = deadline;
  return r;
}

Repair missed_payment_sent(Flow flow, const std::string& hash, const std::string& preimage) {
  Repair r;
  r.kind = RepairKind::MissedPaymentSent;
  r.flow = flow;
  r.payment_hash = hash;
  r.observed_status = flow == Flow::Apay ? "outbound_paid" : "outbound_pending";
  r.from = flow == Flow::Apay ? std::vector<std::string>{"outbound_paid"}
                              : std::vector<std::string>{"outbound_pending", "outbound_paid"};
  r.to = "outbound_claimed";
  r.outbox_action = flow == Flow::Apay ? "claim_inbound_invoice" : "lightning_send_claim_inbound";
  r.preimage = preimage;
  return r;
}

Repair missing_job(Flow flow, const std::string& hash, const std::string& status,
                   const std::string& action) {
  Repair r;
  r.kind = RepairKind::MissingOutboxJob;
  r.flow = flow;
  r.payment_hash = hash;
  r.observed_status = status;
  r.from = {status};
  r.to = status;
  r.outbox_action = action;
  return r;
}

// Applies one repair (a batch of one) and returns whether it was applied.
bool apply_one(RecordStore& store, Repair repair, const std::string& run_id) {
  std::vector<Repair> batch{std::move(repair)};
  store.apply(batch, run_id);
  return batch[0].applied;
}

class StoreTest : public ::testing::Test {
 protected:
  StoreTest() {
    db.exec("INSERT INTO async_orders (peer_pubkey, status) VALUES ('02peer', 'active')");
  }

  // Records are seeded with updated_at in the past, so a test can tell whether it moved.
  void seed_apay(const std::string& hash, const std::string& status, std::int64_t amount = 5000) {
    db.exec(
        "INSERT INTO async_rotating_invoices (order_id, invoice_slot, payment_hash, amount_msat, "
        "expires_at, status, updated_at) VALUES (1, (SELECT count(*) FROM "
        "async_rotating_invoices), $1, $2, now() + interval '1 day', $3, '2000-01-01')",
        hash, amount, status);
  }
  void seed_relay(const std::string& hash, const std::string& status, std::int64_t amount = 7000) {
    db.exec(
        "INSERT INTO lightning_send_mappings (payment_hash, inbound_amount_msat, "
        "outbound_amount_msat, status, updated_at) VALUES ($1, $2::bigint, $2::bigint - 100, $3, "
        "'2000-01-01')",
        hash, amount, status);
  }
  void seed_job(const std::string& hash, const std::string& action,
                const std::string& status = "pending") {
    db.exec(
        "INSERT INTO async_rotating_invoice_outbox (payment_hash, action, status) "
        "VALUES ($1, $2, $3)",
        hash, action, status);
  }

  std::string status_of(const std::string& table, const std::string& hash) {
    return db.query_value<std::string>("SELECT status FROM " + table + " WHERE payment_hash = $1",
                                       hash);
  }
  int jobs_for(const std::string& hash) {
    return db.query_value<int>(
        "SELECT count(*) FROM async_rotating_invoice_outbox WHERE payment_hash = $1", hash);
  }
  int audit_rows(const std::string& hash, bool applied) {
    return db.query_value<int>(
        "SELECT count(*) FROM lsp_sweeper.actions WHERE payment_hash = $1 AND applied = $2", hash,
        applied);
  }

  TestDatabase db;
  PgStore store{db.uri_as_sweeper()};  // the least-privilege role, as in production
  const std::string run_id = "run-1";
};

// The outbox holds exactly one job for `hash`, new and of `action`.
void expect_one_new_job(TestDatabase& db, const std::string& hash, const std::string& action) {
  EXPECT_EQ(db.query_value<int>("SELECT count(*) FROM async_rotating_invoice_outbox WHERE "
                                "payment_hash = $1 AND action = $2 AND status = 'pending' AND "
                                "attempts = 0 AND available_at <= now()",
                                hash, action),
            1);
  EXPECT_EQ(db.query_value<int>(
                "SELECT count(*) FROM async_rotating_invoice_outbox WHERE payment_hash = $1", hash),
            1);
}

// Waits until some session of the test database waits for a lock, so a race test really
// races; false after 10 seconds.
bool wait_until_blocked(TestDatabase& db) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (db.query_value<int>("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND wait_event_type = 'Lock'") > 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(StoreMigrate, IsIdempotentAndCreatesEveryTable) {
  TestDatabase db;  // migrated once already
  EXPECT_EQ(migrate(db.uri(), true), expected_schema_version());
  EXPECT_EQ(migrate(db.uri(), false), expected_schema_version());
  EXPECT_GE(expected_schema_version(), 1);
  EXPECT_EQ(db.query_value<int>("SELECT max(version) FROM lsp_sweeper.schema_version"),
            expected_schema_version());
  EXPECT_EQ(db.query_value<int>("SELECT count(*) FROM lsp_sweeper.schema_version"),
            expected_schema_version());
  for (const char* table :
       {"lsp_sweeper.schema_version", "lsp_sweeper.runs", "lsp_sweeper.actions", "async_orders",
        "async_rotating_invoices", "lightning_send_mappings", "async_rotating_invoice_outbox"}) {
    EXPECT_TRUE(db.query_value<bool>("SELECT to_regclass($1) IS NOT NULL", std::string(table)))
        << table;
  }
}

TEST(StoreMigrate, WithoutLspSchemaLeavesTheLspTablesAlone) {
  TestDatabase db;
  db.exec("DROP SCHEMA lsp_sweeper CASCADE; DROP TABLE async_rotating_invoice_outbox");
  EXPECT_EQ(migrate(db.uri(), false), expected_schema_version());
  EXPECT_TRUE(db.query_value<bool>("SELECT to_regclass('lsp_sweeper.actions') IS NOT NULL"));
  EXPECT_TRUE(db.query_value<bool>("SELECT to_regclass('async_rotating_invoice_outbox') IS NULL"));
}

TEST(StoreMigrate, ConcurrentMigratesSerialize) {
  TestDatabase db;
  db.exec("DROP SCHEMA lsp_sweeper CASCADE");
  std::vector<std::future<int>> migrations;
  for (int i = 0; i < 4; ++i) {
    migrations.push_back(std::async(std::launch::async, [&] { return migrate(db.uri(), true); }));
  }
  for (auto& m : migrations) EXPECT_EQ(m.get(), expected_schema_version());
  EXPECT_EQ(db.query_value<int>("SELECT count(*) FROM lsp_sweeper.schema_version"),
            expected_schema_version());
}

TEST(StoreMigrate, RefusesANewerSchema) {
  TestDatabase db;
  const int newer = expected_schema_version() + 1;
  db.exec("INSERT INTO lsp_sweeper.schema_version (version) VALUES ($1)", newer);
  try {
    migrate(db.uri(), false);
    FAIL() << "migrate accepted a newer schema";
  } catch (const StoreError& e) {
    EXPECT_EQ(std::string(e.what()), "database schema version " + std::to_string(newer) +
                                         " is newer than this lsp-sweeper supports (" +
                                         std::to_string(expected_schema_version()) + ")");
  }
}

TEST_F(StoreTest, RecordsForReadsBothFlows) {
  const std::string apay = hash_of("apay"), relay = hash_of("relay");
  seed_apay(apay, "active", 5000);
  seed_relay(relay, "quoted", 7000);
  db.exec("UPDATE lightning_send_mappings SET claim_deadline_height = 812");

  auto records = store.records_for({apay, relay, hash_of("unknown")});
  ASSERT_EQ(records.size(), 2u);
  std::sort(records.begin(), records.end(),
            [](const LspRecord& a, const LspRecord& b) { return a.flow < b.flow; });
  EXPECT_EQ(records[0].flow, Flow::Apay);
  EXPECT_EQ(records[0].payment_hash, apay);
  EXPECT_EQ(records[0].status, "active");
  EXPECT_EQ(records[0].amount_msat, 5000);
  EXPECT_EQ(records[0].claim_deadline_height, std::nullopt);
  EXPECT_TRUE(records[0].outbox_actions.empty());
  EXPECT_EQ(records[1].flow, Flow::Relay);
  EXPECT_EQ(records[1].payment_hash, relay);
  EXPECT_EQ(records[1].status, "quoted");
  EXPECT_EQ(records[1].amount_msat, 7000);  // the inbound amount, not the outbound one
  EXPECT_EQ(records[1].claim_deadline_height, 812);
}

TEST_F(StoreTest, RecordsForNothingOrUnknownIsEmpty) {
  seed_apay(hash_of("apay"), "active");
  EXPECT_TRUE(store.records_for({}).empty());
  EXPECT_TRUE(store.records_for({hash_of("unknown")}).empty());
}

TEST_F(StoreTest, RecordsForTreatsHashesAsData) {
  seed_apay(hash_of("apay"), "active");
  const std::vector<std::string> hostile = {
      "' OR '1'='1",
      "x'); DROP TABLE async_rotating_invoices; --",
      "\"}, {\"" + hash_of("apay"),
      "a\\",
      "NULL",
      "{" + hash_of("apay") + "}",
  };
  EXPECT_TRUE(store.records_for(hostile).empty());
  EXPECT_EQ(db.query_value<int>("SELECT count(*) FROM async_rotating_invoices"), 1);
}

TEST_F(StoreTest, RecordsLackingTheirOutboxJobComeInPages) {
  const std::string no_job = hash_of("claimable, no job");
  const std::string with_job = hash_of("outbound_claimed, done job");
  const std::string other_job = hash_of("outbound_claimed, only the earlier job");
  const std::string not_waiting = hash_of("active");
  const std::string relay = hash_of("relay claimable");
  const std::string settled = hash_of("relay settled");
  seed_apay(no_job, "claimable");
  seed_apay(with_job, "outbound_claimed");
  seed_job(with_job, "claim_inbound_invoice", "done");
  seed_job(with_job, "request_outbound_invoice", "done");
  seed_apay(other_job, "outbound_claimed");
  seed_job(other_job, "request_outbound_invoice", "done");
  seed_apay(not_waiting, "active");
  seed_relay(relay, "claimable");
  seed_job(relay, "some_other_action", "failed");
  seed_relay(settled, "settled");

  std::vector<std::vector<LspRecord>> pages;
  store.records_lacking_outbox_job(2, [&](std::vector<LspRecord>& page) { pages.push_back(page); });
  ASSERT_EQ(pages.size(), 2u);  // APay: one full page of 2; relay: 1
  ASSERT_EQ(pages[0].size(), 2u);
  ASSERT_EQ(pages[1].size(), 1u);
  const auto find = [&](const std::string& hash) {
    for (const auto& page : pages) {
      for (const LspRecord& r : page) {
        if (r.payment_hash == hash) return r;
      }
    }
    ADD_FAILURE() << "no record " << hash;
    return LspRecord{};
  };
  EXPECT_LT(pages[0][0].payment_hash, pages[0][1].payment_hash);
  EXPECT_EQ(find(no_job).flow, Flow::Apay);
  EXPECT_EQ(find(no_job).status, "claimable");
  EXPECT_TRUE(find(no_job).outbox_actions.empty());
  EXPECT_EQ(find(other_job).status, "outbound_claimed");
  EXPECT_EQ(find(other_job).outbox_actions, std::vector<std::string>{"request_outbound_invoice"});
  EXPECT_EQ(find(relay).flow, Flow::Relay);
  EXPECT_EQ(find(relay).amount_msat, 7000);
  EXPECT_EQ(find(relay).outbox_actions, std::vector<std::string>{"some_other_action"});

  // Once the jobs exist, nothing is left to page through.
  seed_job(no_job, "request_outbound_invoice");
  seed_job(other_job, "claim_inbound_invoice");
  seed_job(relay, "lightning_send_pay_outbound");
  int calls = 0;
  store.records_lacking_outbox_job(1000, [&](std::vector<LspRecord>&) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST_F(StoreTest, AppliesMissedClaimableApay) {
  const std::string hash = hash_of("apay");
  seed_apay(hash, "active");
  store.begin_run(run_id, false);

  EXPECT_TRUE(apply_one(store, missed_claimable(Flow::Apay, hash, 900), run_id));

  EXPECT_EQ(status_of("async_rotating_invoices", hash), "claimable");
  EXPECT_TRUE(db.query_value<bool>(
      "SELECT claimable_at IS NOT NULL AND claim_deadline_height = 900 AND updated_at > "
      "'2000-01-01' FROM async_rotating_invoices WHERE payment_hash = $1",
      hash));
  expect_one_new_job(db, hash, "request_outbound_invoice");
  EXPECT_EQ(db.query_value<int>(
                "SELECT count(*) FROM lsp_sweeper.actions WHERE run_id = $1 AND kind = "
                "'missed_claimable' AND flow = 'apay' AND payment_hash = $2 AND from_status = "
                "'active' AND to_status = 'claimable' AND outbox_action = "
                "'request_outbound_invoice' AND applied",
                run_id, hash),
            1);
}

TEST_F(StoreTest, MissedClaimableApayKeepsTheLspsOwnValues) {
  const std::string hash = hash_of("apay");
  seed_apay(hash, "active");
  db.exec(
      "UPDATE async_rotating_invoices SET claimable_at = '2001-02-03T04:05:06Z', "
      "claim_deadline_height = 777");
  store.begin_run(run_id, false);

  EXPECT_TRUE(apply_one(store, missed_claimable(Flow::Apay, hash, 900), run_id));

  EXPECT_TRUE(db.query_value<bool>(
      "SELECT status = 'claimable' AND claimable_at = '2001-02-03T04:05:06Z' AND "
      "claim_deadline_height = 777 FROM async_rotating_invoices WHERE payment_hash = $1",
      hash));
}

TEST_F(StoreTest, AppliesMissedClaimableRelay) {
  const std::string hash = hash_of("relay");
  seed_relay(hash, "quoted");
  db.exec("UPDATE lightning_send_mappings SET claim_deadline_height = 777");
  store.begin_run(run_id, false);

  EXPECT_TRUE(apply_one(store, missed_claimable(Flow::Relay, hash, 900), run_id));

  EXPECT_TRUE(db.query_value<bool>(
      "SELECT status = 'claimable' AND claim_deadline_height = 900 AND updated_at > "
      "'2000-01-01' FROM lightning_send_mappings WHERE payment_hash = $1",
      hash));
  expect_one_new_job(db, hash, "lightning_send_pay_outbound");
  EXPECT_EQ(audit_rows(hash, true), 1);
}

TEST_F(StoreTest, AppliesMissedPaymentSentApay) {
  const std::string preimage(64, '7');
  const std::string hash = hash_of("apay");
  seed_apay(hash, "outbound_paid");
  db.exec("UPDATE async_rotating_invoices SET outbound_paid_at = '2002-01-01T00:00:00Z'");
  store.begin_run(run_id, false);

  EXPECT_TRUE(apply_one(store, missed_payment_sent(Flow::Apay, hash, preimage), run_id));

  EXPECT_TRUE(db.query_value<bool>(
      "SELECT status = 'outbound_claimed' AND payment_preimage = $2 AND outbound_paid_at = "
      "'2002-01-01T00:00:00Z' AND updated_at > '2000-01-01' FROM async_rotating_invoices "
      "WHERE payment_hash = $1",
      hash, preimage));
  expect_one_new_job(db, hash, "claim_inbound_invoice");
  EXPECT_EQ(audit_rows(hash, true), 1);
}

TEST_F(StoreTest, AppliesMissedPaymentSentRelayFromEitherState) {
  const std::string preimage(64, '8');
  const std::string pending = hash_of("pending"), paid = hash_of("paid");
  seed_relay(pending, "outbound_pending");
  seed_relay(paid, "outbound_paid");
  store.begin_run(run_id, false);

  for (const std::string& hash : {pending, paid}) {
    EXPECT_TRUE(apply_one(store, missed_payment_sent(Flow::Relay, hash, preimage), run_id));
    EXPECT_TRUE(db.query_value<bool>(
        "SELECT status = 'outbound_claimed' AND payment_preimage = $2 AND updated_at > "
        "'2000-01-01' FROM lightning_send_mappings WHERE payment_hash = $1",
        hash, preimage));
    expect_one_new_job(db, hash, "lightning_send_claim_inbound");
    EXPECT_EQ(audit_rows(hash, true), 1);
  }
}

TEST_F(StoreTest, AddsAMissingOutboxJobOnlyWhileTheStateLasts) {
  const std::string hash = hash_of("apay");
  seed_apay(hash, "claimable");
  store.begin_run(run_id, false);
  const Repair repair = missing_job(Flow::Apay, hash, "claimable", "request_outbound_invoice");

  EXPECT_TRUE(apply_one(store, repair, run_id));
  expect_one_new_job(db, hash, "request_outbound_invoice");
  EXPECT_TRUE(db.query_value<bool>(
      "SELECT status = 'claimable' AND updated_at = '2000-01-01' FROM async_rotating_invoices "
      "WHERE payment_hash = $1",
      hash));
  EXPECT_FALSE(apply_one(store, repair, run_id));  // the job exists now
  EXPECT_EQ(jobs_for(hash), 1);

  const std::string moved = hash_of("moved");
  seed_relay(moved, "outbound_pending");
  EXPECT_FALSE(apply_one(
      store, missing_job(Flow::Relay, moved, "claimable", "lightning_send_pay_outbound"), run_id));
  EXPECT_EQ(jobs_for(moved), 0);
  EXPECT_EQ(audit_rows(hash, true), 1);
  EXPECT_EQ(audit_rows(hash, false), 1);
  EXPECT_EQ(audit_rows(moved, false), 1);
}

TEST_F(StoreTest, ApplyingTwiceChangesNothingMore) {
  const std::string hash = hash_of("relay");
  seed_relay(hash, "quoted");
  store.begin_run(run_id, false);
  const Repair repair = missed_claimable(Flow::Relay, hash, 900);

  EXPECT_TRUE(apply_one(store, repair, run_id));
  EXPECT_FALSE(apply_one(store, repair, run_id));

  EXPECT_EQ(status_of("lightning_send_mappings", hash), "claimable");
  expect_one_new_job(db, hash, "lightning_send_pay_outbound");
  EXPECT_EQ(audit_rows(hash, true), 1);
  EXPECT_EQ(audit_rows(hash, false), 1);
}

// Repairs of several transitions in one call, interleaved: each is judged on its own record,
// and `applied` lands on the right repair whatever order the batches ran in.
TEST_F(StoreTest, AppliesAMixedBatchEachRepairOnItsOwn) {
  const std::string preimage(64, '6');
  const std::string active = hash_of("active"), moved = hash_of("moved");
  const std::string pending = hash_of("relay pending"), paid = hash_of("relay paid");
  const std::string no_job = hash_of("claimable, no job"), claimed = hash_of("claimed, no job");
  seed_apay(active, "active");
  seed_apay(moved, "claimable");  // the LSP moved it after the plan
  seed_job(moved, "request_outbound_invoice");
  seed_relay(pending, "outbound_pending");
  seed_relay(paid, "outbound_paid");
  seed_apay(no_job, "claimable");
  seed_apay(claimed, "outbound_claimed");
  store.begin_run(run_id, false);

  std::vector<Repair> batch{
      missing_job(Flow::Apay, claimed, "outbound_claimed", "claim_inbound_invoice"),
      missed_claimable(Flow::Apay, active, 900),
      missed_payment_sent(Flow::Relay, pending, preimage),
      missed_claimable(Flow::Apay, moved, 900),
      missing_job(Flow::Apay, no_job, "claimable", "request_outbound_invoice"),
      missed_payment_sent(Flow::Relay, paid, preimage),
  };
  store.apply(batch, run_id);

  std::vector<bool> applied;
  for (const Repair& r : batch) applied.push_back(r.applied);
  EXPECT_EQ(applied, (std::vector<bool>{true, true, true, false, true, true}));
  EXPECT_EQ(status_of("async_rotating_invoices", active), "claimable");
  EXPECT_EQ(status_of("lightning_send_mappings", pending), "outbound_claimed");
  EXPECT_EQ(status_of("lightning_send_mappings", paid), "outbound_claimed");
  expect_one_new_job(db, active, "request_outbound_invoice");
  expect_one_new_job(db, pending, "lightning_send_claim_inbound");
  expect_one_new_job(db, paid, "lightning_send_claim_inbound");
  expect_one_new_job(db, no_job, "request_outbound_invoice");
  expect_one_new_job(db, claimed, "claim_inbound_invoice");
  EXPECT_EQ(jobs_for(moved), 1);  // the LSP's own, untouched
  EXPECT_EQ(db.query_value<int>("SELECT count(*) FROM lsp_sweeper.actions WHERE applied"), 5);
  EXPECT_EQ(audit_rows(moved, false), 1);
}

// More repairs than one statement takes: every one is applied, once, with its own value.
TEST_F(StoreTest, AppliesALargeBatchInFullAndOnce) {
  constexpr int kRepairs = 2500;
  db.exec(
      "INSERT INTO async_rotating_invoices (order_id, invoice_slot, payment_hash, amount_msat, "
      "expires_at, status) SELECT 1, i, encode(sha256(i::text::bytea), 'hex'), 5000, "
      "now() + interval '1 day', 'active' FROM generate_series(1, $1) AS i",
      kRepairs);
  std::vector<Repair> batch;
  for (int i = 1; i <= kRepairs; ++i) {
    // The same hash as the SQL above: sha256 of the decimal text.
    batch.push_back(missed_claimable(Flow::Apay, hash_of(std::to_string(i)), 1000 + i));
  }
  store.begin_run(run_id, false);
  store.apply(batch, run_id);

  EXPECT_TRUE(std::all_of(batch.begin(), batch.end(), [](const Repair& r) { return r.applied; }));
  EXPECT_EQ(db.query_value<int>(
                "SELECT count(*) FROM async_rotating_invoices WHERE status = 'claimable' AND "
                "claim_deadline_height = 1000 + invoice_slot"),
            kRepairs);
  EXPECT_EQ(db.query_value<int>("SELECT count(DISTINCT payment_hash) FROM "
                                "async_rotating_invoice_outbox WHERE action = "
                                "'request_outbound_invoice'"),
            kRepairs);
  EXPECT_EQ(db.query_value<int>("SELECT count(*) FROM async_rotating_invoice_outbox"), kRepairs);
  EXPECT_EQ(db.query_value<int>("SELECT count(*) FROM lsp_sweeper.actions WHERE applied"),
            kRepairs);

  store.apply(batch, run_id);  // again: nothing more
  EXPECT_TRUE(std::none_of(batch.begin(), batch.end(), [](const Repair& r) { return r.applied; }));
  EXPECT_EQ(db.query_value<int>("SELECT count(*) FROM async_rotating_invoice_outbox"), kRepairs);
}

TEST_F(StoreTest, RecordAlreadyMovedGetsNoJob) {
  const std::string hash = hash_of("apay");
  seed_apay(hash, "claimable");  // the planner saw it active; the LSP moved it since
  store.begin_run(run_id, false);

  EXPECT_FALSE(apply_one(store, missed_claimable(Flow::Apay, hash, 900), run_id));

  EXPECT_EQ(status_of("async_rotating_invoices", hash), "claimable");
  EXPECT_EQ(jobs_for(hash), 0);
  EXPECT_EQ(audit_rows(hash, false), 1);
}

TEST_F(StoreTest, CallbackThatLandedFirstWins) {
  const std::string preimage(64, '9');
  const std::string hash = hash_of("apay");
  seed_apay(hash, "outbound_paid");
  store.begin_run(run_id, false);
  // The LSP's own payment_sent handler, between the plan and the apply.
  db.exec(
      "UPDATE async_rotating_invoices SET status = 'outbound_claimed', payment_preimage = $1 "
      "WHERE payment_hash = $2",
      preimage, hash);
  seed_job(hash, "claim_inbound_invoice");

  EXPECT_FALSE(apply_one(store, missed_payment_sent(Flow::Apay, hash, preimage), run_id));
  expect_one_new_job(db, hash, "claim_inbound_invoice");
  EXPECT_EQ(audit_rows(hash, false), 1);
}

// The callback's transaction is still open when the sweeper's UPDATE reaches the row: the
// UPDATE waits for it, then re-checks its condition against the committed row and changes
// nothing. This holds even on a database whose default isolation level is stricter.
TEST_F(StoreTest, ConcurrentCallbackInFlightWins) {
  const std::string hash = hash_of("relay");
  seed_relay(hash, "quoted");
  db.exec("ALTER DATABASE " + db.name() + " SET default_transaction_isolation = 'serializable'");
  PgStore strict_store(db.uri_as_sweeper());  // a session that starts with that default
  strict_store.begin_run(run_id, false);

  pqxx::connection lsp(db.uri());
  pqxx::work callback(lsp);
  callback.exec_params(
      "UPDATE lightning_send_mappings SET status = 'claimable', "
      "claim_deadline_height = 901 WHERE payment_hash = $1 AND status = 'quoted'",
      hash);
  callback.exec_params(
      "INSERT INTO async_rotating_invoice_outbox (payment_hash, action, status) "
      "VALUES ($1, 'lightning_send_pay_outbound', 'pending') "
      "ON CONFLICT DO NOTHING",
      hash);

  auto applied = std::async(std::launch::async, [&] {
    return apply_one(strict_store, missed_claimable(Flow::Relay, hash, 900), run_id);
  });
  const bool waited = wait_until_blocked(db);
  callback.commit();  // either way: apply() would otherwise wait for it forever
  ASSERT_TRUE(waited) << "apply never waited for the callback's row lock";

  EXPECT_FALSE(applied.get());
  EXPECT_TRUE(
      db.query_value<bool>("SELECT status = 'claimable' AND claim_deadline_height = 901 FROM "
                           "lightning_send_mappings WHERE payment_hash = $1",
                           hash));
  expect_one_new_job(db, hash, "lightning_send_pay_outbound");
  EXPECT_EQ(audit_rows(hash, false), 1);
}

// The LSP moves the record on (its job ran) while the sweeper adds the job it thought
// missing: the sweeper's check waits for the move, sees the new state, and adds nothing.
TEST_F(StoreTest, MissingOutboxJobRacesTheLspMovingOn) {
  const std::string hash = hash_of("apay");
  seed_apay(hash, "claimable");
  store.begin_run(run_id, false);

  pqxx::connection lsp(db.uri());
  pqxx::work move_on(lsp);
  move_on.exec_params(
      "UPDATE async_rotating_invoices SET status = 'outbound_requested' "
      "WHERE payment_hash = $1",
      hash);

  auto applied = std::async(std::launch::async, [&] {
    return apply_one(store, missing_job(Flow::Apay, hash, "claimable", "request_outbound_invoice"),
                     run_id);
  });
  const bool waited = wait_until_blocked(db);
  move_on.commit();
  ASSERT_TRUE(waited) << "apply never waited for the LSP's row lock";

  EXPECT_FALSE(applied.get());
  EXPECT_EQ(jobs_for(hash), 0);
}

TEST_F(StoreTest, RefusesARepairWithoutItsValue) {
  const std::string hash = hash_of("apay");
  seed_apay(hash, "active");
  store.begin_run(run_id, false);
  Repair no_deadline = missed_claimable(Flow::Apay, hash, 900);
  no_deadline.claim_deadline_height.reset();
  Repair no_preimage = missed_payment_sent(Flow::Apay, hash, std::string(64, '1'));
  no_preimage.preimage.reset();

  EXPECT_THROW(apply_one(store, no_deadline, run_id), StoreError);
  EXPECT_THROW(apply_one(store, no_preimage, run_id), StoreError);
  EXPECT_EQ(status_of("async_rotating_invoices", hash), "active");
  EXPECT_EQ(jobs_for(hash), 0);
}

// An apply whose audit row cannot be written (no such run) leaves the record and the outbox
// as they were: UPDATE, job and audit row are one statement, hence one transaction.
TEST_F(StoreTest, FailedApplyRollsBackAndSaysWhere) {
  const std::string hash = hash_of("apay");
  seed_apay(hash, "active");
  try {
    apply_one(store, missed_claimable(Flow::Apay, hash, 900), "never-begun");
    FAIL() << "apply without a run succeeded";
  } catch (const StoreError& e) {
    EXPECT_EQ(
        std::string(e.what()).rfind(
            "apply missed_claimable apay " + hash + ": update, outbox job and audit row: ", 0),
        0u)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("actions"), std::string::npos) << e.what();
  }
  EXPECT_EQ(status_of("async_rotating_invoices", hash), "active");
  EXPECT_EQ(jobs_for(hash), 0);

  // The connection is still usable after the failed transaction.
  store.begin_run(run_id, false);
  EXPECT_TRUE(apply_one(store, missed_claimable(Flow::Apay, hash, 900), run_id));
}

TEST_F(StoreTest, RecordsARun) {
  store.begin_run(run_id, false);
  EXPECT_TRUE(db.query_value<bool>(
      "SELECT status = 'running' AND NOT dry_run AND finished_at IS NULL AND report IS NULL "
      "FROM lsp_sweeper.runs WHERE run_id = $1",
      run_id));

  store.finish_run({run_id, "divergences", 3, R"({"repairs": 2})"});
  EXPECT_TRUE(db.query_value<bool>(
      "SELECT status = 'divergences' AND exit_code = 3 AND finished_at >= started_at AND "
      "(report->>'repairs')::int = 2 FROM lsp_sweeper.runs WHERE run_id = $1",
      run_id));

  store.begin_run("run-2", true);
  store.finish_run({"run-2", "failed", 1, ""});
  EXPECT_TRUE(db.query_value<bool>(
      "SELECT dry_run AND report IS NULL FROM lsp_sweeper.runs WHERE run_id = 'run-2'"));

  EXPECT_THROW(store.begin_run(run_id, false), StoreError);  // run ids are unique
  EXPECT_THROW(store.finish_run({"no-such-run", "ok", 0, "{}"}), StoreError);
}

// sql/roles/lsp_sweeper_role.sql grants what the sweep uses (every StoreTest runs as that role)
// and nothing more: each statement here is one the sweeper never needs.
TEST(SweeperRole, HoldsNothingBeyondWhatTheSweepNeeds) {
  TestDatabase db;
  pqxx::connection sweeper(db.uri_as_sweeper());
  {
    pqxx::nontransaction txn(sweeper);
    EXPECT_EQ(txn.exec1("SELECT current_user")[0].as<std::string>(), "lsp_sweeper");
    EXPECT_FALSE(
        txn.exec1("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0].as<bool>());
  }
  for (const std::string statement : {
           "UPDATE async_rotating_invoices SET amount_msat = 1",
           "UPDATE lightning_send_mappings SET inbound_amount_msat = 1",
           "UPDATE async_rotating_invoice_outbox SET status = 'done'",
           "DELETE FROM async_rotating_invoice_outbox",
           "DELETE FROM lightning_send_mappings",
           "INSERT INTO async_rotating_invoices (amount_msat, expires_at, status) "
           "VALUES (1, now(), 'active')",
           "SELECT count(*) FROM async_orders",
           "CREATE TABLE lsp_sweeper.extra (id int)",
           "CREATE TABLE public.extra (id int)",
       }) {
    pqxx::nontransaction txn(sweeper);
    EXPECT_THROW(txn.exec(statement), pqxx::insufficient_privilege) << statement;
  }
}

}  // namespace
}  // namespace lsp_sweeper::store
