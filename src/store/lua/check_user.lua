-- check_user: KEYS the realm's (prelude.lua); ARGV lower
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return -2 end
return 1
