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
  AppendJsonString(out, m.email());
  out.push_back(':');
  AppendLegacyValue(out, m.times, m.date_joined);
}

std::vector<ClientLegacyView> ClientLegacyViews(const ClientRowList* clients,
                                                Micros date_joined,
                                                std::size_t* aggregated) {
  std::vector<ClientLegacyView> views;
  *aggregated = 0;
  if (clients == nullptr) return views;
  views.reserve(clients->size());
  for (const ClientPresence& c : *clients) {
    views.push_back({c.client, ComputeLegacy(c.times, date_joined)});
    if (views.back().view.timestamp > views[*aggregated].view.timestamp) {
      *aggregated = views.size() - 1;
    }
  }
  return views;
}

void AppendModernValuePerClient(std::string& out, const PresenceTimes& times,
                                Micros date_joined,
                                const ClientRowList* clients) {
  AppendModernValue(out, times, date_joined);
  out.pop_back();  // reopen the object
  out.append(",\"clients\":{");
  if (clients != nullptr) {
    bool first = true;
    for (const ClientPresence& c : *clients) {
      if (!first) out.push_back(',');
      first = false;
      AppendJsonString(out, c.client);
      out.push_back(':');
      AppendModernValue(out, c.times, date_joined);
    }
  }
  out.append("}}");
}

void AppendLegacyValuePerClient(std::string& out, const PresenceTimes& times,
                                Micros date_joined,
                                const ClientRowList* clients) {
  std::size_t agg = 0;
  auto views = ClientLegacyViews(clients, date_joined, &agg);
  if (views.empty()) {
    AppendLegacyValue(out, times, date_joined);
    return;
  }
  auto record = [&](const ClientLegacyView& v, bool pushable) {
    out.append("{\"client\":");
    AppendJsonString(out, v.client);
    out.append(",\"status\":");
    out.append(v.view.active ? "\"active\"" : "\"idle\"");
    out.append(",\"timestamp\":");
    AppendInt(out, v.view.timestamp);
    if (pushable) out.append(",\"pushable\":false");
    out.push_back('}');
  };
  out.append("{\"aggregated\":");
  record(views[agg], false);
  for (const ClientLegacyView& v : views) {
    out.push_back(',');
    AppendJsonString(out, v.client);
    out.push_back(':');
    record(v, true);
  }
  out.push_back('}');
}

UpdateId AppendPresences(std::string& out, const PresenceService& service,
                         const Caller& caller, const FetchQuery& query,
                         bool modern, Micros now,
                         const std::vector<UserId>* only, bool per_client) {
  out.append("\"presences\":{");
  bool first = true;
  if (per_client) {
    FetchQuery q = query;
    q.per_client = true;
    UpdateId last = service.FetchWithClients(
        caller, q, now, [&](const Member& m, const ClientRowList* clients) {
          if (only != nullptr &&
              !std::binary_search(only->begin(), only->end(), m.id)) {
            return;
          }
          if (!first) out.push_back(',');
          first = false;
          if (modern) {
            out.push_back('"');
            AppendInt(out, m.id);
            out.append("\":");
            AppendModernValuePerClient(out, m.times, m.date_joined, clients);
          } else {
            AppendJsonString(out, m.email());
            out.push_back(':');
            AppendLegacyValuePerClient(out, m.times, m.date_joined, clients);
          }
        });
    out.push_back('}');
    return last;
  }
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
