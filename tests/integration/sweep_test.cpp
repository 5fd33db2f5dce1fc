// The real lsp-sweeper binary, end to end: a real PostgreSQL database per test and the node
// simulator over real HTTP. Each test seeds the LSP's records, serves the node's payments,
// runs the binary as cron would, and checks the rows, the outbox and the JSON report.
#include "lsp_sweeper/run/sweep.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "integration/sweep_fixture.hpp"
#include "integration/webhook_receiver.hpp"
#include "lsp_sweeper/store/store.hpp"
#include "lsp_sweeper/util/file.hpp"
#include "lsp_sweeper/util/hex.hpp"
#include "sim/simulator.hpp"

namespace lsp_sweeper {
namespace {

using nlohmann::json;
using namespace testing;

class Sweep : public SweepFixture {
 protected:
  // An APay record whose payment the node reports with a forged preimage (a divergence that
  // needs a person) and a relay record whose payment_sent callback was lost (a repair).
  std::pair<Secret, Secret> serve_forged_and_lost(char forged_seed, char lost_seed) {
    const Secret forged = secret(forged_seed), lost = secret(lost_seed);
    seed_apay(forged.hash, "outbound_paid", 2000000);
    seed_relay(lost.hash, "outbound_pending", 7000000);
    serve(json::array({outbound_succeeded(forged.hash, lost.preimage),
                       outbound_succeeded(lost.hash, lost.preimage)}));
    return {forged, lost};
  }

  static std::vector<std::string> repair_kinds(const json& report) {
    std::vector<std::string> out;
    for (const auto& r : report["repairs"]) out.push_back(r["kind"].get<std::string>());
    return out;
  }

