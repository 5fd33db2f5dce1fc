// The values the sweeper's own ledger keeps about runs and divergences, shared by the store
// (which writes and reads them) and the report (which shows them) without the report
// depending on the store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lsp_sweeper/plan/plan.hpp"

namespace lsp_sweeper {

// What the sweeper writes about a finished run.
struct RunRecord {
  std::string run_id;
  std::string status;  // "ok", "divergences", "failed"
  int exit_code = 0;
  std::string report_json;
};

// A divergence as the ledger keeps it. Times are unix seconds.
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

// A finished or running sweep, as `history` shows it.
struct RunSummary {
  std::string run_id;
  std::int64_t started_at = 0;             // unix seconds
  std::optional<double> duration_seconds;  // none while running
  std::string status;
  std::optional<int> exit_code;
  std::optional<std::int64_t> scanned, repaired, divergences;  // from the report, if any
  // 'running', but its process is gone: no run held the sweep lock when `history` looked
  // (a run killed, or its machine lost, before it could finish its row).
  bool abandoned = false;
};

}  // namespace lsp_sweeper
