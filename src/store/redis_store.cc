#include "store/redis_store.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <span>
#include <tuple>
#include <utility>

#include "core/constants.h"
#include "util/ascii.h"

namespace presence::store {
namespace {

// --- Keys -------------------------------------------------------------------

const std::string kGlobal = "presenced:{presenced}:";
const std::string kNextRealmKey = kGlobal + "next_realm_id";
const std::string kNextUserKey = kGlobal + "next_user_id";
const std::string kNextNodeKey = kGlobal + "next_node_id";
const std::string kSubdomainsKey = kGlobal + "subdomains";
const std::string kRealmsKey = kGlobal + "realms";
const std::string kUserRealmKey = kGlobal + "user_realm";
const std::string kNodesKey = kGlobal + "nodes";

// The keys of one realm, in the order every realm script expects them.
std::vector<std::string> RealmKeys(RealmId realm) {
  const std::string p = "presenced:{r" + std::to_string(realm) + "}:";
  return {p + "meta",   p + "users",  p + "emails", p + "rows",
          p + "rowseq", p + "access", p + "clients"};
}

// --- Encoding ---------------------------------------------------------------

void PutNs(std::string* out, std::string_view s) {
  out->append(std::to_string(s.size()));
  out->push_back(':');
  out->append(s);
}

// Reads netstrings one after the other.
class NsReader {
 public:
  explicit NsReader(std::string_view s) : rest_(s) {}
  std::optional<std::string_view> Next() {
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
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

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
  if (!lower || !name || !r.done()) return std::nullopt;
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

// "id,id,..." -> ids; "" -> empty.
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

// The realm record of a feed 'R' field.
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

// The realm record of a meta hash as HGETALL returns it.
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

// --- Scripts ----------------------------------------------------------------
//
// Lua 5.1 numbers are doubles: microsecond times (~1.7e15) and sequence
// numbers are exact below 2^53, but tostring() would print "1.7e+15", so
// every number written back goes through fmt() ('%.0f'). kNoTime is never a
// Lua number: it is an empty field in storage and nil in the rules.
std::string Prelude() {
  std::string p;
  p += "local FEED = '" + std::string(RedisStore::kFeedChannel) + "'\n";
  p += "local ONE_DAY = " + std::to_string(SecondsToMicros(kSecondsPerDay)) +
       "\n";
  p += "local MIN_FREQ = " +
       std::to_string(SecondsToMicros(kUpdateMinFreqSeconds)) + "\n";
  p += "local ONLINE_GAP = " +
       std::to_string(SecondsToMicros(kBecameOnlineGapSeconds)) + "\n";
  p += "local BACKDATE = " +
       std::to_string(SecondsToMicros(kInvisibleBackdateSeconds)) + "\n";
  p += "local PREWRITE = " +
       std::to_string(SecondsToMicros(kInvisiblePrewriteSeconds)) + "\n";
  p += R"lua(
local function fmt(x) return string.format('%.0f', x) end
local function ns(s) return string.format('%d', #s) .. ':' .. s end
local function field(tag, v) return tag .. ns(v) end
local function tnum(s)
  if s == nil or s == '' then return nil end
  return tonumber(s)
end
local function tstr(x)
  if x == nil then return '' end
  return fmt(x)
end
local function parse_row(v)
  local lc, la = string.match(v, '^([^,]*),([^,]*),')
  return tnum(lc), tnum(la)
end
local function row_text(uid, lc, la, seq)
  return uid .. ',' .. tstr(lc) .. ',' .. tstr(la) .. ',' .. seq
end
local function put_row(K, uid, lc, la, seq)
  redis.call('HSET', K[4], uid, tstr(lc) .. ',' .. tstr(la) .. ',' .. seq)
  redis.call('ZADD', K[5], seq, uid)
end
-- 'seq' is the realm's presence update id (Zulip's ids, presence writes
-- only); 'log' numbers every change of the realm, in feed order.
local function next_seq(K)
  return fmt(redis.call('HINCRBY', K[1], 'seq', 1))
end
local function next_log(K)
  return fmt(redis.call('HINCRBY', K[1], 'log', 1))
end
local function meta_table(key)
  local flat = redis.call('HGETALL', key)
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end
local function realm_field(id, m)
  return field('R', ns(id) .. ns(m.subdomain) .. ns(m.name) ..
      ns(m.presence_disabled) .. ns(m.deactivated) .. ns(m.date_created) ..
      ns(m.seq) .. ns(m.reserved))
end
-- The folded email: the first netstring after the 4 flag bytes.
local function user_lower(uv)
  local colon = string.find(uv, ':', 5, true)
  local n = tonumber(string.sub(uv, 5, colon - 1))
  return string.sub(uv, colon + 1, colon + n)
end
-- core/presence_rules.cc ApplyReport: returns connected, active, created,
-- wrote, became_online.
local function apply_report(has_row, lc, la, now, active)
  local created = false
  if not has_row then
    created = true
    lc = now
    if active then la = now else la = nil end
  end
  local since_active = ONE_DAY
  if la ~= nil then since_active = now - la end
  local since_connected = ONE_DAY
  if lc ~= nil then since_connected = now - lc end
  local became_online = active and since_active > ONLINE_GAP
  local changed = false
  if not created and since_connected > MIN_FREQ then
    lc = now
    changed = true
  end
  if not created and active and since_active > MIN_FREQ then
    la = now
    changed = true
    if lc == nil or now > lc then lc = now end
  end
  return lc, la, created, created or changed, became_online
end
-- ApplyGoInvisible: returns written, connected, active.
local function go_invisible(has_row, lc, la, now)
  if not has_row then return false end
  local b = now - BACKDATE
  local m = now - PREWRITE
  if lc ~= nil and lc <= b then return false end
  if lc == nil then lc = m else lc = math.min(m, lc) end
  local active
  if la == nil or la < b then
    active = false
  else
    la = math.min(m, la)
    active = true
  end
  local nlc, nla = apply_report(true, lc, la, b, active)
  return true, nlc, nla
end
)lua";
  return p;
}

enum ScriptId {
  kIndexInsertRealm,
  kIndexDropRealm,
  kIndexRenameRealm,
  kAllocUser,
  kRegisterNode,
  kCreateRealm,
  kUpdateRealm,
  kCheckUser,
  kPutUser,
  kDropUser,
  kSetAccess,
  kReserve,
  kWritePresence,
  kReport,
  kSetPresenceEnabled,
  kReadRealm,
  kCountRequest,
  kScriptCount,
};

struct ScriptSource {
  const char* name;
  const char* body;  // after the prelude
};

// Global scripts: KEYS on the {presenced} slot as listed.
// Realm scripts: KEYS = RealmKeys(realm) (meta users emails rows rowseq
// access).
const ScriptSource kScriptSources[kScriptCount] = {
    {"index_insert_realm",  // KEYS subdomains realms next_realm; ARGV lower
     R"lua(
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return -1 end
local id = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], ARGV[1], id)
redis.call('HSET', KEYS[2], id, ARGV[1])
return id
)lua"},
    {"index_drop_realm",  // KEYS subdomains realms; ARGV id lower
     R"lua(
if redis.call('HGET', KEYS[1], ARGV[2]) == ARGV[1] then
  redis.call('HDEL', KEYS[1], ARGV[2])
end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
)lua"},
    {"index_rename_realm",  // KEYS subdomains realms; ARGV id lower
     R"lua(
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur then return -1 end
local owner = redis.call('HGET', KEYS[1], ARGV[2])
if owner and owner ~= ARGV[1] then return -2 end
if cur ~= ARGV[2] then
  redis.call('HDEL', KEYS[1], cur)
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return 1
)lua"},
    {"alloc_user",  // KEYS next_user user_realm; ARGV realm
     R"lua(
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], id, ARGV[1])
return id
)lua"},
    {"register_node",  // KEYS next_node nodes; ARGV address
     R"lua(
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], id, ARGV[1])
return id
)lua"},
    {"create_realm",  // ARGV id subdomain name pd deact created last reserved
     R"lua(
redis.call('HSET', KEYS[1], 'subdomain', ARGV[2], 'name', ARGV[3],
    'presence_disabled', ARGV[4], 'deactivated', ARGV[5],
    'date_created', ARGV[6], 'seq', ARGV[7], 'reserved', ARGV[8])
redis.call('PUBLISH', FEED, field('r', ARGV[1]) .. field('s', '0') ..
    realm_field(ARGV[1], meta_table(KEYS[1])))
return 1
)lua"},
    {"update_realm",  // ARGV id subdomain name pd deact
     R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'subdomain', ARGV[2], 'name', ARGV[3],
    'presence_disabled', ARGV[4], 'deactivated', ARGV[5])
