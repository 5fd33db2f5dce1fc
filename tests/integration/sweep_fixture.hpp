// What the end-to-end tests of the real binary share: deterministic payment secrets, the
// node's wire form of the payments they serve, seeding of the LSP's records, and a fixture
// holding one test database and one node simulator.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "integration/process.hpp"
#include "integration/test_db.hpp"
#include "lsp_sweeper/util/hex.hpp"
#include "sim/simulator.hpp"
#include "support/secret.hpp"

namespace lsp_sweeper::testing {

inline constexpr const char* kToken = "integration-test-token-b7Qx";
inline constexpr std::int64_t kHeight = 800000;

inline nlohmann::json hodl_claimable(const std::string& hash, std::int64_t amt,
                                     std::optional<std::int64_t> deadline = kHeight + 144) {
  nlohmann::json p{{"payment_hash", hash},
                   {"payment_type", "InboundHodl"},
                   {"status", "Claimable"},
                   {"amt_msat", amt},
                   {"created_ago", 600},
                   {"updated_ago", 300},
                   {"payee_pubkey", "03" + std::string(64, 'b')}};
  if (deadline) p["claim_deadline_height"] = *deadline;
  return p;
}

inline nlohmann::json outbound_succeeded(const std::string& hash, const std::string& preimage) {
  return {{"payment_hash", hash},  {"payment_type", "Outbound"},
          {"status", "Succeeded"}, {"amt_msat", 1000000},
          {"preimage", preimage},  {"created_ago", 600},
          {"updated_ago", 300},    {"payee_pubkey", "03" + std::string(64, 'c')}};
}

// The APay payer every seeded invoice belongs to.
inline void seed_order(TestDatabase& db) {
  db.exec(
      "INSERT INTO async_orders (peer_pubkey, status) VALUES ($1, 'active') "
      "ON CONFLICT (peer_pubkey) DO NOTHING",
      std::string("peer"));
}

// An APay invoice in the LSP's own columns (its NOT NULL ones included); returns its row id.
inline std::int64_t seed_apay(TestDatabase& db, const std::string& hash, const std::string& status,
                              std::int64_t amount,
                              std::optional<std::int64_t> deadline = std::nullopt) {
  seed_order(db);
  db.exec(
      "INSERT INTO async_rotating_invoices (order_id, invoice_slot, hash_index, payment_hash, "
      "amount_msat, claim_deadline_height, expires_at, status) "
      "SELECT order_id, (SELECT count(*) FROM async_rotating_invoices), (SELECT count(*) FROM "
      "async_rotating_invoices), $1, $2, $3, '2999-01-01 00:00:00', $4 FROM async_orders WHERE "
      "peer_pubkey = 'peer'",
      hash, amount, deadline, status);
  return db.query_value<std::int64_t>("SELECT max(id) FROM async_rotating_invoices");
}

inline void seed_relay(TestDatabase& db, const std::string& hash, const std::string& status,
                       std::int64_t amount) {
  db.exec(
      "INSERT INTO lightning_send_mappings (payment_hash, outbound_invoice, outbound_amount_msat, "
      "payee_pubkey, inbound_invoice, inbound_amount_msat, status, expires_at) "
      "VALUES ($1, 'lnbcrt-out', $2, '03payee', 'lnbcrt-in', $3, $4, '2999-01-01 00:00:00')",
      hash, amount - 10000, amount, status);
}

// `n` distinct payment hashes.
inline std::vector<std::string> many_hashes(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(util::sha256_hex("race-" + std::to_string(i)));
  return out;
}

// Every hash is an APay record left `active` while the node holds its payment: a missed
// claimable callback each. One transaction, so thousands of rows take milliseconds.
inline void seed_missed_claimables(TestDatabase& db, const std::vector<std::string>& all) {
  seed_order(db);
  db.exec("BEGIN");
  for (const auto& h : all) {
    db.exec(
        "INSERT INTO async_rotating_invoices (order_id, invoice_slot, hash_index, payment_hash, "
        "amount_msat, expires_at, status) SELECT order_id, (SELECT count(*) FROM "
        "async_rotating_invoices), 0, $1, 3000000, '2999-01-01 00:00:00', 'active' FROM "
        "async_orders WHERE peer_pubkey = 'peer'",
        h);
  }
  db.exec("COMMIT");
}

inline nlohmann::json held_payments(const std::vector<std::string>& all) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& h : all) out.push_back(hodl_claimable(h, 3000000));
  return out;
}

