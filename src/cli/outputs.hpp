// The outputs of one run (the JSON report, the metrics file), written so that they, the
// run's row in lsp_sweeper.runs and the closing summary line all carry one exit code.
#pragma once

#include <string>

#include "lsp_sweeper/report/report.hpp"

namespace lsp_sweeper::cli {

// Makes a closed standard stream fail its writes (EBADF, as when closed) instead of letting
// the next file or socket opened take its number and receive the report; ignores SIGPIPE so
// that writing to a pipe nobody reads fails with EPIPE, logged, rather than killing the run.
void guard_standard_streams();

// Writes the report to `report_path` ('-' = stdout) and the metrics to `metrics_path` (each
// skipped when empty), as util::OutputFile does. Each failure is logged with its reason and
// added to result.output_failures (exit code 2) before anything is put in place: files are
// written again when a failure changed the exit code, and a stream (stdout, a FIFO, a
// device), which takes one write, is written after the files.
void write_outputs(const std::string& report_path, const std::string& metrics_path,
                   report::RunResult& result);

}  // namespace lsp_sweeper::cli