local seq = next_log(KEYS)
redis.call('PUBLISH', FEED, field('r', ARGV[1]) .. field('s', seq) ..
    realm_field(ARGV[1], meta_table(KEYS[1])))
return 1
)lua"},
    {"check_user",  // ARGV lower
     R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return -2 end
return 1
)lua"},
    {"put_user",  // ARGV realm uid lower encoded must_exist
     R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local old = redis.call('HGET', KEYS[2], ARGV[2])
if ARGV[5] == '1' and not old then return -1 end
local owner = redis.call('HGET', KEYS[3], ARGV[3])
if owner and owner ~= ARGV[2] then return -2 end
if old then
  local ol = user_lower(old)
  if ol ~= ARGV[3] and redis.call('HGET', KEYS[3], ol) == ARGV[2] then
    redis.call('HDEL', KEYS[3], ol)
  end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[2])
local seq = next_log(KEYS)
redis.call('PUBLISH', FEED, field('r', ARGV[1]) .. field('s', seq) ..
    field('U', ARGV[4]))
return 1
)lua"},
    {"drop_user",  // ARGV realm uid encoded(the user as it is now)
     R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local old = redis.call('HGET', KEYS[2], ARGV[2])
if not old then return 0 end
local ol = user_lower(old)
if redis.call('HGET', KEYS[3], ol) == ARGV[2] then
  redis.call('HDEL', KEYS[3], ol)
end
redis.call('HDEL', KEYS[2], ARGV[2])
local seq = next_log(KEYS)
redis.call('PUBLISH', FEED, field('r', ARGV[1]) .. field('s', seq) ..
    field('U', ARGV[3]))
return 1
)lua"},
    {"set_access",  // ARGV realm viewer list
     R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[6], ARGV[2])
else
  redis.call('HSET', KEYS[6], ARGV[2], ARGV[3])
end
local seq = next_log(KEYS)
redis.call('PUBLISH', FEED, field('r', ARGV[1]) .. field('s', seq) ..
    field('A', ARGV[2] .. '|' .. ARGV[3]))
return 1
)lua"},
    {"reserve",  // ARGV reserved
     R"lua(
local cur = redis.call('HGET', KEYS[1], 'reserved')
if not cur then return -1 end
if tonumber(ARGV[1]) > tonumber(cur) then
  redis.call('HSET', KEYS[1], 'reserved', ARGV[1])
end
return 1
)lua"},
    {"write_presence",  // ARGV has_seq last reserved nrows
                        // {uid value seq}*nrows {uid clients}...
     R"lua(
local cur = redis.call('HGET', KEYS[1], 'reserved')
if not cur then return -1 end
local last_row = 4 + 3 * tonumber(ARGV[4])
for i = 5, last_row, 3 do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[5], ARGV[i + 2], ARGV[i])
end
for i = last_row + 1, #ARGV, 2 do
  redis.call('HSET', KEYS[7], ARGV[i], ARGV[i + 1])
end
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'seq', ARGV[2])
  if tonumber(ARGV[3]) > tonumber(cur) then
    redis.call('HSET', KEYS[1], 'reserved', ARGV[3])
  end
