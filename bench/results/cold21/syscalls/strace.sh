#!/usr/bin/env bash
# usage: BUILD=build/release strace.sh PRESENCED OUTDIR : system calls per cold ping (20k users, 20k measured pings)
set -euo pipefail
P="$1"; O="$2"; B="${BUILD:-build/release}"
W=$O/work; rm -rf $W; mkdir -p $W
N=20000; M=20000
$B/bench_populate --data $W/data --users $N > /dev/null
$P --listen 127.0.0.1:0 --data $W/data > $W/out 2> $W/err &
pid=$!
for i in $(seq 1 6000); do grep -q "listening on" $W/out && break; sleep 0.05; done
port=$(grep -m1 "listening on" $W/out | sed 's/.*://')
$B/loadgen --port $port --mode closed --users $N --warmup-only --connections 16 --threads 1 > $O/warmup.json 2>&1
strace -c -f -p $pid -o $O/strace.txt &
spid=$!
sleep 1
$B/loadgen --port $port --mode closed --users $N --base-cursor $N --no-warmup --max-requests $M --duration 300 --connections 16 --threads 1 > $O/measured.json 2>&1
kill -INT $spid; wait $spid || true
kill $pid; wait $pid || true
rm -rf $W
cat $O/strace.txt
