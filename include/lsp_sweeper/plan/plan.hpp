// The planner: a pure function from what the node says and what the LSP records say to the
// repairs to apply and the divergences to report. No I/O, no clock, no globals; the
// transition table of DOMAIN.md lives here once, as data.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lsp_sweeper/domain.hpp"

namespace lsp_sweeper::plan {

enum class RepairKind { MissedClaimable, MissedPaymentSent, MissingOutboxJob };
std::string_view to_string(RepairKind k);
inline constexpr std::array kRepairKinds{RepairKind::MissedClaimable, RepairKind::MissedPaymentSent,
                                         RepairKind::MissingOutboxJob};

// One row of the transition table: a record of `flow` in one of `from` moves to `to`, and
// the outbox gets a job `outbox_action`. For MissingOutboxJob, from == {to}: only the job
// is added, and only while the record is still in that state.
struct Transition {
  RepairKind kind;
  Flow flow;
  std::vector<std::string_view> from;
  std::string_view to;
  std::string_view outbox_action;
};

// What became of a missed callback replayed to the LSP's own endpoint (--apply lsp-callbacks).
enum class DeliveryOutcome {
  Applied,       // 200, and the record moved from `from` to `to` with this call
  AlreadyMoved,  // the record had left `from` before the call: nothing sent
  Unconfirmed,   // 200, but the record was not found moved afterwards
  Withheld,      // not sent: the LSP would apply it to another row, or behind a dead job
  Ignored,       // 200 {"ignored": true}: the LSP says neither flow owns the hash
  Refused,       // a 4xx other than 401/403/429, or the LSP's own 500 error after every
                 // attempt: its rules or its state refused it; a divergence
  Deferred,      // 503: the LSP cannot act yet; left to the next run
  Failed,        // 401/403, or no answer of the LSP's after every attempt: the run ends
};
std::string_view to_string(DeliveryOutcome o);

struct Delivery {
  DeliveryOutcome outcome = DeliveryOutcome::Failed;
  long http_status = 0;  // 0: no HTTP answer (nothing sent, or a transport error)
  std::string answer;    // the LSP's message ("error" of its JSON, else the body), printable
                         // and at most 200 bytes
  int attempts = 0;      // POSTs made
  // Failed: another run may get through (no answer that could be retried, a proxy's 5xx,
  // 429), as opposed to a refused token or a failure that repeats (a certificate, a redirect).
  bool retryable = false;
  bool operator==(const Delivery&) const = default;
};

struct Repair {
  RepairKind kind = RepairKind::MissedClaimable;
  Flow flow = Flow::Apay;
  std::int64_t row_id = 0;  // the record's row: a hash may have a terminal twin row
  std::string payment_hash;
  std::string observed_status;    // the record's status when planned (reported as "from")
  std::vector<std::string> from;  // the conditional UPDATE's `status IN (...)`
  std::string to;
  std::string outbox_action;
  std::optional<std::int64_t> claim_deadline_height;  // MissedClaimable
  std::optional<std::string> preimage;                // MissedPaymentSent, already verified
  // MissedClaimable: what the node's callback would have carried, for --apply lsp-callbacks:
  // its amt_msat (equal to the record's) and its deadline (else the one above).
  std::optional<std::uint64_t> amount_msat;
  std::optional<std::int64_t> callback_deadline_height;
  bool applied = false;  // set by the apply step, never by the planner
  // --apply lsp-callbacks: what the LSP answered to the replayed callback; none in --apply db.
  std::optional<Delivery> delivery;
};

enum class DivergenceKind {
  PreimageMismatch,        // sha256(preimage) != payment_hash
  PreimageMissing,         // outbound succeeded but the node reports no preimage
  AmountMismatch,          // node amt_msat differs from (or is missing for) the record's amount
  RecordAmountInvalid,     // the record's amount is zero or negative: nothing to compare with
  ClaimDeadlineUnknown,    // claimable, but neither the node nor the record knows the deadline
  ClaimDeadlinePassed,     // the deadline is at or below the current height
  ClaimDeadlineTooNear,    // APay: no more than PlanContext::claim_min_blocks blocks left
  NodeLegFailed,           // node says Failed/Cancelled while the LSP thinks the leg is in flight
  OutboundSucceededEarly,  // outbound leg succeeded before the LSP recorded outbound_paid
  UnexplainedState,        // the record is in a state the transition table cannot explain
  MalformedPayment,        // the node sent a payment the decoder rejected
  NodeContradictsItself,   // two answers about one (hash, direction) cannot both be true
  DuplicateLiveRecords,    // two non-terminal rows of one flow share the payment hash
  OutboxJobWillNotRun,     // the transition's job exists already, done or failed: never runs
  RecordHashMalformed,     // a live record's payment_hash is not 64 lowercase hex digits
  PayingJobMissing,        // a state waits on a job that pays, it is missing, and the node
                           // has (or may have) an outbound payment of the hash already
  OutboxJobRetrying,       // a pending job keeps failing (attempts >= 3) past --stuck-after
  OutboxJobLockExpired,    // a processing job's lock ran out past --stuck-after: LSP died
  OutboxJobBlocked,        // a never-tried job behind ten or more failing jobs with lower ids
  LspCallbackNotApplied,   // --apply lsp-callbacks: the LSP refused, ignored or did not apply it
  OutboxJobMissing,        // --apply lsp-callbacks: a job is missing and no endpoint adds one
};
std::string_view to_string(DivergenceKind k);
std::optional<DivergenceKind> parse_divergence_kind(std::string_view s);

// Every kind, for views that list all of them (the metrics file shows zeros too).
inline constexpr std::array kDivergenceKinds{
    DivergenceKind::PreimageMismatch,       DivergenceKind::PreimageMissing,
    DivergenceKind::AmountMismatch,         DivergenceKind::RecordAmountInvalid,
    DivergenceKind::ClaimDeadlineUnknown,   DivergenceKind::ClaimDeadlinePassed,
    DivergenceKind::ClaimDeadlineTooNear,   DivergenceKind::NodeLegFailed,
    DivergenceKind::OutboundSucceededEarly, DivergenceKind::UnexplainedState,
    DivergenceKind::MalformedPayment,       DivergenceKind::NodeContradictsItself,
    DivergenceKind::DuplicateLiveRecords,   DivergenceKind::OutboxJobWillNotRun,
    DivergenceKind::RecordHashMalformed,    DivergenceKind::PayingJobMissing,
    DivergenceKind::OutboxJobRetrying,      DivergenceKind::OutboxJobLockExpired,
    DivergenceKind::OutboxJobBlocked,       DivergenceKind::LspCallbackNotApplied,
    DivergenceKind::OutboxJobMissing,
};

struct Divergence {
  DivergenceKind kind = DivergenceKind::UnexplainedState;
  std::optional<Flow> flow;  // none for MalformedPayment
  std::string payment_hash;
  std::string detail;
  // False for a divergence that is expected to heal by itself (the LSP's own job is
  // behind, still inside the grace period): it is reported but does not need a person.
  bool needs_person = true;
};

struct PlanContext {
  std::int64_t now = 0;              // unix seconds
  std::int64_t current_height = 0;   // the node's block height
  std::int64_t min_age = 30;         // seconds since the node's updated_at before acting
  std::int64_t waiting_grace = 900;  // seconds an OutboundSucceededEarly may last unalerted
  // An APay claimable is repaired only with more than this many blocks left before its
  // deadline: the LSP's APAY_INBOUND_MIN_FINAL_CLTV_EXPIRY_DELTA (144) - 42, as its handler.
  std::int64_t claim_min_blocks = 102;
};

struct Plan {
  std::vector<Repair> repairs;
  std::vector<Divergence> divergences;
  int orphans = 0;   // node payments no LSP record knows: other traffic of the node
  int deferred = 0;  // payments updated less than min_age ago: left to the next sweep
  std::vector<std::string> deferred_hashes;  // their hashes
};

// A state that waits on an outbox job, the job that moves it, and whether that job pays
// (money leaves the LSP): DOMAIN.md's table of five, kept here once, as data.
struct AwaitedJob {
  Flow flow;
  std::string_view state;
  std::string_view action;
  bool pays;
};
const std::vector<AwaitedJob>& awaited_jobs();

// The flow whose records an outbox action belongs to; nothing for an action no awaited job has.
std::optional<Flow> flow_of_action(std::string_view action);

// The transition table of DOMAIN.md: the four callback rows, then one missing-outbox-job row
// per awaited job.
const std::vector<Transition>& transition_table();

// Plans the repairs for node payments against the LSP records with the same hashes (records
// may hold both flows, in any order, and several rows of one hash). A hash is judged by its
// one non-terminal row per flow, terminal twins left alone; two non-terminal rows of one flow
// are a divergence and nothing is applied to either. A (hash, direction) may come more than
// once: its first answer is planned, unless two of its answers contradict each other
// (`contradiction`): then every record of that hash gets a NodeContradictsItself divergence
// and nothing else is planned for the hash, either direction.
Plan plan_payments(const std::vector<NodePayment>& payments, const std::vector<LspRecord>& records,
                   const PlanContext& context);

// What the node answered about the outbound leg of a hash (POST /getpayment, Outbound): nothing
// when it has no outbound payment of the hash, else what it has (its status, or why the answer
// cannot tell). A hash absent from the map was not asked.
using OutboundLegs = std::map<std::string, std::optional<std::string>, std::less<>>;

// The hashes of `records` (outbox_jobs filled) whose missing job pays: the run asks the node
// for their outbound leg before plan_missing_outbox_jobs.
std::vector<std::string> hashes_needing_outbound_leg(const std::vector<LspRecord>& records);

// Plans the outbox jobs missing for records already in a state that needs one (their
// outbox_jobs filled). A job that only asks or claims is recreated. A job that pays is
// recreated only when `outbound_legs` says the node has no outbound payment of the hash;
// otherwise (the node has one, or was not asked, or could not tell) a PayingJobMissing
// divergence asks a person, with what the node said in its detail.
Plan plan_missing_outbox_jobs(const std::vector<LspRecord>& records,
                              const OutboundLegs& outbound_legs = {});

// The states in which a record of `flow` must have an outbox job, handed to the store's
// lookup by the run loop.
std::vector<RequiredJob> jobs_required_by_state(Flow flow);

// Which of a record's node payments the planner could turn into a repair or a divergence,
// whatever the node's status for them: the inbound (HODL) leg, the outbound leg. For the
// targeted lookups, which ask the node only about these.
struct Legs {
  bool inbound = false;
  bool outbound = false;
};
Legs legs_to_look_up(Flow flow, std::string_view status);

// The same, for node payments of one status only (a listing's): a Claimable payment matters
// to the inbound leg of a record the claimable callback may still move, a Succeeded one to the
// outbound leg of a record the payment_sent callback may still move, a Failed or Cancelled one
// to a leg in flight; Pending and Claiming ones to none. legs_to_look_up(flow, status) is the
// union of these over every node status.
Legs legs_to_look_up(Flow flow, std::string_view status, NodeStatus node_status);

// Every state of `flow` the planner knows: its ordered states, then its terminal ones.
std::vector<std::string> known_states(Flow flow);

// The known states of `flow` in which neither leg matters (legs_to_look_up is empty), for the
// store's lookup of the records the targeted lookups ask the node about. Unknown states are
// never in it: the planner reports them.
std::vector<std::string> states_needing_no_lookup(Flow flow);
// The known states of `flow` in which no payment of `node_status` matters, for the run's
// narrowing of the listing of that status (README, "Targeted lookups").
std::vector<std::string> states_needing_no_lookup(Flow flow, NodeStatus node_status);

// What a run keeps of a node answer, to compare a later answer about the same (hash,
// direction) with it.
struct NodeAnswer {
  PaymentType type = PaymentType::Outbound;
  NodeStatus status = NodeStatus::Pending;
  std::optional<std::uint64_t> amt_msat;
};
NodeAnswer answer_of(const NodePayment& p);

// Why `later` cannot be the same payment as `earlier` (same hash and direction) asked again:
// another payment type, another amount (when both have one), or a status that went back or
// left a final one (Succeeded, Cancelled, Failed). Nothing when they agree; a status that
// moved forward (Claimable, then Succeeded) agrees.
std::optional<std::string> contradiction(const NodeAnswer& earlier, const NodeAnswer& later);

// A NodeContradictsItself divergence for each record of `payment_hash`, saying `detail`; none
// when no record knows the hash (other traffic of the node).
std::vector<Divergence> divergences_for_contradiction(std::string_view payment_hash,
                                                      const std::string& detail,
                                                      const std::vector<LspRecord>& records);

// The terminal states of `flow`: a record in one is no longer live.
std::vector<std::string> terminal_states(Flow flow);

// Whether `hash` is 64 lowercase hex digits, the form the LSP writes and every lookup by hash
// (the node's normalized hash against the records) uses.
bool is_lookup_hash(std::string_view hash);

// A RecordHashMalformed divergence for each record (live, its hash not is_lookup_hash): such a
// record can be neither found for the node's payment nor repaired. Its payment_hash is the
// record's, as printable text.
std::vector<Divergence> divergences_for_malformed_hashes(const std::vector<LspRecord>& records);

// A divergence for each stuck outbox job, of its reason's kind, with the job's id, action,
// status, attempts, age and last error in the detail; its flow is its action's (nothing for
// an action no awaited job has), its hash the job's. The sweeper never touches the job.
std::vector<Divergence> divergences_for_stuck_jobs(const std::vector<StuckJob>& jobs);

// A divergence for each payment the decoder rejected.
std::vector<Divergence> divergences_for_rejected(const std::vector<RejectedPayment>& rejected);

}  // namespace lsp_sweeper::plan
