// The seam between a sweep and the databases it works on. Three interfaces, one per thing the
// run loop asks of a database: the LSP's records (LspRecords), applying repairs to them
// (Applier), and the sweeper's own ledger of runs, actions, divergences and the overlap lock
// (Ledger). open_backend() picks the implementation from the --db URL, in one table
// (backend.cpp): `sqlite:PATH` is the LSP's SQLite file, anything else a libpq connection
// string. Nothing past this header knows a table name, and every SQL value is a parameter.
//
// The store never calls the planner: what the lookups need to know of the transition table
// (the states that wait on a job, the states no node payment can change) is handed in.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "lsp_sweeper/domain.hpp"
#include "lsp_sweeper/ledger_types.hpp"
#include "lsp_sweeper/plan/plan.hpp"
#include "lsp_sweeper/util/check.hpp"

namespace lsp_sweeper::store {

// A database failure, with the statement or step it happened in. The connection string is
// never part of the message.
struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The database stayed locked by another writer (the LSP) for longer than the sweeper waits:
// nothing of the failing step was written; the next run does it.
struct StoreBusy : StoreError {
  using StoreError::StoreError;
};

// What awaiting_node_since finds for one listing.
struct AwaitingSince {
  std::int64_t records = 0;            // rows not in a quiet state
  std::optional<std::int64_t> oldest;  // unix seconds; none when no row counts
  std::optional<std::int64_t> newest;
  bool unreadable = false;  // a counted row's created_at is not a time (the table is untrusted)
  bool operator==(const AwaitingSince&) const = default;
};

// Receives one page of records; returns false to stop.
using RecordSink = std::function<bool(std::vector<LspRecord>&)>;

// How many outbox jobs the LSP's cron claims per tick, oldest id first (its batch size).
inline constexpr std::int64_t kHeadOfLineSlots = 10;
// Stuck jobs reported per reason and run, at most.
inline constexpr std::int64_t kMaxStuckJobs = 100;

class LspRecords {
 public:
  virtual ~LspRecords() = default;

  // The flows whose table this database has: Apay always, Relay only where
  // lightning_send_mappings exists (the LSP's PostgreSQL form has none).
  virtual std::vector<Flow> flows() const = 0;

  // Every row of every flow whose payment_hash is in `hashes` (lowercase hex), terminal rows
  // included, each with the outbox jobs of its hash, read in one short read transaction.
  virtual std::vector<LspRecord> records_for(const std::vector<std::string>& hashes) = 0;

  // The rows of `flow` in a state of `jobs` lacking a job of that state's action (in any job
  // status), with outbox_jobs filled, passed to `on_page` at most `page_size` at a time in
  // row order. No transaction is open while on_page runs (it may apply repairs).
  virtual void records_lacking_outbox_job(Flow flow, const std::vector<RequiredJob>& jobs,
                                          std::uint32_t page_size, const RecordSink& on_page) = 0;

  // How far back each of the node's listings must reach for `flow`, one entry per entry of
  // `quiet` (the states no payment of that listing can change): the rows of `flow` not in one
  // of them, counted; and over those rows, the rows of `open_hashes` (open divergences), and
  // every row of any flow sharing a hash with one of them (a payment of the hash may be older
  // than its live row: a released reservation's hash goes back to the pool), the oldest and
  // newest created_at in unix seconds, and whether one of them cannot be read as a time. One
  // short read.
  virtual std::vector<AwaitingSince> awaiting_node_since(
      Flow flow, const std::vector<std::vector<std::string>>& quiet,
      const std::vector<std::string>& open_hashes) = 0;

  // The outbox jobs that look stuck, in one short read transaction, each reason's in id order
  // and at most kMaxStuckJobs of each: pending ones with attempts >= 3 created more than
  // `stuck_after_seconds` ago (Retrying); processing ones whose locked_until is more than
  // `stuck_after_seconds` ago (LockExpired); pending ones with attempts 0 and at least
  // kHeadOfLineSlots pending jobs with attempts > 0 and lower ids (HeadOfLine: the LSP claims
  // at most that many a tick, oldest id first). Never writes.
  virtual std::vector<StuckJob> stuck_jobs(std::int64_t stuck_after_seconds) = 0;

  // The same rows, passed to `sink` in batches of at most `batch` in row order, one short
  // query per batch and no transaction open while `sink` runs. outbox_jobs is left empty.
  virtual void records_awaiting_node(Flow flow, const std::vector<std::string>& quiet,
                                     std::size_t batch, const RecordSink& sink) = 0;

  // The hashes with two or more rows of `flow` whose status is not one of `terminal` (live
  // twins: whichever payment of the hash is planned reports them), at most `limit`, in hash
  // order. One short query.
  virtual std::vector<std::string> live_twin_hashes(Flow flow,
                                                    const std::vector<std::string>& terminal,
                                                    std::int64_t limit) = 0;

