// A stand-in for utexo-lsp's two payment callback endpoints, POST /internal/async_order/claimable
// and POST /internal/async_order/payment_sent, over the LSP's real tables (its SQLite file, or
// the PostgreSQL form of them): each answer, error text and database write is the one the LSP's
// Go handlers make (README.md beside this file says which function each part reproduces). It
// is the LSP's HTTP contract for a sweeper that replays missed callbacks, not a mock of the
// sweeper: it knows nothing of the sweeper, and fault injection plays a failing LSP or a proxy.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace lsp_sim {

inline constexpr const char* kClaimablePath = "/internal/async_order/claimable";
inline constexpr const char* kPaymentSentPath = "/internal/async_order/payment_sent";

struct Options {
  std::string db_url;      // `sqlite:PATH` (the LSP's SQLite file) or a libpq connection string
  std::string token;       // APAY_BEARER_TOKEN; empty answers every request 401, as the LSP does
  std::string node_url;    // the node whose GET /networkinfo gives the height; empty: none (503)
  std::string node_token;  // the node's bearer token
  std::uint64_t min_final_cltv_expiry_delta = 144;  // APAY_INBOUND_MIN_FINAL_CLTV_EXPIRY_DELTA
  bool lightning_send_enabled = true;               // LIGHTNING_SEND_ENABLED (relay flow)
};

class Server {
 public:
  // Listens on 127.0.0.1, a free port (or `port`), in its own thread, once constructed. Throws
  // std::invalid_argument for options the LSP would refuse to start with (a delta of 1..41),
  // std::runtime_error when the database cannot be opened or the port bound.
  explicit Server(Options options, std::uint16_t port = 0);
  ~Server();  // stops
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::string url() const;  // http://127.0.0.1:PORT

  // The next `count` requests to `path` (one of the two above) get `status` with
  // {"error": error}, before authentication and without touching the database, as a failing
  // LSP or a proxy would answer.
  void fail_next(const std::string& path, int status, int count = 1,
                 const std::string& error = "injected");
  // Every later request to `path` waits `delay` before it is handled (0 ends it).
  void set_delay(const std::string& path, std::chrono::milliseconds delay);
  // The LSP goes down: the port closes; in-flight requests finish. Idempotent.
  void stop();

  // Runs on each request that passed authentication, before the handler decodes it or runs
  // any statement: a test delivers the node's live callback first (a race), or moves a record.
  // It may call this server (the pool has threads to spare).
  void before_handling(std::function<void(const std::string& path, const std::string& body)> hook);

  // Every request received, in total or to one path, whatever its answer (counted on arrival).
  std::size_t request_count(const std::string& path = "") const;
  struct Request {
    std::string path, body, authorization;
    int status = 0;
    std::string answer;  // the body answered
  };
  // The answered requests, in the order they were answered; each is there before its answer
  // leaves.
  std::vector<Request> requests() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lsp_sim
