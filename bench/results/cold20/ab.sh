#!/usr/bin/env bash
# usage: ab.sh OUT BASE NEW N : N interleaved pairs of bench/cold_auth.sh at 100,000 users
set -u
O=$1; A=$2; B=$3; N=$4
for i in $(seq 1 $N); do
  for v in base new; do
    bin=$A; [ $v = new ] && bin=$B
    r=$O/cold-$v-$i
    { echo "before: $(cat /proc/loadavg)"; } > $O/load-cold-$v-$i.txt
    bench/cold_auth.sh --skip-build --build-dir build/release --sizes "100000" --presenced $bin --out $r > $r.log 2>&1
    { echo "after: $(cat /proc/loadavg)"; } >> $O/load-cold-$v-$i.txt
  done
done
