// A stand-in for the RGB Lightning Node's REST API (GET /listpayments, POST /getpayment,
// GET /networkinfo) over real HTTP, in either dialect of the contract (shared/rln/openapi.yaml
// and openapi-legacy.yaml), including the real node's quirks: the index-0 cursor trap, the
// same hash once per direction, hex in any case. It knows only the node's public API, so the
// client under test cannot lean on anything a real node would not give it.
//
// Payments are kept as the node's wire JSON and served verbatim: a scenario can hold any
// malformed payment (bad hex, negative or huge amounts, wrong types) and the simulator never
// fixes it. It reads only the few fields it needs to filter and sort, and a field of the
// wrong type there simply never matches a filter.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace lsp_sweeper::sim {

enum class Dialect { Paginated, Legacy };

// One payment as the node stores it.
struct StoredPayment {
  // The node's storage index; 0 for payments stored before the node had an index.
  std::uint64_t index = 0;
  // The paginated dialect's wire object (or any JSON value, to test a client against
  // garbage), with the simulator-only keys already removed.
  nlohmann::json wire;
};

struct Scenario {
  Dialect dialect = Dialect::Paginated;
  std::string network = "Regtest";
  std::int64_t height = 800000;
  bool locked = false;  // answer every request 403 LockedNode
  std::vector<StoredPayment> payments;
};

// Thrown for a scenario the simulator cannot load (a mistake of its author, not a malformed
// payment: those are served as they are).
struct ScenarioError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The "payments" array of a scenario. Each entry is served as written except for the
// simulator-only keys, which are removed:
//   "index"        the storage index (unsigned); absent: one above the highest index of the
//                  entries before it, so a file listed oldest first gets 1, 2, 3, ...
//   "created_ago"  seconds before `now`, written into created_at
//   "updated_ago"  seconds before `now`, written into updated_at
//   "label"        a name for the reader of the file (the README's letters), never served
std::vector<StoredPayment> parse_payments(const nlohmann::json& payments, std::int64_t now);

// {"dialect": "paginated"|"legacy", "network", "height", "locked", "payments": [...]}; every
// key but "payments" is optional, and others (a "description") are ignored.
Scenario parse_scenario(const nlohmann::json& doc, std::int64_t now);
Scenario load_scenario(const std::filesystem::path& file, std::int64_t now);

// Unix seconds now, the clock relative times are resolved against.
std::int64_t unix_now();

// What an injected fault does to one request; see NodeSimulator::inject.
enum class FaultKind {
  Status,         // answer `status` with a node error body named `name`, before authentication
  Slow,           // wait `delay`, then answer normally (a client with a shorter timeout gives up)
  ResetMidBody,   // declare the full length, send half the body, close the connection
  TruncatedBody,  // a complete HTTP answer whose JSON body is cut in half
  WrongContentType,  // the normal body, labelled text/html
  Oversized,         // the normal JSON object padded to at least `size` bytes
  CursorRepeat,      // /listpayments: last_index_offset equal to the request's index_offset
  CursorGrow,        // /listpayments: last_index_offset above the request's index_offset
  Action,            // run `action` (e.g. change a payment's status), then answer normally
};

struct Fault {
  FaultKind kind = FaultKind::Status;
  int status = 500;
  std::chrono::milliseconds delay{0};
  std::size_t size = 0;
  std::function<void()> action;  // called without the simulator's lock held
  // The error's `name` for Status, e.g. "ChangingState": the node tells its 403s apart by it.
  std::string name = "InjectedFault";
};

// A certificate (chain) and its private key, PEM files, to serve https:// instead of http://.
struct TlsFiles {
  std::string cert_pem;
  std::string key_pem;
};

class NodeSimulator {
 public:
  NodeSimulator(Scenario scenario, std::string token,
                const std::optional<TlsFiles>& tls = std::nullopt);
  ~NodeSimulator();  // stops the server
  NodeSimulator(const NodeSimulator&) = delete;
  NodeSimulator& operator=(const NodeSimulator&) = delete;

  // Binds host:port (port 0: an ephemeral one) and serves on a background thread. Returns
  // the bound port once requests are being accepted. Throws std::runtime_error when the
  // address cannot be bound or the server is already started.
  std::uint16_t start(std::uint16_t port = 0, const std::string& host = "127.0.0.1");
  void stop();
  std::string url() const;  // http://host:port, or https:// with TLS

  // Runtime changes, safe while requests are being served. Times resolve against now.
  void replace_payments(const nlohmann::json& payments);
  // Sets the status (and preimage, if given) of the payment with this hash (any hex case)
  // and payment_type, and bumps its updated_at to now. Returns false when there is none.
  bool set_payment_status(const std::string& payment_hash, const std::string& payment_type,
                          const std::string& status,
                          const std::optional<std::string>& preimage = std::nullopt);
  void set_height(std::int64_t height);
  void set_locked(bool locked);

  // The next `count` requests to `path` (e.g. "/listpayments") are answered with
  // `http_status` and a node error body named `name`, before authentication, as a failing node
  // or proxy would, or a node changing state (403 ChangingState).
  void fail_next(const std::string& path, int http_status, int count = 1,
                 const std::string& name = "InjectedFault");

  // The `request`-th request to `path` since start (1 is the first; with a fixed page size
  // that is a given page of a scan) meets `fault` instead of, or on top of, its answer.
  // A later injection for the same request replaces an earlier one.
  void inject(const std::string& path, std::uint64_t request, Fault fault);

  // Called after each answered request with its method, target and body, if any, on one line
  // ("GET /listpayments?...", "POST /getpayment {...}"), so a benchmark can replay exactly the
  // requests a client made. Set before start().
  void set_request_log(std::function<void(const std::string&)> log);

  // Requests received since start, in total or for one path, whatever their answer.
  std::uint64_t request_count() const;
  std::uint64_t request_count(const std::string& path) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lsp_sweeper::sim
