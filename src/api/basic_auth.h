// HTTP Basic credentials of an /api/ request (spec §2.0 "Authentication").
//
// ParseBasicAuthorization() only takes the Authorization header apart; looking
// the user up by API key, comparing the email with the user's delivery_email
// and the realm/user/subdomain checks belong to the caller, which reports them
// with ApiError::Unauthorized() and the messages below.
//
// Thread safety: pure functions; safe from any thread.
#ifndef PRESENCE_API_BASIC_AUTH_H_
#define PRESENCE_API_BASIC_AUTH_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/api_error.h"

namespace presence::api {

// Zulip's messages for authentication failures, word for word. On the
// Basic-auth path all of them are sent as 401 UNAUTHORIZED, except
// kRequiresBasicAuth (400 BAD_REQUEST).
inline constexpr std::string_view kRequiresBasicAuth =
    "This endpoint requires HTTP basic authentication.";
inline constexpr std::string_view kInvalidBasicAuthHeader =
    "Invalid authorization header for basic auth";
inline constexpr std::string_view kMissingBasicAuthHeader =
    "Missing authorization header for basic auth";
inline constexpr std::string_view kMalformedApiKey = "Malformed API key";
inline constexpr std::string_view kInvalidApiKey = "Invalid API key";
inline constexpr std::string_view kRealmDeactivated =
    "This organization has been deactivated";
inline constexpr std::string_view kUserDeactivated = "Account is deactivated";
inline constexpr std::string_view kWrongSubdomain =
    "Account is not associated with this subdomain";
inline constexpr std::string_view kWebhookBotNotAllowed =
    "This API is not available to incoming webhook bots.";

// The decoded "email:key" text, and where the two parts lie in it. Held
// inline up to kInline bytes (any real email with its key: no allocation
// on a cold authentication, issue #17), on the heap beyond; a copy or move
// keeps the parts valid (positions, not views).
class BasicCredentials {
 public:
  static constexpr std::size_t kInline = 320;

  // As sent, surrounding whitespace stripped.
  std::string_view email() const {
    return std::string_view(data() + email_pos_, email_size_);
  }
  // 32 characters of [A-Za-z0-9].
  std::string_view api_key() const {
    return std::string_view(data() + key_pos_, key_size_);
  }

 private:
  friend ApiResult<BasicCredentials> ParseBasicAuthorization(
      std::string_view header);
  BasicCredentials() = default;

  // Room for `size` bytes of text (inline or on the heap).
  char* Reserve(std::size_t size);
  // `email` and `api_key` lie in data().
  void SetParts(std::string_view email, std::string_view api_key);
  const char* data() const {
    return heap_.empty() ? reinterpret_cast<const char*>(inline_.data())
                         : heap_.data();
  }

  // Unsigned: copying the bytes past the text (never written) is defined.
  std::array<unsigned char, kInline> inline_;
  std::string heap_;  // empty unless the text is longer than kInline
  std::uint32_t email_pos_ = 0, email_size_ = 0, key_pos_ = 0, key_size_ = 0;
};

// Parses the value of an Authorization header (the caller handles a missing
// header, with ApiError::NotLoggedIn()). In order:
//  - the value is split into words on whitespace (like Python's str.split());
//    no word at all -> 401 kInvalidBasicAuthHeader;
//  - the first word is the scheme, compared case-insensitively with "Basic";
//    any other scheme -> 400 kRequiresBasicAuth (even "Bearer" alone);
//  - there must be exactly one more word, else 401 kInvalidBasicAuthHeader;
//  - it must be strict base64 (RFC 4648, padded) of UTF-8 text, else 401
//    kInvalidBasicAuthHeader;
//  - the text split on ':' must give exactly two parts, else 401
//    kInvalidBasicAuthHeader; surrounding ASCII whitespace is stripped from
//    both parts;
//  - the key must match ^[A-Za-z0-9]{32}$, else 401 kMalformedApiKey.
// The email is not validated here (an empty one passes); the user lookup
// rejects it.
ApiResult<BasicCredentials> ParseBasicAuthorization(std::string_view header);

}  // namespace presence::api

#endif  // PRESENCE_API_BASIC_AUTH_H_
