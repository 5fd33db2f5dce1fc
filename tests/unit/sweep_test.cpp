// The whole sweep loop (run::run_sweep) through the in-memory fakes of its two seams: every
// behaviour of the end-to-end suite that is the loop's own (paging, planning per page, apply,
// missing jobs, the ledger of divergences), with no network and no database.
#include "lsp_sweeper/run/sweep.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "lsp_sweeper/report/history.hpp"
#include "lsp_sweeper/util/hex.hpp"
#include "support/secret.hpp"
#include "unit/fake_backend.hpp"

namespace lsp_sweeper {
namespace {

using testing::FakeDatabase;
using testing::FakeNode;

constexpr std::int64_t kHeight = 800'000;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using testing::Secret;
using testing::secret;

// A payment updated five minutes ago: old enough for the default --min-age.
NodePayment payment(const std::string& hash, PaymentType type, NodeStatus status) {
  NodePayment p;
  p.payment_hash = hash;
  p.type = type;
  p.status = status;
  p.amt_msat = 3'000'000;
  p.created_at = unix_now() - 600;
  p.updated_at = unix_now() - 300;
  return p;
}

NodePayment hodl_claimable(const std::string& hash, std::int64_t amt,
                           std::optional<std::int64_t> deadline = kHeight + 144) {
  NodePayment p = payment(hash, PaymentType::InboundHodl, NodeStatus::Claimable);
  p.amt_msat = static_cast<std::uint64_t>(amt);
  p.claim_deadline_height = deadline;
  return p;
}

NodePayment outbound_succeeded(const std::string& hash, const std::string& preimage) {
  NodePayment p = payment(hash, PaymentType::Outbound, NodeStatus::Succeeded);
  p.amt_msat = 1'000'000;
  p.preimage = preimage;
  return p;
}

std::multiset<std::string> repairs_of(const report::RunResult& r) {
  std::multiset<std::string> out;
  for (const auto& x : r.repairs) {
    out.insert(std::string(plan::to_string(x.kind)) + " " + std::string(to_string(x.flow)) + " " +
               std::to_string(x.row_id) + " " + x.payment_hash + " " + x.observed_status + "->" +
               x.to + " " + x.outbox_action + (x.applied ? " applied" : ""));
  }
  return out;
}

// Details aside: some quote seconds since an update.
std::multiset<std::string> divergences_of(const report::RunResult& r) {
  std::multiset<std::string> out;
  for (const auto& d : r.divergences) {
    out.insert(std::string(plan::to_string(d.kind)) + " " +
               (d.flow ? std::string(to_string(*d.flow)) : "-") + " " + d.payment_hash +
               (d.needs_person ? " person" : ""));
  }
  return out;
}

std::vector<plan::DivergenceKind> kinds_of(const report::RunResult& r) {
  std::vector<plan::DivergenceKind> out;
  for (const auto& d : r.divergences) out.push_back(d.kind);
  return out;
}

class SweepLoop : public ::testing::Test {
 protected:
  report::RunResult sweep() { return sweep(db_); }
  report::RunResult sweep(FakeDatabase& db) {
    store::Backend backend = testing::make_backend(db);
    report::RunResult result = run::run_sweep(node_, backend, options_);
    run::record_outcome(*backend.ledger, result);  // as main does, after the outputs
    return result;
  }

