#include "lsp_sweeper/run/check.hpp"

#include <chrono>

namespace lsp_sweeper::run {

namespace {

using util::Check;

using util::fail;
using util::ok;

}  // namespace

std::vector<Check> check_node(node::PaymentSource& node, const std::string& redacted_url) {
  std::vector<Check> checks;
  std::int64_t height = 0;
  try {
    height = node.current_height();
  } catch (const node::NodeError& e) {
    // The node's own answers say how far the request got: 401 comes before 403.
    const std::string not_checked = "not checked: an earlier check failed";
    switch (e.kind) {
      case node::NodeErrorKind::Unauthorized:
      case node::NodeErrorKind::Forbidden:  // the token may not use /networkinfo
        checks = {ok("node reachable", redacted_url), fail("node token accepted", e.what()),
                  fail("node unlocked", not_checked)};
        break;
      case node::NodeErrorKind::Locked:
      case node::NodeErrorKind::NotInitialized:
      case node::NodeErrorKind::ChangingState:
        checks = {ok("node reachable", redacted_url), ok("node token accepted"),
                  fail("node unlocked", e.what())};
        break;
      default:
        checks = {fail("node reachable", e.what()), fail("node token accepted", not_checked),
                  fail("node unlocked", not_checked)};
    }
    checks.push_back(fail("node API dialect", not_checked));
    checks.push_back(fail("node block height", not_checked));
    return checks;
  }
  checks.push_back(ok("node reachable", redacted_url));
  checks.push_back(ok("node token accepted"));
  checks.push_back(ok("node unlocked"));

  // Created after the end of time on this node's clock: a paginated node answers with one
  // empty page; a legacy node ignores the filter and sends its whole history once.
  const auto tomorrow = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count() +
                        86400;
  try {
    const node::ScanStats stats =
        node.scan({NodeStatus::Succeeded, Direction::Outbound, tomorrow}, 1, [](auto&) {});
    checks.push_back(
        ok("node API dialect", std::string(node::to_string(stats.dialect)) +
                                   (stats.dialect == node::Dialect::Legacy
                                        ? " (missed claimable callbacks cannot be checked)"
                                        : "")));
  } catch (const node::NodeError& e) {
    checks.push_back(fail("node API dialect", e.what()));
  }
  checks.push_back(ok("node block height", std::to_string(height)));
  return checks;
}

}  // namespace lsp_sweeper::run