end
return 1
)lua"},
    {"report",  // ARGV realm uid now active -> {status, seq, due}
     R"lua(
local meta = redis.call('HMGET', KEYS[1], 'seq', 'presence_disabled')
if not meta[1] then return {-1, 0, 0} end
local uv = redis.call('HGET', KEYS[2], ARGV[2])
if not uv then return {0, 0, 0} end
if string.sub(uv, 1, 1) ~= '0' or string.sub(uv, 2, 2) ~= '1' or
    string.sub(uv, 3, 3) ~= '1' then
  return {0, 0, 0}
end
local now = tonumber(ARGV[3])
local rv = redis.call('HGET', KEYS[4], ARGV[2])
local has_row = rv ~= false
local lc, la = nil, nil
if has_row then lc, la = parse_row(rv) end
local nlc, nla, created, wrote, online =
    apply_report(has_row, lc, la, now, ARGV[4] == '1')
if not wrote then return {0, 0, 0} end
local log = next_log(KEYS)
local seq = next_seq(KEYS)
put_row(KEYS, ARGV[2], nlc, nla, seq)
local due = '0'
if (created or online) and meta[2] ~= '1' then due = '1' end
redis.call('PUBLISH', FEED, field('r', ARGV[1]) .. field('s', log) ..
    field('P', row_text(ARGV[2], nlc, nla, seq)) .. field('d', due) ..
    field('f', '0') .. field('t', ARGV[3]))
return {1, tonumber(log), tonumber(due)}
)lua"},
    {"set_presence_enabled",  // ARGV realm uid enabled now -> {status, seq}
     R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
local uv = redis.call('HGET', KEYS[2], ARGV[2])
if not uv then return {-1, 0} end
if string.sub(uv, 3, 3) == ARGV[3] then return {0, 0} end
local now = tonumber(ARGV[4])
local rv = redis.call('HGET', KEYS[4], ARGV[2])
local has_row = rv ~= false
local lc, la = nil, nil
if has_row then lc, la = parse_row(rv) end
local wrote, nlc, nla = false, nil, nil
if ARGV[3] == '1' then
  local c, a, created, w = apply_report(has_row, lc, la, now, true)
  wrote, nlc, nla = w, c, a
else
  wrote, nlc, nla = go_invisible(has_row, lc, la, now)
end
local log = next_log(KEYS)
uv = string.sub(uv, 1, 2) .. ARGV[3] .. string.sub(uv, 4)
redis.call('HSET', KEYS[2], ARGV[2], uv)
local msg = field('r', ARGV[1]) .. field('s', log) .. field('U', uv)
if wrote then
  local seq = next_seq(KEYS)
  put_row(KEYS, ARGV[2], nlc, nla, seq)
  msg = msg .. field('P', row_text(ARGV[2], nlc, nla, seq)) ..
      field('d', '1') .. field('f', '1') .. field('t', ARGV[4])
elseif has_row and ARGV[3] == '1' then
  -- Visible again within 55 s of the last write: the row stays as it is
  -- (its update id too), and watchers are told of it, forced.
  local old = string.match(rv, ',([^,]*)$')
  msg = msg .. field('P', row_text(ARGV[2], lc, la, old)) ..
      field('d', '1') .. field('f', '1') .. field('t', ARGV[4])
end
redis.call('PUBLISH', FEED, msg)
return {1, tonumber(log)}
)lua"},
    {"read_realm",  // ARGV min-score -> {meta, users, {uid, row}..., access}
     R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local meta = redis.call('HGETALL', KEYS[1])
local users = redis.call('HVALS', KEYS[2])
local uids = redis.call('ZRANGEBYSCORE', KEYS[5], ARGV[1], '+inf')
local rows = {}
for _, uid in ipairs(uids) do
  local v = redis.call('HGET', KEYS[4], uid)
  if v then
    rows[#rows + 1] = uid
    rows[#rows + 1] = v
  end
end
local access = redis.call('HGETALL', KEYS[6])
return {meta, users, rows, access}
)lua"},
    {"count_request",  // KEYS requests n; ARGV now limit window
     R"lua(
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now - window))
local n = redis.call('ZCARD', KEYS[1])
local allowed = 0
if n < tonumber(ARGV[2]) then
  local id = redis.call('INCR', KEYS[2])
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1] .. ':' .. id)
  n = n + 1
  allowed = 1
end
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
redis.call('PEXPIRE', KEYS[2], math.ceil(window / 1000) + 1000)
local oldest = ARGV[1]
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 2 then oldest = first[2] end
return {allowed, n, oldest}
)lua"},
};

}  // namespace

struct RedisScript {
  std::string name;
  std::string body;  // the prelude and the script
  std::string sha;   // set by Open (SCRIPT LOAD)
};

// --- Feed decoding ----------------------------------------------------------

std::optional<FeedEntry> DecodeFeedEntry(std::string_view message) {
  FeedEntry e;
  bool have_realm = false;
  bool have_seq = false;
  while (!message.empty()) {
    const char tag = message.front();
    NsReader r(message.substr(1));
    auto value = r.Next();
    if (!value) return std::nullopt;
    message.remove_prefix(1 + (value->data() - (message.data() + 1)) +
                          value->size());
    switch (tag) {
      case 'r': {
        auto v = ParseInt(*value);
        if (!v) return std::nullopt;
        e.realm_id = *v;
        have_realm = true;
        break;
      }
      case 's': {
        auto v = ParseInt(*value);
        if (!v) return std::nullopt;
        e.seq = *v;
        have_seq = true;
        break;
      }
      case 'R': {
        auto v = DecodeRealmField(*value);
        if (!v) return std::nullopt;
        e.realm = std::move(*v);
        break;
      }
      case 'U': {
        auto v = DecodeUser(*value);
        if (!v) return std::nullopt;
        e.user = std::move(*v);
        break;
      }
      case 'A': {
        std::size_t bar = value->find('|');
        if (bar == std::string_view::npos) return std::nullopt;
        auto viewer = ParseInt(value->substr(0, bar));
        auto ids = DecodeIdList(value->substr(bar + 1));
        if (!viewer || !ids) return std::nullopt;
        e.access = AccessRecord{
            .realm_id = 0, .viewer = *viewer, .visible = std::move(*ids)};
        break;
      }
      case 'P': {
        std::size_t comma = value->find(',');
        if (comma == std::string_view::npos) return std::nullopt;
        auto uid = ParseInt(value->substr(0, comma));
        if (!uid) return std::nullopt;
        auto row = DecodeRowValue(*uid, 0, value->substr(comma + 1));
        if (!row) return std::nullopt;
        e.row = *row;
        break;
      }
      case 'd':
      case 'f': {
        auto v = ParseFlag(*value);
        if (!v) return std::nullopt;
        (tag == 'd' ? e.event_due : e.forced) = *v;
        break;
      }
      case 't': {
        auto v = ParseInt(*value);
        if (!v) return std::nullopt;
        e.written_at = *v;
        break;
      }
      default:
        return std::nullopt;
    }
  }
  if (!have_realm || !have_seq) return std::nullopt;
  if (e.access) e.access->realm_id = e.realm_id;
  if (e.row) e.row->realm_id = e.realm_id;
  return e;
}

