// The LSP stand-in over real HTTP, on the backend of this run (LSP_SWEEPER_TEST_BACKEND), its
// tables built from the LSP's own DDL (integration/test_db.hpp), the height from the node
// simulator: every answer of the two handlers, what each writes, and the fault injection.
#include "lsp_sim/server.hpp"

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "integration/test_db.hpp"
#include "sim/simulator.hpp"
#include "support/secret.hpp"

extern char** environ;

namespace {

using lsp_sim::kClaimablePath;
using lsp_sim::kPaymentSentPath;
using lsp_sweeper::testing::secret;
using lsp_sweeper::testing::TestDatabase;
using lsp_sweeper::testing::TestDatabaseOptions;

constexpr const char* kToken = "lsp-test-token";
constexpr const char* kNodeToken = "node-test-token";
constexpr std::int64_t kHeight = 800000;
// With the default delta of 144 the LSP wants more than 144 - 39 - 3 = 102 blocks left.
constexpr std::int64_t kDeadline = kHeight + 300;

struct Reply {
  int status = 0;  // 0: no answer (connection refused, timed out)
  std::string body;
  std::string content_type;
};

class LspSimTest : public ::testing::Test {
 protected:
  explicit LspSimTest(TestDatabaseOptions db_options = {})
      : db_(lsp_sweeper::testing::suite_backend(), db_options), node_(scenario(), kNodeToken) {
    node_.start();
  }

  static lsp_sweeper::sim::Scenario scenario() {
    lsp_sweeper::sim::Scenario s;
    s.height = kHeight;
    return s;
  }

  lsp_sim::Options options() const {
    lsp_sim::Options o;
    o.db_url = db_.uri();
    o.token = kToken;
    o.node_url = node_.url();
    o.node_token = kNodeToken;
    return o;
  }

  lsp_sim::Server& lsp() {
    if (!lsp_) lsp_ = std::make_unique<lsp_sim::Server>(options());
    return *lsp_;
  }

  Reply post(const std::string& path, const std::string& body,
             const std::string& authorization = std::string("Bearer ") + kToken,
             std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    httplib::Client client(lsp().url());
    client.set_read_timeout(timeout);
    httplib::Headers headers;
    if (!authorization.empty()) headers.emplace("Authorization", authorization);
    const auto res = client.Post(path.c_str(), headers, body, "application/json");
    if (!res) return {};
    return {res->status, res->body, res->get_header_value("Content-Type")};
  }

  static std::string claimable_body(const std::string& hash, std::int64_t amount,
                                    std::int64_t deadline = kDeadline) {
    return nlohmann::json{
        {"payment_hash", hash}, {"amount_msat", amount}, {"claim_deadline_height", deadline}}
        .dump();
  }
  static std::string payment_sent_body(const std::string& hash, const std::string& preimage) {
    return nlohmann::json{{"payment_hash", hash}, {"payment_preimage", preimage}}.dump();
  }

  // An APay record of the LSP's own shape; returns its id.
  std::int64_t seed_invoice(const std::string& hash, const std::string& status,
                            std::int64_t amount_msat) {
    db_.exec(
        "INSERT INTO async_orders (peer_pubkey, status) VALUES ($1, 'active') "
        "ON CONFLICT (peer_pubkey) DO NOTHING",
        std::string("peer"));
    const auto order = db_.query_value<std::int64_t>(
        "SELECT order_id FROM async_orders WHERE peer_pubkey = $1", std::string("peer"));
    const auto slot = db_.query_value<std::int64_t>(
        "SELECT COALESCE(MAX(invoice_slot), 0) + 1 FROM async_rotating_invoices");
    db_.exec(
        "INSERT INTO async_rotating_invoices (order_id, invoice_slot, hash_index, "
        "payment_hash, amount_msat, expires_at, status) "
        "VALUES ($1, $2, $2, $3, $4, '2030-01-01 00:00:00', $5)",
        order, slot, hash, amount_msat, status);
    return db_.query_value<std::int64_t>(
        "SELECT max(id) FROM async_rotating_invoices WHERE payment_hash = $1", hash);
  }

