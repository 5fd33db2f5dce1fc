#include "lsp_sweeper/util/hex.hpp"

#include <openssl/sha.h>

#include <array>

namespace lsp_sweeper::util {

namespace {
constexpr char kDigits[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::optional<std::string> normalize_hex32(std::string_view text) {
  if (text.size() != 64) return std::nullopt;
  std::string out(64, '0');
  for (std::size_t i = 0; i < 64; ++i) {
    const int v = hex_value(text[i]);
    if (v < 0) return std::nullopt;
    out[i] = kDigits[v];
  }
  return out;
}

std::string to_hex(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0x0f]);
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return to_hex({reinterpret_cast<const char*>(digest.data()), digest.size()});
}

std::optional<std::array<unsigned char, 32>> decode_hex32(std::string_view text) {
  if (text.size() != 64) return std::nullopt;
  std::array<unsigned char, 32> bytes{};
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const int hi = hex_value(text[2 * i]);
    const int lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    bytes[i] = static_cast<unsigned char>((hi << 4) | lo);
  }
  return bytes;
}

bool preimage_matches(std::string_view preimage_hex, std::string_view payment_hash_hex) {
  if (payment_hash_hex.size() != 64) return false;
  const auto bytes = decode_hex32(preimage_hex);
  if (!bytes) return false;
  return sha256_hex({reinterpret_cast<const char*>(bytes->data()), bytes->size()}) ==
         payment_hash_hex;
}

std::string printable(std::string_view text, std::size_t max_chars) {
  std::string out;
  const std::size_t n = text.size() < max_chars ? text.size() : max_chars;
  out.reserve(n + 3);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  if (text.size() > max_chars) out += "...";
  return out;
}

}  // namespace lsp_sweeper::util
