// RelayAuth: signs and verifies the requests one presenced node relays to
// another (scale-out), so that only the nodes of one group, which share a
// secret (--cluster-secret-file), are trusted as relays.
//
// The relayed request carries X-Presenced-Forwarded: "<unix seconds>.<hex
// HMAC-SHA256>", the HMAC taken with the secret over a version tag, the
// method, the target, the timestamp and the body. The receiver accepts it
// only if the HMAC verifies (constant-time compare) and the timestamp is
// within kMaxSkew of its own clock; anything else (a client's own header, a
// node with another secret, a replay from long ago) is a plain client
// request. The window bounds replays; it does not prevent one within it,
// which is harmless: a relay only changes which node answers a request the
// sender could make anyway.
//
// Thread safety: immutable after construction; safe from any thread.
#ifndef PRESENCE_HTTP_RELAY_AUTH_H_
#define PRESENCE_HTTP_RELAY_AUTH_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace presence::http {

class RelayAuth {
 public:
  static constexpr std::chrono::seconds kMaxSkew{60};

  explicit RelayAuth(std::string secret) : secret_(std::move(secret)) {}

  // The X-Presenced-Forwarded value for a request signed at `now_unix`.
  std::string Sign(std::string_view method, std::string_view target,
                   std::string_view body, std::int64_t now_unix) const;

  // True if `header` is a signature of this request by a node holding the
  // same secret, made within kMaxSkew of `now_unix`.
  bool Verify(std::string_view method, std::string_view target,
              std::string_view body, std::string_view header,
              std::int64_t now_unix) const;

  // The wall clock in Unix seconds, as Sign and Verify want it.
  static std::int64_t NowUnix();

 private:
  std::string Mac(std::string_view method, std::string_view target,
                  std::string_view body, std::string_view timestamp) const;

  const std::string secret_;
};

}  // namespace presence::http

#endif  // PRESENCE_HTTP_RELAY_AUTH_H_
