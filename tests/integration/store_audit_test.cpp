// The audit trail (lsp_sweeper.actions) on the suite's backend, through the store seam: the rows
// of replayed callbacks (--apply lsp-callbacks) beside those of the sweeper's own SQL (--apply
// db), and migration 004, which tells them apart, on a database of version 3. Written once for
// both backends with test_db.hpp's SQL: ctest runs it as `sqlite.` and `postgres.`.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "integration/sweep_fixture.hpp"
#include "integration/test_db.hpp"
#include "lsp_sweeper/embedded_sql.hpp"
#include "lsp_sweeper/store/store.hpp"
#include "lsp_sweeper/util/hex.hpp"
#include "support/store_error.hpp"

namespace lsp_sweeper::store {
namespace {

using lsp_sweeper::testing::TestDatabase;
using plan::Delivery;
using plan::DeliveryOutcome;
using plan::Repair;
using plan::RepairKind;

std::string hash_of(const std::string& seed) { return util::sha256_hex(seed); }

using testing::message_of;

// A missed callback of `flow`'s table as the planner builds it (the fields an audit row keeps),
// with what the LSP answered when it was replayed, if it was.
Repair replayed(RepairKind kind, Flow flow, std::int64_t row, const std::string& hash,
                std::optional<Delivery> delivery, bool applied) {
  const bool claimable = kind == RepairKind::MissedClaimable;
  const bool apay = flow == Flow::Apay;
  Repair r;
  r.kind = kind;
  r.flow = flow;
  r.row_id = row;
  r.payment_hash = hash;
  r.observed_status = claimable ? (apay ? "active" : "quoted") : "outbound_paid";
  r.from = {r.observed_status};
  r.to = claimable ? "claimable" : "outbound_claimed";
  r.outbox_action = claimable ? (apay ? "request_outbound_invoice" : "lightning_send_pay_outbound")
                              : (apay ? "claim_inbound_invoice" : "lightning_send_claim_inbound");
  if (claimable) r.claim_deadline_height = 900;
  if (!claimable) r.preimage = std::string(64, 'b');
  r.delivery = std::move(delivery);
  r.applied = applied;
  return r;
}

// Every column of the audit rows, in id order; booleans as yes/no on both backends.
constexpr const char* kAuditRows =
    "SELECT run_id, kind, flow, record_id, payment_hash, from_status, to_status, outbox_action, "
    "CASE WHEN applied THEN 'yes' ELSE 'no' END, via, callback_outcome, callback_http_status, "
    "callback_answer, callback_attempts FROM lsp_sweeper.actions ORDER BY id";

// The LSP's tables, whole, to show a call wrote none of them.
std::string lsp_tables(TestDatabase& db) {
  std::string out = db.rows_text("SELECT * FROM async_rotating_invoices ORDER BY id") +
                    db.rows_text("SELECT * FROM async_rotating_invoice_outbox ORDER BY id");
  if (db.has_relay()) out += db.rows_text("SELECT * FROM lightning_send_mappings ORDER BY id");
  return out;
}

class StoreAudit : public ::testing::Test {
 protected:
  // Opens the backend as the sweeper connects in production and begins a run, which audit
  // rows refer to.
  Backend open_with_run(const std::string& run_id = "run-1") {
    Backend backend = open_backend(db_.uri_as_sweeper(), Access::ReadWrite);
    backend.ledger->begin_run(run_id, false);
    return backend;
  }

