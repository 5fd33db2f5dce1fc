#include "lsp_sweeper/domain.hpp"

#include <array>
#include <utility>

namespace lsp_sweeper {

namespace {
constexpr std::array<std::pair<NodeStatus, std::string_view>, 6> kNodeStatusNames{{
    {NodeStatus::Pending, "Pending"},
    {NodeStatus::Claimable, "Claimable"},
    {NodeStatus::Claiming, "Claiming"},
    {NodeStatus::Succeeded, "Succeeded"},
    {NodeStatus::Cancelled, "Cancelled"},
    {NodeStatus::Failed, "Failed"},
}};
}  // namespace

std::string_view to_string(Direction d) { return d == Direction::Inbound ? "Inbound" : "Outbound"; }

std::string_view to_string(PaymentType t) {
  switch (t) {
    case PaymentType::Outbound: return "Outbound";
    case PaymentType::InboundAutoClaim: return "InboundAutoClaim";
    case PaymentType::InboundHodl: return "InboundHodl";
    case PaymentType::InboundUnknown: return "Inbound";
  }
  return "?";
}

std::string_view to_string(NodeStatus s) {
  for (const auto& [status, name] : kNodeStatusNames) {
    if (status == s) return name;
  }
  return "?";
}

std::optional<NodeStatus> parse_node_status(std::string_view s) {
  for (const auto& [status, name] : kNodeStatusNames) {
    if (name == s) return status;
  }
  return std::nullopt;
}

std::string_view to_string(Flow f) { return f == Flow::Apay ? "apay" : "relay"; }

std::optional<Flow> parse_flow(std::string_view s) {
  for (Flow f : {Flow::Apay, Flow::Relay}) {
    if (to_string(f) == s) return f;
  }
  return std::nullopt;
}

std::string_view to_string(ApplyMode m) {
  return m == ApplyMode::Database ? "db" : "lsp-callbacks";
}

std::optional<ApplyMode> parse_apply_mode(std::string_view s) {
  for (ApplyMode m : {ApplyMode::Database, ApplyMode::LspCallbacks}) {
    if (to_string(m) == s) return m;
  }
  return std::nullopt;
}

}  // namespace lsp_sweeper
