#!/usr/bin/env bash
# Bounded soak of presenced (issue #6): a steady open-loop ping load with
# thousands of parked long polls for --duration seconds, sampling the
# server's resident memory and the latency every --interval seconds, to show
# that after warm-up the RSS stays flat.
#
#   1. a fresh data directory with one realm (subdomain "") of --users bench
#      users (bench_populate; loadgen logs in as them with derivable keys);
#   2. presenced on 127.0.0.1:0 with its default flags (the rate limit of
#      200 requests per user per minute included: the load is spread over
#      enough users to stay under it, --rate x 60 / --online at most 160 per
#      user per minute), admin token from the environment
#      (PRESENCED_ADMIN_TOKEN, random per run);
#   3. the first --online users come online, before any queue exists:
#      gradually over --ramp seconds (a fraction more every 3 s, pinging at
#      --rate x the fraction online), so that their rows, rewritten every 55 s by the 55 s rule,
#      stay spread out as real clients' are; --ramp 0 brings them all online
#      in the same second, so that all of them rewrite in the same second
#      every 55 s (a synchronised write burst);
#   4. bench/soak_polls.py creates --polls watcher users through the admin API
#      and parks one long poll per watcher (presence events), re-polling as
#      soon as each answer arrives; and --queue-loop-users more users each
#      open a new event queue --queue-loop-per-minute times a minute and
#      never poll it (a client that opens queues in a loop: the server keeps
#      --max-queues-per-user of each, dropping the stalest);
#   5. bench/soak_loop.py runs back-to-back --interval-second open-loop
#      slices of loadgen at --rate requests/s (loadgen reports once per run): the --online users ping with their cursor, and a
#      --write-fraction of the pings come from users not seen for an hour
#      (each "comes online": a write and an event to every parked poll);
#      after each slice one sample: server VmRSS, that slice's latency
#      percentiles and achieved rate, parked polls (server's /metrics), CPU,
#      and the server's memory gauges (malloc heap, SQLite; /metrics);
#   6. SIGTERM to the server, which must exit 0.
#
# Usage: bench/soak.sh [--rate 10000] [--duration 600] [--interval 10]
#   [--users 10000] [--online 4000] [--polls 2000] [--write-fraction 0.0001]
#   [--warmup 60] [--ramp 60] [--connections 64] [--queue-loop-users 20]
#   [--queue-loop-per-minute 150] [--build-dir DIR] [--skip-build] [--out DIR]
# Output (DIR, default bench/results): soak.csv (one row per sample),
# soak.png (gnuplot), soak.jsonl (every loadgen result), soak.txt (machine
# and summary). Prints whether RSS after --warmup seconds stayed within +-5%
# of its first post-warm-up sample: a report, never a failure. Exits non-zero
# only if something broke (server did not start, did not exit 0, ...).
# Loopback only; every loop is bounded in time and count.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"

RATE=10000
DURATION=600
INTERVAL=10
USERS=10000
ONLINE=4000
POLLS=2000
WRITE_FRACTION=0.0001
WARMUP=60
RAMP=60
CONNECTIONS=64
QUEUE_LOOP_USERS=20
QUEUE_LOOP_PER_MINUTE=150
build_dir=""
skip_build=0
out="$root/bench/results"
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) RATE="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --interval) INTERVAL="$2"; shift 2 ;;
    --users) USERS="$2"; shift 2 ;;
    --online) ONLINE="$2"; shift 2 ;;
    --polls) POLLS="$2"; shift 2 ;;
    --write-fraction) WRITE_FRACTION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --ramp) RAMP="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --queue-loop-users) QUEUE_LOOP_USERS="$2"; shift 2 ;;
    --queue-loop-per-minute) QUEUE_LOOP_PER_MINUTE="$2"; shift 2 ;;
    --build-dir) build_dir="$2"; shift 2 ;;
    --skip-build) skip_build=1; shift ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,46p' "$0"; exit 0 ;;
    *) echo "soak: unknown argument $1" >&2; exit 2 ;;
  esac
done
for v in RATE DURATION INTERVAL USERS ONLINE POLLS WARMUP CONNECTIONS; do
  [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] ||
    { echo "soak: --${v,,} must be a positive integer" >&2; exit 2; }
done
[[ "$RAMP" =~ ^[0-9]+$ ]] && [ "$RAMP" -le 3600 ] ||
  { echo "soak: --ramp must be 0..3600" >&2; exit 2; }
