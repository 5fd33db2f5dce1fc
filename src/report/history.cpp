#include "lsp_sweeper/report/history.hpp"

#include <algorithm>
#include <cstdio>

#include "lsp_sweeper/report/report.hpp"

namespace lsp_sweeper::report {

namespace {

using json = nlohmann::ordered_json;
using Row = std::vector<std::string>;

// Columns padded to their widest cell, two spaces apart; the last column is not padded.
std::string aligned(const std::vector<Row>& rows) {
  std::vector<std::size_t> widths;
  for (const Row& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const Row& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out += line + '\n';
  }
  return out;
}

std::string or_dash(const std::optional<std::int64_t>& v) { return v ? std::to_string(*v) : "-"; }

std::string seconds_text(const std::optional<double>& seconds) {
  if (!seconds) return "running";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", *seconds);
  return buf;
}

std::string time_text(std::int64_t unix_seconds) {
  return rfc3339(from_unix(unix_seconds)).substr(0, 19) + "Z";  // seconds are enough here
}

json optional_json(const std::optional<std::int64_t>& v) { return v ? json(*v) : json(nullptr); }

}  // namespace

std::string history_table(const std::vector<RunSummary>& runs,
                          const std::vector<StoredDivergence>& open) {
  std::vector<Row> run_rows{
      {"STARTED", "DURATION", "STATUS", "EXIT", "SCANNED", "REPAIRED", "DIVERGENCES", "RUN"}};
  for (const auto& run : runs) {
    run_rows.push_back({time_text(run.started_at),
                        run.abandoned ? "-" : seconds_text(run.duration_seconds),
                        run.abandoned ? "abandoned" : run.status,
                        run.exit_code ? std::to_string(*run.exit_code) : "-", or_dash(run.scanned),
                        or_dash(run.repaired), or_dash(run.divergences), run.run_id});
  }
  std::string out = runs.empty() ? "No runs recorded.\n" : aligned(run_rows);

  out += "\nOpen divergences: " + std::to_string(open.size()) + "\n";
  if (open.empty()) return out;
  std::vector<Row> rows{
      {"KIND", "FLOW", "PAYMENT HASH", "FIRST SEEN", "LAST SEEN", "PERSON", "DETAIL"}};
  for (const auto& d : open) {
    rows.push_back({std::string(plan::to_string(d.divergence.kind)),
                    d.divergence.flow ? std::string(to_string(*d.divergence.flow)) : "-",
                    d.divergence.payment_hash, time_text(d.first_seen_at),
                    time_text(d.last_seen_at), d.divergence.needs_person ? "yes" : "no",
                    d.divergence.detail});
  }
  return out + aligned(rows);
}

json history_json(const std::vector<RunSummary>& runs, const std::vector<StoredDivergence>& open) {
  json run_list = json::array();
  for (const auto& run : runs) {
    run_list.push_back(
        {{"run_id", run.run_id},
         {"started_at", rfc3339(from_unix(run.started_at))},
         {"duration_seconds", run.duration_seconds ? json(*run.duration_seconds) : json(nullptr)},
         {"status", run.abandoned ? "abandoned" : run.status},
         {"exit_code", run.exit_code ? json(*run.exit_code) : json(nullptr)},
         {"payments_scanned", optional_json(run.scanned)},
         {"repairs_applied", optional_json(run.repaired)},
         {"divergences", optional_json(run.divergences)}});
  }
  json open_list = json::array();
  for (const auto& d : open) {
    json item = divergence_json(d);
    item["last_seen_at"] = rfc3339(from_unix(d.last_seen_at));
    item["last_alerted_at"] =
        d.last_alerted_at ? json(rfc3339(from_unix(*d.last_alerted_at))) : json(nullptr);
    open_list.push_back(std::move(item));
  }
  return {{"runs", std::move(run_list)}, {"open_divergences", std::move(open_list)}};
}

}  // namespace lsp_sweeper::report
