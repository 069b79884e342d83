#!/usr/bin/env bash
# Pings while fan-out runs flat out (issue #17, item 7: "pings first").
#
# Starts presenced with its default flags on a fresh bench_populate realm,
# then runs `loadgen --mode churn`: W watchers each hold a parked long poll
# and re-poll on every answer; users come online at RATE per second (each
# one "came online" event to every watcher: W x RATE deliveries requested
# per second); and an open-loop ping load (PING_RATE pings/s over PING_USERS
# users who are online already, so their pings do not write) measures the
# ping round trip from when each ping was due. With --pin the server gets
# one core and one I/O thread (taskset -c 0, --threads 1) and loadgen the
# other: the server saturates first, which is the point.
#
# --client-nice N runs loadgen under `nice -n N` (e.g. -10, as root). Its
# online pings have a thread of their own (since gen21), so they go out
# when due even when the thread that reads and re-polls every watcher
# falls behind; before, that one thread did both, and its lateness became
# delivery latency (bench/results/onesend20/README.md,
# bench/results/gen21/README.md; online_late_* in churn.jsonl says how
# late they went out).
#
# Departures from the defaults, needed by the load itself: --max-connections
# and --max-connections-per-address 20000 (every watcher is on 127.0.0.1).
#
# Usage: bench/churn.sh [--watchers 10000] [--rate 50] [--ping-rate 2000]
#          [--ping-users 20000] [--duration 30] [--pin] [--client-nice N]
#          [--label L]
#          [--out DIR] LOADGEN BENCH_POPULATE PRESENCED [EXTRA SERVER FLAGS]
# Output: DIR/churn.jsonl (one loadgen object per run, with a per-second
# timeline), DIR/churn.log. Loopback only.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
watchers=10000
rate=50
ping_rate=2000
ping_users=20000
duration=30
pin=0
client_nice=""
label=churn
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --watchers) watchers="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --ping-rate) ping_rate="$2"; shift 2 ;;
    --ping-users) ping_users="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --pin) pin=1; shift ;;
    --client-nice) client_nice="$2"; shift 2 ;;
    --label) label="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -ge 3 ] || { sed -n '2,31p' "$0"; exit 2; }
loadgen="$1"
populate="$2"
presenced="$3"
shift 3
extra=("$@")
out="${out:-$(mktemp -d /tmp/churn.XXXXXX)}"
mkdir -p "$out"
work="$(mktemp -d /tmp/churn-work.XXXXXX)"
server_pid=""
cleanup() {
  bench_stop_quietly "$server_pid"
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true

# Ping users, then watchers, then the users who come online (rows an hour
# old, so their first ping is a "came online" event).
online=$(awk -v r="$rate" -v d="$duration" 'BEGIN { printf "%d", r * d + 100 }')
users=$(( ping_users + watchers + online ))
"$populate" --data "$work/data" --users "$users" > "$work/populate.json"

server=("$presenced" --listen 127.0.0.1:0 --data "$work/data"
        --max-connections 20000 --max-connections-per-address 20000)
client=()
if [ "$pin" = 1 ]; then
  server=(taskset -c 0 "${server[@]}" --threads 1)
  client=(taskset -c 1)
fi
if [ -n "$client_nice" ]; then
  client=(nice -n "$client_nice" "${client[@]}")
fi
: > "$work/server.out"
"${server[@]}" "${extra[@]}" >> "$work/server.out" 2>> "$out/server.err" &
server_pid=$!
bench_wait_listening "$server_pid" "$work/server.out" 5000 0.002 ||
  { echo "churn: presenced did not start" >&2; exit 1; }

echo "load $(cut -d' ' -f1-3 /proc/loadavg) before $label" >> "$out/churn.log"
"${client[@]}" "$loadgen" --mode churn --port "$port" \
  --server-pid "$server_pid" --watchers "$watchers" \
  --watch-first "$ping_users" --trigger-first $(( ping_users + watchers )) \
  --trigger-rate "$rate" --rate "$ping_rate" --users "$ping_users" \
  --connections 64 --base-cursor "$users" --duration "$duration" \
  --label "$label" >> "$out/churn.jsonl" 2>> "$out/churn.log" || {
  echo "churn: loadgen failed (see $out/churn.log)" >&2
  tail -3 "$out/churn.log" >&2
}
echo "load $(cut -d' ' -f1-3 /proc/loadavg) after $label" >> "$out/churn.log"
grep '^loadgen churn' "$out/churn.log" | tail -1
kill "$server_pid"
wait "$server_pid" || true
server_pid=""
echo "churn: raw figures in $out/churn.jsonl"
