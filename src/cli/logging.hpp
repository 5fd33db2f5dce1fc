// Where lsp-sweeper's log lines go (stderr) and how they look: text for people, or JSON,
// one object per line with time, level and message, for log shippers.
#pragma once

#include <string>

namespace lsp_sweeper::cli {

// level: trace, debug, info, warn, error; format: text or json.
void setup_logging(const std::string& level, const std::string& format);

}  // namespace lsp_sweeper::cli
