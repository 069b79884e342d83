#!/bin/bash
# Run as wrap-presenced.sh (TAG=presenced, BINARY=BUILD/presenced) and
# wrap-floor.sh (TAG=floor, BINARY=BUILD/fanout_floor): this script with the
# two filled in, given to churn.sh as its server binary.
TAG=${TAG:?} BINARY=${BINARY:?}
"$BINARY" "$@" &
child=$!
perf stat -e 'syscalls:sys_enter_*' -x, -o "OUT/$TAG.perfstat" -p $child &
perfpid=$!
trap 'kill -INT $perfpid; wait $perfpid; kill $child; wait $child; exit 0' TERM INT
wait $child
