-- report: KEYS the realm's (prelude.lua); ARGV realm uid now active client max_clients -> {status, log, due}
-- client: the reporting client's name ('' for none: no client row) and the
-- bound on a user's client rows (report_step and the per-client rows:
-- prelude.lua).
return report_step(KEYS, ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1', ARGV[5],
                   ARGV[6])
