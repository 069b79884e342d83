#include "store/redis_codec.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <tuple>

#include "util/ascii.h"
#include "util/crypto.h"

namespace presence::store::redis_codec {

void PutNs(std::string* out, std::string_view s) {
  out->append(std::to_string(s.size()));
  out->push_back(':');
  out->append(s);
}

std::optional<std::string_view> NsReader::Next() {
  std::size_t colon = rest_.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::size_t n = 0;
  auto [end, ec] = std::from_chars(rest_.data(), rest_.data() + colon, n);
  if (ec != std::errc() || end != rest_.data() + colon ||
      n > rest_.size() - colon - 1) {
    return std::nullopt;
  }
  std::string_view field = rest_.substr(colon + 1, n);
  rest_.remove_prefix(colon + 1 + n);
  return field;
}

std::optional<std::int64_t> ParseInt(std::string_view s) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) {
    return std::nullopt;
  }
  return v;
}

std::string TimeText(Micros t) {
  return t == kNoTime ? std::string() : std::to_string(t);
}

std::optional<Micros> ParseTime(std::string_view s) {
  if (s.empty()) return kNoTime;
  return ParseInt(s);
}

std::optional<bool> ParseFlag(std::string_view s) {
  if (s == "1") return true;
  if (s == "0") return false;
  return std::nullopt;
}

const char* Flag(bool b) { return b ? "1" : "0"; }

std::string EncodeUser(const UserRecord& u) {
  std::string out;
  out += Flag(u.is_bot);
  out += Flag(u.is_active);
  out += Flag(u.presence_enabled);
  out += Flag(u.can_access_all_users);
  PutNs(&out, AsciiLower(u.email));
  PutNs(&out, std::to_string(u.id));
  PutNs(&out, std::to_string(u.realm_id));
  PutNs(&out, RoleName(u.role));
  PutNs(&out, std::to_string(u.date_joined));
  PutNs(&out, HexEncode(u.api_key_hash));
  PutNs(&out, u.email);
  PutNs(&out, u.full_name);
  if (u.status) {
    // The user status, after the fields every script reads (only
    // user_lower and the flag bytes): six fields, and nothing for a user
    // who never set one.
    PutNs(&out, u.status->status_text);
    PutNs(&out, u.status->emoji_name);
    PutNs(&out, u.status->emoji_code);
    PutNs(&out, u.status->reaction_type);
    PutNs(&out, std::to_string(u.status->timestamp));
    PutNs(&out, std::to_string(u.status->passed));
    const UserStatus& st = *u.status;
    if (st.scheduled_end_time != 0 || st.dnd || st.dnd_end_time != 0) {
      // Issue #18's extensions: three more, only when one is set, so a
      // status without them is stored as before (and compares equal to
      // it, UpdateUserIf).
      PutNs(&out, std::to_string(st.scheduled_end_time));
      PutNs(&out, Flag(st.dnd));
      PutNs(&out, std::to_string(st.dnd_end_time));
    }
  }
  return out;
}

std::optional<UserRecord> DecodeUser(std::string_view s) {
  if (s.size() < 4) return std::nullopt;
  UserRecord u;
  auto f0 = ParseFlag(s.substr(0, 1));
  auto f1 = ParseFlag(s.substr(1, 1));
  auto f2 = ParseFlag(s.substr(2, 1));
  auto f3 = ParseFlag(s.substr(3, 1));
  if (!f0 || !f1 || !f2 || !f3) return std::nullopt;
  u.is_bot = *f0;
  u.is_active = *f1;
  u.presence_enabled = *f2;
  u.can_access_all_users = *f3;
  NsReader r(s.substr(4));
  auto lower = r.Next();
  auto id = r.Next();
  auto realm = r.Next();
  auto role = r.Next();
  auto joined = r.Next();
  auto hash = r.Next();
  auto email = r.Next();
  auto name = r.Next();
  if (!lower || !name) return std::nullopt;
  if (!r.done()) {
    auto text = r.Next();
    auto emoji_name = r.Next();
    auto emoji_code = r.Next();
    auto type = r.Next();
    auto stamp = r.Next();
    auto passed = r.Next();
    if (!passed) return std::nullopt;
    auto stamp_v = ParseInt(*stamp);
    auto passed_v = ParseInt(*passed);
    if (!stamp_v || !passed_v || *passed_v < 0 || *passed_v > 255) {
      return std::nullopt;
    }
    u.status = UserStatus{.status_text = std::string(*text),
                          .emoji_name = std::string(*emoji_name),
                          .emoji_code = std::string(*emoji_code),
                          .reaction_type = std::string(*type),
                          .timestamp = *stamp_v,
                          .passed = static_cast<std::uint8_t>(*passed_v)};
    if (!r.done()) {
      // Issue #18's extensions: the scheduled end, dnd, dnd's end.
      auto end = r.Next();
      auto dnd = r.Next();
      auto dnd_end = r.Next();
      if (!dnd_end) return std::nullopt;
      auto end_v = ParseInt(*end);
      auto dnd_v = ParseFlag(*dnd);
      auto dnd_end_v = ParseInt(*dnd_end);
      if (!end_v || !dnd_v || !dnd_end_v) return std::nullopt;
      u.status->scheduled_end_time = *end_v;
      u.status->dnd = *dnd_v;
      u.status->dnd_end_time = *dnd_end_v;
    }
    // Netstrings after these are for later versions: skipped.
    while (!r.done()) {
      if (!r.Next()) return std::nullopt;
    }
  }
  auto id_v = ParseInt(*id);
  auto realm_v = ParseInt(*realm);
  auto role_v = ParseRole(*role);
  auto joined_v = ParseInt(*joined);
  auto hash_v = HexDecodeDigest(*hash);
  if (!id_v || !realm_v || !role_v || !joined_v || !hash_v) {
    return std::nullopt;
  }
  u.id = *id_v;
  u.realm_id = *realm_v;
  u.role = *role_v;
  u.date_joined = *joined_v;
  u.api_key_hash = *hash_v;
  u.email = std::string(*email);
  u.full_name = std::string(*name);
  return u;
}

