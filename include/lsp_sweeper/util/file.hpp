// Files other programs read while the sweeper may be writing them (the JSON report, the
// metrics file): they must never see half a file.
#pragma once

#include <optional>
#include <string>

namespace lsp_sweeper::util {

// Writes `text` to a temporary file in the same directory as `path` (so the rename stays on
// one file system) and renames it over `path`. Throws std::runtime_error naming the path.
void write_file_atomically(const std::string& path, const std::string& text);

// The whole file, or nothing when it does not exist or cannot be read.
std::optional<std::string> read_file(const std::string& path);

}  // namespace lsp_sweeper::util