  static const json* find_by_hash(const json& list, const std::string& hash) {
    for (const auto& item : list) {
      if (item["payment_hash"] == hash) return &item;
    }
    return nullptr;
  }
};

TEST_F(Sweep, RepairsEveryMissedTransitionOnceAndOnlyOnce) {
  const Secret apay_claim = secret('1'), relay_claim = secret('2'), apay_sent = secret('3'),
               relay_sent = secret('4');
  seed_apay(apay_claim.hash, "active", 3000000);
  seed_relay(relay_claim.hash, "quoted", 5000000);
  seed_apay(apay_sent.hash, "outbound_paid", 2000000);
  seed_relay(relay_sent.hash, "outbound_pending", 7000000);
  serve(json::array({hodl_claimable(apay_claim.hash, 3000000),
                     hodl_claimable(relay_claim.hash, 5000000),
                     outbound_succeeded(apay_sent.hash, apay_sent.preimage),
                     outbound_succeeded(relay_sent.hash, relay_sent.preimage)}));

  const ProcessResult first = sweep();
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const json r = report(first);
  EXPECT_TRUE(r["complete"]);
  EXPECT_EQ(r["node"]["dialect"], "paginated");
  EXPECT_EQ(r["summary"]["repairs_planned"], 4);
  EXPECT_EQ(r["summary"]["repairs_applied"], 4);
  EXPECT_GT(r["summary"]["repairs_apply_seconds"].get<double>(), 0.0);
  EXPECT_EQ(r["summary"]["divergences"], 0);

  EXPECT_EQ(apay_status(apay_claim.hash), "claimable");
  EXPECT_EQ(jobs(apay_claim.hash, "request_outbound_invoice"), 1);
  EXPECT_EQ(db_.query_value<std::int64_t>(
                "SELECT claim_deadline_height FROM async_rotating_invoices WHERE payment_hash=$1",
                apay_claim.hash),
            kHeight + 144);
  EXPECT_TRUE(db_.query_value<bool>(
      "SELECT claimable_at IS NOT NULL FROM async_rotating_invoices WHERE payment_hash=$1",
      apay_claim.hash));
  EXPECT_EQ(relay_status(relay_claim.hash), "claimable");
  EXPECT_EQ(jobs(relay_claim.hash, "lightning_send_pay_outbound"), 1);
  EXPECT_EQ(apay_status(apay_sent.hash), "outbound_claimed");
  EXPECT_EQ(jobs(apay_sent.hash, "claim_inbound_invoice"), 1);
  EXPECT_EQ(db_.query_value<std::string>(
                "SELECT payment_preimage FROM async_rotating_invoices WHERE payment_hash=$1",
                apay_sent.hash),
            apay_sent.preimage);
  EXPECT_EQ(relay_status(relay_sent.hash), "outbound_claimed");
  EXPECT_EQ(jobs(relay_sent.hash, "lightning_send_claim_inbound"), 1);
  EXPECT_EQ(count("async_rotating_invoice_outbox"), 4);
  EXPECT_EQ(count("lsp_sweeper.actions"), 4);
  EXPECT_EQ(db_.query_value<std::string>("SELECT status FROM lsp_sweeper.runs"), "ok");

  const ProcessResult second = sweep();
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(report(second)["summary"]["repairs_planned"], 0);
  EXPECT_EQ(count("async_rotating_invoice_outbox"), 4);
  EXPECT_EQ(count("lsp_sweeper.runs"), 2);
}

TEST_F(Sweep, DryRunReportsTheSamePlanAndWritesNothing) {
  const Secret s = secret('5');
  seed_apay(s.hash, "outbound_paid", 2000000);
  serve(json::array({outbound_succeeded(s.hash, s.preimage)}));

  const ProcessResult dry = sweep({"--dry-run"});
  EXPECT_EQ(dry.exit_code, 1) << "a dry run that finds repairs exits 1\n" << dry.err;
  const json r = report(dry);
  EXPECT_TRUE(r["dry_run"]);
  ASSERT_EQ(r["repairs"].size(), 1u);
  EXPECT_EQ(r["repairs"][0]["kind"], "missed_payment_sent");
  EXPECT_EQ(r["repairs"][0]["applied"], false);
  EXPECT_EQ(r["summary"]["repairs_apply_seconds"], 0.0);
  EXPECT_EQ(apay_status(s.hash), "outbound_paid");
  EXPECT_EQ(count("async_rotating_invoice_outbox"), 0);
  EXPECT_EQ(count("lsp_sweeper.runs"), 0);
  EXPECT_EQ(count("lsp_sweeper.actions"), 0);

  // The real run applies exactly what the dry run planned.
  const ProcessResult real = sweep();
  EXPECT_EQ(real.exit_code, 0) << real.err;
  json applied = r["repairs"];
  applied[0]["applied"] = true;
  EXPECT_EQ(report(real)["repairs"], applied);
  EXPECT_EQ(apay_status(s.hash), "outbound_claimed");
}

TEST_F(Sweep, ForgedPreimageIsNeverApplied) {
  const Secret s = secret('6');
  seed_apay(s.hash, "outbound_paid", 2000000);
  serve(json::array({outbound_succeeded(s.hash, secret('7').preimage)}));

  const ProcessResult run = sweep();
  EXPECT_EQ(run.exit_code, 1) << run.err;
  const json r = report(run);
  EXPECT_EQ(r["summary"]["repairs_planned"], 0);
  ASSERT_EQ(r["divergences"].size(), 1u);
  EXPECT_EQ(r["divergences"][0]["kind"], "preimage_mismatch");
  EXPECT_EQ(r["divergences"][0]["payment_hash"], s.hash);
  EXPECT_EQ(apay_status(s.hash), "outbound_paid");
  EXPECT_EQ(count("async_rotating_invoice_outbox"), 0);
  EXPECT_EQ(db_.query_value<std::string>("SELECT status FROM lsp_sweeper.runs"), "divergences");
}

TEST_F(Sweep, GuardsAreReportedAndNothingIsGuessed) {
  const Secret no_deadline = secret('8'), wrong_amount = secret('9'), passed = secret('a');
  seed_apay(no_deadline.hash, "active", 3000000);
  seed_apay(wrong_amount.hash, "active", 4000000);
  seed_relay(passed.hash, "quoted", 3000000);
  serve(json::array({hodl_claimable(no_deadline.hash, 3000000, std::nullopt),
                     hodl_claimable(wrong_amount.hash, 9999),
                     hodl_claimable(passed.hash, 3000000, kHeight)}));

  const ProcessResult run = sweep();
  EXPECT_EQ(run.exit_code, 1) << run.err;
  const json r = report(run);
  EXPECT_EQ(r["summary"]["repairs_planned"], 0);
  EXPECT_EQ((*find_by_hash(r["divergences"], no_deadline.hash))["kind"], "claim_deadline_unknown");
  EXPECT_EQ((*find_by_hash(r["divergences"], wrong_amount.hash))["kind"], "amount_mismatch");
  EXPECT_EQ((*find_by_hash(r["divergences"], passed.hash))["kind"], "claim_deadline_passed");
  EXPECT_EQ(count("async_rotating_invoice_outbox"), 0);
  EXPECT_EQ(db_.query_value<int>("SELECT count(*) FROM async_rotating_invoices WHERE status <> "
                                 "'active'"),
            0);
}

// The LSP's claimable handler refuses an APay deadline unless more than
// APAY_INBOUND_MIN_FINAL_CLTV_EXPIRY_DELTA - 42 blocks remain: 102 by default, configurable.
TEST_F(Sweep, ApayClaimNeedsMoreBlocksThanTheMargin) {
  const Secret near = secret('N'), enough = secret('O'), relay = secret('P');
  seed_apay(near.hash, "active", 3000000);
  seed_apay(enough.hash, "active", 3000000);
  seed_relay(relay.hash, "quoted", 3000000);
  serve(json::array({hodl_claimable(near.hash, 3000000, kHeight + 102),
                     hodl_claimable(enough.hash, 3000000, kHeight + 103),
                     hodl_claimable(relay.hash, 3000000, kHeight + 5)}));

  const ProcessResult run = sweep();
  EXPECT_EQ(run.exit_code, 1) << run.err;
  const json r = report(run);
  ASSERT_EQ(r["divergences"].size(), 1u);
  EXPECT_EQ(r["divergences"][0]["kind"], "claim_deadline_too_near");
  EXPECT_EQ(r["divergences"][0]["payment_hash"], near.hash);
  EXPECT_NE(r["divergences"][0]["detail"].get<std::string>().find(
                "leaves 102 block(s) above height 800000; the LSP accepts an APay claimable only "
                "with more than 102"),
            std::string::npos)
      << r["divergences"][0]["detail"];
  EXPECT_EQ(apay_status(near.hash), "active");
  EXPECT_EQ(jobs(near.hash, "request_outbound_invoice"), 0);
  EXPECT_EQ(apay_status(enough.hash), "claimable");
  EXPECT_EQ(relay_status(relay.hash), "claimable");  // relay: any deadline above the height

  // An LSP with APAY_INBOUND_MIN_FINAL_CLTV_EXPIRY_DELTA 143 accepts 102 blocks.
  const ProcessResult lower = sweep({"--claim-min-blocks", "101"});
  EXPECT_EQ(lower.exit_code, 0) << lower.err;
  EXPECT_EQ(apay_status(near.hash), "claimable");
  EXPECT_EQ(jobs(near.hash, "request_outbound_invoice"), 1);
  EXPECT_EQ(sweep({"--claim-min-blocks", "-1"}).exit_code, 64);
}

// An amount the LSP column cannot hold is a malformed payment, never compared after a
// wrapping conversion; a record amount that is not positive is reported, never matched.
TEST_F(Sweep, AmountsThatWrapAreNeverMatched) {
  const Secret minus_one = secret('Q'), int64_min = secret('R'), zero = secret('S'),
               negative_relay = secret('T'), far_deadline = secret('U');
  seed_apay(minus_one.hash, "active", -1);
  seed_apay(int64_min.hash, "active", std::numeric_limits<std::int64_t>::min());
  seed_apay(zero.hash, "active", 0);
  seed_relay(negative_relay.hash, "quoted", -5);
  seed_apay(far_deadline.hash, "active", 3000000);
  json wraps = hodl_claimable(minus_one.hash, 0);
  wraps["amt_msat"] = std::numeric_limits<std::uint64_t>::max();
  json wraps_min = hodl_claimable(int64_min.hash, 0);
  wraps_min["amt_msat"] = std::uint64_t{1} << 63;
  serve(json::array({wraps, wraps_min, hodl_claimable(zero.hash, 0),
                     hodl_claimable(negative_relay.hash, 5),
                     hodl_claimable(far_deadline.hash, 3000000, std::int64_t{1} << 32)}));

  const ProcessResult run = sweep();
  EXPECT_EQ(run.exit_code, 1) << run.err;
  const json r = report(run);
  EXPECT_EQ(r["summary"]["repairs_planned"], 0);
  EXPECT_EQ(r["node"]["payments_rejected"], 3);
  const auto kind_of = [&](const std::string& hash) {
    const json* d = find_by_hash(r["divergences"], hash);
    return d == nullptr ? std::string("none") : (*d)["kind"].get<std::string>();
  };
  EXPECT_EQ(kind_of(minus_one.hash), "malformed_payment");
  EXPECT_NE((*find_by_hash(r["divergences"], minus_one.hash))["detail"].get<std::string>().find(
                "amt_msat is out of range (above 9223372036854775807)"),
            std::string::npos);
  EXPECT_EQ(kind_of(int64_min.hash), "malformed_payment");
  EXPECT_EQ(kind_of(zero.hash), "record_amount_invalid");
  EXPECT_EQ(kind_of(negative_relay.hash), "record_amount_invalid");
  EXPECT_NE(
      (*find_by_hash(r["divergences"], negative_relay.hash))["detail"].get<std::string>().find(
          "record inbound_amount_msat is -5, not a positive amount"),
      std::string::npos);
  EXPECT_EQ(kind_of(far_deadline.hash), "malformed_payment");
  EXPECT_EQ(count("async_rotating_invoice_outbox"), 0);
  EXPECT_EQ(db_.query_value<int>("SELECT count(*) FROM async_rotating_invoices WHERE status <> "
                                 "'active'"),
            0);
  EXPECT_EQ(relay_status(negative_relay.hash), "quoted");
}

// Two answers about one (hash, direction) that cannot both be true: reported, nothing applied
// for that hash. Listed, so the node's repeated entries are served as they are.
TEST_F(Sweep, NodeContradictingItselfOnAPageIsReportedNotApplied) {
  const Secret s = secret('X');
  seed_apay(s.hash, "outbound_paid", 3000000);
  serve(json::array({hodl_claimable(s.hash, 3000000), hodl_claimable(s.hash, 3000001),
                     outbound_succeeded(s.hash, s.preimage)}));

  const ProcessResult run = sweep({"--lookup", "list"});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  const json r = report(run);
  EXPECT_EQ(r["summary"]["repairs_planned"], 0) << r["repairs"];
  ASSERT_EQ(r["divergences"].size(), 1u) << r["divergences"];
  EXPECT_EQ(r["divergences"][0]["kind"], "node_contradicts_itself");
  EXPECT_EQ(r["divergences"][0]["flow"], "apay");
  EXPECT_EQ(r["divergences"][0]["detail"],
            "the node answered amt_msat 3000001, then 3000000 for the same payment");
  // Its outbound leg alone would have been a missed payment_sent.
  EXPECT_EQ(apay_status(s.hash), "outbound_paid");
  EXPECT_EQ(count("async_rotating_invoice_outbox"), 0);
}

// Across pages the earlier answer was acted on already: the later, contradicting one is
// reported. A payment whose status only moved on between two listings is not a contradiction.
TEST_F(Sweep, NodeContradictingItselfAcrossPagesIsReported) {
  const Secret changed = secret('Y'), moved_on = secret('Z');
  seed_apay(changed.hash, "active", 3000000);
  seed_apay(moved_on.hash, "active", 4000000);
  json cancelled = hodl_claimable(moved_on.hash, 4000000);
  cancelled["status"] = "Cancelled";
  // Newest first, one a page: the 3000000 answer comes first and is repaired.
  serve(json::array({hodl_claimable(changed.hash, 3000001), hodl_claimable(moved_on.hash, 4000000),
                     cancelled, hodl_claimable(changed.hash, 3000000)}));

  const ProcessResult run = sweep({"--lookup", "list", "--page-size", "1"});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  const json r = report(run);
  std::vector<std::string> kinds;
  for (const auto& d : r["divergences"]) kinds.push_back(d["kind"].get<std::string>());
  EXPECT_EQ(kinds, std::vector<std::string>{"node_contradicts_itself"}) << r["divergences"];
  EXPECT_EQ(r["divergences"][0]["payment_hash"], changed.hash);
  EXPECT_EQ(r["divergences"][0]["detail"],
            "the node answered amt_msat 3000000, then 3000001 for the same payment; the earlier "
            "answer was acted on");
  EXPECT_EQ(repair_kinds(r), (std::vector<std::string>{"missed_claimable", "missed_claimable"}));
  EXPECT_EQ(apay_status(changed.hash), "claimable");
  EXPECT_EQ(apay_status(moved_on.hash), "claimable");
}

// Issue 10.5: an APay record the LSP marked outbound_paid while the node's outbound payment
// Failed is reported as node_leg_failed, by the listings and by the targeted lookups alike.
TEST_F(Sweep, OutboundPaidWithAFailedOutboundLegIsReported) {
  const Secret s = secret('V');
  seed_apay(s.hash, "outbound_paid", 2000000);
  json failed = outbound_succeeded(s.hash, s.preimage);
  failed["status"] = "Failed";
  failed.erase("preimage");
  serve(json::array({failed}));

  for (const char* mode : {"list", "targeted"}) {
    const ProcessResult run = sweep({"--lookup", mode});
    EXPECT_EQ(run.exit_code, 1) << mode << run.err;
    const json r = report(run);
    EXPECT_EQ(r["summary"]["repairs_planned"], 0) << mode;
    ASSERT_EQ(r["divergences"].size(), 1u) << mode;
    EXPECT_EQ(r["divergences"][0]["kind"], "node_leg_failed") << mode;
    EXPECT_EQ(r["divergences"][0]["flow"], "apay") << mode;
    EXPECT_EQ(r["divergences"][0]["payment_hash"], s.hash) << mode;
    EXPECT_NE(r["divergences"][0]["detail"].get<std::string>().find("Outbound leg Failed"),
              std::string::npos)
        << mode;
  }
  EXPECT_EQ(apay_status(s.hash), "outbound_paid");
  EXPECT_EQ(count("async_rotating_invoice_outbox"), 0);
  EXPECT_EQ(db_.query_value<int>("SELECT count(*) FROM lsp_sweeper.divergences WHERE kind = "
                                 "'node_leg_failed' AND resolved_at IS NULL"),
            1);
}

TEST_F(Sweep, MissingOutboxJobIsAddedOnce) {
  const Secret s = secret('b');
  seed_relay(s.hash, "outbound_claimed", 1000);
  serve(json::array());

  const ProcessResult run = sweep();
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(repair_kinds(report(run)), std::vector<std::string>{"missing_outbox_job"});
  EXPECT_EQ(jobs(s.hash, "lightning_send_claim_inbound"), 1);
  EXPECT_EQ(report(sweep())["summary"]["repairs_planned"], 0);
  EXPECT_EQ(count("async_rotating_invoice_outbox"), 1);
}

// Issue 10.2: a missing job that pays is recreated only when the node has no outbound payment
// of the hash; otherwise paying_job_missing with the leg's status, and nothing written. A
// dry run writes nothing either way.
TEST_F(Sweep, MissingJobThatPaysWaitsForTheNodesWord) {
  const Secret paying = secret('W'), none = secret('X'), relay_paying = secret('Y'),
               relay_none = secret('Z');
  seed_apay(paying.hash, "outbound_pending", 2000000);
  seed_apay(none.hash, "outbound_pending", 2000000);
  json pending = outbound_succeeded(paying.hash, paying.preimage);
  pending["status"] = "Pending";
  pending.erase("preimage");
  json payments = json::array({pending});
  if (db_.has_relay()) {
    seed_relay(relay_paying.hash, "claimable", 3000000);
    seed_relay(relay_none.hash, "claimable", 3000000);
    json failed = outbound_succeeded(relay_paying.hash, relay_paying.preimage);
    failed["status"] = "Failed";
    failed.erase("preimage");
    payments.push_back(failed);
  }
  serve(payments);
  const std::size_t paying_records = db_.has_relay() ? 2 : 1;

  const auto check = [&](const json& r, bool applied) {
    ASSERT_EQ(r["repairs"].size(), paying_records) << r.dump();
    for (const auto& repair : r["repairs"]) {
      EXPECT_EQ(repair["kind"], "missing_outbox_job");
      EXPECT_EQ(repair["applied"], applied);
      const bool apay = repair["payment_hash"] == none.hash;
      EXPECT_TRUE(apay || repair["payment_hash"] == relay_none.hash) << repair.dump();
      EXPECT_EQ(repair["outbox_action"],
                apay ? "send_outbound_payment" : "lightning_send_pay_outbound");
    }
    ASSERT_EQ(r["divergences"].size(), paying_records) << r.dump();
    const json* apay = find_by_hash(r["divergences"], paying.hash);
    ASSERT_NE(apay, nullptr);
    EXPECT_EQ((*apay)["kind"], "paying_job_missing");
    EXPECT_NE((*apay)["detail"].get<std::string>().find("outbound leg of this hash is Pending"),
              std::string::npos);
    if (db_.has_relay()) {
      const json* relay = find_by_hash(r["divergences"], relay_paying.hash);
      ASSERT_NE(relay, nullptr);
      EXPECT_EQ((*relay)["kind"], "paying_job_missing");
      EXPECT_NE((*relay)["detail"].get<std::string>().find("outbound leg of this hash is Failed"),
                std::string::npos);
    }
  };

  const std::string before = lsp_state(db_);
  const ProcessResult dry = sweep({"--dry-run"});
  EXPECT_EQ(dry.exit_code, 1) << dry.err;
  check(report(dry), false);
  EXPECT_EQ(lsp_state(db_), before);
  EXPECT_EQ(count("lsp_sweeper.divergences"), 0);

  const ProcessResult real = sweep();
  EXPECT_EQ(real.exit_code, 1) << real.err;
  check(report(real), true);
  EXPECT_EQ(jobs(none.hash, "send_outbound_payment"), 1);
  EXPECT_EQ(count("async_rotating_invoice_outbox WHERE payment_hash = '" + paying.hash + "'"), 0);
  if (db_.has_relay()) {
    EXPECT_EQ(jobs(relay_none.hash, "lightning_send_pay_outbound"), 1);
    EXPECT_EQ(
        count("async_rotating_invoice_outbox WHERE payment_hash = '" + relay_paying.hash + "'"), 0);
  }
  EXPECT_EQ(count("async_rotating_invoice_outbox"), static_cast<int>(paying_records));
  EXPECT_EQ(db_.query_value<int>("SELECT count(*) FROM lsp_sweeper.divergences WHERE kind = "
                                 "'paying_job_missing' AND resolved_at IS NULL"),
            static_cast<int>(paying_records));
}

// More records lacking their job than a page holds: every one gets its job, once, page by
// page (the lookup pages with --page-size too).
TEST_F(Sweep, MissingOutboxJobsArePagedThroughInFull) {
  const auto all = many_hashes(7);
  seed_missed_claimables(db_, all);
  db_.exec("UPDATE async_rotating_invoices SET status = 'claimable'");
  serve(json::array());

  const json r = report(sweep({"--page-size", "3"}));
  EXPECT_EQ(r["summary"]["repairs_applied"], 7);
  EXPECT_EQ(db_.query_value<int>("SELECT count(DISTINCT payment_hash) FROM "
                                 "async_rotating_invoice_outbox WHERE action = "
                                 "'request_outbound_invoice'"),
            7);
  EXPECT_EQ(report(sweep({"--page-size", "3"}))["summary"]["repairs_planned"], 0);
  EXPECT_EQ(count("async_rotating_invoice_outbox"), 7);
}

// A node that lists one payment twice (two entries with the same hash and direction, on
// different pages): what the run acts on is applied and reported once; a payment that needed
// nothing is not remembered, so an orphan listed twice is counted twice.
TEST_F(Sweep, APaymentTheNodeRepeatsIsActedOnOnce) {
  const Secret sent = secret('R'), wrong_amount = secret('S'), orphan = secret('T');
  seed_apay(sent.hash, "outbound_paid", 2000000);
  seed_apay(wrong_amount.hash, "active", 3000000);
  const json once = json::array({outbound_succeeded(sent.hash, sent.preimage),
                                 hodl_claimable(wrong_amount.hash, 9999),
                                 outbound_succeeded(orphan.hash, orphan.preimage)});
  json twice = once;
  for (const auto& p : once) twice.push_back(p);
  serve(twice);

  const json r = report(sweep({"--page-size", "1", "--lookup", "list"}));
  EXPECT_EQ(r["summary"]["repairs_planned"], 1);
  EXPECT_EQ(r["summary"]["repairs_applied"], 1);
  EXPECT_EQ(count("lsp_sweeper.actions"), 1);
  ASSERT_EQ(r["divergences"].size(), 1u) << r["divergences"].dump();
  EXPECT_EQ(r["divergences"][0]["kind"], "amount_mismatch");
  EXPECT_EQ(r["summary"]["orphans"], 2);
}

TEST_F(Sweep, RecentPaymentsAreLeftForTheirLiveCallback) {
  const Secret s = secret('c');
  seed_apay(s.hash, "active", 3000000);
  json p = hodl_claimable(s.hash, 3000000);
  p["updated_ago"] = 5;
  serve(json::array({p}));

  const json r = report(sweep());
  EXPECT_EQ(r["summary"]["repairs_planned"], 0);
  EXPECT_EQ(r["summary"]["deferred"], 1);
  EXPECT_EQ(apay_status(s.hash), "active");
  EXPECT_EQ(report(sweep({"--min-age", "0"}))["summary"]["repairs_applied"], 1);
}

TEST_F(Sweep, UppercaseHexFromTheNodeMatchesLowercaseRecords) {
  const Secret s = secret('d');
  seed_apay(s.hash, "outbound_paid", 2000000);
  std::string upper_hash = s.hash, upper_preimage = s.preimage;
  for (auto& c : upper_hash) c = static_cast<char>(std::toupper(c));
  for (auto& c : upper_preimage) c = static_cast<char>(std::toupper(c));
  serve(json::array({outbound_succeeded(upper_hash, upper_preimage)}));

  EXPECT_EQ(sweep().exit_code, 0);
  EXPECT_EQ(apay_status(s.hash), "outbound_claimed");
  EXPECT_EQ(
      db_.query_value<std::string>(
          "SELECT payment_preimage FROM async_rotating_invoices WHERE payment_hash=$1", s.hash),
      s.preimage);
}

TEST_F(Sweep, MalformedPaymentsAreRejectedOneByOne) {
  const Secret good = secret('e');
  seed_apay(good.hash, "outbound_paid", 2000000);
  json bad_hash = outbound_succeeded("'; DROP TABLE async_rotating_invoices; --", good.preimage);
  json bad_amount = outbound_succeeded(secret('f').hash, secret('f').preimage);
  bad_amount["amt_msat"] = "lots";
  serve(json::array({bad_hash, outbound_succeeded(good.hash, good.preimage), bad_amount}));

  // Malformed payments of other traffic: only a listing sees them.
  const ProcessResult run = sweep({"--lookup", "list"});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  const json r = report(run);
  EXPECT_TRUE(r["complete"]);
  EXPECT_EQ(r["node"]["payments_rejected"], 2);
  EXPECT_EQ(r["summary"]["repairs_applied"], 1);
  EXPECT_EQ(apay_status(good.hash), "outbound_claimed");
  int malformed = 0;
  for (const auto& d : r["divergences"]) malformed += d["kind"] == "malformed_payment";
  EXPECT_EQ(malformed, 2);
}

TEST_F(Sweep, IndexZeroCursorTerminates) {
  // 7 payments, the oldest three stored before the node had an index: with pages of 2, the
  // third page ends on index 0, which the node answers as last_index_offset 0.
  json payments = json::array();
  for (int i = 0; i < 7; ++i) {
    json p = hodl_claimable(secret(static_cast<char>('g' + i)).hash, 1000);
    p["index"] = static_cast<unsigned>(i < 3 ? 0 : i);
    payments.push_back(p);
  }
  serve(payments);

  // --whole-window: no record needs the other listings, which a narrowed run would skip.
  const ProcessResult run = sweep({"--page-size", "2", "--lookup", "list", "--whole-window"});
  ASSERT_FALSE(run.timed_out);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  const json r = report(run);
  EXPECT_TRUE(r["complete"]);
  // Pages [6,5] [4,3] [0,0]: the third page's cursor is 0, so the last unindexed payment is
  // out of the cursor's reach, and the report says so. Each other listing is one empty page.
  EXPECT_EQ(r["node"]["payments_scanned"], 6);
  EXPECT_EQ(node_->request_count("/listpayments"), 6u);
  EXPECT_EQ(r["summary"]["orphans"], 6);
  ASSERT_EQ(r["notes"].size(), 1u);
  EXPECT_NE(r["notes"][0].get<std::string>().find("index 0"), std::string::npos);
}

TEST_F(Sweep, LegacyNodeRepairsPaymentSentAndSaysClaimableCannotBeChecked) {
  const Secret sent = secret('p'), held = secret('q');
  seed_apay(sent.hash, "outbound_paid", 2000000);
  seed_apay(held.hash, "active", 3000000);
  serve(json::array(
            {outbound_succeeded(sent.hash, sent.preimage), hodl_claimable(held.hash, 3000000)}),
        "legacy");

  const ProcessResult run = sweep();
  EXPECT_EQ(run.exit_code, 0) << run.err;
  const json r = report(run);
  EXPECT_EQ(r["node"]["dialect"], "legacy");
  EXPECT_EQ(repair_kinds(r), std::vector<std::string>{"missed_payment_sent"});
  EXPECT_EQ(apay_status(sent.hash), "outbound_claimed");
  EXPECT_EQ(apay_status(held.hash), "active");
  ASSERT_EQ(r["notes"].size(), 1u);
  EXPECT_NE(r["notes"][0].get<std::string>().find("claimable"), std::string::npos);
  EXPECT_EQ(node_->request_count("/listpayments"), 1u);
}

TEST_F(Sweep, RefusedTokenEndsTheRunWithoutLeakingIt) {
  serve(json::array());
  const std::string wrong = "wrong-token-Zq81";
  const ProcessResult run = sweep({}, wrong);
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("401"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find(wrong), std::string::npos);
  EXPECT_EQ(run.out.find(wrong), std::string::npos);
  EXPECT_FALSE(report(run)["complete"]);
  EXPECT_EQ(db_.query_value<std::string>("SELECT status FROM lsp_sweeper.runs"), "failed");
}

TEST_F(Sweep, LockedNodeEndsTheRunWithAClearMessage) {
  serve(json::array());
  node_->set_locked(true);
  const ProcessResult run = sweep();
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("node is locked (403 LockedNode): unlock it (POST /unlock) and rerun"),
            std::string::npos)
      << run.err;
}

// The node's 403s by name (its src/error.rs): each ends the run with what a person must do.
TEST_F(Sweep, UninitialisedOrForbiddingNodeEndsTheRunSayingWhy) {
  serve(json::array());
  node_->fail_next("/networkinfo", 403, 1, "NotInitialized");
  const ProcessResult uninitialised = sweep();
  EXPECT_EQ(uninitialised.exit_code, 2) << uninitialised.err;
  EXPECT_NE(report(uninitialised)["error"].get<std::string>().find(
                "node is not initialised (403 NotInitialized): initialise it (POST /init), "
                "unlock it, and rerun"),
            std::string::npos)
      << uninitialised.out;

  node_->fail_next("/listpayments", 403, 1, "Forbidden");
  const ProcessResult forbidden = sweep({"--lookup", "list"});
  EXPECT_EQ(forbidden.exit_code, 2) << forbidden.err;
  EXPECT_NE(forbidden.err.find("HTTP 403 'Forbidden'"), std::string::npos) << forbidden.err;
  EXPECT_EQ(db_.query_value<int>("SELECT count(*) FROM lsp_sweeper.runs WHERE exit_code = 2"), 2);
}

TEST_F(Sweep, NodeChangingStateIsWaitedOutBriefly) {
  const Secret s = secret('V');
  seed_apay(s.hash, "outbound_paid", 2000000);
  serve(json::array({outbound_succeeded(s.hash, s.preimage)}));
  node_->fail_next("/networkinfo", 403, 2, "ChangingState");  // waited 1 s, then 2 s

  const ProcessResult run = sweep();
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(node_->request_count("/networkinfo"), 3u);
  EXPECT_EQ(apay_status(s.hash), "outbound_claimed");
}

// Still changing state after the client's retries (1 + 2 + 4 + 8 s): exit 75, like a busy
// sweep lock, so schedulers treat it as "try again later"; what was committed stays committed.
TEST_F(Sweep, NodeStillChangingStateEndsTheRunWithTryAgainLater) {
  const Secret s = secret('W');
  seed_apay(s.hash, "active", 3000000);
  serve(json::array({hodl_claimable(s.hash, 3000000)}));
  // The held-payments listing (its page and the empty page after it) answers; the next
  // listing meets a node that began to lock.
  sim::Fault changing;
  changing.status = 403;
  changing.name = "ChangingState";
  for (std::uint64_t request = 3; request <= 7; ++request) {
    node_->inject("/listpayments", request, changing);
  }

  const ProcessResult run = sweep({"--lookup", "list"});
  EXPECT_EQ(run.exit_code, 75) << run.err;
  const json r = report(run);
  EXPECT_FALSE(r["complete"]);
  EXPECT_EQ(r["exit_code"], 75);
  EXPECT_NE(r["error"].get<std::string>().find(
                "the node is changing state (403 ChangingState) (node said: 'Injected fault (node "
                "simulator)'); still so after 5 attempts: try again later"),
            std::string::npos)
      << r["error"];
  EXPECT_EQ(db_.query_value<std::string>("SELECT status || ' ' || exit_code FROM lsp_sweeper.runs"),
            "failed 75");
  EXPECT_EQ(apay_status(s.hash), "claimable");
  EXPECT_EQ(node_->request_count("/listpayments"), 7u);
}

TEST_F(Sweep, ConfigurationAndUsageErrorsHaveTheirOwnExitCodes) {
  serve(json::array());
  const ProcessResult no_token = sweep({}, "");
  EXPECT_EQ(no_token.exit_code, 2);
  EXPECT_NE(no_token.err.find("LSP_SWEEPER_NODE_TOKEN"), std::string::npos) << no_token.err;
  // Alerting reads the report: a run that could not start still writes one.
  const json r = report(no_token);
  EXPECT_FALSE(r["complete"]);
  EXPECT_EQ(r["exit_code"], 2);
  EXPECT_NE(r["error"].get<std::string>().find("no node token"), std::string::npos);

  const ProcessResult bad_flag = sweep({"--page-size", "zero"});
  EXPECT_EQ(bad_flag.exit_code, 64);

  const ProcessResult no_db =
      run_process({LSP_SWEEPER_BINARY, "run"}, {{"LSP_SWEEPER_NODE_URL", node_->url()},
                                                {"LSP_SWEEPER_DB_URL", ""},
                                                {"LSP_SWEEPER_NODE_TOKEN", kToken}});
  EXPECT_EQ(no_db.exit_code, 64) << no_db.err;
}

TEST_F(Sweep, UnreachableDatabaseEndsTheRunWithoutItsPassword) {
  serve(json::array());
  const ProcessResult run = run_process(
      {LSP_SWEEPER_BINARY, "run", "--report", "-"},
      {{"LSP_SWEEPER_NODE_URL", node_->url()},
       {"LSP_SWEEPER_DB_URL", "postgresql://sweeper:s3cret-pw@127.0.0.1:1/lsp?connect_timeout=2"},
       {"LSP_SWEEPER_NODE_TOKEN", kToken}});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.err.find("s3cret-pw"), std::string::npos) << run.err;
  EXPECT_EQ(run.out.find("s3cret-pw"), std::string::npos) << run.out;
  EXPECT_NE(report(run)["error"].get<std::string>().find("cannot connect"), std::string::npos);
}

