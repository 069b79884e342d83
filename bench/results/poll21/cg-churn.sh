#!/usr/bin/env bash
# usage: BUILD=build/release cg-churn.sh PRESENCED OUTDIR [W] [RATE] [DURATION]
# Callgrind instructions per answer cycle: presenced under callgrind,
# loadgen --mode churn with W watchers (default 300) re-polling on every
# answer, RATE users/s coming online (default 10), 20 pings/s over 100
# users. Instrumentation goes on once every connection is open (registration
# done), dumped when loadgen ends; OUTDIR/churn.json has loadgen's answers.
set -euo pipefail
P="$1"; O="$2"; W="${3:-300}"; R="${4:-10}"; D="${5:-20}"
B="${BUILD:-build/release}"
mkdir -p "$O"; T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
PU=100; ON=$(( R * D + 100 )); N=$(( PU + W + ON ))
"$B/bench_populate" --data "$T/data" --users "$N" > "$T/populate.json"
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$O/callgrind.out" \
  "$P" --listen 127.0.0.1:0 --data "$T/data" > "$T/out" 2> "$T/err" &
pid=$!
for i in $(seq 1 6000); do grep -q "listening on" "$T/out" && break; sleep 0.05; done
port=$(grep -m1 "listening on" "$T/out" | sed 's/.*://')
"$B/loadgen" --mode churn --port "$port" --server-pid "$pid" --watchers "$W" \
  --watch-first "$PU" --trigger-first $(( PU + W )) --trigger-rate "$R" \
  --rate 20 --users "$PU" --connections 64 --base-cursor "$N" \
  --duration "$D" --label cg > "$O/churn.json" 2> "$O/churn.log" &
lg=$!
want=$(( W + 16 + 64 ))
for i in $(seq 1 6000); do
  n=$(ss -Htn state established "( sport = :$port )" | wc -l)
  [ "$n" -ge "$want" ] && break; sleep 0.05
done
callgrind_control -i on "$pid" > /dev/null
wait "$lg" || true
callgrind_control -d "$pid" > /dev/null
callgrind_control -i off "$pid" > /dev/null
kill "$pid"; wait "$pid" || true
tail -1 "$O/churn.log"