[ "$DURATION" -le 86400 ] || { echo "soak: --duration at most 86400" >&2; exit 2; }
[ "$INTERVAL" -le 300 ] || { echo "soak: --interval at most 300 (loadgen's limit)" >&2; exit 2; }
[ "$ONLINE" -lt "$USERS" ] || { echo "soak: --online must be below --users" >&2; exit 2; }
[[ "$QUEUE_LOOP_USERS" =~ ^[0-9]+$ ]] && [ "$QUEUE_LOOP_USERS" -le 1000 ] ||
  { echo "soak: --queue-loop-users must be 0..1000" >&2; exit 2; }
[[ "$QUEUE_LOOP_PER_MINUTE" =~ ^[0-9]+$ ]] && [ "$QUEUE_LOOP_PER_MINUTE" -ge 1 ] &&
  [ "$QUEUE_LOOP_PER_MINUTE" -le 160 ] ||
  { echo "soak: --queue-loop-per-minute must be 1..160 (under the rate limit)" >&2; exit 2; }
# The server runs with its default rate limit (200 requests per user per
# minute): each online user's share of the load stays at 80% of it.
[ $(( RATE * 60 )) -le $(( ONLINE * 160 )) ] || {
  echo "soak: --rate $RATE over --online $ONLINE users is $(( RATE * 60 / ONLINE )) pings per user per minute; the server's rate limit is 200: use at least --online $(( (RATE * 60 + 159) / 160 ))" >&2
  exit 2; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
build="${build_dir:-$root/build/release}"
T0=$(date +%s)
log() { printf '[%4ds] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }

for tool in python3 gnuplot curl; do
  command -v "$tool" > /dev/null || {
    echo "soak: $tool is missing (Debian: apt-get install python3 gnuplot-nox curl)" >&2
    exit 1
  }
done

if [ "$skip_build" = 0 ]; then
  log "building presenced, loadgen, bench_populate in $build"
  if [ -z "$build_dir" ]; then
    [ -f "$build/CMakeCache.txt" ] || cmake --preset release > /dev/null
  elif [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DPRESENCE_BUILD_TESTS=OFF > /dev/null
  fi
  cmake --build "$build" -j "$(nproc)" --target presenced loadgen \
    bench_populate > /tmp/soak-build.$$.log 2>&1 || {
    tail -30 /tmp/soak-build.$$.log; exit 1; }
  rm -f /tmp/soak-build.$$.log
fi
PRESENCED="$build/presenced"
LOADGEN="$build/loadgen"
POPULATE="$build/bench_populate"
for b in "$PRESENCED" "$LOADGEN" "$POPULATE"; do
  [ -x "$b" ] || { echo "soak: $b is missing (build it or pass --build-dir)" >&2; exit 1; }
done

# Every parked poll is a socket on each side.
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
if [ "$(ulimit -n)" -lt $(( POLLS + CONNECTIONS + 200 )) ]; then
  echo "soak: ulimit -n is $(ulimit -n), too low for $POLLS polls" >&2
  exit 1
fi

work="$(mktemp -d /tmp/presenced-soak.XXXXXX)"
server_pid=""
polls_pid=""
cleanup() {
  if [ -n "$polls_pid" ] && kill -0 "$polls_pid" 2> /dev/null; then
    kill "$polls_pid" 2> /dev/null || true
    wait "$polls_pid" 2> /dev/null || true
  fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2> /dev/null; then
    kill "$server_pid" 2> /dev/null || true
    wait "$server_pid" 2> /dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

csv="$out/soak.csv"
jsonl="$out/soak.jsonl"
txt="$out/soak.txt"
png="$out/soak.png"
: > "$jsonl"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "command: bench/soak.sh --rate $RATE --duration $DURATION --interval $INTERVAL --users $USERS --online $ONLINE --polls $POLLS --write-fraction $WRITE_FRACTION --warmup $WARMUP --ramp $RAMP --connections $CONNECTIONS --queue-loop-users $QUEUE_LOOP_USERS --queue-loop-per-minute $QUEUE_LOOP_PER_MINUTE"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -sr)"
  echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo '?')$(git -C "$root" diff --quiet 2> /dev/null || echo ' (with uncommitted changes)')"
  echo "server binary: $("$PRESENCED" --version 2>&1 | head -1)"
} > "$txt"
cat "$txt"

# ---------------------------------------------------------------- setup
log "populating a realm of $USERS users"
"$POPULATE" --data "$work/data" --users "$USERS" > "$work/populate.json"

PRESENCED_ADMIN_TOKEN="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
export PRESENCED_ADMIN_TOKEN
server_flags=(--listen 127.0.0.1:0 --data "$work/data")
if [ $(( POLLS + CONNECTIONS + 100 )) -gt 10000 ]; then
  server_flags+=(--max-connections $(( POLLS + CONNECTIONS + 1000 )))
fi
# Every client is on 127.0.0.1: lift the per-address cap (2000 by default).
if "$PRESENCED" --help 2>&1 | grep -q -- '--max-connections-per-address'; then
  server_flags+=(--max-connections-per-address $(( POLLS + CONNECTIONS + 1000 )))
fi
"$PRESENCED" "${server_flags[@]}" > "$work/server.out" 2> "$work/server.err" &
server_pid=$!
port=""
for _ in $(seq 1 600); do
  port="$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/server.out")"
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2> /dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "soak: presenced did not start" >&2
  tail -5 "$work/server.err" >&2
  exit 1
