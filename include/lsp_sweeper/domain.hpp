// The values that flow through one sweep: what the node says about a payment, and what the
// LSP's order records say about the same payment hash. Plain structs, no behaviour.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lsp_sweeper {

enum class Direction { Inbound, Outbound };

// The node's payment_type. The legacy dialect only says "inbound", so an inbound payment
// from it is InboundUnknown: it cannot be told apart from an auto-claimed one.
enum class PaymentType { Outbound, InboundAutoClaim, InboundHodl, InboundUnknown };

// The node's HTLCStatus (the legacy dialect only has Pending, Succeeded and Failed).
enum class NodeStatus { Pending, Claimable, Claiming, Succeeded, Cancelled, Failed };

std::string_view to_string(Direction d);
std::string_view to_string(PaymentType t);
std::string_view to_string(NodeStatus s);
std::optional<NodeStatus> parse_node_status(std::string_view s);

// One payment as the node reports it, already validated by the decoder: hashes and
// preimages are 64 lowercase hex characters, numbers are in range.
struct NodePayment {
  std::string payment_hash;
  PaymentType type = PaymentType::Outbound;
  NodeStatus status = NodeStatus::Pending;
  std::optional<std::uint64_t> amt_msat;
  std::optional<std::string> preimage;
  // Only newer nodes report it; today's REST payment has none.
  std::optional<std::int64_t> claim_deadline_height;
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;

  Direction direction() const {
    return type == PaymentType::Outbound ? Direction::Outbound : Direction::Inbound;
  }
};

// A payment the decoder refused, kept so the report can say which and why.
struct RejectedPayment {
  std::string payment_hash;  // as sent, truncated and made printable; may be empty
  std::string reason;
};

// How a run applies a repair (README, "Two ways to apply"): the sweeper's own SQL on the LSP's
// tables (Database, `--apply db`), or the missed callback replayed to the LSP's own endpoint,
// which then applies its own rules, transaction and outbox job (LspCallbacks).
enum class ApplyMode { Database, LspCallbacks };
std::string_view to_string(ApplyMode m);  // "db", "lsp-callbacks"
std::optional<ApplyMode> parse_apply_mode(std::string_view s);

// Which of the LSP's two flows a record belongs to.
enum class Flow { Apay, Relay };
std::string_view to_string(Flow f);
std::optional<Flow> parse_flow(std::string_view s);

// An outbox job of a record's payment hash, as async_rotating_invoice_outbox keeps it.
struct OutboxJob {
  std::string action;
  std::string status;  // pending, processing, done or failed
  bool operator==(const OutboxJob&) const = default;
};

// One LSP order record: one row of async_rotating_invoices (Apay) or lightning_send_mappings
// (Relay). A row, not a hash: the LSP's APay table lets one hash have a terminal row and a
// live one. amount_msat is the inbound amount the LSP expects: amount_msat for Apay,
// inbound_amount_msat for Relay.
struct LspRecord {
  Flow flow = Flow::Apay;
  std::int64_t row_id = 0;  // the table's id
  std::string payment_hash;
  std::string status;
  std::optional<std::int64_t> amount_msat;
  std::optional<std::int64_t> claim_deadline_height;
  // The outbox jobs of this hash (any job status). Filled by the lookups the planner judges
  // jobs from (records_for, records_lacking_outbox_job); empty elsewhere.
  std::vector<OutboxJob> outbox_jobs;
};

// Why an outbox job looks stuck (DOMAIN.md, "An outbox job can also be stuck"): the LSP never
// gives up on a job, so only a person can.
enum class JobStuckReason {
  Retrying,     // pending, attempts >= 3, created longer ago than --stuck-after
  LockExpired,  // processing, its locked_until longer ago than --stuck-after
  HeadOfLine,   // pending, never tried, behind ten or more failing jobs with lower ids
};

// An outbox job that looks stuck, as the store found it.
struct StuckJob {
  JobStuckReason reason = JobStuckReason::Retrying;
  std::int64_t id = 0;
  std::string payment_hash;
  std::string action;
  std::string status;
  std::int64_t attempts = 0;
  std::int64_t age_seconds = 0;  // since the job's created_at
  std::optional<std::string> last_error;
  std::int64_t blocked_by = 0;  // HeadOfLine: pending jobs with attempts > 0 and lower ids
  bool operator==(const StuckJob&) const = default;
};

// A state in which a record must have an outbox job, and that job's action (DOMAIN.md).
struct RequiredJob {
  std::string status;
  std::string action;
  bool operator==(const RequiredJob&) const = default;
};

}  // namespace lsp_sweeper
