// --apply lsp-callbacks: a planned repair delivered as the callback the node lost, to the LSP's
// own endpoint, and what the LSP's answer and the record's row then say of it.
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>

#include "lsp_sweeper/lsp/callbacks.hpp"
#include "lsp_sweeper/plan/plan.hpp"
#include "lsp_sweeper/store/store.hpp"

namespace lsp_sweeper::run {

struct ReplayOptions {
  // POSTs per callback while the answer is a 5xx other than 503, a 429, or a transport failure
  // worth another attempt; the LSP's handlers are idempotent, so a repeat is safe.
  int max_attempts = 3;
  std::chrono::milliseconds first_backoff{1000};  // doubled after each failed attempt
};

// The LSP refused the sweeper's token, or stayed unavailable past every attempt: the run ends
// incomplete, keeping what was delivered before.
struct LspError : std::runtime_error {
  LspError(const std::string& what, bool try_again_later)
      : std::runtime_error(what), retry_later(try_again_later) {}
  bool retry_later;  // unavailable (exit 75), not refused (exit 2)
};

class Replayer {
 public:
  Replayer(lsp::CallbackEndpoints& lsp, store::LspRecords& records, ReplayOptions options)
      : lsp_(lsp), records_(records), options_(options) {}

  // Delivers a MissedClaimable or MissedPaymentSent repair and sets its `delivery` and
  // `applied`. Nothing is sent when the record's row has left `from` since the plan
  // (AlreadyMoved). After a 200, the row is read again: `applied` only when it has left `from`
  // for `to` or a later live state, i.e. when it moved while this run's call was answered.
  // Throws StoreError only for the reads.
  void deliver(plan::Repair& repair);

 private:
  lsp::Answer post(const plan::Repair& repair);
  std::optional<std::string> status_now(const plan::Repair& repair);

  lsp::CallbackEndpoints& lsp_;
  store::LspRecords& records_;
  ReplayOptions options_;
};

// The divergence a delivered repair calls for: one for an answer that refused (4xx), ignored or
// did not apply it; nothing for one applied, already moved, deferred (503) or failed (the run
// says that one).
std::optional<plan::Divergence> divergence_for(const plan::Repair& repair);

// The error that ends the run after this delivery, if any: the token refused (401, 403), or no
// usable answer after every attempt (Failed).
std::optional<LspError> run_ending_error(const plan::Repair& repair);

// In --apply lsp-callbacks a missing outbox job is reported, never written: no endpoint of the
// LSP adds one. The OutboxJobMissing divergence for such a planned repair.
plan::Divergence missing_job_divergence(const plan::Repair& repair);

}  // namespace lsp_sweeper::run
