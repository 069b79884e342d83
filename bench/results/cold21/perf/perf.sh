#!/usr/bin/env bash
# usage: BUILD=build/release perf.sh PRESENCED OUTDIR : perf profile of cold pings (100k users, 64 conns, 2 threads)
set -euo pipefail
P="$1"; O="$2"; B="${BUILD:-build/release}"
W=$O/work; rm -rf $W; mkdir -p $W
N=100000
$B/bench_populate --data $W/data --users $N > /dev/null
$P --listen 127.0.0.1:0 --data $W/data > $W/out 2> $W/err &
pid=$!
for i in $(seq 1 6000); do grep -q "listening on" $W/out && break; sleep 0.05; done
port=$(grep -m1 "listening on" $W/out | sed 's/.*://')
$B/loadgen --port $port --mode closed --users $N --warmup-only --connections 64 --threads 2 > $O/warmup.json 2>&1
t0=$(awk '{print $14, $15}' /proc/$pid/stat)
perf record -g -o $O/perf.data -p $pid -- sleep 6 > /dev/null 2>&1 &
ppid=$!
$B/loadgen --port $port --mode closed --users $N --base-cursor $N --no-warmup --duration 5 --connections 64 --threads 2 > $O/measured.json 2>&1
t1=$(awk '{print $14, $15}' /proc/$pid/stat)
wait $ppid || true
echo "utime stime before: $t0 after: $t1" > $O/cpu.txt
kill $pid; wait $pid || true
rm -rf $W
tail -1 $O/measured.json; cat $O/cpu.txt
