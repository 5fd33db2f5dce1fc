// `lsp-sweeper history`: recent runs and the open divergences, as an aligned table for a
// terminal or as JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lsp_sweeper/ledger_types.hpp"

namespace lsp_sweeper::report {

std::string history_table(const std::vector<RunSummary>& runs,
                          const std::vector<StoredDivergence>& open);

nlohmann::ordered_json history_json(const std::vector<RunSummary>& runs,
                                    const std::vector<StoredDivergence>& open);

}  // namespace lsp_sweeper::report
