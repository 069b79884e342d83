#!/usr/bin/env bash
# usage: ab10k.sh OUT REPS NAME=BIN[:EXTRA] ...
# prof10k.sh's load without the profiler, REPS times for each server in
# turn (a fresh copy of one populated realm each run): one line per run,
# loadgen's JSON appended to OUT/load.jsonl. EXTRA: flags for presenced.
set -euo pipefail
O="$1"; R="$2"; shift 2; mkdir -p "$O"
T="$(mktemp -d)"; trap 'kill $pid 2>/dev/null; rm -rf "$T"' EXIT
B0="${1#*=}"; B0="${B0%%:*}"
"$B0/bench_populate" --data "$T/data0" --users 10000 > /dev/null
for r in $(seq 1 "$R"); do
  for spec in "$@"; do
    name="${spec%%=*}"; rest="${spec#*=}"; B="${rest%%:*}"; X=""; [[ "$rest" == *:* ]] && X="${rest#*:}"
    rm -rf "$T/data"; cp -r "$T/data0" "$T/data"
    "$B/presenced" --listen 127.0.0.1:0 --data "$T/data" --threads 1 $X > "$T/out" 2> "$T/err" &
    pid=$!
    for i in $(seq 1 2000); do grep -q "listening on" "$T/out" && break; sleep 0.01; done
    port=$(grep -m1 "listening on" "$T/out" | sed 's/.*://')
    "$B/loadgen" --port "$port" --label w --connections 64 --mode closed --users 6000 --warmup-only > /dev/null 2>&1
    "$B/loadgen" --port "$port" --server-pid $pid --label "$name" --connections 64 --mode closed --users 6000 \
      --write-fraction 0.0001 --base-cursor 10000 --duration 5 --no-warmup --cold-first 6000 --cold-count 500 --max-requests 150000 >> "$O/load.jsonl" 2> "$T/log"
    echo "$name $(tail -1 $T/log | grep -o '= [0-9]* req/s.*' | sed 's/latency.*CPU/CPU/')"
    kill $pid; wait $pid || true
  done
done
