// Runs a program to completion with extra environment variables, capturing what it prints,
// so the tests drive the real lsp-sweeper binary exactly as cron would.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace lsp_sweeper::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed for running past the timeout
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Runs argv[0] (a path) with argv, the current environment plus `env` (a value replaces an
// inherited one; an empty value removes it), and no standard input.
ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env = {},
                          std::chrono::seconds timeout = std::chrono::seconds(60));

}  // namespace lsp_sweeper::testing
