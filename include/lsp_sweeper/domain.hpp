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

// Which of the LSP's two flows a record belongs to.
enum class Flow { Apay, Relay };
std::string_view to_string(Flow f);
std::optional<Flow> parse_flow(std::string_view s);

// One LSP order record, from either async_rotating_invoices (Apay) or
// lightning_send_mappings (Relay). amount_msat is the inbound amount the LSP expects:
// amount_msat for Apay, inbound_amount_msat for Relay.
struct LspRecord {
  Flow flow = Flow::Apay;
  std::string payment_hash;
  std::string status;
  std::optional<std::int64_t> amount_msat;
  std::optional<std::int64_t> claim_deadline_height;
  // Actions of the outbox jobs that exist for this hash (any job status). Filled only by
  // the lookup of records awaiting an outbox job; empty elsewhere.
  std::vector<std::string> outbox_actions;
};

}  // namespace lsp_sweeper
