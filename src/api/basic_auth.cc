#include "api/basic_auth.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

#include "util/ascii.h"
#include "util/crypto.h"

namespace presence::api {
namespace {

bool IsSpace(char c) {
  // ' ', or one of '\t' '\n' '\v' '\f' '\r' (9..13): two comparisons, as
  // every character of every cold header passes here.
  const auto u = static_cast<unsigned char>(c);
  return u == ' ' || static_cast<unsigned char>(u - '\t') <= '\r' - '\t';
}

std::string_view Strip(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// Every base64 character is; no whitespace character is.
bool AboveSpace(char c) { return static_cast<unsigned char>(c) > ' '; }

// Skips whitespace from `i`.
std::size_t SkipSpace(std::string_view s, std::size_t i) {
  while (i < s.size() && IsSpace(s[i])) ++i;
  return i;
}

// Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF), as
// Python's bytes.decode() demands; Zulip treats a failure like bad base64.
bool IsValidUtf8(std::string_view s) {
  std::size_t i = 0;
  // ASCII, eight bytes at a time (credentials almost always are).
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    if ((word & 0x8080808080808080ULL) != 0) break;
  }
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      auto c = static_cast<unsigned char>(s[i + k]);
      unsigned char min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
      if (c < min || c > max) return false;
    }
    i += len;
  }
  return true;
}

constexpr std::array<bool, 256> kAlnum = [] {
  std::array<bool, 256> t{};
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  return t;
}();

bool IsWellFormedApiKey(std::string_view key) {
  if (key.size() != 32) return false;
  bool alnum = true;
  for (char c : key) alnum &= kAlnum[static_cast<unsigned char>(c)];
  return alnum;
}

ApiError InvalidHeader() {
  return ApiError::Unauthorized(std::string(kInvalidBasicAuthHeader));
}

}  // namespace

ApiResult<BasicCredentials> ParseBasicAuthorization(std::string_view header) {
  // The words as Python's str.split() gives them (runs of whitespace
  // separate words; there are no empty ones), without splitting the whole
  // header: the scheme, then one more word, then nothing.
  const std::size_t size = header.size();
  std::size_t i = SkipSpace(header, 0);
  if (i == size) return InvalidHeader();  // no word at all
  const std::size_t scheme_start = i;
  while (i < size && !IsSpace(header[i])) ++i;
  if (!EqualsIgnoreCase(header.substr(scheme_start, i - scheme_start),
                        "basic")) {
    return ApiError::BadRequest(std::string(kRequiresBasicAuth));
  }
  i = SkipSpace(header, i);
  if (i == size) return InvalidHeader();  // one word
  // The credentials: every character of a valid one is above ' ', and
  // every whitespace character is at or below it, so one comparison per
  // character finds the word's end. A control character that is not
  // whitespace stops the scan too: part of the word, which is then not
  // base64 (the same answer).
  const std::size_t word_start = i;
  while (i < size && AboveSpace(header[i])) ++i;
  const std::string_view word = header.substr(word_start, i - word_start);
  if (SkipSpace(header, i) != size) return InvalidHeader();

  BasicCredentials creds;
  char* text_data = creds.Reserve(word.size() / 4 * 3);
  const std::optional<std::size_t> decoded = Base64DecodeTo(word, text_data);
  if (!decoded) return InvalidHeader();
  const std::string_view text(text_data, *decoded);
  if (!IsValidUtf8(text)) return InvalidHeader();

  std::size_t colon = text.find(':');
  if (colon == std::string_view::npos ||
      text.find(':', colon + 1) != std::string_view::npos) {
    return InvalidHeader();
  }
  std::string_view email = Strip(text.substr(0, colon));
  std::string_view api_key = Strip(text.substr(colon + 1));
  if (!IsWellFormedApiKey(api_key)) {
    return ApiError::Unauthorized(std::string(kMalformedApiKey));
  }
  creds.SetParts(email, api_key);
  return creds;
}

char* BasicCredentials::Reserve(std::size_t size) {
  if (size <= kInline) return reinterpret_cast<char*>(inline_.data());
  heap_.resize(size);
  return heap_.data();
}

void BasicCredentials::SetParts(std::string_view email,
                                std::string_view api_key) {
  const char* base = data();
  email_pos_ = static_cast<std::uint32_t>(email.data() - base);
  email_size_ = static_cast<std::uint32_t>(email.size());
  key_pos_ = static_cast<std::uint32_t>(api_key.data() - base);
  key_size_ = static_cast<std::uint32_t>(api_key.size());
}

}  // namespace presence::api
