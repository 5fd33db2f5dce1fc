#include "lsp_sweeper/run/replay.hpp"

#include <algorithm>
#include <thread>

namespace lsp_sweeper::run {

namespace {

using plan::DeliveryOutcome;

bool contains(const std::vector<std::string>& values, std::string_view value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

// Whether another attempt may get a better answer: the LSP or a proxy failed on the way, not
// the LSP's rules. 503 is the LSP's own "not yet" (utexo-lsp api.go): the next run asks again.
bool worth_retrying(const lsp::Answer& answer) {
  if (answer.status == 0) return answer.retryable;
  return answer.status == 429 || (answer.status >= 500 && answer.status != 503);
}

DeliveryOutcome outcome_of(const lsp::Answer& answer) {
  if (answer.status == 200) {
    return answer.ignored ? DeliveryOutcome::Ignored : DeliveryOutcome::Applied;
  }
  if (answer.status == 503) return DeliveryOutcome::Deferred;
  if (answer.status == 401 || answer.status == 403 || answer.status == 429) {
    return DeliveryOutcome::Failed;
  }
  // Other 4xx are the LSP's rules refusing the callback; a 500 in the LSP's own error form
  // after every attempt is its state refusing it ("unexpected status ..."), which would repeat
  // every run: a divergence for this repair, not the end of the run.
  if (answer.status >= 400 && answer.status < 500) return DeliveryOutcome::Refused;
  if (answer.status == 500 && answer.lsp_error) return DeliveryOutcome::Refused;
  return DeliveryOutcome::Failed;
}

std::string_view endpoint_of(const plan::Repair& repair) {
  return repair.kind == plan::RepairKind::MissedClaimable ? "claimable" : "payment_sent";
}

plan::Divergence divergence(plan::DivergenceKind kind, const plan::Repair& repair,
                            std::string detail) {
  return {kind, repair.flow, repair.payment_hash, std::move(detail), true};
}

// The divergence an answered delivery calls for: one for an answer that refused, ignored or did
// not apply it; nothing for one applied, deferred (503) or failed (the run says that one).
std::optional<plan::Divergence> divergence_for(const plan::Repair& repair) {
  const plan::Delivery& d = *repair.delivery;
  const std::string replayed = "the replayed " + std::string(endpoint_of(repair)) + " callback";
  // With LIGHTNING_SEND_ENABLED off the LSP owns no relay record: a relay claimable falls to its
  // APay path (deadline policy, then 404), a relay payment_sent is ignored.
  const std::string relay_off =
      repair.flow == Flow::Relay ? " (is the LSP's relay flow, LIGHTNING_SEND_ENABLED, off?)" : "";
  switch (d.outcome) {
    case DeliveryOutcome::Refused:
      return divergence(plan::DivergenceKind::LspCallbackNotApplied, repair,
                        "the LSP refused " + replayed + ": HTTP " + std::to_string(d.http_status) +
                            " " + d.answer + relay_off);
    case DeliveryOutcome::Ignored:
      return divergence(plan::DivergenceKind::LspCallbackNotApplied, repair,
                        "the LSP ignored " + replayed +
                            ": it says neither of its flows owns the hash (is it reading another "
                            "database?)" +
                            relay_off);
    case DeliveryOutcome::Unconfirmed:
      return divergence(plan::DivergenceKind::LspCallbackNotApplied, repair,
                        "the LSP answered " + replayed + " with HTTP 200, but " + d.answer);
    default: return std::nullopt;
  }
}

}  // namespace

std::optional<std::string> Replayer::status_now(const plan::Repair& repair) {
  for (const LspRecord& record : records_.records_for({repair.payment_hash})) {
    if (record.flow == repair.flow && record.row_id == repair.row_id) return record.status;
  }
  return std::nullopt;
}

lsp::Answer Replayer::post(const plan::Repair& repair) {
  if (repair.kind == plan::RepairKind::MissedClaimable) {
    // The planner sets both for every claimable repair it makes.
    return lsp_.claimable(repair.payment_hash, repair.amount_msat.value(),
                          repair.callback_deadline_height.value());
  }
  return lsp_.payment_sent(repair.payment_hash, repair.preimage.value());
}

std::optional<plan::Divergence> Replayer::deliver(plan::Repair& repair) {
  plan::Delivery& delivery = repair.delivery.emplace();
  repair.applied = false;
  const std::vector<LspRecord> rows = records_.records_for({repair.payment_hash});
  const auto own = std::find_if(rows.begin(), rows.end(), [&](const LspRecord& r) {
    return r.flow == repair.flow && r.row_id == repair.row_id;
  });
  if (own == rows.end() || !contains(repair.from, own->status)) {
    delivery.outcome = DeliveryOutcome::AlreadyMoved;
    delivery.answer =
        "not sent: the record is " + (own == rows.end() ? "gone" : own->status) + " now";
    return std::nullopt;
  }
  // A job of the transition's action turned done or failed since the plan: the LSP's INSERT OR
  // IGNORE would keep it, as both appliers refuse in --apply db.
  for (const OutboxJob& job : own->outbox_jobs) {
    if (job.action == repair.outbox_action && (job.status == "done" || job.status == "failed")) {
      delivery.outcome = DeliveryOutcome::Withheld;
      delivery.answer = "not sent: its " + job.action + " job is " + job.status +
                        ", which the LSP never runs again";
      return divergence(plan::DivergenceKind::OutboxJobWillNotRun, repair,
                        "the " + job.action + " job of this hash is " + job.status +
                            "; moving the record would leave it waiting on a job that never "
                            "runs (not sent to the LSP)");
    }
  }
  if (repair.flow == Flow::Apay) {
    for (const LspRecord& r : rows) {
      if (r.flow != Flow::Relay) continue;
      delivery.outcome = DeliveryOutcome::Withheld;
      delivery.answer = "not sent: the LSP hands this hash's callbacks to its relay record";
      return divergence(plan::DivergenceKind::LspCallbackNotApplied, repair,
                        "the hash also has a relay record (id " + std::to_string(r.row_id) + ", " +
                            r.status +
                            "), to which the LSP hands every callback of the hash first: the "
                            "replayed " +
                            std::string(endpoint_of(repair)) +
                            " would be judged on that record, so it was not sent");
    }
  }

  lsp::Answer answer;
  auto backoff = options_.first_backoff;
  for (int attempt = 1; attempt <= std::max(1, options_.max_attempts); ++attempt) {
    if (attempt > 1) {
      std::this_thread::sleep_for(backoff);
      backoff *= 2;
    }
    answer = post(repair);
    delivery.attempts = attempt;
    if (!worth_retrying(answer)) break;
  }
  delivery.http_status = answer.status;
  delivery.answer = answer.status == 0 ? answer.transport_error : answer.message;
  delivery.outcome = outcome_of(answer);
  delivery.retryable = delivery.outcome == DeliveryOutcome::Failed && worth_retrying(answer);
  if (delivery.outcome == DeliveryOutcome::Applied) {
    const auto after = status_now(repair);
    const auto terminal = plan::terminal_states(repair.flow);
    if (after && !contains(repair.from, *after) && !contains(terminal, *after)) {
      repair.applied = true;
    } else {
      delivery.outcome = DeliveryOutcome::Unconfirmed;
      delivery.answer += std::string(delivery.answer.empty() ? "" : "; ") + "the record is " +
                         after.value_or("gone") + " afterwards";
    }
  }
  return divergence_for(repair);
}

std::optional<LspError> run_ending_error(const plan::Repair& repair) {
  if (!repair.delivery) return std::nullopt;
  const plan::Delivery& d = *repair.delivery;
  const std::string endpoint(endpoint_of(repair));
  if (d.http_status == 401 || d.http_status == 403) {
    return LspError("the LSP refused the sweeper's token (HTTP " + std::to_string(d.http_status) +
                        " to " + endpoint +
                        "): LSP_SWEEPER_LSP_TOKEN or --lsp-token-file must hold the LSP's "
                        "APAY_BEARER_TOKEN",
                    false);
  }
  if (d.outcome != DeliveryOutcome::Failed) return std::nullopt;
  const std::string answer =
      d.http_status == 0 ? d.answer : "HTTP " + std::to_string(d.http_status) + " " + d.answer;
  return LspError("the LSP did not take the replayed " + endpoint + " callback for " +
                      repair.payment_hash + " after " + std::to_string(d.attempts) +
                      " attempt(s): " + answer +
                      (d.retryable ? "; a later run delivers it and the rest"
                                   : "; this repeats until the LSP's URL or TLS set-up is fixed"),
                  d.retryable);
}

plan::Divergence missing_job_divergence(const plan::Repair& repair) {
  return {plan::DivergenceKind::OutboxJobMissing, repair.flow, repair.payment_hash,
          "the record is " + repair.observed_status + " with no " + repair.outbox_action +
              " job, and no endpoint of the LSP adds one: a run with --apply db recreates it",
          true};
}

}  // namespace lsp_sweeper::run
