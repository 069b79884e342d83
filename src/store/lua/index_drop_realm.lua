-- index_drop_realm: KEYS subdomains realms; ARGV id lower
if redis.call('HGET', KEYS[1], ARGV[2]) == ARGV[1] then
  redis.call('HDEL', KEYS[1], ARGV[2])
end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