// --- Feed -------------------------------------------------------------------

class RedisStore::Feed {
 public:
  Feed(RedisStore* store, FeedSink* sink)
      : store_(store), sink_(sink), wake_fd_(::eventfd(0, EFD_CLOEXEC)) {}
  Feed(const Feed&) = delete;
  Feed& operator=(const Feed&) = delete;
  ~Feed() {
    Stop();
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  Status Start() {
    if (wake_fd_ < 0) {
      return store_->Fail(Errc::kStoreFailed, "feed: eventfd failed");
    }
    if (Status st = ConnectAndSubscribe(); !st) return st;
    thread_ = std::thread([this] { Run(); });
    return {};
  }

  void Stop() {
    if (!thread_.joinable()) return;
    stop_.store(true);
    std::uint64_t one = 1;
    ssize_t n = ::write(wake_fd_, &one, sizeof one);
    (void)n;
    thread_.join();
  }

 private:
  // Connects to the first node that answers and subscribes; the
  // subscription is confirmed before this returns.
  Status ConnectAndSubscribe() {
    const std::vector<std::string> subscribe = {
        "SUBSCRIBE", std::string(RedisStore::kFeedChannel)};
    std::string why = "feed: no redis node";
    for (const RedisAddress& node : store_->clients_.front()->Nodes()) {
      conn_ =
          std::make_unique<RedisConnection>(node, store_->options_.timeouts);
      if (Status st = conn_->Send(subscribe); !st) {
        why = conn_->error();
        continue;
      }
      auto reply = ReadOne(store_->options_.timeouts.io);
      if (reply && reply->type == RedisReply::Type::kArray &&
          !reply->elements.empty() && reply->elements[0].str == "subscribe") {
        return {};
      }
      why = reply ? "redis " + node.ToString() + ": SUBSCRIBE refused"
                  : conn_->error();
      conn_->Close();
    }
    return store_->Fail(Errc::kStoreFailed, why);
  }

  // Waits for one reply (bounded). kStoreFailed on error or timeout.
  Result<RedisReply> ReadOne(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto buffered = conn_->Buffered();
      if (!buffered) return buffered.error();
      if (*buffered) return std::move(**buffered);
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        conn_->Close();
        return Errc::kStoreFailed;
      }
      pollfd p{.fd = conn_->fd(), .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) > 0) {
        if (Status st = conn_->ReadSome(); !st) return st.error();
      }
    }
  }

  // Sleeps `d` unless stopped; false if stopped.
  bool Wait(std::chrono::milliseconds d) {
    pollfd p{.fd = wake_fd_, .events = POLLIN, .revents = 0};
    ::poll(&p, 1, static_cast<int>(d.count()));
    return !stop_.load();
  }

  // Delivers what has been received. False if the connection broke.
  bool Drain() {
    for (;;) {
      auto reply = conn_->Buffered();
      if (!reply) return false;
      if (!*reply) return true;
      const RedisReply& r = **reply;
      if (r.type != RedisReply::Type::kArray || r.elements.size() != 3 ||
          r.elements[0].str != "message") {
        continue;  // a (re)subscribe confirmation
      }
      std::optional<FeedEntry> entry = DecodeFeedEntry(r.elements[2].str);
      if (!entry) {
        // An entry we cannot read is an entry lost: the sink must resync.
        store_->Fail(Errc::kCorrupt, "feed: malformed message");
        sink_->OnFeedLost();
        continue;
      }
      sink_->OnFeedEntry(*entry);
    }
  }

  void Run() {
    while (!stop_.load()) {
      bool ok = Drain();
      if (ok) {
        pollfd p[2] = {{.fd = conn_->fd(), .events = POLLIN, .revents = 0},
                       {.fd = wake_fd_, .events = POLLIN, .revents = 0}};
        int n = ::poll(p, 2, -1);
        if (stop_.load()) return;
        if (n < 0) continue;  // EINTR
        if (p[0].revents == 0) continue;
        if (conn_->ReadSome()) continue;
      }
      // The subscription broke: reconnect with backoff, then tell the sink
      // that entries may have been lost meanwhile.
      store_->Fail(Errc::kStoreFailed, "feed: " + conn_->error());
      conn_->Close();
      auto backoff = store_->options_.min_backoff;
      for (;;) {
        if (!Wait(backoff)) return;
        if (ConnectAndSubscribe()) break;
        backoff = std::min(backoff * 2, store_->options_.max_backoff);
      }
      sink_->OnFeedLost();
    }
  }

  RedisStore* const store_;
  FeedSink* const sink_;
  const int wake_fd_;
  std::unique_ptr<RedisConnection> conn_;  // used by the feed thread only
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// --- RedisStore -------------------------------------------------------------

namespace {

std::vector<RedisScript> MakeScripts() {
  std::vector<RedisScript> out;
  const std::string prelude = Prelude();
  for (const ScriptSource& s : kScriptSources) {
    out.push_back(
        RedisScript{.name = s.name, .body = prelude + s.body, .sha = {}});
  }
  return out;
}

}  // namespace

RedisStore::RedisStore(std::vector<std::unique_ptr<RedisClient>> clients,
                       Options options)
    : clients_(std::move(clients)),
      options_(options),
      scripts_(MakeScripts()) {}

