#include "lsp_sweeper/report/report.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace lsp_sweeper::report {

namespace {

bool needs_person(const plan::Divergence& d) { return d.needs_person; }

std::int64_t applied_count(const RunResult& r) {
  return std::count_if(r.repairs.begin(), r.repairs.end(),
                       [](const plan::Repair& repair) { return repair.applied; });
}

std::int64_t needing_person_count(const RunResult& r) {
  return std::count_if(r.divergences.begin(), r.divergences.end(), needs_person);
}

std::int64_t new_count(const RunResult& r) {
  return std::count_if(r.tracked.begin(), r.tracked.end(),
                       [](const StoredDivergence& d) { return d.is_new; });
}

}  // namespace

std::chrono::system_clock::time_point from_unix(std::int64_t seconds) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
}

nlohmann::ordered_json divergence_json(const plan::Divergence& d) {
  using json = nlohmann::ordered_json;
  return {{"kind", plan::to_string(d.kind)},
          {"flow", d.flow ? json(to_string(*d.flow)) : json(nullptr)},
          {"payment_hash", d.payment_hash},
          {"detail", d.detail},
          {"needs_person", d.needs_person}};
}

nlohmann::ordered_json divergence_json(const StoredDivergence& d) {
  auto out = divergence_json(d.divergence);
  out["first_seen_at"] = rfc3339(from_unix(d.first_seen_at));
  return out;
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ms % 1000));
  return std::string(buf, n) + frac;
}

std::string_view to_string(ListingWay w) {
  switch (w) {
    case ListingWay::Skipped: return "skipped";
    case ListingWay::Listed: return "list";
    case ListingWay::LookedUp: return "targeted";
  }
  return "?";
}

std::string_view lookup_mode(const LookupSummary& lookup) {
  const auto any = [&](ListingWay way) {
    return std::any_of(lookup.listings.begin(), lookup.listings.end(),
                       [&](const ListingLookup& l) { return l.way == way; });
  };
  if (!any(ListingWay::Listed)) return "targeted";
  return any(ListingWay::LookedUp) ? "mixed" : "list";
}

int exit_code(const RunResult& r) {
  if (!r.complete) return r.retry_later ? kExitBusy : kExitIncomplete;
  if (!r.output_failures.empty()) return kExitIncomplete;
  if (r.dry_run && !r.repairs.empty()) return kExitNeedsAttention;
  if (needing_person_count(r) > 0 || r.alert_failures > 0) return kExitNeedsAttention;
  return kExitClean;
}

nlohmann::ordered_json to_json(const RunResult& r) {
  using json = nlohmann::ordered_json;  // keys in the documented order, for people reading it
  json node{{"url", r.node.url},
            {"dialect", r.node.dialect ? json(node::to_string(*r.node.dialect)) : json(nullptr)},
            {"pages", r.node.pages},
            {"payments_scanned", r.node.payments_scanned},
            {"payments_rejected", r.node.payments_rejected},
            {"height", r.node.height ? json(*r.node.height) : json(nullptr)}};

  json listings = json::array();
  for (const ListingLookup& l : r.lookup.listings) {
    listings.push_back(
        {{"status", to_string(l.status)},
         {"mode", to_string(l.way)},
         {"created_after", l.created_after ? json(*l.created_after) : json(nullptr)},
         {"records_awaiting_node", l.records_awaiting_node},
         {"reason", l.reason}});
  }
  const json lookup{
      {"mode", lookup_mode(r.lookup)},
      {"reason", r.lookup.reason},
      {"records_awaiting_node",
       r.lookup.records_awaiting_node ? json(*r.lookup.records_awaiting_node) : json(nullptr)},
      {"listings", std::move(listings)},
      {"getpayment_requests", r.lookup.requests},
      {"not_found", r.lookup.not_found}};

  json repairs = json::array();
  for (const auto& repair : r.repairs) {
    json entry = {{"kind", plan::to_string(repair.kind)},
                  {"flow", to_string(repair.flow)},
                  {"payment_hash", repair.payment_hash},
                  {"from", repair.observed_status},
                  {"to", repair.to},
                  {"outbox_action", repair.outbox_action},
                  {"applied", repair.applied}};
    if (repair.delivery) {
      const plan::Delivery& d = *repair.delivery;
      entry["lsp_answer"] = {{"outcome", plan::to_string(d.outcome)},
                             {"http_status", d.http_status ? json(d.http_status) : json(nullptr)},
                             {"message", d.answer},
                             {"attempts", d.attempts}};
    }
    repairs.push_back(std::move(entry));
  }

  json divergences = json::array();
  for (std::size_t i = 0; i < r.divergences.size(); ++i) {
    json d = divergence_json(r.divergences[i]);
    d["state"] =
        i < r.tracked.size() ? json(r.tracked[i].is_new ? "new" : "ongoing") : json(nullptr);
    divergences.push_back(std::move(d));
  }
  json resolved = json::array();
  for (const auto& stored : r.resolved) {
    resolved.push_back(divergence_json(stored));
  }

  json out{{"run_id", r.run_id},
           {"dry_run", r.dry_run},
           {"apply", to_string(r.apply)},
           {"complete", r.complete},
           {"started_at", rfc3339(r.started_at)},
           {"finished_at", rfc3339(r.finished_at)},
           {"exit_code", exit_code(r)},
           {"node", std::move(node)},
           {"lookup", lookup},
           {"repairs", std::move(repairs)},
           {"divergences", std::move(divergences)},
           {"resolved_divergences", std::move(resolved)},
           {"summary",
            {{"repairs_planned", r.repairs.size()},
             {"repairs_applied", applied_count(r)},
             {"repairs_apply_seconds", r.apply_seconds},
             {"divergences", r.divergences.size()},
             {"divergences_needing_person", needing_person_count(r)},
             {"orphans", r.orphans},
             {"deferred", r.deferred},
             {"divergences_new", new_count(r)},
             {"divergences_resolved", r.resolved.size()},
             {"alerts_sent", r.alerts_sent},
             {"alert_failures", r.alert_failures}}},
           {"notes", r.notes},
           {"output_failures", r.output_failures}};
  if (r.error) out["error"] = *r.error;
  return out;
}

std::string summary_line(const RunResult& r) {
  std::string line = "sweep ";
  line += r.complete ? "complete" : "INCOMPLETE";
  if (r.dry_run) line += " (dry run)";
  line += std::string(": lookup=") + std::string(lookup_mode(r.lookup)) +
          " scanned=" + std::to_string(r.node.payments_scanned) +
          " rejected=" + std::to_string(r.node.payments_rejected) +
          " repairs_planned=" + std::to_string(r.repairs.size()) +
          " repairs_applied=" + std::to_string(applied_count(r)) +
          " divergences=" + std::to_string(r.divergences.size()) +
          " needing_person=" + std::to_string(needing_person_count(r)) +
          " orphans=" + std::to_string(r.orphans) + " deferred=" + std::to_string(r.deferred) +
          " new=" + std::to_string(new_count(r)) +
          " resolved=" + std::to_string(r.resolved.size()) +
          " alert_failures=" + std::to_string(r.alert_failures) +
          " output_failures=" + std::to_string(r.output_failures.size()) +
          " exit=" + std::to_string(exit_code(r));
  if (r.error) line += " error=\"" + *r.error + "\"";
  return line;
}

std::string progress_line(const NodeSummary& node) {
  return "scanning the node: " + std::to_string(node.pages) + " pages, " +
         std::to_string(node.payments_scanned) + " payments";
}

}  // namespace lsp_sweeper::report
