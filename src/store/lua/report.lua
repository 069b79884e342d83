-- report: KEYS the realm's (prelude.lua); ARGV realm uid now active client max_clients -> {status, log, due}
-- client: the reporting client's name ('' for none: no client row) and the
-- bound on a user's client rows (per-client rows: prelude.lua).
-- log: the realm's log sequence number as the script saw it, written or not
-- (the one this write took if it wrote), so the caller can wait until its
-- replica has applied everything the decision was made against.
local meta = redis.call('HMGET', KEYS[1], 'seq', 'presence_disabled', 'log')
if not meta[1] then return {-1, 0, 0} end
local seen = tonumber(meta[3] or '0')
local uv = redis.call('HGET', KEYS[2], ARGV[2])
if not uv then return {0, seen, 0} end
if string.sub(uv, 1, 1) ~= '0' or string.sub(uv, 2, 2) ~= '1' or
    string.sub(uv, 3, 3) ~= '1' then
  return {0, seen, 0}
end
local now = tonumber(ARGV[3])
local rv = redis.call('HGET', KEYS[4], ARGV[2])
local has_row = rv ~= false
local lc, la = nil, nil
if has_row then lc, la = parse_row(rv) end
local nlc, nla, created, wrote, online =
    apply_report(has_row, lc, la, now, ARGV[4] == '1')
local client = nil
if ARGV[5] and ARGV[5] ~= '' then
  client = client_report(KEYS, ARGV[2], ARGV[5], now, ARGV[4] == '1',
                         tonumber(ARGV[6]))
end
if not wrote and not client then return {0, seen, 0} end
local log = next_log(KEYS)
local seq = next_seq(KEYS)
local msg = field('r', ARGV[1]) .. field('s', log)
local due = '0'
if wrote then
  put_row(KEYS, ARGV[2], nlc, nla, seq)
  if (created or online) and meta[2] ~= '1' then due = '1' end
  msg = msg .. field('P', row_text(ARGV[2], nlc, nla, seq)) ..
      field('d', due) .. field('f', '0')
end
if client then
  msg = msg .. commit_clients(KEYS, ARGV[2], client, seq, meta[2] ~= '1')
end
redis.call('PUBLISH', FEED, msg .. field('t', ARGV[3]))
return {1, tonumber(log), tonumber(due)}
