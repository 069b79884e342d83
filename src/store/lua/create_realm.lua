-- create_realm: KEYS the realm's (prelude.lua); ARGV id subdomain name pd deact created last reserved
redis.call('HSET', KEYS[1], 'subdomain', ARGV[2], 'name', ARGV[3],
    'presence_disabled', ARGV[4], 'deactivated', ARGV[5],
    'date_created', ARGV[6], 'seq', ARGV[7], 'reserved', ARGV[8])
redis.call('PUBLISH', FEED, field('r', ARGV[1]) .. field('s', '0') ..
    realm_field(ARGV[1], meta_table(KEYS[1])))
return 1
