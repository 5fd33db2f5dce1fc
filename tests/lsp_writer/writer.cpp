#include "lsp_writer/writer.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "support/lsp_sqlite.hpp"
#include "support/lsp_statements.hpp"

namespace lsp_writer {

namespace {

using Clock = std::chrono::steady_clock;

// The callbacks' statements are the LSP's own (support/lsp_statements.hpp); the outbox claim
// loop's are utexo-lsp's too (commit 6cc517f, internal/lspapi/async_order.go), as quoted in
// shared/lsp/README.md, fixed status values written as literals.
namespace sql = lsp_statements::sqlite;

constexpr const char* kClaimSelect =
    R"(SELECT id, payment_hash, action, status, attempts, available_at, locked_until, last_error, created_at, updated_at
FROM async_rotating_invoice_outbox
WHERE (status = 'pending' AND available_at <= CURRENT_TIMESTAMP)
   OR (status = 'processing' AND locked_until IS NOT NULL AND locked_until <= CURRENT_TIMESTAMP)
ORDER BY id ASC LIMIT 1)";

constexpr const char* kClaimUpdate = R"(UPDATE async_rotating_invoice_outbox
SET status = 'processing', attempts = attempts + 1,
    locked_until = datetime(CURRENT_TIMESTAMP, '+5 minutes'), updated_at = CURRENT_TIMESTAMP
WHERE id = ?
  AND ((status = 'pending' AND available_at <= CURRENT_TIMESTAMP)
    OR (status = 'processing' AND locked_until IS NOT NULL AND locked_until <= CURRENT_TIMESTAMP)))";

// The LSP also clears locked_until and last_error when it marks a job done.
constexpr const char* kMarkDone = R"(UPDATE async_rotating_invoice_outbox
SET status = 'done', locked_until = NULL, last_error = NULL, updated_at = CURRENT_TIMESTAMP
WHERE id = ?)";

// Background writes: the shape of the LSP's invoice reservation (bootstrap the order, insert a
// `reserved` invoice, refresh the order), under an order of its own so no hash overlaps.
// Simplified: no hash pool, the slot is the order's next one.
constexpr const char* kBackgroundPeer = "lsp-writer-background";
constexpr const char* kBootstrapOrder =
    "INSERT OR IGNORE INTO async_orders (peer_pubkey, status) VALUES (?, 'active')";
constexpr const char* kLoadOrder =
    "SELECT order_id FROM async_orders WHERE peer_pubkey = ? LIMIT 1";
constexpr const char* kNextSlot =
    "SELECT COALESCE(MAX(invoice_slot), 0) + 1 FROM async_rotating_invoices WHERE order_id = ?";
constexpr const char* kInsertReserved =
    "INSERT INTO async_rotating_invoices (order_id, invoice_slot, hash_index, payment_hash, "
    "asset_amount, asset_id, outbound_asset_amount, outbound_asset_id, amount_msat, expires_at, "
    "status) VALUES (?, ?, ?, ?, NULL, NULL, NULL, NULL, ?, datetime(CURRENT_TIMESTAMP, "
    "'+1 hour'), 'reserved')";
constexpr const char* kRefreshOrder =
    "UPDATE async_orders SET status = 'active', updated_at = CURRENT_TIMESTAMP WHERE order_id = ?";
constexpr std::int64_t kBackgroundAmountMsat = 1000;

constexpr std::size_t kMaxErrors = 10;
// The LSP claims at most 3 times per transaction when another claimer wins the row.
constexpr int kClaimTries = 3;
// An idle claim loop polls no faster than this, so an empty outbox costs little.
constexpr auto kIdlePoll = std::chrono::milliseconds(10);
// Once the writers are done, the claim loop gives up after this many failed claims in a row,
// so that a file locked for good cannot keep it running.
constexpr int kClaimFailuresAfterWriters = 3;

using lsp_sqlite::changes;
using lsp_sqlite::exec;
using lsp_sqlite::SqliteError;
using lsp_sqlite::Statement;

enum class Kind { claimable, payment_sent, background, claim, done };
constexpr std::array<const char*, 5> kKindNames = {"claimable", "payment_sent", "background",
                                                   "claim", "done"};
enum class Outcome { applied, not_applied };

struct Tally {
  std::int64_t tried = 0;
  std::int64_t applied = 0;
  std::int64_t not_applied = 0;
  std::int64_t failed = 0;
  std::int64_t busy_before_timeout = 0;
  std::vector<double> waits_ms;

