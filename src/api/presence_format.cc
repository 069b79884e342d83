#include "api/presence_format.h"

#include <algorithm>

#include "api/json_writer.h"
#include "core/presence_rules.h"

namespace presence::api {

void AppendModernValue(std::string& out, const PresenceTimes& times,
                       Micros date_joined) {
  out.append("{\"active_timestamp\":");
  AppendInt(out, SecondsOrJoined(times.last_active, date_joined));
  out.append(",\"idle_timestamp\":");
  AppendInt(out, SecondsOrJoined(times.last_connected, date_joined));
  out.push_back('}');
}

void AppendModernEntry(std::string& out, const Member& m) {
  out.push_back('"');
  AppendInt(out, m.id);
  out.append("\":");
  AppendModernValue(out, m.times, m.date_joined);
}

void AppendLegacyValue(std::string& out, const PresenceTimes& times,
                       Micros date_joined) {
  LegacyView v = ComputeLegacy(times, date_joined);
  const char* status = v.active ? "\"active\"" : "\"idle\"";
  out.append("{\"aggregated\":{\"client\":\"website\",\"status\":");
  out.append(status);
  out.append(",\"timestamp\":");
  AppendInt(out, v.timestamp);
  out.append("},\"website\":{\"client\":\"website\",\"status\":");
  out.append(status);
  out.append(",\"timestamp\":");
  AppendInt(out, v.timestamp);
  out.append(",\"pushable\":false}}");
}

void AppendLegacyEntry(std::string& out, const Member& m) {
  AppendJsonString(out, m.email);
  out.push_back(':');
  AppendLegacyValue(out, m.times, m.date_joined);
}

UpdateId AppendPresences(std::string& out, const PresenceService& service,
                         const Caller& caller, const FetchQuery& query,
                         bool modern, Micros now,
                         const std::vector<UserId>* only) {
  out.append("\"presences\":{");
  bool first = true;
  UpdateId last = service.Fetch(caller, query, now, [&](const Member& m) {
    if (only != nullptr &&
        !std::binary_search(only->begin(), only->end(), m.id)) {
      return;
    }
    if (!first) out.push_back(',');
    first = false;
    if (modern) {
      AppendModernEntry(out, m);
    } else {
      AppendLegacyEntry(out, m);
    }
  });
  out.push_back('}');
  return last;
}

}  // namespace presence::api