  // The rows of `flow` whose status is not one of `terminal` and whose payment_hash is not 64
  // lowercase hex digits (the form the LSP writes and every lookup by hash uses), at most
  // `limit`, in row order. outbox_jobs is left empty. One scan of the table a run.
  virtual std::vector<LspRecord> records_with_malformed_hash(
      Flow flow, const std::vector<std::string>& terminal, std::int64_t limit) = 0;
};

class Applier {
 public:
  virtual ~Applier() = default;

  // Applies repairs and sets each one's `applied`. Each repair is atomic with its outbox job
  // and its audit row: the conditional UPDATE of its row (`id`, `payment_hash`, and a status in
  // `from`; skipped for MissingOutboxJob), the outbox INSERT that keeps an existing job only
  // when the UPDATE changed the row (for MissingOutboxJob: only while the record is still in
  // that state), and an audit row whether or not it applied. A repair whose job of that action
  // already exists in a status the LSP will not run again (done, failed) is not applied.
  // `applied: false` is the normal answer to a callback that landed meanwhile. Repairs go in
  // batches, one transaction each; on a failure the failing batch is rolled back whole,
  // batches committed before it stay committed (with `applied` set), and StoreError says which
  // one failed.
  virtual void apply(std::vector<plan::Repair>& repairs, const std::string& run_id) = 0;
};

class Ledger {
 public:
  virtual ~Ledger() = default;

  // Takes the sweep lock without waiting. false: another run holds it. Held until the backend
  // is destroyed or the process ends, so a crashed run never leaves it behind.
  virtual bool try_lock_sweep() = 0;
  // Releases the sweep lock if this backend holds it. `history` takes the lock for a moment
  // (on a ReadOnly backend too) to tell whether a run is active: a 'running' row while the
  // lock is free belongs to a run whose process is gone.
  virtual void unlock_sweep() = 0;

  // A row for the run when it starts, completed when it ends.
  virtual void begin_run(const std::string& run_id, bool dry_run) = 0;
  virtual void finish_run(const RunRecord& run) = 0;

  // In one transaction: opens a row for each divergence in `seen` that has no open row
  // (kind, flow, payment_hash) and refreshes the open ones. With `resolve_unseen` it then
  // resolves every open row not seen now, except those whose payment_hash is in `keep_open`
  // (payments the run saw but left for later).
  virtual DivergenceUpdate record_divergences(const std::vector<plan::Divergence>& seen,
                                              bool resolve_unseen,
                                              const std::vector<std::string>& keep_open) = 0;

  // Marks these rows alerted now (an alert about them was delivered).
  virtual void mark_alerted(const std::vector<std::int64_t>& ids) = 0;

  // The open divergences, oldest first.
  virtual std::vector<StoredDivergence> open_divergences() = 0;

  // The newest `limit` runs, newest first.
  virtual std::vector<RunSummary> recent_runs(int limit) = 0;

  // --apply lsp-callbacks: the audit row of each repair replayed to the LSP's endpoint (its
  // `delivery` set), with the LSP's answer, in one short transaction. Nothing of the LSP's
  // tables is written: the LSP applied (or refused) the repair itself.
  virtual void record_deliveries(const std::vector<plan::Repair>& repairs,
                                 const std::string& run_id) = 0;
};

// What a run opens the database for. ReadOnly (a dry run, `history`) can write nothing, and
// on SQLite opens the file read-only, so not a byte of it changes.
enum class Access { ReadOnly, ReadWrite };

// One database, opened by open_backend. The three parts share one connection; the sweep lock,
// once taken, lives as long as the backend.
struct Backend {
  std::string kind;  // "sqlite" or "postgresql"
  std::unique_ptr<LspRecords> records;
  std::unique_ptr<Applier> applier;
  std::unique_ptr<Ledger> ledger;
};

// Opens the database `db_url` names: `sqlite:PATH` or `sqlite:///abs/path` for the LSP's SQLite
// file (which must exist and be a database; for ReadWrite, writable), anything else as a libpq
// connection string. Refuses a database whose sweeper schema is missing (run `migrate`) or
// other than this build's version. Throws StoreError with one clear line.
Backend open_backend(const std::string& db_url, Access access);

// The version of the sweeper's own schema this build expects (the same on every backend).
int expected_schema_version();

// Creates or upgrades the sweeper's own tables (idempotent, versioned, in one transaction),
// and with `with_lsp_schema` the LSP's own tables too, exactly as the LSP creates them (for
// development, tests and the demo). Touches nothing else of the LSP. Only with
// `with_lsp_schema` may a SQLite file that does not exist be created. Returns the schema
// version now in place.
int migrate(const std::string& db_url, bool with_lsp_schema);

// `lsp-sweeper check`, the database's half: reachable, the sweeper's schema at
// expected_schema_version(), the LSP's tables present, and (PostgreSQL) the role holding every
// privilege a sweep applying by `mode` uses and no more (LspCallbacks: only SELECT on the
// LSP's tables). Never writes.
std::vector<util::Check> check_database(const std::string& db_url,
                                        ApplyMode mode = ApplyMode::Database);

// `db_url` fit for logs and error messages: any password removed.
std::string redact_db_url(const std::string& db_url);

}  // namespace lsp_sweeper::store
