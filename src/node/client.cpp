#include "lsp_sweeper/node/client.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <future>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

#include "lsp_sweeper/node/http.hpp"
#include "lsp_sweeper/util/hex.hpp"

namespace lsp_sweeper::node {

namespace {

// Doubling from first_backoff must not let a generous max_attempts stall a cron run for hours.
constexpr std::chrono::milliseconds kMaxBackoff{60000};
// A node that accepts no connection within this long is down; the whole-request timeout is
// for slow pages, not for waiting on a dead host.
constexpr std::chrono::milliseconds kMaxConnectTimeout{10000};
// How much of the node's own error text a message may quote.
constexpr std::size_t kNodeErrorChars = 200;

// The response body, capped while it arrives so a hostile or broken node cannot exhaust memory.
struct BodySink {
  std::string body;
  std::uint64_t limit = 0;
  bool too_large = false;
};

std::size_t write_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* sink = static_cast<BodySink*>(user);
  const std::size_t n = size * count;
  if (n > sink->limit - sink->body.size()) {
    sink->too_large = true;
    return 0;  // anything short of n makes curl abort the transfer
  }
  sink->body.append(data, n);
  return n;
}

// A string field of the node's JSON error {"code", "error", "name"}; empty if there is none.
std::string error_field(const std::string& body, const char* key) {
  const auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return {};
  const auto it = doc.find(key);
  if (it == doc.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

// " (node said: '...')" when the body is the node's JSON error.
std::string node_said(const std::string& body) {
  const std::string error = error_field(body, "error");
  if (error.empty()) return {};
  return " (node said: '" + util::printable(error, kNodeErrorChars) + "')";
}

bool is_json_content_type(std::string_view content_type) {
  std::string lower(content_type);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find("json") != std::string::npos;
}

std::string list_path(const PaymentQuery& query, std::uint32_t page_size,
                      std::optional<std::uint64_t> index_offset) {
  std::string path = "/listpayments?max_payments=" + std::to_string(page_size);
  if (index_offset) path += "&index_offset=" + std::to_string(*index_offset);
  if (query.status) path += "&status=" + std::string(to_string(*query.status));
  if (query.direction) path += "&direction=" + std::string(to_string(*query.direction));
  // The node takes created_after as unsigned; a negative bound filters nothing, like none.
  if (query.created_after && *query.created_after >= 0) {
    path += "&created_after=" + std::to_string(*query.created_after);
  }
  return path;
}

std::string page_context(const std::string& prefix, int number,
                         std::optional<std::uint64_t> index_offset) {
  std::string what = "GET " + prefix + "/listpayments page " + std::to_string(number);
  if (index_offset) what += " (index_offset=" + std::to_string(*index_offset) + ")";
  return what;
}

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// A URL as libcurl parses it (the parser the requests themselves go through).
class ParsedUrl {
 public:
  static std::optional<ParsedUrl> parse(const std::string& url) {
    ParsedUrl parsed;
    if (!parsed.handle_ ||
        curl_url_set(parsed.handle_.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK ||
        parsed.part(CURLUPART_HOST).empty()) {
      return std::nullopt;
    }
    return parsed;
  }
  // The part, or empty when the URL has none.
  std::string part(CURLUPart which) const {
    char* text = nullptr;
    std::string out;
    if (curl_url_get(handle_.get(), which, &text, 0) == CURLUE_OK && text != nullptr) out = text;
    curl_free(text);
    return out;
  }

 private:
  ParsedUrl() = default;
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> handle_{curl_url(), curl_url_cleanup};
};

// The legacy node ignores created_after and returns every payment it has.
void drop_created_before(PaymentPage& page, std::optional<std::int64_t> created_after) {
  if (!created_after) return;
  std::erase_if(page.payments, [&](const NodePayment& p) { return p.created_at < *created_after; });
}

}  // namespace

struct NodeClient::Impl {
  struct Outcome {
    bool ok = false;
    NodeErrorKind kind = NodeErrorKind::Transport;
    bool retry = false;
    std::string message;
  };

  NodeClientOptions options;
  std::string base;    // base_url without trailing '/'
  std::string prefix;  // its path, e.g. "/node" ("" for none), in front of every request path
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl{nullptr, curl_easy_cleanup};
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers{nullptr, curl_slist_free_all};
  // The same lines plus the JSON body's Content-Type, for POST.
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> post_headers{nullptr,
                                                                           curl_slist_free_all};
  BodySink sink;
  char curl_error[CURL_ERROR_SIZE] = {};
  // One request at a time on the handle (with sink and curl_error): a scan fetches its next
  // page on another thread while the caller's page callback runs, which may ask the node too.
  std::mutex handle_mutex;

  explicit Impl(NodeClientOptions opts) : options(std::move(opts)) {
    if (const auto problem = base_url_problem(options.base_url)) {
      throw std::invalid_argument("node URL " + redact_url(options.base_url) + " " + *problem);
    }
    base = options.base_url;
    while (base.back() == '/') base.pop_back();
    // Errors name the request as sent, path prefix included.
    prefix = ParsedUrl::parse(base)->part(CURLUPART_PATH);
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    // A CR or LF would let the token smuggle extra header lines into every request.
    if (std::any_of(options.token.begin(), options.token.end(),
                    [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
      throw std::invalid_argument("node token contains a control character");
    }
    // Checked before libcurl is even set up: the refused request is never attempted.
    if (!options.allow_insecure_http && is_insecure_remote_http(base)) {
      throw NodeError(NodeErrorKind::Transport,
                      "refusing plain http:// to " + redact_url(base) +
                          ", which is not loopback: the token would cross the network in clear "
                          "(use https://, or --allow-insecure-http on a trusted network)");
    }
    sink.limit = options.max_response_bytes;

    init_curl_once();
    curl.reset(curl_easy_init());
    if (!curl) throw NodeError(NodeErrorKind::Transport, "libcurl could not create a handle");

    for (auto* list : {&headers, &post_headers}) {
      append_header(*list, "Accept: application/json");
      if (!options.token.empty()) append_header(*list, "Authorization: Bearer " + options.token);
    }
    append_header(post_headers, "Content-Type: application/json");

    const auto timeout = options.timeout.count();
    const auto connect_timeout = std::min(options.timeout, kMaxConnectTimeout).count();
    const auto max_file = static_cast<curl_off_t>(std::min<std::uint64_t>(
        options.max_response_bytes,
        static_cast<std::uint64_t>(std::numeric_limits<curl_off_t>::max())));
    set(CURLOPT_VERBOSE, 0L);  // verbose output would print the Authorization header
    set(CURLOPT_NOSIGNAL, 1L);
    set(CURLOPT_PROTOCOLS_STR, "http,https");
    set(CURLOPT_USERAGENT, "lsp-sweeper");
    set(CURLOPT_TIMEOUT_MS, static_cast<long>(timeout));
    set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout));
    // Refuses a declared Content-Length over the limit before any of the body is read.
    set(CURLOPT_MAXFILESIZE_LARGE, max_file);
    set(CURLOPT_WRITEFUNCTION, &write_body);
    set(CURLOPT_WRITEDATA, static_cast<void*>(&sink));
    set(CURLOPT_ERRORBUFFER, curl_error);
    // libcurl's defaults, made explicit: no build or environment may turn them off.
    set(CURLOPT_SSL_VERIFYPEER, 1L);
    set(CURLOPT_SSL_VERIFYHOST, 2L);
    if (!options.ca_file.empty()) set(CURLOPT_CAINFO, options.ca_file.c_str());
  }

  template <typename T>
  void set(CURLoption option, T value) {
    const CURLcode rc = curl_easy_setopt(curl.get(), option, value);
    if (rc != CURLE_OK) {
      throw NodeError(NodeErrorKind::Transport, "libcurl refused option " +
                                                    std::to_string(static_cast<int>(option)) +
                                                    ": " + curl_easy_strerror(rc));
    }
  }

  static void append_header(
      std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)>& headers_list,
      const std::string& line) {
    curl_slist* list = curl_slist_append(headers_list.get(), line.c_str());
    if (list == nullptr) throw std::bad_alloc();
    (void)headers_list.release();  // curl_slist_append returned the same list, now one longer
    headers_list.reset(list);
  }

  // Every NodeError leaves through here. The node's error text is untrusted and could echo
  // the request's headers back, so the token is cut out of anything we report.
  NodeError fail(NodeErrorKind kind, std::string message) const {
    const std::string& token = options.token;
    if (!token.empty()) {
      constexpr std::string_view kMask = "<token>";
      for (auto pos = message.find(token); pos != std::string::npos;
           pos = message.find(token, pos + kMask.size())) {
        message.replace(pos, token.size(), kMask);
      }
    }
    return NodeError(kind, message);
  }

  // A GET, or a POST of `post_body` (JSON) when there is one.
  Outcome attempt(const std::string& url, const std::string* post_body) {
    sink.body.clear();
    sink.too_large = false;
    curl_error[0] = '\0';
    set(CURLOPT_URL, url.c_str());
    if (post_body != nullptr) {
      set(CURLOPT_HTTPHEADER, post_headers.get());
      set(CURLOPT_POSTFIELDSIZE, static_cast<long>(post_body->size()));
      set(CURLOPT_POSTFIELDS, post_body->c_str());
    } else {
      set(CURLOPT_HTTPHEADER, headers.get());
      set(CURLOPT_HTTPGET, 1L);
    }
    const CURLcode rc = curl_easy_perform(curl.get());
    if (sink.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
      return {false, NodeErrorKind::Protocol, false,
              "response larger than " + std::to_string(options.max_response_bytes) +
                  " bytes (--max-response-bytes): lower --page-size, or raise "
                  "--max-response-bytes"};
    }
    if (rc != CURLE_OK) {
      std::string cause = curl_error[0] != '\0' ? curl_error : curl_easy_strerror(rc);
      return {false, NodeErrorKind::Transport, retryable(rc), std::move(cause)};
    }

    long status = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status == 401) {
      return {false, NodeErrorKind::Unauthorized, false,
              "node refused the token (401)" + node_said(sink.body)};
    }
    if (status == 403) return forbidden(error_field(sink.body, "name"));
    if (status < 200 || status > 299) {
      const bool retry = retryable_status(status);
      return {false, retry ? NodeErrorKind::Transport : NodeErrorKind::Protocol, retry,
              "HTTP " + std::to_string(status) + node_said(sink.body)};
    }
    const char* content_type = nullptr;
    curl_easy_getinfo(curl.get(), CURLINFO_CONTENT_TYPE, &content_type);
    if (content_type != nullptr && !is_json_content_type(content_type)) {
      return {false, NodeErrorKind::Protocol, false,
              "content type '" + util::printable(content_type) + "' is not JSON"};
    }
    return {true, {}, false, {}};
  }

  // The node's 403s, told apart by the error's name (the node's src/error.rs).
  Outcome forbidden(const std::string& name) const {
    const std::string said = node_said(sink.body);
    if (name == "PaymentNotFound") {
      return {false, NodeErrorKind::NotFound, false, "node does not know this payment (403)"};
    }
    if (name == "LockedNode") {
      return {false, NodeErrorKind::Locked, false,
              "node is locked (403 LockedNode): unlock it (POST /unlock) and rerun" + said};
    }
    if (name == "NotInitialized") {
      return {false, NodeErrorKind::NotInitialized, false,
              "node is not initialised (403 NotInitialized): initialise it (POST /init), unlock "
              "it, and rerun" +
                  said};
    }
    if (name == "ChangingState") {
      return {false, NodeErrorKind::ChangingState, true,
              "the node is changing state (403 ChangingState)" + said};
    }
    return {false, NodeErrorKind::Forbidden, false,
            "HTTP 403 " +
                (name.empty() ? std::string("without an error name")
                              : "'" + util::printable(name, kNodeErrorChars) + "'") +
                said};
  }

  // The body of a successful GET of `path`, or POST of `post_body` to it; `what` names the
  // request in errors. Every request the sweeper makes is a read, so retrying is safe. A node
  // changing state has its own budget: it is not a transport fault, and it is not final.
  std::string request(const std::string& path, const std::string& what,
                      const std::string* post_body = nullptr) {
    const std::lock_guard lock(handle_mutex);
    const int attempts = std::max(1, options.max_attempts);
    const int changing_attempts = std::max(1, options.changing_state_attempts);
    auto backoff = options.first_backoff;
    auto changing_backoff = options.first_changing_backoff;
    for (int transient = 0, changing = 0;;) {
      Outcome outcome = attempt(base + path, post_body);
      if (outcome.ok) return std::move(sink.body);
      if (outcome.kind == NodeErrorKind::ChangingState) {
        if (++changing >= changing_attempts) {
          throw fail(NodeErrorKind::ChangingState,
                     what + ": " + outcome.message + "; still so after " +
                         std::to_string(changing) + " attempts: try again later");
        }
        std::this_thread::sleep_for(changing_backoff);
        changing_backoff = std::min(changing_backoff * 2, kMaxBackoff);
        continue;
      }
      if (!outcome.retry) throw fail(outcome.kind, what + ": " + outcome.message);
      if (++transient >= attempts) {
        throw fail(NodeErrorKind::Transport, what + ": " + outcome.message + "; gave up after " +
                                                 std::to_string(transient) + " attempts");
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }

  PaymentPage fetch_page(const PaymentQuery& query, std::uint32_t page_size,
                         std::optional<std::uint64_t> index_offset, int number) {
    const std::string what = page_context(prefix, number, index_offset);
    const std::string body = request(list_path(query, page_size, index_offset), what);
    try {
      return decode_list_payments(body);
    } catch (const DecodeError& e) {
      throw fail(NodeErrorKind::Protocol, what + ": " + e.what());
    }
  }
};

NodeClient::NodeClient(NodeClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

NodeClient::~NodeClient() = default;

std::int64_t NodeClient::current_height() {
  const std::string what = "GET " + impl_->prefix + "/networkinfo";
  const std::string body = impl_->request("/networkinfo", what);
  try {
    return decode_network_height(body);
  } catch (const DecodeError& e) {
    throw impl_->fail(NodeErrorKind::Protocol, what + ": " + e.what());
  }
}

ScanStats NodeClient::scan(const PaymentQuery& query, std::uint32_t page_size,
                           const PageSink& on_page) {
  // The node reads max_payments=0 as its default of 100, which would break the full-page test.
  if (page_size == 0) throw std::invalid_argument("page_size must be positive");
  ScanStats stats;
  std::optional<std::uint64_t> cursor;  // absent: start from the newest payment
  // The next page, asked for while on_page handles this one: at most one page ahead, and only
  // once this page's cursor says the scan goes on. Its error, if any, surfaces from get(),
  // where fetching it serially would have thrown.
  std::future<PaymentPage> ahead;
  for (int number = 1;; ++number) {
    PaymentPage page =
        ahead.valid() ? ahead.get() : impl_->fetch_page(query, page_size, cursor, number);
    // Counts every page fetched, the empty one that ends a scan included: it is a request
    // the node answered.
    ++stats.pages;
    if (number == 1) {
      stats.dialect = page.dialect;
    } else if (page.dialect != Dialect::Paginated) {
      throw impl_->fail(NodeErrorKind::Protocol, page_context(impl_->prefix, number, cursor) +
                                                     ": response has no cursors although page 1 "
                                                     "had them (node changed dialect mid-scan)");
    }

    if (page.dialect == Dialect::Legacy) {
      drop_created_before(page, query.created_after);
      if (!page.payments.empty() || !page.rejected.empty()) on_page(page);
      return stats;
    }
    const std::size_t items = page.payments.size() + page.rejected.size();
    if (items == 0) return stats;

    // Read before on_page, which may move the page's contents away.
    const std::uint64_t next = page.last_index_offset;
    if (next != 0 && cursor && next >= *cursor) {
      // The cursor is exclusive, so this page contradicts the request that produced it; it is
      // not delivered.
      throw impl_->fail(NodeErrorKind::CursorRegressed,
                        page_context(impl_->prefix, number, cursor) + ": last_index_offset " +
                            std::to_string(next) + " is not below index_offset " +
                            std::to_string(*cursor) + "; stopping rather than looping");
    }
    if (next != 0) {
      // If on_page throws, the future's destructor waits for this request and drops its result.
      ahead = std::async(std::launch::async, [this, &query, page_size, next, number] {
        return impl_->fetch_page(query, page_size, next, number + 1);
      });
    }
    on_page(page);
    if (next == 0) {
      // 0 means "start again from the newest": the rest of the unindexed payments, if any,
      // cannot be reached.
      stats.stopped_at_unindexed = items >= page_size;
      return stats;
    }
    cursor = next;
  }
}

std::optional<SinglePayment> NodeClient::get_payment(const std::string& payment_hash,
                                                     PaymentType type) {
  const std::string what = "POST " + impl_->prefix + "/getpayment (" +
                           util::printable(payment_hash, 64) + ", " + std::string(to_string(type)) +
                           ")";
  const std::string request =
      nlohmann::json{{"payment_hash", payment_hash}, {"payment_type", to_string(type)}}.dump();
  std::string body;
  try {
    body = impl_->request("/getpayment", what, &request);
  } catch (const NodeError& e) {
    if (e.kind == NodeErrorKind::NotFound) return std::nullopt;
    throw;
  }
  SinglePayment single;
  try {
    single = decode_get_payment(body);
  } catch (const DecodeError& e) {
    throw impl_->fail(NodeErrorKind::Protocol, what + ": " + e.what());
  }
  // An answer about another payment must not be planned against this hash's records.
  const auto& p = single.payment;
  const bool wrong_leg =
      p && ((type == PaymentType::Outbound) != (p->type == PaymentType::Outbound));
  if (single.dialect == Dialect::Paginated && p &&
      (p->payment_hash != util::normalize_hex32(payment_hash) || wrong_leg)) {
    throw impl_->fail(NodeErrorKind::Protocol, what + ": the node answered about " +
                                                   std::string(to_string(p->type)) + " payment " +
                                                   p->payment_hash);
  }
  return single;
}

Dialect NodeClient::dialect() { return impl_->fetch_page({}, 1, std::nullopt, 1).dialect; }

bool matches(const PaymentQuery& query, const NodePayment& payment) {
  return (!query.status || payment.status == *query.status) &&
         (!query.direction || payment.direction() == *query.direction) &&
         (!query.created_after || payment.created_at >= *query.created_after);
}

std::optional<std::string> http_url_problem(const std::string& url) {
  if (url.empty()) return "is empty";
  const std::string lower = lowercase(url.substr(0, 8));
  if (!lower.starts_with("http://") && !lower.starts_with("https://")) {
    return "must start with http:// or https://";
  }
  if (!ParsedUrl::parse(url)) return "cannot be parsed as a URL with a host";
  return std::nullopt;
}

std::optional<std::string> base_url_problem(const std::string& url) {
  if (auto problem = http_url_problem(url)) return problem;
  const auto parsed = ParsedUrl::parse(url);
  if (!parsed->part(CURLUPART_QUERY).empty() || !parsed->part(CURLUPART_FRAGMENT).empty() ||
      url.find_first_of("?#") != std::string::npos) {
    return "must have no query (?...) or fragment (#...): request paths are appended to it";
  }
  return std::nullopt;
}

bool is_insecure_remote_http(const std::string& url) {
  const auto parsed = ParsedUrl::parse(url);
  if (!parsed) throw std::invalid_argument("URL cannot be parsed: " + redact_url(url));
  if (lowercase(parsed->part(CURLUPART_SCHEME)) != "http") return false;
  const std::string host = lowercase(parsed->part(CURLUPART_HOST));
  // An IPv4 address in 127.0.0.0/8, not a name that merely starts with "127.".
  in_addr v4{};
  const bool loopback_v4 = inet_pton(AF_INET, host.c_str(), &v4) == 1 && host.starts_with("127.");
  return !(host == "localhost" || host == "[::1]" || loopback_v4);
}

std::string redact_url(const std::string& url) {
  const auto scheme_end = url.find("://");
  const std::size_t start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  const std::size_t end = std::min(url.find_first_of("/?#", start), url.size());
  const auto at = url.substr(start, end - start).rfind('@');
  if (at == std::string::npos) return url;
  return url.substr(0, start) + url.substr(start + at + 1);
}

}  // namespace lsp_sweeper::node
