#include "sim/simulator.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>

namespace lsp_sweeper::sim {

namespace {

using nlohmann::json;

constexpr std::uint64_t kDefaultPageSize = 100;  // the node's default for max_payments 0/absent

// The simulator-only keys are the scenario author's, not the node's: a wrong type there is
// a mistake in the file, reported rather than served.
ScenarioError bad_key(std::size_t position, const char* key, const char* expected) {
  return ScenarioError("payment #" + std::to_string(position) + ": \"" + key + "\" must be " +
                       expected);
}

// Removes "index" from the payment and returns it.
std::optional<std::uint64_t> take_index(json& payment, std::size_t position) {
  const auto it = payment.find("index");
  if (it == payment.end()) return std::nullopt;
  // nlohmann parses every non-negative integer literal as unsigned.
  if (!it->is_number_unsigned()) throw bad_key(position, "index", "an unsigned integer");
  const auto value = it->get<std::uint64_t>();
  payment.erase(it);
  return value;
}

// Writes `field` = now - ago when the relative key is present; both forms at once would
// leave the author's intent unclear.
void resolve_relative_time(json& payment, const char* ago_key, const char* field, std::int64_t now,
                           std::size_t position) {
  const auto it = payment.find(ago_key);
  if (it == payment.end()) return;
  const bool fits = it->is_number_integer() &&
                    !(it->is_number_unsigned() &&
                      it->get<std::uint64_t>() >
                          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
  if (!fits) throw bad_key(position, ago_key, "an integer number of seconds");
  const auto ago = it->get<std::int64_t>();
  payment.erase(it);
  if (payment.contains(field)) {
    throw ScenarioError("payment #" + std::to_string(position) + ": both \"" + ago_key +
                        "\" and \"" + field + "\"");
  }
  payment[field] = now - ago;
}

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// The field as a string, or nothing when the payment is not an object or the field is
// missing or of another type: such a payment then matches no filter on it. A view into the
// payment, not a copy: filters run over the whole history for every page.
std::optional<std::string_view> string_field(const json& payment, const char* key) {
  if (!payment.is_object()) return std::nullopt;
  const auto it = payment.find(key);
  if (it == payment.end() || !it->is_string()) return std::nullopt;
  return it->get_ref<const std::string&>();
}

bool is_inbound(const json& payment) {
  const auto type = string_field(payment, "payment_type");
  return type && *type != "Outbound";
}

// The legacy node's wire form: a boolean `inbound` instead of payment_type, and only the
// three statuses it knows. A payment already written in legacy form (no payment_type) is
// served untouched, so a legacy scenario can hold a malformed `inbound` too.
json to_legacy(json payment) {
  if (!payment.is_object()) return payment;
  if (const auto it = payment.find("payment_type"); it != payment.end()) {
    const bool outbound = it->is_string() && *it == "Outbound";
    payment.erase(it);
    payment["inbound"] = !outbound;
  }
  if (const auto field = string_field(payment, "status")) {
    const std::string status(*field);  // the view dies with the value it is replaced by
    if (status == "Claimable" || status == "Claiming") payment["status"] = "Pending";
    if (status == "Cancelled") payment["status"] = "Failed";
  }
  return payment;
}

std::string error_body(int code, const std::string& error, const std::string& name) {
  return json{{"code", code}, {"error", error}, {"name", name}}.dump();
}

void reply(httplib::Response& res, int code, const std::string& body) {
  res.status = code;
  res.set_content(body, "application/json");
}

void reply_error(httplib::Response& res, int code, const std::string& error,
                 const std::string& name) {
  reply(res, code, error_body(code, error, name));
}

// A query string the node's Query extractor would refuse (400, with a text like this one).
struct BadQuery : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::optional<std::uint64_t> uint_param(const httplib::Request& req, const char* key) {
  if (!req.has_param(key)) return std::nullopt;
  const std::string text = req.get_param_value(key);
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    throw BadQuery(std::string("Failed to deserialize query string: ") + key +
                   ": invalid digit found in string");
  }
  return value;
}

std::optional<std::string> enum_param(const httplib::Request& req, const char* key,
                                      std::initializer_list<const char*> variants) {
  if (!req.has_param(key)) return std::nullopt;
  std::string text = req.get_param_value(key);
  for (const char* v : variants) {
    if (text == v) return text;
  }
  throw BadQuery(std::string("Failed to deserialize query string: ") + key + ": unknown variant `" +
                 text + "`");
}

struct ListFilter {
  std::optional<std::string> status;
  std::optional<std::string> direction;
  std::optional<std::uint64_t> created_after;
  std::optional<std::uint64_t> created_before;

