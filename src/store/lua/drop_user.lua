-- drop_user: KEYS the realm's (prelude.lua); ARGV realm uid encoded(the user as it is now)
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
