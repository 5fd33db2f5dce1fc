#include "lsp_sweeper/run/sweep.hpp"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <unordered_set>

namespace lsp_sweeper::run {

namespace {

std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// The listings that can hold a missed callback or a failed leg. Held HODL payments have no
// time bound (they stay Claimable until claimed or timed out); the rest are bounded by the
// lookback window so a steady-state sweep does not walk the whole history.
std::vector<node::PaymentQuery> queries(std::int64_t created_after) {
  return {
      {NodeStatus::Claimable, Direction::Inbound, std::nullopt},
      {NodeStatus::Succeeded, Direction::Outbound, created_after},
      {NodeStatus::Failed, std::nullopt, created_after},
      {NodeStatus::Cancelled, std::nullopt, created_after},
  };
}

class Sweep {
 public:
  Sweep(node::PaymentSource& node, store::RecordStore& store, const SweepOptions& options,
        report::RunResult& result)
      : node_(node), store_(store), options_(options), result_(result) {}

  void run() {
    const std::int64_t now = unix_seconds(result_.started_at);
    context_.now = now;
    context_.min_age = options_.min_age;
    context_.waiting_grace = options_.waiting_grace;
    context_.current_height = node_.current_height();
    result_.node.height = context_.current_height;

    for (const auto& query : queries(now - options_.lookback)) {
      const node::ScanStats stats =
          node_.scan(query, options_.page_size, [this](node::PaymentPage& page) { on_page(page); });
      result_.node.dialect = stats.dialect;
      result_.node.pages += stats.pages;
      if (stats.stopped_at_unindexed) {
        note(
            "the node's cursor reached payments stored before it had an index (index 0); "
            "older payments of this listing cannot be paged and were not checked");
      }
      if (stats.dialect == node::Dialect::Legacy) {
        // The legacy node ignores every filter and returned its whole history at once.
        note(
            "legacy node API: it has no Claimable status, so missed claimable callbacks "
            "cannot be checked; payment_sent and failed legs were checked");
        break;
      }
    }

    apply(plan::plan_missing_outbox_jobs(store_.records_needing_outbox_job()));
  }

 private:
  void on_page(node::PaymentPage& page) {
    result_.node.payments_scanned +=
        static_cast<std::int64_t>(page.payments.size() + page.rejected.size());
    result_.node.payments_rejected += static_cast<std::int64_t>(page.rejected.size());
    for (const auto& rejected : page.rejected) {
      spdlog::warn("node payment rejected: hash '{}': {}", rejected.payment_hash, rejected.reason);
    }
    auto rejected = plan::divergences_for_rejected(page.rejected);
    result_.divergences.insert(result_.divergences.end(), rejected.begin(), rejected.end());

    // The same (hash, direction) can come back on a later page or listing (a payment whose
    // status changed meanwhile): the first, newest answer wins.
    std::vector<NodePayment> fresh;
    std::vector<std::string> hashes;
    fresh.reserve(page.payments.size());
    for (auto& p : page.payments) {
      std::string key = p.payment_hash;
      key += p.direction() == Direction::Inbound ? 'i' : 'o';
      if (!seen_.insert(std::move(key)).second) continue;
      hashes.push_back(p.payment_hash);
      fresh.push_back(std::move(p));
    }
    if (fresh.empty()) return;
    apply(plan::plan_payments(fresh, store_.records_for(hashes), context_));
  }

  void apply(plan::Plan plan) {
    result_.orphans += plan.orphans;
    result_.deferred += plan.deferred;
    for (auto& d : plan.divergences) {
      spdlog::warn("divergence {} {} {}: {}", plan::to_string(d.kind),
                   d.flow ? to_string(*d.flow) : "-", d.payment_hash, d.detail);
      result_.divergences.push_back(std::move(d));
    }
    for (auto& repair : plan.repairs) {
      if (!options_.dry_run) repair.applied = store_.apply(repair, result_.run_id);
      const char* outcome = options_.dry_run ? "would apply"
                            : repair.applied ? "applied"
                                             : "not applied: the record had already moved";
      spdlog::info("repair {} {} {}: {} -> {}, outbox {}: {}", plan::to_string(repair.kind),
                   to_string(repair.flow), repair.payment_hash, repair.observed_status, repair.to,
                   repair.outbox_action, outcome);
      result_.repairs.push_back(std::move(repair));
    }
  }

  void note(std::string text) {
    if (std::find(result_.notes.begin(), result_.notes.end(), text) != result_.notes.end()) return;
    spdlog::warn("{}", text);
    result_.notes.push_back(std::move(text));
  }

  node::PaymentSource& node_;
  store::RecordStore& store_;
  const SweepOptions& options_;
  report::RunResult& result_;
  plan::PlanContext context_;
  std::unordered_set<std::string> seen_;
};

}  // namespace

std::string new_run_id() {
  std::array<unsigned char, 16> b{};
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
    throw std::runtime_error("cannot generate a run id: OpenSSL RAND_bytes failed");
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

namespace {

report::RunResult new_result(const SweepOptions& options,
                             std::chrono::system_clock::time_point started_at) {
  report::RunResult result;
  result.run_id = new_run_id();
  result.dry_run = options.dry_run;
  result.started_at = started_at;
  result.node.url = node::redact_url(options.node_url);
  return result;
}

}  // namespace

report::RunResult run_not_started(const SweepOptions& options,
                                  std::chrono::system_clock::time_point started_at,
                                  std::string error) {
  report::RunResult result = new_result(options, started_at);
  result.error = std::move(error);
  result.finished_at = std::chrono::system_clock::now();
  return result;
}

report::RunResult run_sweep(node::PaymentSource& node, store::RecordStore& store,
                            const SweepOptions& options) {
  report::RunResult result = new_result(options, std::chrono::system_clock::now());

  bool run_recorded = false;
  try {
    if (!options.dry_run) {
      store.begin_run(result.run_id, false);
      run_recorded = true;
    }
    Sweep(node, store, options, result).run();
    result.complete = true;
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  result.finished_at = std::chrono::system_clock::now();

  if (run_recorded) {
    const int code = report::exit_code(result);
    const char* status = !result.complete ? "failed" : code == 0 ? "ok" : "divergences";
    try {
      store.finish_run({result.run_id, status, code, report::to_json(result).dump()});
    } catch (const std::exception& e) {
      // The repairs are committed already; losing the run's audit row is worth a warning,
      // not a different outcome.
      spdlog::warn("could not record the run's outcome in lsp_sweeper.runs: {}", e.what());
    }
  }
  return result;
}

}  // namespace lsp_sweeper::run