// A stored row: "connected,active,update_id".
std::string EncodeRowValue(const PresenceRecord& row) {
  return TimeText(row.last_connected) + "," + TimeText(row.last_active) + "," +
         std::to_string(row.last_update_id);
}

std::optional<PresenceRecord> DecodeRowValue(UserId user, RealmId realm,
                                             std::string_view s) {
  std::size_t c1 = s.find(',');
  if (c1 == std::string_view::npos) return std::nullopt;
  std::size_t c2 = s.find(',', c1 + 1);
  if (c2 == std::string_view::npos) return std::nullopt;
  auto lc = ParseTime(s.substr(0, c1));
  auto la = ParseTime(s.substr(c1 + 1, c2 - c1 - 1));
  auto seq = ParseInt(s.substr(c2 + 1));
  if (!lc || !la || !seq) return std::nullopt;
  return PresenceRecord{.user_id = user,
                        .realm_id = realm,
                        .last_connected = *lc,
                        .last_active = *la,
                        .last_update_id = *seq};
}

// One user's client rows: per client, netstrings of its name, connected and
// active times ("" for none) and update id.
std::string EncodeClientRows(
    std::span<const ClientPresenceRecord* const> rows) {
  std::string out;
  for (const ClientPresenceRecord* c : rows) {
    PutNs(&out, c->client);
    PutNs(&out, TimeText(c->last_connected));
    PutNs(&out, TimeText(c->last_active));
    PutNs(&out, std::to_string(c->last_update_id));
  }
  return out;
}

std::optional<std::vector<ClientPresenceRecord>> DecodeClientRows(
    RealmId realm, UserId user, std::string_view s) {
  std::vector<ClientPresenceRecord> out;
  NsReader r(s);
  while (!r.done()) {
    auto name = r.Next();
    auto lc = r.Next();
    auto la = r.Next();
    auto id = r.Next();
    if (!name || !lc || !la || !id) return std::nullopt;
    auto lc_v = ParseTime(*lc);
    auto la_v = ParseTime(*la);
    auto id_v = ParseInt(*id);
    if (!lc_v || !la_v || !id_v) return std::nullopt;
    out.push_back({.realm_id = realm,
                   .user_id = user,
                   .client = std::string(*name),
                   .last_connected = *lc_v,
                   .last_active = *la_v,
                   .last_update_id = *id_v});
  }
  return out;
}

std::optional<std::vector<UserId>> DecodeIdList(std::string_view s) {
  std::vector<UserId> out;
  while (!s.empty()) {
    std::size_t comma = s.find(',');
    auto id = ParseInt(s.substr(0, comma));
    if (!id) return std::nullopt;
    out.push_back(*id);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
    if (s.empty()) return std::nullopt;
  }
  return out;
}

std::string EncodeIdList(const std::set<UserId>& ids) {
  std::string out;
  for (UserId id : ids) {
    if (!out.empty()) out.push_back(',');
    out += std::to_string(id);
  }
  return out;
}

std::optional<RealmRecord> DecodeRealmField(std::string_view s) {
  NsReader r(s);
  std::string_view f[8];
  for (auto& field : f) {
    auto v = r.Next();
    if (!v) return std::nullopt;
    field = *v;
  }
  if (!r.done()) return std::nullopt;
  auto id = ParseInt(f[0]);
  auto pd = ParseFlag(f[3]);
  auto deact = ParseFlag(f[4]);
  auto created = ParseInt(f[5]);
  auto last = ParseInt(f[6]);
  auto reserved = ParseInt(f[7]);
  if (!id || !pd || !deact || !created || !last || !reserved) {
    return std::nullopt;
  }
  return RealmRecord{.id = *id,
                     .subdomain = std::string(f[1]),
                     .name = std::string(f[2]),
                     .presence_disabled = *pd,
                     .deactivated = *deact,
                     .date_created = *created,
                     .last_update_id = *last,
                     .reserved_update_id = *reserved};
}