  void seed_relay(const std::string& hash, const std::string& status) {
    db_.exec(
        "INSERT INTO lightning_send_mappings (payment_hash, outbound_invoice, "
        "outbound_amount_msat, payee_pubkey, inbound_invoice, inbound_amount_msat, status, "
        "expires_at) VALUES ($1, 'lnbcrt-out', 4990000, 'payee', 'lnbcrt-in', 5000000, $2, "
        "'2030-01-01 00:00:00')",
        hash, status);
  }

  std::string invoice_status(std::int64_t id) {
    return db_.query_value<std::string>("SELECT status FROM async_rotating_invoices WHERE id = $1",
                                        id);
  }
  std::string relay_status(const std::string& hash) {
    return db_.query_value<std::string>(
        "SELECT status FROM lightning_send_mappings WHERE payment_hash = $1", hash);
  }
  // The outbox of this test's database: "payment_hash action status" lines.
  std::string jobs() {
    return db_.rows_text(
        "SELECT payment_hash, action, status FROM async_rotating_invoice_outbox ORDER BY id");
  }
  std::int64_t job_count() {
    return db_.query_value<std::int64_t>("SELECT count(*) FROM async_rotating_invoice_outbox");
  }

  static std::string err(const std::string& message) {
    return nlohmann::json{{"error", message}}.dump() + "\n";
  }

  TestDatabase db_;
  lsp_sweeper::sim::NodeSimulator node_;
  std::unique_ptr<lsp_sim::Server> lsp_;
};

const std::string kOk = "{\"ok\":true}\n";

TEST_F(LspSimTest, ClaimableMovesAnActiveRecordWithOneJobAndAReplayChangesNothing) {
  const auto s = secret('a');
  const auto id = seed_invoice(s.hash, "active", 3000000);

  const Reply first = post(kClaimablePath, claimable_body(s.hash, 3000000));
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, kOk);
  EXPECT_EQ(first.content_type, "application/json");
  EXPECT_EQ(invoice_status(id), "claimable");
  EXPECT_EQ(db_.query_value<std::int64_t>(
                "SELECT claim_deadline_height FROM async_rotating_invoices WHERE id = $1", id),
            kDeadline);
  EXPECT_TRUE(db_.query_value<bool>(
      "SELECT claimable_at IS NOT NULL FROM async_rotating_invoices WHERE id = $1", id));
  EXPECT_EQ(jobs(), s.hash + " request_outbound_invoice pending\n");
  const auto row_after_first = db_.rows_text("SELECT * FROM async_rotating_invoices");

  // The LSP's replay answer: 200, nothing written (the deadline already recorded stays).
  const Reply replay = post(kClaimablePath, claimable_body(s.hash, 3000000, kDeadline + 5));
  EXPECT_EQ(replay.status, 200);
  EXPECT_EQ(replay.body, kOk);
  EXPECT_EQ(db_.rows_text("SELECT * FROM async_rotating_invoices"), row_after_first);
  EXPECT_EQ(jobs(), s.hash + " request_outbound_invoice pending\n");
  EXPECT_EQ(node_.request_count("/networkinfo"), 2u) << "APay reads the height every time";
}

TEST_F(LspSimTest, ClaimableTakesTheHashInAnyCaseAndWithSpaces) {
  const auto s = secret('b');
  const auto id = seed_invoice(s.hash, "active", 1000);
  std::string upper = s.hash;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  // json.Decoder reads the first value only: what follows it is never looked at.
  EXPECT_EQ(post(kClaimablePath, claimable_body(" " + upper + "\n", 1000) + " trailing").status,
            200);
  EXPECT_EQ(invoice_status(id), "claimable");
  EXPECT_EQ(jobs(), s.hash + " request_outbound_invoice pending\n");
}

