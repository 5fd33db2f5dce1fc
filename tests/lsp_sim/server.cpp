#include "lsp_sim/server.hpp"

#include <httplib.h>
#include <openssl/evp.h>

#include <atomic>
#include <cstdio>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include "support/lsp_sqlite.hpp"
#include "support/lsp_statements.hpp"

namespace lsp_sim {

namespace {

using nlohmann::ordered_json;
namespace sql = lsp_statements::sqlite;
namespace pg = lsp_statements::postgres;

// --- What the Go standard library does to strings ---------------------------------------------

// strings.TrimSpace, for the ASCII spaces and the two Latin-1 ones Go also trims.
std::string trim_space(const std::string& s) {
  const auto space_at = [&](std::size_t i, bool back) -> std::size_t {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == ' ' || (c >= '\t' && c <= '\r')) return 1;
    // U+0085 and U+00A0 are C2 85 and C2 A0.
    if (!back && i + 1 < s.size() && c == 0xc2 &&
        (static_cast<unsigned char>(s[i + 1]) == 0x85 ||
         static_cast<unsigned char>(s[i + 1]) == 0xa0)) {
      return 2;
    }
    if (back && i >= 1 && static_cast<unsigned char>(s[i - 1]) == 0xc2 &&
        (c == 0x85 || c == 0xa0)) {
      return 2;
    }
    return 0;
  };
  std::size_t begin = 0;
  std::size_t end = s.size();
  while (begin < end) {
    const std::size_t n = space_at(begin, false);
    if (n == 0) break;
    begin += n;
  }
  while (end > begin) {
    const std::size_t n = space_at(end - 1, true);
    if (n == 0) break;
    end -= n;
  }
  return s.substr(begin, end - begin);
}

// strings.ToLower; only ASCII letters can matter to a hex check.
std::string to_lower(std::string s) {
  for (auto& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// isValidPaymentHash: 64 characters that hex.DecodeString takes (either case).
bool is_valid_payment_hash(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

std::string normalize_hash(const std::string& s) { return to_lower(trim_space(s)); }

// hex.EncodeToString(sha256.Sum256(hex.DecodeString(preimage))), with OpenSSL rather than the
// sweeper's helpers: the stand-in for the LSP shares no code with what it is tested against.
std::string sha256_of_hex(const std::string& lowercase_hex) {
  std::string bytes;
  for (std::size_t i = 0; i + 1 < lowercase_hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(std::stoi(lowercase_hex.substr(i, 2), nullptr, 16)));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

// The length of the valid UTF-8 sequence at s[i], or 0 (utf8.DecodeRuneInString's RuneError):
// no overlong forms, no surrogates, nothing above U+10FFFF.
std::size_t utf8_length(const std::string& s, std::size_t i, std::uint32_t* rune) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t n = 0;
  std::uint32_t r = 0;
  if (c < 0x80) {
    *rune = c;
    return 1;
  }
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    r = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    r = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    r = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
    r = (r << 6) | (b(i + k) & 0x3f);
  }
  if ((n == 3 && (r < 0x800 || (r >= 0xd800 && r <= 0xdfff))) ||
      (n == 4 && (r < 0x10000 || r > 0x10ffff))) {
    return 0;
  }
  *rune = r;
  return n;
}

// A JSON string as encoding/json writes it (HTML-safe, invalid UTF-8 as U+FFFD).
std::string go_json_string(const std::string& s) {
  std::string out = "\"";
  char buf[16];  // room for any 32-bit rune, which GCC cannot rule out
  for (std::size_t i = 0; i < s.size();) {
    std::uint32_t rune = 0;
    const std::size_t n = utf8_length(s, i, &rune);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    switch (rune) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (rune < 0x20 || rune == '<' || rune == '>' || rune == '&' || rune == 0x2028 ||
            rune == 0x2029) {
          std::snprintf(buf, sizeof buf, "\\u%04x", rune);
          out += buf;
        } else {
          out.append(s, i, n);
        }
    }
    i += n;
  }
  return out + "\"";
}

// fmt's %q (strconv.Quote) for the ASCII a status can hold; other valid UTF-8 is kept as is.
std::string go_quote(const std::string& s) {
  std::string out = "\"";
  char buf[16];
  for (std::size_t i = 0; i < s.size();) {
    std::uint32_t rune = 0;
    const std::size_t n = utf8_length(s, i, &rune);
    if (n == 0 || rune < 0x20 || rune == 0x7f) {
      const auto c = static_cast<unsigned char>(s[i]);
      switch (c) {
        case '\a': out += "\\a"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\v': out += "\\v"; break;
        default: std::snprintf(buf, sizeof buf, "\\x%02x", c); out += buf;
      }
      ++i;
      continue;
    }
    if (rune == '"' || rune == '\\') out += '\\';
    out.append(s, i, n);
    i += n;
  }
  return out + "\"";
}

// --- encoding/json decoding into the LSP's request structs ------------------------------------

// One struct field: applies a JSON value to it, false on a type mismatch (an UnmarshalTypeError;
// Go keeps decoding, but Decode still fails).
struct Field {
  const char* name;
  std::function<bool(const ordered_json&)> set;
};

bool equal_fold_ascii(const std::string& a, const char* b) {
  const std::string lb = to_lower(b);
  return to_lower(a) == lb;
}

// The first JSON value of `text` (a json.Decoder reads no further; json.Unmarshal wants
// nothing after it) decoded into `fields` as encoding/json does: an object's keys match a field
// exactly or else case-insensitively, unknown keys are skipped, a later key wins, and null
// leaves a field as it is (a pointer field becomes nil). False: Decode returns an error.
bool go_decode(const std::string& text, bool whole, const std::vector<Field>& fields) {
  ordered_json doc;
  try {
    if (whole) {
      doc = ordered_json::parse(text);
    } else {
      std::istringstream in(text);
      in >> doc;
    }
  } catch (const std::exception&) {
    return false;
  }
  if (doc.is_null()) return true;
  if (!doc.is_object()) return false;
  bool ok = true;
  for (const auto& [key, value] : doc.items()) {
    const Field* match = nullptr;
    for (const Field& f : fields) {
      if (key == f.name) match = &f;
    }
    for (const Field& f : fields) {
      if (match == nullptr && equal_fold_ascii(key, f.name)) match = &f;
    }
    if (match != nullptr && !match->set(value)) ok = false;
  }
  return ok;
}

Field string_field(const char* name, std::string& out) {
  return {name, [&out](const ordered_json& v) {
            if (v.is_null()) return true;
            if (!v.is_string()) return false;
            out = v.get<std::string>();
            return true;
          }};
}

// An integer literal within [0, max] (nlohmann reads a fraction or exponent as a float, a
// minus sign as signed, and anything past 2^64 as a float: all refused, as ParseUint does).
Field unsigned_field(const char* name, std::uint64_t max,
                     std::function<void(std::optional<std::uint64_t>)> out) {
  return {name, [max, out = std::move(out)](const ordered_json& v) {
            if (v.is_null()) {
              out(std::nullopt);
              return true;
            }
            if (!v.is_number_unsigned() || v.get<std::uint64_t>() > max) return false;
            out(v.get<std::uint64_t>());
            return true;
          }};
}

Field int64_field(const char* name, std::int64_t& out) {
  return {name, [&out](const ordered_json& v) {
            if (v.is_null()) return true;
            if (v.is_number_unsigned() &&
                v.get<std::uint64_t>() <= std::numeric_limits<std::int64_t>::max()) {
              out = static_cast<std::int64_t>(v.get<std::uint64_t>());
              return true;
            }
            if (!v.is_number_integer() || v.is_number_unsigned()) return false;
            out = v.get<std::int64_t>();
            return true;
          }};
}

struct ClaimableRequest {  // AsyncOrderClaimableRequest
  std::uint64_t amount_msat = 0;
  std::optional<std::uint32_t> claim_deadline_height;  // *uint32
  std::string payment_hash;
};

std::optional<ClaimableRequest> decode_claimable(const std::string& body) {
  ClaimableRequest req;
  const bool ok = go_decode(
      body, false,
      {unsigned_field("amount_msat", std::numeric_limits<std::uint64_t>::max(),
                      [&](std::optional<std::uint64_t> v) {
                        if (v) req.amount_msat = *v;  // null leaves a plain field alone
                      }),
       unsigned_field("claim_deadline_height", std::numeric_limits<std::uint32_t>::max(),
                      [&](std::optional<std::uint64_t> v) {
                        req.claim_deadline_height =
                            v ? std::optional<std::uint32_t>(static_cast<std::uint32_t>(*v))
                              : std::nullopt;
                      }),
       string_field("payment_hash", req.payment_hash)});
  if (!ok) return std::nullopt;
  return req;
}

struct PaymentSentRequest {  // AsyncOrderPaymentSentRequest
  std::string payment_hash;
  std::string payment_preimage;
};

std::optional<PaymentSentRequest> decode_payment_sent(const std::string& body) {
  PaymentSentRequest req;
  if (!go_decode(body, false,
                 {string_field("payment_hash", req.payment_hash),
                  string_field("payment_preimage", req.payment_preimage)})) {
    return std::nullopt;
  }
  return req;
}

// --- Errors as the LSP's Go code tells them apart ---------------------------------------------

enum class Sentinel { none, invoice_not_found, amount_mismatch, invalid_amount };

// An error of the LSP's own (errors.New / its sentinels); database errors are the drivers'.
struct GoError : std::runtime_error {
  GoError(Sentinel s, const std::string& message) : std::runtime_error(message), sentinel(s) {}
  explicit GoError(const std::string& message) : GoError(Sentinel::none, message) {}
  Sentinel sentinel;
};

GoError invoice_not_found() {
  return {Sentinel::invoice_not_found, "async rotating invoice not found"};
}

// --- The LSP's stores: one connection per request, as one request's use of database/sql's pool

// The amount_msat column as the driver hands it to Scan into a uint64.
struct RawAmount {
  bool is_null = false;
  std::optional<std::int64_t> integer;  // else text
  std::string text;
};

struct InvoiceRow {
  RawAmount amount_msat;
  std::string status;  // trimmed, as scanEnumText reads it
};

class Store {
 public:
  virtual ~Store() = default;
  virtual void begin() = 0;
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;
  // The statements of support/lsp_statements.hpp; the updates return rows affected.
  virtual std::optional<InvoiceRow> load_invoice(const std::string& hash) = 0;
  virtual std::int64_t mark_claimable(const std::string& hash, std::uint32_t deadline) = 0;
  virtual std::int64_t mark_outbound_claimed(const std::string& hash,
                                             const std::string& preimage) = 0;
  virtual void enqueue(const std::string& hash, const std::string& action) = 0;
  virtual std::optional<std::string> load_relay_status(const std::string& hash) = 0;
  virtual std::int64_t relay_mark_claimable(const std::string& hash, std::uint32_t deadline) = 0;
  virtual std::int64_t relay_mark_outbound_claimed(const std::string& hash,
                                                   const std::string& preimage) = 0;
  virtual bool has_relay_table() = 0;
  virtual int amount_column() const = 0;  // its index in the LSP's Scan, for the error text
};

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(const std::string& path) : conn_(path) {}

  // A plain deferred BEGIN, as the LSP's driver starts every transaction.
  void begin() override { lsp_sqlite::exec(db(), "BEGIN"); }
  void commit() override { lsp_sqlite::exec(db(), "COMMIT"); }
  void rollback() noexcept override {
    if (sqlite3_get_autocommit(db()) == 0)
      sqlite3_exec(db(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  std::optional<InvoiceRow> load_invoice(const std::string& hash) override {
    Statement st(db(), sql::kLoadInvoiceByHash);
    st.bind(1, hash);
    if (!st.step()) return std::nullopt;
    InvoiceRow row;
    const int a = sql::kInvoiceAmountColumn;
    if (st.type(a) == SQLITE_NULL) {
      row.amount_msat.is_null = true;
    } else if (st.type(a) == SQLITE_INTEGER) {
      row.amount_msat.integer = st.column(a);
    } else {
      row.amount_msat.text = st.text(a);
    }
    row.status = trim_space(st.text(sql::kInvoiceStatusColumn));
    return row;
  }
  std::int64_t mark_claimable(const std::string& hash, std::uint32_t deadline) override {
    return run(sql::kMarkClaimable, deadline, hash);
  }
  std::int64_t mark_outbound_claimed(const std::string& hash,
                                     const std::string& preimage) override {
    return run(sql::kMarkOutboundClaimed, preimage, hash);
  }
  void enqueue(const std::string& hash, const std::string& action) override {
    run(sql::kEnqueue, hash, action);
  }
  std::optional<std::string> load_relay_status(const std::string& hash) override {
    Statement st(db(), sql::kLoadRelayByHash);
    st.bind(1, hash);
    if (!st.step()) return std::nullopt;
    return trim_space(st.text(sql::kRelayStatusColumn));
  }
  std::int64_t relay_mark_claimable(const std::string& hash, std::uint32_t deadline) override {
    return run(sql::kRelayMarkClaimable, deadline, hash);
  }
  std::int64_t relay_mark_outbound_claimed(const std::string& hash,
                                           const std::string& preimage) override {
    return run(sql::kRelayMarkOutboundClaimed, preimage, hash);
  }
  bool has_relay_table() override {
    Statement st(db(), sql::kHasRelayTable);
    return st.step() && st.column(0) > 0;
  }
  int amount_column() const override { return sql::kInvoiceAmountColumn; }

 private:
  using Statement = lsp_sqlite::Statement;
  sqlite3* db() const { return conn_.get(); }
  static void bind(Statement& st, int i, std::uint32_t v) { st.bind(i, std::int64_t{v}); }
  static void bind(Statement& st, int i, const std::string& v) { st.bind(i, v); }
  template <class A, class B>
  std::int64_t run(const char* text, const A& a, const B& b) {
    Statement st(db(), text);
    bind(st, 1, a);
    bind(st, 2, b);
    st.step();
    return lsp_sqlite::changes(db());
  }

  lsp_sqlite::Connection conn_;
};

class PgStore final : public Store {
 public:
  explicit PgStore(const std::string& url) : conn_(url) {}

  // pqxx::work: BEGIN at READ COMMITTED, database/sql's default for BeginTx.
  void begin() override { tx_ = std::make_unique<pqxx::work>(conn_); }
  void commit() override {
    tx_->commit();
    tx_.reset();
  }
  void rollback() noexcept override {
    try {
      if (tx_) tx_->abort();
    } catch (const std::exception&) {
      // The connection is gone with its transaction.
    }
    tx_.reset();
  }
  std::optional<InvoiceRow> load_invoice(const std::string& hash) override {
    const pqxx::result r = exec(pg::kLoadInvoiceByHash, hash);
    if (r.empty()) return std::nullopt;
    InvoiceRow row;
    const pqxx::field amount = r[0][pg::kInvoiceAmountColumn];
    if (amount.is_null()) {
      row.amount_msat.is_null = true;
    } else {
      row.amount_msat.integer = amount.as<std::int64_t>();  // BIGINT NOT NULL
    }
    row.status = trim_space(r[0][pg::kInvoiceStatusColumn].as<std::string>(""));
    return row;
  }
  std::int64_t mark_claimable(const std::string& hash, std::uint32_t deadline) override {
    return exec(pg::kMarkClaimable, std::int64_t{deadline}, hash).affected_rows();
  }
  std::int64_t mark_outbound_claimed(const std::string& hash,
                                     const std::string& preimage) override {
    return exec(pg::kMarkOutboundClaimed, preimage, hash).affected_rows();
  }
  void enqueue(const std::string& hash, const std::string& action) override {
    exec(pg::kEnqueue, hash, action);
  }
  std::optional<std::string> load_relay_status(const std::string& hash) override {
    const pqxx::result r = exec(pg::kLoadRelayByHash, hash);
    if (r.empty()) return std::nullopt;
    return trim_space(r[0][pg::kRelayStatusColumn].as<std::string>(""));
  }
  std::int64_t relay_mark_claimable(const std::string& hash, std::uint32_t deadline) override {
    return exec(pg::kRelayMarkClaimable, std::int64_t{deadline}, hash).affected_rows();
  }
  std::int64_t relay_mark_outbound_claimed(const std::string& hash,
                                           const std::string& preimage) override {
    return exec(pg::kRelayMarkOutboundClaimed, preimage, hash).affected_rows();
  }
  bool has_relay_table() override { return exec(pg::kHasRelayTable)[0][0].as<bool>(); }
  int amount_column() const override { return pg::kInvoiceAmountColumn; }

 private:
  // In the open transaction, else on its own, as database/sql runs a statement on the pool.
  template <class... Args>
  pqxx::result exec(const char* text, const Args&... args) {
    if (tx_) return tx_->exec_params(text, args...);
    pqxx::nontransaction alone(conn_);
    return alone.exec_params(text, args...);
  }

  pqxx::connection conn_;
  std::unique_ptr<pqxx::work> tx_;
};

// The connection a request opens on first use: database/sql connects lazily too, so a request
// that never reaches a statement never needs the database.
class LazyStore {
 public:
  explicit LazyStore(const std::string& url) : url_(url) {}
  Store& operator*() {
    if (!store_) {
      static constexpr std::string_view kSqlite = "sqlite:";
      if (url_.rfind(kSqlite, 0) == 0) {
        store_ = std::make_unique<SqliteStore>(url_.substr(kSqlite.size()));
      } else {
        store_ = std::make_unique<PgStore>(url_);
      }
    }
    return *store_;
  }
  Store* operator->() { return &**this; }

 private:
  const std::string& url_;
  std::unique_ptr<Store> store_;
};

// The drivers' error text as the LSP's err.Error() shows it: mattn/go-sqlite3 gives SQLite's
// message, lib/pq "pq: " and the server's primary message.
std::string driver_message(const std::exception& e) {
  if (const auto* s = dynamic_cast<const lsp_sqlite::SqliteError*>(&e)) return s->message;
  if (dynamic_cast<const pqxx::failure*>(&e) != nullptr) {
    std::string text = e.what();
    text = text.substr(0, text.find('\n'));
    static constexpr std::string_view kError = "ERROR:  ";
    if (text.rfind(kError, 0) == 0) text = text.substr(kError.size());
    return "pq: " + text;
  }
  return e.what();
}

// inDBTx: BEGIN, the body, COMMIT; any error rolls back.
template <class Body>
void in_db_tx(Store& store, Body&& body) {
  store.begin();
  try {
    body();
    store.commit();
  } catch (...) {
    store.rollback();
    throw;
  }
}

// --- The LSP's state orders -------------------------------------------------------------------

// AsyncInvoiceStatus.Rank; an unknown status ranks 0.
int invoice_rank(const std::string& s) {
  static const std::map<std::string, int> kRank = {
      {"reserved", 10},           {"active", 20},           {"claimable", 30},
      {"outbound_requested", 40}, {"outbound_pending", 50}, {"outbound_paid", 60},
      {"outbound_claimed", 70},   {"inbound_claimed", 80},  {"inbound_cancelled", 90},
      {"outbound_cancelled", 90}, {"failed", 100}};
  const auto it = kRank.find(s);
  return it == kRank.end() ? 0 : it->second;
}

// asyncRotatingInvoiceStatusAtOrBeyond
bool invoice_at_or_beyond(const std::string& actual, const std::string& expected) {
  return invoice_rank(actual) >= invoice_rank(expected);
}

// lightningSendStateAtOrBeyond over lightningSendStateRank; an unknown state ranks 0 (a Go
// map's zero value), like quoted.
bool relay_at_or_beyond(const std::string& current, const std::string& target) {
  static const std::map<std::string, int> kRank = {
      {"quoted", 0},           {"claimable", 1}, {"outbound_pending", 2}, {"outbound_paid", 3},
      {"outbound_claimed", 4}, {"settled", 5},   {"cancelled", 6},        {"failed", 7}};
  const auto rank = [](const std::string& s) {
    const auto it = kRank.find(s);
    return it == kRank.end() ? 0 : it->second;
  };
  return rank(current) >= rank(target);
}

// Scan of amount_msat into the row's uint64, with database/sql's convertAssign error text.
std::uint64_t scan_amount(const RawAmount& raw, int column) {
  const std::string prefix =
      "sql: Scan error on column index " + std::to_string(column) + ", name \"amount_msat\": ";
  if (raw.is_null) throw GoError(prefix + "converting NULL to uint64 is unsupported");
  const std::string text = raw.integer ? std::to_string(*raw.integer) : raw.text;
  const char* type = raw.integer ? "int64" : "string";
  const auto fail = [&](const char* why) {
    return GoError(prefix + "converting driver.Value type " + type + " (" + go_quote(text) +
                   ") to a uint64: " + why);
  };
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
    throw fail("invalid syntax");
  }
  try {
    return std::stoull(text);
  } catch (const std::out_of_range&) {
    throw fail("value out of range");
  }
}

// --- The LSP's store methods (async_order.go, lightning_send.go, lightning_send_store.go) -----

struct Invoice {
  std::uint64_t amount_msat = 0;
  std::string status;
};

// loadAsyncRotatingInvoiceByPaymentHashTx / LoadAsyncRotatingInvoiceByPaymentHash: the row
// scanned (a bad amount_msat fails the Scan), nullopt for sql.ErrNoRows.
std::optional<Invoice> load_invoice(Store& store, const std::string& hash) {
  const auto row = store.load_invoice(hash);
  if (!row) return std::nullopt;
  return Invoice{scan_amount(row->amount_msat, store.amount_column()), row->status};
}

// asyncRotatingInvoiceTransitionResult. The LSP reloads on its pool, outside the transaction;
// here it is the transaction's own connection, which reads the same: the UPDATE changed
// nothing, and no other writer can have committed since (SQLite: this transaction holds the
// write lock; PostgreSQL: READ COMMITTED reads the latest commit either way).
bool transition_result(Store& store, const std::string& hash, const std::string& expected,
                       std::int64_t rows_affected) {
  if (rows_affected > 0) return true;
  const auto rec = load_invoice(store, hash);
  if (!rec) throw invoice_not_found();
  if (invoice_at_or_beyond(rec->status, expected)) return false;
  throw invoice_not_found();
}

// MarkAsyncRotatingInvoiceClaimable (its claim_deadline_height == 0 check cannot fail here:
// the handler refused a 0 before).
void mark_invoice_claimable(Store& store, const std::string& payment_hash,
                            std::uint64_t amount_msat, std::uint32_t deadline) {
  const std::string hash = normalize_hash(payment_hash);
  if (!is_valid_payment_hash(hash)) throw GoError("invalid payment_hash");
  if (amount_msat == 0) {
    throw GoError(Sentinel::invalid_amount, "async rotating invoice invalid amount_msat");
  }
  in_db_tx(store, [&] {
    const auto rec = load_invoice(store, hash);
    if (!rec) throw invoice_not_found();
    if (rec->amount_msat != amount_msat) {
      throw GoError(Sentinel::amount_mismatch, "async rotating invoice amount_msat mismatch");
    }
    const std::int64_t rows = store.mark_claimable(hash, deadline);
    if (transition_result(store, hash, "active", rows)) {
      store.enqueue(hash, "request_outbound_invoice");
    }
  });
}

// MarkAsyncRotatingInvoiceOutboundClaimed (its hash and preimage checks are the handler's,
// already passed).
void mark_invoice_outbound_claimed(Store& store, const std::string& hash,
                                   const std::string& preimage) {
  in_db_tx(store, [&] {
    const std::int64_t rows = store.mark_outbound_claimed(hash, preimage);
    if (transition_result(store, hash, "outbound_paid", rows)) {
      store.enqueue(hash, "claim_inbound_invoice");
    }
  });
}

// AdvanceLightningSend: the compare-and-set and, only when it changed a row, its job.
bool advance_relay(Store& store, const std::function<std::int64_t()>& update,
                   const std::string& hash, const std::string& action) {
  bool changed = false;
  in_db_tx(store, [&] {
    if (update() == 0) return;
    changed = true;
    store.enqueue(hash, action);
  });
  return changed;
}

// LoadLightningSendByPaymentHash where the record must be there.
std::string load_relay(Store& store, const std::string& hash) {
  auto status = store.load_relay_status(hash);
  if (!status) throw GoError("lightning send not found");
  return *std::move(status);
}

// markLightningSendClaimable; `payment_hash` as the request spelled it (the error names it so).
void mark_relay_claimable(Store& store, const std::string& payment_hash, std::uint32_t deadline) {
  const std::string hash = normalize_hash(payment_hash);
  if (relay_at_or_beyond(load_relay(store, hash), "claimable")) return;
  const bool changed = advance_relay(
      store, [&] { return store.relay_mark_claimable(hash, deadline); }, hash,
      "lightning_send_pay_outbound");
  if (changed) return;
  const std::string current = load_relay(store, hash);
  if (relay_at_or_beyond(current, "claimable")) return;
  throw GoError("lightning send " + payment_hash + " in unexpected status " + go_quote(current) +
                " before claimable");
}

// markLightningSendPreimage
void mark_relay_preimage(Store& store, const std::string& hash, const std::string& preimage) {
  const bool changed = advance_relay(
      store, [&] { return store.relay_mark_outbound_claimed(hash, preimage); }, hash,
      "lightning_send_claim_inbound");
  if (changed) return;
  const std::string current = load_relay(store, hash);
  if (relay_at_or_beyond(current, "outbound_claimed")) return;
  throw GoError("lightning send " + hash + " in unexpected status " + go_quote(current) +
                " before outbound claim");
}

// --- Answers, as writeOKJSON / writeErr encode them -------------------------------------------

struct Answer {
  int status = 200;
  std::string body;
};

Answer ok() { return {200, "{\"ok\":true}\n"}; }
// A Go map encodes its keys sorted.
Answer ignored() { return {200, "{\"ignored\":true,\"ok\":true}\n"}; }
Answer error(int status, const std::string& message) {
  return {status, "{\"error\":" + go_json_string(message) + "}\n"};
}

// errAsyncClaimDeadlineDependency: the node's height could not be had (503).
struct DependencyError : std::runtime_error {
  explicit DependencyError(const std::string& why)
      : std::runtime_error("claim deadline validation dependency unavailable: " + why) {}
};

constexpr std::uint64_t kLdkHtlcFailBackBuffer = 39;
constexpr std::uint64_t kLdkMinFinalCltvBuffer = 3;
constexpr auto kHttpTimeout = std::chrono::seconds(15);  // the LSP's HTTP_TIMEOUT default

}  // namespace

struct Server::Impl {
  explicit Impl(Options o) : options(std::move(o)) {}

  const Options options;
  bool relay_enabled = false;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> listener_done{false};
  std::uint16_t port = 0;

  mutable std::mutex mu;  // guards everything below
  std::map<std::string, std::deque<std::pair<int, std::string>>> failures;
  std::map<std::string, std::chrono::milliseconds> delays;
  std::map<std::string, std::size_t> per_path;
  std::size_t total = 0;
  std::vector<Request> answered;
  std::function<void(const std::string&, const std::string&)> hook;

  // node_client.Client.NetworkInfo as the LSP's rgbClient makes it, with its error texts.
  std::int64_t node_height() const {
    if (options.node_url.empty()) throw DependencyError("rgb client is not configured");
    std::string base = options.node_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    const std::string url = base + "/networkinfo";
    // httplib wants scheme://host:port apart from the path (a node URL may carry one).
    const std::size_t scheme = base.find("://");
    const std::size_t path_at =
        scheme == std::string::npos ? std::string::npos : base.find('/', scheme + 3);
    httplib::Client client(base.substr(0, path_at));
    client.set_connection_timeout(kHttpTimeout);
    client.set_read_timeout(kHttpTimeout);
    client.set_write_timeout(kHttpTimeout);
    httplib::Headers headers = {{"Content-Type", "application/json"},
                                {"Accept", "application/json"}};
    if (!options.node_token.empty()) {
      // setHeaders: a token already prefixed with "Bearer " is sent as it is.
      const std::string token = trim_space(options.node_token);
      headers.emplace("Authorization",
                      to_lower(token).rfind("bearer ", 0) == 0 ? token : "Bearer " + token);
    }
    const std::string path =
        (path_at == std::string::npos ? std::string() : base.substr(path_at)) + "/networkinfo";
    const auto res = client.Get(path.c_str(), headers);
    if (!res) {
      throw DependencyError("failed to make HTTP request: Get " + go_quote(url) + ": " +
                            httplib::to_string(res.error()));
    }
    if (res->status < 200 || res->status >= 300) {
      const std::string code = std::to_string(res->status);
      throw DependencyError("RGB Lightning API error " + code + ": " + res->body + " (HTTP " +
                            code + ")");
    }
    std::int64_t height = 0;
    std::string network;
    if (!res->body.empty() &&
        !go_decode(res->body, true,
                   {string_field("network", network), int64_field("height", height)})) {
      throw DependencyError("failed to parse response JSON: not a NetworkInfoResponse: " +
                            res->body);
    }
    return height;
  }

  // validateAsyncOrderClaimDeadlineWithinPolicy with requiredBlocks as the handler computes it
  // (uint64 arithmetic, as in Go).
  std::optional<Answer> deadline_refused(std::uint32_t deadline) const {
    std::int64_t height = 0;
    try {
      height = node_height();
    } catch (const DependencyError& e) {
      return error(503, e.what());
    }
    const std::uint64_t required =
        options.min_final_cltv_expiry_delta - kLdkHtlcFailBackBuffer - kLdkMinFinalCltvBuffer;
    const std::string d = std::to_string(deadline);
    const std::string h = std::to_string(height);
    if (static_cast<std::int64_t>(deadline) <= height) {
      return error(400, "claim_deadline_height " + d + " already passed; current height " + h);
    }
    const std::uint64_t blocks_left = std::uint64_t{deadline} - static_cast<std::uint64_t>(height);
    if (blocks_left <= required) {
      return error(400, "claim_deadline_height " + d + " is too close to current height " + h +
                            " (have " + std::to_string(blocks_left) + " blocks, need more than " +
                            std::to_string(required) + ")");
    }
    return std::nullopt;
  }

  // lightningSendOwnsHash: disabled (or no relay table) owns nothing.
  bool relay_owns(Store& store, const std::string& payment_hash) const {
    if (!relay_enabled) return false;
    const std::string hash = normalize_hash(payment_hash);
    if (!is_valid_payment_hash(hash)) throw GoError("invalid payment_hash");
    return store.load_relay_status(hash).has_value();
  }

  // handleInternalInboundInvoiceClaimable, after the token check.
  Answer claimable(const std::string& body) const {
    const auto req = decode_claimable(body);
    if (!req) return error(400, "invalid json");
    if (!req->claim_deadline_height || *req->claim_deadline_height == 0) {
      return error(400, "claim_deadline_height is required");
    }
    const std::uint32_t deadline = *req->claim_deadline_height;
    LazyStore store(options.db_url);
    try {
      if (relay_owns(*store, req->payment_hash)) {
        mark_relay_claimable(*store, req->payment_hash, deadline);
        return ok();
      }
    } catch (const std::exception& e) {
      return error(500, driver_message(e));
    }
    if (auto refused = deadline_refused(deadline)) return *refused;
    try {
      mark_invoice_claimable(*store, req->payment_hash, req->amount_msat, deadline);
    } catch (const GoError& e) {
      switch (e.sentinel) {
        case Sentinel::invoice_not_found: return error(404, "claimable invoice not found");
        case Sentinel::amount_mismatch:
        case Sentinel::invalid_amount: return error(400, e.what());
        case Sentinel::none: return error(500, e.what());
      }
    } catch (const std::exception& e) {
      return error(500, driver_message(e));
    }
    return ok();
  }

  // handleInternalAsyncOrderPaymentSent, after the token check.
  Answer payment_sent(const std::string& body) const {
    const auto req = decode_payment_sent(body);
    if (!req) return error(400, "invalid json");
    const std::string hash = normalize_hash(req->payment_hash);
    if (!is_valid_payment_hash(hash)) return error(400, "invalid payment_hash");
    const std::string preimage = normalize_hash(req->payment_preimage);
    if (!is_valid_payment_hash(preimage)) return error(400, "invalid payment_preimage");
    if (sha256_of_hex(preimage) != hash) {
      return error(400, "payment_preimage does not match payment_hash");
    }
    LazyStore store(options.db_url);
    try {
      if (relay_owns(*store, hash)) {
        mark_relay_preimage(*store, hash, preimage);
        return ok();
      }
    } catch (const std::exception& e) {
      return error(500, driver_message(e));
    }
    try {
      mark_invoice_outbound_claimed(*store, hash, preimage);
      return ok();
    } catch (const GoError& e) {
      if (e.sentinel != Sentinel::invoice_not_found) return error(500, e.what());
    } catch (const std::exception& e) {
      return error(500, driver_message(e));
    }
    std::optional<Invoice> current;
    try {
      current = load_invoice(*store, hash);
    } catch (const std::exception& e) {
      return error(500, driver_message(e));
    }
    // Neither flow owns the hash: the common case (lightning_receive), not a fault.
    if (!current) return ignored();
    if (invoice_at_or_beyond(current->status, "outbound_claimed")) return ok();
    if (!invoice_at_or_beyond(current->status, "outbound_paid")) {
      return error(503, "payment_sent received before outbound payment was confirmed locally");
    }
    return error(500, "async invoice in unexpected status before outbound claim");
  }

  // Answers and records the request, before its answer leaves (a client that has read it
  // finds it in requests()).
  void respond(const httplib::Request& req, httplib::Response& res, const Answer& answer,
               const char* content_type = "application/json") {
    res.status = answer.status;
    res.set_content(answer.body, content_type);
    const std::lock_guard lock(mu);
    answered.push_back(
        {req.path, req.body, req.get_header_value("Authorization"), answer.status, answer.body});
  }

  std::optional<std::pair<int, std::string>> take_failure(const std::string& path) {
    const std::lock_guard lock(mu);
    const auto it = failures.find(path);
    if (it == failures.end() || it->second.empty()) return std::nullopt;
    auto failure = it->second.front();
    it->second.pop_front();
    return failure;
  }

  // An injected failure first, then the token check every handler starts with, then the
  // test's hook, then the handler.
  void handle(const httplib::Request& req, httplib::Response& res,
              Answer (Impl::*handler)(const std::string&) const) {
    if (const auto failure = take_failure(req.path)) {
      respond(req, res, error(failure->first, failure->second));
      return;
    }
    const std::string token = trim_space(options.token);
    if (token.empty() || req.get_header_value("Authorization") != "Bearer " + token) {
      respond(req, res, error(401, "unauthorized"));
      return;
    }
    std::function<void(const std::string&, const std::string&)> before;
    {
      const std::lock_guard lock(mu);
      before = hook;
    }
    if (before) before(req.path, req.body);
    respond(req, res, (this->*handler)(req.body));
  }

  // Before any route (and before the body is read): the count, then an injected delay.
  httplib::Server::HandlerResponse gate(const httplib::Request& req) {
    std::chrono::milliseconds delay{0};
    {
      const std::lock_guard lock(mu);
      ++total;
      ++per_path[req.path];
      if (const auto it = delays.find(req.path); it != delays.end()) delay = it->second;
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    return httplib::Server::HandlerResponse::Unhandled;
  }

  void routes() {
    server.set_pre_routing_handler(
        [this](const httplib::Request& req, httplib::Response&) { return gate(req); });
    server.Post(kClaimablePath, [this](const httplib::Request& req, httplib::Response& res) {
      handle(req, res, &Impl::claimable);
    });
    server.Post(kPaymentSentPath, [this](const httplib::Request& req, httplib::Response& res) {
      handle(req, res, &Impl::payment_sent);
    });
    // What Go's ServeMux answers for a method or path it has no pattern for.
    server.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty() || res.status != 404) return;
      res.set_header("X-Content-Type-Options", "nosniff");
      const bool ours = req.path == kClaimablePath || req.path == kPaymentSentPath;
      if (ours) res.set_header("Allow", "POST");
      respond(req, res,
              ours ? Answer{405, "Method Not Allowed\n"} : Answer{404, "404 page not found\n"},
              "text/plain; charset=utf-8");
    });
    // Enough threads for a hook that calls this server while its own request waits.
    server.new_task_queue = [] { return new httplib::ThreadPool(8); };
    // Only SO_REUSEADDR: httplib's default SO_REUSEPORT would let two servers share a port.
    server.set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    server.set_tcp_nodelay(true);
    // Keep-alive connections would otherwise hold stop() for the default 5 s.
    server.set_keep_alive_timeout(1);
  }
};