RedisClient& RedisStore::client() {
  // Threads take pool slots in turn the first time they call (per store);
  // a thread keeps its slot, so its commands never wait for another's.
  thread_local const RedisStore* owner = nullptr;
  thread_local std::size_t slot = 0;
  if (owner != this) {
    owner = this;
    slot =
        next_client_.fetch_add(1, std::memory_order_relaxed) % clients_.size();
  }
  return *clients_[slot % clients_.size()];
}

RedisStore::~RedisStore() { Unsubscribe(); }

Result<std::unique_ptr<RedisStore>> RedisStore::Open(std::string_view url,
                                                     std::string* error) {
  return Open(url, Options{}, error);
}

Result<std::unique_ptr<RedisStore>> RedisStore::Open(std::string_view url,
                                                     const Options& options,
                                                     std::string* error) {
  auto fail = [error](Errc code, std::string why) {
    if (error != nullptr) *error = std::move(why);
    return code;
  };
  const std::string usage =
      "redis url must be redis://HOST:PORT[,HOST:PORT...]";
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return fail(Errc::kInvalidArgument,
                usage + " (got '" + std::string(url) + "')");
  }
  std::vector<RedisAddress> seeds;
  std::string_view rest = url.substr(kScheme.size());
  for (;;) {
    std::size_t comma = rest.find(',');
    std::string_view part = rest.substr(0, comma);
    auto addr = ParseRedisAddress(part);
    if (!addr || part.find_first_of("/?@#[] ") != std::string_view::npos) {
      return fail(Errc::kInvalidArgument, usage + ": bad address '" +
                                              std::string(part) + "' in '" +
                                              std::string(url) + "'");
    }
    seeds.push_back(std::move(*addr));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  std::vector<std::unique_ptr<RedisClient>> clients;
  for (int i = 0; i < std::max(1, options.connections); ++i) {
    auto client = RedisClient::Connect(seeds, options.timeouts, error);
    if (!client) return client.error();
    clients.push_back(std::move(*client));
  }
  std::unique_ptr<RedisStore> store(
      new RedisStore(std::move(clients), options));
  for (Script& s : store->scripts_) {
    const std::string argv[] = {"SCRIPT", "LOAD", s.body};
    auto reply = store->Call(argv, "");
    if (!reply) {
      return fail(Errc::kStoreFailed,
                  "loading script " + s.name + ": " + store->LastError());
    }
    s.sha = reply->str;
  }
  return store;
}

std::string RedisStore::LastError() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

boost::system::error_code RedisStore::Fail(Errc code, std::string why) {
  std::lock_guard<std::mutex> lock(mu_);
  last_error_ = std::move(why);
  return code;
}

boost::system::error_code RedisStore::ClientFailed(std::string_view op) {
  std::string why = client().LastError();
  if (why.empty()) why = "redis: unknown failure";
  return Fail(Errc::kStoreFailed, std::string(op) + ": " + why);
}

Result<RedisReply> RedisStore::Call(std::span<const std::string> argv,
                                    std::string_view route_key) {
  auto reply = client().Run(argv, route_key);
  if (!reply) return ClientFailed(argv.empty() ? "" : argv[0]);
  if (reply->is_error()) {
    return Fail(Errc::kStoreFailed,
                "redis " + (argv.empty() ? std::string() : argv[0]) + ": " +
                    reply->str);
  }
  return reply;
}

Result<RedisReply> RedisStore::Eval(const Script& script,
                                    std::span<const std::string> keys,
                                    std::span<const std::string> args) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(script.sha);
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string route = keys.empty() ? std::string() : keys.front();
  RedisClient& c = client();
  auto reply = c.Run(argv, route);
  if (reply && reply->is_error() && reply->str.substr(0, 8) == "NOSCRIPT") {
    // A restarted or flushed node: EVAL runs it and caches it again.
    argv[0] = "EVAL";
    argv[1] = script.body;
    reply = c.Run(argv, route);
  }
  if (!reply) return ClientFailed(script.name);
  if (reply->is_error()) {
    return Fail(Errc::kStoreFailed,
                "redis script " + script.name + ": " + reply->str);
  }
  return reply;
}

namespace {

// The integer reply of a script, or nullopt.
std::optional<long long> IntOf(const RedisReply& r) {
  if (r.type != RedisReply::Type::kInteger) return std::nullopt;
  return r.integer;
}

}  // namespace

Result<RealmId> RedisStore::InsertRealm(const RealmRecord& realm) {
  const std::string lower = AsciiLower(realm.subdomain);
  const std::string gkeys[] = {kSubdomainsKey, kRealmsKey, kNextRealmKey};
  const std::string gargs[] = {lower};
  auto id = Eval(scripts_[kIndexInsertRealm], gkeys, gargs);
  if (!id) return id.error();
  auto id_v = IntOf(*id);
  if (!id_v) return Fail(Errc::kCorrupt, "index_insert_realm: bad reply");
  if (*id_v < 0) return Errc::kAlreadyExists;
  const RealmId rid = *id_v;
  const std::string args[] = {std::to_string(rid),
                              realm.subdomain,
                              realm.name,
                              Flag(realm.presence_disabled),
                              Flag(realm.deactivated),
                              std::to_string(realm.date_created),
                              std::to_string(realm.last_update_id),
                              std::to_string(realm.reserved_update_id)};
  auto created = Eval(scripts_[kCreateRealm], RealmKeys(rid), args);
  if (!created) {
    // Best effort: free the subdomain again (the id stays used).
    const std::string dkeys[] = {kSubdomainsKey, kRealmsKey};
    const std::string dargs[] = {std::to_string(rid), lower};
    std::string why = LastError();
    (void)Eval(scripts_[kIndexDropRealm], dkeys, dargs);
    return Fail(Errc::kStoreFailed, why);
  }
  return rid;
}

