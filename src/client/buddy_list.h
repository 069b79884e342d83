// BuddyList: the rows a buddy list shows, in the order it shows them.
//
// Zulip's web order without the conversation-specific levels (spec 6.5):
// active, then idle, then offline; within each, by name (case-insensitive),
// then by user id. A row's name is the full name from the directory, else
// the email, else "User <id>"; its text is StatusText::LastActive. A row
// also carries the user's status as a reader sees it at `server_now`: the
// emoji (StatusText::Emoji), the text, "until ..." for a scheduled end, and
// whether do-not-disturb holds (with its own "until ..."). A status past
// its scheduled end shows nothing, even before the server's clearing event
// arrives.
//
// Thread safety: pure function of its arguments.
#ifndef PRESENCE_CLIENT_BUDDY_LIST_H_
#define PRESENCE_CLIENT_BUDDY_LIST_H_

#include <string>
#include <vector>

#include "client/presence_table.h"

namespace presence::client {

struct BuddyRow {
  UserId user_id = 0;
  std::string name;
  std::string email;  // "" when unknown
  PresenceStatus status = PresenceStatus::kOffline;
  std::string last_active;  // "Active now", "Idle", "5 minutes ago", ...
  bool is_current_user = false;
  // User status ("" / false when none).
  std::string status_emoji;  // "😀" or ":octopus:"
  std::string status_text;
  std::string status_until;  // "until 15:00", for the text and emoji
  bool dnd = false;
  std::string dnd_until;  // "until tomorrow 09:00", when dnd has an end
};

class BuddyList {
 public:
  // Every row of `table.Users()`, sorted. `server_now` is the server's time
  // (PresenceClient::ServerNow); `utc_offset_seconds` the viewer's zone.
  static std::vector<BuddyRow> Build(const PresenceTable& table,
                                     double server_now, int utc_offset_seconds);
};

}  // namespace presence::client

#endif  // PRESENCE_CLIENT_BUDDY_LIST_H_