Server::Server(Options options, std::uint16_t port)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  const std::uint64_t delta = impl_->options.min_final_cltv_expiry_delta;
  // The LSP's config: a uint16, and 0 or at least LDK's own 42.
  if (delta > std::numeric_limits<std::uint16_t>::max() ||
      (delta != 0 && delta < kLdkHtlcFailBackBuffer + kLdkMinFinalCltvBuffer)) {
    throw std::invalid_argument("APAY_INBOUND_MIN_FINAL_CLTV_EXPIRY_DELTA must be >= 42");
  }
  try {
    LazyStore store(impl_->options.db_url);
    impl_->relay_enabled = impl_->options.lightning_send_enabled && store->has_relay_table();
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot use the database: " + driver_message(e));
  }
  impl_->routes();
  const std::string host = "127.0.0.1";
  const int bound = port == 0 ? impl_->server.bind_to_any_port(host)
                              : (impl_->server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port));
  }
  impl_->port = static_cast<std::uint16_t>(bound);
  impl_->thread = std::thread([impl = impl_.get()] {
    impl->server.listen_after_bind();
    impl->listener_done = true;
  });
  // stop() is a no-op until the accept loop runs: wait for it, so a stop right after start
  // cannot hang the join. The socket already listens, so no connection is lost meanwhile.
  while (!impl_->server.is_running() && !impl_->listener_done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Server::~Server() { stop(); }

std::string Server::url() const { return "http://127.0.0.1:" + std::to_string(impl_->port); }

void Server::fail_next(const std::string& path, int status, int count, const std::string& error) {
  const std::lock_guard lock(impl_->mu);
  for (int i = 0; i < count; ++i) impl_->failures[path].emplace_back(status, error);
}

void Server::set_delay(const std::string& path, std::chrono::milliseconds delay) {
  const std::lock_guard lock(impl_->mu);
  impl_->delays[path] = delay;
}

void Server::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
}

void Server::before_handling(
    std::function<void(const std::string& path, const std::string& body)> hook) {
  const std::lock_guard lock(impl_->mu);
  impl_->hook = std::move(hook);
}

std::size_t Server::request_count(const std::string& path) const {
  const std::lock_guard lock(impl_->mu);
  if (path.empty()) return impl_->total;
  const auto it = impl_->per_path.find(path);
  return it == impl_->per_path.end() ? 0 : it->second;
}

std::vector<Server::Request> Server::requests() const {
  const std::lock_guard lock(impl_->mu);
  return impl_->answered;
}

}  // namespace lsp_sim
