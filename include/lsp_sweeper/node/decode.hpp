// Decoding the node's JSON into NodePayment values. Pure functions: no I/O, so every
// malformed input can be tested directly. Input from the node is untrusted: every field is
// type- and range-checked, hex is validated and lowercased, and a bad payment is rejected on
// its own without failing the page.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "lsp_sweeper/domain.hpp"

namespace lsp_sweeper::node {

enum class Dialect { Paginated, Legacy };
std::string_view to_string(Dialect d);

// One decoded /listpayments response.
struct PaymentPage {
  Dialect dialect = Dialect::Paginated;
  std::vector<NodePayment> payments;
  std::vector<RejectedPayment> rejected;
  // Paginated dialect only: the cursors the node returned (0 when the page is empty).
  std::uint64_t first_index_offset = 0;
  std::uint64_t last_index_offset = 0;
};

// The response as a whole is unusable (not JSON, not an object, no payments array, cursors
// of the wrong type). Distinct from a single rejected payment.
struct DecodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Decodes a /listpayments body. The dialect is detected from the body: the paginated dialect
// carries first_index_offset/last_index_offset, the legacy one does not.
PaymentPage decode_list_payments(std::string_view body);

// Decodes a /getpayment body ({"payment": {...}}). Returns the rejection reason in `rejected`
// when the payment itself is malformed.
struct SinglePayment {
  Dialect dialect = Dialect::Paginated;
  std::optional<NodePayment> payment;
  std::optional<RejectedPayment> rejected;
};
SinglePayment decode_get_payment(std::string_view body, Dialect dialect);
// The same, the dialect detected from the payment: the legacy one has a boolean `inbound` and
// no payment_type.
SinglePayment decode_get_payment(std::string_view body);

// Decodes a /networkinfo body; returns the current block height.
std::int64_t decode_network_height(std::string_view body);

}  // namespace lsp_sweeper::node
