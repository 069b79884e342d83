#!/usr/bin/env bash
# usage: BUILD=build/release nginx-syscalls.sh OUTFILE : the system calls and
# task-clock of nginx's workers (the reference of bench/cold_auth.sh, two
# workers, reuseport) per request during 3 s of the same load as
# syscalls.sh (loadgen closed loop, 64 connections, 2 threads).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../../lib.sh"
O="$1"; B="${BUILD:-build/release}"
W=$(mktemp -d)
trap 'bench_nginx_stop "$W/nginx"; rm -rf "$W"' EXIT
bench_nginx_start "$W/nginx" "$(nproc)" 4096 reuseport
workers=$(pgrep -d, -P "$(cat "$W/nginx/nginx.pid")")
ev=syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_readv,syscalls:sys_enter_sendmsg,syscalls:sys_enter_sendto,syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_futex,context-switches,task-clock
perf stat -e $ev -p "$workers" -o "$O" -- sleep 3.5 &
sp=$!
$B/loadgen --port "$nginx_port" --mode closed --users 100000 --no-warmup --user-limit 0 --duration 3 --connections 64 --threads 2 --server-pid "$workers" > "$O.load.json" 2>&1
wait $sp
