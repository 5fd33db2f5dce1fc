// One line of `lsp-sweeper check`: a pre-flight finding about the node or the database.
#pragma once

#include <string>
#include <vector>

namespace lsp_sweeper::util {

struct Check {
  // Warn: works, but is more than the sweeper needs or worth a look; does not fail the check.
  enum class Status { Ok, Fail, Warn };
  Status status = Status::Ok;
  std::string what;    // e.g. "node reachable"
  std::string detail;  // e.g. the URL, or why it failed
};

// A finding of each status.
Check ok(std::string what, std::string detail = "");
Check fail(std::string what, std::string detail);
Check warn(std::string what, std::string detail);

// "ok    what: detail", "FAIL  ...", "warn  ...": fixed-width, for a terminal and for logs.
std::string format(const Check& check);

// True when no check failed (warnings allowed).
bool all_pass(const std::vector<Check>& checks);

}  // namespace lsp_sweeper::util
