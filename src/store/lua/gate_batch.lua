-- gate_batch: the store steps of API requests of one realm in scale-out
-- mode, one or several in one script (core/gate_batcher.h), in order.
-- KEYS the realm's (prelude.lua), then each request's rate log and its
-- counter (RealmRateKeys: on the realm's slot), two per request, in the
-- requests' order. ARGV realm, then nine per request: uid now report
-- rate_now limit window client max_clients charge; report: 'a' active, 'i'
-- idle, '-' none; limit 0: not counted; client, max_clients: the report's
-- client row, as report.lua takes them; charge: how many requests to count
-- at once (the node's lease, count_step).
-- -> one entry per request, in order: {allowed, in_window, oldest, status,
-- log, due, charged}: the rate decision (count_step; 1, 0, 0 when not
-- counted), then report_step's answer, or for a request that reports
-- nothing (or is refused) {0 or -1 (no realm), the realm's log sequence
-- number, 0}: the read barrier of the request; then how many requests were
-- counted (gate_step in prelude.lua). Each step sees the steps before it.
-- A step that raises an error of its own (its data: WRONGTYPE, ERR, or a
-- Lua error) answers an error reply in its place; the steps of the others
-- stand (one that failed half-way keeps what it wrote, as a failed script
-- does). An error of the server (READONLY from a demoted master, OOM,
-- NOREPLICAS, ...) fails the whole script with that reply, as it would fail
-- any step, so that the caller treats it as before (READONLY: sent again to
-- the new master; a replica refused every write, so nothing was written).
-- One more KEY, optional, after the rate keys (on the realm's slot): where
-- the answer is kept for 10 s under the caller's token for this batch.
-- A batch sent again with the same token (its connection broke in flight:
-- Sentinel kills the clients of the master it demotes) gets that answer and
-- steps nothing twice. The key is written with the steps, so a failover
-- that loses them loses it too, and the batch then runs on the new master.
local count = (#ARGV - 1) / 9
local answer_key = KEYS[8 + 2 * count]
if answer_key then
  local kept = redis.call('GET', answer_key)
  if kept then return cmsgpack.unpack(kept) end
end
local out = {}
for i = 0, count - 1 do
  local a = 1 + i * 9
  local ok, r = pcall(gate_step, KEYS, KEYS[8 + 2 * i], KEYS[9 + 2 * i],
                      ARGV[1], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
                      ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7],
                      ARGV[a + 8], ARGV[a + 9])
  if ok then
    out[i + 1] = r
  else
    local msg = r
    if type(r) == 'table' then msg = r.err end
    msg = tostring(msg)
    local code = string.match(msg, '^(%u+) ')
    if code and code ~= 'WRONGTYPE' and code ~= 'ERR' then
      error({err = msg})
    end
    out[i + 1] = {err = 'gate step: ' .. msg}
  end
end
if answer_key then
  -- msgpack keeps integers exact (micros need 16 digits) and the error
  -- entries as {err = ...} tables, so the answer given again is the same.
  redis.call('SET', answer_key, cmsgpack.pack(out), 'PX', 10000)
end
return out
