// libFuzzer target: decode_list_payments on arbitrary bytes. A DecodeError is the expected
// answer to a body that is unusable as a whole; any other exception or a crash is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "lsp_sweeper/node/decode.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lsp_sweeper;
  try {
    const node::PaymentPage page =
        node::decode_list_payments(std::string_view(reinterpret_cast<const char*>(data), size));
    for (const auto& p : page.payments) fuzz::check_accepted(p);
  } catch (const node::DecodeError&) {
  }
  return 0;
}
