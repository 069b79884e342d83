#include "client/buddy_list.h"

#include <algorithm>
#include <cctype>
#include <tuple>

#include "client/status_text.h"

namespace presence::client {
namespace {

int Level(PresenceStatus s) {
  switch (s) {
    case PresenceStatus::kActive:
      return 0;
    case PresenceStatus::kIdle:
      return 1;
    case PresenceStatus::kOffline:
      return 2;
  }
  return 2;
}

std::string Lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::vector<BuddyRow> BuddyList::Build(const PresenceTable& table,
                                       double server_now,
                                       int utc_offset_seconds) {
  std::vector<BuddyRow> rows;
  std::vector<std::string> keys;
  for (const UserPresence& u : table.Users()) {
    BuddyRow row;
    row.user_id = u.user_id;
    row.status = u.status;
    row.is_current_user = u.is_current_user;
    if (const UserInfo* info = table.FindUser(u.user_id)) {
      row.email = info->email;
      row.name = !info->full_name.empty() ? info->full_name : info->email;
    }
    if (row.name.empty()) row.name = "User " + std::to_string(u.user_id);
    row.last_active = StatusText::LastActive(u.status, u.last_active, u.device,
                                             server_now, utc_offset_seconds);
    if (const UserStatus* st = table.GetUserStatus(u.user_id)) {
      if (st->TextShownAt(server_now)) {
        row.status_emoji = StatusText::Emoji(st->emoji_name, st->emoji_code,
                                             st->reaction_type);
        row.status_text = st->status_text;
        if (st->scheduled_end_time &&
            (!row.status_text.empty() || !row.status_emoji.empty())) {
          row.status_until = StatusText::Until(*st->scheduled_end_time,
                                               server_now, utc_offset_seconds);
        }
      }
      row.dnd = st->DoNotDisturbAt(server_now);
      if (row.dnd && st->dnd_end_time) {
        row.dnd_until = StatusText::Until(*st->dnd_end_time, server_now,
                                          utc_offset_seconds);
      }
    }
    rows.push_back(std::move(row));
  }
  std::vector<std::size_t> order(rows.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  keys.reserve(rows.size());
  for (const auto& r : rows) keys.push_back(Lower(r.name));
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return std::forward_as_tuple(Level(rows[a].status), keys[a],
                                 rows[a].user_id) <
           std::forward_as_tuple(Level(rows[b].status), keys[b],
                                 rows[b].user_id);
  });
  std::vector<BuddyRow> out;
  out.reserve(rows.size());
  for (std::size_t i : order) out.push_back(std::move(rows[i]));
  return out;
}

}  // namespace presence::client
