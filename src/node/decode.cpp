#include "lsp_sweeper/node/decode.hpp"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <variant>

#include "lsp_sweeper/util/hex.hpp"

namespace lsp_sweeper::node {

namespace {

using json = nlohmann::json;

constexpr std::uint64_t kMaxU64 = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint64_t kMaxI64 = std::numeric_limits<std::int64_t>::max();
// The LSP stores amounts in a signed 64-bit column (BIGINT, SQLite INTEGER): a larger amount
// would wrap there, and must never be compared with a record after a wrapping conversion.
constexpr std::uint64_t kMaxAmountMsat = kMaxI64;
// A block height: LDK's claim_deadline is a u32, and the LSP reads the column back as uint32
// (a larger value reads as missing, so its job would wait for a deadline forever).
constexpr std::uint64_t kMaxHeight = std::numeric_limits<std::uint32_t>::max();

// How much of an untrusted value a reason may quote.
constexpr std::size_t kQuoteChars = 40;

// A whole JSON number in [0, max], or why the value is not one.
struct Count {
  std::uint64_t value = 0;
  std::string problem;  // empty when `value` is valid
};

Count read_count(const json& v, std::uint64_t max) {
  if (v.is_number_integer()) {  // nlohmann: true for signed and unsigned alike
    if (!v.is_number_unsigned() && v.get<std::int64_t>() < 0) return {0, "is negative"};
    const auto n = v.get<std::uint64_t>();
    if (n > max) return {0, "is out of range (above " + std::to_string(max) + ")"};
    return {n, {}};
  }
  if (v.is_number_float()) {
    // nlohmann stores an integer literal outside [-2^63, 2^64) as a float, so a whole float
    // out there is an overflowed integer rather than a fraction.
    const double d = v.get<double>();
    if (std::isfinite(d) && std::trunc(d) == d && (d >= 0x1p64 || d < -0x1p63)) {
      return {0, d < 0 ? "is negative" : "is out of range"};
    }
    return {0, "is not an integer"};
  }
  return {0, std::string("is not a number (") + v.type_name() + ")"};
}

// A payment the decoder refuses; caught once per payment in decode_payment so that one bad
// payment never fails its page.
struct Rejection {
  std::string reason;
};

[[noreturn]] void reject(std::string reason) { throw Rejection{std::move(reason)}; }

std::string quoted(const std::string& s) {
  // Appending, not "'" + std::string&&: GCC 12 warns falsely (-Wrestrict) on the latter at -O2.
  std::string out = "'";
  out.append(util::printable(s, kQuoteChars));
  out.push_back('\'');
  return out;
}

const json* find(const json& obj, const char* key) {
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

const json* find_non_null(const json& obj, const char* key) {
  const json* v = find(obj, key);
  return v == nullptr || v->is_null() ? nullptr : v;
}

const json& require(const json& obj, const char* key) {
  const json* v = find(obj, key);
  if (v == nullptr) reject(std::string(key) + " is missing");
  return *v;
}

const std::string& require_string(const json& obj, const char* key) {
  const json& v = require(obj, key);
  if (!v.is_string()) reject(std::string(key) + " is not a string (" + v.type_name() + ")");
  return v.get_ref<const std::string&>();
}

std::uint64_t count_field(const json& v, const char* key, std::uint64_t max) {
  Count c = read_count(v, max);
  if (!c.problem.empty()) reject(std::string(key) + " " + c.problem);
  return c.value;
}

std::int64_t timestamp_field(const json& obj, const char* key) {
  return static_cast<std::int64_t>(count_field(require(obj, key), key, kMaxI64));
}

std::string hex32_field(const std::string& text, const char* key) {
  auto hex = util::normalize_hex32(text);
  if (!hex) reject(std::string(key) + " " + quoted(text) + " is not 64 hex digits");
  return *std::move(hex);
}

PaymentType read_type(const json& obj, Dialect dialect) {
  if (dialect == Dialect::Legacy) {
    const json& inbound = require(obj, "inbound");
    if (!inbound.is_boolean()) {
      reject(std::string("inbound is not a boolean (") + inbound.type_name() + ")");
    }
    // The legacy dialect cannot say whether an inbound payment was a HODL one.
    return inbound.get<bool>() ? PaymentType::InboundUnknown : PaymentType::Outbound;
  }
  const std::string& name = require_string(obj, "payment_type");
  for (const PaymentType t :
       {PaymentType::Outbound, PaymentType::InboundAutoClaim, PaymentType::InboundHodl}) {
    if (name == to_string(t)) return t;
  }
  reject("payment_type " + quoted(name) + " is unknown");
}

NodeStatus read_status(const json& obj, Dialect dialect) {
  const std::string& name = require_string(obj, "status");
  const auto status = parse_node_status(name);
  if (!status) reject("status " + quoted(name) + " is unknown");
  // A legacy node naming a HODL status is not the node this dialect describes; trusting it
  // would let the planner act on states the legacy node cannot have.
  const bool legacy_status = *status == NodeStatus::Pending || *status == NodeStatus::Succeeded ||
                             *status == NodeStatus::Failed;
  if (dialect == Dialect::Legacy && !legacy_status) {
    reject("status " + quoted(name) + " does not exist in the legacy dialect");
  }
  return *status;
}

NodePayment read_payment(const json& obj, Dialect dialect) {
  NodePayment p;
  p.payment_hash = hex32_field(require_string(obj, "payment_hash"), "payment_hash");
  p.type = read_type(obj, dialect);
  p.status = read_status(obj, dialect);
  if (const json* v = find_non_null(obj, "amt_msat")) {
    p.amt_msat = count_field(*v, "amt_msat", kMaxAmountMsat);
  }
  p.created_at = timestamp_field(obj, "created_at");
  p.updated_at = timestamp_field(obj, "updated_at");
  if (const json* v = find_non_null(obj, "preimage")) {
    if (!v->is_string()) reject(std::string("preimage is not a string (") + v->type_name() + ")");
    p.preimage = hex32_field(v->get_ref<const std::string&>(), "preimage");
  }
  if (const json* v = find_non_null(obj, "claim_deadline_height")) {
    p.claim_deadline_height =
        static_cast<std::int64_t>(count_field(*v, "claim_deadline_height", kMaxHeight));
  }
  return p;
}

// The one place a payment is decoded, for /listpayments and /getpayment alike.
std::variant<NodePayment, RejectedPayment> decode_payment(const json& v, Dialect dialect) {
  if (!v.is_object()) {
    return RejectedPayment{"", std::string("payment is not an object (") + v.type_name() + ")"};
  }
  try {
    return read_payment(v, dialect);
  } catch (const Rejection& r) {
    const json* hash = find(v, "payment_hash");
    std::string as_sent;
    if (hash != nullptr && hash->is_string()) {
      as_sent = util::printable(hash->get_ref<const std::string&>());
    }
    return RejectedPayment{std::move(as_sent), r.reason};
  }
}

json parse_object(std::string_view body, const char* what) {
  json doc;
  try {
    doc = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a float like 1e999
    throw DecodeError(std::string(what) + ": body is not JSON: " + util::printable(e.what(), 200));
  }
  if (!doc.is_object()) {
    throw DecodeError(std::string(what) + ": body is not a JSON object (" + doc.type_name() + ")");
  }
  return doc;
}

std::uint64_t cursor_field(const json& doc, const char* key) {
  const json* v = find(doc, key);
  if (v == nullptr) {
    throw DecodeError(std::string("listpayments: ") + key +
                      " is missing while the other cursor is present");
  }
  Count c = read_count(*v, kMaxU64);
  if (!c.problem.empty()) throw DecodeError(std::string("listpayments: ") + key + " " + c.problem);
  return c.value;
}

}  // namespace

std::string_view to_string(Dialect d) { return d == Dialect::Paginated ? "paginated" : "legacy"; }

PaymentPage decode_list_payments(std::string_view body) {
  const json doc = parse_object(body, "listpayments");
  const json* payments = find(doc, "payments");
  if (payments == nullptr) throw DecodeError("listpayments: payments is missing");
  if (!payments->is_array()) {
    throw DecodeError(std::string("listpayments: payments is not an array (") +
                      payments->type_name() + ")");
  }

  PaymentPage page;
  const bool paginated = doc.contains("first_index_offset") || doc.contains("last_index_offset");
  page.dialect = paginated ? Dialect::Paginated : Dialect::Legacy;
  if (paginated) {
    page.first_index_offset = cursor_field(doc, "first_index_offset");
    page.last_index_offset = cursor_field(doc, "last_index_offset");
  }
  for (const json& item : *payments) {
    auto decoded = decode_payment(item, page.dialect);
    if (auto* p = std::get_if<NodePayment>(&decoded)) {
      page.payments.push_back(std::move(*p));
    } else {
      page.rejected.push_back(std::get<RejectedPayment>(std::move(decoded)));
    }
  }
  return page;
}

namespace {

// `dialect` absent: detected from the payment.
SinglePayment decode_single(std::string_view body, std::optional<Dialect> dialect) {
  const json doc = parse_object(body, "getpayment");
  const json* payment = find(doc, "payment");
  if (payment == nullptr) throw DecodeError("getpayment: payment is missing");
  SinglePayment out;
  out.dialect = dialect.value_or(payment->is_object() && !payment->contains("payment_type") &&
                                         payment->contains("inbound")
                                     ? Dialect::Legacy
                                     : Dialect::Paginated);
  auto decoded = decode_payment(*payment, out.dialect);
  if (auto* p = std::get_if<NodePayment>(&decoded)) {
    out.payment = std::move(*p);
  } else {
    out.rejected = std::get<RejectedPayment>(std::move(decoded));
  }
  return out;
}

}  // namespace

SinglePayment decode_get_payment(std::string_view body, Dialect dialect) {
  return decode_single(body, dialect);
}

SinglePayment decode_get_payment(std::string_view body) {
  return decode_single(body, std::nullopt);
}

std::int64_t decode_network_height(std::string_view body) {
  const json doc = parse_object(body, "networkinfo");
  const json* height = find(doc, "height");
  if (height == nullptr) throw DecodeError("networkinfo: height is missing");
  Count c = read_count(*height, kMaxI64);
  if (!c.problem.empty()) throw DecodeError("networkinfo: height " + c.problem);
  return static_cast<std::int64_t>(c.value);
}

}  // namespace lsp_sweeper::node
