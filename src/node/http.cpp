#include "lsp_sweeper/node/http.hpp"

#include <memory>
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

namespace {

struct BoundedBody {
  std::string text;
  std::size_t max;
};

std::size_t keep_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto& body = *static_cast<BoundedBody*>(user);
  const std::size_t bytes = size * n;
  if (body.text.size() < body.max)
    body.text.append(data, std::min(bytes, body.max - body.text.size()));
  return bytes;
}

}  // namespace

PostAnswer post_json(const std::string& url, const std::string& body, const PostOptions& options) {
  init_curl_once();
  PostAnswer answer;
  const std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(),
                                                                 &curl_easy_cleanup);
  curl_slist* raw = curl_slist_append(nullptr, "Content-Type: application/json");
  if (raw && !options.bearer_token.empty()) {
    const std::string auth = "Authorization: Bearer " + options.bearer_token;
    curl_slist* more = curl_slist_append(raw, auth.c_str());
    if (!more) curl_slist_free_all(raw);
    raw = more;
  }
  const std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(raw,
                                                                            &curl_slist_free_all);
  if (!curl || !headers) {
    answer.transport_error = "libcurl could not create a handle";
    return answer;
  }
  CURL* h = curl.get();
  const long timeout = static_cast<long>(options.timeout.count());
  BoundedBody sink{{}, options.max_body};
  // Certificate and host verification are libcurl's defaults; set anyway so no build-time
  // default can turn them off. Verbose output would print the Authorization header.
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options.ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "lsp-sweeper");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &keep_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, static_cast<void*>(&sink));
  const CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    answer.transport_error = curl_easy_strerror(rc);
    answer.retryable = retryable(rc);
    return answer;
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &answer.status);
  answer.body = std::move(sink.text);
  return answer;
}

}  // namespace lsp_sweeper::node
