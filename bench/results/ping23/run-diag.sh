#!/usr/bin/env bash
# A 4-minute million run with uprobes on the server's periodic work (the
# transition tick's slices, the flush and its CollectDirty, heap samples and
# trims), recorded on CLOCK_MONOTONIC like bench/ping_probe.py's pings, so
# that analyze.py can line the prober's slow pings up with them.
# Usage (from the repository root, as root, under the machine lock):
#   bench/results/ping23/run-diag.sh BUILD_DIR OUT
set -u
bin=$1; out=$2
B=$bin/presenced
perf probe -q -d 'probe_presenced:*' 2> /dev/null
add() { perf probe -q -x "$B" --no-demangle -a "$1=$2" || echo "probe $1 failed"; }
tick=_ZN8presence3app12Housekeeping20TickTransitionsSliceEv
flush=_ZN8presence11LocalWriter5FlushEv
collect=_ZN8presence5Realm12CollectDirtyERSt6vectorINS_5store14PresenceRecordESaIS3_EERS1_INS2_20ClientPresenceRecordESaIS7_EERNS2_14SequenceRecordE
sample=_ZN8presence3api7Metrics10SampleHeapEv
trim=_ZN8presence8TrimHeapEv
for p in tick flush collect sample trim; do
  add "$p" "${!p}"
  add "${p}_ret" "${!p}%return"
done
mkdir -p "$out"
perf probe -l > "$out/probes-defined.txt" 2>&1
cat /proc/loadavg > "$out/load-before.txt"
bench/million.sh --build-dir "$bin" --minutes 4 --probe 20 --memory-interval 2 \
  --out "$out" > "$out/stdout.txt" 2>&1 &
mpid=$!
while [ ! -s "$out/metrics-start.txt" ]; do
  kill -0 $mpid 2> /dev/null || { echo "million.sh ended early"; exit 1; }
  sleep 1
done
spid=$(pgrep -n -x presenced)
perf record -q -k CLOCK_MONOTONIC -e 'probe_presenced:*' -p "$spid" \
  -o "$out/probes.data" -- sleep 150 > /dev/null 2>&1
wait $mpid
perf script -i "$out/probes.data" -F tid,time,event > "$out/probes.txt" 2> /dev/null
rm -f "$out/probes.data"
perf probe -q -d 'probe_presenced:*'
