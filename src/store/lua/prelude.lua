-- The prelude every script of this folder is prefixed with (redis_scripts.cc
-- puts it after the constants below and before the script's own text).
--
-- Defined before this file, from core/constants.h and RedisStore:
--   FEED        the channel every change is PUBLISHed on
--   ONE_DAY     microseconds in a day (the "never" of the presence rules)
--   MIN_FREQ    the 55 s write rule, in microseconds
--   ONLINE_GAP  the gap after which an active report "came online"
--   BACKDATE    how far going invisible back-dates the row
--   PREWRITE    how far before the back-dated time the row is written
--
-- Lua 5.1 numbers are doubles: microsecond times (~1.7e15) and sequence
-- numbers are exact below 2^53, but tostring() would print "1.7e+15", so
-- every number written back goes through fmt() ('%.0f'). kNoTime is never a
-- Lua number: it is an empty field in storage and nil in the rules.
--
-- Keys of a realm script: KEYS = RealmKeys(realm) (redis_keys.h):
--   1 meta  2 users  3 emails  4 rows  5 rowseq  6 access  7 clients
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
