-- index_rename_realm: KEYS subdomains realms; ARGV id lower
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur then return -1 end
local owner = redis.call('HGET', KEYS[1], ARGV[2])
if owner and owner ~= ARGV[1] then return -2 end
if cur ~= ARGV[2] then
  redis.call('HDEL', KEYS[1], cur)
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return 1
