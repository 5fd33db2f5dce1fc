// libcurl helpers shared by the node client and the alert webhooks.
#pragma once

#include <curl/curl.h>

namespace lsp_sweeper::node {

// curl_global_init, once per process; throws NodeError if it fails.
void init_curl_once();

// Whether a failed request is worth another attempt.
bool retryable(CURLcode rc);
bool retryable_status(long status);

}  // namespace lsp_sweeper::node