TEST_F(LspSimTest, ClaimableRefusalsWriteNothing) {
  const auto s = secret('c');
  const auto id = seed_invoice(s.hash, "active", 3000000);
  const auto body = claimable_body(s.hash, 3000000);

  // Authentication first, whatever the body.
  EXPECT_EQ(post(kClaimablePath, body, "").body, err("unauthorized"));
  EXPECT_EQ(post(kClaimablePath, "garbage", "Bearer wrong").status, 401);
  EXPECT_EQ(post(kClaimablePath, body, std::string("bearer ") + kToken).status, 401);
  EXPECT_EQ(post(kClaimablePath, body, "").content_type, "application/json");

  for (const char* bad : {"", "garbage", "[]", "{\"amount_msat\": \"3000000\"}",
                          "{\"amount_msat\": -1}", "{\"amount_msat\": 1.5}",
                          "{\"claim_deadline_height\": 4294967296}", "{\"payment_hash\": 7}"}) {
    const Reply r = post(kClaimablePath, bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(r.body, err("invalid json")) << bad;
  }
  for (const std::string& missing :
       {"{\"payment_hash\": \"" + s.hash + "\", \"amount_msat\": 3000000}",
        claimable_body(s.hash, 3000000, 0), std::string("null"),
        "{\"payment_hash\": \"" + s.hash + "\", \"claim_deadline_height\": null}"}) {
    EXPECT_EQ(post(kClaimablePath, missing).body, err("claim_deadline_height is required"))
        << missing;
  }
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 3000000, kHeight)).body,
            err("claim_deadline_height 800000 already passed; current height 800000"));
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 3000000, kHeight + 102)).body,
            err("claim_deadline_height 800102 is too close to current height 800000 (have 102 "
                "blocks, need more than 102)"));
  const Reply mismatch = post(kClaimablePath, claimable_body(s.hash, 2999999));
  EXPECT_EQ(mismatch.status, 400);
  EXPECT_EQ(mismatch.body, err("async rotating invoice amount_msat mismatch"));
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 0)).body,
            err("async rotating invoice invalid amount_msat"));
  const Reply unknown = post(kClaimablePath, claimable_body(secret('d').hash, 3000000));
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body, err("claimable invoice not found"));
  // The relay lookup runs first and refuses a hash that is not hex: a 500, as the LSP's.
  EXPECT_EQ(post(kClaimablePath, claimable_body("zz", 3000000)).body, err("invalid payment_hash"));
  // Keys match case-insensitively, as encoding/json does: this one is a mismatch, not a 404.
  EXPECT_EQ(post(kClaimablePath, "{\"PAYMENT_HASH\": \"" + s.hash +
                                     "\", \"Amount_Msat\": 1, \"claim_deadline_height\": " +
                                     std::to_string(kDeadline) + "}")
                .status,
            400);

  EXPECT_EQ(invoice_status(id), "active");
  EXPECT_EQ(job_count(), 0);
}

TEST_F(LspSimTest, ClaimableJustFarEnoughIsApplied) {
  const auto s = secret('e');
  const auto id = seed_invoice(s.hash, "active", 10);
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 10, kHeight + 103)).status, 200);
  EXPECT_EQ(invoice_status(id), "claimable");
}

TEST_F(LspSimTest, ClaimableBelowActiveIsNotFoundAndAtOrBeyondIsOk) {
  const auto reserved = secret('f');
  const auto reserved_id = seed_invoice(reserved.hash, "reserved", 10);
  EXPECT_EQ(post(kClaimablePath, claimable_body(reserved.hash, 10)).status, 404);
  EXPECT_EQ(invoice_status(reserved_id), "reserved");

  const auto paid = secret('g');
  const auto paid_id = seed_invoice(paid.hash, "outbound_paid", 10);
  EXPECT_EQ(post(kClaimablePath, claimable_body(paid.hash, 10)).body, kOk);
  EXPECT_EQ(invoice_status(paid_id), "outbound_paid");
  EXPECT_EQ(job_count(), 0);
}

TEST_F(LspSimTest, ClaimableFindsATerminalTwinFirstAsTheLspDoes) {
  // LIMIT 1 without a status filter: the older failed row is the one whose amount is checked.
  const auto s = secret('h');
  const auto failed = seed_invoice(s.hash, "failed", 111);
  const auto live = seed_invoice(s.hash, "active", 222);
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 222)).body,
            err("async rotating invoice amount_msat mismatch"));
  EXPECT_EQ(invoice_status(live), "active");

  // Same amount: the check passes on the twin, and the UPDATE moves the live row.
  db_.exec("UPDATE async_rotating_invoices SET amount_msat = 222 WHERE id = $1", failed);
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 222)).body, kOk);
  EXPECT_EQ(invoice_status(live), "claimable");
  EXPECT_EQ(invoice_status(failed), "failed");
  EXPECT_EQ(jobs(), s.hash + " request_outbound_invoice pending\n");
}

