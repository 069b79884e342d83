#!/usr/bin/env bash
# usage (from the checkout's root): bench/results/cold21/ab.sh OUT BASE NEW N
#   N interleaved pairs (base, new, base, new, ...) of bench/cold_auth.sh at
#   100,000 users; BASE and NEW are presenced binaries. The load average
#   before and after each run goes to OUT/load-cold-VARIANT-I.txt.
set -u
O=$1; A=$2; B=$3; N=$4
mkdir -p "$O"
for i in $(seq 1 "$N"); do
  for v in base new; do
    bin=$A; [ $v = new ] && bin=$B
    r=$O/cold-$v-$i
    echo "before: $(cat /proc/loadavg)" > "$O/load-cold-$v-$i.txt"
    bench/cold_auth.sh --skip-build --build-dir build/release --sizes "100000" \
      --presenced "$bin" --out "$r" > "$r.log" 2>&1
    echo "after: $(cat /proc/loadavg)" >> "$O/load-cold-$v-$i.txt"
  done
done
