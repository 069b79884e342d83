-- live_nodes: KEYS nodes node_deadlines
-- Every node whose registration has not expired (Redis's clock), as a flat
-- list: id, address, id, address, ...
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
local out = {}
for _, id in ipairs(ids) do
  local address = redis.call('HGET', KEYS[1], id)
  if address then
    out[#out + 1] = id
    out[#out + 1] = address
  end
end
return out
