-- count_request: KEYS requests n; ARGV now limit window
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now - window))
local n = redis.call('ZCARD', KEYS[1])
local allowed = 0
if n < tonumber(ARGV[2]) then
  local id = redis.call('INCR', KEYS[2])
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1] .. ':' .. id)
  n = n + 1
  allowed = 1
end
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
redis.call('PEXPIRE', KEYS[2], math.ceil(window / 1000) + 1000)
local oldest = ARGV[1]
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 2 then oldest = first[2] end
return {allowed, n, oldest}
