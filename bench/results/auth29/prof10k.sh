#!/usr/bin/env bash
# usage: [EXTRA="SERVER FLAGS"] prof10k.sh BIN OUT [SECONDS]
# A profile of run-all.sh's 10k pings: a realm of 10,000 users
# (BIN/bench_populate), presenced with one I/O thread and its defaults
# (plus EXTRA), 6,000 users warmed, then 64 keep-alive connections pinging
# them in rotation (0.01% of pings from users coming online, which write)
# for at most 300,000 pings while `perf record -e cpu-clock -F 4999` samples
# the server for SECONDS. OUT/load.json is loadgen's answer, OUT/perf.data
# the profile; samples per request = a symbol's samples / load.json's "ok".
set -euo pipefail
B="$1"; O="$2"; S="${3:-6}"
mkdir -p "$O"; T="$(mktemp -d)"; trap 'kill $pid 2>/dev/null; rm -rf "$T"' EXIT
"$B/bench_populate" --data "$T/data" --users 10000 > /dev/null
"$B/presenced" --listen 127.0.0.1:0 --data "$T/data" --threads 1 ${EXTRA:-} > "$T/out" 2> "$T/err" &
pid=$!
for i in $(seq 1 2000); do grep -q "listening on" "$T/out" && break; sleep 0.01; done
port=$(grep -m1 "listening on" "$T/out" | sed 's/.*://')
"$B/loadgen" --port "$port" --label w --connections 64 --mode closed --users 6000 --warmup-only > /dev/null 2>&1
perf record -e cpu-clock -F 4999 -p $pid -o "$O/perf.data" -- sleep "$S" 2> /dev/null &
pp=$!
"$B/loadgen" --port "$port" --server-pid $pid --label p --connections 64 --mode closed --users 6000 \
  --write-fraction 0.0001 --base-cursor 10000 --duration "$S" --no-warmup --cold-first 6000 --cold-count 500 --max-requests 300000 > "$O/load.json" 2> "$O/load.log"
wait $pp || true
tail -1 "$O/load.log"
perf report -i "$O/perf.data" --no-children --sort dso,symbol 2>/dev/null | grep -v "^#" | grep -v "^$" | head -70 > "$O/report.txt"
