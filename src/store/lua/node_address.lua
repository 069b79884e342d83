-- node_address: KEYS nodes node_deadlines; ARGV node
-- The address node ARGV[1] registered, or nil if it never did or its
-- registration is past its deadline (Redis's clock).
local deadline = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not deadline then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(deadline) <= now then return false end
return redis.call('HGET', KEYS[1], ARGV[1])