  bool matches(const json& payment) const {
    if (status && string_field(payment, "status") != status) return false;
    if (direction) {
      if (!string_field(payment, "payment_type")) return false;
      if (is_inbound(payment) != (*direction == "Inbound")) return false;
    }
    if (created_after || created_before) {
      if (!payment.is_object()) return false;
      const auto it = payment.find("created_at");
      if (it == payment.end() || !it->is_number_integer()) return false;
      // Compared with the sign in mind: a negative created_at is before every filter value.
      const bool negative = !it->is_number_unsigned() && it->get<std::int64_t>() < 0;
      const std::uint64_t created = negative ? 0 : it->get<std::uint64_t>();
      if (created_after && (negative || created < *created_after)) return false;
      if (created_before && !negative && created > *created_before) return false;
    }
    return true;
  }
};

// Newest first, as the node lists them; payments with the same index keep file order.
void sort_newest_first(std::vector<StoredPayment>& payments) {
  std::stable_sort(
      payments.begin(), payments.end(),
      [](const StoredPayment& a, const StoredPayment& b) { return a.index > b.index; });
}

}  // namespace

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<StoredPayment> parse_payments(const json& payments, std::int64_t now) {
  if (!payments.is_array()) throw ScenarioError("\"payments\" must be an array");
  std::vector<StoredPayment> out;
  out.reserve(payments.size());
  std::uint64_t highest = 0;
  for (std::size_t i = 0; i < payments.size(); ++i) {
    StoredPayment stored{highest + 1, payments[i]};
    if (stored.wire.is_object()) {
      if (const auto index = take_index(stored.wire, i)) stored.index = *index;
      stored.wire.erase("label");
      resolve_relative_time(stored.wire, "created_ago", "created_at", now, i);
      resolve_relative_time(stored.wire, "updated_ago", "updated_at", now, i);
    }
    highest = std::max(highest, stored.index);
    out.push_back(std::move(stored));
  }
  return out;
}

Scenario parse_scenario(const json& doc, std::int64_t now) {
  if (!doc.is_object()) throw ScenarioError("a scenario must be a JSON object");
  Scenario scenario;
  if (const auto it = doc.find("dialect"); it != doc.end()) {
    if (*it == "paginated") {
      scenario.dialect = Dialect::Paginated;
    } else if (*it == "legacy") {
      scenario.dialect = Dialect::Legacy;
    } else {
      throw ScenarioError("\"dialect\" must be \"paginated\" or \"legacy\"");
    }
  }
  try {
    scenario.network = doc.value("network", scenario.network);
    scenario.height = doc.value("height", scenario.height);
    scenario.locked = doc.value("locked", scenario.locked);
  } catch (const json::exception& e) {
    throw ScenarioError(std::string("network, height or locked of the wrong type: ") + e.what());
  }
  const auto payments = doc.find("payments");
  if (payments == doc.end()) throw ScenarioError("no \"payments\" array");
  scenario.payments = parse_payments(*payments, now);
  return scenario;
}

Scenario load_scenario(const std::filesystem::path& file, std::int64_t now) {
  std::ifstream in(file);
  if (!in) throw ScenarioError("cannot open scenario " + file.string());
  try {
    return parse_scenario(json::parse(in), now);
  } catch (const json::parse_error& e) {
    throw ScenarioError(file.string() + ": " + e.what());
  } catch (const ScenarioError& e) {
    throw ScenarioError(file.string() + ": " + e.what());
  }
}

struct NodeSimulator::Impl {
  Impl(Scenario s, std::string t, const std::optional<TlsFiles>& tls)
      : token(std::move(t)),
        server_ptr(
            tls ? std::make_unique<httplib::SSLServer>(tls->cert_pem.c_str(), tls->key_pem.c_str())
                : std::make_unique<httplib::Server>()),
        server(*server_ptr),
        scheme(tls ? "https" : "http"),
        scenario(std::move(s)) {
    sort_newest_first(scenario.payments);
    index_payments();
  }