Status RedisStore::UpdateRealm(const RealmRecord& realm) {
  const std::string gkeys[] = {kSubdomainsKey, kRealmsKey};
  const std::string gargs[] = {std::to_string(realm.id),
                               AsciiLower(realm.subdomain)};
  auto renamed = Eval(scripts_[kIndexRenameRealm], gkeys, gargs);
  if (!renamed) return renamed.error();
  auto r = IntOf(*renamed);
  if (!r) return Fail(Errc::kCorrupt, "index_rename_realm: bad reply");
  if (*r == -1) return Errc::kNotFound;
  if (*r == -2) return Errc::kAlreadyExists;
  const std::string args[] = {std::to_string(realm.id), realm.subdomain,
                              realm.name, Flag(realm.presence_disabled),
                              Flag(realm.deactivated)};
  auto updated = Eval(scripts_[kUpdateRealm], RealmKeys(realm.id), args);
  if (!updated) return updated.error();
  if (IntOf(*updated).value_or(-1) < 0) return Errc::kNotFound;
  return {};
}

Status RedisStore::PutUser(const UserRecord& user, bool must_exist) {
  const std::string args[] = {std::to_string(user.realm_id),
                              std::to_string(user.id), AsciiLower(user.email),
                              EncodeUser(user), must_exist ? "1" : "0"};
  auto put = Eval(scripts_[kPutUser], RealmKeys(user.realm_id), args);
  if (!put) return put.error();
  auto r = IntOf(*put);
  if (!r) return Fail(Errc::kCorrupt, "put_user: bad reply");
  if (*r == -1) return Errc::kNotFound;
  if (*r == -2) return Errc::kAlreadyExists;
  return {};
}

Result<UserId> RedisStore::InsertUser(const UserRecord& user) {
  // Check first, then take an id (the counter is on another slot), then
  // insert re-checking: a failed insert takes no id unless it lost a race.
  const std::string cargs[] = {AsciiLower(user.email)};
  auto check = Eval(scripts_[kCheckUser], RealmKeys(user.realm_id), cargs);
  if (!check) return check.error();
  auto c = IntOf(*check);
  if (!c) return Fail(Errc::kCorrupt, "check_user: bad reply");
  if (*c == -1) return Errc::kNotFound;
  if (*c == -2) return Errc::kAlreadyExists;

  const std::string akeys[] = {kNextUserKey, kUserRealmKey};
  const std::string aargs[] = {std::to_string(user.realm_id)};
  auto id = Eval(scripts_[kAllocUser], akeys, aargs);
  if (!id) return id.error();
  auto id_v = IntOf(*id);
  if (!id_v) return Fail(Errc::kCorrupt, "alloc_user: bad reply");

  UserRecord row = user;
  row.id = *id_v;
  if (Status st = PutUser(row, /*must_exist=*/false); !st) {
    const std::string hdel[] = {"HDEL", kUserRealmKey, std::to_string(row.id)};
    (void)client().Run(hdel, kUserRealmKey);
    return st.error();
  }
  return row.id;
}

Status RedisStore::UpdateUser(const UserRecord& user) {
  const std::string hget[] = {"HGET", kUserRealmKey, std::to_string(user.id)};
  auto where = Call(hget, kUserRealmKey);
  if (!where) return where.error();
  if (where->is_nil()) return Errc::kNotFound;
  auto old_realm = ParseInt(where->str);
  if (!old_realm) return Fail(Errc::kCorrupt, "user_realm: bad realm id");
  if (*old_realm == user.realm_id) return PutUser(user, /*must_exist=*/true);

  // Moved to another realm: add it there, then remove it from the old one
  // (two slots, so two steps), then repoint the index.
  if (Status st = PutUser(user, /*must_exist=*/false); !st) return st;
  const std::string dargs[] = {std::to_string(*old_realm),
                               std::to_string(user.id), EncodeUser(user)};
  auto dropped = Eval(scripts_[kDropUser], RealmKeys(*old_realm), dargs);
  if (!dropped) return dropped.error();
  const std::string hset[] = {"HSET", kUserRealmKey, std::to_string(user.id),
                              std::to_string(user.realm_id)};
  auto set = Call(hset, kUserRealmKey);
  if (!set) return set.error();
  return {};
}

Status RedisStore::SetAccess(const AccessRecord& access) {
  const std::set<UserId> visible(access.visible.begin(), access.visible.end());
  std::vector<std::string> hmget = {"HMGET", kUserRealmKey,
                                    std::to_string(access.viewer)};
  for (UserId id : visible) hmget.push_back(std::to_string(id));
  auto known = Call(hmget, kUserRealmKey);
  if (!known) return known.error();
  for (const RedisReply& r : known->elements) {
    if (r.is_nil()) return Errc::kNotFound;
  }
  const std::string args[] = {std::to_string(access.realm_id),
                              std::to_string(access.viewer),
                              EncodeIdList(visible)};
  auto set = Eval(scripts_[kSetAccess], RealmKeys(access.realm_id), args);
  if (!set) return set.error();
  if (IntOf(*set).value_or(-1) < 0) return Errc::kNotFound;
  return {};
}

Status RedisStore::ReserveUpdateIds(RealmId realm,
                                    UpdateId reserved_update_id) {
  const std::string args[] = {std::to_string(reserved_update_id)};
  auto r = Eval(scripts_[kReserve], RealmKeys(realm), args);
  if (!r) return r.error();
  if (IntOf(*r).value_or(-1) < 0) return Errc::kNotFound;
  return {};
}

