// What every payment the decoder accepts must satisfy, however hostile the body was: the
// hash and preimage are exactly 64 lowercase hex digits (so nothing else can reach SQL or
// the planner). A violation aborts the fuzzer, which saves the input as a crash.
#pragma once

#include <cstdlib>

#include "lsp_sweeper/domain.hpp"
#include "lsp_sweeper/util/hex.hpp"

namespace lsp_sweeper::fuzz {

inline void check_accepted(const NodePayment& p) {
  if (util::normalize_hex32(p.payment_hash) != p.payment_hash) std::abort();
  if (p.preimage && util::normalize_hex32(*p.preimage) != *p.preimage) std::abort();
}

}  // namespace lsp_sweeper::fuzz
