#include "client/presence_table.h"

#include <algorithm>
#include <boost/json/value.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <set>

namespace presence::client {
namespace {

std::optional<double> Number(const boost::json::value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  if (v->is_double()) return v->as_double();
  return std::nullopt;
}

// A unix-seconds timestamp; fractions are truncated as the server's int()
// does. nullopt when missing, null or not a number.
std::optional<std::int64_t> Timestamp(const boost::json::value* v) {
  auto n = Number(v);
  if (!n || !std::isfinite(*n)) return std::nullopt;
  return static_cast<std::int64_t>(std::trunc(*n));
}

std::optional<UserId> ParseUserId(std::string_view key) {
  UserId id = 0;
  auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
  if (ec != std::errc() || end != key.data() + key.size()) return std::nullopt;
  return id;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Per-client records {"website": {"status": "active", "timestamp": N}, ...}
// of a legacy entry or event. "aggregated" is a summary of the others and is
// skipped. Records that cannot be read are skipped.
std::vector<ClientRecord> ParseClientRecords(const boost::json::object& o) {
  std::vector<ClientRecord> out;
  for (const auto& [client, rec] : o) {
    if (client == "aggregated" || !rec.is_object()) continue;
    const auto& r = rec.as_object();
    const auto* status = r.if_contains("status");
    auto ts = Timestamp(r.if_contains("timestamp"));
    if (status == nullptr || !status->is_string() || !ts) continue;
    if (status->as_string() == "active") {
      out.push_back({PresenceStatus::kActive, *ts});
    } else if (status->as_string() == "idle") {
      out.push_back({PresenceStatus::kIdle, *ts});
    }
  }
  return out;
}

bool IsModernEntry(const boost::json::object& o) {
  return o.empty() || o.contains("active_timestamp") ||
         o.contains("idle_timestamp");
}

PresenceTimes ParseModernTimes(const boost::json::object& o) {
  return {Timestamp(o.if_contains("active_timestamp")),
          Timestamp(o.if_contains("idle_timestamp"))};
}

void MaxMerge(std::optional<std::int64_t>& slot, std::int64_t value) {
  if (!slot || *slot < value) slot = value;
}

PresenceTimes TimesFromRecords(const std::vector<ClientRecord>& records) {
  PresenceTimes t;
  for (const auto& r : records) {
    MaxMerge(r.status == PresenceStatus::kActive ? t.active_timestamp
                                                 : t.idle_timestamp,
             r.timestamp);
  }
  return t;
}

Status Corrupt() { return make_error_code(Errc::kCorrupt); }

// Spelled out: an error_code also converts to bool.
Result<bool> CorruptEvent() {
  return {boost::system::in_place_error, make_error_code(Errc::kCorrupt)};
}

}  // namespace

void PresenceTable::SetUsers(std::vector<UserInfo> users) {
  users_.clear();
  for (auto& u : users) {
    const UserId id = u.user_id;
    users_[id] = std::move(u);
  }
  // date_joined feeds the offline last_active of users with data.
  for (auto& [id, entry] : entries_) Recompute(id, entry);
}

const UserInfo* PresenceTable::FindUser(UserId id) const {
  auto it = users_.find(id);
  return it == users_.end() ? nullptr : &it->second;
}

std::optional<UserId> PresenceTable::FindUserByEmail(
    std::string_view email) const {
  for (const auto& [id, u] : users_) {
    if (EqualsIgnoreCase(u.email, email)) return id;
  }
  return std::nullopt;
}

bool PresenceTable::HasUsersMissingFromDirectory() const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const auto& e) { return !users_.contains(e.first); });
}

void PresenceTable::Recompute(UserId user, Entry& entry) const {
  const UserInfo* info = FindUser(user);
  entry.computed =
      StatusFromRaw(entry.raw, offline_threshold_seconds_,
                    info != nullptr ? info->date_joined : std::nullopt);
}

void PresenceTable::SetInfo(
    const std::vector<std::pair<UserId, PresenceTimes>>& presences,
    double server_timestamp, std::optional<std::int64_t> last_update_id) {
  // 1. The cursor.
  last_update_id_ = last_update_id.value_or(-1);
  // 2. Who is online now, by the data (not the current-user override).
  std::set<UserId> online;
  for (const auto& [id, entry] : entries_) {
    if (entry.computed.status != PresenceStatus::kOffline) online.insert(id);
  }
  // 3. Every entry of the answer replaces what was known.
  for (const auto& [id, times] : presences) {
    Entry& entry = entries_[id];
    entry.raw = RawPresence{times, server_timestamp};
    Recompute(id, entry);
    online.erase(id);
  }
  // 4. Users online before but absent now keep their times and are judged
  //    against the new server time: this is how they age into offline.
  for (UserId id : online) {
    Entry& entry = entries_[id];
    entry.raw.server_timestamp = server_timestamp;
    Recompute(id, entry);
  }
}

