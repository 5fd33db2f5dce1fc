#include "lsp_sweeper/lsp/callbacks.hpp"

#include <openssl/rand.h>

#include <array>
#include <cctype>
#include <nlohmann/json.hpp>

#include "lsp_sweeper/node/http.hpp"
#include "lsp_sweeper/util/hex.hpp"

namespace lsp_sweeper::lsp {

namespace {

constexpr std::size_t kMessageBytes = 200;

// The LSP answers errors as {"error": "..."} (api.go writeErr) and successes as {"ok": true},
// with "ignored": true for a hash neither flow owns.
Answer read_answer(node::PostAnswer posted) {
  Answer answer;
  if (posted.transport_error) {
    answer.transport_error = *posted.transport_error;
    answer.retryable = posted.retryable;
    return answer;
  }
  answer.status = posted.status;
  // Go's encoder ends the body with a newline.
  while (!posted.body.empty() && std::isspace(static_cast<unsigned char>(posted.body.back()))) {
    posted.body.pop_back();
  }
  const auto body = nlohmann::json::parse(posted.body, nullptr, false);
  if (body.is_object()) {
    const auto error = body.find("error");
    if (error != body.end() && error->is_string()) {
      answer.message = util::printable(error->get_ref<const std::string&>(), kMessageBytes);
      answer.lsp_error = true;
    } else {
      answer.message = util::printable(posted.body, kMessageBytes);
    }
    const auto ignored = body.find("ignored");
    answer.ignored = posted.status == 200 && ignored != body.end() && *ignored == true;
  } else {
    answer.message = util::printable(posted.body, kMessageBytes);
  }
  return answer;
}

}  // namespace

LspClient::LspClient(LspClientOptions options) : options_(std::move(options)) {
  while (!options_.base_url.empty() && options_.base_url.back() == '/')
    options_.base_url.pop_back();
}

Answer LspClient::post(const char* path, const std::string& body) {
  return read_answer(node::post_json(options_.base_url + path, body,
                                     {.timeout = options_.timeout,
                                      .bearer_token = options_.token,
                                      .ca_file = options_.ca_file,
                                      .max_body = 4096}));
}

Answer LspClient::claimable(const std::string& payment_hash, std::uint64_t amount_msat,
                            std::int64_t claim_deadline_height) {
  const nlohmann::json body = {{"payment_hash", payment_hash},
                               {"amount_msat", amount_msat},
                               {"claim_deadline_height", claim_deadline_height}};
  return post("/internal/async_order/claimable", body.dump());
}

Answer LspClient::payment_sent(const std::string& payment_hash, const std::string& preimage) {
  const nlohmann::json body = {{"payment_hash", payment_hash}, {"payment_preimage", preimage}};
  return post("/internal/async_order/payment_sent", body.dump());
}

util::Check check_endpoint(CallbackEndpoints& lsp, const std::string& shown_url) {
  const std::string what = "LSP callback endpoint answers and accepts the token";
  std::array<unsigned char, 32> preimage{};
  if (RAND_bytes(preimage.data(), static_cast<int>(preimage.size())) != 1) {
    return util::fail(what, "OpenSSL RAND_bytes failed");
  }
  const std::string bytes(preimage.begin(), preimage.end());
  const Answer answer = lsp.payment_sent(util::sha256_hex(bytes), util::to_hex(bytes));
  if (answer.status == 0) return util::fail(what, shown_url + ": " + answer.transport_error);
  if (answer.status == 200 && answer.ignored) {
    return util::ok(what, shown_url + " (payment_sent of an unowned hash: ignored)");
  }
  if (answer.status == 401 || answer.status == 403) {
    return util::fail(what, shown_url + ": HTTP " + std::to_string(answer.status) +
                                ", the LSP refused the token (LSP_SWEEPER_LSP_TOKEN or "
                                "--lsp-token-file must hold its APAY_BEARER_TOKEN)");
  }
  return util::fail(what, shown_url + ": HTTP " + std::to_string(answer.status) + " " +
                              answer.message + " (expected 200 {\"ok\":true,\"ignored\":true})");
}

}  // namespace lsp_sweeper::lsp
