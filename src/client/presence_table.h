// PresenceTable: a client's picture of everyone's presence, merged from
// register snapshots, POST /users/me/presence answers and presence events
// the way Zulip's web client merges them (spec 6.4).
//
// * SetInfo (a snapshot or a ping answer): the cursor becomes the answer's
//   presence_last_update_id; every user in the answer gets the answer's
//   timestamps, replacing what was known; every user who was active or idle
//   but is missing from an incremental answer keeps their timestamps and is
//   re-judged against the new server_timestamp. That is how users age into
//   offline while the client polls with a cursor.
// * Legacy and slim events (`presence` with per-client records) max-merge:
//   an "active" record raises active_timestamp, an "idle" record raises
//   idle_timestamp, nothing is ever lowered.
// * Modern events (FL 419, `presences: {id: {active_timestamp,
//   idle_timestamp}}`) replace the user's pair. They carry no server clock,
//   so the caller passes its estimate of the server's time (ServerClock); an
//   event that does carry `server_timestamp` (presenced's transition events)
//   is judged against that.
// * Status per spec 6.3 (StatusFromRaw), with the server's offline threshold
//   (140 s when an old server does not say). The current user is "active"
//   when their presence_enabled setting is on and "offline" when it is off,
//   whatever the data says. Unknown users are offline.
// * Per-client data (presenced's extension, when the client opted in): a
//   modern entry's "clients" map, a legacy entry's per-client keys and the
//   same in events replace the user's known clients; each row then says on
//   which device the user is active or idle (UserPresence::device).
// * User status (Zulip's user_status, with presenced's extensions): a
//   register snapshot replaces every user's status, a user_status event
//   changes the fields it carries (UserStatus::Apply). Kept apart from
//   presence: a user may have a status and no presence data.
// * An optional people directory (GET /users) gives names and emails, and
//   enables Zulip's small-realm fill-in: in a realm with fewer than 250
//   active humans, every human without presence data is listed as offline.
//
// Thread safety: none; one thread (the client's executor) owns a table.
#ifndef PRESENCE_CLIENT_PRESENCE_TABLE_H_
#define PRESENCE_CLIENT_PRESENCE_TABLE_H_

#include <boost/json/object.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/presence_status.h"
#include "client/user_status.h"
#include "util/result.h"

namespace presence::client {

// One person of the organisation, from GET /users.
struct UserInfo {
  UserId user_id = 0;
  std::string email;
  std::string full_name;
  bool is_bot = false;
  bool is_active = true;
  std::optional<std::int64_t> date_joined;  // unix seconds
};

// One row of the table as a user interface shows it.
struct UserPresence {
  UserId user_id = 0;
  PresenceStatus status = PresenceStatus::kOffline;
  std::optional<std::int64_t> last_active;  // unix seconds
  bool is_current_user = false;
  bool has_data = false;  // false for small-realm fill-in rows
  // Per-client extension: the device of the client that made the status
  // (the freshest active client of an active user, the freshest client of
  // an idle one); kUnknown when the server sent no per-client data or the
  // user is offline.
  Device device = Device::kUnknown;
};

// One per-client record of a legacy or slim event: {"status", "timestamp"}.
struct ClientRecord {
  PresenceStatus status = PresenceStatus::kActive;  // kActive or kIdle
  std::int64_t timestamp = 0;
};

class PresenceTable {
 public:
  // Zulip's web client: below this many active humans, users without data
  // are listed as offline.
  static constexpr std::size_t kBigRealmCount = 250;

  PresenceTable() = default;

  // --- Settings from /register and user_settings events ------------------
  void set_offline_threshold_seconds(int seconds) {
    offline_threshold_seconds_ = seconds;
  }
  int offline_threshold_seconds() const { return offline_threshold_seconds_; }
  void set_current_user(std::optional<UserId> id) { current_user_ = id; }
  std::optional<UserId> current_user() const { return current_user_; }
  void set_presence_enabled(bool enabled) { presence_enabled_ = enabled; }
  bool presence_enabled() const { return presence_enabled_; }
  void set_realm_presence_disabled(bool disabled) {
    realm_presence_disabled_ = disabled;
  }
  bool realm_presence_disabled() const { return realm_presence_disabled_; }

