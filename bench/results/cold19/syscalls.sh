#!/usr/bin/env bash
# usage: BUILD=build/release syscalls.sh PRESENCED OUTFILE : system calls, context
# switches and task-clock of the server per request (perf stat on its pid) during
# 3 s of cold pings (loadgen, 64 connections, 2 threads), 100,000 users, after a
# warm-up that pings every user once. Set PERF_CMD="perf record -F 2000 -g" for a profile.
set -euo pipefail
P="$1"; O="$2"; B="${BUILD:-build/release}"
W=$(mktemp -d); N=100000
$B/bench_populate --data $W/data --users $N > /dev/null
$P --listen 127.0.0.1:0 --data $W/data > $W/out 2> $W/err &
pid=$!
for i in $(seq 1 6000); do grep -q "listening on" $W/out && break; sleep 0.01; done
port=$(grep -m1 "listening on" $W/out | sed 's/.*://')
$B/loadgen --port $port --mode closed --users $N --warmup-only --connections 64 --threads 2 > /dev/null 2>&1
ev=syscalls:sys_enter_recvfrom,syscalls:sys_enter_recvmsg,syscalls:sys_enter_sendmsg,syscalls:sys_enter_sendto,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_futex,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_timerfd_settime,context-switches,task-clock
${PERF_CMD:-perf stat -e $ev} -p $pid -o $O -- sleep 3.5 &
sp=$!
$B/loadgen --port $port --mode closed --users $N --base-cursor $N --no-warmup --duration 3 --connections 64 --threads 2 --server-pid $pid >> $O 2>&1
wait $sp
kill $pid; wait $pid || true
rm -rf $W
