#include "validators.hpp"

#include <charconv>

#include "lsp_sweeper/node/client.hpp"
#include "lsp_sweeper/util/duration.hpp"

namespace lsp_sweeper::cli {

namespace {

constexpr const char* kDurationForm = "a duration (e.g. 90s, 15m, 36h, 14d)";

}  // namespace

CLI::Validator base_url() {
  return {[](std::string& url) {
            const auto problem = node::base_url_problem(url);
            return problem ? "'" + node::redact_url(url) + "' " + *problem : std::string();
          },
          "URL"};
}

CLI::Validator webhook_url() {
  return {[](std::string& url) {
            const auto problem = node::http_url_problem(url);
            return problem ? "a webhook URL " + *problem : std::string();
          },
          "URL"};
}

CLI::Validator non_negative() {
  return {[](std::string& text) {
            double v = 0;
            const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
            if (ec != std::errc() || end != text.data() + text.size()) {
              return "'" + text + "' is not a number";
            }
            return v >= 0 ? std::string() : "must be >= 0, not " + text;
          },
          "NUMBER >= 0"};
}

CLI::Validator duration() {
  return {[](std::string& text) {
            return util::parse_duration_seconds(text)
                       ? std::string()
                       : "'" + text + "' is not " + std::string(kDurationForm);
          },
          "DURATION"};
}

CLI::Validator positive_duration(const std::string& why_not_zero) {
  return {[why_not_zero](std::string& text) {
            const auto seconds = util::parse_duration_seconds(text);
            if (!seconds) return "'" + text + "' is not " + std::string(kDurationForm);
            return *seconds > 0 ? std::string() : "must be more than 0: " + why_not_zero;
          },
          "DURATION > 0"};
}

}  // namespace lsp_sweeper::cli
