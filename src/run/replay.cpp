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
  if (answer.status == 200)
    return answer.ignored ? DeliveryOutcome::Ignored : DeliveryOutcome::Applied;
  if (answer.status == 503) return DeliveryOutcome::Deferred;
  // 401 and 403 (the token) end the run; other 4xx are the LSP's rules refusing the callback.
  if (answer.status >= 400 && answer.status < 500 && answer.status != 401 && answer.status != 403 &&
      answer.status != 429) {
    return DeliveryOutcome::Refused;
  }
  return DeliveryOutcome::Failed;
}

std::string_view endpoint_of(const plan::Repair& repair) {
  return repair.kind == plan::RepairKind::MissedClaimable ? "claimable" : "payment_sent";
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

void Replayer::deliver(plan::Repair& repair) {
  plan::Delivery& delivery = repair.delivery.emplace();
  repair.applied = false;
  const auto before = status_now(repair);
  if (!before || !contains(repair.from, *before)) {
    delivery.outcome = DeliveryOutcome::AlreadyMoved;
    delivery.answer = "not sent: the record is " + before.value_or("gone") + " now";
    return;
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
  if (delivery.outcome != DeliveryOutcome::Applied) return;

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

std::optional<plan::Divergence> divergence_for(const plan::Repair& repair) {
  if (!repair.delivery) return std::nullopt;
  const plan::Delivery& d = *repair.delivery;
  const std::string replayed = "the replayed " + std::string(endpoint_of(repair)) + " callback";
  std::string detail;
  switch (d.outcome) {
    case DeliveryOutcome::Refused:
      detail = "the LSP refused " + replayed + ": HTTP " + std::to_string(d.http_status) + " " +
               d.answer;
      break;
    case DeliveryOutcome::Ignored:
      detail = "the LSP ignored " + replayed +
               ": it says neither of its flows owns the hash (is it reading another database, "
               "or is its relay flow disabled?)";
      break;
    case DeliveryOutcome::Unconfirmed:
      detail = "the LSP answered " + replayed + " with HTTP 200, but " + d.answer;
      break;
    default: return std::nullopt;
  }
  return plan::Divergence{plan::DivergenceKind::LspCallbackNotApplied, repair.flow,
                          repair.payment_hash, std::move(detail), true};
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
                      " attempt(s): " + answer + "; the next run delivers the rest",
                  true);
}

plan::Divergence missing_job_divergence(const plan::Repair& repair) {
  return {plan::DivergenceKind::OutboxJobMissing, repair.flow, repair.payment_hash,
          "the record is " + repair.observed_status + " with no " + repair.outbox_action +
              " job, and no endpoint of the LSP adds one: a run with --apply db recreates it",
          true};
}

}  // namespace lsp_sweeper::run
