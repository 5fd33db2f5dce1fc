// libcurl helpers shared by the node client and the alert webhooks.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

namespace lsp_sweeper::node {

// curl_global_init, once per process; throws NodeError if it fails.
void init_curl_once();

// Whether a failed request is worth another attempt.
bool retryable(CURLcode rc);
bool retryable_status(long status);

struct PostOptions {
  std::chrono::milliseconds timeout{10000};  // the whole request, connecting included
  std::string bearer_token{};                // sent as Authorization when not empty; never logged
  std::string ca_file{};                     // PEM of the CA(s) to trust; empty: the system's
  std::size_t max_body = 64 * 1024;          // bytes of the answer kept; the rest is dropped
};

// One POST's outcome: an HTTP status and the answer's first max_body bytes, or the transport
// failure (status 0) as curl_easy_strerror says it, which never quotes the URL.
struct PostAnswer {
  long status = 0;
  std::string body;
  std::optional<std::string> transport_error;
  bool retryable = false;  // a transport failure worth another attempt (retryable())
};

// POSTs `body` as JSON to `url` once: TLS verified, no redirects followed, http(s) only.
PostAnswer post_json(const std::string& url, const std::string& body, const PostOptions& options);

}  // namespace lsp_sweeper::node
