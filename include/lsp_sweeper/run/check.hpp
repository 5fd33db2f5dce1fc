// `lsp-sweeper check`, the node's half: what a sweep will need from the node, asked once.
#pragma once

#include <string>
#include <vector>

#include "lsp_sweeper/node/client.hpp"
#include "lsp_sweeper/util/check.hpp"

namespace lsp_sweeper::run {

// Reachable, token accepted, unlocked (the current height answers all three at once), the
// dialect (one listing that matches nothing on a paginated node), and the height. A check
// that cannot run because an earlier one failed says so instead of passing.
std::vector<util::Check> check_node(node::PaymentSource& node, const std::string& redacted_url);

}  // namespace lsp_sweeper::run
