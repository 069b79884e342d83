-- count_request: KEYS requests n; ARGV now limit window -> {allowed, n, oldest}
-- (count_step in prelude.lua)
local allowed, n, oldest = count_step(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), ARGV[3])
return {allowed, n, oldest}
