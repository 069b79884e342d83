-- register_node: KEYS next_node nodes; ARGV address
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], id, ARGV[1])
return id
