#!/bin/bash
# Given to churn.sh as its server binary: runs BINARY under
# `perf stat -e 'syscalls:sys_enter_*'` (written to PERFOUT), stopped with
# SIGINT before the server (as bench/results/floor22/syscalls/wrap.sh).
BINARY=${BINARY:?} PERFOUT=${PERFOUT:?}
"$BINARY" "$@" &
child=$!
perf stat -e 'syscalls:sys_enter_*' -x, -o "$PERFOUT" -p $child &
perfpid=$!
trap 'kill -INT $perfpid; wait $perfpid; kill $child; wait $child; exit 0' TERM INT
wait $child
