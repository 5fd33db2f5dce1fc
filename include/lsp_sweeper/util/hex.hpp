// Hex and hashing helpers shared by the decoder and the planner.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace lsp_sweeper::util {

// The 64-character lowercase form of a 32-byte hex value, or nothing when `text` is not
// exactly 64 hex digits (either case).
std::optional<std::string> normalize_hex32(std::string_view text);

// The 32 bytes that `text` spells in 64 hex digits (either case), or nothing.
std::optional<std::array<unsigned char, 32>> decode_hex32(std::string_view text);

// True when sha256(bytes of preimage_hex) == payment_hash_hex. Both must already be
// normalized by normalize_hex32.
bool preimage_matches(std::string_view preimage_hex, std::string_view payment_hash_hex);

// Lowercase hex of SHA-256 over `data` (OpenSSL).
std::string sha256_hex(std::string_view data);

// `bytes` as lowercase hex.
std::string to_hex(std::string_view bytes);

// `text` cut to `max_chars` with every non-printable byte replaced by '?', for quoting
// untrusted input in logs and reports.
std::string printable(std::string_view text, std::size_t max_chars = 80);

}  // namespace lsp_sweeper::util