TEST_F(Sweep, OverlappingRunTouchesNothingAndExits75) {
  const Secret s = secret('s');
  seed_apay(s.hash, "outbound_paid", 2000000);
  serve(json::array({outbound_succeeded(s.hash, s.preimage)}));

  // While the first run waits for the node's first answer (it holds the lock by then), a
  // second real process starts: cron firing again over a slow sweep.
  std::optional<ProcessResult> second;
  sim::Fault start_second;
  start_second.kind = sim::FaultKind::Action;
  start_second.action = [&] { second = sweep(); };
  node_->inject("/networkinfo", 1, start_second);
  const ProcessResult first = sweep();

  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->exit_code, 75) << second->err;
  EXPECT_NE(second->err.find("sweep lock"), std::string::npos) << second->err;
  EXPECT_TRUE(second->out.empty()) << "no report from a run that did nothing";
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(report(first)["summary"]["repairs_applied"], 1);
  // Only the first run asked the node anything or wrote a row.
  EXPECT_EQ(node_->request_count("/networkinfo"), 1u);
  EXPECT_EQ(count("lsp_sweeper.runs"), 1);
  EXPECT_EQ(count("lsp_sweeper.actions"), 1);
  EXPECT_EQ(jobs(s.hash, "claim_inbound_invoice"), 1);
}

