#include "lsp_sweeper/util/duration.hpp"

#include <charconv>
#include <limits>

namespace lsp_sweeper::util {

std::optional<std::int64_t> parse_duration_seconds(std::string_view text) {
  std::int64_t unit = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      default: unit = 0; break;
    }
    if (unit != 0)
      text.remove_suffix(1);
    else
      unit = 1;
  }
  if (text.empty()) return std::nullopt;
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  if (value > std::numeric_limits<std::int64_t>::max() / unit) return std::nullopt;
  return value * unit;
}

}  // namespace lsp_sweeper::util