  const std::string token;
  std::unique_ptr<httplib::Server> server_ptr;
  httplib::Server& server;
  const std::string scheme;
  std::thread thread;
  std::atomic<bool> listener_done{false};
  std::string host;
  std::uint16_t port = 0;

  mutable std::mutex mu;  // guards everything below
  Scenario scenario;
  std::map<std::string, std::map<std::uint64_t, Fault>> faults;  // path -> request number -> fault
  std::uint64_t total_requests = 0;
  std::map<std::string, std::uint64_t> requests_per_path;
  std::function<void(const std::string&)> request_log;  // set before start, then only read
  // Positions in scenario.payments by lowercase hash, newest first: the real node finds a
  // payment by its hash (parsed into bytes, so any hex case), not by walking its history.
  std::unordered_map<std::string, std::vector<std::size_t>> by_hash;

  // Rebuilds by_hash; mu held (or not yet shared).
  void index_payments() {
    by_hash.clear();
    for (std::size_t i = 0; i < scenario.payments.size(); ++i) {
      const auto hash = string_field(scenario.payments[i].wire, "payment_hash");
      if (hash) by_hash[lowercase(std::string(*hash))].push_back(i);
    }
  }

  // Where the payments with this hash are in scenario.payments, newest first; mu held.
  const std::vector<std::size_t>& positions_of(const std::string& lowercase_hash) const {
    static const std::vector<std::size_t> none;
    const auto it = by_hash.find(lowercase_hash);
    return it == by_hash.end() ? none : it->second;
  }

  // Counts the request and takes the fault scheduled for it, if any.
  std::optional<Fault> take_fault(const std::string& path) {
    std::lock_guard lock(mu);
    ++total_requests;
    const std::uint64_t n = ++requests_per_path[path];
    const auto it = faults.find(path);
    if (it == faults.end()) return std::nullopt;
    const auto f = it->second.find(n);
    if (f == it->second.end()) return std::nullopt;
    Fault fault = std::move(f->second);
    it->second.erase(f);
    return fault;
  }

  // The node's own order of checks: authentication first, then the lock. True when answered.
  bool refuse(const httplib::Request& req, httplib::Response& res) const {
    std::lock_guard lock(mu);
    if (req.get_header_value("Authorization") != "Bearer " + token) {
      reply_error(res, 401, "Unauthorized", "Unauthorized");
      return true;
    }
    if (scenario.locked) {
      reply_error(res, 403, "Node is locked (hint: call unlock)", "LockedNode");
      return true;
    }
    return false;
  }

