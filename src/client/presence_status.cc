#include "client/presence_status.h"

#include <algorithm>

namespace presence::client {

std::string_view StatusName(PresenceStatus status) {
  switch (status) {
    case PresenceStatus::kActive:
      return "active";
    case PresenceStatus::kIdle:
      return "idle";
    case PresenceStatus::kOffline:
      return "offline";
  }
  return "offline";
}

ComputedPresence StatusFromRaw(const RawPresence& raw,
                               int offline_threshold_seconds,
                               std::optional<std::int64_t> date_joined) {
  // Seconds as doubles: server_timestamp carries microseconds, and the
  // comparison must be strict on the exact value, not on a rounded one.
  const double threshold = offline_threshold_seconds;
  auto age = [&](std::optional<std::int64_t> ts) {
    return raw.server_timestamp - static_cast<double>(ts.value_or(0));
  };
  auto nonzero = [](std::int64_t v) -> std::optional<std::int64_t> {
    if (v == 0) return std::nullopt;
    return v;
  };
  const std::int64_t active = raw.times.active_timestamp.value_or(0);
  const std::int64_t idle = raw.times.idle_timestamp.value_or(0);
  if (age(raw.times.active_timestamp) < threshold) {
    return {PresenceStatus::kActive, nonzero(active)};
  }
  if (age(raw.times.idle_timestamp) < threshold) {
    return {PresenceStatus::kIdle, nonzero(std::max(active, idle))};
  }
  return {PresenceStatus::kOffline,
          nonzero(std::max(active, date_joined.value_or(0)))};
}

Device DeviceOfClient(std::string_view client) {
  for (std::string_view m :
       {"ZulipMobile", "ZulipFlutter", "ZulipAndroid", "ZulipiOS"}) {
    if (client == m) return Device::kMobile;
  }
  for (std::string_view d :
       {"website", "ZulipTerminal", "ZulipElectron", "ZulipDesktop"}) {
    if (client == d) return Device::kDesktop;
  }
  return Device::kUnknown;
}

}  // namespace presence::client