Status RedisStore::WritePresence(std::span<const PresenceRecord> rows,
                                 std::span<const ClientPresenceRecord> clients,
                                 std::span<const SequenceRecord> sequences) {
  if (rows.empty() && clients.empty() && sequences.empty()) return {};
  // Validate everything first (all or nothing, as far as one realm at a
  // time allows): every user and every realm must exist.
  std::set<RealmId> realms;
  std::vector<std::string> users = {"HMGET", kUserRealmKey};
  for (const PresenceRecord& row : rows) {
    users.push_back(std::to_string(row.user_id));
    realms.insert(row.realm_id);
  }
  for (const ClientPresenceRecord& c : clients) {
    users.push_back(std::to_string(c.user_id));
    realms.insert(c.realm_id);
  }
  for (const SequenceRecord& seq : sequences) realms.insert(seq.realm_id);
  if (users.size() > 2) {
    auto known = Call(users, kUserRealmKey);
    if (!known) return known.error();
    for (const RedisReply& r : known->elements) {
      if (r.is_nil()) return Errc::kNotFound;
    }
  }
  std::vector<std::string> realm_ids = {"HMGET", kRealmsKey};
  for (RealmId r : realms) realm_ids.push_back(std::to_string(r));
  auto known = Call(realm_ids, kRealmsKey);
  if (!known) return known.error();
  for (const RedisReply& r : known->elements) {
    if (r.is_nil()) return Errc::kNotFound;
  }

  for (RealmId realm : realms) {
    std::vector<std::string> args = {"0", "0", "0"};
    for (const SequenceRecord& seq : sequences) {
      if (seq.realm_id != realm) continue;
      args[0] = "1";
      args[1] = std::to_string(seq.last_update_id);
      args[2] = std::to_string(
          std::max(seq.reserved_update_id, ParseInt(args[2]).value_or(0)));
    }
    args.push_back("0");  // the number of rows, set below
    std::size_t n = 0;
    for (const PresenceRecord& row : rows) {
      if (row.realm_id != realm) continue;
      args.push_back(std::to_string(row.user_id));
      args.push_back(EncodeRowValue(row));
      args.push_back(std::to_string(row.last_update_id));
      ++n;
    }
    args[3] = std::to_string(n);
    // Client rows replace per user: each user's records of this batch.
    std::map<UserId, std::vector<const ClientPresenceRecord*>> by_user;
    for (const ClientPresenceRecord& c : clients) {
      if (c.realm_id == realm) by_user[c.user_id].push_back(&c);
    }
    for (const auto& [user, list] : by_user) {
      args.push_back(std::to_string(user));
      args.push_back(EncodeClientRows(list));
    }
    auto r = Eval(scripts_[kWritePresence], RealmKeys(realm), args);
    if (!r) return r.error();
    if (IntOf(*r).value_or(-1) < 0) return Errc::kNotFound;
  }
  return {};
}

Result<RealmState> RedisStore::ReadRealmImpl(RealmId realm,
                                             std::optional<UpdateId> since) {
  const std::string args[] = {since ? "(" + std::to_string(*since) : "-inf"};
  auto reply = Eval(scripts_[kReadRealm], RealmKeys(realm), args);
  if (!reply) return reply.error();
  if (reply->type == RedisReply::Type::kInteger) return Errc::kNotFound;
  auto corrupt = [&](std::string_view what) {
    return Fail(Errc::kCorrupt,
                "realm " + std::to_string(realm) + ": " + std::string(what));
  };
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() != 4) {
    return corrupt("bad read_realm reply");
  }
  RealmState state;
  auto meta = DecodeMeta(realm, reply->elements[0]);
  if (!meta) return corrupt("malformed meta");
  state.realm = std::move(*meta);
  {
    const auto& flat = reply->elements[0].elements;
    for (std::size_t i = 0; i + 1 < flat.size(); i += 2) {
      if (flat[i].str != "log") continue;
      auto log = ParseInt(flat[i + 1].str);
      if (!log) return corrupt("malformed log");
      state.seq = *log;
    }
  }
  for (const RedisReply& u : reply->elements[1].elements) {
    auto user = DecodeUser(u.str);
    if (!user) return corrupt("malformed user");
    state.users.push_back(std::move(*user));
  }
  std::sort(
      state.users.begin(), state.users.end(),
      [](const UserRecord& a, const UserRecord& b) { return a.id < b.id; });
  const auto& rows = reply->elements[2].elements;
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
  const auto& access = reply->elements[3].elements;
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
  return state;
}

Result<Snapshot> RedisStore::Load() {
  const std::string hkeys[] = {"HKEYS", kRealmsKey};
  auto ids = Call(hkeys, kRealmsKey);
  if (!ids) return ids.error();
  std::vector<RealmId> realm_ids;
  for (const RedisReply& r : ids->elements) {
    auto id = ParseInt(r.str);
    if (!id) return Fail(Errc::kCorrupt, "realms index: bad id");
    realm_ids.push_back(*id);
  }
  std::sort(realm_ids.begin(), realm_ids.end());
  Snapshot snap;
  for (RealmId id : realm_ids) {
    auto state = ReadRealmImpl(id, std::nullopt);
    // A realm whose creation did not finish (indexed, no meta) is skipped.
    if (!state && state.error() == Errc::kNotFound) continue;
    if (!state) return state.error();
    snap.realms.push_back(std::move(state->realm));
    for (auto& u : state->users) snap.users.push_back(std::move(u));
    for (auto& r : state->rows) snap.presence.push_back(r);
    for (auto& a : state->access) snap.access.push_back(std::move(a));
    const std::string clients_key = RealmKeys(id)[6];
    const std::string hgetall[] = {"HGETALL", clients_key};
    auto clients = Call(hgetall, clients_key);
    if (!clients) return clients.error();
    for (std::size_t i = 0; i + 1 < clients->elements.size(); i += 2) {
      auto user = ParseInt(clients->elements[i].str);
      auto rows =
          user ? DecodeClientRows(id, *user, clients->elements[i + 1].str)
               : std::nullopt;
      if (!rows) return Fail(Errc::kCorrupt, "malformed client rows");
      for (auto& c : *rows) snap.client_presence.push_back(std::move(c));
    }
  }
  std::sort(snap.client_presence.begin(), snap.client_presence.end(),
            [](const ClientPresenceRecord& a, const ClientPresenceRecord& b) {
              return std::tie(a.user_id, a.client) <
                     std::tie(b.user_id, b.client);
            });
  std::sort(
      snap.users.begin(), snap.users.end(),
      [](const UserRecord& a, const UserRecord& b) { return a.id < b.id; });
  std::sort(snap.presence.begin(), snap.presence.end(),
            [](const PresenceRecord& a, const PresenceRecord& b) {
              return a.user_id < b.user_id;
            });
  std::sort(snap.access.begin(), snap.access.end(),
            [](const AccessRecord& a, const AccessRecord& b) {
              return a.viewer < b.viewer;
            });
  return snap;
}

