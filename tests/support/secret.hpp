// Deterministic payment secrets for tests: a 32-byte preimage of one repeated byte and its
// payment hash, as the node and the LSP spell them (lowercase hex).
#pragma once

#include <string>

#include "lsp_sweeper/util/hex.hpp"

namespace lsp_sweeper::testing {

struct Secret {
  std::string preimage;
  std::string hash;
};

// A preimage of 32 bytes each equal to `seed`, and its hash.
inline Secret secret(char seed) {
  const std::string bytes(32, seed);
  std::string hex;
  for (unsigned char c : bytes) {
    hex.push_back("0123456789abcdef"[c >> 4]);
    hex.push_back("0123456789abcdef"[c & 15]);
  }
  return {hex, util::sha256_hex(bytes)};
}

}  // namespace lsp_sweeper::testing
