#!/usr/bin/env bash
# floor24: the churn floor at the million run's delivery load (19,000
# watchers, 30 events/s: 570k requested deliveries/s), presenced and the
# floor stand-in on two threads interleaved, one bench/churn.sh run per
# exclusive hold of the machine lock, the load average before each.
# Usage: run.sh OUT RUNS BIN LOCK [PING_RATE PING_USERS SUFFIX]
#   (BIN: loadgen, bench_populate, presenced and fanout_floor from one
#   release build; the ping load defaults to 100/s over 10,000 users, and
#   SUFFIX is added to each run's label and directory: run-pings.sh)
set -euo pipefail
out="$1" runs="$2" bin="$3" lock="$4"
ping_rate="${5:-100}" ping_users="${6:-10000}" suffix="${7:-}"
here="$(cd "$(dirname "$0")/../../.." && pwd)"
mkdir -p "$out"
w=19000 r=30
for run in $(seq 1 "$runs"); do
  for server in floor2 presenced; do
    case "$server" in
      presenced) cmd=("$bin/presenced") ;;
      floor2) cmd=("$bin/fanout_floor" --churn --threads 2) ;;
    esac
    label="$server-$w-$r$suffix-$run"
    flock -x "$lock" bash -c '
      echo "$(date -u +%T) $(cut -d" " -f1-3 /proc/loadavg) before $0" >> "$1/loads.txt"
      shift
      exec "$@"' "$label" "$out" \
      bash "$here/bench/churn.sh" --watchers "$w" --rate "$r" \
      --ping-rate "$ping_rate" --ping-users "$ping_users" --duration 30 --label "$label" \
      --out "$out/$server-$w-$r$suffix" "$bin/loadgen" "$bin/bench_populate" \
      "${cmd[@]}" > /dev/null
    grep "^loadgen churn" "$out/$server-$w-$r$suffix/churn.log" | tail -1 |
      sed "s/^/$label /"
  done
done
