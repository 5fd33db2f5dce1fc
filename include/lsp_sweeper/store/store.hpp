// The LSP's order records in PostgreSQL, and the sweeper's own audit schema. RecordStore is
// the seam the run loop is tested through; PgStore is the real thing (libpqxx). Nothing past
// this header knows a table name, and every SQL value is a parameter.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "lsp_sweeper/domain.hpp"
#include "lsp_sweeper/plan/plan.hpp"
#include "lsp_sweeper/util/check.hpp"

namespace lsp_sweeper::store {

// A database failure, with the statement or step it happened in. The connection string is
// never part of the message.
struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What the sweeper writes about a finished run (lsp_sweeper.runs).
struct RunRecord {
  std::string run_id;
  std::string status;  // "ok", "divergences", "failed"
  int exit_code = 0;
  std::string report_json;
};

// A divergence as lsp_sweeper.divergences keeps it. Times are unix seconds.
struct StoredDivergence {
  std::int64_t id = 0;
  plan::Divergence divergence;
  bool is_new = false;  // first seen by the run that recorded it
  std::int64_t first_seen_at = 0;
  std::int64_t last_seen_at = 0;
  std::optional<std::int64_t> last_alerted_at;
};

// What recording one run's divergences changed.
struct DivergenceUpdate {
  std::vector<StoredDivergence> seen;      // one per divergence passed in, same order
  std::vector<StoredDivergence> resolved;  // open before, not seen by this run
};

// Receives one page of records.
using RecordSink = std::function<void(std::vector<LspRecord>&)>;

// Records awaiting the node: those some node payment could still turn into a repair or a
// divergence (a status outside plan::states_needing_no_lookup(flow)), and those whose hash
// has an open divergence (a deferred payment keeps it open, so it must be looked at).
struct RecordAwaitingNode {
  LspRecord record;  // outbox_actions left empty
  bool open_divergence = false;
};

// What choosing between the listings and targeted lookups needs, from one small query.
struct AwaitingNodeCount {
  std::int64_t records = 0;  // records awaiting the node, counted up to the limit asked for
  // Open divergences that belong to no record (malformed payments): only a listing sees
  // their payments again.
  std::int64_t unbound_divergences = 0;
  std::int64_t open_divergences = 0;  // all of them
};

// Receives one batch of records awaiting the node; returns false to stop.
using AwaitingNodeSink = std::function<bool(std::vector<RecordAwaitingNode>&)>;

class RecordStore {
 public:
  virtual ~RecordStore() = default;

  // The APay and relay records whose payment_hash is in `hashes` (lowercase hex), in one
  // round trip per table. outbox_actions is left empty.
  virtual std::vector<LspRecord> records_for(const std::vector<std::string>& hashes) = 0;

  // The records of either flow in a state that needs an outbox job
  // (plan::jobs_required_by_state) and lacking that job, with outbox_actions filled, passed to
  // `on_page` a page of at most `page_size` at a time (in hash order, one flow after the
  // other), so memory holds one page however many there are. on_page may apply repairs.
  virtual void records_lacking_outbox_job(std::uint32_t page_size, const RecordSink& on_page) = 0;

  // Counts the records awaiting the node, stopping at `limit`, and the unbound divergences.
  virtual AwaitingNodeCount count_awaiting_node(std::int64_t limit) = 0;

  // Streams the records awaiting the node to `sink` in batches of at most `batch`, one query
  // per batch (flow by flow, by payment hash), with no transaction open while `sink` runs.
  virtual void records_awaiting_node(std::size_t batch, const AwaitingNodeSink& sink) = 0;

  // Applies repairs and sets each one's `applied`. Repairs of the same transition go
  // together in one statement, hence one transaction, per batch: for each repair the
  // conditional UPDATE (skipped for MissingOutboxJob), the outbox INSERT ... ON CONFLICT DO
  // NOTHING only when the UPDATE changed its row (for MissingOutboxJob: only while the record
  // is still in that state), and its audit row in lsp_sweeper.actions. `applied` is whether
  // the record was changed (or, for MissingOutboxJob, the job inserted); false is the normal
  // answer to a callback that landed meanwhile. On a failure the failing batch is rolled back
  // whole, batches committed before it stay committed (with `applied` set), and StoreError
  // says which one failed.
  virtual void apply(std::vector<plan::Repair>& repairs, const std::string& run_id) = 0;

