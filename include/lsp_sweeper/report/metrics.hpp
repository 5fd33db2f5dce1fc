// The run as Prometheus text exposition format, for node_exporter's textfile collector
// (README, "Metrics"). A view of RunResult like the JSON report: nothing is recomputed.
#pragma once

#include <optional>
#include <string>

#include "lsp_sweeper/report/report.hpp"

namespace lsp_sweeper::report {

// A run counts as a success when it completed and was not a dry run (a dry run repairs
// nothing, so it must not hide that the real runs stopped).
bool is_success(const RunResult& result);

// The metrics of `result`. lsp_sweeper_last_success_timestamp_seconds is this run's finish
// time when it is a success, else `previous_success` (omitted when there is none yet).
std::string to_prometheus(const RunResult& result, std::optional<double> previous_success);

// lsp_sweeper_last_success_timestamp_seconds as written by to_prometheus into `text` (the
// previous metrics file), if it is there.
std::optional<double> last_success_timestamp(const std::string& text);

}  // namespace lsp_sweeper::report
