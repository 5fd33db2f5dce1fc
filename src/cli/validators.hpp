// CLI11 validators with the messages lsp-sweeper's usage errors (exit 64) give: they say what
// a value must be, in the option's own terms.
#pragma once

#include <CLI/CLI.hpp>

namespace lsp_sweeper::cli {

// A base URL, the node's or the LSP's (node::base_url_problem).
CLI::Validator base_url();
// An alert webhook URL: http(s) (node::http_url_problem); never quoted, it is a credential.
CLI::Validator webhook_url();
// A number of seconds >= 0.
CLI::Validator non_negative();
// A duration: 90s, 15m, 36h, 14d or plain seconds (util::parse_duration_seconds).
CLI::Validator duration();
// A duration of more than 0, for one whose 0 would silently turn a check off.
CLI::Validator positive_duration(const std::string& why_not_zero);

}  // namespace lsp_sweeper::cli