fi
log "presenced pid $server_pid on 127.0.0.1:$port, $(awk '/^VmRSS:/ {print $2}' /proc/$server_pid/status) KiB resident"

if [ "$RAMP" -gt 0 ]; then
  steps=$(( (RAMP + 2) / 3 ))
  step_s=$(python3 -c "print($RAMP / $steps)")
  log "the $ONLINE online users come online over $RAMP s ($steps steps, up to $RATE pings/s), before any queue exists"
  for s in $(seq 1 "$steps"); do
    # Each online user pings at the soak's own per-user rate (the rate limit).
    timeout $(( RAMP + 60 )) "$LOADGEN" --mode open --port "$port" \
      --rate $(( RATE * s / steps > 0 ? RATE * s / steps : 1 )) \
      --duration "$step_s" --no-warmup \
      --users $(( ONLINE * s / steps > 0 ? ONLINE * s / steps : 1 )) \
      --base-cursor "$USERS" \
      --connections "$CONNECTIONS" --label "soak/ramp/$s" \
      >> "$work/warmup.json" 2> "$work/warmup.err" || {
      tail -5 "$work/warmup.err" >&2; exit 1; }
  done
else
  log "the $ONLINE online users come online in the same second, before any queue exists"
  timeout 120 "$LOADGEN" --mode open --port "$port" --rate 1000 --duration 1 \
    --users "$ONLINE" --base-cursor "$USERS" --connections "$CONNECTIONS" \
    --label soak/warmup > "$work/warmup.json" 2> "$work/warmup.err" || {
    tail -5 "$work/warmup.err" >&2; exit 1; }
fi

log "creating $POLLS watchers through the admin API and parking their polls"
python3 "$here/soak_polls.py" --port "$port" --polls "$POLLS" \
  --queue-loop-users "$QUEUE_LOOP_USERS" \
  --queue-loop-per-minute "$QUEUE_LOOP_PER_MINUTE" \
  --status-file "$work/polls.json" --max-seconds $(( DURATION + 900 )) \
  2> "$work/polls.err" &
polls_pid=$!
ready=0
for _ in $(seq 1 3000); do
  if [ -f "$work/polls.json" ] && grep -q '"ready": true' "$work/polls.json"; then
    ready=1; break
  fi
  kill -0 "$polls_pid" 2> /dev/null || break
  sleep 0.1
done
if [ "$ready" != 1 ]; then
  echo "soak: the polls were not parked within 300 s" >&2
  tail -5 "$work/polls.err" >&2
  exit 1
fi
log "$(tail -1 "$work/polls.err" | sed 's/^soak_polls: //')"

# ---------------------------------------------------------------- the soak
log "soak: $RATE pings/s for $DURATION s, a sample every $INTERVAL s"
loop_rc=0
python3 "$here/soak_loop.py" run --loadgen "$LOADGEN" --port "$port" \
  --server-pid "$server_pid" --polls-pid "$polls_pid" \
  --polls-status "$work/polls.json" --csv "$csv" --jsonl "$jsonl" \
  --rate "$RATE" --duration "$DURATION" --interval "$INTERVAL" \
  --users "$USERS" --online "$ONLINE" --write-fraction "$WRITE_FRACTION" \
  --connections "$CONNECTIONS" --failures-file "$work/failures" || loop_rc=$?
failures=$(cat "$work/failures" 2> /dev/null || echo '?')
if [ "$loop_rc" != 0 ]; then
  echo "soak: the load loop failed" >&2
  tail -5 "$work/server.err" >&2
  exit 1
