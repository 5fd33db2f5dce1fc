// What one run did, and its views: the JSON report (a contract read by alerting and tests),
// the exit code, and the closing log line. None of the views recomputes anything.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lsp_sweeper/node/decode.hpp"
#include "lsp_sweeper/plan/plan.hpp"
#include "lsp_sweeper/ledger_types.hpp"

namespace lsp_sweeper::report {

// The documented exit codes (README, "Exit codes").
enum ExitCode : int {
  kExitClean = 0,           // nothing left to do
  kExitNeedsAttention = 1,  // divergences need a person, a dry run found repairs, or an
                            // alert could not be delivered
  kExitIncomplete = 2,      // the run could not complete (node, database, configuration), or
                            // an output (report, metrics file) could not be written
  kExitUsage = 64,          // bad command line
  kExitBusy = 75,           // another run holds the sweep lock, or the node kept changing
                            // state: try again later (EX_TEMPFAIL)
};

struct NodeSummary {
  std::string url;  // redacted
  std::optional<node::Dialect> dialect;
  int pages = 0;
  std::int64_t payments_scanned = 0;
  std::int64_t payments_rejected = 0;
  std::optional<std::int64_t> height;
};

// How the run asked the node for the payments of one listing (README, "Targeted lookups").
enum class ListingWay { Skipped, Listed, LookedUp };
std::string_view to_string(ListingWay w);

struct ListingLookup {
  NodeStatus status = NodeStatus::Claimable;  // the listing's: Claimable, Succeeded, ...
  ListingWay way = ListingWay::Listed;
  std::optional<std::int64_t> created_after;  // a listing's bound, unix seconds; none: no bound
  std::int64_t records_awaiting_node = 0;     // records a payment of this status may change
  std::string reason;                         // why this bound, or why skipped
};

// How the run asked the node: per listing, the filtered listing or one POST /getpayment per
// leg of each record awaiting it (README, "Targeted lookups"). For the looked-up listings,
// payments_scanned counts the payments the lookups returned and no orphan is counted: every
// lookup is for a record.
struct LookupSummary {
  std::string reason;  // how the ways were chosen: forced, or by the counts
  std::optional<std::int64_t> records_awaiting_node;  // by any listing, open divergences' too
  std::vector<ListingLookup> listings;                // in the order they ran
  std::int64_t requests = 0;                          // POST /getpayment requests
  std::int64_t not_found = 0;                         // of those, answered "not found"
};

// "list" when some listing was listed and none looked up, "targeted" when none was listed
// (the node then saw lookups only, or nothing but the height request), "mixed" otherwise.
std::string_view lookup_mode(const LookupSummary& lookup);

struct RunResult {
  std::string run_id;
  bool dry_run = false;
  ApplyMode apply = ApplyMode::Database;  // how repairs were applied (--apply)
  bool complete = false;
  std::chrono::system_clock::time_point started_at;
  std::chrono::system_clock::time_point finished_at;
  NodeSummary node;
  LookupSummary lookup;
  std::vector<plan::Repair> repairs;
  std::vector<plan::Divergence> divergences;
  std::int64_t orphans = 0;
  std::int64_t deferred = 0;
  double apply_seconds = 0;  // wall time spent applying repairs (the store's statements)
  // Set once a complete run that may write has recorded its divergences in
  // lsp_sweeper.divergences: `tracked` holds one entry per divergence, in the same order,
  // and `resolved` the open ones this run resolved. Empty otherwise (dry or incomplete run).
  bool divergences_recorded = false;
  std::vector<StoredDivergence> tracked;
  std::vector<StoredDivergence> resolved;
  int alerts_sent = 0;               // webhook deliveries that succeeded
  std::vector<std::string> notes;    // things the operator should know once per run
  std::optional<std::string> error;  // why the run could not complete
  // The node was still changing state (403 ChangingState) after the client's retries: an
  // incomplete run that only needs to be tried again (exit 75, not 2).
  bool retry_later = false;
  std::int64_t alert_failures = 0;   // alert deliveries that failed (set by the alert step)
  // lsp_sweeper.runs holds this run's row, which run::record_outcome completes.
  bool run_recorded = false;
  // The outputs (report, metrics file) that could not be written, each with its reason. Set
  // before the outputs that could be are written, so they all carry the same exit code.
  std::vector<std::string> output_failures;
};

int exit_code(const RunResult& result);
nlohmann::ordered_json to_json(const RunResult& result);
std::string summary_line(const RunResult& result);
// "scanning the node: 12 pages, 11873 payments", for a terminal.
std::string progress_line(const NodeSummary& node);

// One divergence as the report and the alerts show it.
nlohmann::ordered_json divergence_json(const plan::Divergence& d);
// The same plus first_seen_at, for a divergence kept in lsp_sweeper.divergences.
nlohmann::ordered_json divergence_json(const StoredDivergence& d);

std::chrono::system_clock::time_point from_unix(std::int64_t seconds);

// RFC 3339 in UTC with millisecond precision, e.g. 2026-11-23T17:24:01.123Z.
std::string rfc3339(std::chrono::system_clock::time_point t);

}  // namespace lsp_sweeper::report
