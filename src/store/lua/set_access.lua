-- set_access: KEYS the realm's (prelude.lua); ARGV realm viewer list
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
