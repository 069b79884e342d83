// UserStatus: what a person says about their availability (Zulip's user
// status: text and emoji, plus presenced's opt-in extensions: a scheduled
// end and do-not-disturb), as a client keeps it.
//
// Merging follows Zulip's web client: a /register snapshot gives each
// user's whole status (absent fields at their defaults); a `user_status`
// event changes only the fields it carries (the three emoji fields travel
// together; an empty emoji_name clears the emoji). The extension fields
// (`scheduled_end_time`, `dnd`, `dnd_end_time`; only sent to a queue
// registered with the `user_status_extensions` capability) follow the same
// rule, 0 meaning "no end".
//
// Times are judged against the caller's "now" (the server's clock as the
// client estimates it), so a client honours an end the server has not yet
// announced: a do-not-disturb past its dnd_end_time is off, a status past
// its scheduled_end_time is shown as empty.
//
// Thread safety: plain values and pure functions.
#ifndef PRESENCE_CLIENT_USER_STATUS_H_
#define PRESENCE_CLIENT_USER_STATUS_H_

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>

namespace presence::client {

struct UserStatus {
  std::string status_text;
  std::string emoji_name;     // "" when no emoji
  std::string emoji_code;     // "1f600", "1f1fa-1f1f8", "zulip", a number
  std::string reaction_type;  // unicode_emoji, realm_emoji, zulip_extra_emoji
  bool away = false;          // deprecated: presence_enabled false
  // Extensions (user_status_extensions).
  std::optional<std::int64_t> scheduled_end_time;  // unix seconds
  bool dnd = false;
  std::optional<std::int64_t> dnd_end_time;  // unix seconds; only with dnd

  bool HasEmoji() const { return !emoji_name.empty(); }
  // Nothing to show and nothing to honour.
  bool Empty() const {
    return status_text.empty() && emoji_name.empty() && !away && !dnd &&
           !scheduled_end_time;
  }

  // Whether the text and emoji still hold at `now` (no end, or before it).
  bool TextShownAt(double now) const {
    return !scheduled_end_time ||
           now < static_cast<double>(*scheduled_end_time);
  }
  // Whether do-not-disturb holds at `now`: on, and before its end if any.
  bool DoNotDisturbAt(double now) const {
    return dnd && (!dnd_end_time || now < static_cast<double>(*dnd_end_time));
  }

  // Applies the fields present in `o` (a snapshot entry or an event; other
  // keys such as "type" and "user_id" are ignored). Values of the wrong
  // JSON type are ignored.
  void Apply(const boost::json::object& o);

  // A snapshot entry: the whole status.
  static UserStatus FromJson(const boost::json::object& o);

  friend bool operator==(const UserStatus&, const UserStatus&) = default;
};

}  // namespace presence::client

#endif  // PRESENCE_CLIENT_USER_STATUS_H_
