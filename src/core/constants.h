// Zulip's presence tuning constants (spec section 5). Clients and tests depend
// on these exact values.
#ifndef PRESENCE_CORE_CONSTANTS_H_
#define PRESENCE_CORE_CONSTANTS_H_

#include "util/clock.h"

namespace presence {

inline constexpr int kOfflineThresholdSeconds = 200;
inline constexpr int kPingIntervalSeconds = 60;
inline constexpr int kUpdateMinFreqSeconds = 55;
inline constexpr int kLegacyActivityOffsetSeconds = 70;
inline constexpr int kDefaultHistoryLimitDays = 14;
// An active report this long after the previous one is "came online".
inline constexpr int kBecameOnlineGapSeconds =
    kOfflineThresholdSeconds - kPingIntervalSeconds - 10;  // 130
// Invisible mode back-dates the row to now - 265 s ...
inline constexpr int kInvisibleBackdateSeconds =
    kOfflineThresholdSeconds + kUpdateMinFreqSeconds + 10;  // 265
// ... after pre-writing it to now - 330 s so the 55 s rule lets that through.
inline constexpr int kInvisiblePrewriteSeconds =
    kInvisibleBackdateSeconds + kUpdateMinFreqSeconds + 10;  // 330

static_assert(3 * kPingIntervalSeconds + 20 <= kOfflineThresholdSeconds);

inline constexpr Micros kSecondsPerDay = 86400;

}  // namespace presence

#endif  // PRESENCE_CORE_CONSTANTS_H_
