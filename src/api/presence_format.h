// The three presence data formats of Zulip's API (spec 2.5), written straight
// into a response buffer.
#ifndef PRESENCE_API_PRESENCE_FORMAT_H_
#define PRESENCE_API_PRESENCE_FORMAT_H_

#include <string>
#include <vector>

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

// Appends `"presences":{...}` for a realm fetch and returns
// presence_last_update_id. With `only` (sorted user ids), rows of other users
// are left out of the object (the returned id still covers every row).
UpdateId AppendPresences(std::string& out, const PresenceService& service,
                         const Caller& caller, const FetchQuery& query,
                         bool modern, Micros now,
                         const std::vector<UserId>* only = nullptr);

}  // namespace presence::api

#endif  // PRESENCE_API_PRESENCE_FORMAT_H_