TEST_F(Sweep, SweepLockHeldElsewhereBlocksRealRunsButNotDryRuns) {
  const Secret s = secret('t');
  seed_apay(s.hash, "outbound_paid", 2000000);
  serve(json::array({outbound_succeeded(s.hash, s.preimage)}));
  // Held by the test as a running sweep holds it: through the store's own ledger.
  auto holder = std::make_unique<store::Backend>(
      store::open_backend(db_.uri_as_sweeper(), store::Access::ReadWrite));
  ASSERT_TRUE(holder->ledger->try_lock_sweep());

  const ProcessResult busy = sweep();
  EXPECT_EQ(busy.exit_code, 75) << busy.err;
  EXPECT_EQ(node_->request_count(), 0u);
  EXPECT_EQ(apay_status(s.hash), "outbound_paid");
  EXPECT_EQ(count("lsp_sweeper.runs"), 0);

  const ProcessResult dry = sweep({"--dry-run"});
  EXPECT_EQ(dry.exit_code, 1) << dry.err;
  EXPECT_EQ(report(dry)["summary"]["repairs_planned"], 1);

  holder.reset();  // releases the lock
  const ProcessResult after = sweep();
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(apay_status(s.hash), "outbound_claimed");
}

TEST_F(Sweep, LosingTheLockedConnectionEndsTheRun) {
  if (db_.is_sqlite()) GTEST_SKIP() << "a PostgreSQL session holds the lock";
  const Secret s = secret('x');
  seed_apay(s.hash, "outbound_paid", 2000000);
  serve(json::array({outbound_succeeded(s.hash, s.preimage)}));

  // The sweeper's session dies (a database restart, a network cut) while it asks the node:
  // the lock went with it, and another run may take it. The next statement finds the broken
  // connection and ends this run, before any repair, rather than carrying on without the lock
  // (libpqxx 6 would reconnect a later transaction; none comes but the run's closing row).
  bool terminated = false;
  sim::Fault cut;
  cut.kind = sim::FaultKind::Action;
  cut.action = [&] {
    terminated = db_.query_value<int>(
                     "SELECT count(pg_terminate_backend(pid)) FROM "
                     "pg_stat_activity WHERE usename = 'lsp_sweeper' AND "
                     "datname = current_database()") == 1;
  };
  node_->inject("/listpayments", 1, cut);
  const ProcessResult run = sweep({"--lookup", "list"});
  ASSERT_TRUE(terminated);
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_EQ(apay_status(s.hash), "outbound_paid");
  EXPECT_EQ(count("async_rotating_invoice_outbox"), 0);
}

