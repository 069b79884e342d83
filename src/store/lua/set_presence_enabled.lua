-- set_presence_enabled: KEYS the realm's (prelude.lua); ARGV realm uid enabled now -> {status, log}
-- log: the realm's log sequence number as the script saw it (see report.lua).
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
local uv = redis.call('HGET', KEYS[2], ARGV[2])
if not uv then return {-1, 0} end
if string.sub(uv, 3, 3) == ARGV[3] then
  return {0, tonumber(redis.call('HGET', KEYS[1], 'log') or '0')}
end
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
local seq = nil
if wrote then
  seq = next_seq(KEYS)
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
if ARGV[3] == '0' then
  -- Client rows no fresher than the user row as it now stands.
  local clamp = nil
  if wrote then
    clamp = clamp_clients(KEYS, ARGV[2], nlc, nla)
  else
    clamp = clamp_clients(KEYS, ARGV[2], lc, la)
  end
  if clamp then
    if not seq then seq = next_seq(KEYS) end
    msg = msg .. commit_clients(KEYS, ARGV[2], clamp, seq, false)
    if not wrote then msg = msg .. field('t', ARGV[4]) end
  end
end
redis.call('PUBLISH', FEED, msg)
return {1, tonumber(log)}
