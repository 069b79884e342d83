-- read_realm: KEYS the realm's (prelude.lua); ARGV min-score -> {meta, users, {uid, row}..., access, clients}
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
-- Every user's client rows (few users have any); the caller keeps those
-- changed after min-score.
local clients = redis.call('HGETALL', KEYS[7])
return {meta, users, rows, access, clients}
