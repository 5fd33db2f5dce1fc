// NodeClient against a scripted HTTP server on 127.0.0.1, in process. The server answers with
// exact bytes (a short body, a dropped connection, a stalled reply), which a real HTTP server
// library would not let a test produce.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lsp_sweeper/node/client.hpp"

namespace lsp_sweeper::node {
namespace {

using namespace std::chrono_literals;

constexpr const char* kToken = "s3cret-token";

struct Reply {
  Reply(std::string raw) : bytes(std::move(raw)) {}  // NOLINT: implicit, most replies are bytes
  std::string bytes;                                 // sent as is
  bool close = false;                                // close the connection once sent
  bool hang = false;                                 // read the request and never answer
};

Reply closing(std::string bytes) {
  Reply r(std::move(bytes));
  r.close = true;
  return r;
}

Reply hanging() {
  Reply r("");
  r.hang = true;
  return r;
}

class ScriptedServer {
 public:
  // One reply per request, in order. A request beyond the script gets a 599 no test expects.
  explicit ScriptedServer(std::vector<Reply> replies) : replies_(replies.begin(), replies.end()) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listener_, 8) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot listen on 127.0.0.1");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }

  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  int connections() const { return connections_; }

  std::vector<std::string> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  // Waits for `fd` to become readable, giving up when the server stops.
  bool wait_readable(int fd) const {
    pollfd p{fd, POLLIN, 0};
    while (!stop_) {
      if (::poll(&p, 1, 20) > 0) return true;
    }
    return false;
  }

  void serve() {
    while (wait_readable(listener_)) {
      const int conn = ::accept(listener_, nullptr, nullptr);
      if (conn < 0) continue;
      ++connections_;
      handle(conn);
      ::close(conn);
    }
  }

  // Answers requests on one connection until the client or the script closes it.
  void handle(int conn) {
    std::string buffer;
    for (;;) {
      std::size_t end;
      while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
        char chunk[4096];
        if (!wait_readable(conn)) return;
        const ssize_t n = ::recv(conn, chunk, sizeof chunk, 0);
        if (n <= 0) return;
        buffer.append(chunk, static_cast<std::size_t>(n));
      }
      Reply reply("HTTP/1.1 599 Unscripted\r\nContent-Length: 0\r\n\r\n");
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(buffer.substr(0, end));
        if (!replies_.empty()) {
          reply = replies_.front();
          replies_.pop_front();
        }
      }
      buffer.erase(0, end + 4);
      if (reply.hang) {
        char sink[256];
        while (wait_readable(conn) && ::recv(conn, sink, sizeof sink, 0) > 0) {
        }
        return;
      }
      if (::send(conn, reply.bytes.data(), reply.bytes.size(), MSG_NOSIGNAL) < 0) return;
      if (reply.close) return;
    }
  }

  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mutex_;
  std::deque<Reply> replies_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

std::string http(int status, const std::string& body,
                 const std::string& content_type = "application/json") {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " X\r\n";
  if (!content_type.empty()) head += "Content-Type: " + content_type + "\r\n";
  return head + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string payment(const std::string& hash_digit, int created_at) {
  return R"({"payment_hash":")" + std::string(64, hash_digit[0]) +
         R"(","payment_type":"InboundHodl","status":"Claimable","amt_msat":1000,"created_at":)" +
         std::to_string(created_at) + R"(,"updated_at":)" + std::to_string(created_at) +
         R"(,"payee_pubkey":"02"})";
}

std::string page(const std::vector<std::string>& payments, int first, int last) {
  std::string list;
  for (const auto& p : payments) list += (list.empty() ? "" : ",") + p;
  return http(200, R"({"payments":[)" + list + R"(],"first_index_offset":)" +
                       std::to_string(first) + R"(,"last_index_offset":)" + std::to_string(last) +
                       "}");
}

std::string legacy_page(const std::vector<std::string>& payments) {
  std::string list;
  for (const auto& p : payments) list += (list.empty() ? "" : ",") + p;
  return http(200, R"({"payments":[)" + list + "]}");
}

