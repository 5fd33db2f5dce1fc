// What one run did, and its views: the JSON report (a contract read by alerting and tests),
// the exit code, and the closing log line. None of the views recomputes anything.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lsp_sweeper/node/decode.hpp"
#include "lsp_sweeper/plan/plan.hpp"

namespace lsp_sweeper::report {

// The documented exit codes (README, "Exit codes").
enum ExitCode : int {
  kExitClean = 0,           // nothing left to do
  kExitNeedsAttention = 1,  // divergences need a person, or a dry run found repairs
  kExitIncomplete = 2,      // the run could not complete (node, database, configuration)
  kExitUsage = 64,          // bad command line
  kExitBusy = 75,           // another run holds the sweep lock: try again later (EX_TEMPFAIL)
};

struct NodeSummary {
  std::string url;  // redacted
  std::optional<node::Dialect> dialect;
  int pages = 0;
  std::int64_t payments_scanned = 0;
  std::int64_t payments_rejected = 0;
  std::optional<std::int64_t> height;
};

struct RunResult {
  std::string run_id;
  bool dry_run = false;
  bool complete = false;
  std::chrono::system_clock::time_point started_at;
  std::chrono::system_clock::time_point finished_at;
  NodeSummary node;
  std::vector<plan::Repair> repairs;
  std::vector<plan::Divergence> divergences;
  std::int64_t orphans = 0;
  std::int64_t deferred = 0;
  std::vector<std::string> notes;    // things the operator should know once per run
  std::optional<std::string> error;  // why the run could not complete
  std::int64_t alert_failures = 0;   // alert deliveries that failed (set by the alert step)
};

int exit_code(const RunResult& result);
nlohmann::ordered_json to_json(const RunResult& result);
std::string summary_line(const RunResult& result);

// RFC 3339 in UTC with millisecond precision, e.g. 2026-11-23T17:24:01.123Z.
std::string rfc3339(std::chrono::system_clock::time_point t);

}  // namespace lsp_sweeper::report