TEST_F(Sweep, ProgressShowsOnATerminalOnly) {
  serve(json::array({hodl_claimable(secret('y').hash, 1000), hodl_claimable(secret('z').hash, 1000),
                     hodl_claimable(secret('0').hash, 1000)}));
  const ProcessResult cron = sweep({"--page-size", "1", "--lookup", "list"});
  EXPECT_EQ(cron.exit_code, 0) << cron.err;
  EXPECT_EQ(cron.err.find("scanning the node"), std::string::npos) << cron.err;

  // script(1) runs the binary on a pseudo-terminal, as a person would.
  const ProcessResult tty = run_process(
      {"/usr/bin/script", "-qec",
       std::string(LSP_SWEEPER_BINARY) + " run --page-size 1 --lookup list", "/dev/null"},
      {{"LSP_SWEEPER_NODE_URL", node_->url()},
       {"LSP_SWEEPER_DB_URL", db_.uri_as_sweeper()},
       {"LSP_SWEEPER_NODE_TOKEN", kToken}});
  EXPECT_EQ(tty.exit_code, 0) << tty.out << tty.err;
  EXPECT_NE(tty.out.find("scanning the node: 1 pages, 1 payments"), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find(" 3 payments"), std::string::npos) << tty.out;
}

// The value of the sample `series` (name and labels as written) in a metrics file.
std::optional<double> sample(const std::string& text, const std::string& series) {
  const std::string prefix = "\n" + series + " ";
  const std::size_t at = ("\n" + text).find(prefix);
  if (at == std::string::npos) return std::nullopt;
  return std::stod(text.substr(at + prefix.size() - 1));
}

TEST_F(Sweep, MetricsFilePassesPromtoolAndMatchesTheRun) {
  const Secret sent = secret('u'), forged = secret('v');
  seed_apay(sent.hash, "outbound_paid", 2000000);
  seed_relay(forged.hash, "outbound_pending", 1000000);
  serve(json::array({outbound_succeeded(sent.hash, sent.preimage),
                     outbound_succeeded(forged.hash, secret('w').preimage)}));
  char dir_template[] = "/tmp/lsp-sweeper-metrics.XXXXXX";
  const std::filesystem::path dir = mkdtemp(dir_template);
  const std::string path = dir / "lsp_sweeper.prom";

  const ProcessResult run = sweep({"--metrics-file", path});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  const json r = report(run);
  const std::string text = util::read_file(path).value_or("");
  const ProcessResult promtool =
      run_process({"/bin/sh", "-c", "promtool check metrics < '" + path + "'"});
  EXPECT_EQ(promtool.exit_code, 0) << promtool.out << promtool.err << text;

  EXPECT_EQ(sample(text, "lsp_sweeper_run_exit_code"), 1);
  EXPECT_EQ(sample(text, "lsp_sweeper_payments_scanned"), r["node"]["payments_scanned"]);
  EXPECT_EQ(sample(text, R"(lsp_sweeper_repairs_applied{kind="missed_payment_sent",flow="apay"})"),
            1);
  EXPECT_EQ(sample(text, R"(lsp_sweeper_repairs_applied{kind="missed_payment_sent",flow="relay"})"),
            0);
  EXPECT_EQ(sample(text, R"(lsp_sweeper_divergences_needing_person{kind="preimage_mismatch"})"), 1);
  const auto success = sample(text, "lsp_sweeper_last_success_timestamp_seconds");
  ASSERT_TRUE(success.has_value()) << text;
  EXPECT_EQ(success, sample(text, "lsp_sweeper_last_run_timestamp_seconds"));

  // A failed run says so and keeps the last success it read back from the file.
  node_->set_locked(true);
  const ProcessResult failed = sweep({"--metrics-file", path});
  EXPECT_EQ(failed.exit_code, 2) << failed.err;
  const std::string after = util::read_file(path).value_or("");
  EXPECT_EQ(sample(after, "lsp_sweeper_run_exit_code"), 2);
  EXPECT_EQ(sample(after, "lsp_sweeper_run_complete"), 0);
  EXPECT_EQ(sample(after, "lsp_sweeper_last_success_timestamp_seconds"), success);
  // Written by rename: nothing but the file itself is left in the directory.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1);
  std::filesystem::remove_all(dir);
}

TEST_F(Sweep, JsonLogsAreOneObjectPerLineEndingWithTheSummary) {
  const Secret forged = secret('1');
  seed_apay(forged.hash, "outbound_paid", 2000000);
  serve(json::array({outbound_succeeded(forged.hash, secret('2').preimage)}));
  const auto json_logs = [&](const std::string& token) {
    const ProcessResult run =
        run_process({LSP_SWEEPER_BINARY, "--log-format", "json", "run", "--node-url", node_->url()},
                    {{"LSP_SWEEPER_DB_URL", db_.uri()}, {"LSP_SWEEPER_NODE_TOKEN", token}});
    std::istringstream lines(run.err);
    std::vector<json> logs;
    for (std::string line; std::getline(lines, line);) {
      EXPECT_NO_THROW(logs.push_back(json::parse(line))) << line;
    }
    for (const auto& log : logs) {
      EXPECT_TRUE(log["time"].is_string()) << log;
      EXPECT_TRUE(log["level"].is_string()) << log;
    }
    EXPECT_FALSE(logs.empty()) << run.err;
    return std::make_pair(run.exit_code, logs);
  };

  const auto [code, logs] = json_logs(kToken);
  EXPECT_EQ(code, 1);
  ASSERT_GE(logs.size(), 2u);
  EXPECT_EQ(logs.front()["level"], "warning");
  EXPECT_NE(logs.front()["message"].get<std::string>().find("preimage_mismatch"),
            std::string::npos);
  const std::string summary = logs.back()["message"];
  EXPECT_EQ(summary.rfind("sweep complete: ", 0), 0u) << summary;
  EXPECT_NE(summary.find("needing_person=1"), std::string::npos) << summary;

  // The failed run's summary quotes its error ("..."): still one valid object.
  const auto [failed_code, failed_logs] = json_logs("wrong-token");
  EXPECT_EQ(failed_code, 2);
  ASSERT_FALSE(failed_logs.empty());
  EXPECT_EQ(failed_logs.back()["level"], "error");
  const std::string failed = failed_logs.back()["message"];
  EXPECT_NE(failed.find("sweep INCOMPLETE"), std::string::npos) << failed;
  EXPECT_NE(failed.find("error=\"GET /networkinfo"), std::string::npos) << failed;
}

TEST_F(Sweep, HistoryShowsRecentRunsAndOpenDivergences) {
  const auto [forged, lost] = serve_forged_and_lost('3', '4');
  EXPECT_EQ(sweep({"--lookup", "list"}).exit_code, 1);
  EXPECT_EQ(sweep({"--lookup", "list"}).exit_code, 1);
  const auto history = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{LSP_SWEEPER_BINARY, "history"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, {{"LSP_SWEEPER_DB_URL", db_.uri()}});
  };

  const ProcessResult as_json = history({"--json"});
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  const json h = json::parse(as_json.out);
  ASSERT_EQ(h["runs"].size(), 2u);
  const json& newest = h["runs"][0];
  EXPECT_EQ(newest["status"], "divergences");
  EXPECT_EQ(newest["exit_code"], 1);
  EXPECT_EQ(newest["payments_scanned"], 2);
  EXPECT_EQ(newest["repairs_applied"], 0);
  EXPECT_EQ(h["runs"][1]["repairs_applied"], 1);
  EXPECT_EQ(newest["divergences"], 1);
  EXPECT_TRUE(newest["duration_seconds"].is_number());
  ASSERT_EQ(h["open_divergences"].size(), 1u);
  EXPECT_EQ(h["open_divergences"][0]["payment_hash"], forged.hash);

  EXPECT_EQ(json::parse(history({"--json", "--last", "1"}).out)["runs"].size(), 1u);

  const ProcessResult table = history({});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out.rfind("STARTED", 0), 0u) << table.out;
  EXPECT_NE(table.out.find("Open divergences: 1"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("preimage_mismatch  apay  " + forged.hash), std::string::npos)
      << table.out;
}

