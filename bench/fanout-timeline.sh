#!/usr/bin/env bash
# Where the time of one event to W parked polls goes, as a timeline (issue
# #17): runs fanout-ab.sh's fan-out once against PRESENCED (same data, same
# flags: the defaults and the two connection caps) while `perf record -a`
# records the scheduler's switches and the send/receive/epoll system calls
# of every process, then prints per round, in ms from the trigger ping: when
# each server I/O thread sent its first and last answer, when the loadgen
# read its first and last, the CPU every process got meanwhile (the loadgen
# shares the cores), the server's system calls per answer and how often its
# threads were preempted. Needs perf and root (system-wide tracepoints).
# --split also samples the server's call chains meanwhile and prints where
# its CPU went during the rounds (bench/fanout_cpu_split.py): user space,
# the sender's side of sendmsg, and, on loopback, the receiving side of the
# same segments (the client's TCP input and wake-up, run by the sender).
#
# Usage: bench/fanout-timeline.sh [--watchers W] [--rounds R] [--split]
#          [--out DIR] LOADGEN BENCH_POPULATE PRESENCED
# Output: DIR/timeline.txt, DIR/fanout.jsonl (the loadgen's figures; the
# tracing costs CPU, so they read higher than fanout-ab.sh's). Loopback only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
w=10000
rounds=3
split=0
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --watchers) w="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --split) split=1; shift ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -eq 3 ] || { sed -n '2,21p' "$0"; exit 2; }
loadgen="$1"; populate="$2"; bin="$3"
out="${out:-$(mktemp -d /tmp/fanout-timeline.XXXXXX)}"
mkdir -p "$out"
work="$(mktemp -d /tmp/fanout-timeline-work.XXXXXX)"
server_pid=""
perf_pid=""
split_pid=""
cleanup() {
  [ -n "$perf_pid" ] && kill -INT "$perf_pid" 2> /dev/null || true
  [ -n "$split_pid" ] && kill -INT "$split_pid" 2> /dev/null || true
  bench_stop_quietly "$server_pid"
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
"$populate" --data "$work/data" --users $(( w + 200 )) > /dev/null
: > "$work/server.out"
per_address=()
if "$bin" --help 2>&1 | grep -q -- '--max-connections-per-address'; then
  per_address=(--max-connections-per-address 20000)
fi
"$bin" --listen 127.0.0.1:0 --data "$work/data" --max-connections 20000 \
  "${per_address[@]}" >> "$work/server.out" 2>> "$work/server.err" &
server_pid=$!
bench_wait_listening "$server_pid" "$work/server.out" 5000 0.002 ||
  { echo "fanout-timeline: $bin did not start" >&2; exit 1; }
perf record -a -o "$work/perf.data" \
  -e sched:sched_switch \
  -e syscalls:sys_enter_sendmsg -e syscalls:sys_enter_sendto \
  -e syscalls:sys_exit_recvfrom \
  -e syscalls:sys_enter_epoll_wait -e syscalls:sys_exit_epoll_wait \
  > "$work/perf.log" 2>&1 &
perf_pid=$!
if [ "$split" = 1 ]; then
  perf record -g -e cpu-clock -F 4999 -e syscalls:sys_enter_sendmsg \
    -e syscalls:sys_enter_sendto \
    -p "$server_pid" -o "$work/split.data" > "$work/split.log" 2>&1 &
  split_pid=$!
fi
sleep 1
settle=$(( w >= 10000 ? 1500 * w / 10000 : 400 ))
"$loadgen" --mode fanout --port "$port" --server-pid "$server_pid" \
  --watchers "$w" --watch-first 0 --trigger-first $(( w + 10 )) \
  --rounds "$rounds" --settle-ms "$settle" --label "timeline/$w" \
  >> "$out/fanout.jsonl" 2>> "$out/loadgen.log" &
loadgen_pid=$!
wait "$loadgen_pid"
kill -INT "$perf_pid"
wait "$perf_pid" || true
perf_pid=""
if [ -n "$split_pid" ]; then
  kill -INT "$split_pid"
  wait "$split_pid" || true
  split_pid=""
  perf script -i "$work/split.data" -F tid,time,event,ip,sym \
    2> /dev/null > "$work/split.txt"
fi
perf script -i "$work/perf.data" -F comm,pid,tid,cpu,time,event,trace \
  2> /dev/null > "$work/perf.txt"
{
  echo "# bench/fanout-timeline.sh --watchers $w --rounds $rounds: $(uptime)"
  tail -1 "$out/fanout.jsonl"
  python3 "$here/fanout_timeline.py" "$work/perf.txt" "$server_pid" \
    "$loadgen_pid"
  if [ "$split" = 1 ]; then
    echo "server CPU during the rounds, by call chain:"
    python3 "$here/fanout_cpu_split.py" "$work/split.txt"
  fi
} | tee "$out/timeline.txt"
