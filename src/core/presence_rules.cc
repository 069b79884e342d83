#include "core/presence_rules.h"

#include <algorithm>

#include "core/constants.h"

namespace presence {
namespace {

constexpr Micros kOneDay = SecondsToMicros(kSecondsPerDay);
constexpr Micros kMinFreq = SecondsToMicros(kUpdateMinFreqSeconds);
constexpr Micros kOnlineGap = SecondsToMicros(kBecameOnlineGapSeconds);

// Floor division, so that times before the epoch truncate like Python's
// int() would not (they never occur in practice; this only keeps it total).
std::int64_t ToSeconds(Micros t) {
  return t >= 0 ? t / kMicrosPerSecond
                : -((-t + kMicrosPerSecond - 1) / kMicrosPerSecond);
}

}  // namespace

ReportOutcome ApplyReport(const std::optional<PresenceTimes>& before,
                          Micros now, ReportStatus status) {
  ReportOutcome out;
  const bool active = status == ReportStatus::kActive;
  PresenceTimes row;
  if (before) {
    row = *before;
  } else {
    out.created = true;
    row.last_connected = now;
    row.last_active = active ? now : kNoTime;
  }
  const Micros since_active =
      row.last_active == kNoTime ? kOneDay : now - row.last_active;
  const Micros since_connected =
      row.last_connected == kNoTime ? kOneDay : now - row.last_connected;
  out.became_online = active && since_active > kOnlineGap;

  bool changed = false;
  if (!out.created && since_connected > kMinFreq) {
    row.last_connected = now;
    changed = true;
  }
  if (!out.created && active && since_active > kMinFreq) {
    row.last_active = now;
    changed = true;
    if (row.last_connected == kNoTime || now > row.last_connected) {
      row.last_connected = now;  // keep connected >= active
    }
  }
  out.wrote = out.created || changed;
  out.after = row;
  return out;
}

std::int64_t SecondsOrJoined(Micros t, Micros date_joined) {
  return ToSeconds(t == kNoTime ? date_joined : t);
}

LegacyView ComputeLegacy(const PresenceTimes& times, Micros date_joined) {
  const Micros a =
      times.last_active == kNoTime ? date_joined : times.last_active;
  const Micros c =
      times.last_connected == kNoTime ? date_joined : times.last_connected;
  LegacyView v;
  if (a + SecondsToMicros(kLegacyActivityOffsetSeconds) >= c) {
    v.active = true;
    v.timestamp = ToSeconds(a);
  } else {
    v.active = false;
    v.timestamp = ToSeconds(c);
  }
  return v;
}

std::optional<PresenceTimes> ApplyGoInvisible(
    const std::optional<PresenceTimes>& before, Micros now) {
  if (!before) return std::nullopt;
  const Micros b = now - SecondsToMicros(kInvisibleBackdateSeconds);
  const Micros m = now - SecondsToMicros(kInvisiblePrewriteSeconds);
  PresenceTimes row = *before;
  if (row.last_connected != kNoTime && row.last_connected <= b) {
    return std::nullopt;
  }
  row.last_connected =
      row.last_connected == kNoTime ? m : std::min(m, row.last_connected);
  ReportStatus status;
  if (row.last_active == kNoTime || row.last_active < b) {
    status = ReportStatus::kIdle;
  } else {
    row.last_active = std::min(m, row.last_active);
    status = ReportStatus::kActive;
  }
  // The pre-write to M makes the report at B pass the 55 s rule.
  return ApplyReport(row, b, status).after;
}

ReportOutcome ApplyBecomeVisible(const std::optional<PresenceTimes>& before,
                                 Micros now) {
  return ApplyReport(before, now, ReportStatus::kActive);
}

std::optional<PresenceTimes> ApplyPresenceEnabled(
    const std::optional<PresenceTimes>& before, bool enabled, Micros now) {
  if (!enabled) return ApplyGoInvisible(before, now);
  ReportOutcome out = ApplyBecomeVisible(before, now);
  if (!out.wrote) return std::nullopt;
  return out.after;
}

}  // namespace presence
