#include "http/relay_auth.h"

#include <charconv>

#include "util/crypto.h"

namespace presence::http {

std::string RelayAuth::Mac(std::string_view method, std::string_view target,
                           std::string_view body,
                           std::string_view timestamp) const {
  // Lengths before the variable parts: no two requests share a message.
  std::string message = "presenced-relay-v1\n";
  for (std::string_view part : {method, target, timestamp, body}) {
    message.append(std::to_string(part.size()));
    message.push_back(':');
    message.append(part);
    message.push_back('\n');
  }
  return HexEncode(HmacSha256(secret_, message));
}

std::string RelayAuth::Sign(std::string_view method, std::string_view target,
                            std::string_view body,
                            std::int64_t now_unix) const {
  const std::string timestamp = std::to_string(now_unix);
  return timestamp + "." + Mac(method, target, body, timestamp);
}

bool RelayAuth::Verify(std::string_view method, std::string_view target,
                       std::string_view body, std::string_view header,
                       std::int64_t now_unix) const {
  const auto dot = header.find('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  const std::string_view timestamp = header.substr(0, dot);
  std::int64_t signed_at = 0;
  const auto [end, ec] = std::from_chars(
      timestamp.data(), timestamp.data() + timestamp.size(), signed_at);
  if (ec != std::errc() || end != timestamp.data() + timestamp.size() ||
      signed_at < 0) {
    return false;
  }
  const std::int64_t skew =
      signed_at > now_unix ? signed_at - now_unix : now_unix - signed_at;
  if (skew > kMaxSkew.count()) return false;
  return ConstantTimeEqual(header.substr(dot + 1),
                           Mac(method, target, body, timestamp));
}

std::int64_t RelayAuth::NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace presence::http
