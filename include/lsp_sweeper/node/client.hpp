// The node's REST API as the sweeper needs it: the current height and a paged, filtered scan
// of payments. PaymentSource is the seam the run loop is tested through; NodeClient is the
// real thing (libcurl).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "lsp_sweeper/domain.hpp"
#include "lsp_sweeper/node/decode.hpp"

namespace lsp_sweeper::node {

// Why a request to the node failed, after any retries. The node answers 403 for several
// things, told apart by the error's `name` (its src/error.rs): each has its own kind.
enum class NodeErrorKind {
  Unauthorized,     // 401: the token was refused
  Locked,           // 403 LockedNode: a person must unlock the node
  NotInitialized,   // 403 NotInitialized: a person must initialise (and unlock) the node
  ChangingState,    // 403 ChangingState, still so after NodeClientOptions' retries
  Forbidden,        // any other 403 (e.g. Forbidden: the token may not use this endpoint)
  Transport,        // connection, timeout, TLS, 5xx after retries
  Protocol,         // a body we cannot use: bad JSON, too large, wrong content type
  CursorRegressed,  // the pagination cursor did not strictly decrease
  NotFound          // 403 named PaymentNotFound: the node does not know the payment asked for
};

struct NodeError : std::runtime_error {
  NodeError(NodeErrorKind error_kind, const std::string& message)
      : std::runtime_error(message), kind(error_kind) {}
  NodeErrorKind kind;
};

// One filtered listing. Each filter is sent as a query parameter in the paginated dialect;
// the legacy dialect ignores them all and returns every payment at once.
struct PaymentQuery {
  std::optional<NodeStatus> status;
  std::optional<Direction> direction;
  std::optional<std::int64_t> created_after;  // unix seconds, inclusive
};

// Whether `payment` is one the listing `query` returns, as the node filters it; lets
// payments fetched one by one be held to the same filters.
bool matches(const PaymentQuery& query, const NodePayment& payment);

struct ScanStats {
  Dialect dialect = Dialect::Paginated;
  int pages = 0;
  // True when the scan stopped at a page whose last_index_offset was 0 (payments stored
  // before the node had an index) while the page was full: older payments may exist that the
  // cursor cannot reach.
  bool stopped_at_unindexed = false;
};

using PageSink = std::function<void(PaymentPage&)>;

class PaymentSource {
 public:
  virtual ~PaymentSource() = default;
  virtual std::int64_t current_height() = 0;
  // Calls on_page once per page, newest first, and follows the cursor only while it strictly
  // decreases. Throws NodeError when a request fails for good.
  virtual ScanStats scan(const PaymentQuery& query, std::uint32_t page_size,
                         const PageSink& on_page) = 0;
  // POST /getpayment: the payment with this hash of this type (Outbound, or an inbound one),
  // or nothing when the node does not know it. A legacy node ignores the type: its answer
  // says so in `dialect` and is otherwise unchecked. Throws NodeError as scan does.
  virtual std::optional<SinglePayment> get_payment(const std::string& payment_hash,
                                                   PaymentType type) = 0;
  // The dialect, from one GET /listpayments?max_payments=1: a page from a paginated node, the
  // whole history from a legacy one (which ignores the query).
  virtual Dialect dialect() = 0;
};

struct NodeClientOptions {
  std::string base_url;  // e.g. http://127.0.0.1:3001 (no trailing slash needed)
  std::string token;     // bearer token; never logged
  std::chrono::milliseconds timeout{30000};
  int max_attempts = 4;  // per request (each is a read), including the first
  std::chrono::milliseconds first_backoff{200};
  // A node being locked or unlocked answers 403 ChangingState for a moment: asked again this
  // many times in all, waiting first_changing_backoff, then twice as long each time (1 + 2 +
  // 4 + 8 s by default), before the request fails with ChangingState.
  int changing_state_attempts = 5;
  std::chrono::milliseconds first_changing_backoff{1000};
  std::uint64_t max_response_bytes = 64ull * 1024 * 1024;
  // PEM file of the CA(s) that sign the node's certificate; empty: the system's store.
  // Certificates and host names are always verified.
  std::string ca_file{};
  // Plain http:// to a host other than loopback sends the token in clear: refused unless set.
  bool allow_insecure_http = false;
};

class NodeClient final : public PaymentSource {
 public:
  explicit NodeClient(NodeClientOptions options);
  ~NodeClient() override;
  NodeClient(const NodeClient&) = delete;
  NodeClient& operator=(const NodeClient&) = delete;

  std::int64_t current_height() override;
  // While on_page handles a page (on the calling thread), the next one is already being
  // fetched and decoded on another: one page ahead at most, and only when this page's cursor
  // says the scan goes on, so the requests are those of a serial scan, in the same order. If
  // on_page throws, its exception surfaces once that one request is over. Requests never
  // overlap: on_page may use this client too, it then waits its turn for the connection.
  ScanStats scan(const PaymentQuery& query, std::uint32_t page_size,
                 const PageSink& on_page) override;
  std::optional<SinglePayment> get_payment(const std::string& payment_hash,
                                           PaymentType type) override;
  Dialect dialect() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Why `url` cannot be used as an http(s) URL, or nothing: it must start with http:// or
// https:// and parse, with a host. The reason never quotes the URL (a webhook's is secret).
std::optional<std::string> http_url_problem(const std::string& url);

// Why `url` cannot be the node's base URL, or nothing: an http(s) URL as above, without a
// query or fragment, since request paths are appended to it (an optional path prefix, e.g.
// https://gw.internal/node, is kept in front of them).
std::optional<std::string> base_url_problem(const std::string& url);

// True when `url` is http:// (not https://) to a host other than loopback (localhost,
// 127.0.0.0/8, ::1). Throws std::invalid_argument for a URL that cannot be parsed.
bool is_insecure_remote_http(const std::string& url);

// The URL with any user:password@ part removed, for logs and reports.
std::string redact_url(const std::string& url);

}  // namespace lsp_sweeper::node
