// The LSP's own callback endpoints (../shared/lsp/README.md, "The HTTP handlers"), for
// `--apply lsp-callbacks`: a missed callback is delivered late, to the endpoint the node would
// have called, with the body the node would have sent, and the LSP applies its own rules,
// transaction and outbox job. This layer only speaks HTTP; what an answer means for a repair
// is the run's to decide.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "lsp_sweeper/util/check.hpp"

namespace lsp_sweeper::lsp {

// One answer of an endpoint.
struct Answer {
  long status = 0;       // HTTP status; 0: no answer, `transport_error` says why
  std::string message;   // the LSP's "error", else its body; printable, at most 200 bytes
  bool ignored = false;  // 200 {"ok":true,"ignored":true}: neither flow owns the hash
  // The body was the LSP's own error, {"error": "..."} (utexo-lsp api.go writeErr), not a
  // proxy's page: a 500 of this form is the LSP's answer, not its absence.
  bool lsp_error = false;
  std::string transport_error;
  bool retryable = false;  // no answer, and worth another attempt
};

class CallbackEndpoints {
 public:
  virtual ~CallbackEndpoints() = default;
  // POST /internal/async_order/claimable {"payment_hash","amount_msat","claim_deadline_height"}
  virtual Answer claimable(const std::string& payment_hash, std::uint64_t amount_msat,
                           std::int64_t claim_deadline_height) = 0;
  // POST /internal/async_order/payment_sent {"payment_hash","payment_preimage"}
  virtual Answer payment_sent(const std::string& payment_hash, const std::string& preimage) = 0;
};

struct LspClientOptions {
  std::string base_url;  // e.g. http://127.0.0.1:8080, the LSP's SERVER_ADDR
  std::string token;     // the LSP's APAY_BEARER_TOKEN; never logged
  std::chrono::milliseconds timeout{10000};
  std::string ca_file{};  // PEM of the CA(s) that sign the LSP's certificate; empty: the system's
};

// One attempt per call; retries are the caller's.
class LspClient final : public CallbackEndpoints {
 public:
  explicit LspClient(LspClientOptions options);
  Answer claimable(const std::string& payment_hash, std::uint64_t amount_msat,
                   std::int64_t claim_deadline_height) override;
  Answer payment_sent(const std::string& payment_hash, const std::string& preimage) override;

 private:
  Answer post(const char* path, const std::string& body);
  LspClientOptions options_;
};

// `check`'s line for the LSP: POSTs payment_sent for a fresh random preimage and its hash, which
// no record can own, so the LSP moves nothing and answers 200 "ignored" once it has accepted
// the token and checked the preimage. A 401 says the token was refused.
util::Check check_endpoint(CallbackEndpoints& lsp, const std::string& shown_url);

}  // namespace lsp_sweeper::lsp
