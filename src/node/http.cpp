#include "lsp_sweeper/node/http.hpp"

#include <mutex>

#include "lsp_sweeper/node/client.hpp"

namespace lsp_sweeper::node {

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw NodeError(NodeErrorKind::Transport, "libcurl failed to initialise");
    }
  });
}

// Transport failures worth another attempt: the node or the path to it may recover. Anything
// else (a malformed URL, a certificate that does not verify) fails the same way every time.
bool retryable(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return true;
    default: return false;
  }
}

bool retryable_status(long status) {
  return status == 500 || status == 502 || status == 503 || status == 504;
}

}  // namespace lsp_sweeper::node