Status RedisStore::Subscribe(FeedSink* sink) {
  std::lock_guard<std::mutex> lock(feed_mu_);
  if (feed_ != nullptr) {
    return Fail(Errc::kInvalidArgument, "Subscribe: already subscribed");
  }
  auto feed = std::make_unique<Feed>(this, sink);
  if (Status st = feed->Start(); !st) return st;
  feed_ = std::move(feed);
  return {};
}

void RedisStore::Unsubscribe() {
  std::lock_guard<std::mutex> lock(feed_mu_);
  if (feed_ == nullptr) return;
  feed_->Stop();
  feed_.reset();
}

Result<WriteResult> RedisStore::Report(RealmId realm, UserId user, Micros now,
                                       ReportStatus status) {
  const std::string args[] = {std::to_string(realm), std::to_string(user),
                              std::to_string(now),
                              status == ReportStatus::kActive ? "1" : "0"};
  auto reply = Eval(scripts_[kReport], RealmKeys(realm), args);
  if (!reply) return reply.error();
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() < 2) {
    return Fail(Errc::kCorrupt, "report: bad reply");
  }
  auto code = IntOf(reply->elements[0]);
  auto seq = IntOf(reply->elements[1]);
  if (!code || !seq) return Fail(Errc::kCorrupt, "report: bad reply");
  if (*code < 0) return Errc::kNotFound;
  return WriteResult{.wrote = *code == 1, .seq = *code == 1 ? *seq : 0};
}

Result<WriteResult> RedisStore::SetPresenceEnabled(RealmId realm, UserId user,
                                                   bool enabled, Micros now) {
  const std::string args[] = {std::to_string(realm), std::to_string(user),
                              Flag(enabled), std::to_string(now)};
  auto reply = Eval(scripts_[kSetPresenceEnabled], RealmKeys(realm), args);
  if (!reply) return reply.error();
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() < 2) {
    return Fail(Errc::kCorrupt, "set_presence_enabled: bad reply");
  }
  auto code = IntOf(reply->elements[0]);
  auto seq = IntOf(reply->elements[1]);
  if (!code || !seq) return Fail(Errc::kCorrupt, "set_presence_enabled: bad");
  if (*code < 0) return Errc::kNotFound;
  return WriteResult{.wrote = *code == 1, .seq = *code == 1 ? *seq : 0};
}

Result<UpdateId> RedisStore::CurrentSeq(RealmId realm) {
  const std::string key = RealmKeys(realm)[0];
  // 'seq' exists in every realm; 'log' once its first change was made.
  const std::string argv[] = {"HMGET", key, "seq", "log"};
  auto reply = Call(argv, key);
  if (!reply) return reply.error();
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() != 2) {
    return Fail(Errc::kCorrupt, "CurrentSeq: bad reply");
  }
  if (reply->elements[0].is_nil()) return Errc::kNotFound;
  if (reply->elements[1].is_nil()) return UpdateId{0};
  auto log = ParseInt(reply->elements[1].str);
  if (!log) return Fail(Errc::kCorrupt, "CurrentSeq: bad log");
  return *log;
}

Result<std::optional<RealmId>> RedisStore::FindRealmId(
    std::string_view subdomain) {
  const std::string argv[] = {"HGET", kSubdomainsKey, AsciiLower(subdomain)};
  auto reply = Call(argv, kSubdomainsKey);
  if (!reply) return reply.error();
  if (reply->is_nil()) return std::optional<RealmId>();
  auto id = ParseInt(reply->str);
  if (!id) return Fail(Errc::kCorrupt, "FindRealmId: bad id");
  return std::optional<RealmId>(*id);
}

Result<RealmState> RedisStore::ReadRealm(RealmId realm, UpdateId since) {
  return ReadRealmImpl(realm, since);
}

Result<std::int64_t> RedisStore::RegisterNode(std::string_view address) {
  const std::string keys[] = {kNextNodeKey, kNodesKey};
  const std::string args[] = {std::string(address)};
  auto reply = Eval(scripts_[kRegisterNode], keys, args);
  if (!reply) return reply.error();
  auto id = IntOf(*reply);
  if (!id) return Fail(Errc::kCorrupt, "register_node: bad reply");
  return static_cast<std::int64_t>(*id);
}

Result<RateCount> RedisStore::CountRequest(UserId user, Micros now,
                                           std::int64_t limit, Micros window) {
  // One user's log and its member counter share the user's hash tag.
  const std::string tag = "presenced:{u" + std::to_string(user) + "}:";
  const std::vector<std::string> keys = {tag + "requests", tag + "n"};
  const std::string args[] = {std::to_string(now), std::to_string(limit),
                              std::to_string(window)};
  auto reply = Eval(scripts_[kCountRequest], keys, args);
  if (!reply) return reply.error();
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() != 3) {
    return Fail(Errc::kCorrupt, "count_request: bad reply");
  }
  auto allowed = IntOf(reply->elements[0]);
  auto count = IntOf(reply->elements[1]);
  std::optional<long long> oldest;
  if (reply->elements[2].type == RedisReply::Type::kString) {
    if (auto v = ParseInt(reply->elements[2].str)) oldest = *v;
  } else {
    oldest = IntOf(reply->elements[2]);
  }
  if (!allowed || !count || !oldest) {
    return Fail(Errc::kCorrupt, "count_request: bad reply");
  }
  return RateCount{.allowed = *allowed == 1,
                   .in_window = *count,
                   .oldest = static_cast<Micros>(*oldest)};
}

Status RedisStore::Ping() {
  // Routed like the global keys: in a cluster, the shard every node needs.
  const std::string argv[] = {"PING"};
  auto reply = Call(argv, kNodesKey);
  if (!reply) return reply.error();
  return {};
}

Result<std::optional<std::string>> RedisStore::NodeAddress(std::int64_t node) {
  const std::string argv[] = {"HGET", kNodesKey, std::to_string(node)};
  auto reply = Call(argv, kNodesKey);
  if (!reply) return reply.error();
  if (reply->is_nil()) return std::optional<std::string>();
  return std::optional<std::string>(reply->str);
}

}  // namespace presence::store
