// The planner is pure, so every row and guard of DOMAIN.md's transition table is tested here
// directly, for both flows.
#include "lsp_sweeper/plan/plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "lsp_sweeper/util/hex.hpp"
#include "support/secret.hpp"

namespace lsp_sweeper::plan {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;
constexpr std::int64_t kHeight = 800'000;

using lsp_sweeper::testing::Secret;
using lsp_sweeper::testing::secret;

PlanContext context() {
  PlanContext c;
  c.now = kNow;
  c.current_height = kHeight;
  c.min_age = 30;
  c.waiting_grace = 900;
  c.claim_min_blocks = 102;
  return c;
}

NodePayment claimable_payment(const std::string& hash, std::uint64_t amt,
                              std::optional<std::int64_t> deadline) {
  NodePayment p;
  p.payment_hash = hash;
  p.type = PaymentType::InboundHodl;
  p.status = NodeStatus::Claimable;
  p.amt_msat = amt;
  p.claim_deadline_height = deadline;
  p.created_at = kNow - 600;
  p.updated_at = kNow - 300;
  return p;
}

NodePayment sent_payment(const Secret& s) {
  NodePayment p;
  p.payment_hash = s.hash;
  p.type = PaymentType::Outbound;
  p.status = NodeStatus::Succeeded;
  p.amt_msat = 1000;
  p.preimage = s.preimage;
  p.created_at = kNow - 600;
  p.updated_at = kNow - 300;
  return p;
}

LspRecord record(Flow flow, const std::string& hash, const std::string& status,
                 std::optional<std::int64_t> amount = 3'000'000,
                 std::optional<std::int64_t> deadline = std::nullopt) {
  LspRecord r;
  r.flow = flow;
  r.payment_hash = hash;
  r.status = status;
  r.amount_msat = amount;
  r.claim_deadline_height = deadline;
  return r;
}

std::vector<DivergenceKind> kinds(const Plan& plan) {
  std::vector<DivergenceKind> out;
  for (const auto& d : plan.divergences) out.push_back(d.kind);
  return out;
}

// A parameterised test's name from its row: gtest allows letters, digits and '_' only.
std::string test_name(std::initializer_list<std::string_view> parts) {
  std::string name;
  for (std::string_view part : parts) {
    if (!name.empty()) name += '_';
    for (char c : part) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  }
  return name;
}

std::string_view event_name(bool claimable) { return claimable ? "claimable" : "payment_sent"; }

// --- the four callback rows -------------------------------------------------------------

struct CallbackRow {
  RepairKind kind;
  Flow flow;
  std::string from;
  std::string to;
  std::string action;
};

class CallbackRows : public ::testing::TestWithParam<CallbackRow> {};

TEST_P(CallbackRows, MissedCallbackBecomesOneRepair) {
  const CallbackRow& row = GetParam();
  const Secret s = secret('a');
  const NodePayment p = row.kind == RepairKind::MissedClaimable
                            ? claimable_payment(s.hash, 3'000'000, kHeight + 144)
                            : sent_payment(s);
  const Plan plan = plan_payments({p}, {record(row.flow, s.hash, row.from)}, context());

  ASSERT_EQ(plan.repairs.size(), 1u);
  EXPECT_TRUE(plan.divergences.empty());
  const Repair& r = plan.repairs[0];
  EXPECT_EQ(r.kind, row.kind);
  EXPECT_EQ(r.flow, row.flow);
  EXPECT_EQ(r.payment_hash, s.hash);
  EXPECT_EQ(r.observed_status, row.from);
  EXPECT_EQ(r.to, row.to);
  EXPECT_EQ(r.outbox_action, row.action);
  EXPECT_FALSE(r.applied);
  if (row.kind == RepairKind::MissedClaimable) {
    EXPECT_EQ(r.claim_deadline_height, kHeight + 144);
    EXPECT_FALSE(r.preimage);
  } else {
    EXPECT_EQ(r.preimage, s.preimage);
  }
}

INSTANTIATE_TEST_SUITE_P(
    TransitionTable, CallbackRows,
    ::testing::Values(CallbackRow{RepairKind::MissedClaimable, Flow::Apay, "active", "claimable",
                                  "request_outbound_invoice"},
                      CallbackRow{RepairKind::MissedClaimable, Flow::Relay, "quoted", "claimable",
                                  "lightning_send_pay_outbound"},
                      CallbackRow{RepairKind::MissedPaymentSent, Flow::Apay, "outbound_paid",
                                  "outbound_claimed", "claim_inbound_invoice"},
                      CallbackRow{RepairKind::MissedPaymentSent, Flow::Relay, "outbound_pending",
                                  "outbound_claimed", "lightning_send_claim_inbound"},
                      CallbackRow{RepairKind::MissedPaymentSent, Flow::Relay, "outbound_paid",
                                  "outbound_claimed", "lightning_send_claim_inbound"}),
    [](const auto& row_info) {
      const CallbackRow& r = row_info.param;
      return test_name({to_string(r.flow), to_string(r.kind), r.from});
    });

TEST(Plan, RelayPaymentSentMayStartFromEitherOutboundState) {
  const Secret s = secret('b');
  const Plan plan =
      plan_payments({sent_payment(s)}, {record(Flow::Relay, s.hash, "outbound_paid")}, context());
  ASSERT_EQ(plan.repairs.size(), 1u);
  EXPECT_EQ(plan.repairs[0].from, (std::vector<std::string>{"outbound_pending", "outbound_paid"}));
}

// --- records already at or beyond the target: the callback landed, nothing to do ---------

struct AlreadyDone {
  Flow flow;
  bool claimable;  // else payment_sent
  std::string status;
};

class AlreadyDoneRows : public ::testing::TestWithParam<AlreadyDone> {};

TEST_P(AlreadyDoneRows, NothingPlanned) {
  const AlreadyDone& row = GetParam();
  const Secret s = secret('c');
  const NodePayment p =
      row.claimable ? claimable_payment(s.hash, 3'000'000, kHeight + 10) : sent_payment(s);
  const Plan plan = plan_payments({p}, {record(row.flow, s.hash, row.status)}, context());
  EXPECT_TRUE(plan.repairs.empty());
  EXPECT_TRUE(plan.divergences.empty()) << to_string(plan.divergences[0].kind);
}

INSTANTIATE_TEST_SUITE_P(TransitionTable, AlreadyDoneRows,
                         ::testing::Values(AlreadyDone{Flow::Apay, true, "claimable"},
                                           AlreadyDone{Flow::Apay, true, "outbound_requested"},
                                           AlreadyDone{Flow::Apay, true, "inbound_claimed"},
                                           AlreadyDone{Flow::Relay, true, "claimable"},
                                           AlreadyDone{Flow::Relay, true, "settled"},
                                           AlreadyDone{Flow::Apay, false, "outbound_claimed"},
                                           AlreadyDone{Flow::Apay, false, "inbound_claimed"},
                                           AlreadyDone{Flow::Relay, false, "outbound_claimed"},
                                           AlreadyDone{Flow::Relay, false, "settled"}),
                         [](const auto& row_info) {
                           const AlreadyDone& r = row_info.param;
                           return test_name({to_string(r.flow), event_name(r.claimable), r.status});
                         });

// --- states the table cannot explain ---------------------------------------------------

struct Unexplained {
  Flow flow;
  bool claimable;
  std::string status;
};

class UnexplainedRows : public ::testing::TestWithParam<Unexplained> {};

TEST_P(UnexplainedRows, ReportedNeverApplied) {
  const Unexplained& row = GetParam();
  const Secret s = secret('d');
  const NodePayment p =
      row.claimable ? claimable_payment(s.hash, 3'000'000, kHeight + 10) : sent_payment(s);
  const Plan plan = plan_payments({p}, {record(row.flow, s.hash, row.status)}, context());
  EXPECT_TRUE(plan.repairs.empty());
  ASSERT_EQ(kinds(plan), std::vector<DivergenceKind>{DivergenceKind::UnexplainedState});
  EXPECT_TRUE(plan.divergences[0].needs_person);
  EXPECT_EQ(plan.divergences[0].flow, row.flow);
}

INSTANTIATE_TEST_SUITE_P(TransitionTable, UnexplainedRows,
                         ::testing::Values(Unexplained{Flow::Apay, true, "reserved"},
                                           Unexplained{Flow::Apay, true, "inbound_cancelled"},
                                           Unexplained{Flow::Apay, true, "failed"},
                                           Unexplained{Flow::Apay, true, "no_such_state"},
                                           Unexplained{Flow::Relay, true, "cancelled"},
                                           Unexplained{Flow::Relay, true, "ACTIVE"},
                                           Unexplained{Flow::Apay, false, "active"},
                                           Unexplained{Flow::Apay, false, "outbound_cancelled"},
                                           Unexplained{Flow::Relay, false, "quoted"},
                                           Unexplained{Flow::Relay, false, "failed"}),
                         [](const auto& row_info) {
                           const Unexplained& r = row_info.param;
                           return test_name({to_string(r.flow), event_name(r.claimable), r.status});
                         });

// --- guards ------------------------------------------------------------------------------

TEST(Guards, ForgedPreimageIsNeverApplied) {
  const Secret s = secret('e');
  NodePayment p = sent_payment(s);
  p.preimage = secret('f').preimage;  // a valid preimage, of another hash
  for (Flow flow : {Flow::Apay, Flow::Relay}) {
    const std::string from = flow == Flow::Apay ? "outbound_paid" : "outbound_pending";
    const Plan plan = plan_payments({p}, {record(flow, s.hash, from)}, context());
    EXPECT_TRUE(plan.repairs.empty());
    EXPECT_EQ(kinds(plan), std::vector<DivergenceKind>{DivergenceKind::PreimageMismatch});
  }
}

TEST(Guards, MissingPreimageIsReported) {
  const Secret s = secret('g');
  NodePayment p = sent_payment(s);
  p.preimage.reset();
  const Plan plan = plan_payments({p}, {record(Flow::Apay, s.hash, "outbound_paid")}, context());
  EXPECT_TRUE(plan.repairs.empty());
  EXPECT_EQ(kinds(plan), std::vector<DivergenceKind>{DivergenceKind::PreimageMissing});
}

TEST(Guards, AmountMismatchBothFlows) {
  const Secret s = secret('h');
  for (Flow flow : {Flow::Apay, Flow::Relay}) {
    const std::string from = flow == Flow::Apay ? "active" : "quoted";
    const Plan plan = plan_payments({claimable_payment(s.hash, 9'999, kHeight + 144)},
                                    {record(flow, s.hash, from, 4'000'000)}, context());
    EXPECT_TRUE(plan.repairs.empty());
    ASSERT_EQ(kinds(plan), std::vector<DivergenceKind>{DivergenceKind::AmountMismatch});
    EXPECT_NE(plan.divergences[0].detail.find("9999"), std::string::npos);
    EXPECT_NE(plan.divergences[0].detail.find("4000000"), std::string::npos);
  }
}

// Amounts are compared as numbers, never after a conversion that wraps: a record of -1 is not
// the node's 2^64-1, nor INT64_MIN the node's 2^63.
struct AmountRow {
  std::string name;
  std::optional<std::uint64_t> node;
  std::optional<std::int64_t> record;
  std::optional<DivergenceKind> diverges;  // none: repaired
};

class AmountRows : public ::testing::TestWithParam<std::tuple<AmountRow, Flow>> {};

TEST_P(AmountRows, ComparedWithoutWrapping) {
  const auto& [row, flow] = GetParam();
  const Secret s = secret('A');
  NodePayment p = claimable_payment(s.hash, 0, kHeight + 144);
  p.amt_msat = row.node;
  const std::string from = flow == Flow::Apay ? "active" : "quoted";
  const Plan plan = plan_payments({p}, {record(flow, s.hash, from, row.record)}, context());
  if (row.diverges) {
    EXPECT_TRUE(plan.repairs.empty());
    EXPECT_EQ(kinds(plan), std::vector<DivergenceKind>{*row.diverges});
  } else {
    EXPECT_EQ(plan.repairs.size(), 1u);
    EXPECT_TRUE(plan.divergences.empty()) << plan.divergences[0].detail;
  }
}

constexpr auto kInvalid = DivergenceKind::RecordAmountInvalid;
constexpr auto kMismatch = DivergenceKind::AmountMismatch;
constexpr std::int64_t kI64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kI64Min = std::numeric_limits<std::int64_t>::min();
constexpr std::uint64_t kTwoTo63 = std::uint64_t{1} << 63;

INSTANTIATE_TEST_SUITE_P(
    Guards, AmountRows,
    ::testing::Combine(
        ::testing::Values(
            AmountRow{"wraps_to_minus_one", std::numeric_limits<std::uint64_t>::max(), -1,
                      kInvalid},
            AmountRow{"wraps_to_int64_min", kTwoTo63, kI64Min, kInvalid},
            AmountRow{"zero_both", 0, 0, kInvalid}, AmountRow{"zero_record", 1000, 0, kInvalid},
            AmountRow{"negative_record_no_node_amount", std::nullopt, -5, kInvalid},
            AmountRow{"one_above_record_max", kTwoTo63, kI64Max, kMismatch},
            AmountRow{"zero_node", 0, 1000, kMismatch},
            AmountRow{"no_record_amount", 1000, std::nullopt, kMismatch},
            AmountRow{"largest_equal", static_cast<std::uint64_t>(kI64Max), kI64Max, std::nullopt},
            AmountRow{"smallest_equal", 1, 1, std::nullopt}),
        ::testing::Values(Flow::Apay, Flow::Relay)),
    [](const auto& row_info) {
      return test_name({std::get<0>(row_info.param).name, to_string(std::get<1>(row_info.param))});
    });

TEST(Guards, InvalidRecordAmountNamesTheColumn) {
  const Secret s = secret('B');
  NodePayment p =
      claimable_payment(s.hash, std::numeric_limits<std::uint64_t>::max(), kHeight + 144);
  const Plan apay = plan_payments({p}, {record(Flow::Apay, s.hash, "active", -1)}, context());
  ASSERT_EQ(apay.divergences.size(), 1u);
  EXPECT_EQ(apay.divergences[0].detail,
            "record amount_msat is -1, not a positive amount; node amt_msat 18446744073709551615");
  const Plan relay = plan_payments({p}, {record(Flow::Relay, s.hash, "quoted", 0)}, context());
  ASSERT_EQ(relay.divergences.size(), 1u);
  EXPECT_EQ(relay.divergences[0].detail,
            "record inbound_amount_msat is 0, not a positive amount; node amt_msat "
            "18446744073709551615");
}

TEST(Guards, NodeWithoutAmountIsNotTrusted) {
  const Secret s = secret('i');
  NodePayment p = claimable_payment(s.hash, 0, kHeight + 144);
  p.amt_msat.reset();
  const Plan plan = plan_payments({p}, {record(Flow::Apay, s.hash, "active")}, context());
  EXPECT_TRUE(plan.repairs.empty());
  EXPECT_EQ(kinds(plan), std::vector<DivergenceKind>{DivergenceKind::AmountMismatch});
}

TEST(Guards, UnknownDeadlineIsNeverGuessed) {
  const Secret s = secret('j');
  for (Flow flow : {Flow::Apay, Flow::Relay}) {
    const std::string from = flow == Flow::Apay ? "active" : "quoted";
    const Plan plan = plan_payments({claimable_payment(s.hash, 3'000'000, std::nullopt)},
                                    {record(flow, s.hash, from)}, context());
    EXPECT_TRUE(plan.repairs.empty());
    EXPECT_EQ(kinds(plan), std::vector<DivergenceKind>{DivergenceKind::ClaimDeadlineUnknown});
  }
}

TEST(Guards, DeadlineAtOrBelowHeightIsReported) {
  const Secret s = secret('k');
  for (std::int64_t deadline : {kHeight, kHeight - 1}) {
    const Plan plan = plan_payments({claimable_payment(s.hash, 3'000'000, deadline)},
                                    {record(Flow::Relay, s.hash, "quoted")}, context());
    EXPECT_TRUE(plan.repairs.empty());
    EXPECT_EQ(kinds(plan), std::vector<DivergenceKind>{DivergenceKind::ClaimDeadlinePassed});
  }
  const Plan one_above = plan_payments({claimable_payment(s.hash, 3'000'000, kHeight + 1)},
                                       {record(Flow::Relay, s.hash, "quoted")}, context());
  EXPECT_EQ(one_above.repairs.size(), 1u);
}

TEST(Guards, ApayKeepsTheDeadlineItAlreadyRecorded) {
  const Secret s = secret('l');
  const Plan plan =
      plan_payments({claimable_payment(s.hash, 3'000'000, kHeight + 500)},
                    {record(Flow::Apay, s.hash, "active", 3'000'000, kHeight + 200)}, context());
  ASSERT_EQ(plan.repairs.size(), 1u);
  EXPECT_EQ(plan.repairs[0].claim_deadline_height, kHeight + 200);
  // ...and a recorded deadline is known, even when the node reports none.
  const Plan no_node_deadline =
      plan_payments({claimable_payment(s.hash, 3'000'000, std::nullopt)},
                    {record(Flow::Apay, s.hash, "active", 3'000'000, kHeight + 200)}, context());
  ASSERT_EQ(no_node_deadline.repairs.size(), 1u);
}

TEST(Guards, RelayTakesTheNodesDeadline) {
  const Secret s = secret('m');
  const Plan plan =
      plan_payments({claimable_payment(s.hash, 3'000'000, kHeight + 500)},
                    {record(Flow::Relay, s.hash, "quoted", 3'000'000, kHeight + 40)}, context());
  ASSERT_EQ(plan.repairs.size(), 1u);
  EXPECT_EQ(plan.repairs[0].claim_deadline_height, kHeight + 500);
}

TEST(Guards, SeveralFailingGuardsAreAllReported) {
  const Secret s = secret('n');
  const Plan plan = plan_payments({claimable_payment(s.hash, 1, std::nullopt)},
                                  {record(Flow::Apay, s.hash, "active")}, context());
  EXPECT_TRUE(plan.repairs.empty());
  EXPECT_EQ(kinds(plan), (std::vector<DivergenceKind>{DivergenceKind::AmountMismatch,
                                                      DivergenceKind::ClaimDeadlineUnknown}));
}

// --- the APay claim margin (--claim-min-blocks) -------------------------------------------

struct MarginRow {
  std::string name;
  Flow flow;
  std::optional<std::int64_t> node_deadline;    // blocks above kHeight
  std::optional<std::int64_t> record_deadline;  // blocks above kHeight
  std::int64_t min_blocks;
  std::optional<DivergenceKind> diverges;  // none: repaired
};

class MarginRows : public ::testing::TestWithParam<MarginRow> {};

TEST_P(MarginRows, ApayNeedsMoreThanTheMarginRelayOnlyAFutureDeadline) {
  const MarginRow& row = GetParam();
  const Secret s = secret('M');
  const auto above = [](std::optional<std::int64_t> blocks) {
    return blocks ? std::optional<std::int64_t>(kHeight + *blocks) : std::nullopt;
  };
  PlanContext c = context();
  c.claim_min_blocks = row.min_blocks;
  const std::string from = row.flow == Flow::Apay ? "active" : "quoted";
  const Plan plan =
      plan_payments({claimable_payment(s.hash, 3'000'000, above(row.node_deadline))},
                    {record(row.flow, s.hash, from, 3'000'000, above(row.record_deadline))}, c);
  if (row.diverges) {
    EXPECT_TRUE(plan.repairs.empty());
    ASSERT_EQ(kinds(plan), std::vector<DivergenceKind>{*row.diverges});
    EXPECT_TRUE(plan.divergences[0].needs_person);
  } else {
    EXPECT_EQ(plan.repairs.size(), 1u);
    EXPECT_TRUE(plan.divergences.empty()) << plan.divergences[0].detail;
  }
}

constexpr auto kTooNear = DivergenceKind::ClaimDeadlineTooNear;
constexpr auto kPassed = DivergenceKind::ClaimDeadlinePassed;

INSTANTIATE_TEST_SUITE_P(
    Guards, MarginRows,
    ::testing::Values(
        // The LSP's handler: blocksLeft <= requiredBlocks is refused, so 103 of 102 is the least.
        MarginRow{"apay_one_above_margin", Flow::Apay, 103, std::nullopt, 102, std::nullopt},
        MarginRow{"apay_at_margin", Flow::Apay, 102, std::nullopt, 102, kTooNear},
        MarginRow{"apay_one_block_left", Flow::Apay, 1, std::nullopt, 102, kTooNear},
        MarginRow{"apay_at_height", Flow::Apay, 0, std::nullopt, 102, kPassed},
        MarginRow{"apay_margin_from_context", Flow::Apay, 50, std::nullopt, 49, std::nullopt},
        MarginRow{"apay_no_margin", Flow::Apay, 1, std::nullopt, 0, std::nullopt},
        // The live handler checks the node's deadline, the LSP's next job the kept one.
        MarginRow{"apay_node_deadline_near", Flow::Apay, 50, 500, 102, kTooNear},
        MarginRow{"apay_kept_deadline_near", Flow::Apay, 500, 50, 102, kTooNear},
        MarginRow{"apay_node_deadline_passed", Flow::Apay, -1, 500, 102, kPassed},
        MarginRow{"apay_kept_deadline_only", Flow::Apay, std::nullopt, 103, 102, std::nullopt},
        // Relay records any future deadline and checks it before paying.
        MarginRow{"relay_one_block_left", Flow::Relay, 1, std::nullopt, 102, std::nullopt},
        MarginRow{"relay_at_margin", Flow::Relay, 102, std::nullopt, 102, std::nullopt},
        MarginRow{"relay_at_height", Flow::Relay, 0, std::nullopt, 102, kPassed}),
    [](const auto& row_info) { return row_info.param.name; });

TEST(Guards, TooNearSaysHowManyBlocksAndTheMargin) {
  const Secret s = secret('N');
  const Plan plan = plan_payments({claimable_payment(s.hash, 3'000'000, kHeight + 60)},
                                  {record(Flow::Apay, s.hash, "active")}, context());
  ASSERT_EQ(kinds(plan), std::vector<DivergenceKind>{DivergenceKind::ClaimDeadlineTooNear});
  EXPECT_EQ(plan.divergences[0].detail,
            "claim deadline 800060 leaves 60 block(s) above height 800000; the LSP accepts an "
            "APay claimable only with more than 102 (--claim-min-blocks)");
}

struct FailedLeg {
  Flow flow;
  PaymentType type;
  NodeStatus status;
  std::string record_status;
  bool diverges;
};

class FailedLegRows : public ::testing::TestWithParam<FailedLeg> {};

TEST_P(FailedLegRows, FailedOrCancelledLegWhileInFlight) {
  const FailedLeg& row = GetParam();
  const Secret s = secret('o');
  NodePayment p = sent_payment(s);
  p.type = row.type;
  p.status = row.status;
  const Plan plan = plan_payments({p}, {record(row.flow, s.hash, row.record_status)}, context());
  EXPECT_TRUE(plan.repairs.empty());
  if (row.diverges) {
    EXPECT_EQ(kinds(plan), std::vector<DivergenceKind>{DivergenceKind::NodeLegFailed});
  } else {
    EXPECT_TRUE(plan.divergences.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Guards, FailedLegRows,
    ::testing::Values(
        FailedLeg{Flow::Apay, PaymentType::InboundHodl, NodeStatus::Cancelled, "claimable", true},
        FailedLeg{Flow::Apay, PaymentType::InboundHodl, NodeStatus::Failed, "outbound_claimed",
                  true},
        FailedLeg{Flow::Apay, PaymentType::Outbound, NodeStatus::Failed, "outbound_paid", true},
        FailedLeg{Flow::Apay, PaymentType::Outbound, NodeStatus::Failed, "outbound_pending", true},
        FailedLeg{Flow::Relay, PaymentType::InboundHodl, NodeStatus::Failed, "outbound_paid", true},
        FailedLeg{Flow::Relay, PaymentType::Outbound, NodeStatus::Cancelled, "outbound_pending",
                  true},
        FailedLeg{Flow::Relay, PaymentType::InboundUnknown, NodeStatus::Failed, "claimable", true},
        // Not in flight: the LSP already gave up, or never got that far.
        FailedLeg{Flow::Apay, PaymentType::InboundHodl, NodeStatus::Cancelled, "inbound_cancelled",
                  false},
        FailedLeg{Flow::Apay, PaymentType::InboundHodl, NodeStatus::Failed, "inbound_claimed",
                  false},
        FailedLeg{Flow::Apay, PaymentType::Outbound, NodeStatus::Failed, "claimable", false},
        FailedLeg{Flow::Relay, PaymentType::Outbound, NodeStatus::Failed, "failed", false},
        FailedLeg{Flow::Relay, PaymentType::InboundHodl, NodeStatus::Cancelled, "quoted", false}),
    [](const auto& row_info) {
      const FailedLeg& r = row_info.param;
      return test_name(
          {to_string(r.flow), to_string(r.type), to_string(r.status), r.record_status});
    });

// Issue 10.5: the LSP marks an APay record outbound_paid even when the node reported the
// outbound payment Failed ("continuing; delivery may not have happened"): a real divergence.
TEST(Guards, ApayOutboundPaidWithAFailedOutboundLegNeedsAPerson) {
  const Secret s = secret('5');
  NodePayment p = sent_payment(s);
  p.status = NodeStatus::Failed;
  p.preimage.reset();
  const Plan plan = plan_payments({p}, {record(Flow::Apay, s.hash, "outbound_paid")}, context());
  EXPECT_TRUE(plan.repairs.empty());
  ASSERT_EQ(kinds(plan), std::vector<DivergenceKind>{DivergenceKind::NodeLegFailed});
  EXPECT_EQ(plan.divergences[0].flow, Flow::Apay);
  EXPECT_EQ(plan.divergences[0].payment_hash, s.hash);
  EXPECT_TRUE(plan.divergences[0].needs_person);
  EXPECT_EQ(plan.divergences[0].detail,
            "node reports the Outbound leg Failed while the record is outbound_paid");
  // The outbound leg is looked up for such a record, so targeted runs see it too.
  EXPECT_TRUE(legs_to_look_up(Flow::Apay, "outbound_paid").outbound);
}

TEST(Guards, OutboundAheadOfTheLspWaitsThenNeedsAPerson) {
  const Secret s = secret('p');
  for (Flow flow : {Flow::Apay, Flow::Relay}) {
    NodePayment p = sent_payment(s);
    p.updated_at = kNow - 60;  // inside the grace period
    Plan plan = plan_payments({p}, {record(flow, s.hash, "claimable")}, context());
    EXPECT_TRUE(plan.repairs.empty());
    ASSERT_EQ(kinds(plan), std::vector<DivergenceKind>{DivergenceKind::OutboundSucceededEarly});
    EXPECT_FALSE(plan.divergences[0].needs_person);

    p.updated_at = kNow - 901;  // past it
    plan = plan_payments({p}, {record(flow, s.hash, "claimable")}, context());
    ASSERT_EQ(kinds(plan), std::vector<DivergenceKind>{DivergenceKind::OutboundSucceededEarly});
    EXPECT_TRUE(plan.divergences[0].needs_person);
  }
  const Plan apay_pending =
      plan_payments({sent_payment(s)}, {record(Flow::Apay, s.hash, "outbound_pending")}, context());
  EXPECT_EQ(kinds(apay_pending),
            std::vector<DivergenceKind>{DivergenceKind::OutboundSucceededEarly});
}

// --- timing, orphans, duplicated hashes --------------------------------------------------

TEST(Plan, RecentPaymentsAreLeftToTheNextSweep) {
  const Secret s = secret('q');
  NodePayment p = claimable_payment(s.hash, 3'000'000, kHeight + 144);
  p.updated_at = kNow - 29;
  Plan plan = plan_payments({p}, {record(Flow::Apay, s.hash, "active")}, context());
  EXPECT_TRUE(plan.repairs.empty());
  EXPECT_EQ(plan.deferred, 1);
  p.updated_at = kNow - 30;
  plan = plan_payments({p}, {record(Flow::Apay, s.hash, "active")}, context());
  EXPECT_EQ(plan.repairs.size(), 1u);
  EXPECT_EQ(plan.deferred, 0);
}

TEST(Plan, PaymentsWithoutRecordsAreCountedAsOrphans) {
  const Plan plan =
      plan_payments({sent_payment(secret('r')), sent_payment(secret('s'))},
                    {record(Flow::Apay, secret('t').hash, "outbound_paid")}, context());
  EXPECT_EQ(plan.orphans, 2);
  EXPECT_TRUE(plan.repairs.empty());
  EXPECT_TRUE(plan.divergences.empty());
}

TEST(Plan, BothLegsOfOneHashAreJudgedSeparately) {
  // An APay order: the payer's held HTLC and the LSP's outbound leg share the hash.
  const Secret s = secret('u');
  const NodePayment inbound = claimable_payment(s.hash, 3'000'000, kHeight + 10);
  const Plan plan = plan_payments({inbound, sent_payment(s)},
                                  {record(Flow::Apay, s.hash, "outbound_paid")}, context());
  ASSERT_EQ(plan.repairs.size(), 1u);
  EXPECT_EQ(plan.repairs[0].kind, RepairKind::MissedPaymentSent);
  EXPECT_TRUE(plan.divergences.empty());
}

TEST(Plan, IrrelevantStatusesPlanNothing) {
  const Secret s = secret('v');
  NodePayment p = claimable_payment(s.hash, 3'000'000, kHeight + 10);
  for (NodeStatus status : {NodeStatus::Pending, NodeStatus::Claiming, NodeStatus::Succeeded}) {
    p.status = status;
    const Plan plan = plan_payments({p}, {record(Flow::Apay, s.hash, "active")}, context());
    EXPECT_TRUE(plan.repairs.empty());
    EXPECT_TRUE(plan.divergences.empty());
  }
  // An auto-claimed or legacy inbound payment is never a HODL claimable.
  for (PaymentType type : {PaymentType::InboundAutoClaim, PaymentType::InboundUnknown}) {
    p.status = NodeStatus::Claimable;
    p.type = type;
    const Plan plan = plan_payments({p}, {record(Flow::Apay, s.hash, "active")}, context());
    EXPECT_TRUE(plan.repairs.empty());
  }
}

// --- the node contradicting itself --------------------------------------------------------

struct AnswerRow {
  std::string name;
  NodeAnswer earlier;
  NodeAnswer later;
  std::optional<std::string> why;  // none: the answers agree
};

class AnswerRows : public ::testing::TestWithParam<AnswerRow> {};

TEST_P(AnswerRows, ContradictionOrAStatusThatMovedOn) {
  const AnswerRow& row = GetParam();
  EXPECT_EQ(contradiction(row.earlier, row.later), row.why);
}

constexpr auto kHodl = PaymentType::InboundHodl;
using S = NodeStatus;

INSTANTIATE_TEST_SUITE_P(
    Contradiction, AnswerRows,
    ::testing::Values(
        AnswerRow{"same", {kHodl, S::Claimable, 1000}, {kHodl, S::Claimable, 1000}, std::nullopt},
        AnswerRow{"other_amount",
                  {kHodl, S::Claimable, 1000},
                  {kHodl, S::Claimable, 2000},
                  "the node answered amt_msat 1000, then 2000 for the same payment"},
        AnswerRow{"amount_then_none", {kHodl, S::Claimable, 1000}, {kHodl, S::Failed, {}}, {}},
        AnswerRow{"none_then_amount", {kHodl, S::Pending, {}}, {kHodl, S::Claimable, 1000}, {}},
        AnswerRow{"other_type",
                  {kHodl, S::Claimable, 1000},
                  {PaymentType::InboundAutoClaim, S::Claimable, 1000},
                  "the node answered payment_type InboundHodl, then InboundAutoClaim for the same "
                  "payment"},
        AnswerRow{"claimable_then_succeeded",
                  {kHodl, S::Claimable, 1000},
                  {kHodl, S::Succeeded, 1000},
                  {}},
        AnswerRow{"claimable_then_cancelled",
                  {kHodl, S::Claimable, 1000},
                  {kHodl, S::Cancelled, 1000},
                  {}},
        AnswerRow{"pending_then_claiming", {kHodl, S::Pending, 1}, {kHodl, S::Claiming, 1}, {}},
        AnswerRow{"claiming_then_claimable",
                  {kHodl, S::Claiming, 1},
                  {kHodl, S::Claimable, 1},
                  "the node answered status Claiming, then Claimable for the same payment"},
        AnswerRow{"claimable_then_pending",
                  {kHodl, S::Claimable, 1},
                  {kHodl, S::Pending, 1},
                  "the node answered status Claimable, then Pending for the same payment"},
        AnswerRow{"succeeded_then_failed",
                  {PaymentType::Outbound, S::Succeeded, 1},
                  {PaymentType::Outbound, S::Failed, 1},
                  "the node answered status Succeeded, then Failed for the same payment"},
        AnswerRow{"failed_then_cancelled",
                  {kHodl, S::Failed, 1},
                  {kHodl, S::Cancelled, 1},
                  "the node answered status Failed, then Cancelled for the same payment"},
        AnswerRow{"cancelled_twice", {kHodl, S::Cancelled, 1}, {kHodl, S::Cancelled, 1}, {}}),
    [](const auto& row_info) { return row_info.param.name; });

TEST(Contradiction, NothingIsPlannedForTheHashEitherLeg) {
  const Secret s = secret('C');
  NodePayment other_amount = claimable_payment(s.hash, 3'000'001, kHeight + 144);
  // The record's outbound leg would be a missed payment_sent on its own.
  const Plan plan = plan_payments(
      {claimable_payment(s.hash, 3'000'000, kHeight + 144), sent_payment(s), other_amount},
      {record(Flow::Apay, s.hash, "outbound_paid"), record(Flow::Relay, s.hash, "outbound_paid")},
      context());
  EXPECT_TRUE(plan.repairs.empty());
  ASSERT_EQ(kinds(plan), (std::vector<DivergenceKind>{DivergenceKind::NodeContradictsItself,
                                                      DivergenceKind::NodeContradictsItself}));
  EXPECT_EQ(plan.divergences[0].flow, Flow::Apay);
  EXPECT_EQ(plan.divergences[1].flow, Flow::Relay);
  EXPECT_EQ(plan.divergences[0].detail,
            "the node answered amt_msat 3000000, then 3000001 for the same payment");
  EXPECT_TRUE(plan.divergences[0].needs_person);
}

TEST(Contradiction, ARepeatThatAgreesIsPlannedOnce) {
  const Secret s = secret('D');
  NodePayment moved_on = claimable_payment(s.hash, 3'000'000, kHeight + 144);
  moved_on.status = NodeStatus::Cancelled;
  const NodePayment held = claimable_payment(s.hash, 3'000'000, kHeight + 144);
  const Plan plan =
      plan_payments({held, held, moved_on}, {record(Flow::Apay, s.hash, "active")}, context());
  ASSERT_EQ(plan.repairs.size(), 1u);  // on the first answer
  EXPECT_EQ(plan.repairs[0].kind, RepairKind::MissedClaimable);
  EXPECT_TRUE(plan.divergences.empty());
}

TEST(Contradiction, OtherTrafficIsAnOrphanOnce) {
  const Secret s = secret('E');
  const Plan plan = plan_payments(
      {claimable_payment(s.hash, 1, kHeight + 144), claimable_payment(s.hash, 2, kHeight + 144)},
      {}, context());
  EXPECT_EQ(plan.orphans, 1);
  EXPECT_TRUE(plan.divergences.empty());
}

TEST(Contradiction, DivergencesForAHashGoToItsRecordsOnly) {
  const Secret s = secret('F'), other = secret('G');
  const auto ds = divergences_for_contradiction(
      s.hash, "why", {record(Flow::Relay, s.hash, "quoted"), record(Flow::Apay, other.hash, "x")});
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].kind, DivergenceKind::NodeContradictsItself);
  EXPECT_EQ(ds[0].flow, Flow::Relay);
  EXPECT_EQ(ds[0].payment_hash, s.hash);
  EXPECT_EQ(ds[0].detail, "why");
  EXPECT_TRUE(divergences_for_contradiction(s.hash, "why", {}).empty());
}

// --- missing outbox jobs -----------------------------------------------------------------

// DOMAIN.md's table of five states that wait on a job, row by row.
struct AwaitedRow {
  Flow flow;
  std::string status;
  std::string action;
  bool pays;
};

class AwaitedRows : public ::testing::TestWithParam<AwaitedRow> {};

TEST_P(AwaitedRows, AMissingJobIsRecreatedOrReported) {
  const AwaitedRow& row = GetParam();
  LspRecord r = record(row.flow, secret('w').hash, row.status);
  r.row_id = 7;
  const auto repaired = [&](const Plan& plan) {
    ASSERT_EQ(plan.repairs.size(), 1u) << row.status;
    EXPECT_TRUE(plan.divergences.empty());
    EXPECT_EQ(plan.repairs[0].kind, RepairKind::MissingOutboxJob);
    EXPECT_EQ(plan.repairs[0].flow, row.flow);
    EXPECT_EQ(plan.repairs[0].row_id, 7);
    EXPECT_EQ(plan.repairs[0].outbox_action, row.action);
    EXPECT_EQ(plan.repairs[0].from, std::vector<std::string>{row.status});
    EXPECT_EQ(plan.repairs[0].to, row.status);
  };
  const auto reported = [&](const Plan& plan, const std::string& node_says) {
    EXPECT_TRUE(plan.repairs.empty());
    ASSERT_EQ(kinds(plan), std::vector<DivergenceKind>{DivergenceKind::PayingJobMissing});
    EXPECT_EQ(plan.divergences[0].flow, row.flow);
    EXPECT_EQ(plan.divergences[0].payment_hash, r.payment_hash);
    EXPECT_TRUE(plan.divergences[0].needs_person);
    EXPECT_NE(plan.divergences[0].detail.find(node_says), std::string::npos)
        << plan.divergences[0].detail;
    EXPECT_NE(plan.divergences[0].detail.find("no " + row.action + " job"), std::string::npos);
  };

  EXPECT_EQ(hashes_needing_outbound_leg({r}),
            row.pays ? std::vector<std::string>{r.payment_hash} : std::vector<std::string>{});
  if (row.pays) {
    // Recreated only when the node has no outbound payment of the hash.
    repaired(plan_missing_outbox_jobs({r}, {{r.payment_hash, std::nullopt}}));
    reported(plan_missing_outbox_jobs({r}, {{r.payment_hash, "Failed"}}), "is Failed");
    reported(plan_missing_outbox_jobs({r}, {{r.payment_hash, "Pending"}}), "is Pending");
    reported(plan_missing_outbox_jobs({r}), "not asked");
  } else {
    repaired(plan_missing_outbox_jobs({r}));
    // What the node says of the outbound leg does not matter to a job that only asks or claims.
    repaired(plan_missing_outbox_jobs({r}, {{r.payment_hash, "Succeeded"}}));
  }

  // A job of the action in any status counts: only a missing one is repaired or reported.
  for (const char* status : {"pending", "processing", "done", "failed"}) {
    r.outbox_jobs = {{"some_other_action", "pending"}, {row.action, status}};
    const Plan plan = plan_missing_outbox_jobs({r});
    EXPECT_TRUE(plan.repairs.empty()) << status;
    EXPECT_TRUE(plan.divergences.empty()) << status;
    EXPECT_TRUE(hashes_needing_outbound_leg({r}).empty());
  }
}

INSTANTIATE_TEST_SUITE_P(
    MissingOutbox, AwaitedRows,
    ::testing::Values(AwaitedRow{Flow::Apay, "claimable", "request_outbound_invoice", false},
                      AwaitedRow{Flow::Apay, "outbound_pending", "send_outbound_payment", true},
                      AwaitedRow{Flow::Apay, "outbound_claimed", "claim_inbound_invoice", false},
                      AwaitedRow{Flow::Relay, "claimable", "lightning_send_pay_outbound", true},
                      AwaitedRow{Flow::Relay, "outbound_claimed", "lightning_send_claim_inbound",
                                 false}),
    [](const auto& row_info) {
      return test_name({to_string(row_info.param.flow), row_info.param.status});
    });

TEST(MissingOutbox, TheTableOfFiveIsTheOnlySource) {
  std::vector<std::tuple<Flow, std::string, std::string, bool>> rows;
  for (const AwaitedJob& j : awaited_jobs()) {
    rows.emplace_back(j.flow, std::string(j.state), std::string(j.action), j.pays);
  }
  EXPECT_EQ(rows, (std::vector<std::tuple<Flow, std::string, std::string, bool>>{
                      {Flow::Apay, "claimable", "request_outbound_invoice", false},
                      {Flow::Apay, "outbound_pending", "send_outbound_payment", true},
                      {Flow::Apay, "outbound_claimed", "claim_inbound_invoice", false},
                      {Flow::Relay, "claimable", "lightning_send_pay_outbound", true},
                      {Flow::Relay, "outbound_claimed", "lightning_send_claim_inbound", false}}));
  // Every callback's target state waits on that callback's job.
  for (const Transition& t : transition_table()) {
    if (t.kind == RepairKind::MissingOutboxJob) continue;
    EXPECT_TRUE(std::any_of(awaited_jobs().begin(), awaited_jobs().end(), [&](const auto& j) {
      return j.flow == t.flow && j.state == t.to && j.action == t.outbox_action;
    })) << t.outbox_action;
  }
  EXPECT_EQ(flow_of_action("send_outbound_payment"), Flow::Apay);
  EXPECT_EQ(flow_of_action("lightning_send_claim_inbound"), Flow::Relay);
  EXPECT_EQ(flow_of_action("no_such_action"), std::nullopt);
}

TEST(MissingOutbox, OtherStatesNeedNoJob) {
  EXPECT_TRUE(plan_missing_outbox_jobs({record(Flow::Apay, secret('x').hash, "active"),
                                        record(Flow::Apay, secret('x').hash, "outbound_paid"),
                                        record(Flow::Relay, secret('x').hash, "outbound_pending"),
                                        record(Flow::Relay, secret('x').hash, "settled")})
                  .repairs.empty());
}

TEST(MissingOutbox, StatesForTheStoreComeFromTheTable) {
  EXPECT_EQ(jobs_required_by_state(Flow::Apay),
            (std::vector<RequiredJob>{{"claimable", "request_outbound_invoice"},
                                      {"outbound_pending", "send_outbound_payment"},
                                      {"outbound_claimed", "claim_inbound_invoice"}}));
  EXPECT_EQ(jobs_required_by_state(Flow::Relay),
            (std::vector<RequiredJob>{{"claimable", "lightning_send_pay_outbound"},
                                      {"outbound_claimed", "lightning_send_claim_inbound"}}));
}

TEST(Rejected, EachRejectedPaymentIsADivergence) {
  const auto ds = divergences_for_rejected({{"zz", "payment_hash is not 64 hex digits"}});
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].kind, DivergenceKind::MalformedPayment);
  EXPECT_FALSE(ds[0].flow);
  EXPECT_EQ(ds[0].payment_hash, "zz");
  EXPECT_TRUE(ds[0].needs_person);
}

TEST(DivergenceKinds, EveryKindIsListedOnceAndRoundTrips) {
  for (std::size_t i = 0; i < kDivergenceKinds.size(); ++i) {
    const DivergenceKind kind = kDivergenceKinds[i];
    // Listed in the enum's order, none left out before the last.
    EXPECT_EQ(static_cast<std::size_t>(kind), i);
    EXPECT_NE(to_string(kind), "?");
    EXPECT_EQ(parse_divergence_kind(to_string(kind)), kind) << to_string(kind);
  }
  EXPECT_EQ(parse_divergence_kind("claim_deadline_too_near"), DivergenceKind::ClaimDeadlineTooNear);
  EXPECT_EQ(parse_divergence_kind("no_such_kind"), std::nullopt);
}

// The targeted lookups skip every leg legs_to_look_up leaves out, and every record in
// states_needing_no_lookup: so for no node payment at all may the planner act on such a leg.
// Every state of both flows (and an unknown one) against every type and status the node has.
TEST(LegsToLookUp, NoPaymentOnALegLeftOutIsEverActedOn) {
  const Secret s = secret('L');
  // Every state the planner knows, and one it does not.
  const auto states = [](Flow flow) {
    auto all = known_states(flow);
    all.push_back("bogus");
    return all;
  };
  int acted_on = 0;
  for (const Flow flow : {Flow::Apay, Flow::Relay}) {
    const auto quiet = states_needing_no_lookup(flow);
    for (const auto& status : states(flow)) {
      const Legs legs = legs_to_look_up(flow, status);
      const bool in_quiet = std::find(quiet.begin(), quiet.end(), status) != quiet.end();
      EXPECT_EQ(in_quiet, !legs.inbound && !legs.outbound) << status;
      for (const PaymentType type :
           {PaymentType::Outbound, PaymentType::InboundHodl, PaymentType::InboundAutoClaim}) {
        for (int st = 0; st <= static_cast<int>(NodeStatus::Failed); ++st) {
          NodePayment p = claimable_payment(s.hash, 1000, kHeight + 10);
          p.type = type;
          p.status = static_cast<NodeStatus>(st);
          p.preimage = s.preimage;
          const LspRecord record{flow, 1, s.hash, status, 1000, std::nullopt, {}};
          const Plan plan = plan_payments({p}, {record}, context());
          const bool acts = !plan.repairs.empty() || !plan.divergences.empty();
          acted_on += acts;
          const bool looked_up = type == PaymentType::Outbound ? legs.outbound : legs.inbound;
          EXPECT_TRUE(looked_up || !acts) << to_string(flow) << " " << status << " "
                                          << to_string(type) << " " << to_string(p.status);
          // The narrowing of one listing by its status leans on the same predicate per status.
          const Legs of_status = legs_to_look_up(flow, status, p.status);
          const auto quiet_for = states_needing_no_lookup(flow, p.status);
          const bool needed = type == PaymentType::Outbound ? of_status.outbound : of_status.inbound;
          EXPECT_TRUE(needed || !acts) << to_string(flow) << " " << status << " "
                                       << to_string(type) << " " << to_string(p.status);
          EXPECT_EQ(std::find(quiet_for.begin(), quiet_for.end(), status) != quiet_for.end(),
                    status != "bogus" && !of_status.inbound && !of_status.outbound);
        }
      }
    }
  }
  EXPECT_GT(acted_on, 0);  // the check above is not vacuous
}

TEST(LegsToLookUp, OnlyTheFinalStatesNeedNoLookup) {
  EXPECT_EQ(states_needing_no_lookup(Flow::Apay), std::vector<std::string>{"inbound_claimed"});
  EXPECT_EQ(states_needing_no_lookup(Flow::Relay), std::vector<std::string>{"settled"});
  // Past its payment_sent callback only the inbound leg can still fail under the record.
  const Legs claimed = legs_to_look_up(Flow::Apay, "outbound_claimed");
  EXPECT_TRUE(claimed.inbound);
  EXPECT_FALSE(claimed.outbound);
  const Legs unknown = legs_to_look_up(Flow::Relay, "bogus");
  EXPECT_TRUE(unknown.inbound && unknown.outbound);
}

// --- stuck outbox jobs (issue 10.3) -------------------------------------------------------

TEST(StuckJobs, EachReasonIsItsOwnKindWithTheJobInTheDetail) {
  const std::string a = secret('1').hash, b = secret('2').hash, c = secret('3').hash;
  const std::vector<StuckJob> jobs{
      {JobStuckReason::Retrying, 12, a, "request_outbound_invoice", "pending", 7, 3600,
       "claim_deadline_height is missing", 0},
      {JobStuckReason::LockExpired, 13, b, "lightning_send_claim_inbound", "processing", 1, 7200,
       std::nullopt, 0},
      {JobStuckReason::HeadOfLine, 14, c, "some_future_action", "pending", 0, 60, std::nullopt, 11},
  };
  const auto ds = divergences_for_stuck_jobs(jobs);
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds[0].kind, DivergenceKind::OutboxJobRetrying);
  EXPECT_EQ(ds[1].kind, DivergenceKind::OutboxJobLockExpired);
  EXPECT_EQ(ds[2].kind, DivergenceKind::OutboxJobBlocked);
  EXPECT_EQ(ds[0].flow, Flow::Apay);
  EXPECT_EQ(ds[1].flow, Flow::Relay);
  EXPECT_EQ(ds[2].flow, std::nullopt) << "an action no awaited job has";
  EXPECT_EQ(ds[0].payment_hash, a);
  EXPECT_EQ(ds[2].payment_hash, c);
  for (const auto& d : ds) EXPECT_TRUE(d.needs_person);
  EXPECT_EQ(ds[0].detail.rfind("outbox job 12 request_outbound_invoice is pending after 7 "
                               "attempt(s), 3600 s old, last error: 'claim_deadline_height is "
                               "missing'",
                               0),
            0u)
      << ds[0].detail;
  EXPECT_NE(ds[1].detail.find("outbox job 13 lightning_send_claim_inbound is processing after 1 "
                              "attempt(s), 7200 s old, last error: none"),
            std::string::npos)
      << ds[1].detail;
  EXPECT_NE(ds[1].detail.find("died holding it"), std::string::npos);
  EXPECT_NE(ds[2].detail.find("11 pending job(s) with attempts > 0 and lower ids"),
            std::string::npos)
      << ds[2].detail;
  EXPECT_TRUE(divergences_for_stuck_jobs({}).empty());
}

}  // namespace
}  // namespace lsp_sweeper::plan