  TestDatabase db_;
};

TEST_F(StoreAudit, RecordDeliveriesWritesExactlyTheRowsGivenAndNothingOfTheLsp) {
  const std::string a = hash_of("applied"), m = hash_of("moved"), r = hash_of("refused"),
                    f = hash_of("failed");
  const std::int64_t a_id = testing::seed_apay(db_, a, "claimable", 5000);
  const std::int64_t m_id = testing::seed_apay(db_, m, "outbound_claimed", 5000);
  const std::string before = lsp_tables(db_);
  Backend backend = open_with_run();
  // An answer with the characters an array literal or a quoted string would trip on.
  const std::string refusal = R"(invalid "transition", \ {active} ' -- ;)";
  backend.ledger->record_deliveries(
      {replayed(RepairKind::MissedClaimable, Flow::Apay, a_id, a,
                Delivery{DeliveryOutcome::Applied, 200, "", 1}, true),
       replayed(RepairKind::MissedPaymentSent, Flow::Apay, m_id, m,
                Delivery{DeliveryOutcome::AlreadyMoved, 0, "", 0}, false),
       replayed(RepairKind::MissedClaimable, Flow::Relay, 31, r,
                Delivery{DeliveryOutcome::Refused, 409, refusal, 1}, false),
       replayed(RepairKind::MissedPaymentSent, Flow::Relay, 32, f,
                Delivery{DeliveryOutcome::Failed, 0, "connection refused", 3}, false)},
      "run-1");

  EXPECT_EQ(db_.rows_text(kAuditRows),
            "run-1 missed_claimable apay " + std::to_string(a_id) + " " + a +
                " active claimable request_outbound_invoice yes lsp_callback applied 200 NULL 1\n"
                "run-1 missed_payment_sent apay " +
                std::to_string(m_id) + " " + m +
                " outbound_paid outbound_claimed claim_inbound_invoice no lsp_callback "
                "already_moved NULL NULL 0\n"
                "run-1 missed_claimable relay 31 " +
                r + " quoted claimable lightning_send_pay_outbound no lsp_callback refused 409 " +
                refusal +
                " 1\n"
                "run-1 missed_payment_sent relay 32 " +
                f +
                " outbound_paid outbound_claimed lightning_send_claim_inbound no lsp_callback "
                "failed NULL connection refused 3\n");
  EXPECT_EQ(lsp_tables(db_), before);

  // Nothing to record is no write and no error.
  backend.ledger->record_deliveries({}, "run-1");
  EXPECT_EQ(db_.query_value<int>("SELECT count(*) FROM lsp_sweeper.actions"), 4);
}

TEST_F(StoreAudit, ARepairWithoutItsDeliveryIsRefusedBeforeAnyRow) {
  Backend backend = open_with_run();
  const std::string h = hash_of("no delivery");
  const std::string message = message_of([&] {
    backend.ledger->record_deliveries(
        {replayed(RepairKind::MissedClaimable, Flow::Apay, 1, hash_of("first"),
                  Delivery{DeliveryOutcome::Applied, 200, "", 1}, true),
         replayed(RepairKind::MissedClaimable, Flow::Apay, 2, h, std::nullopt, false)},
        "run-1");
  });
  EXPECT_NE(message.find("record deliveries"), std::string::npos) << message;
  EXPECT_NE(message.find(h + ": no delivery"), std::string::npos) << message;
  EXPECT_EQ(db_.query_value<int>("SELECT count(*) FROM lsp_sweeper.actions"), 0);
}

// The repairs of --apply db keep their rows as before: via 'db', no callback column.
TEST_F(StoreAudit, TheSweepersOwnRepairsAreAuditedViaDb) {
  const std::string h = hash_of("db");
  const std::int64_t id = testing::seed_apay(db_, h, "active", 5000);
  Backend backend = open_with_run();
  std::vector<Repair> repairs{
      replayed(RepairKind::MissedClaimable, Flow::Apay, id, h, std::nullopt, false)};
  backend.applier->apply(repairs, "run-1");
  ASSERT_TRUE(repairs[0].applied);
  EXPECT_EQ(db_.rows_text(kAuditRows), "run-1 missed_claimable apay " + std::to_string(id) + " " +
                                           h +
                                           " active claimable request_outbound_invoice yes db "
                                           "NULL NULL NULL NULL\n");
}

// Migration 004 on a database the sweeper of version 3 left: its rows stay and read as the
// sweeper's own SQL's, and the new columns hold each kind of row to its form.
TEST_F(StoreAudit, Migration4UpgradesAVersion3DatabaseKeepingItsRows) {
  ASSERT_EQ(expected_schema_version(), 4);
  db_.exec(
      "DROP TABLE lsp_sweeper.actions; DROP TABLE lsp_sweeper.divergences; DROP TABLE "
      "lsp_sweeper.runs; DROP TABLE lsp_sweeper.schema_version");
  const auto& migrations =
      db_.is_sqlite() ? embedded::kSqliteMigrations : embedded::kPostgresMigrations;
  for (const auto& migration : migrations) {
    if (migration.version > 3) continue;
    db_.exec(std::string(migration.sql));
    db_.exec("INSERT INTO lsp_sweeper.schema_version (version) VALUES ($1)", migration.version);
  }
  const std::string h = hash_of("old");
  db_.exec("INSERT INTO lsp_sweeper.runs (run_id, dry_run, status) VALUES ('old-run', $1, 'ok')",
           false);
  db_.exec(
      "INSERT INTO lsp_sweeper.actions (run_id, kind, flow, record_id, payment_hash, from_status, "
      "to_status, outbox_action, applied) VALUES ('old-run', 'missed_claimable', 'apay', 7, $1, "
      "'active', 'claimable', 'request_outbound_invoice', $2)",
      h, true);

  EXPECT_EQ(migrate(db_.uri(), false), 4);
  EXPECT_EQ(db_.rows_text("SELECT version FROM lsp_sweeper.schema_version ORDER BY version"),
            "1\n2\n3\n4\n");
  EXPECT_EQ(db_.rows_text(kAuditRows),
            "old-run missed_claimable apay 7 " + h +
                " active claimable request_outbound_invoice yes db NULL NULL NULL NULL\n");

  // A replay's row needs its outcome and attempts; a row of the sweeper's SQL has neither.
  const std::string insert =
      "INSERT INTO lsp_sweeper.actions (run_id, kind, flow, payment_hash, to_status, "
      "outbox_action, applied, via, callback_outcome, callback_attempts) VALUES ('old-run', "
      "'missed_claimable', 'apay', 'h', 'claimable', 'request_outbound_invoice', $1, $2, $3, $4)";
  EXPECT_ANY_THROW(db_.exec(insert, false, std::string("lsp_callback"),
                            std::optional<std::string>(), std::optional<std::int64_t>(1)));
  EXPECT_ANY_THROW(db_.exec(insert, false, std::string("lsp_callback"),
                            std::optional<std::string>("applied"), std::optional<std::int64_t>()));
  EXPECT_ANY_THROW(db_.exec(insert, false, std::string("db"), std::optional<std::string>("applied"),
                            std::optional<std::int64_t>(1)));
  EXPECT_ANY_THROW(db_.exec(insert, false, std::string("by_hand"), std::optional<std::string>(),
                            std::optional<std::int64_t>()));
  EXPECT_NO_THROW(db_.exec(insert, false, std::string("lsp_callback"),
                           std::optional<std::string>("refused"), std::optional<std::int64_t>(1)));

  // A schema newer than this build is still refused, by migrate and by open.
  db_.exec("INSERT INTO lsp_sweeper.schema_version (version) VALUES (5)");
  EXPECT_NE(message_of([&] { migrate(db_.uri(), false); }).find("newer"), std::string::npos);
  const std::string message =
      message_of([&] { open_backend(db_.uri_as_sweeper(), Access::ReadWrite); });
  EXPECT_NE(message.find("version 5, this build expects 4"), std::string::npos) << message;
}

}  // namespace
}  // namespace lsp_sweeper::store
