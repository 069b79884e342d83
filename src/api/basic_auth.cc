#include "api/basic_auth.h"

#include <array>
#include <cstddef>
#include <optional>
#include <utility>

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

// Like Python's str.split() with no argument (runs of whitespace separate
// words, and there are no empty words), but keeping only the first
// `kKept` words and counting the rest: this header has two words, and
// every cold authentication splits it (no allocation here).
struct Words {
  static constexpr std::size_t kKept = 2;
  std::array<std::string_view, kKept> first;
  std::size_t count = 0;
};

Words SplitWords(std::string_view s) {
  Words words;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && IsSpace(s[i])) ++i;
    std::size_t start = i;
    while (i < s.size() && !IsSpace(s[i])) ++i;
    if (i > start) {
      if (words.count < Words::kKept) {
        words.first[words.count] = s.substr(start, i - start);
      }
      ++words.count;
    }
  }
  return words;
}

// Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF), as
// Python's bytes.decode() demands; Zulip treats a failure like bad base64.
bool IsValidUtf8(std::string_view s) {
  std::size_t i = 0;
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

bool IsWellFormedApiKey(std::string_view key) {
  if (key.size() != 32) return false;
  for (char c : key) {
    bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                 (c >= '0' && c <= '9');
    if (!alnum) return false;
  }
  return true;
}

ApiError InvalidHeader() {
  return ApiError::Unauthorized(std::string(kInvalidBasicAuthHeader));
}

}  // namespace

ApiResult<BasicCredentials> ParseBasicAuthorization(std::string_view header) {
  const Words words = SplitWords(header);
  if (words.count == 0) return InvalidHeader();
  if (!EqualsIgnoreCase(words.first[0], "basic")) {
    return ApiError::BadRequest(std::string(kRequiresBasicAuth));
  }
  if (words.count != 2) return InvalidHeader();

  std::optional<std::string> decoded = Base64Decode(words.first[1]);
  if (!decoded || !IsValidUtf8(*decoded)) return InvalidHeader();

  std::string_view text = *decoded;
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
  return BasicCredentials(std::move(*decoded), email, api_key);
}

BasicCredentials::BasicCredentials(std::string text, std::string_view email,
                                   std::string_view api_key) {
  // Positions first: `email` and `api_key` view `text`, whose characters
  // may move with it (a short text lives inside the string).
  const char* base = text.data();
  email_pos_ = static_cast<std::uint32_t>(email.data() - base);
  email_size_ = static_cast<std::uint32_t>(email.size());
  key_pos_ = static_cast<std::uint32_t>(api_key.data() - base);
  key_size_ = static_cast<std::uint32_t>(api_key.size());
  text_ = std::move(text);
}

}  // namespace presence::api