std::string legacy_payment(const std::string& hash_digit, int created_at) {
  return R"({"payment_hash":")" + std::string(64, hash_digit[0]) +
         R"(","inbound":true,"status":"Succeeded","amt_msat":1000,"created_at":)" +
         std::to_string(created_at) + R"(,"updated_at":)" + std::to_string(created_at) +
         R"(,"payee_pubkey":"02"})";
}

NodeClientOptions options_for(const ScriptedServer& server) {
  NodeClientOptions o;
  o.base_url = server.base_url();
  o.token = kToken;
  o.timeout = 2000ms;
  o.max_attempts = 3;
  o.first_backoff = 1ms;
  return o;
}

std::string request_line(const std::string& request) {
  return request.substr(0, request.find("\r\n"));
}

// Runs `call` expecting a NodeError of `kind`; returns its message.
template <typename F>
std::string expect_node_error(F call, NodeErrorKind kind) {
  try {
    call();
  } catch (const NodeError& e) {
    EXPECT_EQ(static_cast<int>(e.kind), static_cast<int>(kind)) << e.what();
    EXPECT_EQ(std::string(e.what()).find(kToken), std::string::npos) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no NodeError";
  return {};
}

TEST(NodeClientHttp, HeightRequestCarriesTokenAndAcceptsTrailingSlash) {
  ScriptedServer server({http(200, R"({"network":"Regtest","height":805434})")});
  NodeClientOptions o = options_for(server);
  o.base_url += "/";
  NodeClient client(o);
  EXPECT_EQ(client.current_height(), 805434);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(request_line(requests[0]), "GET /networkinfo HTTP/1.1");
  EXPECT_NE(requests[0].find("\r\nAuthorization: Bearer s3cret-token"), std::string::npos);
  EXPECT_NE(requests[0].find("\r\nAccept: application/json"), std::string::npos);
}

TEST(NodeClientHttp, APathPrefixIsSentAndNamedInErrors) {
  ScriptedServer server({http(200, R"({"height":805434})"), http(404, "{}")});
  NodeClientOptions o = options_for(server);
  o.base_url += "/node/";
  NodeClient client(o);
  EXPECT_EQ(client.current_height(), 805434);
  const std::string message =
      expect_node_error([&] { client.current_height(); }, NodeErrorKind::Protocol);
  EXPECT_EQ(message, "GET /node/networkinfo: HTTP 404");
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(request_line(requests[0]), "GET /node/networkinfo HTTP/1.1");
}

TEST(NodeClientUrl, BaseUrlMustBeHttpWithAHostAndNoQueryOrFragment) {
  EXPECT_EQ(base_url_problem("http://127.0.0.1:3001"), std::nullopt);
  EXPECT_EQ(base_url_problem("https://node.internal:3001/api/"), std::nullopt);
  EXPECT_EQ(base_url_problem("HTTPS://node.internal"), std::nullopt);
  EXPECT_EQ(base_url_problem(""), "is empty");
  for (const char* url : {"127.0.0.1:3001", "node.internal", "ftp://node.internal", "file:///x"}) {
    EXPECT_EQ(base_url_problem(url), "must start with http:// or https://") << url;
  }
  EXPECT_EQ(base_url_problem("http://"), "cannot be parsed as a URL with a host");
  for (const char* url : {"http://h/?x=1", "http://h/#top", "http://h?", "http://h/api#"}) {
    EXPECT_EQ(base_url_problem(url),
              "must have no query (?...) or fragment (#...): request paths are appended to it")
        << url;
  }
  // A webhook may carry a query; it is still an http(s) URL.
  EXPECT_EQ(http_url_problem("https://hooks.example/x?token=1"), std::nullopt);
  EXPECT_EQ(http_url_problem("hooks.example/x"), "must start with http:// or https://");
}

TEST(NodeClientUrl, ClientRefusesWhatTheCommandLineRefuses) {
  NodeClientOptions o;
  o.base_url = "http://127.0.0.1:1/?x=1";
  EXPECT_THROW(NodeClient{o}, std::invalid_argument);
}

TEST(NodeClientHttp, PaginatedScanFollowsCursorUntilEmptyPage) {
  ScriptedServer server({page({payment("a", 300), payment("b", 290)}, 100, 51),
                         page({payment("c", 280)}, 50, 10), page({}, 0, 0)});
  NodeClient client(options_for(server));
  PaymentQuery query;
  query.status = NodeStatus::Claimable;
  query.direction = Direction::Inbound;
  query.created_after = 100;
  std::vector<std::size_t> sizes;
  const ScanStats stats =
      client.scan(query, 2, [&](PaymentPage& p) { sizes.push_back(p.payments.size()); });

  EXPECT_EQ(sizes, (std::vector<std::size_t>{2, 1}));
  EXPECT_EQ(stats.dialect, Dialect::Paginated);
  EXPECT_EQ(stats.pages, 3);
  EXPECT_FALSE(stats.stopped_at_unindexed);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(request_line(requests[0]),
            "GET /listpayments?max_payments=2&status=Claimable&direction=Inbound&created_after=100 "
            "HTTP/1.1");
  EXPECT_NE(request_line(requests[1]).find("index_offset=51"), std::string::npos);
  EXPECT_NE(request_line(requests[2]).find("index_offset=10"), std::string::npos);
}

TEST(NodeClientHttp, ZeroCursorStopsAndFlagsOnlyAFullPage) {
  for (const bool full : {true, false}) {
    SCOPED_TRACE(full ? "full page" : "short page");
    std::vector<std::string> payments = {payment("a", 300)};
    if (full) payments.push_back(payment("b", 290));
    ScriptedServer server({page(payments, 5, 0)});
    NodeClient client(options_for(server));
    int calls = 0;
    const ScanStats stats = client.scan({}, 2, [&](PaymentPage&) { ++calls; });
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(stats.pages, 1);
    EXPECT_EQ(stats.stopped_at_unindexed, full);
    EXPECT_EQ(server.requests().size(), 1u);
  }
}

TEST(NodeClientHttp, CursorThatDoesNotDecreaseIsAnError) {
  ScriptedServer server(
      {page({payment("a", 300)}, 60, 51), page({payment("a", 300)}, 60, 51), page({}, 0, 0)});
  NodeClient client(options_for(server));
  int calls = 0;
  const std::string message = expect_node_error(
      [&] { client.scan({}, 1, [&](PaymentPage&) { ++calls; }); }, NodeErrorKind::CursorRegressed);
  EXPECT_EQ(calls, 1);
  EXPECT_NE(message.find("page 2"), std::string::npos) << message;
  EXPECT_NE(message.find("last_index_offset 51 is not below index_offset 51"), std::string::npos)
      << message;
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST(NodeClientHttp, LegacyScanIsOnePageFilteredByCreatedAfter) {
  ScriptedServer server(
      {legacy_page({legacy_payment("a", 150), legacy_payment("b", 50), legacy_payment("c", 100)})});
  NodeClient client(options_for(server));
  PaymentQuery query;
  query.created_after = 100;
  query.status = NodeStatus::Pending;  // ignored by the node and not applied by the client
  std::vector<std::int64_t> created;
  const ScanStats stats = client.scan(query, 1, [&](PaymentPage& p) {
    for (const auto& payment : p.payments) created.push_back(payment.created_at);
  });
  EXPECT_EQ(stats.dialect, Dialect::Legacy);
  EXPECT_EQ(stats.pages, 1);
  EXPECT_EQ(created, (std::vector<std::int64_t>{150, 100}));
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(NodeClientHttp, TransientFailuresAreRetried) {
  const std::string truncated =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"he";
  ScriptedServer server({http(503, R"({"code":503,"error":"busy","name":"Busy"})"), closing(""),
                         closing(truncated), http(200, R"({"height":7})")});
  NodeClientOptions o = options_for(server);
  o.max_attempts = 4;
  NodeClient client(o);
  EXPECT_EQ(client.current_height(), 7);
  EXPECT_EQ(server.requests().size(), 4u);
}

TEST(NodeClientHttp, GivesUpAfterMaxAttemptsNamingTheRequest) {
  const std::string busy =
      http(502, R"({"code":502,"error":"upstream said Bearer s3cret-token","name":"X"})");
  ScriptedServer server({busy, busy, busy, http(200, R"({"height":7})")});
  NodeClient client(options_for(server));
  const std::string message = expect_node_error([&] { client.scan({}, 10, [](PaymentPage&) {}); },
                                                NodeErrorKind::Transport);
  EXPECT_NE(message.find("/listpayments page 1"), std::string::npos) << message;
  EXPECT_NE(message.find("HTTP 502"), std::string::npos) << message;
  EXPECT_NE(message.find("upstream said"), std::string::npos) << message;
  EXPECT_NE(message.find("3 attempts"), std::string::npos) << message;
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(NodeClientHttp, TimeoutIsATransportError) {
  ScriptedServer server({hanging(), hanging()});
  NodeClientOptions o = options_for(server);
  o.timeout = 200ms;
  o.max_attempts = 2;
  NodeClient client(o);
  const std::string message =
      expect_node_error([&] { client.current_height(); }, NodeErrorKind::Transport);
  EXPECT_NE(message.find("GET /networkinfo"), std::string::npos) << message;
  EXPECT_NE(message.find("2 attempts"), std::string::npos) << message;
}

TEST(NodeClientHttp, FinalAnswersAreNotRetried) {
  struct Case {
    std::string reply;
    NodeErrorKind kind;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {http(401, R"({"code":401,"error":"Unauthorized","name":"Unauthorized"})"),
       NodeErrorKind::Unauthorized, "node refused the token (401)"},
      {http(403, R"({"code":403,"error":"Node is locked","name":"LockedNode"})"),
       NodeErrorKind::Locked,
       "node is locked (403 LockedNode): unlock it (POST /unlock) and rerun (node said: 'Node is "
       "locked')"},
      {http(403, R"j({"code":403,"error":"Wallet has not been initialized (hint: call init)",)j"
                 R"("name":"NotInitialized"})"),
       NodeErrorKind::NotInitialized,
       "node is not initialised (403 NotInitialized): initialise it (POST /init), unlock it, and "
       "rerun"},
      {http(403, R"({"code":403,"error":"You don't have access to this resource",)"
                 R"("name":"Forbidden"})"),
       NodeErrorKind::Forbidden, "HTTP 403 'Forbidden' (node said: 'You don't have access"},
      // Any other 403 stays an error of its own, never taken for a lock or for "not found".
      {http(403, R"({"code":403,"error":"Node is unlocked","name":"UnlockedNode"})"),
       NodeErrorKind::Forbidden, "HTTP 403 'UnlockedNode'"},
      {http(403, "{}"), NodeErrorKind::Forbidden, "HTTP 403 without an error name"},
      {http(404, "not found", "text/plain"), NodeErrorKind::Protocol, "HTTP 404"},
      {http(400, R"({"code":400,"error":"bad \u0000 input","name":"X"})"), NodeErrorKind::Protocol,
       "node said: 'bad ? input'"},
      {http(501, "{}"), NodeErrorKind::Protocol, "HTTP 501"},
      {http(200, "<html></html>", "text/html"), NodeErrorKind::Protocol,
       "content type 'text/html' is not JSON"},
      {http(200, "not json"), NodeErrorKind::Protocol, "body is not JSON"},
      {http(200, R"({"payments":{}})"), NodeErrorKind::Protocol, "page 1"},
      {http(200, R"({"payments":[],"first_index_offset":-1,"last_index_offset":0})"),
       NodeErrorKind::Protocol, "first_index_offset is negative"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.message_part);
    ScriptedServer server({c.reply, c.reply});
    NodeClient client(options_for(server));
    const std::string message =
        expect_node_error([&] { client.scan({}, 10, [](PaymentPage&) {}); }, c.kind);
    EXPECT_NE(message.find(c.message_part), std::string::npos) << message;
    EXPECT_EQ(server.requests().size(), 1u);
  }
}

std::string changing_state() {
  return http(403, R"({"code":403,"error":"Cannot call other APIs while node is changing state",)"
                   R"("name":"ChangingState"})");
}

TEST(NodeClientHttp, ChangingStateIsRetriedWithBackoffThenGivesUp) {
  ScriptedServer server(
      {changing_state(), changing_state(), changing_state(), http(200, R"({"height":7})")});
  NodeClientOptions o = options_for(server);
  o.changing_state_attempts = 3;
  o.first_changing_backoff = 40ms;
  NodeClient client(o);
  const auto started = std::chrono::steady_clock::now();
  const std::string message =
      expect_node_error([&] { client.current_height(); }, NodeErrorKind::ChangingState);
  // 40 ms, then 80 ms: the wait doubles.
  EXPECT_GE(std::chrono::steady_clock::now() - started, 120ms);
  EXPECT_EQ(message,
            "GET /networkinfo: the node is changing state (403 ChangingState) (node said: 'Cannot "
            "call other APIs while node is changing state'); still so after 3 attempts: try "
            "again later");
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(NodeClientHttp, ChangingStateHasItsOwnBudgetApartFromTransportRetries) {
  // Two transport attempts at most, yet four ChangingState answers in between are waited out.
  ScriptedServer server({changing_state(), http(503, "{}"), changing_state(), changing_state(),
                         changing_state(), http(200, R"({"height":7})")});
  NodeClientOptions o = options_for(server);
  o.max_attempts = 2;
  o.changing_state_attempts = 5;
  o.first_changing_backoff = 1ms;
  NodeClient client(o);
  EXPECT_EQ(client.current_height(), 7);
  EXPECT_EQ(server.requests().size(), 6u);
}

TEST(NodeClientHttp, GetPaymentTellsNotFoundFromALock) {
  const std::string hash(64, 'a');
  ScriptedServer server(
      {http(403, R"({"code":403,"error":"Payment not found: )" + hash +
                     R"(","name":"PaymentNotFound"})"),
       http(403,
            R"j({"code":403,"error":"Node is locked (hint: call unlock)","name":"LockedNode"})j"),
       http(403, R"({"code":403,"error":"x","name":"NotInitialized"})")});
  NodeClient client(options_for(server));
  EXPECT_EQ(client.get_payment(hash, PaymentType::Outbound), std::nullopt);
  expect_node_error([&] { client.get_payment(hash, PaymentType::Outbound); },
                    NodeErrorKind::Locked);
  expect_node_error([&] { client.get_payment(hash, PaymentType::InboundHodl); },
                    NodeErrorKind::NotInitialized);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(NodeClientHttp, ResponseLargerThanLimitIsRefused) {
  const std::string body = R"({"height":805434,"padding":")" + std::string(4096, 'x') + "\"}";
  const std::string chunked =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n" +
      [&] {
        char size[16];
        std::snprintf(size, sizeof size, "%zx", body.size());
        return std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n";
      }();
  for (const std::string& reply : {http(200, body), chunked}) {
    SCOPED_TRACE(reply.substr(0, reply.find("\r\n\r\n")));
    ScriptedServer server({reply, reply});
    NodeClientOptions o = options_for(server);
    o.max_response_bytes = 1024;
    NodeClient client(o);
    const std::string message =
        expect_node_error([&] { client.current_height(); }, NodeErrorKind::Protocol);
    EXPECT_NE(message.find("response larger than 1024 bytes (--max-response-bytes): lower "
                           "--page-size, or raise --max-response-bytes"),
              std::string::npos)
        << message;
    EXPECT_EQ(server.requests().size(), 1u);
  }
}

TEST(NodeClientHttp, ConnectionIsReusedAcrossPages) {
  ScriptedServer server({page({payment("a", 300)}, 60, 51), page({}, 0, 0)});
  NodeClient client(options_for(server));
  client.scan({}, 1, [](PaymentPage&) {});
  EXPECT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(server.connections(), 1);
}

TEST(NodeClientMatches, AFetchedPaymentIsHeldToAListingsFilters) {
  NodePayment p;
  p.type = PaymentType::InboundAutoClaim;
  p.status = NodeStatus::Failed;
  p.created_at = 1000;
  EXPECT_TRUE(node::matches({}, p));
  EXPECT_TRUE(node::matches({NodeStatus::Failed, std::nullopt, 1000}, p));  // inclusive
  EXPECT_FALSE(node::matches({NodeStatus::Failed, std::nullopt, 1001}, p));
  EXPECT_TRUE(node::matches({NodeStatus::Failed, Direction::Inbound, -5}, p));
  EXPECT_FALSE(node::matches({NodeStatus::Failed, Direction::Outbound, std::nullopt}, p));
  EXPECT_FALSE(node::matches({NodeStatus::Cancelled, std::nullopt, std::nullopt}, p));
}

}  // namespace
}  // namespace lsp_sweeper::node
