#include "lsp_sweeper/report/alert.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <thread>

#include "lsp_sweeper/node/client.hpp"
#include "lsp_sweeper/node/http.hpp"

namespace lsp_sweeper::report {

namespace {

using json = nlohmann::ordered_json;

bool due(const StoredDivergence& d, std::int64_t realert_after, std::int64_t now) {
  return d.divergence.needs_person &&
         (d.is_new || !d.last_alerted_at || now - *d.last_alerted_at >= realert_after);
}

std::string line_for(const plan::Divergence& d) {
  std::string line = "• " + std::string(plan::to_string(d.kind));
  if (d.flow) line += " (" + std::string(to_string(*d.flow)) + ")";
  return line + " " + d.payment_hash + ": " + d.detail;
}

// Appends a titled list to the text: "*title*" then one line per item.
void append_section(std::string& text, const std::string& title,
                    const std::vector<std::string>& lines) {
  if (lines.empty()) return;
  text += "\n*" + title + "*";
  for (const auto& line : lines) text += "\n" + line;
}

}  // namespace

std::optional<Alert> compose_alert(const RunResult& r, std::int64_t realert_after,
                                   std::int64_t now) {
  Alert alert;
  json fresh = json::array(), reminders = json::array(), resolved = json::array(),
       repairs = json::array();
  std::vector<std::string> fresh_lines, reminder_lines, resolved_lines, repair_lines;
  for (const auto& d : r.tracked) {
    if (!due(d, realert_after, now)) continue;
    alert.divergence_ids.push_back(d.id);
    (d.is_new ? fresh : reminders).push_back(divergence_json(d));
    (d.is_new ? fresh_lines : reminder_lines).push_back(line_for(d.divergence));
  }
  // Only a resolution the operator was told about is news; one that healed unseen is not.
  for (const auto& d : r.resolved) {
    if (!d.last_alerted_at) continue;
    resolved.push_back(divergence_json(d));
    resolved_lines.push_back(line_for(d.divergence));
  }
  for (const auto& repair : r.repairs) {
    if (!repair.applied) continue;
    repairs.push_back({{"kind", plan::to_string(repair.kind)},
                       {"flow", to_string(repair.flow)},
                       {"payment_hash", repair.payment_hash},
                       {"from", repair.observed_status},
                       {"to", repair.to}});
    repair_lines.push_back("• " + std::string(plan::to_string(repair.kind)) + " (" +
                           std::string(to_string(repair.flow)) + ") " + repair.payment_hash + ": " +
                           repair.observed_status + " -> " + repair.to);
  }
  if (fresh.empty() && reminders.empty() && resolved.empty() && repairs.empty()) {
    return std::nullopt;
  }

  std::string text = "lsp-sweeper on " + r.node.url + ": " + std::to_string(fresh.size()) +
                     " new, " + std::to_string(reminders.size()) + " still open, " +
                     std::to_string(resolved.size()) + " resolved divergence(s); " +
                     std::to_string(repairs.size()) + " repair(s) applied";
  append_section(text, "New divergences (need a person)", fresh_lines);
  append_section(text, "Still open", reminder_lines);
  append_section(text, "Resolved", resolved_lines);
  append_section(text, "Repairs applied (each one a callback the LSP lost)", repair_lines);

  alert.body = {{"text", std::move(text)},
                {"run_id", r.run_id},
                {"node_url", r.node.url},
                {"finished_at", rfc3339(r.finished_at)},
                {"new_divergences", std::move(fresh)},
                {"ongoing_divergences", std::move(reminders)},
                {"resolved_divergences", std::move(resolved)},
                {"repairs_applied", std::move(repairs)}};
  return alert;
}

std::optional<std::string> post_webhook(const std::string& url, const std::string& body,
                                        const WebhookOptions& options) {
  std::string reason;
  auto backoff = options.first_backoff;
  const int attempts = std::max(1, options.max_attempts);
  for (int n = 1; n <= attempts; ++n) {
    if (n > 1) {
      std::this_thread::sleep_for(backoff);
      backoff *= 2;
    }
    const node::PostAnswer answer = node::post_json(url, body, {.timeout = options.timeout});
    bool retry = false;
    if (answer.transport_error) {
      reason = *answer.transport_error;
      retry = answer.retryable;
    } else {
      if (answer.status >= 200 && answer.status <= 299) return std::nullopt;
      reason = "HTTP " + std::to_string(answer.status);
      retry = answer.status == 429 || node::retryable_status(answer.status);
    }
    if (!retry) return reason;
    reason += "; gave up after " + std::to_string(n) + " attempt(s)";
  }
  return reason;
}

void refuse_insecure_webhooks(const std::vector<std::string>& urls, bool allow_insecure_http) {
  if (allow_insecure_http) return;
  for (const auto& url : urls) {
    if (!node::is_insecure_remote_http(url)) continue;
    throw std::invalid_argument(
        "refusing plain http:// to alert webhook " + redact_webhook_url(url) +
        ", which is not loopback: the webhook URL is a credential and would cross the network "
        "in clear (use https://, or --allow-insecure-http on a trusted network)");
  }
}

std::string redact_webhook_url(const std::string& url) {
  const auto scheme_end = url.find("://");
  const std::size_t start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  const std::size_t end = std::min(url.find_first_of("/?#", start), url.size());
  std::string host = url.substr(start, end - start);
  const auto at = host.rfind('@');
  if (at != std::string::npos) host.erase(0, at + 1);
  return url.substr(0, start) + host + (end < url.size() ? "/***" : "");
}

}  // namespace lsp_sweeper::report
