#!/usr/bin/env bash
# floor22's interleaved churn sittings: for each run, each shape, each
# server in turn (presenced with its defaults, the floor on 1 and 2
# threads), one bench/churn.sh run per exclusive hold of the machine lock.
# Usage: run.sh OUT RUNS BUILD LOCK   (BUILD: a release build directory)
set -euo pipefail
out="$1" runs="$2" build="$3" lock="$4"
here="$(cd "$(dirname "$0")/../../.." && pwd)"
mkdir -p "$out"
for run in $(seq 1 "$runs"); do
  for shape in "19800 20" "10000 50"; do
    set -- $shape
    w="$1" r="$2"
    for server in presenced floor1 floor2; do
      case "$server" in
        presenced) cmd=("$build/presenced") ;;
        floor1) cmd=("$build/fanout_floor" --churn --threads 1) ;;
        floor2) cmd=("$build/fanout_floor" --churn --threads 2) ;;
      esac
      label="$server-$w-$r-$run"
      flock -x "$lock" bash -c '
        echo "$(date -u +%T) $(cut -d" " -f1-3 /proc/loadavg) before $0" >> "$1/loads.txt"
        shift
        exec "$@"' "$label" "$out" \
        bash "$here/bench/churn.sh" --watchers "$w" --rate "$r" \
        --ping-rate 100 --ping-users 10000 --duration 30 --label "$label" \
        --out "$out/$server-$w-$r" "$build/loadgen" "$build/bench_populate" \
        "${cmd[@]}" > /dev/null
      grep "^loadgen churn" "$out/$server-$w-$r/churn.log" | tail -1 |
        sed "s/^/$label /"
    done
  done
done
