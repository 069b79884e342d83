#!/usr/bin/env bash
# Quiet re-run, session 12: head = integ, b94 = integ + 94f000e, base = main c498acd
set -u
H=HEADTREE; B94=B94/presenced; BASE=BASE/presenced; OUT=$1; mkdir -p $OUT
cd $H
L=build/release/loadgen; P=build/release/bench_populate
log() { echo "== $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg): $*" | tee -a $OUT/log.txt; }
log cold head
bench/cold_auth.sh --skip-build --build-dir build/release --sizes "100000" --out $OUT/cold_auth > $OUT/cold_auth.log 2>&1
log cold base
bench/cold_auth.sh --skip-build --build-dir build/release --sizes "100000" --presenced $BASE --out $OUT/cold_auth-base > $OUT/cold_auth-base.log 2>&1
log cold head 2
bench/cold_auth.sh --skip-build --build-dir build/release --sizes "100000" --out $OUT/cold_auth-2 > $OUT/cold_auth-2.log 2>&1
log fanout
bench/fanout-ab.sh --runs 3 --watchers 10000 --out $OUT/fanout $L $P head=build/release/presenced b94=$B94 base=$BASE > $OUT/fanout.log 2>&1
C="--watchers 19800 --rate 20 --ping-rate 100 --ping-users 10000 --duration 30"
for r in head:build/release/presenced b94:$B94 b94-2:$B94 head-2:build/release/presenced; do
  n=${r%%:*}; b=${r#*:}
  log churn nice $n
  bench/churn.sh --client-nice -10 $C --label $n --out $OUT/churn-nice-$n $L $P $b > $OUT/churn-nice-$n.log 2>&1
done
for r in head:build/release/presenced b94:$B94; do
  n=${r%%:*}; b=${r#*:}
  log churn plain $n
  bench/churn.sh $C --label $n --out $OUT/churn-plain-$n $L $P $b > $OUT/churn-plain-$n.log 2>&1
done
log done
