#!/usr/bin/env bash
# a 5-minute million run with 10-s flat perf windows of the server every 20 s in the measured part
cd REPO
out=OUT/run; rm -rf $out OUT/perf; mkdir -p OUT/perf
cat /proc/loadavg > OUT/load.txt
( until [ -f $out/million.log ] && grep -q 'measuring for' $out/million.log; do sleep 1; done
  pid=$(pgrep -n -x presenced); t0=$(date +%s)
  for i in $(seq 1 14); do
    s=$(( $(date +%s) - t0 ))
    perf record -F 499 -p $pid -o OUT/perf/w$i.data -- sleep 10 > /dev/null 2>&1
    echo "w$i start_s=$s" >> OUT/perf/windows.txt
    sleep 10
  done ) &
bench/million.sh --build-dir build/release --minutes 5 --probe 20 --memory-interval 2 --out $out > OUT/stdout.txt 2>&1