  // Runs before any route: counting, injected faults, then authentication and the lock. A
  // fault that distorts the answer has the route answer here first.
  httplib::Server::HandlerResponse gate(const httplib::Request& req, httplib::Response& res) {
    std::optional<Fault> fault = take_fault(req.path);
    if (fault && fault->kind == FaultKind::Status) {
      reply_error(res, fault->status, "Injected fault (node simulator)", fault->name);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (fault && fault->kind == FaultKind::Slow) std::this_thread::sleep_for(fault->delay);
    if (fault && fault->kind == FaultKind::Action && fault->action) fault->action();
    if (refuse(req, res)) return httplib::Server::HandlerResponse::Handled;
    if (!fault || fault->kind == FaultKind::Slow || fault->kind == FaultKind::Action) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    route(req, res);
    distort(*fault, req, res);
    return httplib::Server::HandlerResponse::Handled;
  }

  void route(const httplib::Request& req, httplib::Response& res) const {
    if (req.path == "/listpayments") {
      list_payments(req, res);
    } else if (req.path == "/getpayment") {
      get_payment(req, res);
    } else if (req.path == "/networkinfo") {
      network_info(res);
    } else {
      reply_error(res, 404, "Not found", "NotFound");
    }
  }

  static void distort(const Fault& fault, const httplib::Request& req, httplib::Response& res) {
    const std::string body = res.body;
    // set_content adds a Content-Type header; the route's would otherwise be sent as well.
    res.headers.erase("Content-Type");
    switch (fault.kind) {
      case FaultKind::ResetMidBody: {
        // Returning false from the provider makes httplib drop the connection. A body left in
        // place would be sent instead.
        res.body.clear();
        res.set_content_provider(body.size(), "application/json",
                                 [body](std::size_t, std::size_t, httplib::DataSink& sink) {
                                   sink.write(body.data(), body.size() / 2);
                                   return false;
                                 });
        return;
      }
      case FaultKind::TruncatedBody:
        res.set_content(body.substr(0, body.size() / 2), "application/json");
        return;
      case FaultKind::WrongContentType: res.set_content(body, "text/html"); return;
      case FaultKind::Oversized: {
        json doc = json::parse(body);
        doc["padding"] = std::string(fault.size, 'x');
        res.set_content(doc.dump(), "application/json");
        return;
      }
      case FaultKind::CursorRepeat:
      case FaultKind::CursorGrow: {
        json doc = json::parse(body);
        const std::uint64_t offset = uint_param(req, "index_offset").value_or(0);
        doc["last_index_offset"] = fault.kind == FaultKind::CursorRepeat ? offset : offset + 10;
        res.set_content(doc.dump(), "application/json");
        return;
      }
      case FaultKind::Status:
      case FaultKind::Slow:
      case FaultKind::Action: return;  // handled in gate()
    }
  }

  void list_payments(const httplib::Request& req, httplib::Response& res) const {
    std::lock_guard lock(mu);
    json page = json::array();
    if (scenario.dialect == Dialect::Legacy) {
      // The legacy node has no pagination and ignores every query parameter.
      for (const auto& p : scenario.payments) page.push_back(to_legacy(p.wire));
      reply(res, 200, json{{"payments", std::move(page)}}.dump());
      return;
    }
    ListFilter filter;
    std::uint64_t index_offset = 0;
    std::uint64_t max_payments = 0;
    try {
      filter.status = enum_param(
          req, "status", {"Pending", "Claimable", "Claiming", "Succeeded", "Cancelled", "Failed"});
      filter.direction = enum_param(req, "direction", {"Inbound", "Outbound"});
      filter.created_after = uint_param(req, "created_after");
      filter.created_before = uint_param(req, "created_before");
      index_offset = uint_param(req, "index_offset").value_or(0);
      max_payments = uint_param(req, "max_payments").value_or(0);
    } catch (const BadQuery& e) {
      reply_error(res, 400, e.what(), "InvalidQuery");
      return;
    }
    if (max_payments == 0) max_payments = kDefaultPageSize;

    // index_offset 0 means "from the newest", whoever sends it: a client that re-sends the
    // 0 it got from a page ending in unindexed payments starts over, as on the real node.
    auto it = scenario.payments.begin();
    if (index_offset != 0) {
      it = std::partition_point(scenario.payments.begin(), scenario.payments.end(),
                                [&](const StoredPayment& p) { return p.index >= index_offset; });
    }
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    for (; it != scenario.payments.end() && page.size() < max_payments; ++it) {
      if (!filter.matches(it->wire)) continue;
      if (page.empty()) first = it->index;
      last = it->index;
      page.push_back(it->wire);
    }
    reply(res, 200,
          json{{"payments", std::move(page)},
               {"first_index_offset", first},
               {"last_index_offset", last}}
              .dump());
  }

  void get_payment(const httplib::Request& req, httplib::Response& res) const {
    json body = json::parse(req.body, nullptr, false);
    const auto hash = string_field(body, "payment_hash");
    const auto type = string_field(body, "payment_type");
    std::lock_guard lock(mu);
    const bool legacy = scenario.dialect == Dialect::Legacy;
    if (!hash || (!legacy && !type)) {
      // The node's Json extractor rejection.
      reply_error(res, 422,
                  "Failed to deserialize the JSON body into the target type: missing "
                  "payment_hash or payment_type",
                  "JsonExtractorRejection");
      return;
    }
    const std::string wanted = lowercase(std::string(*hash));
    const StoredPayment* found = nullptr;
    for (std::size_t i : positions_of(wanted)) {
      const StoredPayment& p = scenario.payments[i];
      if (legacy) {
        // The legacy request has no payment_type; the node looks among inbound payments
        // before outbound ones.
        if (!found || (is_inbound(p.wire) && !is_inbound(found->wire))) found = &p;
      } else if (string_field(p.wire, "payment_type") == type) {
        found = &p;
        break;
      }
    }
    if (!found) {
      // The real node answers an unknown payment with 403, like a lock: a client must tell
      // them apart by `name`, not by status.
      reply_error(res, 403, "Payment not found: " + std::string(*hash), "PaymentNotFound");
      return;
    }
    reply(res, 200, json{{"payment", legacy ? to_legacy(found->wire) : found->wire}}.dump());
  }

  void network_info(httplib::Response& res) const {
    std::lock_guard lock(mu);
    reply(res, 200, json{{"network", scenario.network}, {"height", scenario.height}}.dump());
  }
};

NodeSimulator::NodeSimulator(Scenario scenario, std::string token,
                             const std::optional<TlsFiles>& tls)
    : impl_(std::make_unique<Impl>(std::move(scenario), std::move(token), tls)) {
  if (impl_->token.empty()) throw std::invalid_argument("the node simulator needs a token");
  if (!impl_->server.is_valid()) {
    throw std::invalid_argument("node simulator: cannot load the TLS certificate or key");
  }
  auto& svr = impl_->server;
  Impl* impl = impl_.get();
  svr.set_pre_routing_handler(
      [impl](const httplib::Request& req, httplib::Response& res) { return impl->gate(req, res); });
  svr.Get("/listpayments", [impl](const httplib::Request& req, httplib::Response& res) {
    impl->list_payments(req, res);
  });
  svr.Post("/getpayment", [impl](const httplib::Request& req, httplib::Response& res) {
    impl->get_payment(req, res);
  });
  svr.Get("/networkinfo",
          [impl](const httplib::Request&, httplib::Response& res) { impl->network_info(res); });
  // httplib answers unknown routes with an empty body; the node always speaks JSON.
  svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) {
      res.set_content(error_body(res.status, "Not found", "NotFound"), "application/json");
    }
  });
  // httplib's default SO_REUSEPORT lets a second simulator share a busy port without a word;
  // SO_REUSEADDR alone still allows a quick restart on the same port.
  svr.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  svr.set_logger([impl](const httplib::Request& req, const httplib::Response&) {
    if (!impl->request_log) return;
    std::lock_guard lock(impl->mu);  // server threads answer requests concurrently
    // A body is one line of JSON (the clients' compact dump); a line break would split it.
    std::string body = req.body;
    std::replace(body.begin(), body.end(), '\n', ' ');
    impl->request_log(req.method + " " + req.target + (body.empty() ? "" : " " + body));
  });
  // A response leaves in several writes (headers, then body); with Nagle's algorithm on, the
  // second waits for the client's delayed ACK, up to 40 ms per keep-alive request.
  svr.set_tcp_nodelay(true);
  // Keep-alive connections would otherwise hold stop() for the default 5 s.
  svr.set_keep_alive_timeout(1);
}

