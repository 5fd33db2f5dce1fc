// libFuzzer target: the single-payment decoder (decode_get_payment) on arbitrary bytes, in the
// dialect the first byte picks. A DecodeError is the expected answer to an unusable body; any
// other exception or a crash is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "lsp_sweeper/node/decode.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lsp_sweeper;
  if (size == 0) return 0;
  const auto dialect = (data[0] & 1) != 0 ? node::Dialect::Legacy : node::Dialect::Paginated;
  try {
    const node::SinglePayment single = node::decode_get_payment(
        std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1), dialect);
    if (single.payment) fuzz::check_accepted(*single.payment);
  } catch (const node::DecodeError&) {
  }
  return 0;
}