fi

# ---------------------------------------------------------------- the end
log "stopping the polls"
kill "$polls_pid"
wait "$polls_pid" || true
polls_pid=""
tail -1 "$work/polls.err" | sed 's/^/         /'

log "stopping presenced with SIGTERM"
server_rc=0
kill -TERM "$server_pid"
wait "$server_pid" || server_rc=$?
server_pid=""
errors_logged=$(grep -c 'level=error' "$work/server.err" || true)

summary="$(python3 "$here/soak_loop.py" summary --csv "$csv" --warmup "$WARMUP" \
  --rate "$RATE" --failures "$failures")"
summary+=$'\n'"presenced exit status after SIGTERM: $server_rc; error lines in its log: $errors_logged"
summary+=$'\n'"load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
{ echo; echo "$summary"; } >> "$txt"
echo "$summary"

# ---------------------------------------------------------------- the plot
warm_ref=$(python3 - "$csv" "$WARMUP" <<'EOF'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if float(r["time_s"]) >= float(sys.argv[2])]
print(float(rows[0]["rss_kib"]) / 1024 if rows else 0)
EOF
)
gnuplot <<EOF
set terminal pngcairo size 1000,1300 font ",11"
set output "$png"
set datafile separator ","
set key below horizontal
set grid
set lmargin 13
set rmargin 13
set xrange [0:*]
set multiplot layout 4,1 title "presenced soak: $RATE pings/s open loop, $ONLINE users online of $USERS, $POLLS parked polls, $(nproc) shared cores, loopback"
set ylabel "server memory (MiB)"
ref = $warm_ref
set yrange [0:*]
set arrow 1 from $WARMUP, graph 0 to $WARMUP, graph 1 nohead dt 3 lc rgb "gray40"
set label 1 "end of warm-up" at $WARMUP, graph 0.1 left offset 0.5,0
plot "$csv" using 1:(\$2/1024) skip 1 with linespoints lw 2 pt 7 ps 0.6 title "VmRSS", \
     (x >= $WARMUP && ref > 0 ? ref*1.05 : 1/0) with lines dt 2 lc rgb "red" title "+-5% of the first post-warm-up sample", \
     (x >= $WARMUP && ref > 0 ? ref*0.95 : 1/0) with lines dt 2 lc rgb "red" notitle, \
     "$csv" using 1:(\$24/1024) skip 1 with lines lw 1 lc rgb "gray40" title "RssAnon", \
     "$csv" using 1:(\$27/1024) skip 1 with lines lw 1 dt 4 lc rgb "blue" title "malloc arenas held", \
     "$csv" using 1:(\$28/1024) skip 1 with lines lw 1 lc rgb "blue" title "malloc in use", \
     "$csv" using 1:(\$33/1024) skip 1 with lines lw 1 lc rgb "orange" title "SQLite memory"
unset label 1
set ylabel "latency per slice (ms)"
set logscale y
set yrange [*:*]
plot "$csv" using 1:3 skip 1 with linespoints lw 2 pt 7 ps 0.6 title "p50", \
     "$csv" using 1:4 skip 1 with linespoints lw 2 pt 5 ps 0.6 title "p99", \
     "$csv" using 1:7 skip 1 with lines lw 1 dt 2 title "p99.9"
unset logscale y
set ylabel "pings answered / s"
set yrange [0:$RATE * 1.25]
plot "$csv" using 1:5 skip 1 with linespoints lw 2 pt 7 ps 0.6 title "achieved rate (per slice)", \
     "$csv" using 1:9 skip 1 with lines dt 2 lc rgb "gray40" title "target rate"
set xlabel "time since the load started (s)"
set ylabel "parked polls (server)"
set yrange [0:$POLLS * 1.25]
plot "$csv" using 1:6 skip 1 with linespoints lw 2 pt 7 ps 0.6 lc rgb "dark-green" title "median during the slice", \
     "$csv" using 1:23 skip 1 with lines lw 1 dt 2 lc rgb "dark-green" title "lowest reading (during a fan-out)", \
     "$csv" using 1:14 skip 1 with lines lw 1 lc rgb "gray40" title "event queues"
unset multiplot
EOF
log "wrote $csv, $png, $jsonl, $txt"

if [ "$server_rc" != 0 ]; then
  echo "soak: presenced exited $server_rc after SIGTERM (expected 0)" >&2
  tail -5 "$work/server.err" >&2
  exit 1
fi
log "presenced exited 0 after SIGTERM"
