#!/bin/bash
# Inside the exclusive lock: a short million run with the head binary, and
# 2 s of malloc/realloc uprobes (sizes and call stacks) in its measured part.
cd WORKDIR
cat /proc/loadavg > OUT/diag-perf.load; date >> OUT/diag-perf.load
bench/million.sh --build-dir OUT/base --minutes 1 --memory-interval 2 --out OUT/diag-perf > OUT/diag-perf.out 2>&1 &
mpid=$!
for i in $(seq 600); do grep -q 'measuring for' OUT/diag-perf/million.log 2>/dev/null && break; sleep 1; done
sleep 15
spid=$(pgrep -f '^OUT/base/presenced --listen' | head -1)
echo "server $spid" >> OUT/diag-perf.load
perf record -e probe_libc:malloc -e probe_libc:realloc -g -p "$spid" -o OUT/malloc.data -- sleep 2 > OUT/perf-rec.log 2>&1
wait $mpid
date >> OUT/diag-perf.load
