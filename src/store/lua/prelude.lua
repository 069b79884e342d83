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
-- Per-client rows (extension; core/realm.cc RecordClientLocked and
-- ClampClientsLocked). A user's client rows are one field of KEYS[7]: per
-- client, netstrings of name, connected, active, update id (redis_codec.h),
-- by name in byte order. A decided change marks the rows it changed 'new';
-- commit_clients gives them their update id.
local function parse_clients(v)
  local rows = {}
  if not v then return rows end
  local f = {}
  local pos = 1
  while pos <= #v do
    local colon = string.find(v, ':', pos, true)
    local n = tonumber(string.sub(v, pos, colon - 1))
    f[#f + 1] = string.sub(v, colon + 1, colon + n)
    pos = colon + n + 1
  end
  for i = 1, #f - 3, 4 do
    rows[#rows + 1] = {name = f[i], lc = tnum(f[i + 1]), la = tnum(f[i + 2]),
                       id = tonumber(f[i + 3])}
  end
  return rows
end
-- Byte order (Lua's '<' on strings follows the server's locale).
local function name_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
-- Stalest first: oldest last report (none is oldest), then oldest write.
local function staler(a, b)
  if a.lc ~= b.lc then
    if a.lc == nil then return true end
    if b.lc == nil then return false end
    return a.lc < b.lc
  end
  return a.id < b.id
end
-- A report's effect on the client's row, decided, not written: nil if it
-- writes nothing, else {rows = the user's rows after it, due = created or
-- came online}. A new client beyond max_rows pushes out the stalest.
local function client_report(K, uid, name, now, active, max_rows)
  local rows = parse_clients(redis.call('HGET', K[7], uid))
  local pos = nil
  for i, r in ipairs(rows) do
    if r.name == name then pos = i end
  end
  local lc, la = nil, nil
  if pos then lc, la = rows[pos].lc, rows[pos].la end
  local nlc, nla, created, wrote, online =
      apply_report(pos ~= nil, lc, la, now, active)
  if not wrote then return nil end
  if pos then
    rows[pos].lc, rows[pos].la, rows[pos].new = nlc, nla, true
  else
    while #rows > 0 and #rows >= max_rows do
      local s = 1
      for i = 2, #rows do
        if staler(rows[i], rows[s]) then s = i end
      end
      table.remove(rows, s)
    end
    local at = #rows + 1
    for i, r in ipairs(rows) do
      if name_before(name, r.name) then
        at = i
        break
      end
    end
    table.insert(rows, at, {name = name, lc = nlc, la = nla, new = true})
  end
  return {rows = rows, due = created or online}
end
-- Invisible mode: no client row may say more than the user row (lc, la).
-- nil if no row changes, else {rows = all of them, each taking the id}.
local function clamp_clients(K, uid, lc, la)
  local function tmin(x, y)
    if x == nil or y == nil then return nil end
    return math.min(x, y)
  end
  local rows = parse_clients(redis.call('HGET', K[7], uid))
  local changed = false
  for _, r in ipairs(rows) do
    local c, a = tmin(r.lc, lc), tmin(r.la, la)
    if c ~= r.lc or a ~= r.la then
      r.lc, r.la = c, a
      changed = true
    end
  end
  if not changed then return nil end
  for _, r in ipairs(rows) do r.new = true end
  return {rows = rows, due = false}
end
-- Stores a decided change with update id `seq` for its changed rows and
-- returns its feed fields: C (user id, then the rows) and c (event due).
local function commit_clients(K, uid, c, seq, enabled)
  local parts = {}
  for _, r in ipairs(c.rows) do
    if r.new then r.id = tonumber(seq) end
    parts[#parts + 1] = ns(r.name) .. ns(tstr(r.lc)) .. ns(tstr(r.la)) ..
        ns(fmt(r.id))
  end
  local text = table.concat(parts)
  redis.call('HSET', K[7], uid, text)
  local due = '0'
  if c.due and enabled then due = '1' end
  return field('C', ns(uid) .. text) .. field('c', due)
end

-- One report (spec 3.1/3.2) of user `uid` of realm `realm` at `now_text`
-- (microseconds, as text), against the realm's keys K, with its client row
-- (`client`: the reporting client's name, '' or nil for none; `max_clients`:
-- the bound on a user's client rows). Returns {status, log, due}: status 1
-- written, 0 nothing to write (unknown, inactive, bot or invisible user, or
-- the rules write nothing), -1 no such realm; log: the realm's log sequence
-- number as the step saw it, written or not (the one this write took if it
-- wrote), so the caller can wait until its replica has applied everything
-- the decision was made against.
local function report_step(K, realm, uid, now_text, active, client_name,
                           max_clients)
  local meta = redis.call('HMGET', K[1], 'seq', 'presence_disabled', 'log')
  if not meta[1] then return {-1, 0, 0} end
  local seen = tonumber(meta[3] or '0')
  local uv = redis.call('HGET', K[2], uid)
  if not uv then return {0, seen, 0} end
  if string.sub(uv, 1, 1) ~= '0' or string.sub(uv, 2, 2) ~= '1' or
      string.sub(uv, 3, 3) ~= '1' then
    return {0, seen, 0}
  end
  local now = tonumber(now_text)
  local rv = redis.call('HGET', K[4], uid)
  local has_row = rv ~= false
  local lc, la = nil, nil
  if has_row then lc, la = parse_row(rv) end
  local nlc, nla, created, wrote, online =
      apply_report(has_row, lc, la, now, active)
  local client = nil
  if client_name and client_name ~= '' then
    client = client_report(K, uid, client_name, now, active,
                           tonumber(max_clients))
  end
  if not wrote and not client then return {0, seen, 0} end
  local log = next_log(K)
  local seq = next_seq(K)
  local msg = field('r', realm) .. field('s', log)
  local due = '0'
  if wrote then
    put_row(K, uid, nlc, nla, seq)
    if (created or online) and meta[2] ~= '1' then due = '1' end
    msg = msg .. field('P', row_text(uid, nlc, nla, seq)) ..
        field('d', due) .. field('f', '0')
  end
  if client then
    msg = msg .. commit_clients(K, uid, client, seq, meta[2] ~= '1')
  end
  redis.call('PUBLISH', FEED, msg .. field('t', now_text))
  return {1, tonumber(log), tonumber(due)}
end

-- Zulip's per-user rate limit, a sliding log: drops the requests at or
-- before now - window from the log `klog` (a zset; `kn` its member counter),
-- then counts one at `now_text` unless `limit` remain. `charge` (nil: 1):
-- how many to count at once when that many remain (a node's lease of
-- requests it then lets through without asking, core/rate_lease.h); fewer,
-- down to one, when fewer remain. Returns allowed (1 or 0), the requests in
-- the window, the oldest one's time (text) and how many were counted.
local function count_step(klog, kn, now_text, limit, window_text, charge)
  local now = tonumber(now_text)
  local window = tonumber(window_text)
  limit = tonumber(limit)
  redis.call('ZREMRANGEBYSCORE', klog, '-inf', fmt(now - window))
  local n = redis.call('ZCARD', klog)
  local allowed = 0
  local charged = 0
  if n < limit then
    charged = math.max(1, math.min(tonumber(charge or 1), limit - n))
    local last = redis.call('INCRBY', kn, charged)
    local members = {}
    for id = last - charged + 1, last do
      members[#members + 1] = now_text
      members[#members + 1] = now_text .. ':' .. fmt(id)
    end
    redis.call('ZADD', klog, unpack(members))
    n = n + charged
    allowed = 1
  end
  redis.call('PEXPIRE', klog, math.ceil(window / 1000) + 1000)
  redis.call('PEXPIRE', kn, math.ceil(window / 1000) + 1000)
  local oldest = now_text
  local first = redis.call('ZRANGE', klog, 0, 0, 'WITHSCORES')
  if #first == 2 then oldest = first[2] end
  return allowed, n, oldest, charged
end

-- One API request's step (gate_batch.lua makes one or several of a realm in
-- one script): counts it against the user's rate limit (the log
-- `klog` and counter `kn` on the realm's slot; limit '0': not counted),
-- then, if it was let through, makes its report (report 'a' active, 'i'
-- idle, '-' none) or reads the realm's log sequence number (its read
-- barrier). Returns {allowed, in_window, oldest, status, log, due, charged}
-- as gate_batch.lua describes.
local function gate_step(K, klog, kn, realm, uid, now_text, report, rate_now,
                         limit, window, client, max_clients, charge)
  local allowed, n, oldest, charged = 1, 0, '0', 0
  limit = tonumber(limit)
  if limit > 0 then
    allowed, n, oldest, charged =
        count_step(klog, kn, rate_now, limit, window, charge)
  end
  if allowed == 1 and report ~= '-' then
    local r = report_step(K, realm, uid, now_text, report == 'a', client,
                          max_clients)
    return {allowed, n, oldest, r[1], r[2], r[3], charged}
  end
  local meta = redis.call('HMGET', K[1], 'seq', 'log')
  if not meta[1] then return {allowed, n, oldest, -1, 0, 0, charged} end
  return {allowed, n, oldest, 0, tonumber(meta[2] or '0'), 0, charged}
end
