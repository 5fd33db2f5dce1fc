#include "lsp_sweeper/plan/plan.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "lsp_sweeper/util/hex.hpp"

namespace lsp_sweeper::plan {

namespace {

// Each flow's states in the order an order moves through them, and the terminal states
// that end it early. An "at or beyond" test is a comparison of positions, as in utexo-lsp.
struct StateLadder {
  std::vector<std::string_view> ordered;
  std::vector<std::string_view> terminal;
};

const StateLadder& ladder(Flow flow) {
  static const StateLadder apay{
      {"reserved", "active", "claimable", "outbound_requested", "outbound_pending", "outbound_paid",
       "outbound_claimed", "inbound_claimed"},
      {"inbound_cancelled", "outbound_cancelled", "failed"}};
  static const StateLadder relay{
      {"quoted", "claimable", "outbound_pending", "outbound_paid", "outbound_claimed", "settled"},
      {"cancelled", "failed"}};
  return flow == Flow::Apay ? apay : relay;
}

bool contains(const std::vector<std::string_view>& states, std::string_view status) {
  return std::find(states.begin(), states.end(), status) != states.end();
}

bool is_terminal(const LspRecord& record) {
  return contains(ladder(record.flow).terminal, record.status);
}

// The job of `action` the record's hash already has, if any.
const OutboxJob* job_of(const LspRecord& record, std::string_view action) {
  for (const OutboxJob& job : record.outbox_jobs) {
    if (job.action == action) return &job;
  }
  return nullptr;
}

// A job the LSP's outbox will not pick up again: it claims only pending jobs (and processing
// ones whose lock ran out).
bool will_not_run(const OutboxJob& job) { return job.status == "done" || job.status == "failed"; }

// Position of `status` in the flow's ordered states; nothing for terminal or unknown ones.
std::optional<std::size_t> rank(Flow flow, std::string_view status) {
  const auto& ordered = ladder(flow).ordered;
  const auto it = std::find(ordered.begin(), ordered.end(), status);
  if (it == ordered.end()) return std::nullopt;
  return static_cast<std::size_t>(it - ordered.begin());
}

bool at_or_beyond(Flow flow, std::string_view status, std::string_view threshold) {
  const auto a = rank(flow, status);
  const auto b = rank(flow, threshold);
  return a && b && *a >= *b;
}

// The states in which the LSP still counts on a leg the node may report as Failed or
// Cancelled: the inbound HTLC is held from `claimable` until the LSP claims it; the outbound
// payment is in flight while the LSP has sent it but not seen it settle.
const std::vector<std::string_view>& in_flight_states(Flow flow, Direction leg) {
  static const std::vector<std::string_view> apay_inbound{
      "claimable", "outbound_requested", "outbound_pending", "outbound_paid", "outbound_claimed"};
  static const std::vector<std::string_view> relay_inbound{"claimable", "outbound_pending",
                                                           "outbound_paid", "outbound_claimed"};
  static const std::vector<std::string_view> outbound{"outbound_pending", "outbound_paid"};
  if (leg == Direction::Outbound) return outbound;
  return flow == Flow::Apay ? apay_inbound : relay_inbound;
}

std::vector<Transition> build_table() {
  std::vector<Transition> table{
      {RepairKind::MissedClaimable,
       Flow::Apay,
       {"active"},
       "claimable",
       "request_outbound_invoice"},
      {RepairKind::MissedClaimable,
       Flow::Relay,
       {"quoted"},
       "claimable",
       "lightning_send_pay_outbound"},
      {RepairKind::MissedPaymentSent,
       Flow::Apay,
       {"outbound_paid"},
       "outbound_claimed",
       "claim_inbound_invoice"},
      {RepairKind::MissedPaymentSent,
       Flow::Relay,
       {"outbound_pending", "outbound_paid"},
       "outbound_claimed",
       "lightning_send_claim_inbound"},
  };
  // A record in a state that waits on a job must have that job: one row per awaited job.
  for (const AwaitedJob& job : awaited_jobs()) {
    table.push_back({RepairKind::MissingOutboxJob, job.flow, {job.state}, job.state, job.action});
  }
  return table;
}

const Transition& transition_for(RepairKind kind, Flow flow) {
  for (const auto& t : transition_table()) {
    if (t.kind == kind && t.flow == flow) return t;
  }
  // The table above has a row for every (callback kind, flow); reaching here is a bug.
  throw std::logic_error("no transition for this kind and flow");
}

// The missing-outbox-job row of this flow and action.
const Transition& transition_for_job(Flow flow, std::string_view action) {
  for (const auto& t : transition_table()) {
    if (t.kind == RepairKind::MissingOutboxJob && t.flow == flow && t.outbox_action == action) {
      return t;
    }
  }
  throw std::logic_error("no missing-outbox-job row for this flow and action");
}

// Whether the missed callback `kind` says anything about a record in its status: a repair, a
// guard or an unexplained state. Only a record already at or beyond the callback's target has
// nothing left to hear from it. The planner and the targeted lookups both ask this.
bool callback_may_act(RepairKind kind, Flow flow, std::string_view status) {
  return !at_or_beyond(flow, status, transition_for(kind, flow).to);
}

bool callback_may_act(RepairKind kind, const LspRecord& record) {
  return callback_may_act(kind, record.flow, record.status);
}

// How far a node status is along the node's own order; the final ones share the last step.
constexpr int kFinal = 3;
int progress(NodeStatus s) {
  switch (s) {
    case NodeStatus::Pending: return 0;
    case NodeStatus::Claimable: return 1;
    case NodeStatus::Claiming: return 2;
    case NodeStatus::Succeeded:
    case NodeStatus::Cancelled:
    case NodeStatus::Failed: return kFinal;
  }
  return kFinal;
}

// The hashes of `payments` with two answers for one (hash, direction) that contradict each
// other, and the first such contradiction of each. Each answer is compared with the one
// before it for its key.
std::unordered_map<std::string_view, std::string> contradictions_within(
    const std::vector<NodePayment>& payments) {
  std::map<std::pair<std::string_view, Direction>, NodeAnswer> last;
  std::unordered_map<std::string_view, std::string> out;
  for (const auto& p : payments) {
    const NodeAnswer answer = answer_of(p);
    const auto [it, first] = last.try_emplace({p.payment_hash, p.direction()}, answer);
    if (first) continue;
    if (auto why = contradiction(it->second, answer)) out.try_emplace(p.payment_hash, *why);
    it->second = answer;
  }
  return out;
}

Divergence contradiction_divergence(const LspRecord& record, const std::string& detail) {
  return {DivergenceKind::NodeContradictsItself, record.flow, record.payment_hash, detail, true};
}

Repair make_repair(const Transition& t, const LspRecord& record) {
  Repair r;
  r.kind = t.kind;
  r.flow = t.flow;
  r.row_id = record.row_id;
  r.payment_hash = record.payment_hash;
  r.observed_status = record.status;
  r.from.assign(t.from.begin(), t.from.end());
  r.to = std::string(t.to);
  r.outbox_action = std::string(t.outbox_action);
  return r;
}

class Planner {
 public:
  Planner(const PlanContext& context, Plan& plan) : ctx_(context), plan_(plan) {}