std::optional<RealmRecord> DecodeMeta(RealmId id, const RedisReply& flat) {
  if (flat.type != RedisReply::Type::kArray || flat.elements.size() % 2 != 0) {
    return std::nullopt;
  }
  std::map<std::string_view, std::string_view> m;
  for (std::size_t i = 0; i + 1 < flat.elements.size(); i += 2) {
    m[flat.elements[i].str] = flat.elements[i + 1].str;
  }
  auto get = [&](std::string_view k) -> std::optional<std::string_view> {
    auto it = m.find(k);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
  auto subdomain = get("subdomain");
  auto name = get("name");
  auto pd = get("presence_disabled");
  auto deact = get("deactivated");
  auto created = get("date_created");
  auto seq = get("seq");
  auto reserved = get("reserved");
  if (!subdomain || !name || !pd || !deact || !created || !seq || !reserved) {
    return std::nullopt;
  }
  auto pd_v = ParseFlag(*pd);
  auto deact_v = ParseFlag(*deact);
  auto created_v = ParseInt(*created);
  auto seq_v = ParseInt(*seq);
  auto reserved_v = ParseInt(*reserved);
  if (!pd_v || !deact_v || !created_v || !seq_v || !reserved_v) {
    return std::nullopt;
  }
  return RealmRecord{.id = id,
                     .subdomain = std::string(*subdomain),
                     .name = std::string(*name),
                     .presence_disabled = *pd_v,
                     .deactivated = *deact_v,
                     .date_created = *created_v,
                     .last_update_id = *seq_v,
                     .reserved_update_id = *reserved_v};
}

StoreResult<RealmState> DecodeRealmState(RealmId realm,
                                         const RedisReply& reply) {
  auto corrupt = [&](std::string_view what) {
    return Error(Errc::kCorrupt,
                 "realm " + std::to_string(realm) + ": " + std::string(what));
  };
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 5) {
    return corrupt("bad read_realm reply");
  }
  RealmState state;
  auto meta = DecodeMeta(realm, reply.elements[0]);
  if (!meta) return corrupt("malformed meta");
  state.realm = std::move(*meta);
  {
    const auto& flat = reply.elements[0].elements;
    for (std::size_t i = 0; i + 1 < flat.size(); i += 2) {
      if (flat[i].str != "log" && flat[i].str != "fences") continue;
      auto n = ParseInt(flat[i + 1].str);
      if (!n) return corrupt("malformed " + flat[i].str);
      (flat[i].str == "log" ? state.seq : state.fences) = *n;
    }
  }
  for (const RedisReply& u : reply.elements[1].elements) {
    auto user = DecodeUser(u.str);
    if (!user) return corrupt("malformed user");
    state.users.push_back(std::move(*user));
  }
  std::sort(
      state.users.begin(), state.users.end(),
      [](const UserRecord& a, const UserRecord& b) { return a.id < b.id; });
  const auto& rows = reply.elements[2].elements;
  for (std::size_t i = 0; i + 1 < rows.size(); i += 2) {
    auto uid = ParseInt(rows[i].str);
    if (!uid) return corrupt("malformed row key");
    auto row = DecodeRowValue(*uid, realm, rows[i + 1].str);
    if (!row) return corrupt("malformed row");
    state.rows.push_back(*row);
  }
  std::sort(state.rows.begin(), state.rows.end(),
            [](const PresenceRecord& a, const PresenceRecord& b) {
              return a.user_id < b.user_id;
            });
  const auto& access = reply.elements[3].elements;
  for (std::size_t i = 0; i + 1 < access.size(); i += 2) {
    auto viewer = ParseInt(access[i].str);
    auto ids = DecodeIdList(access[i + 1].str);
    if (!viewer || !ids) return corrupt("malformed access list");
    state.access.push_back(AccessRecord{
        .realm_id = realm, .viewer = *viewer, .visible = std::move(*ids)});
  }
  std::sort(state.access.begin(), state.access.end(),
            [](const AccessRecord& a, const AccessRecord& b) {
              return a.viewer < b.viewer;
            });
  const auto& clients = reply.elements[4].elements;
  for (std::size_t i = 0; i + 1 < clients.size(); i += 2) {
    auto user = ParseInt(clients[i].str);
    auto rows = user ? DecodeClientRows(realm, *user, clients[i + 1].str)
                     : std::nullopt;
    if (!rows) return corrupt("malformed client rows");
    for (auto& c : *rows) state.clients.push_back(std::move(c));
  }
  std::sort(state.clients.begin(), state.clients.end(),
            [](const ClientPresenceRecord& a, const ClientPresenceRecord& b) {
              return std::tie(a.user_id, a.client) <
                     std::tie(b.user_id, b.client);
            });
  return state;
}

std::optional<long long> IntOf(const RedisReply& r) {
  if (r.type != RedisReply::Type::kInteger) return std::nullopt;
  return r.integer;
}

}  // namespace presence::store::redis_codec
