#include "connection.hpp"

#include <cctype>
#include <cstddef>
#include <vector>

#include "../backends.hpp"
#include "lsp_sweeper/store/store.hpp"

namespace lsp_sweeper::store::postgres {

namespace {

constexpr std::string_view kMask = "***";

// Where a password value sits in a connection string: [begin, end).
struct Span {
  std::size_t begin;
  std::size_t end;
};

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// libpq itself only takes the lowercase prefixes; matching any case here errs on the side of
// redacting a string libpq would refuse (and echo back in its error).
bool is_uri(std::string_view s) {
  for (std::string_view prefix : {"postgresql://", "postgres://"}) {
    if (s.size() < prefix.size()) continue;
    bool match = true;
    for (std::size_t i = 0; i < prefix.size() && match; ++i) {
      match = std::tolower(static_cast<unsigned char>(s[i])) == prefix[i];
    }
    if (match) return true;
  }
  return false;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoding, for query keys: libpq decodes them, so "pass%77ord" is a password too.
std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const int high = s[i] == '%' && i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
    const int low = high >= 0 ? hex_digit(s[i + 2]) : -1;
    if (low >= 0) {
      out += static_cast<char>(high * 16 + low);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// postgresql://user:PASSWORD@host/db?password=PASSWORD&... The userinfo is found the way
// libpq finds it: up to the first '@' before any '/', the password after its first ':'.
std::vector<Span> uri_password_spans(std::string_view s) {
  std::vector<Span> spans;
  const std::size_t start = s.find("://") + 3;
  std::size_t rest = start;
  const std::size_t at = s.find_first_of("@/", start);
  if (at != std::string_view::npos && s[at] == '@') {
    const std::size_t colon = s.find(':', start);
    if (colon < at) spans.push_back({colon + 1, at});
    rest = at + 1;
  }
  const std::size_t query = s.find('?', rest);
  if (query == std::string_view::npos) return spans;
  for (std::size_t begin = query + 1; begin <= s.size();) {
    std::size_t end = s.find('&', begin);
    if (end == std::string_view::npos) end = s.size();
    const std::size_t eq = s.find('=', begin);
    if (eq < end && percent_decode(s.substr(begin, eq - begin)) == "password") {
      spans.push_back({eq + 1, end});
    }
    begin = end + 1;
  }
  return spans;
}

// host=h password=PASSWORD password = 'PASS WORD' ..., tokenized as libpq does: values are
// single-quoted or end at whitespace, and a backslash escapes the next character.
std::vector<Span> keyword_password_spans(std::string_view s) {
  std::vector<Span> spans;
  std::size_t i = 0;
  const auto skip_space = [&] {
    while (i < s.size() && is_space(s[i])) ++i;
  };
  for (skip_space(); i < s.size(); skip_space()) {
    const std::size_t key_begin = i;
    while (i < s.size() && s[i] != '=' && !is_space(s[i])) ++i;
    const std::string_view key = s.substr(key_begin, i - key_begin);
    skip_space();
    if (i == s.size() || s[i] != '=') {
      // libpq refuses the string; where its values are is anyone's guess, so hide the rest.
      spans.push_back({key_begin, s.size()});
      break;
    }
    ++i;
    skip_space();
    const bool quoted = i < s.size() && s[i] == '\'';
    if (quoted) ++i;
    const std::size_t value_begin = i;
    while (i < s.size() && !(quoted ? s[i] == '\'' : is_space(s[i]))) i += s[i] == '\\' ? 2 : 1;
    if (i > s.size()) i = s.size();
    if (key == "password") spans.push_back({value_begin, i});
    if (quoted && i < s.size()) ++i;  // the closing quote
  }
  return spans;
}

std::vector<Span> password_spans(std::string_view s) {
  return is_uri(s) ? uri_password_spans(s) : keyword_password_spans(s);
}

// libpq may quote part of the connection string back in its error, e.g. `invalid
// percent-encoded token: "<password>"`, so every password text is masked in the reason too.
std::string scrub_passwords(std::string message, std::string_view connection_string) {
  for (const Span& span : password_spans(connection_string)) {
    const std::string_view secret = connection_string.substr(span.begin, span.end - span.begin);
    if (secret.empty()) continue;
    for (std::size_t at = message.find(secret); at != std::string::npos;
         at = message.find(secret, at + kMask.size())) {
      message.replace(at, secret.size(), kMask);
    }
  }
  return message;
}

}  // namespace

std::string redact(const std::string& connection_string) {
  std::string out;
  std::size_t copied = 0;
  for (const Span& span : password_spans(connection_string)) {
    out.append(connection_string, copied, span.begin - copied);
    out += kMask;
    copied = span.end;
  }
  out.append(connection_string, copied);
  return out;
}

namespace detail {

std::unique_ptr<pqxx::connection> connect(const std::string& connection_string) {
  try {
    return std::make_unique<pqxx::connection>(connection_string);
  } catch (const std::exception& e) {
    throw StoreError("cannot connect to the database (" +
                     redact(connection_string) +
                     "): " + one_line(scrub_passwords(e.what(), connection_string)));
  }
}

std::string one_line(std::string_view message) {
  std::string out;
  std::size_t next = 0;
  while (next < message.size()) {
    std::size_t end = message.find('\n', next);
    if (end == std::string_view::npos) end = message.size();
    const std::string_view line = message.substr(next, end - next);
    next = end + 1;
    // The statement excerpt and the caret under it only make sense on separate lines.
    if (line.starts_with("LINE ") || line.find_first_not_of(" \t^") == std::string_view::npos) {
      continue;
    }
    for (char c : line) {
      if (!is_space(c)) {
        out += c;
      } else if (!out.empty() && out.back() != ' ') {
        out += ' ';
      }
    }
    if (!out.empty() && out.back() != ' ') out += ' ';
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace detail

}  // namespace lsp_sweeper::store::postgres