  FakeDatabase db_;
  FakeNode node_;
  run::SweepOptions options_;
};

TEST_F(SweepLoop, RepairsEveryMissedTransitionOnceAndOnlyOnce) {
  const Secret apay_claim = secret('1'), relay_claim = secret('2'), apay_sent = secret('3'),
               relay_sent = secret('4'), relay_paid = secret('5');
  db_.add(Flow::Apay, apay_claim.hash, "active", 3'000'000);
  db_.add(Flow::Relay, relay_claim.hash, "quoted", 5'000'000);
  db_.add(Flow::Apay, apay_sent.hash, "outbound_paid", 2'000'000);
  db_.add(Flow::Relay, relay_sent.hash, "outbound_pending", 7'000'000);
  db_.add(Flow::Relay, relay_paid.hash, "outbound_paid", 7'000'000);
  node_.payments = {hodl_claimable(apay_claim.hash, 3'000'000),
                    hodl_claimable(relay_claim.hash, 5'000'000, kHeight + 50),
                    outbound_succeeded(apay_sent.hash, apay_sent.preimage),
                    outbound_succeeded(relay_sent.hash, relay_sent.preimage),
                    outbound_succeeded(relay_paid.hash, relay_paid.preimage)};

  const report::RunResult first = sweep();
  ASSERT_TRUE(first.complete) << first.error.value_or("");
  EXPECT_EQ(report::exit_code(first), 0);
  EXPECT_TRUE(first.divergences.empty()) << ::testing::PrintToString(divergences_of(first));
  ASSERT_EQ(first.repairs.size(), 5u);
  for (const auto& r : first.repairs) EXPECT_TRUE(r.applied) << r.payment_hash;

  const auto& claimed = db_.only_row(Flow::Apay, apay_claim.hash);
  EXPECT_EQ(claimed.status, "claimable");
  EXPECT_TRUE(claimed.claimable_at_set);
  EXPECT_EQ(claimed.claim_deadline_height, kHeight + 144);
  EXPECT_EQ(db_.only_row(Flow::Relay, relay_claim.hash).status, "claimable");
  EXPECT_EQ(db_.only_row(Flow::Relay, relay_claim.hash).claim_deadline_height, kHeight + 50);
  EXPECT_EQ(db_.only_row(Flow::Apay, apay_sent.hash).status, "outbound_claimed");
  EXPECT_EQ(db_.only_row(Flow::Apay, apay_sent.hash).preimage, apay_sent.preimage);
  for (const Secret* s : {&relay_sent, &relay_paid}) {
    EXPECT_EQ(db_.only_row(Flow::Relay, s->hash).status, "outbound_claimed");
    EXPECT_EQ(db_.only_row(Flow::Relay, s->hash).preimage, s->preimage);
    EXPECT_EQ(db_.job_count(s->hash, "lightning_send_claim_inbound"), 1);
  }
  EXPECT_EQ(db_.job_count(apay_claim.hash, "request_outbound_invoice"), 1);
  EXPECT_EQ(db_.job_count(relay_claim.hash, "lightning_send_pay_outbound"), 1);
  EXPECT_EQ(db_.job_count(apay_sent.hash, "claim_inbound_invoice"), 1);
  EXPECT_EQ(db_.jobs.size(), 5u);
  ASSERT_EQ(db_.audit.size(), 5u);
  for (const auto& a : db_.audit) EXPECT_TRUE(a.applied);
  ASSERT_EQ(db_.runs.size(), 1u);
  EXPECT_EQ(db_.runs[0].status, "ok");
  EXPECT_EQ(db_.runs[0].exit_code, 0);

  const FakeDatabase after_first = db_;
  const report::RunResult second = sweep();
  ASSERT_TRUE(second.complete);
  EXPECT_TRUE(second.repairs.empty());
  EXPECT_EQ(db_.apay, after_first.apay);
  EXPECT_EQ(db_.relay, after_first.relay);
  EXPECT_EQ(db_.jobs, after_first.jobs);
  EXPECT_EQ(db_.audit.size(), 5u);
  EXPECT_EQ(db_.runs.size(), 2u);
}

// The second half of the table: a record already in a state that waits on a job, with no job
// at all, gets its job, for each of the five such states (the node has no outbound payment of
// any of these hashes, so the two jobs that pay are recreated too).
TEST_F(SweepLoop, MissingOutboxJobsAreAddedOnce) {
  struct Case {
    Flow flow;
    const char* status;
    const char* action;
    Secret s;
  };
  const std::vector<Case> cases{
      {Flow::Apay, "claimable", "request_outbound_invoice", secret('a')},
      {Flow::Apay, "outbound_pending", "send_outbound_payment", secret('9')},
      {Flow::Apay, "outbound_claimed", "claim_inbound_invoice", secret('b')},
      {Flow::Relay, "claimable", "lightning_send_pay_outbound", secret('c')},
      {Flow::Relay, "outbound_claimed", "lightning_send_claim_inbound", secret('d')}};
  for (const auto& c : cases) db_.add(c.flow, c.s.hash, c.status);
  node_.payments = {outbound_succeeded(secret('x').hash, secret('x').preimage)};  // other traffic

  const report::RunResult first = sweep();
  ASSERT_TRUE(first.complete) << first.error.value_or("");
  ASSERT_EQ(first.repairs.size(), cases.size());
  for (const auto& r : first.repairs) {
    EXPECT_EQ(r.kind, plan::RepairKind::MissingOutboxJob);
    EXPECT_TRUE(r.applied);
  }
  for (const auto& c : cases) {
    EXPECT_EQ(db_.job_count(c.s.hash, c.action), 1) << c.status;
    EXPECT_EQ(db_.only_row(c.flow, c.s.hash).status, c.status) << "only the job is added";
  }
  EXPECT_TRUE(sweep().repairs.empty());
  EXPECT_EQ(db_.jobs.size(), cases.size());
}

// A job that pays, missing: the node is asked for the hash's outbound leg (and only for
// those); recreated only when it has none, else a paying_job_missing divergence with the
// leg's status, nothing written. A dry run reports the same and writes nothing.
TEST_F(SweepLoop, MissingJobThatPaysIsRecreatedOnlyWhenTheNodeHasNoOutboundPayment) {
  const Secret apay_none = secret('m'), apay_paying = secret('n'), relay_none = secret('o'),
               relay_failed = secret('p'), claims = secret('q');
  db_.add(Flow::Apay, apay_none.hash, "outbound_pending");
  db_.add(Flow::Apay, apay_paying.hash, "outbound_pending");
  db_.add(Flow::Relay, relay_none.hash, "claimable");
  db_.add(Flow::Relay, relay_failed.hash, "claimable");
  db_.add(Flow::Relay, claims.hash, "outbound_claimed");
  NodePayment pending = payment(apay_paying.hash, PaymentType::Outbound, NodeStatus::Pending);
  NodePayment failed = payment(relay_failed.hash, PaymentType::Outbound, NodeStatus::Failed);
  // An inbound leg of a hash says nothing of its outbound one.
  NodePayment inbound = payment(relay_none.hash, PaymentType::InboundHodl, NodeStatus::Succeeded);
  node_.payments = {pending, failed, inbound};
  options_.lookup = run::LookupMode::List;

  const auto check = [&](const report::RunResult& r, bool applied) {
    ASSERT_TRUE(r.complete) << r.error.value_or("");
    std::multiset<std::string> repairs;
    for (const auto& x : r.repairs) {
      EXPECT_EQ(x.applied, applied);
      repairs.insert(x.payment_hash + " " + x.outbox_action);
    }
    EXPECT_EQ(repairs, (std::multiset<std::string>{apay_none.hash + " send_outbound_payment",
                                                   relay_none.hash + " lightning_send_pay_outbound",
                                                   claims.hash + " lightning_send_claim_inbound"}));
    EXPECT_EQ(divergences_of(r), (std::multiset<std::string>{
                                     "paying_job_missing apay " + apay_paying.hash + " person",
                                     "paying_job_missing relay " + relay_failed.hash + " person"}));
    for (const auto& d : r.divergences) {
      const std::string leg = d.payment_hash == apay_paying.hash ? "Pending" : "Failed";
      EXPECT_NE(d.detail.find("outbound leg of this hash is " + leg), std::string::npos)
          << d.detail;
    }
  };

  const FakeDatabase before = db_;
  options_.dry_run = true;
  const int lookups_before = node_.lookups;
  check(sweep(), false);
  EXPECT_EQ(node_.lookups - lookups_before, 4) << "one Outbound lookup per paying record only";
  EXPECT_TRUE(db_ == before) << "a dry run writes nothing";

  options_.dry_run = false;
  check(sweep(), true);
  EXPECT_EQ(db_.job_count(apay_none.hash, "send_outbound_payment"), 1);
  EXPECT_EQ(db_.job_count(relay_none.hash, "lightning_send_pay_outbound"), 1);
  EXPECT_EQ(db_.job_count(claims.hash, "lightning_send_claim_inbound"), 1);
  EXPECT_EQ(db_.job_count(apay_paying.hash, "send_outbound_payment"), 0);
  EXPECT_EQ(db_.job_count(relay_failed.hash, "lightning_send_pay_outbound"), 0);
  EXPECT_EQ(db_.jobs.size(), 3u);
  EXPECT_EQ(db_.only_row(Flow::Apay, apay_paying.hash).status, "outbound_pending");
  EXPECT_EQ(std::count_if(db_.divergences.begin(), db_.divergences.end(),
                          [](const auto& d) {
                            return d.divergence.kind == plan::DivergenceKind::PayingJobMissing &&
                                   !d.resolved_at;
                          }),
            2);

  // The node's payment goes away: the job is recreated and the divergence resolves.
  node_.payments = {pending};
  const report::RunResult third = sweep();
  EXPECT_EQ(db_.job_count(relay_failed.hash, "lightning_send_pay_outbound"), 1);
  EXPECT_EQ(kinds_of(third), std::vector{plan::DivergenceKind::PayingJobMissing});
  EXPECT_EQ(third.resolved.size(), 1u);
}

// More records lacking their job than a page holds, across the keyset pages.
TEST_F(SweepLoop, MissingOutboxJobsArePagedThroughInFull) {
  for (int i = 0; i < 7; ++i) db_.add(Flow::Apay, util::sha256_hex(std::to_string(i)), "claimable");
  options_.page_size = 3;
  const report::RunResult r = sweep();
  EXPECT_EQ(r.repairs.size(), 7u);
  EXPECT_EQ(db_.jobs.size(), 7u);
  EXPECT_TRUE(sweep().repairs.empty());
}

TEST_F(SweepLoop, MissingJobIsAddedOnlyWhileTheRecordIsStillInItsState) {
  const Secret s = secret('e');
  const std::int64_t id = db_.add(Flow::Apay, s.hash, "claimable");
  // The LSP moves the record on between the sweep's read and its apply.
  db_.before_apply = [&](FakeDatabase& db) { db.row(Flow::Apay, id).status = "failed"; };
  const report::RunResult r = sweep();
  ASSERT_EQ(r.repairs.size(), 1u);
  EXPECT_FALSE(r.repairs[0].applied);
  EXPECT_TRUE(db_.jobs.empty());
  ASSERT_EQ(db_.audit.size(), 1u);
  EXPECT_FALSE(db_.audit[0].applied);
}

TEST_F(SweepLoop, DryRunPlansTheSameRepairsAndChangesNothing) {
  const Secret sent = secret('f'), held = secret('g'), forged = secret('h'), stuck = secret('i');
  db_.add(Flow::Apay, sent.hash, "outbound_paid", 2'000'000);
  db_.add(Flow::Relay, held.hash, "quoted", 3'000'000);
  db_.add(Flow::Apay, forged.hash, "outbound_paid", 2'000'000);
  db_.add(Flow::Relay, stuck.hash, "outbound_claimed");
  node_.payments = {outbound_succeeded(sent.hash, sent.preimage),
                    hodl_claimable(held.hash, 3'000'000),
                    outbound_succeeded(forged.hash, secret('j').preimage)};
  const FakeDatabase before = db_;

  options_.dry_run = true;
  const report::RunResult dry = sweep();
  ASSERT_TRUE(dry.complete) << dry.error.value_or("");
  EXPECT_EQ(report::exit_code(dry), 1) << "a dry run that finds repairs exits 1";
  EXPECT_EQ(dry.repairs.size(), 3u);
  for (const auto& r : dry.repairs) EXPECT_FALSE(r.applied);
  EXPECT_EQ(kinds_of(dry), std::vector{plan::DivergenceKind::PreimageMismatch});
  EXPECT_FALSE(dry.divergences_recorded);
  EXPECT_TRUE(db_ == before) << "a dry run writes nothing: no row, job, audit, run or divergence";

  // The real run applies exactly what the dry run planned.
  options_.dry_run = false;
  const report::RunResult real = sweep();
  std::multiset<std::string> planned;
  for (const auto& key : repairs_of(dry)) planned.insert(key + " applied");
  EXPECT_EQ(repairs_of(real), planned);
  EXPECT_EQ(divergences_of(real), divergences_of(dry));
}

// APay lets a released hash have a terminal row and a live one: only the live row moves.
TEST_F(SweepLoop, OnlyTheLiveRowOfATerminalTwinMoves) {
  const Secret s = secret('k');
  const std::int64_t old_row = db_.add(Flow::Apay, s.hash, "failed", 2'000'000);
  const std::int64_t live_row = db_.add(Flow::Apay, s.hash, "outbound_paid", 2'000'000);
  node_.payments = {outbound_succeeded(s.hash, s.preimage)};

  const report::RunResult r = sweep();
  ASSERT_EQ(r.repairs.size(), 1u);
  EXPECT_EQ(r.repairs[0].row_id, live_row);
  EXPECT_TRUE(r.repairs[0].applied);
  EXPECT_TRUE(r.divergences.empty());
  EXPECT_EQ(db_.row(Flow::Apay, live_row).status, "outbound_claimed");
  EXPECT_EQ(db_.row(Flow::Apay, old_row).status, "failed");
  EXPECT_EQ(db_.row(Flow::Apay, old_row).preimage, std::nullopt);
  EXPECT_EQ(db_.job_count(s.hash, "claim_inbound_invoice"), 1);
}

// Two live rows of one hash: which one the callback meant cannot be told. One divergence for
// the hash, even when the node reports both of its legs (on two listings), and nothing applied.
TEST_F(SweepLoop, TwoLiveRowsOfAHashAreOneDivergenceAndNothingIsApplied) {
  const Secret s = secret('l');
  db_.add(Flow::Apay, s.hash, "active", 3'000'000);
  db_.add(Flow::Apay, s.hash, "outbound_paid", 3'000'000);
  node_.payments = {hodl_claimable(s.hash, 3'000'000), outbound_succeeded(s.hash, s.preimage)};
  const FakeDatabase before = db_;

  for (auto mode : {run::LookupMode::List, run::LookupMode::Targeted}) {
    options_.lookup = mode;
    const report::RunResult r = sweep();
    EXPECT_TRUE(r.repairs.empty());
    EXPECT_EQ(kinds_of(r), std::vector{plan::DivergenceKind::DuplicateLiveRecords})
        << ::testing::PrintToString(divergences_of(r));
    EXPECT_EQ(db_.apay, before.apay);
    EXPECT_TRUE(db_.jobs.empty());
    EXPECT_TRUE(db_.audit.empty());
  }
}

// A job of the transition's action the LSP will not run again: moving the record would leave
// it waiting forever, so the sweep reports it and touches nothing.
TEST_F(SweepLoop, DeadOutboxJobIsReportedAndTheRecordLeftAlone) {
  for (const char* job_status : {"done", "failed"}) {
    SCOPED_TRACE(job_status);
    FakeDatabase db;
    const Secret sent = secret('m'), held = secret('n');
    db.add(Flow::Apay, sent.hash, "outbound_paid", 2'000'000);
    db.add_job(sent.hash, "claim_inbound_invoice", job_status);
    db.add(Flow::Relay, held.hash, "quoted", 3'000'000);
    db.add_job(held.hash, "lightning_send_pay_outbound", job_status);
    node_.payments = {outbound_succeeded(sent.hash, sent.preimage),
                      hodl_claimable(held.hash, 3'000'000)};
    const FakeDatabase before = db;

    const report::RunResult r = sweep(db);
    ASSERT_TRUE(r.complete) << r.error.value_or("");
    EXPECT_TRUE(r.repairs.empty());
    EXPECT_EQ(divergences_of(r), (std::multiset<std::string>{
                                     "outbox_job_will_not_run apay " + sent.hash + " person",
                                     "outbox_job_will_not_run relay " + held.hash + " person"}));
    EXPECT_EQ(db.apay, before.apay);
    EXPECT_EQ(db.relay, before.relay);
    EXPECT_EQ(db.jobs, before.jobs);
    EXPECT_EQ(report::exit_code(r), 1);
  }
}

// The job dies between the sweep's read and its apply: the applier itself refuses the move.
TEST_F(SweepLoop, JobFoundDeadAtApplyBlocksTheRepair) {
  const Secret s = secret('o');
  const std::int64_t id = db_.add(Flow::Apay, s.hash, "outbound_paid", 2'000'000);
  node_.payments = {outbound_succeeded(s.hash, s.preimage)};
  db_.before_apply = [&](FakeDatabase& db) { db.add_job(s.hash, "claim_inbound_invoice", "done"); };
  const report::RunResult r = sweep();
  ASSERT_EQ(r.repairs.size(), 1u);
  EXPECT_FALSE(r.repairs[0].applied);
  EXPECT_EQ(db_.row(Flow::Apay, id).status, "outbound_paid");
  EXPECT_EQ(db_.jobs, (std::vector<testing::FakeJob>{{s.hash, "claim_inbound_invoice", "done"}}));
}

// The LSP's own live callback lands after the sweep read the records but before it applies:
// the conditional update changes nothing, its write stands, and no second job appears.
TEST_F(SweepLoop, CallbackLandingBetweenPlanAndApplyLeavesExactlyOneJob) {
  const Secret s = secret('p');
  const std::int64_t id = db_.add(Flow::Apay, s.hash, "outbound_paid", 2'000'000);
  node_.payments = {outbound_succeeded(s.hash, s.preimage)};
  db_.after_records_for = [&](FakeDatabase& db) {
    auto& row = db.row(Flow::Apay, id);
    if (row.status != "outbound_paid") return;
    row.status = "outbound_claimed";
    row.preimage = "from-callback";
    db.add_job(s.hash, "claim_inbound_invoice", "pending");
  };

  const report::RunResult r = sweep();
  ASSERT_TRUE(r.complete) << r.error.value_or("");
  ASSERT_EQ(r.repairs.size(), 1u);
  EXPECT_FALSE(r.repairs[0].applied);
  EXPECT_EQ(report::exit_code(r), 0);
  EXPECT_EQ(db_.job_count(s.hash, "claim_inbound_invoice"), 1);
  EXPECT_EQ(db_.row(Flow::Apay, id).preimage, "from-callback");
  ASSERT_EQ(db_.audit.size(), 1u);
  EXPECT_FALSE(db_.audit[0].applied);
}

// The LSP's PostgreSQL form has no lightning_send_mappings: APay is still reconciled, the
// relay table is never asked about (the fake throws if it is), and the report says so once.
TEST_F(SweepLoop, WithoutARelayTableApayIsReconciledAndTheNoteSaysSoOnce) {
  const Secret sent = secret('q'), relay_only = secret('r'), stuck = secret('s');
  db_.has_relay_table = false;
  db_.add(Flow::Apay, sent.hash, "outbound_paid", 2'000'000);
  db_.add(Flow::Apay, stuck.hash, "outbound_claimed", 2'000'000);
  node_.payments = {outbound_succeeded(sent.hash, sent.preimage),
                    outbound_succeeded(relay_only.hash, relay_only.preimage)};

  for (auto mode : {run::LookupMode::List, run::LookupMode::Targeted}) {
    options_.lookup = mode;
    const report::RunResult r = sweep();
    ASSERT_TRUE(r.complete) << r.error.value_or("");
    const auto relay_notes = std::count_if(r.notes.begin(), r.notes.end(), [](const auto& n) {
      return n.find("relay flow was not reconciled") != std::string::npos;
    });
    EXPECT_EQ(relay_notes, 1) << ::testing::PrintToString(r.notes);
  }
  EXPECT_EQ(db_.only_row(Flow::Apay, sent.hash).status, "outbound_claimed");
  EXPECT_EQ(db_.job_count(sent.hash, "claim_inbound_invoice"), 1);
  EXPECT_EQ(db_.job_count(stuck.hash, "claim_inbound_invoice"), 1);
  EXPECT_EQ(db_.jobs.size(), 2u);
}

// One payment of every kind the planner judges, with a record or not: the targeted lookups
// must find the repairs and divergences the listings find, and leave the same records.
TEST_F(SweepLoop, TargetedLookupsAndListingsGiveTheSameRepairs) {
  const Secret claim = secret('A'), relay_claim = secret('B'), sent = secret('C'),
               relay_sent = secret('D'), forged = secret('E'), wrong_amount = secret('F'),
               failed_leg = secret('G'), early = secret('H'), twin = secret('I'),
               recent = secret('J'), orphan = secret('K'), stuck = secret('L'),
               no_deadline = secret('M'), quiet = secret('N');
  FakeDatabase& listed = db_;
  listed.add(Flow::Apay, claim.hash, "active", 3'000'000);
  listed.add(Flow::Relay, relay_claim.hash, "quoted", 3'000'000);
  listed.add(Flow::Apay, sent.hash, "outbound_paid", 2'000'000);
  listed.add(Flow::Relay, relay_sent.hash, "outbound_paid", 2'000'000);
  listed.add(Flow::Apay, forged.hash, "outbound_paid", 2'000'000);
  listed.add(Flow::Apay, wrong_amount.hash, "active", 4'000'000);
  listed.add(Flow::Relay, failed_leg.hash, "outbound_pending", 2'000'000);
  listed.add(Flow::Apay, early.hash, "outbound_pending", 2'000'000);
  listed.add_job(early.hash, "send_outbound_payment", "processing");
  listed.add(Flow::Apay, twin.hash, "failed", 2'000'000);
  listed.add(Flow::Apay, twin.hash, "outbound_paid", 2'000'000);
  listed.add(Flow::Apay, recent.hash, "outbound_paid", 2'000'000);
  listed.add(Flow::Relay, stuck.hash, "outbound_claimed", 2'000'000);
  listed.add(Flow::Apay, no_deadline.hash, "active", 3'000'000);
  listed.add(Flow::Apay, quiet.hash, "inbound_claimed", 3'000'000);
  NodePayment failed = payment(failed_leg.hash, PaymentType::Outbound, NodeStatus::Failed);
  NodePayment changed = outbound_succeeded(recent.hash, recent.preimage);
  changed.updated_at = unix_now() - 1;
  node_.payments = {hodl_claimable(claim.hash, 3'000'000),
                    hodl_claimable(relay_claim.hash, 3'000'000),
                    outbound_succeeded(sent.hash, sent.preimage),
                    outbound_succeeded(relay_sent.hash, relay_sent.preimage),
                    outbound_succeeded(forged.hash, secret('Z').preimage),
                    hodl_claimable(wrong_amount.hash, 9'999),
                    failed,
                    outbound_succeeded(early.hash, early.preimage),
                    outbound_succeeded(twin.hash, twin.preimage),
                    changed,
                    outbound_succeeded(orphan.hash, orphan.preimage),
                    hodl_claimable(no_deadline.hash, 3'000'000, std::nullopt),
                    outbound_succeeded(quiet.hash, quiet.preimage)};
  FakeDatabase targeted = listed;

  options_.lookup = run::LookupMode::List;
  const report::RunResult by_listing = sweep(listed);
  EXPECT_EQ(node_.lookups, 0);
  options_.lookup = run::LookupMode::Targeted;
  const report::RunResult by_lookup = sweep(targeted);
  ASSERT_TRUE(by_listing.complete) << by_listing.error.value_or("");
  ASSERT_TRUE(by_lookup.complete) << by_lookup.error.value_or("");
  EXPECT_EQ(report::lookup_mode(by_listing.lookup), "list");
  EXPECT_EQ(report::lookup_mode(by_lookup.lookup), "targeted");
  EXPECT_GT(node_.lookups, 0);

  EXPECT_EQ(repairs_of(by_lookup), repairs_of(by_listing));
  EXPECT_EQ(divergences_of(by_lookup), divergences_of(by_listing));
  EXPECT_EQ(by_lookup.deferred, by_listing.deferred);
  EXPECT_EQ(by_listing.deferred, 1);
  EXPECT_EQ(by_listing.orphans, 1);
  EXPECT_EQ(by_lookup.orphans, 0) << "every lookup is for a record";
  EXPECT_EQ(targeted.apay, listed.apay);
  EXPECT_EQ(targeted.relay, listed.relay);
  // The same jobs, inserted in another order (the modes meet the records in another order).
  auto jobs_listed = listed.jobs, jobs_targeted = targeted.jobs;
  std::sort(jobs_listed.begin(), jobs_listed.end());
  std::sort(jobs_targeted.begin(), jobs_targeted.end());
  EXPECT_EQ(jobs_targeted, jobs_listed);
  // What the mix must hold, so the comparison above compares something.
  EXPECT_EQ(by_listing.repairs.size(), 6u) << ::testing::PrintToString(repairs_of(by_listing));
  EXPECT_EQ(
      divergences_of(by_listing),
      (std::multiset<std::string>{"preimage_mismatch apay " + forged.hash + " person",
                                  "amount_mismatch apay " + wrong_amount.hash + " person",
                                  "node_leg_failed relay " + failed_leg.hash + " person",
                                  "outbound_succeeded_early apay " + early.hash,
                                  "claim_deadline_unknown apay " + no_deadline.hash + " person"}));
}

TEST_F(SweepLoop, DivergencesAreNewThenOngoingThenResolved) {
  const Secret forged = secret('t');
  db_.add(Flow::Apay, forged.hash, "outbound_paid", 2'000'000);
  node_.payments = {outbound_succeeded(forged.hash, secret('u').preimage)};

  const report::RunResult first = sweep();
  ASSERT_EQ(first.tracked.size(), 1u);
  EXPECT_TRUE(first.tracked[0].is_new);
  EXPECT_EQ(first.tracked[0].divergence.kind, plan::DivergenceKind::PreimageMismatch);
  EXPECT_TRUE(first.resolved.empty());
  ASSERT_EQ(db_.divergences.size(), 1u);
  EXPECT_FALSE(db_.divergences[0].resolved_at.has_value());
  EXPECT_EQ(db_.runs.back().status, "divergences");

  const report::RunResult second = sweep();
  ASSERT_EQ(second.tracked.size(), 1u);
  EXPECT_FALSE(second.tracked[0].is_new);
  EXPECT_EQ(second.tracked[0].id, first.tracked[0].id);
  EXPECT_EQ(db_.divergences.size(), 1u);
  EXPECT_GT(db_.divergences[0].last_seen_at, db_.divergences[0].first_seen_at);

  // A dry run neither records nor resolves anything.
  node_.payments.clear();
  options_.dry_run = true;
  const FakeDatabase before_dry = db_;
  EXPECT_TRUE(sweep().resolved.empty());
  EXPECT_TRUE(db_ == before_dry);

  // The node no longer reports the payment: a complete run resolves it, once.
  options_.dry_run = false;
  const report::RunResult third = sweep();
  EXPECT_EQ(report::exit_code(third), 0);
  ASSERT_EQ(third.resolved.size(), 1u);
  EXPECT_EQ(third.resolved[0].divergence.payment_hash, forged.hash);
  EXPECT_TRUE(db_.divergences[0].resolved_at.has_value());
  EXPECT_TRUE(sweep().resolved.empty());
}

// A payment deferred by --min-age was seen but not judged: its divergence stays open while
// another one, no longer seen, resolves.
TEST_F(SweepLoop, DeferredPaymentKeepsItsDivergenceOpen) {
  const Secret forged = secret('v'), recent = secret('w');
  db_.add(Flow::Apay, forged.hash, "outbound_paid", 2'000'000);
  db_.add(Flow::Relay, recent.hash, "outbound_pending", 2'000'000);
  NodePayment changed = outbound_succeeded(recent.hash, secret('x').preimage);
  node_.payments = {outbound_succeeded(forged.hash, secret('y').preimage), changed};
  EXPECT_EQ(sweep().tracked.size(), 2u);

  changed.updated_at = unix_now() - 1;
  node_.payments = {changed};
  // The listing run resolves the forged payment's divergence; the targeted run after it has
  // nothing left to resolve, and keeps the deferred one open just the same.
  for (auto mode : {run::LookupMode::List, run::LookupMode::Targeted}) {
    options_.lookup = mode;
    const report::RunResult r = sweep();
    EXPECT_EQ(r.deferred, 1);
    ASSERT_EQ(r.resolved.size(), mode == run::LookupMode::List ? 1u : 0u);
    int open_for_recent = 0;
    for (const auto& d : db_.divergences) {
      open_for_recent += !d.resolved_at && d.divergence.payment_hash == recent.hash;
    }
    EXPECT_EQ(open_for_recent, 1);
  }
  EXPECT_EQ(std::count_if(db_.divergences.begin(), db_.divergences.end(),
                          [](const auto& d) { return !d.resolved_at; }),
            1);
}

// The node goes away between two listings: the run is incomplete, says why, records nothing
// of its divergences, and the repair it committed before stays committed.
TEST_F(SweepLoop, NodeErrorMidSweepKeepsCommittedRepairs) {
  const Secret held = secret('z'), sent = secret('0');
  db_.add(Flow::Apay, held.hash, "active", 3'000'000);
  db_.add(Flow::Apay, sent.hash, "outbound_paid", 2'000'000);
  db_.add(Flow::Apay, secret('1').hash, "outbound_paid", 2'000'000);
  node_.payments = {hodl_claimable(held.hash, 3'000'000),
                    outbound_succeeded(sent.hash, sent.preimage),
                    outbound_succeeded(secret('1').hash, secret('2').preimage)};
  options_.lookup = run::LookupMode::List;
  // 1: the height, 2: the Claimable listing, 3: the Succeeded listing.
  node_.fail_at_request = 3;

  const report::RunResult failed = sweep();
  EXPECT_FALSE(failed.complete);
  ASSERT_TRUE(failed.error.has_value());
  EXPECT_NE(failed.error->find("connection reset"), std::string::npos) << *failed.error;
  EXPECT_EQ(report::exit_code(failed), report::kExitIncomplete);
  ASSERT_EQ(failed.repairs.size(), 1u);
  EXPECT_TRUE(failed.repairs[0].applied);
  EXPECT_EQ(db_.only_row(Flow::Apay, held.hash).status, "claimable");
  EXPECT_EQ(db_.job_count(held.hash, "request_outbound_invoice"), 1);
  EXPECT_EQ(db_.only_row(Flow::Apay, sent.hash).status, "outbound_paid");
  EXPECT_FALSE(failed.divergences_recorded);
  EXPECT_TRUE(db_.divergences.empty());
  ASSERT_EQ(db_.runs.size(), 1u);
  EXPECT_EQ(db_.runs[0].status, "failed");
  EXPECT_EQ(db_.runs[0].exit_code, report::kExitIncomplete);

  // The next run does the rest, and nothing twice.
  node_.fail_at_request.reset();
  const report::RunResult next = sweep();
  ASSERT_TRUE(next.complete) << next.error.value_or("");
  ASSERT_EQ(next.repairs.size(), 1u);
  EXPECT_EQ(next.repairs[0].payment_hash, sent.hash);
  EXPECT_EQ(db_.jobs.size(), 2u);
  EXPECT_EQ(kinds_of(next), std::vector{plan::DivergenceKind::PreimageMismatch});
}

// Issue 12.3: a live record whose hash is in upper case is a RecordHashMalformed divergence in
// either lookup mode, its node payment no orphan, and nothing is applied to it.
TEST_F(SweepLoop, RecordHashNotLowercaseIsADivergenceNotAnOrphan) {
  const Secret held = secret('U');
  std::string upper = held.hash;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  db_.add(Flow::Apay, upper, "active", 3'000'000);
  db_.add(Flow::Apay, "zz", "claimable", 3'000'000);  // lacks its job: not added
  node_.payments = {hodl_claimable(held.hash, 3'000'000)};
  for (const auto mode : {run::LookupMode::List, run::LookupMode::Targeted}) {
    options_.lookup = mode;
    const report::RunResult r = sweep();
    ASSERT_TRUE(r.complete) << r.error.value_or("");
    EXPECT_EQ(r.orphans, 0);
    EXPECT_TRUE(r.repairs.empty());
    EXPECT_EQ(kinds_of(r), (std::vector{plan::DivergenceKind::RecordHashMalformed,
                                        plan::DivergenceKind::RecordHashMalformed}));
    EXPECT_EQ(r.divergences[0].payment_hash, upper);
    EXPECT_EQ(r.divergences[1].payment_hash, "zz");
  }
  EXPECT_EQ(db_.only_row(Flow::Apay, upper).status, "active");
  EXPECT_TRUE(db_.jobs.empty());
  EXPECT_TRUE(plan::is_lookup_hash(held.hash));
  EXPECT_FALSE(plan::is_lookup_hash(upper));
}

// Issue 12.7: a 'running' row whose process is gone (the sweep lock free) is abandoned; the
// row of a run that holds the lock is not, and history leaves the lock as it found it.
TEST(History, RunningRowsAreAbandonedUnlessTheirRunHoldsTheLock) {
  FakeDatabase db;
  db.runs.push_back({"killed-1", false, 100, std::nullopt, "running", std::nullopt, ""});
  db.runs.push_back({"done", false, 200, 210, "failed", 2, ""});
  db.runs.push_back({"killed-2", false, 300, std::nullopt, "running", std::nullopt, ""});
  {
    store::Backend history = testing::make_backend(db);
    const auto runs = run::recent_runs_marking_abandoned(*history.ledger, 10);
    ASSERT_EQ(runs.size(), 3u);
    EXPECT_EQ(runs[0].run_id, "killed-2");
    EXPECT_TRUE(runs[0].abandoned);
    EXPECT_FALSE(runs[1].abandoned);
    EXPECT_TRUE(runs[2].abandoned);
    EXPECT_EQ(runs[2].started_at, 100);
    EXPECT_FALSE(db.sweep_locked) << "history released the lock at once";
  }
  // A run holds the lock: the newest 'running' row is its own, the older one abandoned.
  store::Backend active = testing::make_backend(db);
  ASSERT_TRUE(active.ledger->try_lock_sweep());
  store::Backend history = testing::make_backend(db);
  const auto runs = run::recent_runs_marking_abandoned(*history.ledger, 10);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_FALSE(runs[0].abandoned);
  EXPECT_FALSE(runs[1].abandoned);
  EXPECT_TRUE(runs[2].abandoned);
  EXPECT_TRUE(db.sweep_locked) << "the active run keeps its lock";
  const std::string table = report::history_table(runs, {});
  EXPECT_NE(table.find("abandoned"), std::string::npos) << table;
  EXPECT_NE(table.find("running"), std::string::npos) << table;
  EXPECT_EQ(report::history_json(runs, {})["runs"][2]["status"], "abandoned");
  EXPECT_EQ(report::history_json(runs, {})["runs"][0]["status"], "running");
}

// Issue 10.3: stuck outbox jobs are divergences of their own kinds, new, then ongoing, then
// resolved once the job is done; the sweeper never edits a job. A dry run writes nothing.
TEST_F(SweepLoop, StuckJobsAreReportedThenResolvedAndNeverTouched) {
  const auto job = [&](const std::string& seed, const std::string& action,
                       const std::string& status, std::int64_t attempts, std::int64_t age,
                       std::optional<std::int64_t> locked_ago = std::nullopt) {
    const std::string hash = util::sha256_hex(seed);
    db_.add_job(hash, action, status);
    db_.jobs.back().attempts = attempts;
    db_.jobs.back().age_seconds = age;
    db_.jobs.back().locked_until_ago = locked_ago;
    db_.jobs.back().last_error = attempts > 0 ? std::optional<std::string>("boom") : std::nullopt;
    return hash;
  };
  const std::string retrying = job("retrying", "request_outbound_invoice", "pending", 5, 3600);
  job("young", "request_outbound_invoice", "pending", 5, 600);  // not long enough
  job("few", "request_outbound_invoice", "pending", 2, 3600);   // too few attempts
  const std::string expired =
      job("expired", "lightning_send_claim_inbound", "processing", 1, 7200, 3600);
  job("locked", "lightning_send_claim_inbound", "processing", 1, 7200, 60);  // lock still recent
  for (int i = 0; i < 6; ++i)
    job("failing" + std::to_string(i), "claim_inbound_invoice", "pending", 1, 60);
  // Nine failing jobs before it (retrying, young, few and six more): not yet blocked.
  job("early", "claim_inbound_invoice", "pending", 0, 60);
  job("failing-last", "claim_inbound_invoice", "pending", 1, 60);
  const std::string blocked = job("blocked", "send_outbound_payment", "pending", 0, 60);
  const FakeDatabase before = db_;

  const std::multiset<std::string> expected{"outbox_job_retrying apay " + retrying + " person",
                                            "outbox_job_lock_expired relay " + expired + " person",
                                            "outbox_job_blocked apay " + blocked + " person"};
  options_.dry_run = true;
  const report::RunResult dry = sweep();
  EXPECT_EQ(divergences_of(dry), expected);
  EXPECT_TRUE(db_ == before) << "a dry run writes nothing";

  options_.dry_run = false;
  const report::RunResult first = sweep();
  ASSERT_TRUE(first.complete) << first.error.value_or("");
  EXPECT_EQ(divergences_of(first), expected);
  EXPECT_EQ(report::exit_code(first), 1);
  EXPECT_TRUE(first.repairs.empty());
  EXPECT_EQ(db_.jobs, before.jobs) << "the sweeper never edits, retries or deletes a job";
  for (const auto& d : first.divergences) {
    if (d.payment_hash == retrying) {
      EXPECT_NE(d.detail.find("is pending after 5 attempt(s), 3600 s old, last error: 'boom'"),
                std::string::npos)
          << d.detail;
    }
    if (d.payment_hash == blocked) {
      EXPECT_NE(d.detail.find("10 pending job(s)"), std::string::npos) << d.detail;
    }
  }
  EXPECT_EQ(std::count_if(first.tracked.begin(), first.tracked.end(),
                          [](const auto& d) { return d.is_new; }),
            3);

  // A longer --stuck-after: the retrying and the expired job are not stuck yet.
  options_.stuck_after = 4 * 3600;
  const report::RunResult longer = sweep();
  EXPECT_EQ(divergences_of(longer),
            (std::multiset<std::string>{"outbox_job_blocked apay " + blocked + " person"}));
  EXPECT_EQ(longer.resolved.size(), 2u);

  // The job is done: its divergence resolves.
  options_.stuck_after = 30 * 60;
  db_.jobs.back().status = "done";
  const report::RunResult done = sweep();
  EXPECT_EQ(divergences_of(done),
            (std::multiset<std::string>{"outbox_job_retrying apay " + retrying + " person",
                                        "outbox_job_lock_expired relay " + expired + " person"}));
  ASSERT_EQ(done.resolved.size(), 1u);
  EXPECT_EQ(done.resolved[0].divergence.kind, plan::DivergenceKind::OutboxJobBlocked);
}

// --apply lsp-callbacks: every repair the planner makes goes to the LSP's endpoint instead.
class SweepViaLsp : public SweepLoop {
 protected:
  SweepViaLsp() {
    options_.apply = ApplyMode::LspCallbacks;
    options_.replay.first_backoff = std::chrono::milliseconds(0);
  }
  report::RunResult sweep() {
    store::Backend backend = testing::make_backend(db_);
    report::RunResult result = run::run_sweep(node_, backend, options_, &lsp_);
    run::record_outcome(*backend.ledger, result);
    return result;
  }
  static lsp::Answer answer(long status, std::string message = "", bool ignored = false) {
    lsp::Answer a;
    a.status = status;
    a.message = std::move(message);
    a.ignored = ignored;
    a.lsp_error = !a.message.empty();  // the LSP's {"error": ...}
    return a;
  }
  testing::FakeLsp lsp_{db_};
};

TEST_F(SweepViaLsp, EveryMissedCallbackIsDeliveredOnceWithTheNodesBodyAndConfirmed) {
  const Secret claim = secret('1'), relay_claim = secret('2'), sent = secret('3');
  db_.add(Flow::Apay, claim.hash, "active", 3'000'000);
  db_.add(Flow::Relay, relay_claim.hash, "quoted", 5'000'000);
  db_.add(Flow::Apay, sent.hash, "outbound_paid", 2'000'000);
  node_.payments = {hodl_claimable(claim.hash, 3'000'000),
                    hodl_claimable(relay_claim.hash, 5'000'000, kHeight + 50),
                    outbound_succeeded(sent.hash, sent.preimage)};

  const report::RunResult first = sweep();
  ASSERT_TRUE(first.complete) << first.error.value_or("");
  EXPECT_EQ(report::exit_code(first), report::kExitClean);
  EXPECT_TRUE(first.divergences.empty()) << ::testing::PrintToString(divergences_of(first));
  ASSERT_EQ(lsp_.calls.size(), 3u);
  std::set<std::string> bodies;
  for (const auto& c : lsp_.calls) {
    bodies.insert(c.endpoint + " " + c.payment_hash + " " + std::to_string(c.amount_msat) + " " +
                  std::to_string(c.claim_deadline_height) + " " + c.preimage);
  }
  EXPECT_EQ(bodies,
            (std::set<std::string>{
                "claimable " + claim.hash + " 3000000 " + std::to_string(kHeight + 144) + " ",
                "claimable " + relay_claim.hash + " 5000000 " + std::to_string(kHeight + 50) + " ",
                "payment_sent " + sent.hash + " 0 0 " + sent.preimage}));
  for (const auto& r : first.repairs) {
    EXPECT_TRUE(r.applied) << r.payment_hash;
    ASSERT_TRUE(r.delivery.has_value());
    EXPECT_EQ(r.delivery->outcome, plan::DeliveryOutcome::Applied);
    EXPECT_EQ(r.delivery->http_status, 200);
    EXPECT_EQ(r.delivery->attempts, 1);
  }
  // The LSP moved the records and enqueued the jobs; the sweeper wrote only its audit rows.
  EXPECT_EQ(db_.only_row(Flow::Apay, claim.hash).status, "claimable");
  EXPECT_EQ(db_.only_row(Flow::Apay, sent.hash).status, "outbound_claimed");
  EXPECT_EQ(db_.job_count(claim.hash, "request_outbound_invoice"), 1);
  ASSERT_EQ(db_.audit.size(), 3u);
  for (const auto& a : db_.audit) {
    EXPECT_TRUE(a.applied);
    ASSERT_TRUE(a.delivery.has_value()) << a.payment_hash;
    EXPECT_EQ(a.delivery->outcome, plan::DeliveryOutcome::Applied);
  }

  lsp_.calls.clear();
  const report::RunResult second = sweep();
  EXPECT_TRUE(second.repairs.empty());
  EXPECT_TRUE(lsp_.calls.empty());
}

TEST_F(SweepViaLsp, DryRunSendsNothingAndWritesNothing) {
  const Secret claim = secret('1');
  db_.add(Flow::Apay, claim.hash, "active", 3'000'000);
  db_.add(Flow::Apay, secret('2').hash, "claimable", 3'000'000);  // its job is missing
  node_.payments = {hodl_claimable(claim.hash, 3'000'000)};
  options_.dry_run = true;
  const FakeDatabase before = db_;

  const report::RunResult result = sweep();
  ASSERT_TRUE(result.complete) << result.error.value_or("");
  EXPECT_TRUE(lsp_.calls.empty());
  EXPECT_TRUE(db_ == before);
  ASSERT_EQ(result.repairs.size(), 1u);
  EXPECT_FALSE(result.repairs[0].delivery.has_value());
  EXPECT_EQ(kinds_of(result), std::vector{plan::DivergenceKind::OutboxJobMissing});
}

TEST_F(SweepViaLsp, AMissingOutboxJobIsReportedNeverWritten) {
  const Secret waiting = secret('1');
  db_.add(Flow::Apay, waiting.hash, "outbound_claimed", 3'000'000);

  const report::RunResult result = sweep();
  ASSERT_TRUE(result.complete) << result.error.value_or("");
  EXPECT_TRUE(result.repairs.empty());
  EXPECT_EQ(divergences_of(result),
            (std::multiset<std::string>{"outbox_job_missing apay " + waiting.hash + " person"}));
  EXPECT_EQ(db_.job_count(waiting.hash, "claim_inbound_invoice"), 0);
  EXPECT_TRUE(lsp_.calls.empty());
}

TEST_F(SweepViaLsp, EachAnswerOfTheLspIsReportedForWhatItIs) {
  const Secret refused = secret('1'), later = secret('2'), ignored = secret('3'),
               unmoved = secret('4');
  db_.add(Flow::Apay, refused.hash, "active", 3'000'000);
  db_.add(Flow::Apay, later.hash, "outbound_paid", 3'000'000);
  db_.add(Flow::Apay, ignored.hash, "outbound_paid", 3'000'000);
  db_.add(Flow::Apay, unmoved.hash, "outbound_paid", 3'000'000);
  // The listings' order: Claimable first, then the Succeeded outbound legs, newest first.
  node_.payments = {hodl_claimable(refused.hash, 3'000'000),
                    outbound_succeeded(later.hash, later.preimage),
                    outbound_succeeded(ignored.hash, ignored.preimage),
                    outbound_succeeded(unmoved.hash, unmoved.preimage)};
  lsp_.answers = {
      {answer(400, "claim_deadline_height 800144 is too close"), false},
      {answer(503, "payment_sent received before outbound payment was confirmed"), false},
      {answer(200, "", true), false},
      {answer(200), false}};

  const report::RunResult result = sweep();
  ASSERT_TRUE(result.complete) << result.error.value_or("");
  ASSERT_EQ(result.repairs.size(), 4u);
  std::map<std::string, plan::DeliveryOutcome> outcomes;
  for (const auto& r : result.repairs) {
    EXPECT_FALSE(r.applied) << r.payment_hash;
    outcomes[r.payment_hash] = r.delivery.value().outcome;
  }
  EXPECT_EQ(outcomes[refused.hash], plan::DeliveryOutcome::Refused);
  EXPECT_EQ(outcomes[later.hash], plan::DeliveryOutcome::Deferred);
  EXPECT_EQ(outcomes[ignored.hash], plan::DeliveryOutcome::Ignored);
  EXPECT_EQ(outcomes[unmoved.hash], plan::DeliveryOutcome::Unconfirmed);
  EXPECT_EQ(
      divergences_of(result),
      (std::multiset<std::string>{"lsp_callback_not_applied apay " + refused.hash + " person",
                                  "lsp_callback_not_applied apay " + ignored.hash + " person",
                                  "lsp_callback_not_applied apay " + unmoved.hash + " person"}));
  for (const auto& d : result.divergences) {
    if (d.payment_hash == refused.hash) {
      EXPECT_NE(d.detail.find("HTTP 400 claim_deadline_height 800144 is too close"),
                std::string::npos)
          << d.detail;
    }
  }
  EXPECT_EQ(result.deferred, 1);
  EXPECT_EQ(report::exit_code(result), report::kExitNeedsAttention);
  EXPECT_EQ(db_.audit.size(), 4u);
}

TEST_F(SweepViaLsp, ServerErrorsAreRetriedThenTheRunEndsKeepingWhatWasDelivered) {
  const Secret first = secret('1'), second = secret('2'), third = secret('3');
  for (const Secret* s : {&first, &second, &third}) {
    db_.add(Flow::Apay, s->hash, "outbound_paid", 1'000'000);
  }
  node_.payments = {outbound_succeeded(first.hash, first.preimage),
                    outbound_succeeded(second.hash, second.preimage),
                    outbound_succeeded(third.hash, third.preimage)};
  options_.replay.max_attempts = 3;
  // The first: two 500s, then applied. The second: 502 on every attempt.
  lsp_.answers = {{answer(500), false}, {answer(500), false}, {answer(200), true},
                  {answer(502), false}, {answer(502), false}, {answer(502), false}};

  const report::RunResult result = sweep();
  EXPECT_FALSE(result.complete);
  EXPECT_TRUE(result.retry_later);
  EXPECT_EQ(report::exit_code(result), report::kExitBusy);
  EXPECT_NE(result.error.value_or("").find("after 3 attempt(s): HTTP 502"), std::string::npos)
      << result.error.value_or("");
  ASSERT_EQ(result.repairs.size(), 2u);  // the third was never sent
  EXPECT_EQ(lsp_.calls.size(), 6u);
  EXPECT_TRUE(result.repairs[0].applied);
  EXPECT_EQ(result.repairs[0].delivery->attempts, 3);
  EXPECT_EQ(result.repairs[1].delivery->outcome, plan::DeliveryOutcome::Failed);
  EXPECT_EQ(db_.audit.size(), 2u);
  EXPECT_EQ(db_.only_row(Flow::Apay, third.hash).status, "outbound_paid");
}

TEST_F(SweepViaLsp, ARefusedTokenEndsTheRunAtTheFirstCallback) {
  const Secret first = secret('1'), second = secret('2');
  db_.add(Flow::Apay, first.hash, "outbound_paid", 1'000'000);
  db_.add(Flow::Apay, second.hash, "outbound_paid", 1'000'000);
  node_.payments = {outbound_succeeded(first.hash, first.preimage),
                    outbound_succeeded(second.hash, second.preimage)};
  lsp_.answers = {{answer(401, "unauthorized"), false}};

  const report::RunResult result = sweep();
  EXPECT_FALSE(result.complete);
  EXPECT_FALSE(result.retry_later);
  EXPECT_EQ(report::exit_code(result), report::kExitIncomplete);
  EXPECT_NE(result.error.value_or("").find("refused the sweeper's token (HTTP 401"),
            std::string::npos);
  EXPECT_EQ(lsp_.calls.size(), 1u);
}

TEST_F(SweepViaLsp, ARecordMovedSinceThePlanIsNotSent) {
  const Secret sent = secret('1');
  db_.add(Flow::Apay, sent.hash, "outbound_paid", 1'000'000);
  node_.payments = {outbound_succeeded(sent.hash, sent.preimage)};
  // The node's live callback lands between the sweep's read of the page and its delivery.
  db_.after_records_for = [&](FakeDatabase& db) {
    db.only_row(Flow::Apay, sent.hash).status = "outbound_claimed";
    db.add_job(sent.hash, "claim_inbound_invoice", "pending");
    db.after_records_for = nullptr;
  };

  const report::RunResult result = sweep();
  ASSERT_TRUE(result.complete) << result.error.value_or("");
  ASSERT_EQ(result.repairs.size(), 1u);
  EXPECT_EQ(result.repairs[0].delivery->outcome, plan::DeliveryOutcome::AlreadyMoved);
  EXPECT_FALSE(result.repairs[0].applied);
  EXPECT_TRUE(lsp_.calls.empty());
  EXPECT_EQ(db_.job_count(sent.hash, "claim_inbound_invoice"), 1);
}

TEST_F(SweepViaLsp, TheBodyCarriesTheNodesDeadlineElseTheOneTheRecordKeeps) {
  const Secret both = secret('1'), record_only = secret('2');
  db_.add(Flow::Apay, both.hash, "active", 3'000'000, kHeight + 300);
  db_.add(Flow::Apay, record_only.hash, "active", 3'000'000, kHeight + 400);
  node_.payments = {hodl_claimable(both.hash, 3'000'000, kHeight + 200),
                    hodl_claimable(record_only.hash, 3'000'000, std::nullopt)};

  const report::RunResult result = sweep();
  ASSERT_TRUE(result.complete) << result.error.value_or("");
  std::map<std::string, std::int64_t> sent;
  for (const auto& c : lsp_.calls) sent[c.payment_hash] = c.claim_deadline_height;
  EXPECT_EQ(sent[both.hash], kHeight + 200);
  EXPECT_EQ(sent[record_only.hash], kHeight + 400);
  EXPECT_EQ(lsp_.calls.size(), 2u);
}

TEST_F(SweepViaLsp, TheLspsOwnServerErrorIsADivergenceAndTheRunGoesOn) {
  const Secret stuck = secret('1'), next = secret('2');
  db_.add(Flow::Apay, stuck.hash, "outbound_paid", 1'000'000);
  db_.add(Flow::Apay, next.hash, "outbound_paid", 1'000'000);
  node_.payments = {outbound_succeeded(stuck.hash, stuck.preimage),
                    outbound_succeeded(next.hash, next.preimage)};
  const lsp::Answer unexpected =
      answer(500, "async invoice in unexpected status before outbound claim");
  lsp_.answers = {{unexpected, false}, {unexpected, false}, {unexpected, false}};

  const report::RunResult result = sweep();
  ASSERT_TRUE(result.complete) << result.error.value_or("");
  ASSERT_EQ(result.repairs.size(), 2u);
  EXPECT_EQ(result.repairs[0].delivery->outcome, plan::DeliveryOutcome::Refused);
  EXPECT_EQ(result.repairs[0].delivery->attempts, 3);
  EXPECT_TRUE(result.repairs[1].applied);
  EXPECT_EQ(divergences_of(result), (std::multiset<std::string>{"lsp_callback_not_applied apay " +
                                                                stuck.hash + " person"}));
}

TEST_F(SweepViaLsp, AFailureThatWouldRepeatEndsTheRunWithExitTwo) {
  const Secret sent = secret('1');
  db_.add(Flow::Apay, sent.hash, "outbound_paid", 1'000'000);
  node_.payments = {outbound_succeeded(sent.hash, sent.preimage)};
  lsp::Answer no_answer;
  no_answer.transport_error = "SSL peer certificate or SSH remote key was not OK";
  no_answer.retryable = false;
  lsp_.answers = {{no_answer, false}};

  const report::RunResult result = sweep();
  EXPECT_FALSE(result.complete);
  EXPECT_FALSE(result.retry_later);
  EXPECT_EQ(report::exit_code(result), report::kExitIncomplete);
  EXPECT_EQ(lsp_.calls.size(), 1u);  // not retried either
}

TEST_F(SweepViaLsp, AnApayRepairWhoseHashHasARelayRecordIsNotSent) {
  // The LSP hands every callback of a hash with a relay record to that record: replaying the
  // APay claimable would move the relay row, whose own amount guard failed.
  const Secret twin = secret('1');
  db_.add(Flow::Apay, twin.hash, "active", 3'000'000);
  db_.add(Flow::Relay, twin.hash, "quoted", 9'999'999);
  node_.payments = {hodl_claimable(twin.hash, 3'000'000)};

  const report::RunResult result = sweep();
  ASSERT_TRUE(result.complete) << result.error.value_or("");
  EXPECT_TRUE(lsp_.calls.empty());
  ASSERT_EQ(result.repairs.size(), 1u);
  EXPECT_EQ(result.repairs[0].delivery->outcome, plan::DeliveryOutcome::Withheld);
  EXPECT_EQ(divergences_of(result),
            (std::multiset<std::string>{"amount_mismatch relay " + twin.hash + " person",
                                        "lsp_callback_not_applied apay " + twin.hash + " person"}));
  EXPECT_EQ(db_.only_row(Flow::Relay, twin.hash).status, "quoted");
  EXPECT_EQ(db_.only_row(Flow::Apay, twin.hash).status, "active");
}

TEST_F(SweepViaLsp, AJobThatTurnedDeadSinceThePlanIsNotSent) {
  const Secret sent = secret('1');
  db_.add(Flow::Apay, sent.hash, "outbound_paid", 1'000'000);
  node_.payments = {outbound_succeeded(sent.hash, sent.preimage)};
  db_.after_records_for = [&](FakeDatabase& db) {
    db.add_job(sent.hash, "claim_inbound_invoice", "done");
    db.after_records_for = nullptr;
  };

  const report::RunResult result = sweep();
  ASSERT_TRUE(result.complete) << result.error.value_or("");
  EXPECT_TRUE(lsp_.calls.empty());
  ASSERT_EQ(result.repairs.size(), 1u);
  EXPECT_EQ(result.repairs[0].delivery->outcome, plan::DeliveryOutcome::Withheld);
  EXPECT_EQ(kinds_of(result), std::vector{plan::DivergenceKind::OutboxJobWillNotRun});
  EXPECT_EQ(db_.only_row(Flow::Apay, sent.hash).status, "outbound_paid");
}

}  // namespace
}  // namespace lsp_sweeper