TEST_F(LspSimTest, AnAmountTheLspCannotScanIsA500) {
  const auto s = secret('y');
  const auto id = seed_invoice(s.hash, "active", -5);
  const std::string column = db_.is_sqlite() ? "10" : "8";  // its place in the LSP's SELECT
  const std::string scan_error = err("sql: Scan error on column index " + column +
                                     ", name \"amount_msat\": converting driver.Value type int64 "
                                     "(\"-5\") to a uint64: invalid syntax");
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 5)).body, scan_error);
  EXPECT_EQ(invoice_status(id), "active");
  // payment_sent reaches the Scan in the reload after its UPDATE changed nothing.
  EXPECT_EQ(post(kPaymentSentPath, payment_sent_body(s.hash, s.preimage)).body, scan_error);
  EXPECT_EQ(job_count(), 0);
}

TEST_F(LspSimTest, OnSqliteAHeldWriteLockFailsClaimableAtOnceAsItFailsTheLsp) {
  if (!db_.is_sqlite()) GTEST_SKIP() << "the LSP's SQLite locking";
  const auto s = secret('z');
  const auto id = seed_invoice(s.hash, "active", 10);
  db_.exec("BEGIN IMMEDIATE");  // a writer between the LSP's read and its UPDATE
  const auto start = std::chrono::steady_clock::now();
  const Reply r = post(kClaimablePath, claimable_body(s.hash, 10));
  const auto waited = std::chrono::steady_clock::now() - start;
  db_.exec("ROLLBACK");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, err("database is locked"));
  // The deferred transaction has read first, so SQLite refuses without the 5 s busy wait.
  EXPECT_LT(waited, std::chrono::seconds(4));
  EXPECT_EQ(invoice_status(id), "active");
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 10)).body, kOk);
}

TEST_F(LspSimTest, ClaimableNeedsTheNodesHeight) {
  const auto s = secret('i');
  const auto id = seed_invoice(s.hash, "active", 10);
  node_.fail_next("/networkinfo", 500, 1, "Boom");
  const Reply failing = post(kClaimablePath, claimable_body(s.hash, 10));
  EXPECT_EQ(failing.status, 503);
  EXPECT_EQ(failing.body.rfind(
                "{\"error\":\"claim deadline validation dependency unavailable: RGB Lightning API "
                "error 500: ",
                0),
            0u)
      << failing.body;
  EXPECT_NE(failing.body.find("(HTTP 500)"), std::string::npos) << failing.body;

  node_.stop();
  const Reply down = post(kClaimablePath, claimable_body(s.hash, 10));
  EXPECT_EQ(down.status, 503);
  EXPECT_NE(down.body.find("dependency unavailable: failed to make HTTP request: Get"),
            std::string::npos)
      << down.body;
  EXPECT_EQ(invoice_status(id), "active");
  EXPECT_EQ(job_count(), 0);
}

TEST_F(LspSimTest, ClaimableSendsTheNodeItsToken) {
  auto o = options();
  o.node_token = "not-the-node-token";
  lsp_ = std::make_unique<lsp_sim::Server>(o);
  const auto s = secret('j');
  seed_invoice(s.hash, "active", 10);
  const Reply r = post(kClaimablePath, claimable_body(s.hash, 10));
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("RGB Lightning API error 401"), std::string::npos) << r.body;
}

TEST_F(LspSimTest, ClaimableRelayRecordsTheDeadlineWithItsJobWithoutTheHeight) {
  if (!db_.has_relay()) GTEST_SKIP();
  const auto s = secret('k');
  seed_relay(s.hash, "quoted");
  node_.stop();  // the relay flow does not read the height
  // No amount check either: the relay flow takes the deadline alone.
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 1, kHeight + 1)).body, kOk);
  EXPECT_EQ(relay_status(s.hash), "claimable");
  EXPECT_EQ(db_.query_value<std::int64_t>(
                "SELECT claim_deadline_height FROM lightning_send_mappings WHERE payment_hash = $1",
                s.hash),
            kHeight + 1);
  EXPECT_EQ(jobs(), s.hash + " lightning_send_pay_outbound pending\n");
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 1, kHeight + 9)).body, kOk);
  EXPECT_EQ(jobs(), s.hash + " lightning_send_pay_outbound pending\n");
  EXPECT_EQ(db_.query_value<std::int64_t>(
                "SELECT claim_deadline_height FROM lightning_send_mappings WHERE payment_hash = $1",
                s.hash),
            kHeight + 1);

  const auto odd = secret('l');
  seed_relay(odd.hash, "weird");
  EXPECT_EQ(post(kClaimablePath, claimable_body(odd.hash, 1)).body,
            err("lightning send " + odd.hash + " in unexpected status \"weird\" before claimable"));
}

