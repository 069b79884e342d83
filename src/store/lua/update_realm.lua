-- update_realm: KEYS the realm's (prelude.lua); ARGV id subdomain name pd deact
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'subdomain', ARGV[2], 'name', ARGV[3],
    'presence_disabled', ARGV[4], 'deactivated', ARGV[5])
local seq = next_log(KEYS)
redis.call('PUBLISH', FEED, field('r', ARGV[1]) .. field('s', seq) ..
    realm_field(ARGV[1], meta_table(KEYS[1])))
return 1
