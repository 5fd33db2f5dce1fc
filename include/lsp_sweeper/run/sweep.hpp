// One sweep: fetch (node) -> load (store) -> plan -> apply -> RunResult, page by page so
// memory does not grow with the node's history.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "lsp_sweeper/node/client.hpp"
#include "lsp_sweeper/report/report.hpp"
#include "lsp_sweeper/store/store.hpp"

namespace lsp_sweeper::run {

struct SweepOptions {
  std::string node_url;  // for the report only; redacted there
  bool dry_run = false;
  std::int64_t min_age = 30;               // seconds
  std::int64_t lookback = 14 * 24 * 3600;  // seconds
  std::int64_t waiting_grace = 15 * 60;    // seconds
  std::uint32_t page_size = 1000;
};

// Runs one sweep. Never throws for a node or database failure: the result is then
// incomplete, with `error` saying what failed; repairs already committed stay committed.
report::RunResult run_sweep(node::PaymentSource& node, store::RecordStore& store,
                            const SweepOptions& options);

// The result of a run that failed before its sweep could start (the database unreachable):
// incomplete, with `error`, so its report and metrics say so like any failed run's.
report::RunResult run_not_started(const SweepOptions& options,
                                  std::chrono::system_clock::time_point started_at,
                                  std::string error);

// A random RFC 4122 version 4 UUID.
std::string new_run_id();

}  // namespace lsp_sweeper::run
