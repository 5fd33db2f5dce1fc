// --apply lsp-callbacks: a planned repair delivered as the callback the node lost, to the LSP's
// own endpoint, and what the LSP's answer and the record's row then say of it.
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

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

  // Delivers a MissedClaimable or MissedPaymentSent repair, sets its `delivery` and
  // `applied`, and returns the divergence the outcome calls for, if any. The hash's rows are
  // read just before the POST, and nothing is sent (AlreadyMoved) when the repair's row has
  // left `from`, nor (Withheld, a divergence) when the transition's job is done or failed (the
  // LSP would keep it, and the record would wait on it for ever) or when an APay repair's hash
  // also has a relay row (the LSP hands every callback of a hash to its relay record first, so
  // the APay row's guards would be judged on another record). After a 200 the row is read
  // again: `applied` only when it has left `from` for `to` or a later live state, i.e. moved
  // while this run's call was answered. Throws StoreError only for the reads.
  std::optional<plan::Divergence> deliver(plan::Repair& repair);

 private:
  lsp::Answer post(const plan::Repair& repair);
  std::optional<std::string> status_now(const plan::Repair& repair);

  lsp::CallbackEndpoints& lsp_;
  store::LspRecords& records_;
  ReplayOptions options_;
};

// The error that ends the run after this delivery, if any: the token refused (401, 403), or no
// answer of the LSP's after every attempt (Failed): for a later run when it may get through.
std::optional<LspError> run_ending_error(const plan::Repair& repair);

// In --apply lsp-callbacks a missing outbox job is reported, never written: no endpoint of the
// LSP adds one. The OutboxJobMissing divergence for such a planned repair.
plan::Divergence missing_job_divergence(const plan::Repair& repair);

}  // namespace lsp_sweeper::run