TEST_F(LspSimTest, ClaimableWithTheRelayFlowDisabledLeavesRelayRecordsAlone) {
  if (!db_.has_relay()) GTEST_SKIP();
  auto o = options();
  o.lightning_send_enabled = false;
  lsp_ = std::make_unique<lsp_sim::Server>(o);
  const auto s = secret('m');
  seed_relay(s.hash, "quoted");
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 5000000)).status, 404);
  EXPECT_EQ(relay_status(s.hash), "quoted");
  EXPECT_EQ(job_count(), 0);
}

TEST_F(LspSimTest, PaymentSentMovesOutboundPaidToOutboundClaimedWithOneJob) {
  const auto s = secret('n');
  const auto id = seed_invoice(s.hash, "outbound_paid", 10);
  const Reply first = post(kPaymentSentPath, payment_sent_body(s.hash, s.preimage));
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, kOk);
  EXPECT_EQ(invoice_status(id), "outbound_claimed");
  EXPECT_EQ(db_.query_value<std::string>(
                "SELECT payment_preimage FROM async_rotating_invoices WHERE id = $1", id),
            s.preimage);
  EXPECT_EQ(jobs(), s.hash + " claim_inbound_invoice pending\n");
  // A replay, in upper case: at or beyond outbound_claimed is 200, and nothing more.
  std::string upper = s.preimage;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(post(kPaymentSentPath, payment_sent_body(s.hash, upper)).body, kOk);
  EXPECT_EQ(jobs(), s.hash + " claim_inbound_invoice pending\n");
  EXPECT_EQ(node_.request_count("/networkinfo"), 0u);
}

TEST_F(LspSimTest, PaymentSentAnswers) {
  const auto early = secret('o');
  const auto early_id = seed_invoice(early.hash, "claimable", 10);
  const Reply r503 = post(kPaymentSentPath, payment_sent_body(early.hash, early.preimage));
  EXPECT_EQ(r503.status, 503);
  EXPECT_EQ(r503.body, err("payment_sent received before outbound payment was confirmed locally"));
  EXPECT_EQ(invoice_status(early_id), "claimable");

  const auto stranger = secret('p');
  const Reply ignored = post(kPaymentSentPath, payment_sent_body(stranger.hash, stranger.preimage));
  EXPECT_EQ(ignored.status, 200);
  EXPECT_EQ(ignored.body, "{\"ignored\":true,\"ok\":true}\n");

  // A terminal record is at or beyond outbound_paid: the LSP answers 200 and writes nothing.
  const auto failed = secret('q');
  const auto failed_id = seed_invoice(failed.hash, "failed", 10);
  EXPECT_EQ(post(kPaymentSentPath, payment_sent_body(failed.hash, failed.preimage)).body, kOk);
  EXPECT_EQ(invoice_status(failed_id), "failed");

  EXPECT_EQ(post(kPaymentSentPath, payment_sent_body("zz", early.preimage)).body,
            err("invalid payment_hash"));
  EXPECT_EQ(post(kPaymentSentPath, payment_sent_body(early.hash, early.preimage + "00")).body,
            err("invalid payment_preimage"));
  EXPECT_EQ(post(kPaymentSentPath, payment_sent_body(early.hash, stranger.preimage)).body,
            err("payment_preimage does not match payment_hash"));
  EXPECT_EQ(post(kPaymentSentPath, "{\"payment_hash\": 1}").body, err("invalid json"));
  EXPECT_EQ(post(kPaymentSentPath, payment_sent_body(early.hash, early.preimage), "").status, 401);
  EXPECT_EQ(job_count(), 0);
}

