-- fence: KEYS the realm's (prelude.lua); ARGV realm log update_id
-- -> {log taken, fences}, or {-1, 0} if there is no such realm.
-- After a failover that lost the last writes (replication is asynchronous),
-- the realm's counters can be behind numbers nodes already applied; the
-- next writes would take them again, and nodes would drop those entries as
-- duplicates. Raises 'log' and 'seq' (the presence update id) to at least
-- the given ones, counts the fence in 'fences', takes the next log number
-- and publishes it with the count ('F'): every node reads the realm whole.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
local m = redis.call('HMGET', KEYS[1], 'log', 'seq')
if tonumber(m[1] or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'log', ARGV[2])
end
if tonumber(m[2] or '0') < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'seq', ARGV[3])
end
local fences = redis.call('HINCRBY', KEYS[1], 'fences', 1)
local log = next_log(KEYS)
redis.call('PUBLISH', FEED,
           field('r', ARGV[1]) .. field('s', log) .. field('F', fmt(fences)))
return {tonumber(log), fences}
