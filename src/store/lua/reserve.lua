-- reserve: KEYS the realm's (prelude.lua); ARGV reserved
local cur = redis.call('HGET', KEYS[1], 'reserved')
if not cur then return -1 end
if tonumber(ARGV[1]) > tonumber(cur) then
  redis.call('HSET', KEYS[1], 'reserved', ARGV[1])
end
return 1
