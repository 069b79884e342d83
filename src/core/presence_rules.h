// Zulip's presence rules as pure functions (spec sections 3.2, 3.5, 3.7).
//
// Nothing here reads a clock or touches state: callers pass "now" and the row
// as it was, and get back what to store and whether to tell anyone.
#ifndef PRESENCE_CORE_PRESENCE_RULES_H_
#define PRESENCE_CORE_PRESENCE_RULES_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/types.h"

namespace presence {

// What one report (`record_presence`) does to a row.
struct ReportOutcome {
  PresenceTimes after;         // the row after the report
  bool created = false;        // no row existed before
  bool wrote = false;          // the row changed: take a new update id
  bool became_online = false;  // an event is due (unless presence disabled)
};

// Applies a report with `status` at `now` to `before` (nullopt: no row yet),
// with the 55 s minimum-frequency rule and the 130 s "came online" rule.
ReportOutcome ApplyReport(const std::optional<PresenceTimes>& before,
                          Micros now, ReportStatus status);

// The legacy ("aggregated"/"website") view of a row: status "active" when
// the last active time is within 70 s of the last connected time.
struct LegacyView {
  bool active = false;         // "active" or "idle"
  std::int64_t timestamp = 0;  // unix seconds, truncated
};
LegacyView ComputeLegacy(const PresenceTimes& times, Micros date_joined);

// Seconds (truncated) of a stored time, falling back to date_joined for NULL.
std::int64_t SecondsOrJoined(Micros t, Micros date_joined);

// Turning invisible mode on (presence_enabled true -> false), spec 3.7.
// Returns nullopt when nothing is to be written, else the times to store
// (they always count as a write with a forced event).
std::optional<PresenceTimes> ApplyGoInvisible(
    const std::optional<PresenceTimes>& before, Micros now);

// Turning invisible mode off (false -> true): an active report at `now`
// whose event is forced. Returns the outcome of that report.
ReportOutcome ApplyBecomeVisible(const std::optional<PresenceTimes>& before,
                                 Micros now);

// The invisible-mode toggle (spec 3.7) as one rule: the row written when
// presence_enabled changes to `enabled` (ApplyBecomeVisible's row, or
// ApplyGoInvisible's), or nullopt when nothing is written. Every write path
// (the realm, the stores' doubles) applies this.
std::optional<PresenceTimes> ApplyPresenceEnabled(
    const std::optional<PresenceTimes>& before, bool enabled, Micros now);

}  // namespace presence

#endif  // PRESENCE_CORE_PRESENCE_RULES_H_