Status PresenceTable::SetInfoFromJson(
    const boost::json::value& presences, double server_timestamp,
    std::optional<std::int64_t> last_update_id) {
  if (!presences.is_object()) return Corrupt();
  std::vector<std::pair<UserId, PresenceTimes>> parsed;
  for (const auto& [key, value] : presences.as_object()) {
    if (!value.is_object()) continue;
    std::optional<UserId> id = ParseUserId(key);
    if (!id) id = FindUserByEmail(key);  // legacy, keyed by email
    if (!id) continue;
    const auto& o = value.as_object();
    if (IsModernEntry(o)) {
      parsed.emplace_back(*id, ParseModernTimes(o));
    } else {
      parsed.emplace_back(*id, TimesFromRecords(ParseClientRecords(o)));
    }
  }
  SetInfo(parsed, server_timestamp, last_update_id);
  for (const auto& [key, value] : presences.as_object()) {
    if (!value.is_object()) continue;
    if (auto id = ParseUserId(key)) MergeClients(*id, value.as_object());
  }
  return {};
}

void PresenceTable::MergeClients(UserId user,
                                 const boost::json::object& value) {
  const auto* clients = value.if_contains("clients");
  if (clients == nullptr || !clients->is_object()) return;
  auto it = entries_.find(user);
  if (it == entries_.end()) return;
  it->second.clients.clear();
  for (const auto& [name, times] : clients->as_object()) {
    if (!times.is_object()) continue;
    it->second.clients[std::string(name)] = ParseModernTimes(times.as_object());
  }
}

std::map<std::string, PresenceTimes> PresenceTable::Clients(UserId user) const {
  auto it = entries_.find(user);
  if (it == entries_.end()) return {};
  return it->second.clients;
}

void PresenceTable::ApplyLegacyEvent(UserId user,
                                     const std::vector<ClientRecord>& records,
                                     double server_timestamp) {
  Entry& entry = entries_[user];
  entry.raw.server_timestamp = server_timestamp;
  for (const auto& r : records) {
    MaxMerge(r.status == PresenceStatus::kActive
                 ? entry.raw.times.active_timestamp
                 : entry.raw.times.idle_timestamp,
             r.timestamp);
  }
  Recompute(user, entry);
}

void PresenceTable::ApplyModernEvent(UserId user, const PresenceTimes& times,
                                     double server_timestamp) {
  Entry& entry = entries_[user];
  entry.raw = RawPresence{times, server_timestamp};
  Recompute(user, entry);
}

Result<bool> PresenceTable::ApplyEvent(const boost::json::object& event,
                                       double reference_server_time) {
  const auto* type = event.if_contains("type");
  if (type == nullptr || !type->is_string() || type->as_string() != "presence")
    return false;
  const double server_timestamp = Number(event.if_contains("server_timestamp"))
                                      .value_or(reference_server_time);

  if (const auto* modern = event.if_contains("presences")) {
    if (!modern->is_object()) return CorruptEvent();
    std::vector<std::pair<UserId, PresenceTimes>> parsed;
    for (const auto& [key, value] : modern->as_object()) {
      auto id = ParseUserId(key);
      if (!id || !value.is_object()) return CorruptEvent();
      parsed.emplace_back(*id, ParseModernTimes(value.as_object()));
    }
    for (const auto& [id, times] : parsed) {
      ApplyModernEvent(id, times, server_timestamp);
    }
    for (const auto& [key, value] : modern->as_object()) {
      MergeClients(*ParseUserId(key), value.as_object());
    }
    return true;
  }

  // Legacy (with email) or slim (without).
  std::optional<UserId> user;
  const auto* email = event.if_contains("email");
  if (const auto* uid = event.if_contains("user_id"); uid && uid->is_int64()) {
    user = uid->as_int64();
  } else if (email != nullptr && email->is_string()) {
    user = FindUserByEmail(email->as_string());
    if (!user) return false;  // an email we cannot place; nothing to do
  }
  const auto* presence = event.if_contains("presence");
  if (!user || presence == nullptr || !presence->is_object()) {
    return CorruptEvent();
  }
  if (email != nullptr && email->is_string() && !users_.contains(*user)) {
    UserInfo info;
    info.user_id = *user;
    info.email = std::string(email->as_string());
    users_[*user] = std::move(info);
  }
  ApplyLegacyEvent(*user, ParseClientRecords(presence->as_object()),
                   server_timestamp);
  return true;
}

