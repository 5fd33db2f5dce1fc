// One sweep: fetch (node) -> load (LSP records) -> plan -> apply -> RunResult, page by page
// so memory does not grow with the node's history. The database is reached only through the
// store's three interfaces, so the whole loop runs against an in-memory fake in unit tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lsp_sweeper/node/client.hpp"
#include "lsp_sweeper/report/alert.hpp"
#include "lsp_sweeper/lsp/callbacks.hpp"
#include "lsp_sweeper/report/report.hpp"
#include "lsp_sweeper/run/replay.hpp"
#include "lsp_sweeper/store/store.hpp"

namespace lsp_sweeper::run {

// How a run asks the node (README, "Targeted lookups"): Auto looks the payments of a listing
// up one by one when at most targeted_max records can need one, and lists them otherwise.
enum class LookupMode { Auto, List, Targeted };

struct SweepOptions {
  std::string node_url;  // for the report only; redacted there
  bool dry_run = false;
  // Database: the store's Applier writes each repair. LspCallbacks: each missed callback is
  // replayed to the LSP (run_sweep's `lsp`), and a missing outbox job, which no endpoint adds,
  // is reported as OutboxJobMissing.
  ApplyMode apply = ApplyMode::Database;
  ReplayOptions replay;
  std::int64_t min_age = 30;               // seconds
  std::int64_t lookback = 14 * 24 * 3600;  // seconds
  std::int64_t waiting_grace = 15 * 60;    // seconds
  std::int64_t stuck_after = 30 * 60;      // seconds before an outbox job is reported stuck
  std::int64_t claim_min_blocks = 102;     // plan::PlanContext::claim_min_blocks
  std::uint32_t page_size = 1000;
  LookupMode lookup = LookupMode::Auto;
  std::int64_t targeted_max = 200;          // records awaiting the node
  // Each listing reaches back only to the oldest record that can need it, and is skipped when
  // none can (README, "Targeted lookups"); false (--whole-window): the whole window, the full
  // scan the narrowed run is tested against.
  bool narrow = true;
  std::vector<std::string> alert_webhooks;  // full URLs; never logged as such
  std::int64_t realert_after = 6 * 3600;    // seconds
  report::WebhookOptions webhook;
  // Called after each page of the node's listings with the counts so far, for a progress
  // display on a terminal; empty under cron.
  std::function<void(const report::NodeSummary&)> on_progress;
};

// Runs one sweep. Never throws for a node or database failure: the result is then
// incomplete, with `error` saying what failed; repairs already committed stay committed.
// A complete run that may write then records its divergences in the ledger and sends the
// alert it owes to every webhook; a failed delivery is counted, never fatal. A dry run only
// reads (the backend may be opened read-only). A run that may write opens its row in the
// ledger's runs; record_outcome completes it.
// `lsp` is the LSP's callback endpoints, required for ApplyMode::LspCallbacks (never called in
// a dry run) and unused otherwise.
report::RunResult run_sweep(node::PaymentSource& node, store::Backend& db,
                            const SweepOptions& options, lsp::CallbackEndpoints* lsp = nullptr);

// Completes the run's row in lsp_sweeper.runs (status, exit code, report), if it has one.
// Called once the result is final, i.e. after the run's outputs were written (a failed one
// changes the exit code), so the row says what the report, metrics and summary line say.
// A failure to write the row is logged, not thrown.
void record_outcome(store::Ledger& ledger, const report::RunResult& result);

// The result of a run that failed before its sweep could start (the database unreachable):
// incomplete, with `error`, so its report and metrics say so like any failed run's.
report::RunResult run_not_started(const SweepOptions& options,
                                  std::chrono::system_clock::time_point started_at,
                                  std::string error);

// A random RFC 4122 version 4 UUID.
std::string new_run_id();

// The newest `limit` runs for `history`, each 'running' one whose process is gone marked
// abandoned. Tells by the sweep lock, taken without waiting and released at once: a run holds
// it from before its row is written until the row is finished, so while it is free no run is
// active and every 'running' row is abandoned; while another run holds it, that run's row is
// the newest 'running' one and only the older are. The runs are read while the lock is held,
// so a run starting meanwhile is not mistaken for one of them. When the lock cannot be tried
// (e.g. a lock file this user cannot open), nothing is marked.
std::vector<RunSummary> recent_runs_marking_abandoned(store::Ledger& ledger, int limit);

}  // namespace lsp_sweeper::run
