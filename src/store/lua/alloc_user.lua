-- alloc_user: KEYS next_user user_realm; ARGV realm
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], id, ARGV[1])
return id
