// Plain value types shared by the core, the store and the API layer.
#ifndef PRESENCE_CORE_TYPES_H_
#define PRESENCE_CORE_TYPES_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "util/clock.h"

namespace presence {

using RealmId = std::int64_t;
using UserId = std::int64_t;
// A realm's presence sequence value. -1 means "no cursor" on the wire.
using UpdateId = std::int64_t;

// "Never": a NULL timestamp (Zulip stores NULL; output falls back to
// date_joined).
inline constexpr Micros kNoTime = std::numeric_limits<Micros>::min();

// Zulip's role values; the numbers are Zulip's and appear nowhere on the wire
// here, but keeping them makes ordering (owner < ... < guest) meaningful.
enum class Role : std::uint16_t {
  kOwner = 100,
  kAdministrator = 200,
  kModerator = 300,
  kMember = 400,
  kGuest = 600,
};

std::optional<Role> ParseRole(std::string_view name);
std::string_view RoleName(Role role);

// The two timestamps of one user's presence row.
struct PresenceTimes {
  Micros last_connected = kNoTime;  // any report (active or idle)
  Micros last_active = kNoTime;     // last `active` report
  friend bool operator==(const PresenceTimes&, const PresenceTimes&) = default;
};

enum class ReportStatus : std::uint8_t { kActive = 1, kIdle = 2 };

// Which end of a user status (issue #18's extensions): the scheduled end of
// the status text and emoji, or the end of do-not-disturb.
enum class StatusEndKind : std::uint8_t { kStatus = 0, kDnd = 1 };

}  // namespace presence

#endif  // PRESENCE_CORE_TYPES_H_
