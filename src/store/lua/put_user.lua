-- put_user: KEYS the realm's (prelude.lua); ARGV realm uid lower encoded
-- must_exist [expected]: with `expected`, writes only if the stored value is
-- exactly that (compare and set), else returns -3.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local old = redis.call('HGET', KEYS[2], ARGV[2])
if ARGV[5] == '1' and not old then return -1 end
if ARGV[6] and old ~= ARGV[6] then return -3 end
local owner = redis.call('HGET', KEYS[3], ARGV[3])
if owner and owner ~= ARGV[2] then return -2 end
if old then
  local ol = user_lower(old)
  if ol ~= ARGV[3] and redis.call('HGET', KEYS[3], ol) == ARGV[2] then
    redis.call('HDEL', KEYS[3], ol)
  end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[2])
local seq = next_log(KEYS)
redis.call('PUBLISH', FEED, field('r', ARGV[1]) .. field('s', seq) ..
    field('U', ARGV[4]))
return 1
