#!/usr/bin/env bash
# CI smoke run of the benchmarks (CTest: bench_smoke): keeps bench/ compiling
# and running with tiny sizes. It asserts that everything answers, never how
# fast: timings are not tested. Needs no nginx and no gnuplot.
#
#   CORE_BENCH, LOADGEN, BENCH_POPULATE, PRESENCED: the binaries (CTest sets
#   them; by default those of build/release).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
CORE_BENCH="${CORE_BENCH:-$root/build/release/core_bench}"
LOADGEN="${LOADGEN:-$root/build/release/loadgen}"
BENCH_POPULATE="${BENCH_POPULATE:-$root/build/release/bench_populate}"
PRESENCED="${PRESENCED:-$root/build/release/presenced}"

work="$(mktemp -d /tmp/bench-smoke.XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "bench smoke: FAILED: $*" >&2
  for f in "$work"/*.err; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }
  done
  exit 1
}

# A field of a one-line JSON object (numbers only).
field() { sed -n "s/.*\"$2\":\(-\{0,1\}[0-9.]*\).*/\1/p" "$1"; }

echo "bench smoke: micro-benchmarks (tiny sizes)"
timeout 60 "$CORE_BENCH" --scale=tiny --benchmark_min_time=0.01 \
  --benchmark_out="$work/micro.json" --benchmark_out_format=json \
  > "$work/micro.out" 2> "$work/micro.err" || fail "core_bench"
grep -q '"name": "BM_IncrementalPing/1000"' "$work/micro.json" ||
  fail "core_bench wrote no BM_IncrementalPing/1000"
if grep -q '"error_occurred": true' "$work/micro.json"; then
  fail "a micro-benchmark reported an error"
fi

# The server runs with its defaults, the rate limit (200 requests per user
# per minute) included: the closed loop spreads over 3,000 users, so even a
# fast build stays far below it in its one second.
echo "bench smoke: a 4,000-user server"
timeout 60 "$BENCH_POPULATE" --data "$work/data" --users 4000 \
  > "$work/populate.json" 2> "$work/populate.err" || fail "bench_populate"
"$PRESENCED" --listen 127.0.0.1:0 --data "$work/data" \
  --threads 2 > "$work/server.out" 2> "$work/server.err" &
server_pid=$!
port=""
for _ in $(seq 1 300); do
  port="$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' \
    "$work/server.out")"
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || fail "presenced exited"
  sleep 0.1
done
[ -n "$port" ] || fail "presenced did not listen within 30 s"

echo "bench smoke: loadgen closed loop, 1 s"
timeout 60 "$LOADGEN" --mode closed --port "$port" --connections 8 \
  --duration 1 --users 3000 --cold-first 3000 --cold-count 100 \
  --write-fraction 0.01 --base-cursor 4000 --server-pid "$server_pid" \
  --label smoke-closed > "$work/closed.json" 2> "$work/closed.err" ||
  fail "loadgen closed"
[ "$(field "$work/closed.json" errors)" = "0" ] || fail "closed: errors"
ok="$(field "$work/closed.json" ok)"
[ "${ok:-0}" -gt 0 ] || fail "closed: no answer"

echo "bench smoke: loadgen open loop, 1 s at 200/s"
timeout 60 "$LOADGEN" --mode open --rate 200 --port "$port" --connections 8 \
  --duration 1 --users 100 --cold-first 3100 --cold-count 50 \
  --write-fraction 0.01 --base-cursor 4000 --no-warmup \
  --label smoke-open > "$work/open.json" 2> "$work/open.err" ||
  fail "loadgen open"
[ "$(field "$work/open.json" errors)" = "0" ] || fail "open: errors"

echo "bench smoke: loadgen fan-out, 20 parked polls"
timeout 60 "$LOADGEN" --mode fanout --port "$port" --watchers 20 \
  --watch-first 0 --trigger-first 3900 --rounds 2 --settle-ms 300 \
  --server-pid "$server_pid" --label smoke-fanout \
  > "$work/fanout.json" 2> "$work/fanout.err" || fail "loadgen fanout"
[ "$(field "$work/fanout.json" deliveries)" = "40" ] || fail "fanout: deliveries"

kill "$server_pid"
wait "$server_pid" || fail "presenced did not exit 0 on SIGTERM"
server_pid=""
cat "$work/closed.json" "$work/open.json" "$work/fanout.json"
echo "bench smoke: 1 passed, 0 failed"