  void payment(const NodePayment& p, const LspRecord& record) {
    const bool failed = p.status == NodeStatus::Failed || p.status == NodeStatus::Cancelled;
    if (p.type == PaymentType::InboundHodl && p.status == NodeStatus::Claimable) {
      claimable(p, record);
    } else if (p.type == PaymentType::Outbound && p.status == NodeStatus::Succeeded) {
      payment_sent(p, record);
    } else if (failed && contains(in_flight_states(record.flow, p.direction()), record.status)) {
      diverge(DivergenceKind::NodeLegFailed, record,
              "node reports the " + std::string(to_string(p.direction())) + " leg " +
                  std::string(to_string(p.status)) + " while the record is " + record.status);
    }
  }

 private:
  void claimable(const NodePayment& p, const LspRecord& record) {
    if (!callback_may_act(RepairKind::MissedClaimable, record)) return;
    const Transition& t = transition_for(RepairKind::MissedClaimable, record.flow);
    if (!contains(t.from, record.status)) {
      unexplained(record, "node holds the inbound HTLC (Claimable)");
      return;
    }
    bool guarded = false;
    const auto node_amount = p.amt_msat ? std::to_string(*p.amt_msat) : "null";
    if (record.amount_msat && *record.amount_msat <= 0) {
      // The LSP takes only positive amounts; comparing would only find a wrapped equality.
      diverge(DivergenceKind::RecordAmountInvalid, record,
              "record " +
                  std::string(record.flow == Flow::Apay ? "amount_msat" : "inbound_amount_msat") +
                  " is " + std::to_string(*record.amount_msat) +
                  ", not a positive amount; node amt_msat " + node_amount);
      guarded = true;
    } else if (!p.amt_msat || !record.amount_msat ||
               !std::cmp_equal(*p.amt_msat, *record.amount_msat)) {
      diverge(DivergenceKind::AmountMismatch, record,
              "node amt_msat " + node_amount + ", record expects " +
                  (record.amount_msat ? std::to_string(*record.amount_msat) : "null"));
      guarded = true;
    }
    // APay keeps a deadline the LSP already recorded; relay takes the node's when it has one.
    const auto deadline =
        record.flow == Flow::Apay
            ? (record.claim_deadline_height ? record.claim_deadline_height
                                            : p.claim_deadline_height)
            : (p.claim_deadline_height ? p.claim_deadline_height : record.claim_deadline_height);
    // APay judges the earlier of the node's deadline (the one the live handler checks) and
    // the kept one (the one the LSP's next job checks).
    const auto judged = record.flow == Flow::Apay && deadline && p.claim_deadline_height
                            ? std::min(*deadline, *p.claim_deadline_height)
                            : deadline;
    if (!judged) {
      diverge(DivergenceKind::ClaimDeadlineUnknown, record,
              "no claim_deadline_height from the node or the record; not guessing one");
      guarded = true;
    } else if (*judged <= ctx_.current_height) {
      diverge(DivergenceKind::ClaimDeadlinePassed, record,
              "claim deadline " + std::to_string(*judged) + " is at or below height " +
                  std::to_string(ctx_.current_height));
      guarded = true;
    } else if (record.flow == Flow::Apay &&
               *judged - ctx_.current_height <= ctx_.claim_min_blocks) {
      // As utexo-lsp's claimable handler (6cc517f, internal/lspapi/api.go,
      // validateAsyncOrderClaimDeadlineWithinPolicy) refuses it: `blocksLeft <= requiredBlocks`,
      // requiredBlocks = APAY_INBOUND_MIN_FINAL_CLTV_EXPIRY_DELTA - 39 - 3.
      diverge(DivergenceKind::ClaimDeadlineTooNear, record,
              "claim deadline " + std::to_string(*judged) + " leaves " +
                  std::to_string(*judged - ctx_.current_height) + " block(s) above height " +
                  std::to_string(ctx_.current_height) + "; the LSP accepts an APay claimable " +
                  "only with more than " + std::to_string(ctx_.claim_min_blocks) +
                  " (--claim-min-blocks)");
      guarded = true;
    }
    if (guarded || dead_job(t, record)) return;
    Repair r = make_repair(t, record);
    r.claim_deadline_height = deadline;
    r.amount_msat = p.amt_msat;
    r.callback_deadline_height = p.claim_deadline_height ? p.claim_deadline_height : deadline;
    plan_.repairs.push_back(std::move(r));
  }

