-- write_presence: KEYS the realm's (prelude.lua); ARGV has_seq last reserved nrows {uid value seq}*nrows {uid clients}...
local cur = redis.call('HGET', KEYS[1], 'reserved')
if not cur then return -1 end
local last_row = 4 + 3 * tonumber(ARGV[4])
for i = 5, last_row, 3 do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[5], ARGV[i + 2], ARGV[i])
end
for i = last_row + 1, #ARGV, 2 do
  redis.call('HSET', KEYS[7], ARGV[i], ARGV[i + 1])
end
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'seq', ARGV[2])
  if tonumber(ARGV[3]) > tonumber(cur) then
    redis.call('HSET', KEYS[1], 'reserved', ARGV[3])
  end
end
return 1
