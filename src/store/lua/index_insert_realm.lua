-- index_insert_realm: KEYS subdomains realms next_realm; ARGV lower
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return -1 end
local id = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], ARGV[1], id)
redis.call('HSET', KEYS[2], id, ARGV[1])
return id