TEST_F(LspSimTest, PaymentSentRelay) {
  if (!db_.has_relay()) GTEST_SKIP();
  const auto s = secret('r');
  seed_relay(s.hash, "outbound_pending");
  EXPECT_EQ(post(kPaymentSentPath, payment_sent_body(s.hash, s.preimage)).body, kOk);
  EXPECT_EQ(relay_status(s.hash), "outbound_claimed");
  EXPECT_EQ(
      db_.query_value<std::string>(
          "SELECT payment_preimage FROM lightning_send_mappings WHERE payment_hash = $1", s.hash),
      s.preimage);
  EXPECT_EQ(jobs(), s.hash + " lightning_send_claim_inbound pending\n");
  EXPECT_EQ(post(kPaymentSentPath, payment_sent_body(s.hash, s.preimage)).body, kOk);
  EXPECT_EQ(jobs(), s.hash + " lightning_send_claim_inbound pending\n");

  const auto quoted = secret('s');
  seed_relay(quoted.hash, "quoted");
  EXPECT_EQ(post(kPaymentSentPath, payment_sent_body(quoted.hash, quoted.preimage)).body,
            err("lightning send " + quoted.hash +
                " in unexpected status \"quoted\" before outbound claim"));
  EXPECT_EQ(relay_status(quoted.hash), "quoted");
}

TEST_F(LspSimTest, FailNextAnswersBeforeAuthenticationAndTouchesNothing) {
  const auto s = secret('t');
  const auto id = seed_invoice(s.hash, "active", 10);
  lsp().fail_next(kClaimablePath, 502, 2, "proxy down");
  for (int i = 0; i < 2; ++i) {
    const Reply r = post(kClaimablePath, claimable_body(s.hash, 10), "");
    EXPECT_EQ(r.status, 502);
    EXPECT_EQ(r.body, err("proxy down"));
    EXPECT_EQ(r.content_type, "application/json");
  }
  EXPECT_EQ(invoice_status(id), "active");
  EXPECT_EQ(post(kPaymentSentPath, payment_sent_body(s.hash, s.preimage)).status, 503)
      << "another path is not failed";
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 10)).body, kOk);
  EXPECT_EQ(invoice_status(id), "claimable");

  EXPECT_EQ(lsp().request_count(kClaimablePath), 3u);
  EXPECT_EQ(lsp().request_count(kPaymentSentPath), 1u);
  EXPECT_EQ(lsp().request_count(), 4u);
  const auto log = lsp().requests();
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[0].path, kClaimablePath);
  EXPECT_EQ(log[0].status, 502);
  EXPECT_EQ(log[0].authorization, "");
  EXPECT_EQ(log[0].body, claimable_body(s.hash, 10));
  EXPECT_EQ(log[2].path, kPaymentSentPath);
  EXPECT_EQ(log[3].status, 200);
  EXPECT_EQ(log[3].answer, kOk);
  EXPECT_EQ(log[3].authorization, std::string("Bearer ") + kToken);
}

TEST_F(LspSimTest, DelayedAnswersTimeOutAClientThatWillNotWait) {
  const auto s = secret('u');
  const auto id = seed_invoice(s.hash, "active", 10);
  lsp().set_delay(kClaimablePath, std::chrono::milliseconds(800));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 10), std::string("Bearer ") + kToken,
                 std::chrono::milliseconds(200))
                .status,
            0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(700));
  // The LSP still handles the request its client gave up on: the record moves.
  for (int i = 0; i < 100 && invoice_status(id) != "claimable"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(invoice_status(id), "claimable");
  lsp().set_delay(kClaimablePath, std::chrono::milliseconds(0));
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 10), std::string("Bearer ") + kToken,
                 std::chrono::milliseconds(200))
                .status,
            200);
}

TEST_F(LspSimTest, StopClosesThePort) {
  const std::string url = lsp().url();
  lsp().stop();
  httplib::Client client(url);
  const auto res = client.Post(kClaimablePath, "{}", "application/json");
  EXPECT_FALSE(res);
  EXPECT_EQ(res.error(), httplib::Error::Connection);
  lsp().stop();  // idempotent
}

