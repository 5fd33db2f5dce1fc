#include "lsp_sweeper/util/check.hpp"

#include <algorithm>
#include <utility>

namespace lsp_sweeper::util {

Check ok(std::string what, std::string detail) {
  return {Check::Status::Ok, std::move(what), std::move(detail)};
}
Check fail(std::string what, std::string detail) {
  return {Check::Status::Fail, std::move(what), std::move(detail)};
}
Check warn(std::string what, std::string detail) {
  return {Check::Status::Warn, std::move(what), std::move(detail)};
}

std::string format(const Check& check) {
  const char* mark = check.status == Check::Status::Ok     ? "ok  "
                     : check.status == Check::Status::Fail ? "FAIL"
                                                           : "warn";
  std::string line = std::string(mark) + "  " + check.what;
  if (!check.detail.empty()) line += ": " + check.detail;
  return line;
}

bool all_pass(const std::vector<Check>& checks) {
  return std::none_of(checks.begin(), checks.end(),
                      [](const Check& c) { return c.status == Check::Status::Fail; });
}

}  // namespace lsp_sweeper::util
