#!/bin/bash
out=OUT/ab4; mkdir -p $out
for pair in "head-1 head" "base-1 base"; do
  set -- $pair; label="churn-$1"; dir=OUT/$2
  flock -x LOCK bash -c '
    echo "$(date -u +%T) $(cut -d" " -f1-3 /proc/loadavg) before $0" >> "$1/loads.txt"
    shift
    exec "$@"' "$label" "$out" \
    bash REPO/bench/churn.sh --watchers 19800 --rate 20 --ping-rate 100 --ping-users 10000 --duration 30 --label "$label" \
    --out "$out/$label" BASE/loadgen BASE/bench_populate "$dir/presenced" > /dev/null
  grep "^loadgen churn" "$out/$label/churn.log" | tail -1 | sed "s/^/$label /"
done