// Issue 12.7: a run killed with SIGKILL leaves its row 'running'; history shows it abandoned,
// with when it started, while a run that is still going (it holds the sweep lock) stays
// 'running'. history opens the database read-only, on both backends.
TEST_F(Sweep, HistoryShowsAKilledRunAbandonedAndALiveOneRunning) {
  serve(json::array());
  sim::Fault slow;
  slow.kind = sim::FaultKind::Slow;
  slow.delay = std::chrono::milliseconds(4000);
  node_->inject("/networkinfo", 1, slow);  // the killed run's first node request
  const std::map<std::string, std::string> env{{"LSP_SWEEPER_NODE_URL", node_->url()},
                                               {"LSP_SWEEPER_DB_URL", db_.uri_as_sweeper()},
                                               {"LSP_SWEEPER_NODE_TOKEN", kToken}};
  const ProcessResult killed =
      run_process({LSP_SWEEPER_BINARY, "run"}, env, std::chrono::seconds(1));
  ASSERT_TRUE(killed.timed_out) << killed.err;
  ASSERT_EQ(count("lsp_sweeper.runs WHERE status = 'running'"), 1);

  const auto history = [&] {
    const ProcessResult r =
        run_process({LSP_SWEEPER_BINARY, "history", "--json"}, {{"LSP_SWEEPER_DB_URL", db_.uri()}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out)["runs"];
  };
  json runs = history();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["status"], "abandoned");
  EXPECT_TRUE(runs[0]["started_at"].is_string());
  EXPECT_TRUE(runs[0]["duration_seconds"].is_null());
  const ProcessResult table =
      run_process({LSP_SWEEPER_BINARY, "history"}, {{"LSP_SWEEPER_DB_URL", db_.uri()}});
  EXPECT_NE(table.out.find(" abandoned "), std::string::npos) << table.out;
  if (db_.is_sqlite()) {
    EXPECT_FALSE(std::filesystem::exists(db_.path() + "-journal")) << "history wrote nothing";
  }

  // A live run: its node answers slowly, and history looks while it holds the lock.
  node_->inject("/networkinfo", 2, slow);
  ProcessResult live;
  std::thread running([&] { live = run_process({LSP_SWEEPER_BINARY, "run"}, env); });
  for (int i = 0; i < 300 && count("lsp_sweeper.runs WHERE status = 'running'") < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  runs = history();
  running.join();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0]["status"], "running");
  EXPECT_EQ(runs[1]["status"], "abandoned");
  EXPECT_EQ(live.exit_code, 0) << live.err << "history must not take the lock from a run";
  runs = history();
  EXPECT_EQ(runs[0]["status"], "ok");
  EXPECT_EQ(runs[1]["status"], "abandoned");
}

// Issue 12.3: a live record whose payment_hash is not 64 lowercase hex digits cannot be found
// by the node's normalized hash. It is a record_hash_malformed divergence, never an orphan and
// never repaired, in both lookup modes; once the LSP's row is corrected, the divergence
// resolves and the repair lands. A terminal row with such a hash is left alone.
TEST_F(Sweep, RecordHashNotLowercaseHexIsADivergenceNeverAnOrphan) {
  const auto upper = [](std::string h) {
    std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::toupper(c); });
    return h;
  };
  const Secret held = secret('U'), waiting = secret('W'), ended = secret('V');
  seed_apay(upper(held.hash), "active", 3000000);        // its HTLC is held on the node
  seed_apay(upper(waiting.hash), "claimable", 3000000);  // lacks its outbox job
  seed_apay(upper(ended.hash), "failed", 3000000);       // terminal: not reported
  seed_relay("not-a-payment-hash", "quoted", 5000000);
  serve(json::array({hodl_claimable(held.hash, 3000000)}));

  for (const char* mode : {"list", "targeted"}) {
    const ProcessResult run = sweep({"--lookup", mode});
    EXPECT_EQ(run.exit_code, 1) << mode << run.err;
    const json r = report(run);
    EXPECT_EQ(r["summary"]["orphans"], 0) << mode;
    EXPECT_EQ(r["repairs"].size(), 0u) << mode << r["repairs"];
    ASSERT_EQ(r["divergences"].size(), 3u) << mode << r["divergences"];
    for (const json& d : r["divergences"]) EXPECT_EQ(d["kind"], "record_hash_malformed") << d;
    const json* held_d = find_by_hash(r["divergences"], upper(held.hash));
    ASSERT_NE(held_d, nullptr) << r["divergences"];
    EXPECT_EQ((*held_d)["flow"], "apay");
    EXPECT_NE((*held_d)["detail"].get<std::string>().find("not lowercase"), std::string::npos);
    EXPECT_NE(find_by_hash(r["divergences"], upper(waiting.hash)), nullptr);
    const json* relay_d = find_by_hash(r["divergences"], "not-a-payment-hash");
    ASSERT_NE(relay_d, nullptr) << r["divergences"];
    EXPECT_NE((*relay_d)["detail"].get<std::string>().find("not 64 hex digits"), std::string::npos);
  }
  EXPECT_EQ(apay_status(upper(held.hash)), "active");
  EXPECT_EQ(apay_status(upper(waiting.hash)), "claimable");
  EXPECT_EQ(count("async_rotating_invoice_outbox"), 0);
  EXPECT_EQ(count("lsp_sweeper.divergences WHERE resolved_at IS NULL"), 3);

  // The LSP's rows corrected: the repairs land and the divergences resolve.
  db_.exec("UPDATE async_rotating_invoices SET payment_hash = lower(payment_hash)");
  db_.exec("UPDATE lightning_send_mappings SET status = 'cancelled'");
  const ProcessResult fixed = sweep({"--lookup", "list"});
  EXPECT_EQ(fixed.exit_code, 0) << fixed.err;
  const json r = report(fixed);
  EXPECT_EQ(r["summary"]["repairs_applied"], 2) << r["repairs"];
  EXPECT_EQ(r["summary"]["divergences_resolved"], 3);
  EXPECT_EQ(apay_status(held.hash), "claimable");
  EXPECT_EQ(jobs(held.hash, "request_outbound_invoice"), 1);
  EXPECT_EQ(jobs(waiting.hash, "request_outbound_invoice"), 1);
}

// A scratch directory with a config file in it, removed afterwards.
class ConfigDir {
 public:
  ConfigDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "lsp-cfg.XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
  }
  ~ConfigDir() { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string write(const std::string& text, std::filesystem::perms mode) const {
    const std::string file = path("lsp-sweeper.toml");
    std::ofstream(file, std::ios::trunc) << text;
    std::filesystem::permissions(file, mode);
    return file;
  }

 private:
  std::filesystem::path dir_;
};

constexpr auto kOwnerOnly =
    std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;
constexpr auto kWorldReadable =
    kOwnerOnly | std::filesystem::perms::group_read | std::filesystem::perms::others_read;

TEST_F(Sweep, ConfigFileIsTheLowestLayerBelowEnvironmentAndFlags) {
  const Secret lost = secret('6');
  seed_relay(lost.hash, "outbound_pending", 7000000);
  serve(json::array({outbound_succeeded(lost.hash, lost.preimage)}));
  ConfigDir dir;
  const std::string file_report = dir.path("file.json"), env_report = dir.path("env.json"),
                    flag_report = dir.path("flag.json");
  const std::string config =
      dir.write("# lsp-sweeper\nnode-url = \"" + node_->url() + "\"\ndb = \"" + db_.uri() +
                    "\"\nreport = \"" + file_report + "\"\nlookback = \"2d\"\n",
                kOwnerOnly);
  // Which of the three reports a run wrote; each run starts with none of them.
  const auto written = [&] {
    std::string which;
    for (const auto& [name, path] : {std::pair{"file", file_report}, std::pair{"env", env_report},
                                     std::pair{"flag", flag_report}}) {
      if (std::filesystem::remove(path)) which += name;
    }
    return which;
  };
  const auto run = [&](std::vector<std::string> flags, std::map<std::string, std::string> env) {
    std::vector<std::string> argv{LSP_SWEEPER_BINARY, "--config", config, "run"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    env["LSP_SWEEPER_NODE_TOKEN"] = kToken;
    env["LSP_SWEEPER_NODE_URL"] = "";
    env["LSP_SWEEPER_DB_URL"] = "";
    return run_process(argv, env);
  };

  const ProcessResult from_file = run({}, {});
  ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
  EXPECT_EQ(written(), "file");
  EXPECT_EQ(relay_status(lost.hash), "outbound_claimed");

  const ProcessResult from_env = run({}, {{"LSP_SWEEPER_REPORT", env_report}});
  EXPECT_EQ(from_env.exit_code, 0) << from_env.err;
  EXPECT_EQ(written(), "env");

  const ProcessResult from_flag =
      run({"--report", flag_report}, {{"LSP_SWEEPER_REPORT", env_report}});
  EXPECT_EQ(from_flag.exit_code, 0) << from_flag.err;
  EXPECT_EQ(written(), "flag");
  EXPECT_EQ(count("lsp_sweeper.runs"), 3);

  // The documented example is accepted key by key; the environment's db beats its db.
  const ProcessResult example =
      run_process({LSP_SWEEPER_BINARY, "--config", EXAMPLE_CONFIG, "history", "--json"},
                  {{"LSP_SWEEPER_DB_URL", db_.uri()}});
  ASSERT_EQ(example.exit_code, 0) << example.err;
  EXPECT_EQ(json::parse(example.out)["runs"].size(), 3u);
}

TEST_F(Sweep, ConfigFileRefusesTokensUnknownKeysAndExposedSecrets) {
  serve(json::array());
  ConfigDir dir;
  const auto run = [&](const std::string& config) {
    return run_process({LSP_SWEEPER_BINARY, "run", "--config=" + config, "--dry-run"},
                       {{"LSP_SWEEPER_NODE_URL", node_->url()},
                        {"LSP_SWEEPER_DB_URL", ""},
                        {"LSP_SWEEPER_NODE_TOKEN", kToken}});
  };

  const std::string with_password = "db = \"postgresql://sweeper:pw-Zk41@127.0.0.1:1/lsp\"\n";
  const ProcessResult exposed = run(dir.write(with_password, kWorldReadable));
  EXPECT_EQ(exposed.exit_code, 2);
  EXPECT_NE(exposed.err.find("chmod o-r"), std::string::npos) << exposed.err;
  EXPECT_EQ(exposed.err.find("pw-Zk41"), std::string::npos) << exposed.err;
  // The same file kept private is accepted (the run then fails on the unreachable database).
  const ProcessResult private_file = run(dir.write(with_password, kOwnerOnly));
  EXPECT_EQ(private_file.err.find("chmod o-r"), std::string::npos) << private_file.err;
  EXPECT_NE(private_file.err.find("127.0.0.1"), std::string::npos) << private_file.err;
  EXPECT_EQ(private_file.err.find("pw-Zk41"), std::string::npos) << private_file.err;

  const ProcessResult token = run(dir.write("node-token = \"tok-Vb3\"\n", kOwnerOnly));
  EXPECT_EQ(token.exit_code, 2);
  EXPECT_NE(token.err.find("node-token-file"), std::string::npos) << token.err;
  EXPECT_EQ(token.err.find("tok-Vb3"), std::string::npos) << token.err;

  const ProcessResult unknown = run(dir.write("no-such-key = 1\n", kOwnerOnly));
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("'no-such-key' is not a configuration key"), std::string::npos)
      << unknown.err;
}

