// Durations as an operator writes them on a command line: 90, 90s, 15m, 36h, 14d.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace lsp_sweeper::util {

// Seconds in `text` (a whole number with an optional s/m/h/d suffix; plain = seconds), or
// nothing when it is not of that form or would overflow.
std::optional<std::int64_t> parse_duration_seconds(std::string_view text);

}  // namespace lsp_sweeper::util
