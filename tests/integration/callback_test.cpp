// --apply lsp-callbacks end to end, on every backend: the real binary replays missed callbacks to
// lsp-simulator (tests/lsp_sim, utexo-lsp's two handlers over the LSP's real tables), which
// applies them with the LSP's own statements; the node simulator is the node.
#include <httplib.h>

#include <chrono>
#include <map>
#include <memory>

#include "integration/sweep_fixture.hpp"
#include "lsp_sim/server.hpp"

namespace lsp_sweeper::testing {
namespace {

constexpr const char* kLspToken = "lsp-bearer-token-Zq81";

class Callbacks : public SweepFixture {
 protected:
  void start_lsp(bool with_node = true) {
    lsp_sim::Options o;
    o.db_url = db_.uri();
    o.token = kLspToken;
    if (with_node) {
      o.node_url = node_->url();
      o.node_token = kToken;
    }
    lsp_ = std::make_unique<lsp_sim::Server>(o);
  }

  ProcessResult replay(const std::vector<std::string>& args = {},
                       const std::string& lsp_token = kLspToken) {
    std::vector<std::string> argv{LSP_SWEEPER_BINARY, "run",           "--report",  "-",
                                  "--apply",          "lsp-callbacks", "--lsp-url", lsp_->url()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, {{"LSP_SWEEPER_NODE_URL", node_->url()},
                              {"LSP_SWEEPER_DB_URL", db_.uri_as_callbacks_sweeper()},
                              {"LSP_SWEEPER_NODE_TOKEN", kToken},
                              {"LSP_SWEEPER_LSP_TOKEN", lsp_token}});
  }

  // The replays the LSP answered, as "path status".
  std::vector<std::string> answered() {
    std::vector<std::string> out;
    for (const auto& r : lsp_->requests()) out.push_back(r.path + " " + std::to_string(r.status));
    return out;
  }

  static const nlohmann::json& only_repair(const nlohmann::json& report) {
    EXPECT_EQ(report["repairs"].size(), 1u) << report.dump(2);
    return report["repairs"].at(0);
  }

  std::unique_ptr<lsp_sim::Server> lsp_;
};

TEST_F(Callbacks, EachMissedTransitionIsDeliveredOnceAndAppliedByTheLsp) {
  const Secret claim = secret('1'), sent = secret('2'), relay_claim = secret('3'),
               relay_sent = secret('4');
  nlohmann::json payments = {hodl_claimable(claim.hash, 3000000),
                             outbound_succeeded(sent.hash, sent.preimage)};
  seed_apay(claim.hash, "active", 3000000);
  seed_apay(sent.hash, "outbound_paid", 1000000);
  if (db_.has_relay()) {
    payments.push_back(hodl_claimable(relay_claim.hash, 5000000, kHeight + 50));
    payments.push_back(outbound_succeeded(relay_sent.hash, relay_sent.preimage));
    seed_relay(relay_claim.hash, "quoted", 5000000);
    seed_relay(relay_sent.hash, "outbound_pending", 1000000);
  }
  serve(payments);
  start_lsp();

  const ProcessResult first = replay();
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto report = nlohmann::json::parse(first.out);
  EXPECT_EQ(report["apply"], "lsp-callbacks");
  const std::size_t expected = db_.has_relay() ? 4 : 2;
  ASSERT_EQ(report["repairs"].size(), expected) << report.dump(2);
  for (const auto& r : report["repairs"]) {
    EXPECT_TRUE(r["applied"].get<bool>()) << r.dump();
    EXPECT_EQ(r["lsp_answer"]["outcome"], "applied") << r.dump();
    EXPECT_EQ(r["lsp_answer"]["http_status"], 200);
  }
  EXPECT_EQ(lsp_->request_count(), expected);
  EXPECT_EQ(apay_status(claim.hash), "claimable");
  EXPECT_EQ(apay_status(sent.hash), "outbound_claimed");
  EXPECT_EQ(jobs(claim.hash, "request_outbound_invoice"), 1);
  EXPECT_EQ(jobs(sent.hash, "claim_inbound_invoice"), 1);
  EXPECT_EQ(db_.query_value<std::string>(
                "SELECT payment_preimage FROM async_rotating_invoices WHERE payment_hash = $1",
                sent.hash),
            sent.preimage);
  if (db_.has_relay()) {
    EXPECT_EQ(relay_status(relay_claim.hash), "claimable");
    EXPECT_EQ(relay_status(relay_sent.hash), "outbound_claimed");
    EXPECT_EQ(jobs(relay_claim.hash, "lightning_send_pay_outbound"), 1);
    EXPECT_EQ(jobs(relay_sent.hash, "lightning_send_claim_inbound"), 1);
  }
  // The ledger as in --apply db: one audit row a replay, the run's row.
  EXPECT_EQ(count("lsp_sweeper.actions"), static_cast<int>(expected));
  EXPECT_EQ(db_.query_value<int>("SELECT count(*) FROM lsp_sweeper.actions WHERE applied"),
            static_cast<int>(expected));
  EXPECT_EQ(count("lsp_sweeper.runs"), 1);

  const ProcessResult second = replay();
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_TRUE(nlohmann::json::parse(second.out)["repairs"].empty());
  EXPECT_EQ(lsp_->request_count(), expected);  // nothing sent again
}

TEST_F(Callbacks, DryRunSendsNothing) {
  const Secret claim = secret('1');
  seed_apay(claim.hash, "active", 3000000);
  serve({hodl_claimable(claim.hash, 3000000)});
  start_lsp();
  const std::string before = lsp_state(db_);

  const ProcessResult r = replay({"--dry-run"});
  EXPECT_EQ(r.exit_code, 1) << r.err;  // a dry run that found a repair
  EXPECT_EQ(only_repair(report(r))["applied"], false);
  EXPECT_EQ(lsp_->request_count(), 0u);
  EXPECT_EQ(lsp_state(db_), before);
  EXPECT_EQ(count("lsp_sweeper.actions"), 0);
}

TEST_F(Callbacks, ALiveCallbackRacingTheReplayLeavesOneJob) {
  const Secret sent = secret('1');
  seed_apay(sent.hash, "outbound_paid", 1000000);
  serve({outbound_succeeded(sent.hash, sent.preimage)});
  start_lsp();
  // The node's own callback reaches the LSP just before the replay is handled.
  const std::string url = lsp_->url();
  bool raced = false;
  lsp_->before_handling([&](const std::string& path, const std::string& body) {
    if (raced) return;
    raced = true;
    httplib::Client live(url);
    const auto answer = live.Post(path, {{"Authorization", std::string("Bearer ") + kLspToken}},
                                  body, "application/json");
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 200);
  });

