// Zulip's user status API (POST /users/me/status, GET and POST
// /users/{user_id}/status, the `user_status` snapshot of /register): its
// parameters, checked as Zulip checks them, and its JSON.
//
// presenced keeps no emoji table: a unicode emoji is checked for the form of
// its code (hex code points joined by '-'), not against Zulip's name list,
// and a name without a code is known only for "zulip" (see README, "User
// status"). There are no custom (realm) emoji.
//
// Thread safety: stateless functions.
#ifndef PRESENCE_API_USER_STATUS_H_
#define PRESENCE_API_USER_STATUS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/api_error.h"
#include "api/request_params.h"
#include "core/presence_writer.h"
#include "core/store.h"

namespace presence::api {

// Zulip's limit on status_text, in characters (code points).
inline constexpr std::size_t kMaxStatusTextChars = 60;

// Extensions (issue #18): how far ahead scheduled_end_time and dnd_end_time
// may be, in seconds (366 days).
inline constexpr std::int64_t kMaxStatusEndAheadSeconds = 366 * 86400;

// What a status object or event shows (the user_status_extensions
// capability, or `user_status_extensions=true` on GET).
enum class StatusShape : std::uint8_t { kZulip, kExtended };

// Reads the parameters (`away` only when `accept_away`: the administrators'
// endpoint has none) and checks their types and the text's length:
// "away is not a boolean", "status_text is too long (limit: 60 characters)".
// status_text comes back trimmed of surrounding whitespace. Also reads the
// extensions' scheduled_end_time, dnd and dnd_end_time (JSON integer,
// boolean, integer).
ApiResult<StatusUpdate> ReadStatusParams(RequestParams& params,
                                         bool accept_away);

// Zulip's check_update_user_status on what ReadStatusParams read: at least
// one of away, status_text, emoji_name ("Client did not pass any new
// values."; an extension parameter counts too); an empty emoji_name clears
// the emoji (code "", type unicode_emoji); a code or type needs a name; the
// emoji must be valid. On success emoji_code and reaction_type are set
// whenever emoji_name is. Then the extensions, against the server's clock
// `now_seconds` (UNIX seconds): scheduled_end_time and dnd_end_time are 0
// (no end) or after now and at most 366 days ahead; a dnd_end_time other
// than 0 needs dnd=true in the same request.
ApiResult<StatusUpdate> CheckStatusUpdate(StatusUpdate update,
                                          std::int64_t now_seconds);

// Appends Zulip's status object (format_user_status): "away": true when
// presence is disabled, status_text when not empty, the emoji when its
// name is not empty; {} when none applies. kExtended adds
// scheduled_end_time, "dnd": true and dnd_end_time, each only when set.
void AppendStatusObject(std::string& out, const store::UserStatus& status,
                        bool presence_enabled,
                        StatusShape shape = StatusShape::kZulip);

// Whether the /register snapshot leaves the status out (Zulip excludes a
// row that says nothing: visible, no text, no emoji; kExtended: nor dnd or
// a scheduled end).
bool StatusSaysNothing(const store::UserStatus& status, bool presence_enabled,
                       StatusShape shape = StatusShape::kZulip);

}  // namespace presence::api

#endif  // PRESENCE_API_USER_STATUS_H_