NodeSimulator::~NodeSimulator() { stop(); }

std::uint16_t NodeSimulator::start(std::uint16_t port, const std::string& host) {
  auto& svr = impl_->server;
  if (impl_->thread.joinable()) throw std::runtime_error("the node simulator is already started");
  int bound = port;
  if (port == 0) {
    bound = svr.bind_to_any_port(host);
  } else if (!svr.bind_to_port(host, port)) {
    bound = -1;
  }
  if (bound <= 0) {
    throw std::runtime_error("node simulator: cannot listen on " + host + ":" +
                             std::to_string(port));
  }
  impl_->host = host;
  impl_->port = static_cast<std::uint16_t>(bound);
  impl_->listener_done = false;
  impl_->thread = std::thread([impl = impl_.get()] {
    impl->server.listen_after_bind();
    impl->listener_done = true;
  });
  // stop() is a no-op until the accept loop runs, so a stop right after start would hang
  // the join: wait for it. The socket already listens, so no connection is lost meanwhile.
  while (!svr.is_running() && !impl_->listener_done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return impl_->port;
}

void NodeSimulator::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
}

std::string NodeSimulator::url() const {
  return impl_->scheme + "://" + impl_->host + ":" + std::to_string(impl_->port);
}

void NodeSimulator::replace_payments(const nlohmann::json& payments) {
  auto parsed = parse_payments(payments, unix_now());
  sort_newest_first(parsed);
  std::lock_guard lock(impl_->mu);
  impl_->scenario.payments = std::move(parsed);
  impl_->index_payments();
}