  const ProcessResult r = replay();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(raced);
  EXPECT_EQ(answered(),
            (std::vector<std::string>{std::string(lsp_sim::kPaymentSentPath) + " 200",
                                      std::string(lsp_sim::kPaymentSentPath) + " 200"}));
  EXPECT_EQ(apay_status(sent.hash), "outbound_claimed");
  EXPECT_EQ(
      db_.query_value<int>(
          "SELECT count(*) FROM async_rotating_invoice_outbox WHERE payment_hash = $1", sent.hash),
      1);
}

TEST_F(Callbacks, ServerErrorsAreRetriedAndThenDelivered) {
  const Secret sent = secret('1');
  seed_apay(sent.hash, "outbound_paid", 1000000);
  serve({outbound_succeeded(sent.hash, sent.preimage)});
  start_lsp();
  lsp_->fail_next(lsp_sim::kPaymentSentPath, 500, 2);

  const ProcessResult r = replay();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rep = report(r);
  const auto& repair = only_repair(rep);
  EXPECT_TRUE(repair["applied"].get<bool>());
  EXPECT_EQ(repair["lsp_answer"]["attempts"], 3);
  EXPECT_EQ(lsp_->request_count(), 3u);
  EXPECT_EQ(jobs(sent.hash, "claim_inbound_invoice"), 1);
}

TEST_F(Callbacks, AnLspThatStaysDownEndsTheRunForLaterAndTheNextRunDelivers) {
  const Secret first = secret('1'), second = secret('2');
  seed_apay(first.hash, "outbound_paid", 1000000);
  seed_apay(second.hash, "outbound_paid", 1000000);
  serve({outbound_succeeded(first.hash, first.preimage),
         outbound_succeeded(second.hash, second.preimage)});
  start_lsp();
  // A proxy in front of the LSP answers 502 to everything: the first replay gets all its
  // attempts, the second none.
  lsp_->fail_next(lsp_sim::kPaymentSentPath, 502, 100);

  const ProcessResult down = replay();
  EXPECT_EQ(down.exit_code, 75) << down.err;
  const auto failed = report(down);
  EXPECT_FALSE(failed["complete"].get<bool>());
  EXPECT_NE(failed["error"].get<std::string>().find("after 3 attempt(s): HTTP 502"),
            std::string::npos)
      << failed["error"];
  ASSERT_EQ(failed["repairs"].size(), 1u);
  EXPECT_EQ(failed["repairs"][0]["lsp_answer"]["outcome"], "failed");
  EXPECT_EQ(lsp_->request_count(), 3u);
  EXPECT_EQ(count("lsp_sweeper.actions"), 1);  // the failed replay's audit row
  EXPECT_EQ(apay_status(first.hash), "outbound_paid");

  // The LSP goes away altogether: no answer at all is the same.
  lsp_->stop();
  const ProcessResult gone = replay({"--timeout", "2"});
  EXPECT_EQ(gone.exit_code, 75) << gone.err;

  start_lsp();
  const ProcessResult back = replay();
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(apay_status(first.hash), "outbound_claimed");
  EXPECT_EQ(apay_status(second.hash), "outbound_claimed");
}

TEST_F(Callbacks, ASlowLspIsWaitedForWithinTheTimeout) {
  const Secret sent = secret('1');
  seed_apay(sent.hash, "outbound_paid", 1000000);
  serve({outbound_succeeded(sent.hash, sent.preimage)});
  start_lsp();
  lsp_->set_delay(lsp_sim::kPaymentSentPath, std::chrono::milliseconds(1500));

  const ProcessResult r = replay({"--timeout", "5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(only_repair(report(r))["applied"].get<bool>());
  EXPECT_EQ(lsp_->request_count(), 1u);
}

TEST_F(Callbacks, TheLspNotYetAbleToActLeavesTheRepairForTheNextRun) {
  const Secret claim = secret('1');
  seed_apay(claim.hash, "active", 3000000);
  serve({hodl_claimable(claim.hash, 3000000)});
  start_lsp(/*with_node=*/false);  // the LSP cannot read the node's height: 503

  const ProcessResult r = replay();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rep = report(r);
  EXPECT_EQ(only_repair(rep)["lsp_answer"]["outcome"], "deferred");
  EXPECT_EQ(only_repair(rep)["lsp_answer"]["http_status"], 503);
  EXPECT_EQ(rep["summary"]["deferred"], 1);
  EXPECT_TRUE(rep["divergences"].empty());
  EXPECT_EQ(apay_status(claim.hash), "active");
  EXPECT_EQ(lsp_->request_count(), 1u);  // 503 is the LSP's "not yet": not retried in the run

  start_lsp();
  const ProcessResult next = replay();
  ASSERT_EQ(next.exit_code, 0) << next.err;
  EXPECT_EQ(apay_status(claim.hash), "claimable");
}

TEST_F(Callbacks, WhatTheLspRefusesIsADivergenceWithItsMessage) {
  const Secret claim = secret('1');
  // 60 blocks left: within the sweeper's --claim-min-blocks 10, not within the LSP's 102.
  seed_apay(claim.hash, "active", 3000000);
  serve({hodl_claimable(claim.hash, 3000000, kHeight + 60)});
  start_lsp();

  const ProcessResult r = replay({"--claim-min-blocks", "10"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const auto rep = report(r);
  EXPECT_EQ(only_repair(rep)["lsp_answer"]["outcome"], "refused");
  EXPECT_EQ(only_repair(rep)["lsp_answer"]["http_status"], 400);
  ASSERT_EQ(rep["divergences"].size(), 1u) << rep.dump(2);
  EXPECT_EQ(rep["divergences"][0]["kind"], "lsp_callback_not_applied");
  EXPECT_NE(rep["divergences"][0]["detail"].get<std::string>().find("too close to current height"),
            std::string::npos)
      << rep["divergences"][0]["detail"];
  EXPECT_EQ(apay_status(claim.hash), "active");
}

TEST_F(Callbacks, AWrongTokenEndsTheRunAndIsNeverPrinted) {
  const Secret sent = secret('1');
  seed_apay(sent.hash, "outbound_paid", 1000000);
  serve({outbound_succeeded(sent.hash, sent.preimage)});
  start_lsp();
  const std::string wrong = "wrong-lsp-token-Kd93xq";

  const ProcessResult r = replay({}, wrong);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(report(r)["error"].get<std::string>().find("refused the sweeper's token (HTTP 401"),
            std::string::npos);
  EXPECT_EQ(lsp_->request_count(), 1u);
  for (const std::string* text : {&r.out, &r.err}) {
    EXPECT_EQ(text->find(wrong), std::string::npos);
    EXPECT_EQ(text->find(kLspToken), std::string::npos);
  }
  EXPECT_EQ(apay_status(sent.hash), "outbound_paid");
}

TEST_F(Callbacks, AMissingOutboxJobIsReportedNotWritten) {
  const Secret waiting = secret('1');
  seed_apay(waiting.hash, "outbound_claimed", 1000000);
  serve(nlohmann::json::array());
  start_lsp();

  const ProcessResult r = replay();
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const auto rep = report(r);
  ASSERT_EQ(rep["divergences"].size(), 1u) << rep.dump(2);
  EXPECT_EQ(rep["divergences"][0]["kind"], "outbox_job_missing");
  EXPECT_EQ(count("async_rotating_invoice_outbox"), 0);
  EXPECT_EQ(lsp_->request_count(), 0u);
}

TEST_F(Callbacks, CheckVerifiesTheEndpointAndTheTokenMovingNothing) {
  seed_apay(secret('1').hash, "outbound_paid", 1000000);
  serve(nlohmann::json::array());
  start_lsp();
  const std::string before = lsp_state(db_);
  const auto check = [&](const std::string& token) {
    return run_process(
        {LSP_SWEEPER_BINARY, "check", "--apply", "lsp-callbacks", "--lsp-url", lsp_->url()},
        {{"LSP_SWEEPER_NODE_URL", node_->url()},
         {"LSP_SWEEPER_DB_URL", db_.uri_as_callbacks_sweeper()},
         {"LSP_SWEEPER_NODE_TOKEN", kToken},
         {"LSP_SWEEPER_LSP_TOKEN", token}});
  };

  const ProcessResult good = check(kLspToken);
  EXPECT_NE(good.out.find("ok    LSP callback endpoint answers and accepts the token"),
            std::string::npos)
      << good.out;
  const ProcessResult bad = check("not-the-token");
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.out.find("FAIL  LSP callback endpoint"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("refused the token"), std::string::npos) << bad.out;
  EXPECT_EQ(bad.out.find("not-the-token"), std::string::npos);
  EXPECT_EQ(lsp_state(db_), before);
  EXPECT_EQ(lsp_->request_count(), 2u);
}

TEST_F(Callbacks, TheModesOptionsAreCheckedBeforeAnythingIsAsked) {
  serve(nlohmann::json::array());
  const auto run_with = [&](std::vector<std::string> args, std::map<std::string, std::string> env) {
    std::vector<std::string> argv{LSP_SWEEPER_BINARY, "run"};
    argv.insert(argv.end(), args.begin(), args.end());
    env.emplace("LSP_SWEEPER_NODE_URL", node_->url());
    env.emplace("LSP_SWEEPER_DB_URL", db_.uri_as_callbacks_sweeper());
    env.emplace("LSP_SWEEPER_NODE_TOKEN", kToken);
    return run_process(argv, env);
  };
  const ProcessResult no_url = run_with({"--apply", "lsp-callbacks"}, {});
  EXPECT_EQ(no_url.exit_code, 2);
  EXPECT_NE(no_url.err.find("--apply lsp-callbacks needs --lsp-url"), std::string::npos)
      << no_url.err;
  const ProcessResult no_token =
      run_with({"--apply", "lsp-callbacks", "--lsp-url", "http://127.0.0.1:9"}, {});
  EXPECT_EQ(no_token.exit_code, 2);
  EXPECT_NE(no_token.err.find("no LSP token: set LSP_SWEEPER_LSP_TOKEN or pass --lsp-token-file"),
            std::string::npos)
      << no_token.err;
  const ProcessResult in_clear =
      run_with({"--apply", "lsp-callbacks", "--lsp-url", "http://lsp.example:8080"},
               {{"LSP_SWEEPER_LSP_TOKEN", kLspToken}});
  EXPECT_EQ(in_clear.exit_code, 2);
  EXPECT_NE(in_clear.err.find("refusing plain http:// to the LSP"), std::string::npos)
      << in_clear.err;
  const ProcessResult unused_url = run_with({"--lsp-url", "http://127.0.0.1:9"}, {});
  EXPECT_EQ(unused_url.exit_code, 2);
  EXPECT_NE(unused_url.err.find("--lsp-url is used only with --apply lsp-callbacks"),
            std::string::npos)
      << unused_url.err;
  const ProcessResult bad_mode = run_with({"--apply", "sql"}, {});
  EXPECT_EQ(bad_mode.exit_code, 64);
  for (const ProcessResult* r : {&no_url, &no_token, &in_clear, &unused_url}) {
    EXPECT_EQ(r->err.find(kLspToken), std::string::npos);
  }
  EXPECT_EQ(node_->request_count(), 0u);
}

}  // namespace
}  // namespace lsp_sweeper::testing
