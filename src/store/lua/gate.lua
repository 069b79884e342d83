-- gate: one API request's single round trip in scale-out mode.
-- KEYS the realm's (prelude.lua), then the user's rate log and its counter
-- (RealmRateKeys: on the realm's slot). ARGV realm uid now report rate_now
-- limit window client max_clients charge; report: 'a' active, 'i' idle, '-'
-- none; limit 0: not counted; client, max_clients: the report's client row,
-- as report.lua takes them; charge: how many requests to count at once (the
-- node's lease, count_step).
-- -> {allowed, in_window, oldest, status, log, due, charged}: the rate
-- decision (count_step; 1, 0, 0 when not counted), then report_step's
-- answer, or for a request that reports nothing (or is refused) {0 or -1
-- (no realm), the realm's log sequence number, 0}: the read barrier of the
-- request; then how many requests were counted.
local allowed, n, oldest, charged = 1, 0, '0', 0
local limit = tonumber(ARGV[6])
if limit > 0 then
  allowed, n, oldest, charged =
      count_step(KEYS[8], KEYS[9], ARGV[5], limit, ARGV[7], ARGV[10])
end
if allowed == 1 and ARGV[4] ~= '-' then
  local r = report_step(KEYS, ARGV[1], ARGV[2], ARGV[3], ARGV[4] == 'a',
                        ARGV[8], ARGV[9])
  return {allowed, n, oldest, r[1], r[2], r[3], charged}
end
local meta = redis.call('HMGET', KEYS[1], 'seq', 'log')
if not meta[1] then return {allowed, n, oldest, -1, 0, 0, charged} end
return {allowed, n, oldest, 0, tonumber(meta[2] or '0'), 0, charged}