bool NodeSimulator::set_payment_status(const std::string& payment_hash,
                                       const std::string& payment_type, const std::string& status,
                                       const std::optional<std::string>& preimage) {
  const std::string wanted = lowercase(payment_hash);
  std::lock_guard lock(impl_->mu);
  for (std::size_t i : impl_->positions_of(wanted)) {
    StoredPayment& p = impl_->scenario.payments[i];
    if (string_field(p.wire, "payment_type") != payment_type) continue;
    p.wire["status"] = status;
    if (preimage) p.wire["preimage"] = *preimage;
    p.wire["updated_at"] = unix_now();
    return true;
  }
  return false;
}

void NodeSimulator::set_request_log(std::function<void(const std::string&)> log) {
  impl_->request_log = std::move(log);
}

void NodeSimulator::set_height(std::int64_t height) {
  std::lock_guard lock(impl_->mu);
  impl_->scenario.height = height;
}

void NodeSimulator::set_locked(bool locked) {
  std::lock_guard lock(impl_->mu);
  impl_->scenario.locked = locked;
}

void NodeSimulator::fail_next(const std::string& path, int http_status, int count,
                              const std::string& name) {
  std::uint64_t next = 0;
  {
    std::lock_guard lock(impl_->mu);
    next = impl_->requests_per_path[path] + 1;
  }
  for (int i = 0; i < count; ++i) {
    inject(path, next + static_cast<std::uint64_t>(i),
           {FaultKind::Status, http_status, {}, 0, {}, name});
  }
}

void NodeSimulator::inject(const std::string& path, std::uint64_t request, Fault fault) {
  std::lock_guard lock(impl_->mu);
  impl_->faults[path][request] = std::move(fault);
}

std::uint64_t NodeSimulator::request_count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->total_requests;
}

std::uint64_t NodeSimulator::request_count(const std::string& path) const {
  std::lock_guard lock(impl_->mu);
  const auto it = impl_->requests_per_path.find(path);
  return it == impl_->requests_per_path.end() ? 0 : it->second;
}

}  // namespace lsp_sweeper::sim
