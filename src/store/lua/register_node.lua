-- register_node: KEYS next_node nodes node_deadlines; ARGV node address ttl_ms
-- Registers node ARGV[1] (0: a new node, which takes the next id) at
-- ARGV[2] until Redis's clock passes now + ttl_ms, and first drops every
-- registration already past its deadline. Returns the node id.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
if #dead > 0 then
  redis.call('HDEL', KEYS[2], unpack(dead))
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
end
local id = tonumber(ARGV[1])
if id == 0 then id = redis.call('INCR', KEYS[1]) end
redis.call('HSET', KEYS[2], id, ARGV[2])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), id)
return id