UserPresence PresenceTable::Row(UserId user, const Entry* entry) const {
  UserPresence row;
  row.user_id = user;
  row.has_data = entry != nullptr;
  if (entry != nullptr) {
    row.status = entry->computed.status;
    row.last_active = entry->computed.last_active;
    // The device: the client with the freshest timestamp of the kind that
    // made the status (active for active users, any report for idle ones).
    std::optional<std::int64_t> best;
    for (const auto& [name, t] : entry->clients) {
      std::optional<std::int64_t> ts = row.status == PresenceStatus::kActive
                                           ? t.active_timestamp
                                           : t.idle_timestamp;
      if (row.status == PresenceStatus::kOffline || !ts) continue;
      if (!best || *ts > *best) {
        best = ts;
        row.device = DeviceOfClient(name);
      }
    }
  }
  if (current_user_ && *current_user_ == user) {
    row.is_current_user = true;
    row.status =
        presence_enabled_ ? PresenceStatus::kActive : PresenceStatus::kOffline;
  }
  return row;
}

PresenceStatus PresenceTable::GetStatus(UserId user) const {
  auto it = entries_.find(user);
  return Row(user, it == entries_.end() ? nullptr : &it->second).status;
}

std::optional<UserPresence> PresenceTable::Get(UserId user) const {
  auto it = entries_.find(user);
  if (it != entries_.end()) return Row(user, &it->second);
  if (current_user_ && *current_user_ == user) return Row(user, nullptr);
  const UserInfo* info = FindUser(user);
  if (info != nullptr && !info->is_bot && info->is_active) {
    return Row(user, nullptr);
  }
  return std::nullopt;
}

std::vector<UserPresence> PresenceTable::Users() const {
  std::map<UserId, UserPresence> rows;
  for (const auto& [id, entry] : entries_) rows[id] = Row(id, &entry);
  if (current_user_ && !rows.contains(*current_user_)) {
    rows[*current_user_] = Row(*current_user_, nullptr);
  }
  std::size_t humans = 0;
  for (const auto& [id, u] : users_) humans += !u.is_bot && u.is_active;
  if (humans > 0 && humans < kBigRealmCount) {
    for (const auto& [id, u] : users_) {
      if (u.is_bot || !u.is_active || rows.contains(id)) continue;
      rows[id] = Row(id, nullptr);
    }
  }
  std::vector<UserPresence> out;
  out.reserve(rows.size());
  for (auto& [id, row] : rows) out.push_back(row);
  return out;
}

const RawPresence* PresenceTable::Raw(UserId user) const {
  auto it = entries_.find(user);
  return it == entries_.end() ? nullptr : &it->second.raw;
}

// --- User status --------------------------------------------------------

Status PresenceTable::SetStatusesFromJson(
    const boost::json::value& user_status) {
  if (!user_status.is_object()) return make_error_code(Errc::kInvalidArgument);
  std::map<UserId, UserStatus> statuses;
  for (const auto& [key, value] : user_status.as_object()) {
    if (!value.is_object()) continue;
    const std::string k(key);
    char* end = nullptr;
    const long long id = std::strtoll(k.c_str(), &end, 10);
    if (k.empty() || end != k.c_str() + k.size() || id <= 0) continue;
    UserStatus st = UserStatus::FromJson(value.as_object());
    if (!st.Empty()) statuses[static_cast<UserId>(id)] = std::move(st);
  }
  statuses_ = std::move(statuses);
  return {};
}

bool PresenceTable::ApplyUserStatusEvent(const boost::json::object& event) {
  const auto* type = event.if_contains("type");
  if (type == nullptr || !type->is_string() ||
      type->as_string() != "user_status") {
    return false;
  }
  const auto* id = event.if_contains("user_id");
  if (id == nullptr || !(id->is_int64() || id->is_uint64())) return false;
  const auto user =
      static_cast<UserId>(id->is_int64() ? id->as_int64() : id->as_uint64());
  UserStatus& st = statuses_[user];
  st.Apply(event);
  if (st.Empty()) statuses_.erase(user);
  return true;
}

const UserStatus* PresenceTable::GetUserStatus(UserId user) const {
  auto it = statuses_.find(user);
  return it == statuses_.end() ? nullptr : &it->second;
}

bool PresenceTable::IsDoNotDisturb(UserId user, double now) const {
  const UserStatus* st = GetUserStatus(user);
  return st != nullptr && st->DoNotDisturbAt(now);
}

}  // namespace presence::client
