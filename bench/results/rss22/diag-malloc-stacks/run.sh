#!/bin/bash
# Inside the exclusive lock: a small million run (100k users) with the base
# binary, and 3 s of malloc uprobes unwound with DWARF (every 20th call).
cd WORKDIR
cat /proc/loadavg > OUT/diag-perf2.load; date >> OUT/diag-perf2.load
bench/million.sh --build-dir OUT/base --users 100000 --watchers 2000 --warmup 90 --max-warmup 150 --seconds 30 --out OUT/diag-perf2 > OUT/diag-perf2.out 2>&1 &
mpid=$!
for i in $(seq 400); do grep -q 'measuring for' OUT/diag-perf2/million.log 2>/dev/null && break; sleep 1; done
sleep 5
spid=$(pgrep -f '^OUT/base/presenced --listen' | head -1)
echo "server $spid" >> OUT/diag-perf2.load
perf record -e probe_libc:malloc -c 20 --call-graph dwarf,4096 -p "$spid" -o OUT/malloc2.data -- sleep 3 > OUT/perf-rec2.log 2>&1
wait $mpid
date >> OUT/diag-perf2.load
