#!/usr/bin/env bash
# Quiet re-run, session 13: head = integ (merged), base = main dd0f0de
set -u
H=HEADTREE; BASE=BASE/presenced; OUT=$1; mkdir -p $OUT
cd $H
L=build/release/loadgen; P=build/release/bench_populate
log() { echo "== $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg): $*" | tee -a $OUT/log.txt; }
for i in 1 2 3; do
  log cold head $i
  bench/cold_auth.sh --skip-build --build-dir build/release --sizes "100000" --out $OUT/cold_auth-$i > $OUT/cold_auth-$i.log 2>&1
  log cold base $i
  bench/cold_auth.sh --skip-build --build-dir build/release --sizes "100000" --presenced $BASE --out $OUT/cold_auth-base-$i > $OUT/cold_auth-base-$i.log 2>&1
done
log fanout
bench/fanout-ab.sh --runs 3 --watchers 10000 --out $OUT/fanout $L $P head=build/release/presenced base=$BASE > $OUT/fanout.log 2>&1
C="--watchers 19800 --rate 20 --ping-rate 100 --ping-users 10000 --duration 30"
for r in head:build/release/presenced base:$BASE head-2:build/release/presenced base-2:$BASE; do
  n=${r%%:*}; b=${r#*:}
  log churn plain $n
  bench/churn.sh $C --label $n --out $OUT/churn-plain-$n $L $P $b > $OUT/churn-plain-$n.log 2>&1
done
log done
