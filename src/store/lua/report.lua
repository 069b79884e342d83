-- report: KEYS the realm's (prelude.lua); ARGV realm uid now active -> {status, log, due}
-- (report_step in prelude.lua)
return report_step(KEYS, ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1')
