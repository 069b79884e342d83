// AsciiLower: the case folding the stores use for unique names.
//
// Emails and subdomains are compared ignoring ASCII case only (as SQLite's
// NOCASE and lower() do without ICU); other bytes compare exactly. Both stores
// fold with this one function so that they agree on what is a duplicate.
//
// Thread safety: a pure function.
#ifndef PRESENCE_STORE_ASCII_LOWER_H_
#define PRESENCE_STORE_ASCII_LOWER_H_

#include <string>
#include <string_view>

namespace presence::store {

inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace presence::store

#endif  // PRESENCE_STORE_ASCII_LOWER_H_
