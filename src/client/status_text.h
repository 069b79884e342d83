// StatusText: what a person reads next to a name ("Active now", "Idle",
// "5 minutes ago", "yesterday", "2 days ago", "Nov 14").
//
// Follows Zulip's web client (spec 6.5, timerender's last-seen text) without
// its "Active " prefix: minutes below an hour, hours below a day, then
// "yesterday" for the previous calendar day, days below 90, and a date
// beyond that ("Nov 14" this year, "Nov 14, 2023" otherwise). Calendar days
// are those of the viewer's time zone, given as an offset from UTC so that
// the functions stay pure (LocalUtcOffsetSeconds reads the system's).
//
// Thread safety: pure functions, except LocalUtcOffsetSeconds (reads the
// C library's time zone, safe to call from any thread).
#ifndef PRESENCE_CLIENT_STATUS_TEXT_H_
#define PRESENCE_CLIENT_STATUS_TEXT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "client/presence_status.h"

namespace presence::client {

class StatusText {
 public:
  // "Active now" for active users, "Idle" for idle ones; for offline users
  // RelativeTime(last_active), or "Not active recently" without one.
  static std::string LastActive(PresenceStatus status,
                                std::optional<std::int64_t> last_active,
                                double now_seconds, int utc_offset_seconds);
  // The same, with the device for active and idle users when the server
  // offers per-client data: "Active now on mobile", "Idle on desktop".
  static std::string LastActive(PresenceStatus status,
                                std::optional<std::int64_t> last_active,
                                Device device, double now_seconds,
                                int utc_offset_seconds);
  // " on mobile", " on desktop", or "" for an unknown device.
  static std::string_view DeviceSuffix(Device device);

  // How long ago `then` was, seen at `now_seconds` (both unix seconds):
  // "just now" (under a minute, or in the future), "1 minute ago",
  // "N minutes ago", "an hour ago", "N hours ago", "yesterday",
  // "N days ago", "Nov 14", "Nov 14, 2023".
  static std::string RelativeTime(std::int64_t then, double now_seconds,
                                  int utc_offset_seconds);

  // --- User status ---------------------------------------------------------
  // The status emoji as a reader sees it: for unicode_emoji, the characters
  // of `emoji_code` (hex code points joined by '-': "1f600" -> U+1F600,
  // "1f1fa-1f1f8" -> a flag) in UTF-8; otherwise, or for a code that is not
  // valid hex code points, ":emoji_name:". "" without an emoji name.
  static std::string Emoji(std::string_view emoji_name,
                           std::string_view emoji_code,
                           std::string_view reaction_type);

  // When a status or do-not-disturb ends, seen at `now_seconds` in the
  // viewer's zone: "until 15:00" (today), "until tomorrow 15:00", "until
  // Nov 14" (later this year or within a year), "until Nov 14, 2027"
  // (another calendar year, beyond a year). 24-hour clock.
  static std::string Until(std::int64_t end, double now_seconds,
                           int utc_offset_seconds);

  // The system's current offset of local time from UTC, in seconds.
  static int LocalUtcOffsetSeconds();
};

}  // namespace presence::client

#endif  // PRESENCE_CLIENT_STATUS_TEXT_H_