TEST_F(LspSimTest, BeforeHandlingLetsTheLiveCallbackWinTheRace) {
  const auto s = secret('v');
  const auto id = seed_invoice(s.hash, "active", 10);
  std::vector<std::string> seen;
  lsp().before_handling([&](const std::string& path, const std::string& body) {
    seen.push_back(path + " " + body);
    if (seen.size() == 1) {
      // The node's own callback lands first, through the same server.
      EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 10)).body, kOk);
    }
  });
  EXPECT_EQ(post(kClaimablePath, claimable_body(s.hash, 10, kDeadline + 7)).body, kOk);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::string(kClaimablePath) + " " + claimable_body(s.hash, 10, kDeadline + 7));
  EXPECT_EQ(invoice_status(id), "claimable");
  EXPECT_EQ(db_.query_value<std::int64_t>(
                "SELECT claim_deadline_height FROM async_rotating_invoices WHERE id = $1", id),
            kDeadline)
      << "the live callback's deadline, not the replay's";
  EXPECT_EQ(jobs(), s.hash + " request_outbound_invoice pending\n");
  // Unauthenticated requests never reach the hook.
  EXPECT_EQ(post(kClaimablePath, "{}", "").status, 401);
  EXPECT_EQ(seen.size(), 2u);
}

TEST_F(LspSimTest, OtherMethodsAndPathsAnswerAsGosServeMux) {
  httplib::Client client(lsp().url());
  const auto get = client.Get(kClaimablePath);
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
  EXPECT_EQ(get->get_header_value("Allow"), "POST");
  const auto other = client.Post("/internal/async_order/new", "{}", "application/json");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  EXPECT_EQ(other->body, "404 page not found\n");
}

class LspSimWithoutRelayTest : public LspSimTest {
 protected:
  LspSimWithoutRelayTest() : LspSimTest(TestDatabaseOptions{/*relay=*/false}) {}
};

TEST_F(LspSimWithoutRelayTest, NoRelayTableOwnsNothing) {
  const auto s = secret('w');
  // Without the relay lookup, a hash that is not hex gets as far as the APay store.
  EXPECT_EQ(post(kClaimablePath, claimable_body("zz", 10)).body, err("invalid payment_hash"));
  EXPECT_EQ(node_.request_count("/networkinfo"), 1u);
  EXPECT_EQ(post(kPaymentSentPath, payment_sent_body(s.hash, s.preimage)).body,
            "{\"ignored\":true,\"ok\":true}\n");
}

TEST_F(LspSimTest, TheProgramServesUntilSigterm) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<std::string> env_strings = {std::string("LSP_SIMULATOR_TOKEN=") + kToken,
                                          std::string("LSP_SIMULATOR_NODE_TOKEN=") + kNodeToken};
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> env;
  for (auto& e : env_strings) env.push_back(e.data());
  env.push_back(nullptr);
  std::vector<std::string> args = {LSP_SIMULATOR_BINARY, "--db", db_.uri(), "--node-url",
                                   node_.url()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, LSP_SIMULATOR_BINARY, &actions, nullptr, argv.data(), env.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  // A failed assertion below must not leave the program running.
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid > 0 && kill(pid, SIGKILL) == 0) waitpid(pid, nullptr, 0);
    }
  } reaper{pid};
  close(out[1]);
  FILE* stdout_of = fdopen(out[0], "r");
  char line[256] = {};
  ASSERT_NE(fgets(line, sizeof line, stdout_of), nullptr);
  const std::string text = line;
  ASSERT_EQ(text.rfind("listening on http://127.0.0.1:", 0), 0u) << text;
  const std::string url = text.substr(std::string("listening on ").size(),
                                      text.size() - std::string("listening on ").size() - 1);

  const auto s = secret('x');
  const auto id = seed_invoice(s.hash, "active", 10);
  httplib::Client client(url);
  const auto res = client.Post(kClaimablePath, {{"Authorization", std::string("Bearer ") + kToken}},
                               claimable_body(s.hash, 10), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(invoice_status(id), "claimable");

  kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  reaper.pid = 0;
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(fgets(line, sizeof line, stdout_of), nullptr) << "one line only: " << line;
  fclose(stdout_of);
}

}  // namespace