  // --- People directory ---------------------------------------------------
  // Replaces the directory. Recomputes nothing else.
  void SetUsers(std::vector<UserInfo> users);
  const UserInfo* FindUser(UserId id) const;
  // Case-insensitive match on the email.
  std::optional<UserId> FindUserByEmail(std::string_view email) const;
  bool has_directory() const { return !users_.empty(); }
  // True when some user with presence data is missing from the directory
  // (a new user: the directory should be fetched again).
  bool HasUsersMissingFromDirectory() const;

  // --- Merging (spec 6.4) -------------------------------------------------
  // set_info with parsed entries. `last_update_id` nullopt stores -1.
  void SetInfo(const std::vector<std::pair<UserId, PresenceTimes>>& presences,
               double server_timestamp,
               std::optional<std::int64_t> last_update_id);

  // set_info from the JSON `presences` object of a register snapshot or a
  // POST answer. Keys are user ids (modern/slim) or emails (legacy; looked
  // up in the directory, skipped when unknown); values are modern
  // {active_timestamp, idle_timestamp} or legacy per-client records. Entries
  // of a shape it cannot read are skipped; the call fails (and changes
  // nothing) only when `presences` is not an object.
  Status SetInfoFromJson(const boost::json::value& presences,
                         double server_timestamp,
                         std::optional<std::int64_t> last_update_id);

  // A legacy or slim presence event for one user (update_info_from_event).
  void ApplyLegacyEvent(UserId user, const std::vector<ClientRecord>& records,
                        double server_timestamp);

  // A modern presence event: replaces the user's times.
  void ApplyModernEvent(UserId user, const PresenceTimes& times,
                        double server_timestamp);

  // Any `"type":"presence"` event in one of the three shapes. Events of
  // other types are left alone and answer false. `reference_server_time` is
  // used when the event has no server_timestamp of its own (modern shape).
  // Fails when a presence event cannot be read.
  Result<bool> ApplyEvent(const boost::json::object& event,
                          double reference_server_time);

  // --- User status ---------------------------------------------------------
  // The `user_status` object of a register snapshot ({"<id>": {...}}):
  // replaces every status. Fails (changing nothing) when it is not an
  // object; entries with a key that is not a user id are skipped.
  Status SetStatusesFromJson(const boost::json::value& user_status);
  // A `"type":"user_status"` event: changes the fields it carries. Answers
  // false (changing nothing) for another type or without a user_id.
  bool ApplyUserStatusEvent(const boost::json::object& event);
  // The user's status; nullptr when they have none.
  const UserStatus* GetUserStatus(UserId user) const;
  // Whether `user` asked not to be disturbed, at `now` (unix seconds, the
  // server's clock): do-not-disturb on and its end, if any, not reached.
  // A chat client holds notifications from (or to) this user meanwhile.
  bool IsDoNotDisturb(UserId user, double now) const;

  // --- Reading ------------------------------------------------------------
  // The cursor for the next POST /users/me/presence; -1 before any data.
  std::int64_t last_update_id() const { return last_update_id_; }
  PresenceStatus GetStatus(UserId user) const;
  // The row for `user`: nullopt for a user with neither data nor a place in
  // the directory (the current user always has a row).
  std::optional<UserPresence> Get(UserId user) const;
  // Every row: users with data, the current user, and (small realms with a
  // directory) every other active human, as offline. Ordered by user id.
  std::vector<UserPresence> Users() const;
  // The raw data last merged for `user`, for inspection and tests.
  const RawPresence* Raw(UserId user) const;
  // The per-client times last merged for `user` (empty without them).
  std::map<std::string, PresenceTimes> Clients(UserId user) const;

 private:
  struct Entry {
    RawPresence raw;
    ComputedPresence computed;
    std::map<std::string, PresenceTimes> clients;  // per-client extension
  };
  // Replaces the user's clients when `value` carries per-client data.
  void MergeClients(UserId user, const boost::json::object& value);

  void Recompute(UserId user, Entry& entry) const;
  UserPresence Row(UserId user, const Entry* entry) const;

  int offline_threshold_seconds_ = kFallbackOfflineThresholdSeconds;
  std::optional<UserId> current_user_;
  bool presence_enabled_ = true;
  bool realm_presence_disabled_ = false;
  std::int64_t last_update_id_ = -1;
  std::map<UserId, Entry> entries_;
  std::map<UserId, UserInfo> users_;
  std::map<UserId, UserStatus> statuses_;  // only non-empty statuses
};

}  // namespace presence::client

#endif  // PRESENCE_CLIENT_PRESENCE_TABLE_H_
