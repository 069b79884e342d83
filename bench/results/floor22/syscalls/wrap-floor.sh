#!/bin/bash
BUILD/fanout_floor "$@" &
child=$!
perf stat -e 'syscalls:sys_enter_*' -x, -o OUT/floor.perfstat -p $child &
perfpid=$!
trap 'kill -INT $perfpid; wait $perfpid; kill $child; wait $child; exit 0' TERM INT
wait $child
