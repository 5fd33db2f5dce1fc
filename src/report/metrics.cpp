#include "lsp_sweeper/report/metrics.hpp"

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string_view>

namespace lsp_sweeper::report {

namespace {

constexpr std::string_view kLastSuccess = "lsp_sweeper_last_success_timestamp_seconds";

double unix_seconds(std::chrono::system_clock::time_point t) {
  return static_cast<double>(
             std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count()) /
         1000.0;
}

// Timestamps keep their milliseconds; counts print as integers.
std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}
std::string number(std::int64_t v) { return std::to_string(v); }

class Writer {
 public:
  // HELP and TYPE once per metric, then its samples. Every metric here is a gauge: the file
  // describes the last run, it does not accumulate across runs.
  void gauge(std::string_view name, std::string_view help) {
    out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " gauge\n";
  }
  // `labels` is `key="value",...` built from the fixed names of the domain, which need no
  // escaping.
  void sample(std::string_view name, const std::string& value, const std::string& labels = "") {
    out_ << name;
    if (!labels.empty()) out_ << '{' << labels << '}';
    out_ << ' ' << value << '\n';
  }
  void single(std::string_view name, std::string_view help, const std::string& value) {
    gauge(name, help);
    sample(name, value);
  }
  std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

std::string kind_flow(std::string_view kind, std::string_view flow) {
  return "kind=\"" + std::string(kind) + "\",flow=\"" + std::string(flow) + "\"";
}

}  // namespace

bool is_success(const RunResult& r) { return r.complete && !r.dry_run; }

std::string to_prometheus(const RunResult& r, std::optional<double> previous_success) {
  Writer w;
  w.single("lsp_sweeper_last_run_timestamp_seconds", "When the last run finished (unix time).",
           number(unix_seconds(r.finished_at)));
  const std::optional<double> success =
      is_success(r) ? std::optional(unix_seconds(r.finished_at)) : previous_success;
  if (success) {
    w.single(kLastSuccess, "When the last complete, non-dry run finished (unix time).",
             number(*success));
  }
  w.single("lsp_sweeper_run_duration_seconds", "How long the last run took.",
           number(unix_seconds(r.finished_at) - unix_seconds(r.started_at)));
  w.single("lsp_sweeper_run_exit_code",
           "The last run's exit code (0 clean, 1 needs attention, 2 incomplete).",
           number(static_cast<std::int64_t>(exit_code(r))));
  w.single("lsp_sweeper_run_complete", "1 when the last run completed, 0 when it failed.",
           number(static_cast<std::int64_t>(r.complete)));
  w.single("lsp_sweeper_run_dry", "1 when the last run was a dry run.",
           number(static_cast<std::int64_t>(r.dry_run)));
  w.single("lsp_sweeper_payments_scanned", "Node payments the last run listed.",
           number(r.node.payments_scanned));
  w.single("lsp_sweeper_payments_rejected", "Node payments the last run rejected as malformed.",
           number(r.node.payments_rejected));
  w.single("lsp_sweeper_payments_orphaned",
           "Node payments the last run found no LSP record for (other traffic of the node).",
           number(r.orphans));
  w.single("lsp_sweeper_payments_deferred",
           "Node payments the last run left to their live callback (updated too recently).",
           number(r.deferred));

  // Every (kind, flow), zeros included, so alerting rules always find the series.
  for (const bool applied : {false, true}) {
    const std::string_view name =
        applied ? "lsp_sweeper_repairs_applied" : "lsp_sweeper_repairs_planned";
    w.gauge(name, applied ? "Repairs the last run applied: each is a lost callback."
                          : "Repairs the last run planned (a dry run applies none).");
    for (const plan::RepairKind kind : plan::kRepairKinds) {
      for (const Flow flow : {Flow::Apay, Flow::Relay}) {
        std::int64_t n = 0;
        for (const plan::Repair& repair : r.repairs) {
          n += repair.kind == kind && repair.flow == flow && (!applied || repair.applied);
        }
        w.sample(name, number(n), kind_flow(plan::to_string(kind), to_string(flow)));
      }
    }
  }

  for (const bool person : {false, true}) {
    const std::string_view name =
        person ? "lsp_sweeper_divergences_needing_person" : "lsp_sweeper_divergences";
    w.gauge(name, person ? "Divergences seen by the last run that need a person, by kind."
                         : "Divergences seen by the last run, by kind.");
    for (const plan::DivergenceKind kind : plan::kDivergenceKinds) {
      std::int64_t n = 0;
      for (const plan::Divergence& d : r.divergences) {
        n += d.kind == kind && (!person || d.needs_person);
      }
      w.sample(name, number(n), "kind=\"" + std::string(plan::to_string(kind)) + "\"");
    }
  }

  w.single("lsp_sweeper_alert_failures", "Alert deliveries the last run could not make.",
           number(r.alert_failures));
  return w.str();
}

std::optional<double> last_success_timestamp(const std::string& text) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with(kLastSuccess) || line.size() <= kLastSuccess.size() ||
        line[kLastSuccess.size()] != ' ') {
      continue;
    }
    const char* begin = line.c_str() + kLastSuccess.size() + 1;
    char* end = nullptr;
    const double v = std::strtod(begin, &end);
    if (end != begin && v > 0) return v;
  }
  return std::nullopt;
}

}  // namespace lsp_sweeper::report