  void payment_sent(const NodePayment& p, const LspRecord& record) {
    if (!callback_may_act(RepairKind::MissedPaymentSent, record)) return;
    const Transition& t = transition_for(RepairKind::MissedPaymentSent, record.flow);
    if (contains(t.from, record.status)) {
      if (!p.preimage) {
        diverge(DivergenceKind::PreimageMissing, record,
                "outbound payment succeeded but the node reports no preimage");
      } else if (!util::preimage_matches(*p.preimage, p.payment_hash)) {
        diverge(DivergenceKind::PreimageMismatch, record,
                "sha256(preimage) does not equal the payment hash; not applied");
      } else if (!dead_job(t, record)) {
        Repair r = make_repair(t, record);
        r.preimage = p.preimage;
        plan_.repairs.push_back(std::move(r));
      }
      return;
    }
    if (at_or_beyond(record.flow, record.status, "claimable")) {
      // The LSP's own outbound job has not recorded its payment yet; it will move the record.
      // Only one that stays behind past the grace period needs a person.
      const std::int64_t waited = ctx_.now - p.updated_at;
      diverge(DivergenceKind::OutboundSucceededEarly, record,
              "outbound leg succeeded " + std::to_string(waited) + " s ago; record still " +
                  record.status,
              waited > ctx_.waiting_grace);
      return;
    }
    unexplained(record, "node reports the outbound leg Succeeded");
  }