// Everything a sweep may change in the LSP's tables and the outbox, timestamps aside, as one
// comparable text: two databases of one backend in the same state give the same text.
inline std::string lsp_state(TestDatabase& db) {
  std::string state = db.rows_text(
      "SELECT payment_hash, status, payment_preimage, claim_deadline_height, claimable_at IS NOT "
      "NULL FROM async_rotating_invoices ORDER BY payment_hash, id");
  if (db.has_relay()) {
    state += db.rows_text(
        "SELECT payment_hash, status, payment_preimage, claim_deadline_height FROM "
        "lightning_send_mappings ORDER BY payment_hash");
  }
  return state + db.rows_text(
                     "SELECT payment_hash, action, status FROM async_rotating_invoice_outbox "
                     "ORDER BY payment_hash, action");
}

// Repairs seen half-applied: a record in a callback's target state without any outbox job, a
// job whose record never moved, or a job without its `applied` audit row (or the reverse).
// Valid for databases seeded only with APay records in a callback's `from` state.
inline int half_applied(TestDatabase& db) {
  return db.query_value<int>(
      "SELECT (SELECT count(*) FROM async_rotating_invoices r WHERE "
      "(r.status IN ('claimable', 'outbound_claimed')) <> EXISTS (SELECT 1 FROM "
      "async_rotating_invoice_outbox o WHERE o.payment_hash = r.payment_hash)) + "
      "abs((SELECT count(*) FROM async_rotating_invoice_outbox) - "
      "(SELECT count(*) FROM lsp_sweeper.actions WHERE applied))");
}

// The lines of a run's log at level error: a failed run says why in exactly one.
inline int error_lines(const std::string& err) {
  std::istringstream in(err);
  int n = 0;
  for (std::string time, level, rest; in >> time >> level && std::getline(in, rest);) {
    n += level == "error";
  }
  return n;
}

// `lsp-sweeper run` with the token in the environment and the report on stdout.
inline ProcessResult run_sweeper(const std::string& node_url, const std::string& db_uri,
                                 const std::vector<std::string>& args = {},
                                 const std::string& token = kToken) {
  std::vector<std::string> argv{LSP_SWEEPER_BINARY, "run", "--report", "-"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, {{"LSP_SWEEPER_NODE_URL", node_url},
                            {"LSP_SWEEPER_DB_URL", db_uri},
                            {"LSP_SWEEPER_NODE_TOKEN", token}});
}

class SweepFixture : public ::testing::Test {
 protected:
  void serve(nlohmann::json payments, const std::string& dialect = "paginated",
             const std::optional<sim::TlsFiles>& tls = std::nullopt) {
    nlohmann::json doc{
        {"dialect", dialect}, {"height", kHeight}, {"payments", std::move(payments)}};
    node_ = std::make_unique<sim::NodeSimulator>(sim::parse_scenario(doc, sim::unix_now()), kToken,
                                                 tls);
    node_->start();
  }

  void seed_apay(const std::string& hash, const std::string& status, std::int64_t amount,
                 std::optional<std::int64_t> deadline = std::nullopt) {
    testing::seed_apay(db_, hash, status, amount, deadline);
  }
  void seed_relay(const std::string& hash, const std::string& status, std::int64_t amount) {
    testing::seed_relay(db_, hash, status, amount);
  }

  std::string apay_status(const std::string& hash) {
    return db_.query_value<std::string>(
        "SELECT status FROM async_rotating_invoices WHERE payment_hash = $1", hash);
  }
  std::string relay_status(const std::string& hash) {
    return db_.query_value<std::string>(
        "SELECT status FROM lightning_send_mappings WHERE payment_hash = $1", hash);
  }
  int jobs(const std::string& hash, const std::string& action) {
    return db_.query_value<int>(
        "SELECT count(*) FROM async_rotating_invoice_outbox WHERE payment_hash = $1 AND "
        "action = $2 AND status = 'pending'",
        hash, action);
  }
  int count(const std::string& table) {
    return db_.query_value<int>("SELECT count(*) FROM " + table);
  }

  // A number of the only run's report, as the ledger stored it: report_number("summary",
  // "alert_failures").
  std::int64_t report_number(const std::string& section, const std::string& key) {
    if (db_.is_sqlite()) {
      return db_.query_value<std::int64_t>("SELECT json_extract(report, $1) FROM lsp_sweeper.runs",
                                           "$." + section + "." + key);
    }
    return db_.query_value<std::int64_t>(
        "SELECT (report #>> $1::text[])::bigint FROM lsp_sweeper.runs",
        "{" + section + "," + key + "}");
  }

  ProcessResult sweep(const std::vector<std::string>& args = {},
                      const std::string& token = kToken) {
    return run_sweeper(node_->url(), db_.uri_as_sweeper(), args, token);
  }

  static nlohmann::json report(const ProcessResult& r) {
    EXPECT_FALSE(r.out.empty()) << r.err;
    return nlohmann::json::parse(r.out);
  }

  TestDatabase db_;
  std::unique_ptr<sim::NodeSimulator> node_;
};

}  // namespace lsp_sweeper::testing
