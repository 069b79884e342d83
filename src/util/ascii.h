// ASCII case folding: the one definition of "equal ignoring case".
//
// Emails, subdomains, HTTP tokens and header names are compared ignoring the
// case of the 26 ASCII letters only; every other byte, including each byte of
// a UTF-8 sequence, compares exactly. This is what SQLite's NOCASE and lower()
// do without ICU, so the stores, the realm's email index and the API agree on
// which two names are the same.
//
// HashIgnoreCase agrees with EqualsIgnoreCase: strings that are equal
// ignoring case hash equal, so the pair can key a hash table.
//
// Thread safety: pure functions.
#ifndef PRESENCE_UTIL_ASCII_H_
#define PRESENCE_UTIL_ASCII_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace presence {

// `c` with 'A'..'Z' mapped to 'a'..'z'; any other byte unchanged.
constexpr char AsciiLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// `s` with each byte folded by AsciiLower(char).
inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

// True when `a` and `b` have the same length and are equal byte for byte
// after AsciiLower.
constexpr bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

// 64-bit FNV-1a of AsciiLower(s). Stable across runs and builds (no seed).
constexpr std::size_t HashIgnoreCase(std::string_view s) {
  std::size_t h = 14695981039346656037ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(AsciiLower(c));
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace presence

#endif  // PRESENCE_UTIL_ASCII_H_