  void merge(const Tally& other) {
    tried += other.tried;
    applied += other.applied;
    not_applied += other.not_applied;
    failed += other.failed;
    busy_before_timeout += other.busy_before_timeout;
    waits_ms.insert(waits_ms.end(), other.waits_ms.begin(), other.waits_ms.end());
  }
};

double percentile(std::vector<double> sorted, double p) {
  if (sorted.empty()) return 0;
  std::sort(sorted.begin(), sorted.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

double rounded(double ms) { return std::round(ms * 1000) / 1000; }

void put_waits(nlohmann::json& out, const Tally& t) {
  out["max_wait_ms"] =
      rounded(t.waits_ms.empty() ? 0 : *std::max_element(t.waits_ms.begin(), t.waits_ms.end()));
  out["p50_wait_ms"] = rounded(percentile(t.waits_ms, 0.50));
  out["p99_wait_ms"] = rounded(percentile(t.waits_ms, 0.99));
}

class Recorder {
 public:
  explicit Recorder(int busy_timeout_ms) : busy_timeout_ms_(busy_timeout_ms) {}

  // Times `body` (it runs BEGIN ... COMMIT itself) on the steady clock and files its outcome.
  // Any error is a failed transaction, rolled back as database/sql does; nullopt then.
  template <class Body>
  std::optional<Outcome> run(Kind kind, sqlite3* db, const std::string& label, Body&& body) {
    const auto start = Clock::now();
    std::optional<Outcome> outcome;
    std::string error;
    int code = SQLITE_OK;
    try {
      outcome = body();
    } catch (const SqliteError& e) {
      error = e.what();
      code = e.code;
      if (sqlite3_get_autocommit(db) == 0) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();

    const std::lock_guard lock(mutex_);
    Tally& t = tallies_[static_cast<std::size_t>(kind)];
    ++t.tried;
    t.waits_ms.push_back(ms);
    if (!outcome) {
      ++t.failed;
      // SQLite answers BUSY without calling the busy handler when waiting could deadlock: a
      // deferred transaction that has read and then needs the write lock.
      if ((code & 0xff) == SQLITE_BUSY && ms < busy_timeout_ms_) ++t.busy_before_timeout;
      if (errors_.size() < kMaxErrors) {
        errors_.push_back(std::string(kKindNames[static_cast<std::size_t>(kind)]) + " " + label +
                          ": " + error);
      }
    } else if (*outcome == Outcome::applied) {
      ++t.applied;
    } else {
      ++t.not_applied;
    }
    return outcome;
  }

  nlohmann::json report(double elapsed_s) const {
    const std::lock_guard lock(mutex_);
    // The LSP's own writes: a failed one is a lost callback or a failed request. The claim
    // loop is reported apart: a failed claim is retried by the LSP's next cron run.
    Tally writes;
    for (Kind k : {Kind::claimable, Kind::payment_sent, Kind::background}) {
      writes.merge(tallies_[static_cast<std::size_t>(k)]);
    }
    nlohmann::json out;
    out["writes_tried"] = writes.tried;
    out["writes_applied"] = writes.applied;
    out["writes_not_applied"] = writes.not_applied;
    out["writes_failed"] = writes.failed;
    out["busy_before_timeout"] = writes.busy_before_timeout;
    out["claims"] = tallies_[static_cast<std::size_t>(Kind::claim)].applied;
    put_waits(out, writes);
    out["errors"] = errors_;
    nlohmann::json by_kind = nlohmann::json::object();
    for (std::size_t k = 0; k < tallies_.size(); ++k) {
      const Tally& t = tallies_[k];
      if (t.tried == 0) continue;
      nlohmann::json entry = {{"tried", t.tried},
                              {"applied", t.applied},
                              {"not_applied", t.not_applied},
                              {"failed", t.failed},
                              {"busy_before_timeout", t.busy_before_timeout}};
      put_waits(entry, t);
      by_kind[kKindNames[k]] = entry;
    }
    out["by_kind"] = by_kind;
    out["busy_timeout_ms"] = busy_timeout_ms_;
    out["elapsed_s"] = rounded(elapsed_s);
    return out;
  }

 private:
  int busy_timeout_ms_;
  mutable std::mutex mutex_;
  std::array<Tally, kKindNames.size()> tallies_{};
  std::vector<std::string> errors_;
};

// BEGIN is deferred: mattn/go-sqlite3 (the LSP's driver) starts every database/sql
// transaction with a plain "BEGIN" unless the DSN sets _txlock, and the LSP's does not.
Outcome fire_claimable(sqlite3* db, const Callback& cb) {
  exec(db, "BEGIN");
  {
    Statement load(db, sql::kLoadInvoiceByHash);
    load.bind(1, cb.payment_hash);
    if (!load.step() || load.column(sql::kInvoiceAmountColumn) != cb.amount_msat) {
      // The LSP answers 404 or 400 and rolls back; nothing was written.
      exec(db, "ROLLBACK");
      return Outcome::not_applied;
    }
  }
  Statement update(db, sql::kMarkClaimable);
  update.bind(1, cb.deadline).bind(2, cb.payment_hash).step();
  const bool changed = changes(db) > 0;
  if (changed) {
    Statement(db, sql::kEnqueue)
        .bind(1, cb.payment_hash)
        .bind(2, std::string("request_outbound_invoice"))
        .step();
  }
  exec(db, "COMMIT");
  return changed ? Outcome::applied : Outcome::not_applied;
}

Outcome fire_payment_sent(sqlite3* db, const Callback& cb) {
  exec(db, "BEGIN");
  Statement update(db, sql::kMarkOutboundClaimed);
  update.bind(1, cb.preimage).bind(2, cb.payment_hash).step();
  const bool changed = changes(db) > 0;
  if (changed) {
    Statement(db, sql::kEnqueue)
        .bind(1, cb.payment_hash)
        .bind(2, std::string("claim_inbound_invoice"))
        .step();
  }
  exec(db, "COMMIT");
  return changed ? Outcome::applied : Outcome::not_applied;
}

std::string random_hash(std::mt19937_64& rng) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(64, '0');
  for (auto& c : out) c = kHex[rng() & 0xf];
  return out;
}

Outcome background_write(sqlite3* db, std::mt19937_64& rng) {
  exec(db, "BEGIN");
  Statement(db, kBootstrapOrder).bind(1, std::string(kBackgroundPeer)).step();
  Statement order(db, kLoadOrder);
  order.bind(1, std::string(kBackgroundPeer)).step();
  const std::int64_t order_id = order.column(0);
  Statement next(db, kNextSlot);
  next.bind(1, order_id).step();
  const std::int64_t slot = next.column(0);
  Statement(db, kInsertReserved)
      .bind(1, order_id)
      .bind(2, slot)
      .bind(3, slot)
      .bind(4, random_hash(rng))
      .bind(5, kBackgroundAmountMsat)
      .step();
  Statement(db, kRefreshOrder).bind(1, order_id).step();
  exec(db, "COMMIT");
  return Outcome::applied;
}

// One claim as the LSP's cron makes it; `job` is set to the claimed id.
Outcome claim_job(sqlite3* db, std::int64_t& job) {
  exec(db, "BEGIN");
  for (int i = 0; i < kClaimTries; ++i) {
    Statement select(db, kClaimSelect);
    if (!select.step()) break;
    const std::int64_t id = select.column(0);
    Statement(db, kClaimUpdate).bind(1, id).step();
    if (changes(db) > 0) {
      exec(db, "COMMIT");
      job = id;
      return Outcome::applied;
    }
  }
  exec(db, "COMMIT");
  return Outcome::not_applied;
}

void check_tables(sqlite3* db) {
  for (const char* table :
       {"async_orders", "async_rotating_invoices", "async_rotating_invoice_outbox"}) {
    Statement s(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
    s.bind(1, std::string(table));
    if (!s.step()) throw SetupError(std::string("the file has no table ") + table);
  }
}

bool is_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

std::vector<Callback> parse_callbacks(std::istream& in) {
  std::vector<Callback> out;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::istringstream fields(line);
    std::string kind;
    if (!(fields >> kind) || kind[0] == '#') continue;
    Callback cb;
    bool ok = false;
    if (kind == "claimable") {
      cb.kind = Callback::Kind::claimable;
      ok = static_cast<bool>(fields >> cb.payment_hash >> cb.amount_msat >> cb.deadline);
    } else if (kind == "payment_sent") {
      cb.kind = Callback::Kind::payment_sent;
      ok = static_cast<bool>(fields >> cb.payment_hash >> cb.preimage) && is_hex64(cb.preimage);
    }
    std::string extra;
    if (!ok || !is_hex64(cb.payment_hash) || (fields >> extra)) {
      throw SetupError("hashes line " + std::to_string(number) + ": expected `claimable <hash> " +
                       "<amount_msat> <deadline>` or `payment_sent <hash> <preimage>` " +
                       "(lowercase hex): " + line);
    }
    out.push_back(std::move(cb));
  }
  return out;
}

void check_bounded(const Options& options) {
  if (options.duration_s || options.count) return;
  if (options.background_writes) {
    throw SetupError("--background-writes needs --duration or --count to stop");
  }
  if (options.callbacks.empty() && !options.claim_jobs) {
    throw SetupError("nothing to do: give --hashes, --claim-jobs or --background-writes");
  }
}

nlohmann::json run(const Options& options) {
  check_bounded(options);
  std::vector<std::unique_ptr<lsp_sqlite::Connection>> connections;
  const int claimers = options.claim_jobs ? 1 : 0;
  try {
    for (int i = 0; i < options.threads + claimers; ++i) {
      connections.push_back(
          std::make_unique<lsp_sqlite::Connection>(options.db, options.busy_timeout_ms));
    }
    check_tables(connections.front()->get());
  } catch (const std::runtime_error& e) {
    throw SetupError(e.what());
  }

  Recorder recorder(options.busy_timeout_ms);
  const auto start = Clock::now();
  std::optional<Clock::time_point> deadline;
  if (options.duration_s) {
    deadline = start + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(*options.duration_s));
  }
  const auto time_up = [&] { return deadline && Clock::now() >= *deadline; };
  const auto interval = std::chrono::milliseconds(options.interval_ms);
  std::atomic<std::size_t> next_callback{0};
  std::atomic<std::int64_t> started{0};
  std::atomic<int> writers_left{options.threads};

  const auto writer = [&](int index) {
    sqlite3* db = connections[static_cast<std::size_t>(index)]->get();
    std::mt19937_64 rng(std::random_device{}() + static_cast<std::uint64_t>(index));
    while (!time_up()) {
      if (options.count && started.fetch_add(1) >= *options.count) break;
      const std::size_t i = next_callback.fetch_add(1);
      if (i < options.callbacks.size()) {
        const Callback& cb = options.callbacks[i];
        if (cb.kind == Callback::Kind::claimable) {
          recorder.run(Kind::claimable, db, cb.payment_hash,
                       [&] { return fire_claimable(db, cb); });
        } else {
          recorder.run(Kind::payment_sent, db, cb.payment_hash,
                       [&] { return fire_payment_sent(db, cb); });
        }
      } else if (options.background_writes) {
        recorder.run(Kind::background, db, kBackgroundPeer,
                     [&] { return background_write(db, rng); });
      } else {
        break;
      }
      std::this_thread::sleep_for(interval);
    }
    --writers_left;
  };

  // The LSP's cron goroutine: claims the next job and, once "processed", marks it done.
  const auto claimer = [&] {
    sqlite3* db = connections.back()->get();
    int failures_after_writers = 0;
    while (!time_up()) {
      // Read before claiming: a writer that is done has committed all its jobs.
      const bool writers_done = writers_left.load() == 0;
      std::int64_t job = 0;
      const auto claimed =
          recorder.run(Kind::claim, db, "next job", [&] { return claim_job(db, job); });
      if (claimed == Outcome::applied) {
        recorder.run(Kind::done, db, "job " + std::to_string(job), [&] {
          Statement(db, kMarkDone).bind(1, job).step();
          return Outcome::applied;
        });
        failures_after_writers = 0;
        std::this_thread::sleep_for(interval);
        continue;
      }
      if (writers_done && !deadline) {
        if (claimed == Outcome::not_applied) break;  // the outbox is drained
        if (++failures_after_writers >= kClaimFailuresAfterWriters) break;
      }
      std::this_thread::sleep_for(std::max<Clock::duration>(interval, kIdlePoll));
    }
  };

  std::vector<std::thread> threads;
  for (int i = 0; i < options.threads; ++i) threads.emplace_back(writer, i);
  if (options.claim_jobs) threads.emplace_back(claimer);
  for (auto& t : threads) t.join();
  return recorder.report(std::chrono::duration<double>(Clock::now() - start).count());
}

}  // namespace lsp_writer
