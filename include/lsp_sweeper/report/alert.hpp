// Alerts: what a run tells the operator's webhooks (Slack-style incoming webhooks or any
// JSON receiver), and the delivery itself. Composing is pure; delivery is libcurl.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lsp_sweeper/report/report.hpp"

namespace lsp_sweeper::report {

struct Alert {
  nlohmann::ordered_json body;               // has "text" for Slack, plus structured fields
  std::vector<std::int64_t> divergence_ids;  // rows whose last_alerted_at it updates
};

// The alert a recorded run owes, if any: new divergences that need a person, open ones
// that need a person and were not alerted for `realert_after` seconds (or never), resolved
// ones an alert had named, and applied repairs (each one a lost callback). `now` is unix
// seconds.
std::optional<Alert> compose_alert(const RunResult& result, std::int64_t realert_after,
                                   std::int64_t now);

struct WebhookOptions {
  std::chrono::milliseconds timeout{10000};  // per attempt, connecting included
  int max_attempts = 3;
  std::chrono::milliseconds first_backoff{500};  // doubled after each failed attempt
};

// POSTs `body` as JSON to `url` (TLS verified, no redirects followed), retrying transport
// errors, 429 and 5xx. Returns the reason it failed, or nothing on a 2xx. The reason never
// holds the URL.
std::optional<std::string> post_webhook(const std::string& url, const std::string& body,
                                        const WebhookOptions& options);

// Refuses (std::invalid_argument) plain http:// to a webhook host that is not loopback, as the
// node's URL is refused: a webhook URL is a credential. allow_insecure_http is the same
// explicit opt-in as for the node. The message shows the URL as redact_webhook_url does.
void refuse_insecure_webhooks(const std::vector<std::string>& urls, bool allow_insecure_http);

// The URL as logs may show it: scheme and host only, since a webhook's path (a Slack URL's)
// is its secret.
std::string redact_webhook_url(const std::string& url);

}  // namespace lsp_sweeper::report
