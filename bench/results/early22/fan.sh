#!/usr/bin/env bash
# early22's parked-poll memory A/B: for each run, base then head, one
# bench/fanout-ab.sh run (10,000 parked polls, 5 rounds of one event to all)
# per exclusive hold of the machine lock (load average before it in
# OUT/loads.txt). Its rss_per_parked_poll is the figure BENCHMARKS.md's
# "<= 4 KB per parked poll" row cites.
# Usage: fan.sh OUT RUNS BASE HEAD LOCK   (as run.sh)
set -euo pipefail
out="$1" runs="$2" base="$3" head="$4" lock="$5"
here="$(cd "$(dirname "$0")/../../.." && pwd)"
mkdir -p "$out"
for run in $(seq 1 "$runs"); do
  for server in base head; do
    dir=$base
    [ "$server" = head ] && dir=$head
    label="fan-$server-$run"
    flock -x "$lock" bash -c '
      echo "$(date -u +%T) $(cut -d" " -f1-3 /proc/loadavg) before $0" >> "$1/loads.txt"
      shift
      exec "$@"' "$label" "$out" \
      bash "$here/bench/fanout-ab.sh" --runs 1 --watchers 10000 \
      --out "$out/$label" "$base/loadgen" "$base/bench_populate" \
      "$server=$dir/presenced" > "$out/$label.log" 2>&1
    grep -o '"label":"[^"]*"\|"p99_ms":[0-9.]*\|"rss_per_parked_poll":[0-9.]*' \
      "$out/$label/fanout.jsonl" | tr '\n' ' '
    echo
  done
done