TEST_F(Sweep, DivergencesAreNewThenOngoingThenResolved) {
  const Secret forged = secret('s');
  seed_apay(forged.hash, "outbound_paid", 2000000);
  serve(json::array({outbound_succeeded(forged.hash, secret('t').preimage)}));

  const json first = report(sweep());
  ASSERT_EQ(first["divergences"].size(), 1u);
  EXPECT_EQ(first["divergences"][0]["state"], "new");
  EXPECT_EQ(first["summary"]["divergences_new"], 1);
  EXPECT_EQ(first["resolved_divergences"], json::array());
  EXPECT_EQ(db_.query_value<std::string>("SELECT kind FROM lsp_sweeper.divergences WHERE "
                                         "payment_hash = $1 AND resolved_at IS NULL",
                                         forged.hash),
            "preimage_mismatch");

  const json second = report(sweep());
  EXPECT_EQ(second["divergences"][0]["state"], "ongoing");
  EXPECT_EQ(second["summary"]["divergences_new"], 0);
  EXPECT_EQ(count("lsp_sweeper.divergences"), 1);
  EXPECT_TRUE(
      db_.query_value<bool>("SELECT last_seen_at > first_seen_at FROM lsp_sweeper.divergences"));

  // A dry run neither records nor resolves anything.
  node_->replace_payments(json::array());
  const json dry = report(sweep({"--dry-run"}));
  EXPECT_EQ(dry["resolved_divergences"], json::array());
  EXPECT_TRUE(db_.query_value<bool>("SELECT resolved_at IS NULL FROM lsp_sweeper.divergences"));

  // The node no longer reports the payment: a complete run resolves it.
  const ProcessResult third = sweep();
  EXPECT_EQ(third.exit_code, 0) << third.err;
  const json r = report(third);
  ASSERT_EQ(r["resolved_divergences"].size(), 1u);
  EXPECT_EQ(r["resolved_divergences"][0]["payment_hash"], forged.hash);
  EXPECT_EQ(r["resolved_divergences"][0]["kind"], "preimage_mismatch");
  EXPECT_EQ(r["summary"]["divergences_resolved"], 1);
  EXPECT_TRUE(db_.query_value<bool>("SELECT resolved_at IS NOT NULL FROM lsp_sweeper.divergences"));
  EXPECT_EQ(report(sweep())["summary"]["divergences_resolved"], 0);
}

TEST_F(Sweep, RunsThatCannotSeeEverythingResolveNothing) {
  const Secret forged = secret('u'), recent = secret('v');
  seed_apay(forged.hash, "outbound_paid", 2000000);
  seed_relay(recent.hash, "outbound_pending", 2000000);
  json changed = outbound_succeeded(recent.hash, secret('w').preimage);
  serve(json::array({outbound_succeeded(forged.hash, secret('t').preimage), changed}));
  EXPECT_EQ(report(sweep())["summary"]["divergences_new"], 2);

  // The second payment changed moments ago: deferred by --min-age, its divergence stays.
  changed["updated_ago"] = 1;
  node_->replace_payments(json::array({changed}));
  const json deferred = report(sweep());
  EXPECT_EQ(deferred["summary"]["deferred"], 1);
  ASSERT_EQ(deferred["resolved_divergences"].size(), 1u);
  EXPECT_EQ(deferred["resolved_divergences"][0]["payment_hash"], forged.hash);
  EXPECT_EQ(db_.query_value<int>(
                "SELECT count(*) FROM lsp_sweeper.divergences WHERE resolved_at IS NULL AND "
                "payment_hash = $1",
                recent.hash),
            1);

  // A legacy node has no Claimable listing: not seeing a divergence there proves nothing.
  serve(json::array(), "legacy");
  const json legacy = report(sweep());
  EXPECT_EQ(legacy["resolved_divergences"], json::array());
  EXPECT_EQ(db_.query_value<int>(
                "SELECT count(*) FROM lsp_sweeper.divergences WHERE resolved_at IS NULL"),
            1);
}

TEST_F(Sweep, WebhookReceivesNewDivergencesRepairsAndReminders) {
  const auto [forged, lost] = serve_forged_and_lost('x', 'y');
  testing::WebhookReceiver receiver("/services/T000/B000/hook-secret-Xy7", 200);

  const ProcessResult first = sweep({"--alert-webhook", receiver.url()});
  EXPECT_EQ(first.exit_code, 1) << first.err;
  EXPECT_EQ(first.err.find("hook-secret-Xy7"), std::string::npos) << first.err;
  EXPECT_EQ(report(first)["summary"]["alerts_sent"], 1);
  ASSERT_EQ(receiver.bodies().size(), 1u);
  const json body = json::parse(receiver.bodies()[0]);
  const std::string text = body["text"];
  EXPECT_NE(text.find("1 new"), std::string::npos) << text;
  EXPECT_NE(text.find(forged.hash), std::string::npos) << text;
  EXPECT_NE(text.find("missed_payment_sent"), std::string::npos) << text;
  ASSERT_EQ(body["new_divergences"].size(), 1u);
  EXPECT_EQ(body["new_divergences"][0]["kind"], "preimage_mismatch");
  ASSERT_EQ(body["repairs_applied"].size(), 1u);
  EXPECT_EQ(body["repairs_applied"][0]["payment_hash"], lost.hash);
  EXPECT_TRUE(
      db_.query_value<bool>("SELECT last_alerted_at IS NOT NULL FROM lsp_sweeper.divergences"));

  // Still open, alerted moments ago, nothing repaired: nothing to say.
  EXPECT_EQ(sweep({"--alert-webhook", receiver.url()}).exit_code, 1);
  EXPECT_EQ(receiver.bodies().size(), 1u);

  // Past --realert-after: a reminder.
  EXPECT_EQ(sweep({"--alert-webhook", receiver.url(), "--realert-after", "0s"}).exit_code, 1);
  ASSERT_EQ(receiver.bodies().size(), 2u);
  const json reminder = json::parse(receiver.bodies()[1]);
  EXPECT_EQ(reminder["new_divergences"], json::array());
  ASSERT_EQ(reminder["ongoing_divergences"].size(), 1u);
  EXPECT_EQ(reminder["ongoing_divergences"][0]["payment_hash"], forged.hash);

  // Gone from the node: the alert says it is resolved.
  node_->replace_payments(json::array());
  EXPECT_EQ(sweep({"--alert-webhook", receiver.url()}).exit_code, 0);
  ASSERT_EQ(receiver.bodies().size(), 3u);
  const json resolved = json::parse(receiver.bodies()[2]);
  ASSERT_EQ(resolved["resolved_divergences"].size(), 1u);
  EXPECT_EQ(resolved["resolved_divergences"][0]["payment_hash"], forged.hash);
}

