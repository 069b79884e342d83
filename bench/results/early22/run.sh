#!/usr/bin/env bash
# early22's interleaved A/B sitting: for each run, base then head, one
# bench/churn.sh run per exclusive hold of the machine lock (the load
# average before each run in OUT/loads.txt):
#   sc:    --watchers 5000 --rate 50 --ping-rate 100 --ping-users 5000
#          --duration 15, the server under wrap.sh (system calls per answer,
#          as bench/results/floor22/syscalls/)
#   churn: --watchers 19800 --rate 20 --ping-rate 100 --ping-users 10000
#          --duration 30 (delivery p99, server CPU per answer)
# Usage: run.sh OUT RUNS BASE HEAD LOCK [KINDS]
#   BASE, HEAD: directories holding presenced (BASE also loadgen and
#   bench_populate, used for both); KINDS: "sc churn" by default.
set -euo pipefail
out="$1" runs="$2" base="$3" head="$4" lock="$5" kinds="${6:-sc churn}"
here="$(cd "$(dirname "$0")/../../.." && pwd)"
mkdir -p "$out"
for run in $(seq 1 "$runs"); do
  for kind in $kinds; do
    for server in base head; do
      dir=$base
      [ "$server" = head ] && dir=$head
      label="$kind-$server-$run"
      if [ "$kind" = sc ]; then
        shape=(--watchers 5000 --rate 50 --ping-rate 100 --ping-users 5000
               --duration 15)
        bin="$here/bench/results/early22/wrap.sh"
      else
        shape=(--watchers 19800 --rate 20 --ping-rate 100 --ping-users 10000
               --duration 30)
        bin="$dir/presenced"
      fi
      BINARY="$dir/presenced" PERFOUT="$out/$label.perfstat" \
        flock -x "$lock" bash -c '
        echo "$(date -u +%T) $(cut -d" " -f1-3 /proc/loadavg) before $0" >> "$1/loads.txt"
        shift
        exec "$@"' "$label" "$out" \
        bash "$here/bench/churn.sh" "${shape[@]}" --label "$label" \
        --out "$out/$label" "$base/loadgen" "$base/bench_populate" \
        "$bin" > /dev/null
      grep "^loadgen churn" "$out/$label/churn.log" | tail -1 |
        sed "s/^/$label /"
    done
  done
done
