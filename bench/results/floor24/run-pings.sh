#!/usr/bin/env bash
# floor24, with the million run's pings: as run.sh (19,000 watchers, 30
# events/s: 570k requested deliveries/s), plus 16,700 pings/s over 1,000,000
# users who are online already (so a ping writes nothing), presenced and the
# floor stand-in on two threads interleaved, one bench/churn.sh run per
# exclusive hold of the machine lock, the load average before each.
# Usage: run-pings.sh OUT RUNS BIN LOCK   (BIN: loadgen, bench_populate,
#   presenced and fanout_floor from one release build)
set -euo pipefail
out="$1" runs="$2" bin="$3" lock="$4"
here="$(cd "$(dirname "$0")/../../.." && pwd)"
mkdir -p "$out"
w=19000 r=30
for run in $(seq 1 "$runs"); do
  for server in floor2 presenced; do
    case "$server" in
      presenced) cmd=("$bin/presenced") ;;
      floor2) cmd=("$bin/fanout_floor" --churn --threads 2) ;;
    esac
    label="$server-$w-$r-pings-$run"
    flock -x "$lock" bash -c '
      echo "$(date -u +%T) $(cut -d" " -f1-3 /proc/loadavg) before $0" >> "$1/loads.txt"
      shift
      exec "$@"' "$label" "$out" \
      bash "$here/bench/churn.sh" --watchers "$w" --rate "$r" \
      --ping-rate 16700 --ping-users 1000000 --duration 30 --label "$label" \
      --out "$out/$server-$w-$r-pings" "$bin/loadgen" "$bin/bench_populate" \
      "${cmd[@]}" > /dev/null
    grep "^loadgen churn" "$out/$server-$w-$r-pings/churn.log" | tail -1 |
      sed "s/^/$label /"
  done
done