  // Whether the transition's job already exists in a status the LSP will not run again: the
  // record would then wait in its new state for a job that never comes (its ON CONFLICT keeps
  // the old job), so the transition is reported instead of applied.
  bool dead_job(const Transition& t, const LspRecord& record) {
    const OutboxJob* job = job_of(record, t.outbox_action);
    if (job == nullptr || !will_not_run(*job)) return false;
    diverge(DivergenceKind::OutboxJobWillNotRun, record,
            "a " + std::string(t.outbox_action) + " job already exists with status '" +
                util::printable(job->status, 20) + "', which the LSP will not run again; moving " +
                "the record to " + std::string(t.to) + " would leave it waiting forever");
    return true;
  }

  void unexplained(const LspRecord& record, const std::string& node_says) {
    diverge(DivergenceKind::UnexplainedState, record,
            node_says + " but the " + std::string(to_string(record.flow)) + " record is '" +
                util::printable(record.status, 40) + "'");
  }

  void diverge(DivergenceKind kind, const LspRecord& record, std::string detail,
               bool needs_person = true) {
    plan_.divergences.push_back(
        {kind, record.flow, record.payment_hash, std::move(detail), needs_person});
  }

  const PlanContext& ctx_;
  Plan& plan_;
};

}  // namespace

std::string_view to_string(RepairKind k) {
  switch (k) {
    case RepairKind::MissedClaimable: return "missed_claimable";
    case RepairKind::MissedPaymentSent: return "missed_payment_sent";
    case RepairKind::MissingOutboxJob: return "missing_outbox_job";
  }
  return "?";
}

std::string_view to_string(DeliveryOutcome o) {
  switch (o) {
    case DeliveryOutcome::Applied: return "applied";
    case DeliveryOutcome::AlreadyMoved: return "already_moved";
    case DeliveryOutcome::Unconfirmed: return "unconfirmed";
    case DeliveryOutcome::Withheld: return "withheld";
    case DeliveryOutcome::Ignored: return "ignored";
    case DeliveryOutcome::Refused: return "refused";
    case DeliveryOutcome::Deferred: return "deferred";
    case DeliveryOutcome::Failed: return "failed";
  }
  return "?";
}

std::string_view to_string(DivergenceKind k) {
  switch (k) {
    case DivergenceKind::PreimageMismatch: return "preimage_mismatch";
    case DivergenceKind::PreimageMissing: return "preimage_missing";
    case DivergenceKind::AmountMismatch: return "amount_mismatch";
    case DivergenceKind::RecordAmountInvalid: return "record_amount_invalid";
    case DivergenceKind::ClaimDeadlineUnknown: return "claim_deadline_unknown";
    case DivergenceKind::ClaimDeadlinePassed: return "claim_deadline_passed";
    case DivergenceKind::ClaimDeadlineTooNear: return "claim_deadline_too_near";
    case DivergenceKind::NodeLegFailed: return "node_leg_failed";
    case DivergenceKind::OutboundSucceededEarly: return "outbound_succeeded_early";
    case DivergenceKind::UnexplainedState: return "unexplained_state";
    case DivergenceKind::MalformedPayment: return "malformed_payment";
    case DivergenceKind::DuplicateLiveRecords: return "duplicate_live_records";
    case DivergenceKind::OutboxJobWillNotRun: return "outbox_job_will_not_run";
    case DivergenceKind::NodeContradictsItself: return "node_contradicts_itself";
    case DivergenceKind::RecordHashMalformed: return "record_hash_malformed";
    case DivergenceKind::PayingJobMissing: return "paying_job_missing";
    case DivergenceKind::OutboxJobRetrying: return "outbox_job_retrying";
    case DivergenceKind::OutboxJobLockExpired: return "outbox_job_lock_expired";
    case DivergenceKind::OutboxJobBlocked: return "outbox_job_blocked";
    case DivergenceKind::LspCallbackNotApplied: return "lsp_callback_not_applied";
    case DivergenceKind::OutboxJobMissing: return "outbox_job_missing";
  }
  return "?";
}

std::optional<DivergenceKind> parse_divergence_kind(std::string_view s) {
  for (const DivergenceKind kind : kDivergenceKinds) {
    if (to_string(kind) == s) return kind;
  }
  return std::nullopt;
}

const std::vector<AwaitedJob>& awaited_jobs() {
  static const std::vector<AwaitedJob> jobs{
      {Flow::Apay, "claimable", "request_outbound_invoice", false},
      {Flow::Apay, "outbound_pending", "send_outbound_payment", true},
      {Flow::Apay, "outbound_claimed", "claim_inbound_invoice", false},
      {Flow::Relay, "claimable", "lightning_send_pay_outbound", true},
      {Flow::Relay, "outbound_claimed", "lightning_send_claim_inbound", false},
  };
  return jobs;
}

std::optional<Flow> flow_of_action(std::string_view action) {
  for (const AwaitedJob& job : awaited_jobs()) {
    if (job.action == action) return job.flow;
  }
  return std::nullopt;
}

const std::vector<Transition>& transition_table() {
  static const std::vector<Transition> table = build_table();
  return table;
}

namespace {

// The row each flow judges a hash by: its one non-terminal row, else its newest terminal one
// (a node payment against an order that ended is still worth a look). nullptr, with a
// divergence, when the flow has two non-terminal rows of the hash: which one the callback
// meant cannot be told, so neither is touched.
const LspRecord* row_to_judge(const std::vector<const LspRecord*>& rows, Plan& plan) {
  const LspRecord* live = nullptr;
  const LspRecord* newest_terminal = nullptr;
  std::vector<std::int64_t> live_ids;
  for (const LspRecord* r : rows) {
    if (is_terminal(*r)) {
      if (newest_terminal == nullptr || r->row_id > newest_terminal->row_id) newest_terminal = r;
    } else {
      live = r;
      live_ids.push_back(r->row_id);
    }
  }
  if (live_ids.size() > 1) {
    std::sort(live_ids.begin(), live_ids.end());
    std::string ids;
    for (std::int64_t id : live_ids) ids += (ids.empty() ? "" : ", ") + std::to_string(id);
    plan.divergences.push_back(
        {DivergenceKind::DuplicateLiveRecords, live->flow, live->payment_hash,
         std::to_string(live_ids.size()) + " non-terminal rows share this hash (ids " + ids +
             "); nothing applied",
         true});
    return nullptr;
  }
  return live != nullptr ? live : newest_terminal;
}

}  // namespace

Plan plan_payments(const std::vector<NodePayment>& payments, const std::vector<LspRecord>& records,
                   const PlanContext& context) {
  // Each hash's rows, flow by flow.
  std::unordered_map<std::string_view, std::array<std::vector<const LspRecord*>, 2>> by_hash;
  by_hash.reserve(records.size());
  for (const auto& r : records) {
    by_hash[r.payment_hash][r.flow == Flow::Apay ? 0 : 1].push_back(&r);
  }

  Plan plan;
  Planner planner(context, plan);
  const auto contradicted = contradictions_within(payments);
  std::set<std::pair<std::string_view, Direction>> judged;
  std::unordered_set<std::string_view> reported;      // contradictions, once per hash
  std::unordered_set<std::string_view> judged_twins;  // twin rows, once per hash, not per leg
  for (const auto& p : payments) {
    // A repeated answer is judged with the first one for its (hash, direction).
    if (!judged.insert({p.payment_hash, p.direction()}).second) continue;
    const auto found = by_hash.find(p.payment_hash);
    if (found == by_hash.end()) {
      ++plan.orphans;
      continue;
    }
    // The node's word on this hash cannot be trusted: neither leg is acted on. Reported once,
    // with the hash's first payment.
    if (const auto c = contradicted.find(p.payment_hash); c != contradicted.end()) {
      if (reported.insert(p.payment_hash).second) {
        for (const auto& rows : found->second) {
          for (const LspRecord* r : rows) {
            plan.divergences.push_back(contradiction_divergence(*r, c->second));
          }
        }
      }
      continue;
    }
    // A payment the node changed moments ago may still have its live callback in flight:
    // leave it to the next sweep rather than race it.
    if (context.now - p.updated_at < context.min_age) {
      ++plan.deferred;
      plan.deferred_hashes.push_back(p.payment_hash);
      continue;
    }
    const bool first_leg = judged_twins.insert(p.payment_hash).second;
    for (const auto& rows : found->second) {
      if (rows.empty()) continue;
      Plan twins;
      const LspRecord* record = row_to_judge(rows, twins);
      if (first_leg) {
        plan.divergences.insert(plan.divergences.end(), twins.divergences.begin(),
                                twins.divergences.end());
      }
      if (record != nullptr) planner.payment(p, *record);
    }
  }
  return plan;
}

namespace {

// The awaited jobs `record` is in the state of and has no job of (in any status).
std::vector<const AwaitedJob*> missing_jobs(const LspRecord& record) {
  std::vector<const AwaitedJob*> out;
  for (const AwaitedJob& job : awaited_jobs()) {
    if (job.flow == record.flow && job.state == record.status &&
        job_of(record, job.action) == nullptr) {
      out.push_back(&job);
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> hashes_needing_outbound_leg(const std::vector<LspRecord>& records) {
  std::vector<std::string> hashes;
  for (const auto& record : records) {
    for (const AwaitedJob* job : missing_jobs(record)) {
      if (job->pays &&
          std::find(hashes.begin(), hashes.end(), record.payment_hash) == hashes.end()) {
        hashes.push_back(record.payment_hash);
      }
    }
  }
  return hashes;
}

Plan plan_missing_outbox_jobs(const std::vector<LspRecord>& records,
                              const OutboundLegs& outbound_legs) {
  Plan plan;
  for (const auto& record : records) {
    for (const AwaitedJob* job : missing_jobs(record)) {
      if (job->pays) {
        const auto leg = outbound_legs.find(record.payment_hash);
        if (leg == outbound_legs.end() || leg->second) {
          const std::string node_says =
              leg == outbound_legs.end()
                  ? "the node was not asked about the outbound leg"
                  : "the node's outbound leg of this hash is " + *leg->second;
          plan.divergences.push_back(
              {DivergenceKind::PayingJobMissing, record.flow, record.payment_hash,
               "the " + std::string(to_string(record.flow)) + " record (id " +
                   std::to_string(record.row_id) + ") is " + record.status + " with no " +
                   std::string(job->action) + " job, and " + node_says +
                   "; recreating a job that pays could pay twice: not recreated",
               true});
          continue;
        }
      }
      plan.repairs.push_back(make_repair(transition_for_job(record.flow, job->action), record));
    }
  }
  return plan;
}

std::vector<RequiredJob> jobs_required_by_state(Flow flow) {
  std::vector<RequiredJob> jobs;
  for (const auto& t : transition_table()) {
    if (t.kind == RepairKind::MissingOutboxJob && t.flow == flow) {
      jobs.push_back({std::string(t.to), std::string(t.outbox_action)});
    }
  }
  return jobs;
}

Legs legs_to_look_up(Flow flow, std::string_view status, NodeStatus node_status) {
  switch (node_status) {
    case NodeStatus::Claimable:
      return {callback_may_act(RepairKind::MissedClaimable, flow, status), false};
    case NodeStatus::Succeeded:
      return {false, callback_may_act(RepairKind::MissedPaymentSent, flow, status)};
    case NodeStatus::Failed:
    case NodeStatus::Cancelled:
      return {contains(in_flight_states(flow, Direction::Inbound), status),
              contains(in_flight_states(flow, Direction::Outbound), status)};
    case NodeStatus::Pending:
    case NodeStatus::Claiming: return {};
  }
  return {};
}

Legs legs_to_look_up(Flow flow, std::string_view status) {
  Legs any;
  for (int st = 0; st <= static_cast<int>(NodeStatus::Failed); ++st) {
    const Legs legs = legs_to_look_up(flow, status, static_cast<NodeStatus>(st));
    any.inbound = any.inbound || legs.inbound;
    any.outbound = any.outbound || legs.outbound;
  }
  return any;
}

std::vector<std::string> known_states(Flow flow) {
  const StateLadder& states = ladder(flow);
  std::vector<std::string> all(states.ordered.begin(), states.ordered.end());
  all.insert(all.end(), states.terminal.begin(), states.terminal.end());
  return all;
}

namespace {

std::vector<std::string> quiet_states(Flow flow, const std::function<Legs(std::string_view)>& legs_of) {
  std::vector<std::string> quiet;
  for (const std::string& status : known_states(flow)) {
    const Legs legs = legs_of(status);
    if (!legs.inbound && !legs.outbound) quiet.push_back(status);
  }
  return quiet;
}

}  // namespace

std::vector<std::string> states_needing_no_lookup(Flow flow) {
  return quiet_states(flow, [&](std::string_view s) { return legs_to_look_up(flow, s); });
}

std::vector<std::string> states_needing_no_lookup(Flow flow, NodeStatus node_status) {
  return quiet_states(flow,
                      [&](std::string_view s) { return legs_to_look_up(flow, s, node_status); });
}

NodeAnswer answer_of(const NodePayment& p) { return {p.type, p.status, p.amt_msat}; }

std::optional<std::string> contradiction(const NodeAnswer& earlier, const NodeAnswer& later) {
  const auto then = [](std::string_view field, std::string_view a, std::string_view b) {
    return "the node answered " + std::string(field) + " " + std::string(a) + ", then " +
           std::string(b) + " for the same payment";
  };
  if (earlier.type != later.type) {
    return then("payment_type", to_string(earlier.type), to_string(later.type));
  }
  if (earlier.amt_msat && later.amt_msat && *earlier.amt_msat != *later.amt_msat) {
    return then("amt_msat", std::to_string(*earlier.amt_msat), std::to_string(*later.amt_msat));
  }
  const bool went_back = progress(later.status) < progress(earlier.status);
  const bool left_final = progress(earlier.status) == kFinal && later.status != earlier.status;
  if (went_back || left_final) {
    return then("status", to_string(earlier.status), to_string(later.status));
  }
  return std::nullopt;
}

std::vector<Divergence> divergences_for_contradiction(std::string_view payment_hash,
                                                      const std::string& detail,
                                                      const std::vector<LspRecord>& records) {
  std::vector<Divergence> out;
  for (const auto& r : records) {
    if (r.payment_hash == payment_hash) out.push_back(contradiction_divergence(r, detail));
  }
  return out;
}

std::vector<std::string> terminal_states(Flow flow) {
  const auto& terminal = ladder(flow).terminal;
  return {terminal.begin(), terminal.end()};
}

bool is_lookup_hash(std::string_view hash) {
  return hash.size() == 64 && std::all_of(hash.begin(), hash.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::vector<Divergence> divergences_for_malformed_hashes(const std::vector<LspRecord>& records) {
  std::vector<Divergence> out;
  out.reserve(records.size());
  for (const LspRecord& r : records) {
    const bool mixed_case = util::normalize_hex32(r.payment_hash).has_value();
    const std::string why = mixed_case
                                ? "is 64 hex digits but not lowercase (the LSP writes lowercase)"
                                : "is not 64 hex digits";
    out.push_back({DivergenceKind::RecordHashMalformed, r.flow, util::printable(r.payment_hash),
                   "record id " + std::to_string(r.row_id) + " (" + r.status + "): payment_hash " +
                       why + ": no node payment can be matched to it, so nothing is applied to it",
                   true});
  }
  return out;
}

std::vector<Divergence> divergences_for_stuck_jobs(const std::vector<StuckJob>& jobs) {
  std::vector<Divergence> out;
  out.reserve(jobs.size());
  for (const StuckJob& job : jobs) {
    std::string detail =
        "outbox job " + std::to_string(job.id) + " " + util::printable(job.action, 60) + " is " +
        util::printable(job.status, 20) + " after " + std::to_string(job.attempts) +
        " attempt(s), " + std::to_string(job.age_seconds) + " s old, last error: " +
        (job.last_error ? "'" + util::printable(*job.last_error, 200) + "'" : std::string("none"));
    DivergenceKind kind = DivergenceKind::OutboxJobRetrying;
    switch (job.reason) {
      case JobStuckReason::Retrying:
        detail += "; the LSP retries it forever (--stuck-after passed)";
        break;
      case JobStuckReason::LockExpired:
        kind = DivergenceKind::OutboxJobLockExpired;
        detail += "; its lock ran out longer ago than --stuck-after: the LSP died holding it";
        break;
      case JobStuckReason::HeadOfLine:
        kind = DivergenceKind::OutboxJobBlocked;
        detail += "; " + std::to_string(job.blocked_by) +
                  " pending job(s) with attempts > 0 and lower ids take every slot of the "
                  "LSP's ticks (it claims at most 10, oldest id first)";
        break;
    }
    out.push_back({kind, flow_of_action(job.action), job.payment_hash, std::move(detail), true});
  }
  return out;
}

std::vector<Divergence> divergences_for_rejected(const std::vector<RejectedPayment>& rejected) {
  std::vector<Divergence> out;
  out.reserve(rejected.size());
  for (const auto& r : rejected) {
    out.push_back({DivergenceKind::MalformedPayment, std::nullopt, r.payment_hash,
                   "node payment rejected: " + r.reason, true});
  }
  return out;
}

}  // namespace lsp_sweeper::plan
