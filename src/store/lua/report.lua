-- report: KEYS the realm's (prelude.lua); ARGV realm uid now active -> {status, log, due}
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
if not wrote then return {0, seen, 0} end
local log = next_log(KEYS)
local seq = next_seq(KEYS)
put_row(KEYS, ARGV[2], nlc, nla, seq)
local due = '0'
if (created or online) and meta[2] ~= '1' then due = '1' end
redis.call('PUBLISH', FEED, field('r', ARGV[1]) .. field('s', log) ..
    field('P', row_text(ARGV[2], nlc, nla, seq)) .. field('d', due) ..
    field('f', '0') .. field('t', ARGV[3]))
return {1, tonumber(log), tonumber(due)}
