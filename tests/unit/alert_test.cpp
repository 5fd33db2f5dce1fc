// What an alert says and when a run owes one: compose_alert over hand-built results, and the
// webhook URL as logs show it.
#include "lsp_sweeper/report/alert.hpp"

#include <gtest/gtest.h>

namespace lsp_sweeper::report {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;
constexpr std::int64_t kRealert = 6 * 3600;

StoredDivergence stored(std::int64_t id, bool is_new, bool needs_person,
                               std::optional<std::int64_t> last_alerted_at = std::nullopt) {
  StoredDivergence d;
  d.id = id;
  d.divergence = {plan::DivergenceKind::AmountMismatch, Flow::Apay, std::string(64, 'a'),
                  "node says 1, record says 2", needs_person};
  d.is_new = is_new;
  d.first_seen_at = kNow - 600;
  d.last_alerted_at = last_alerted_at;
  return d;
}

TEST(Alert, QuietRunOwesNothing) {
  RunResult r;
  r.tracked = {stored(1, false, true, kNow - 60), stored(2, true, false)};
  r.resolved = {stored(3, false, true)};  // never alerted: healed before anyone was told
  EXPECT_FALSE(compose_alert(r, kRealert, kNow));
}

TEST(Alert, NewDivergenceNeedingAPersonIsSentAndMarked) {
  RunResult r;
  r.node.url = "http://node:3001";
  r.tracked = {stored(7, true, true)};
  const auto alert = compose_alert(r, kRealert, kNow);
  ASSERT_TRUE(alert);
  EXPECT_EQ(alert->divergence_ids, std::vector<std::int64_t>{7});
  ASSERT_EQ(alert->body["new_divergences"].size(), 1u);
  EXPECT_EQ(alert->body["new_divergences"][0]["kind"], "amount_mismatch");
  const std::string text = alert->body["text"];
  EXPECT_NE(text.find("http://node:3001"), std::string::npos) << text;
  EXPECT_NE(text.find("node says 1, record says 2"), std::string::npos) << text;
}

TEST(Alert, OngoingIsRemindedOnlyAfterRealertAfter) {
  RunResult r;
  r.tracked = {stored(1, false, true, kNow - kRealert + 1)};
  EXPECT_FALSE(compose_alert(r, kRealert, kNow));
  r.tracked = {stored(1, false, true, kNow - kRealert)};
  const auto alert = compose_alert(r, kRealert, kNow);
  ASSERT_TRUE(alert);
  EXPECT_EQ(alert->body["ongoing_divergences"].size(), 1u);
  // Never delivered (every webhook failed last time): due now.
  r.tracked = {stored(1, false, true)};
  EXPECT_TRUE(compose_alert(r, kRealert, kNow));
}

TEST(Alert, ResolvedAfterAnAlertAndAppliedRepairsAreNews) {
  RunResult r;
  r.resolved = {stored(4, false, true, kNow - 60)};
  auto alert = compose_alert(r, kRealert, kNow);
  ASSERT_TRUE(alert);
  EXPECT_EQ(alert->body["resolved_divergences"].size(), 1u);
  EXPECT_TRUE(alert->divergence_ids.empty());

  RunResult repaired;
  plan::Repair repair;
  repair.kind = plan::RepairKind::MissedPaymentSent;
  repair.payment_hash = std::string(64, 'b');
  repaired.repairs = {repair};
  EXPECT_FALSE(compose_alert(repaired, kRealert, kNow)) << "planned but not applied";
  repaired.repairs[0].applied = true;
  alert = compose_alert(repaired, kRealert, kNow);
  ASSERT_TRUE(alert);
  EXPECT_EQ(alert->body["repairs_applied"][0]["kind"], "missed_payment_sent");
}

TEST(Alert, WebhookUrlPathIsNeverShown) {
  EXPECT_EQ(redact_webhook_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/***");
  EXPECT_EQ(redact_webhook_url("https://user:pw@alerts.example:8443/x?token=t"),
            "https://alerts.example:8443/***");
  EXPECT_EQ(redact_webhook_url("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
}

TEST(Alert, PlainHttpWebhookBeyondLoopbackIsRefusedUnlessOptedIn) {
  const std::vector<std::string> safe{"https://hooks.slack.com/services/T0/B0/secret",
                                      "http://127.0.0.1:9000/hook", "http://localhost/hook",
                                      "http://[::1]:9000/hook"};
  EXPECT_NO_THROW(refuse_insecure_webhooks(safe, false));
  const std::vector<std::string> remote{"https://hooks.slack.com/x",
                                        "http://alerts.internal/hook-secret-Z2"};
  try {
    refuse_insecure_webhooks(remote, false);
    ADD_FAILURE() << "plain http:// to a remote webhook was accepted";
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find("refusing plain http:// to alert webhook http://alerts.internal/***"),
              0u)
        << message;
    EXPECT_EQ(message.find("hook-secret-Z2"), std::string::npos) << message;
    EXPECT_NE(message.find("--allow-insecure-http"), std::string::npos) << message;
  }
  EXPECT_NO_THROW(refuse_insecure_webhooks(remote, true));
}

}  // namespace
}  // namespace lsp_sweeper::report
