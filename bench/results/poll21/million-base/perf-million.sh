#!/usr/bin/env bash
# perf + utime/stime of the server during a 2-minute million run
set -u
O=OUT/million-base; mkdir -p $O
cd WORKDIR
cat /proc/loadavg > $O/load-before.txt
bash bench/million.sh --build-dir BASE --minutes 2 --probe 20 --out $O > $O/run.out 2>&1 &
mpid=$!
for i in $(seq 900); do grep -q 'measuring for' $O/million.log 2>/dev/null && break; sleep 1; done
spid=$(pgrep -f '^BASE/presenced')
echo "server $spid" > $O/perf-info.txt
sleep 5
read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u0 s0 _ < <(cut -d')' -f2 /proc/$spid/stat | sed 's/^ //; s/^/x x /')
t0=$(date +%s.%N)
cat /proc/loadavg >> $O/perf-info.txt
perf record -e cpu-clock -g -o $O/perf.data -p $spid -- sleep 90 > $O/perf-record.log 2>&1
t1=$(date +%s.%N)
read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u1 s1 _ < <(cut -d')' -f2 /proc/$spid/stat | sed 's/^ //; s/^/x x /')
cat /proc/loadavg >> $O/perf-info.txt
echo "utime_ticks $((u1-u0)) stime_ticks $((s1-s0)) wall $(echo "$t1 - $t0" | bc) clk_tck $(getconf CLK_TCK)" >> $O/perf-info.txt
wait $mpid
cat /proc/loadavg > $O/load-after.txt
perf report -i $O/perf.data --no-children --sort dso,symbol --percent-limit 0.3 --stdio -g none 2>/dev/null | grep -v '^$' | head -200 > $O/perf-dso-symbol.txt
perf report -i $O/perf.data --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^$' | head -40 > $O/perf-dso.txt
echo done >> $O/perf-info.txt