  // lsp_sweeper.runs: a row when the run starts, completed when it ends.
  virtual void begin_run(const std::string& run_id, bool dry_run) = 0;
  virtual void finish_run(const RunRecord& run) = 0;

  // lsp_sweeper.divergences, in one transaction: opens a row for each divergence in `seen`
  // that has no open row (kind, flow, payment_hash) and refreshes the open ones. With
  // `resolve_unseen` it then resolves every open row not seen now, except those whose
  // payment_hash is in `keep_open` (payments the run saw but left for later).
  virtual DivergenceUpdate record_divergences(const std::vector<plan::Divergence>& seen,
                                              bool resolve_unseen,
                                              const std::vector<std::string>& keep_open) = 0;

  // Sets last_alerted_at = now() on these rows (an alert about them was delivered).
  virtual void mark_alerted(const std::vector<std::int64_t>& ids) = 0;
};

// A finished or running sweep, as `history` shows it (lsp_sweeper.runs).
struct RunSummary {
  std::string run_id;
  std::int64_t started_at = 0;             // unix seconds
  std::optional<double> duration_seconds;  // none while running
  std::string status;
  std::optional<int> exit_code;
  std::optional<std::int64_t> scanned, repaired, divergences;  // from the report, if any
};

// The key of the session-level advisory lock a writing run holds for its whole duration
// (README, "Overlapping runs"): pg_try_advisory_lock(7814713333662445171), "lsp_runs" in
// ASCII. Distinct from the migration lock, so a run never waits on a migrate.
constexpr std::int64_t kSweepLockKey = 0x6c73705f72756e73;

class PgStore final : public RecordStore {
 public:
  // Connects with any libpq connection string (URI or key=value).
  explicit PgStore(const std::string& connection_string);
  ~PgStore() override;
  PgStore(const PgStore&) = delete;
  PgStore& operator=(const PgStore&) = delete;

  std::vector<LspRecord> records_for(const std::vector<std::string>& hashes) override;
  void records_lacking_outbox_job(std::uint32_t page_size, const RecordSink& on_page) override;
  AwaitingNodeCount count_awaiting_node(std::int64_t limit) override;
  void records_awaiting_node(std::size_t batch, const AwaitingNodeSink& sink) override;
  void apply(std::vector<plan::Repair>& repairs, const std::string& run_id) override;
  void begin_run(const std::string& run_id, bool dry_run) override;
  void finish_run(const RunRecord& run) override;
  DivergenceUpdate record_divergences(const std::vector<plan::Divergence>& seen,
                                      bool resolve_unseen,
                                      const std::vector<std::string>& keep_open) override;
  void mark_alerted(const std::vector<std::int64_t>& ids) override;

  // For `history`: the newest `limit` runs, newest first, and the open divergences, oldest
  // first.
  std::vector<RunSummary> recent_runs(int limit);
  std::vector<StoredDivergence> open_divergences();

  // Takes the sweep lock on this store's connection without waiting. false: another run
  // holds it. Held until the store is destroyed (which releases it) or the connection
  // closes, so a crashed run never leaves it behind.
  bool try_lock_sweep();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The version of the sweeper's own schema this build expects.
int expected_schema_version();

// Creates or upgrades the lsp_sweeper schema (idempotent, under an advisory lock, in one
// transaction), and with `with_lsp_schema` the LSP's own tables too (for development, tests
// and the demo). Returns the schema version now in place.
int migrate(const std::string& connection_string, bool with_lsp_schema);

// `lsp-sweeper check`, the database's half: reachable, the sweeper's schema at
// expected_schema_version(), the LSP's tables present, and the connected role holding every
// privilege the sweep uses (Fail when one is missing) and no more (Warn: superuser, owner of
// an LSP table, or a privilege on one the sweep never uses).
std::vector<util::Check> check_database(const std::string& connection_string);

// A libpq connection string with any password removed, for logs and error messages.
std::string redact_connection_string(const std::string& connection_string);

}  // namespace lsp_sweeper::store
