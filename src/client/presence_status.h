// PresenceStatus and StatusFromRaw: what one user's presence data means.
//
// This is Zulip's client algorithm (spec 6.3, web `status_from_raw`): a user
// is "active" when their last active report is younger than the server's
// offline threshold, "idle" when only their last report of any kind is, and
// "offline" otherwise. Ages are measured against the server's clock as the
// server stated it (`server_timestamp` of the same answer or event), never
// against the local clock, so a client with a wrong clock still agrees with
// every other client. Comparisons are strict: a timestamp exactly T seconds
// old is offline; a timestamp in the future is fresh.
//
// Thread safety: plain values and pure functions.
#ifndef PRESENCE_CLIENT_PRESENCE_STATUS_H_
#define PRESENCE_CLIENT_PRESENCE_STATUS_H_

#include <cstdint>
#include <optional>
#include <string_view>

namespace presence::client {

// A Zulip user id.
using UserId = std::int64_t;

enum class PresenceStatus { kActive, kIdle, kOffline };

// "active", "idle" or "offline".
std::string_view StatusName(PresenceStatus status);

// What clients assume when /register does not say (servers before FL 164).
inline constexpr int kFallbackPingIntervalSeconds = 60;
inline constexpr int kFallbackOfflineThresholdSeconds = 140;

// One user's timestamps in the modern format (unix seconds). Either may be
// missing: servers before Zulip 7.0 left out the ones they did not have.
struct PresenceTimes {
  std::optional<std::int64_t> active_timestamp;
  std::optional<std::int64_t> idle_timestamp;

  friend bool operator==(const PresenceTimes&, const PresenceTimes&) = default;
};

// Which kind of device a client name stands for (per-client extension):
// "website" (browsers and the desktop app), ZulipTerminal and the desktop
// apps' own names are at a desk; ZulipMobile (zulip-mobile and
// zulip-flutter), ZulipFlutter, ZulipAndroid and ZulipiOS are phones;
// anything else (bots, scripts) is unknown.
enum class Device { kUnknown, kDesktop, kMobile };
Device DeviceOfClient(std::string_view client);

// The times plus the server's clock reading they are to be judged against.
struct RawPresence {
  PresenceTimes times;
  double server_timestamp = 0;
};

// The outcome of StatusFromRaw: the status and the moment the user was last
// seen active (nullopt when nothing is known).
struct ComputedPresence {
  PresenceStatus status = PresenceStatus::kOffline;
  std::optional<std::int64_t> last_active;

  friend bool operator==(const ComputedPresence&,
                         const ComputedPresence&) = default;
};

// Spec 6.3, exactly:
//   age(ts) = server_timestamp - (ts or 0)
//   age(active) < T -> active,  last_active = active
//   age(idle)   < T -> idle,    last_active = max(active or 0, idle or 0)
//   otherwise       -> offline, last_active = max(active or 0, joined or 0)
// with T = `offline_threshold_seconds`. A last_active of 0 is reported as
// nullopt (never seen).
ComputedPresence StatusFromRaw(const RawPresence& raw,
                               int offline_threshold_seconds,
                               std::optional<std::int64_t> date_joined = {});

}  // namespace presence::client

#endif  // PRESENCE_CLIENT_PRESENCE_STATUS_H_
