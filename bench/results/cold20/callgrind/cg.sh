#!/usr/bin/env bash
# usage: BUILD=build/release cg.sh PRESENCED OUTDIR : callgrind instruction counts per ping, 20k users, cold auth
set -euo pipefail
P="$1"; O="$2"; B="${BUILD:-build/release}"  # loadgen, bench_populate
W=$O/work; rm -rf $W; mkdir -p $W
N=20000; M=20000
$B/bench_populate --data $W/data --users $N > /dev/null
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$O/callgrind.out \
  $P --listen 127.0.0.1:0 --data $W/data > $W/out 2> $W/err &
pid=$!
for i in $(seq 1 60000); do grep -q "listening on" $W/out && break; sleep 0.05; done
port=$(grep -m1 "listening on" $W/out | sed 's/.*://')
$B/loadgen --port $port --mode closed --users $N --warmup-only --connections 16 --threads 1 > $O/warmup.json 2>&1
callgrind_control -i on $pid > /dev/null
$B/loadgen --port $port --mode closed --users $N --base-cursor $N --no-warmup --max-requests $M --duration 300 --connections 16 --threads 1 > $O/measured.json 2>&1
callgrind_control -d $pid > /dev/null
callgrind_control -i off $pid > /dev/null
kill $pid; wait $pid || true
rm -rf $W
tail -1 $O/measured.json
