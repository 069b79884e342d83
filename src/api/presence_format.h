// The three presence data formats of Zulip's API (spec 2.5), written straight
// into a response buffer.
#ifndef PRESENCE_API_PRESENCE_FORMAT_H_
#define PRESENCE_API_PRESENCE_FORMAT_H_

#include <string>
#include <vector>

#include "core/presence_rules.h"
#include "core/presence_service.h"

namespace presence::api {

// "<user_id>":{"active_timestamp":A,"idle_timestamp":C}
void AppendModernEntry(std::string& out, const Member& m);
void AppendModernValue(std::string& out, const PresenceTimes& times,
                       Micros date_joined);

// "<email>":{"aggregated":{...},"website":{...}}
void AppendLegacyEntry(std::string& out, const Member& m);
// {"aggregated":{"client":"website","status":S,"timestamp":T},
//  "website":{"client":"website","status":S,"timestamp":T,"pushable":false}}
void AppendLegacyValue(std::string& out, const PresenceTimes& times,
                       Micros date_joined);

// --- Per-client extension (README "Per-client presence") ------------------
// A user with client rows: the legacy value lists one key per client,
// {"client":N,"status":S,"timestamp":T,"pushable":false} (status and
// timestamp by the 70 s rule on that client's own row; pushable is always
// false: presenced knows no push devices), after "aggregated", which is
// {"client","status","timestamp"} of the client with the latest timestamp
// (the first by name on a tie). A user without client rows (rows written
// before the extension, or only by the invisible-mode switch) gets today's
// value. The modern value gains "clients": {name: {active_timestamp,
// idle_timestamp}} (possibly empty), NULL times falling back to date_joined
// as for the user row.

// One client's legacy view.
struct ClientLegacyView {
  std::string_view client;
  LegacyView view;
};
// The per-client legacy views (by client name) and the index of the
// aggregated one. Empty when `clients` is null or empty.
std::vector<ClientLegacyView> ClientLegacyViews(const ClientRowList* clients,
                                                Micros date_joined,
                                                std::size_t* aggregated);

void AppendModernValuePerClient(std::string& out, const PresenceTimes& times,
                                Micros date_joined,
                                const ClientRowList* clients);
void AppendLegacyValuePerClient(std::string& out, const PresenceTimes& times,
                                Micros date_joined,
                                const ClientRowList* clients);

// Appends `"presences":{...}` for a realm fetch and returns
// presence_last_update_id. With `only` (sorted user ids), rows of other users
// are left out of the object (the returned id still covers every row).
// `per_client`: the per-client variant of the format, and a cursor that also
// counts client-row writes (FetchQuery::per_client).
UpdateId AppendPresences(std::string& out, const PresenceService& service,
                         const Caller& caller, const FetchQuery& query,
                         bool modern, Micros now,
                         const std::vector<UserId>* only = nullptr,
                         bool per_client = false);

}  // namespace presence::api

#endif  // PRESENCE_API_PRESENCE_FORMAT_H_