TEST_F(Sweep, FailingWebhookIsCountedAndRepairsStayCommitted) {
  const Secret lost = secret('0');
  seed_relay(lost.hash, "outbound_pending", 7000000);
  serve(json::array({outbound_succeeded(lost.hash, lost.preimage)}));
  testing::WebhookReceiver broken("/hooks/broken-secret-Q9", 500);

  const ProcessResult run = sweep({"--alert-webhook", broken.url()});
  EXPECT_EQ(run.exit_code, 1) << "an undelivered alert needs attention\n" << run.err;
  const json r = report(run);
  EXPECT_EQ(r["summary"]["alert_failures"], 1);
  EXPECT_EQ(r["summary"]["alerts_sent"], 0);
  EXPECT_EQ(broken.bodies().size(), 3u) << "a 500 is retried, 3 attempts in all";
  EXPECT_NE(run.err.find("HTTP 500"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find("broken-secret-Q9"), std::string::npos) << run.err;
  EXPECT_EQ(relay_status(lost.hash), "outbound_claimed");
  EXPECT_EQ(jobs(lost.hash, "lightning_send_claim_inbound"), 1);
  EXPECT_EQ(report_number("summary", "alert_failures"), 1);
}

// The LSP's own live callback lands after the sweeper read the records but before it applies
// its repair: the conditional UPDATE then changes nothing and no second job appears.
class CallbackLandsMidSweep : public store::LspRecords {
 public:
  CallbackLandsMidSweep(store::LspRecords& inner, TestDatabase& db) : inner_(inner), db_(db) {}

  std::vector<Flow> flows() const override { return inner_.flows(); }
  std::vector<LspRecord> records_for(const std::vector<std::string>& hashes) override {
    auto records = inner_.records_for(hashes);
    for (const auto& hash : hashes) {
      // The LSP's own payment_sent callback (../shared/lsp/README.md), with its own preimage.
      db_.exec(
          "UPDATE async_rotating_invoices SET status = 'outbound_claimed', payment_preimage = "
          "COALESCE(payment_preimage, 'from-callback'), updated_at = CURRENT_TIMESTAMP WHERE "
          "payment_hash = $1 AND status = 'outbound_paid'",
          hash);
      db_.exec(
          "INSERT INTO async_rotating_invoice_outbox (payment_hash, action, status, available_at) "
          "VALUES ($1, 'claim_inbound_invoice', 'pending', CURRENT_TIMESTAMP) "
          "ON CONFLICT (payment_hash, action) DO NOTHING",
          hash);
    }
    return records;
  }
  void records_lacking_outbox_job(Flow flow, const std::vector<RequiredJob>& jobs,
                                  std::uint32_t page_size,
                                  const store::RecordSink& on_page) override {
    inner_.records_lacking_outbox_job(flow, jobs, page_size, on_page);
  }
  std::vector<store::AwaitingSince> awaiting_node_since(
      Flow flow, const std::vector<std::vector<std::string>>& quiet,
      const std::vector<std::string>& open_hashes) override {
    return inner_.awaiting_node_since(flow, quiet, open_hashes);
  }
  std::vector<StuckJob> stuck_jobs(std::int64_t stuck_after_seconds) override {
    return inner_.stuck_jobs(stuck_after_seconds);
  }
  void records_awaiting_node(Flow flow, const std::vector<std::string>& quiet, std::size_t batch,
                             const store::RecordSink& sink) override {
    inner_.records_awaiting_node(flow, quiet, batch, sink);
  }
  std::vector<std::string> live_twin_hashes(Flow flow, const std::vector<std::string>& terminal,
                                            std::int64_t limit) override {
    return inner_.live_twin_hashes(flow, terminal, limit);
  }
  std::vector<LspRecord> records_with_malformed_hash(Flow flow,
                                                     const std::vector<std::string>& terminal,
                                                     std::int64_t limit) override {
    return inner_.records_with_malformed_hash(flow, terminal, limit);
  }

 private:
  store::LspRecords& inner_;
  TestDatabase& db_;
};

TEST_F(Sweep, CallbackLandingBetweenPlanAndApplyLeavesExactlyOneJob) {
  const Secret s = secret('r');
  seed_apay(s.hash, "outbound_paid", 2000000);
  serve(json::array({outbound_succeeded(s.hash, s.preimage)}));

  node::NodeClient client({node_->url(), kToken});
  store::Backend db = store::open_backend(db_.uri_as_sweeper(), store::Access::ReadWrite);
  const std::unique_ptr<store::LspRecords> real = std::move(db.records);
  db.records = std::make_unique<CallbackLandsMidSweep>(*real, db_);
  run::SweepOptions options;
  options.node_url = node_->url();
  const report::RunResult result = run::run_sweep(client, db, options);

  ASSERT_TRUE(result.complete) << result.error.value_or("");
  ASSERT_EQ(result.repairs.size(), 1u);
  EXPECT_FALSE(result.repairs[0].applied);
  EXPECT_EQ(report::exit_code(result), 0);
  EXPECT_EQ(jobs(s.hash, "claim_inbound_invoice"), 1);
  // The callback's write stands; the sweeper did not overwrite it.
  EXPECT_EQ(
      db_.query_value<std::string>(
          "SELECT payment_preimage FROM async_rotating_invoices WHERE payment_hash=$1", s.hash),
      "from-callback");
  EXPECT_EQ(db_.query_value<bool>("SELECT applied FROM lsp_sweeper.actions"), false);
}

// Issue 10.3: stuck outbox jobs, in the LSP's own timestamps on each backend, are reported with
// their own kinds, stay open while stuck, resolve when done, and are never touched.
TEST_F(Sweep, StuckOutboxJobsAreReportedAndNeverTouched) {
  // A timestamp `seconds` ago in the backend's own form (SQLite: the LSP's TEXT).
  const auto ago = [&](int seconds) {
    return db_.is_sqlite() ? "datetime('now', '-" + std::to_string(seconds) + " seconds')"
                           : "now() - interval '" + std::to_string(seconds) + " seconds'";
  };
  const auto job = [&](const std::string& seed, const std::string& action,
                       const std::string& status, int attempts, int age, int locked_ago = -1) {
    const std::string hash = util::sha256_hex(seed);
    db_.exec(
        "INSERT INTO async_rotating_invoice_outbox (payment_hash, action, status, attempts, "
        "available_at, locked_until, last_error, created_at) VALUES ($1, $2, $3, $4, " +
            ago(0) + ", " + (locked_ago < 0 ? std::string("NULL") : ago(locked_ago)) + ", $5, " +
            ago(age) + ")",
        hash, action, status, static_cast<std::int64_t>(attempts),
        std::string(attempts > 0 ? "claim_deadline_height is missing" : ""));
    return hash;
  };
  const std::string retrying = job("retrying", "request_outbound_invoice", "pending", 5, 7200);
  job("young", "request_outbound_invoice", "pending", 5, 600);
  job("few", "request_outbound_invoice", "pending", 2, 7200);
  const std::string expired = job("expired", "claim_inbound_invoice", "processing", 1, 10800, 7200);
  job("locked", "claim_inbound_invoice", "processing", 1, 10800, 60);
  for (int i = 0; i < 6; ++i) {
    job("failing" + std::to_string(i), "claim_inbound_invoice", "pending", 1, 60);
  }
  job("early", "claim_inbound_invoice", "pending", 0, 60);  // nine failing jobs before it
  job("failing-last", "claim_inbound_invoice", "pending", 1, 60);
  const std::string blocked = job("blocked", "send_outbound_payment", "pending", 0, 60);
  serve(json::array());
  const std::string jobs_sql =
      "SELECT id, payment_hash, action, status, attempts, available_at, locked_until, "
      "last_error, created_at, updated_at FROM async_rotating_invoice_outbox ORDER BY id";
  const std::string jobs_before = db_.rows_text(jobs_sql);

  const auto kinds = [&](const json& r) {
    std::multiset<std::string> out;
    for (const auto& d : r["divergences"]) {
      out.insert(d["kind"].get<std::string>() + " " + d["flow"].get<std::string>() + " " +
                 d["payment_hash"].get<std::string>());
    }
    return out;
  };
  const std::multiset<std::string> all{"outbox_job_retrying apay " + retrying,
                                       "outbox_job_lock_expired apay " + expired,
                                       "outbox_job_blocked apay " + blocked};

  const ProcessResult dry = sweep({"--dry-run"});
  EXPECT_EQ(dry.exit_code, 1) << dry.err;
  EXPECT_EQ(kinds(report(dry)), all);
  EXPECT_EQ(count("lsp_sweeper.divergences"), 0);

  char dir_template[] = "/tmp/lsp-sweeper-stuck.XXXXXX";
  const std::filesystem::path dir = mkdtemp(dir_template);
  const std::string metrics = dir / "lsp_sweeper.prom";
  const ProcessResult first = sweep({"--metrics-file", metrics});
  EXPECT_EQ(first.exit_code, 1) << first.err;
  const json r = report(first);
  EXPECT_EQ(kinds(r), all);
  const json* d = find_by_hash(r["divergences"], retrying);
  ASSERT_NE(d, nullptr);
  EXPECT_NE((*d)["detail"].get<std::string>().find(
                "request_outbound_invoice is pending after 5 attempt(s), 720"),
            std::string::npos)
      << (*d)["detail"];
  EXPECT_NE((*d)["detail"].get<std::string>().find("last error: 'claim_deadline_height is "
                                                   "missing'"),
            std::string::npos);
  d = find_by_hash(r["divergences"], blocked);
  ASSERT_NE(d, nullptr);
  EXPECT_NE((*d)["detail"].get<std::string>().find("10 pending job(s) with attempts > 0"),
            std::string::npos)
      << (*d)["detail"];
  EXPECT_EQ(db_.rows_text(jobs_sql), jobs_before) << "no job is edited, retried or deleted";
  const std::string text = util::read_file(metrics).value_or("");
  for (const char* kind :
       {"outbox_job_retrying", "outbox_job_lock_expired", "outbox_job_blocked"}) {
    EXPECT_EQ(
        sample(text, "lsp_sweeper_divergences_needing_person{kind=\"" + std::string(kind) + "\"}"),
        1)
        << kind << "\n"
        << text;
  }
  std::filesystem::remove_all(dir);

  // A longer --stuck-after: the retrying and the expired job are not stuck yet, and resolve.
  const ProcessResult longer = sweep({"--stuck-after", "4h"});
  EXPECT_EQ(kinds(report(longer)),
            (std::multiset<std::string>{"outbox_job_blocked apay " + blocked}));
  EXPECT_EQ(db_.query_value<int>("SELECT count(*) FROM lsp_sweeper.divergences WHERE resolved_at "
                                 "IS NOT NULL"),
            2);

  // The blocked job is done: its divergence resolves too; history shows the open ones.
  db_.exec("UPDATE async_rotating_invoice_outbox SET status = 'done' WHERE payment_hash = $1",
           blocked);
  const ProcessResult done = sweep();
  EXPECT_EQ(kinds(report(done)),
            (std::multiset<std::string>{"outbox_job_retrying apay " + retrying,
                                        "outbox_job_lock_expired apay " + expired}));
  EXPECT_TRUE(
      db_.query_value<bool>("SELECT resolved_at IS NOT NULL FROM lsp_sweeper.divergences "
                            "WHERE kind = 'outbox_job_blocked'"));
  const ProcessResult history =
      run_process({LSP_SWEEPER_BINARY, "history", "--json"}, {{"LSP_SWEEPER_DB_URL", db_.uri()}});
  ASSERT_EQ(history.exit_code, 0) << history.err;
  std::multiset<std::string> open;
  const json h = json::parse(history.out);
  for (const auto& o : h["open_divergences"]) {
    open.insert(o["kind"].get<std::string>());
  }
  EXPECT_EQ(open, (std::multiset<std::string>{"outbox_job_lock_expired", "outbox_job_retrying"}));
}

}  // namespace
}  // namespace lsp_sweeper
