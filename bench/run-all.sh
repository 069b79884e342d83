#!/usr/bin/env bash
# Runs every benchmark of presenced in one go (issue #4) and writes the
# figures, each next to the reference it is judged against, measured in the
# same run:
#
#   1. micro-benchmarks (bench/core_bench.cc, Google Benchmark);
#   2. HTTP load from bench/loadgen against presenced and, as the ceiling of
#      this machine, against nginx answering a fixed small JSON 200, with the
#      same requests, interleaved run by run, for realms of 1k..1M users;
#      presenced runs with its default flags (issue #17: the rate limit on),
#      the pings rotating over every user of the realm but those kept to
#      come online, each run capped at 20 requests per user so that no user
#      nears 200 a minute; a realm too small for that (1k: it would allow
#      3,300 requests/s) is an extra row run with `--rate-limit 0`, and its
#      row says so;
#   3. fan-out to 1k and 10k parked long polls;
#   4. resident memory per user at 100k and 1M users, and the time to start
#      on a store of 1M users (a copy of the store as populated).
# --no-micro skips part 1; --sizes runs some realm sizes only.
#
# Usage: bench/run-all.sh [--out DIR] [--build-dir DIR] [--skip-build]
#          [--sizes "1000 10000 100000 1000000"] [--no-micro]
# (the default build is the release preset, build/release)
# Output: DIR (default build/bench-results/<date>) holds summary.md (the
# tables of BENCHMARKS.md), realm_size.png, and every raw figure (micro.json,
# load.jsonl, facts.jsonl). Needs nginx and gnuplot (Debian: nginx-light,
# gnuplot-nox) besides the build dependencies. Loopback only; every load
# loop is bounded in time. Takes about 7 minutes on 2 cores (plus the build).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
. "$here/lib.sh"
out=""
build_dir=""
skip_build=0
SIZES=(1000 10000 100000 1000000)
no_micro=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --skip-build) skip_build=1; shift ;;
    --build-dir) build_dir="$2"; shift 2 ;;
    --sizes) read -r -a SIZES <<< "$2"; shift 2 ;;
    --no-micro) no_micro=1; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "run-all: unknown argument $1" >&2; exit 2 ;;
  esac
done
out="${out:-$root/build/bench-results/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
build="${build_dir:-$root/build/release}"
T_START=$(date +%s)

# Workload (see BENCHMARKS.md): rows an answer carries (pings from users
# coming online write, and every later answer carries their rows; the share
# of such pings is ROWS_PER_ANSWER / online users, so that answers weigh
# the same in every realm: 0.001 of the pings with 400 online, as before
# #17), connections, seconds per run. The open-loop rate can be
# changed with OPEN_RATE=N. Short interleaved runs: a burst of the
# neighbours' load then spoils one ratio, not the median.
# Online users: all but RESERVE users of the realm (kept to come online:
# 4,000 at 10k, 10,000 above), pinged in rotation; each presenced run stops
# after PER_RUN requests per online user, which keeps every user below 200
# a minute over all the runs of a realm (fresh() warms the realm again when
# the last warm-up began more than 40 s earlier). Smaller realms (under 10k) cannot
# carry the load under the limit: they keep the old 400 online users and
# run with --rate-limit 0, an extra row.
PER_RUN=20
SMALL_ONLINE=400
ROWS_PER_ANSWER=0.4
CONNECTIONS=64
SECONDS_PER_RUN=1.5
REPS=6
# Workers of each server in the HTTP part: nginx's worker_processes and
# presenced's --threads, the same for both. On a 2-core machine that also
# runs the load generator, one worker is the best setting for both servers
# (measured: BENCHMARKS.md, run9); at 10k users a second comparison runs
# with two workers each. HTTP_WORKERS=N changes the first.
HTTP_WORKERS="${HTTP_WORKERS:-1}"

log() { printf '[%4ds] %s\n' "$(( $(date +%s) - T_START ))" "$*"; }
fact() { echo "$1" >> "$out/facts.jsonl"; }

for tool in nginx gnuplot python3; do
  command -v "$tool" > /dev/null || {
    echo "run-all: $tool is missing (apt-get install nginx-light gnuplot-nox python3)" >&2
    exit 1
  }
done

if [ "$skip_build" = 0 ]; then
  log "building the release preset (presenced, loadgen, bench_populate, core_bench)"
  if [ -z "$build_dir" ]; then
    [ -f "$build/CMakeCache.txt" ] || cmake --preset release > "$out/build.log"
  elif [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      > "$out/build.log"
  fi
  cmake --build "$build" -j "$(nproc)" --target presenced loadgen \
    bench_populate core_bench >> "$out/build.log" 2>&1 || {
    tail -30 "$out/build.log"; exit 1; }
fi
PRESENCED="$build/presenced"
# The server's defaults, but for the connection caps: the fan-out holds 10k
# parked polls plus a few connections (--max-connections, 10k by default).
server_flags=()
if "$PRESENCED" --help 2>&1 | grep -q -- '--max-connections'; then
  server_flags+=(--max-connections 20000)
fi
# All of them come from 127.0.0.1: lift the per-address cap (2000 by
# default) as well.
if "$PRESENCED" --help 2>&1 | grep -q -- '--max-connections-per-address'; then
  server_flags+=(--max-connections-per-address 20000)
fi
LOADGEN="$build/loadgen"
POPULATE="$build/bench_populate"
CORE_BENCH="$build/core_bench"

# 10k parked polls need 10k sockets on each side.
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
if [ "$(ulimit -n)" -lt 12000 ]; then
  log "warning: ulimit -n is $(ulimit -n); the 10k fan-out needs about 10k sockets per process"
fi

work="$(mktemp -d /tmp/presenced-bench.XXXXXX)"
server_pid=""
nginx_dir="$work/nginx"
cleanup() {
  bench_stop_quietly "$server_pid"
  bench_nginx_stop "$nginx_dir"
  rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------- machine
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -sr)"
  echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "compiler: $(g++ --version | head -1)"
  echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo '?')$(git -C "$root" diff --quiet 2> /dev/null || echo ' (with uncommitted changes)')"
} > "$out/machine.txt"
cat "$out/machine.txt"

# ---------------------------------------------------------------- servers

rss_of() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"; }

# start_server DATA_DIR [THREADS [EXTRA FLAGS...]]: starts presenced with
# THREADS I/O threads (default 2), sets server_pid, port, start_ms (exec to
# the "listening on" line) and start_cpu_ms (CPU used by then).
start_server() {
  local data="$1" threads="${2:-2}" t0 t1
  shift $(( $# < 2 ? $# : 2 ))
  : > "$work/server.out"
  t0=$(date +%s%N)
  "$PRESENCED" --listen 127.0.0.1:0 --data "$data" "${server_flags[@]}" \
    --threads "$threads" "$@" \
    >> "$work/server.out" 2>> "$work/server.err" &
  server_pid=$!
  bench_wait_listening "$server_pid" "$work/server.out" 12000 0.002 || true
  t1=$(date +%s%N)
  # CPU the start took (all threads), robust to a busy machine.
  start_cpu_ms=0
  for f in /proc/"$server_pid"/task/*/schedstat; do
    read -r ns _ < "$f" || true
    start_cpu_ms=$(( start_cpu_ms + ns / 1000000 ))
  done
  if [ -z "$port" ]; then
    echo "run-all: presenced did not start" >&2
    tail -5 "$work/server.err" >&2
    exit 1
  fi
  start_ms=$(( (t1 - t0) / 1000000 ))
}

stop_server() {
  kill "$server_pid"
  wait "$server_pid" || { echo "run-all: presenced did not exit 0" >&2; exit 1; }
  server_pid=""
}

# start_nginx WORKERS: the reference server (bench/lib.sh); sets nginx_port
# and nginx_pids.
start_nginx() { bench_nginx_start "$nginx_dir" "$1" 20000; }
stop_nginx() { bench_nginx_stop "$nginx_dir"; }

# load LABEL PORT PIDS ARGS...: one loadgen run, its JSON appended to
# load.jsonl.
load() {
  local label="$1" p="$2" pids="$3"
  shift 3
  "$LOADGEN" --port "$p" --server-pid "$pids" --label "$label" \
    --connections "$CONNECTIONS" "$@" >> "$out/load.jsonl" \
    2>> "$out/loadgen.log" || {
    echo "run-all: loadgen $label failed" >&2
    tail -5 "$out/loadgen.log" >&2
    exit 1
  }
  tail -1 "$out/loadgen.log" | sed 's/^/         /'
}

# warm LABEL PORT USERS: pings users [0, USERS) once (ping_only, unmeasured),
# so that their rows are fresh for the next 55 s and the measured pings
# write nothing; its JSON goes to warmup.jsonl. Sets warm_at (its start).
warm() {
  warm_at=$(date +%s)
  "$LOADGEN" --port "$2" --label "$1" --connections "$CONNECTIONS" \
    --mode closed --users "$3" --warmup-only >> "$out/warmup.jsonl" \
    2>> "$out/loadgen.log" || {
    echo "run-all: warm-up $1 failed" >&2; tail -5 "$out/loadgen.log" >&2; exit 1; }
  python3 -c 'import json,sys; s=json.loads(sys.argv[1])["seconds"]; s > 40 and print(f"run-all: warning: the warm-up took {s:.0f} s; pings past 55 s write")' \
    "$(tail -1 "$out/warmup.jsonl")"
}

# fresh LABEL PORT USERS: warms again if the last warm-up began more than 40 s
# ago (a million users take 13 s to warm on a quiet machine, 40 on a busy
# one), so that no measured ping falls past the 55 s rule and writes. Each
# warm-up is one more request per user, within the budget above.
fresh() {
  if [ $(( $(date +%s) - warm_at )) -gt 40 ]; then warm "$@"; fi
}

# sent_by_last: requests the last loadgen run sent (to continue the rotation).
sent_by_last() {
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["ok"]+r["errors"]+r["dropped"])' \
    "$(tail -1 "$out/load.jsonl")"
}

# ---------------------------------------------------------------- 1. micro
if [ "$no_micro" = 1 ]; then
  log "1/5 micro-benchmarks skipped (--no-micro)"
else
log "1/5 micro-benchmarks (core_bench, 5 repetitions each in random order, medians)"
"$CORE_BENCH" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_enable_random_interleaving=true \
  --benchmark_min_time=0.3 --benchmark_out="$out/micro.json" \
  --benchmark_out_format=json > "$out/micro.txt" 2> "$out/micro.err" || {
  tail -20 "$out/micro.err"; exit 1; }
grep -E '_median' "$out/micro.txt" | sed 's/^/         /'
fi

# ---------------------------------------------------------------- 2. HTTP
log "2/5 HTTP: nginx ceiling and presenced, realms of ${SIZES[*]} users"
start_nginx "$HTTP_WORKERS"
fact "{\"kind\":\"nginx\",\"port\":$nginx_port}"
fact "{\"kind\":\"http_workers\",\"workers\":$HTTP_WORKERS}"

# The empty server: the baseline of every memory figure.
mkdir -p "$work/empty"
start_server "$work/empty"
sleep 1
fact "{\"kind\":\"rss_empty\",\"rss\":$(rss_of "$server_pid")}"
stop_server

# The open-loop rate: fixed (10,000 pings a second, what 600k users pinging
# once a minute send), the same for both servers and every realm size, so
# that latencies compare at equal load and from run to run. About a third of
# what presenced sustains closed-loop on this machine.
rate="${OPEN_RATE:-10000}"
fact "{\"kind\":\"open_rate\",\"rate\":$rate}"

for n in "${SIZES[@]}"; do
  data="$work/data-$n"
  log "   realm of $n users: populating"
  "$POPULATE" --data "$data" --users "$n" > "$work/populate.json"
  # The restarts use the store as populated (rows an hour old, as before
  # #17): the load below leaves every online user's row fresh, with a
  # client row, which is a different start (bench/startmeasure.py).
  if [ "$n" = 1000000 ]; then cp -a "$data" "$work/pristine-$n"; fi
  fact "{\"kind\":\"populate\",\"size\":$n,\"result\":$(cat "$work/populate.json")}"
  # Realms too small for the load under the rate limit: an extra row.
  small=0
  limit_flags=()
  if [ "$n" -lt 10000 ]; then
    small=1
    # bench-extra: realms under 10k users, labelled in summary.md as departing
    limit_flags=(--rate-limit 0)
    fact "{\"kind\":\"rate_limit_off\",\"size\":$n}"
  fi
  start_server "$data" "$HTTP_WORKERS" "${limit_flags[@]}"
  sleep 1
  fact "{\"kind\":\"start\",\"size\":$n,\"ms\":$start_ms,\"cpu_ms\":$start_cpu_ms,\"rss\":$(rss_of "$server_pid")}"
  log "   realm of $n users: started in $start_ms ms ($start_cpu_ms ms CPU), $(( $(rss_of "$server_pid") / 1048576 )) MiB resident"
  # Users [0, online) are online, pinged in rotation; the ones coming online
  # ([online, n)) are split among the runs so that each of them writes.
  # At 10k the users from 7600 up are kept for the heavier and the
  # two-worker runs below.
  if [ "$small" = 1 ]; then
    online=$SMALL_ONLINE
    cap=()
  else
    online=$(( n - (n >= 100000 ? 10000 : 4000) ))
    cap=(--max-requests $(( online * PER_RUN )))
  fi
  write_fraction=$(awk -v r="$ROWS_PER_ANSWER" -v u="$online" \
    'BEGIN { printf "%.8g", r / u }')
  cold_end=$n
  [ "$n" = 10000 ] && cold_end=7600
  cold_each=$(( (cold_end - online) / (REPS + 1) ))
  warm "warmup/presenced/$n" "$port" "$online"
  common=(--users "$online" --write-fraction "$write_fraction"
          --base-cursor "$n" --duration "$SECONDS_PER_RUN" --no-warmup)
  from=0
  for rep in $(seq 1 "$REPS"); do
    load "ping/nginx/$n/closed/$rep" "$nginx_port" "$nginx_pids" \
      --mode closed "${common[@]}" --user-limit 0
    fresh "warmup/presenced/$n/again" "$port" "$online"
    load "ping/presenced/$n/closed/$rep" "$port" "$server_pid" --mode closed \
      "${common[@]}" --cold-first $(( online + (rep - 1) * cold_each )) \
      --cold-count "$cold_each" --rotate-from "$from" "${cap[@]}"
    from=$(( (from + $(sent_by_last)) % online ))
  done
  for rep in 1 2; do
    load "ping/nginx/$n/open/$rep" "$nginx_port" "$nginx_pids" --mode open \
      --rate "$rate" "${common[@]}" --duration 3 --user-limit 0
    fresh "warmup/presenced/$n/again" "$port" "$online"
    load "ping/presenced/$n/open/$rep" "$port" "$server_pid" --mode open \
      --rate "$rate" "${common[@]}" --duration 3 --cold-count $(( cold_each / 2 )) \
      --cold-first $(( online + REPS * cold_each + (rep - 1) * (cold_each / 2) )) \
      --rotate-from "$from"
    from=$(( (from + $(sent_by_last)) % online ))
  done
  if [ "$n" = 10000 ]; then
    # Heavier answers: 5000 users online, 1% of pings write, so each answer
    # carries about 1% of the online users' rows (at most 25 requests each).
    log "   realm of $n users: heavier answers (5000 online, 1% writes)"
    heavy=(--users 5000 --write-fraction 0.01 --base-cursor "$n"
           --duration "$SECONDS_PER_RUN" --cold-first 7600 --cold-count 1400
           --no-warmup)
    load "heavy/nginx/$n/closed/1" "$nginx_port" "$nginx_pids" \
      --mode closed "${heavy[@]}" --user-limit 0
    fresh "warmup/presenced/$n/again" "$port" "$online"
    load "heavy/presenced/$n/closed/1" "$port" "$server_pid" --mode closed \
      "${heavy[@]}" --max-requests 125000
  fi
  fact "{\"kind\":\"rss_after_load\",\"size\":$n,\"rss\":$(rss_of "$server_pid")}"
  stop_server
  if [ "$n" = 10000 ]; then
    # The same pings with two workers each (users from 9000 up come
    # online; the heavier run above used those from 7600). A new process:
    # every user's rate-limit budget is whole.
    log "   realm of $n users: two workers each"
    stop_nginx
    start_nginx 2
    start_server "$data" 2
    sleep 1
    warm "warmup/presenced/$n/two" "$port" "$online"
    from=0
    for rep in 1 2 3; do
      load "two/nginx/$n/closed/$rep" "$nginx_port" "$nginx_pids" \
        --mode closed "${common[@]}" --user-limit 0
      fresh "warmup/presenced/$n/two/again" "$port" "$online"
      load "two/presenced/$n/closed/$rep" "$port" "$server_pid" --mode closed \
        "${common[@]}" --cold-first $(( 9000 + (rep - 1) * 333 )) \
        --cold-count 333 --rotate-from "$from" "${cap[@]}"
      from=$(( (from + $(sent_by_last)) % online ))
    done
    stop_server
    stop_nginx
    start_nginx "$HTTP_WORKERS"
  fi
  if [ "$n" = 1000000 ]; then
    log "   realm of $n users: 3 restarts"
    for r in 1 2 3; do
      start_server "$work/pristine-$n"
      sleep 1
      fact "{\"kind\":\"restart\",\"size\":$n,\"ms\":$start_ms,\"cpu_ms\":$start_cpu_ms,\"rss\":$(rss_of "$server_pid")}"
      log "     restart $r: listening after $start_ms ms ($start_cpu_ms ms CPU)"
      stop_server
    done
  fi
  rm -rf "$data" "$work/pristine-$n"
done

# ---------------------------------------------------------------- 3. fan-out
log "3/5 fan-out: 1k and 10k parked long polls, one user comes online"
data="$work/data-fanout"
"$POPULATE" --data "$data" --users 12000 > /dev/null
for w in 1000 10000; do
  start_server "$data"
  sleep 1
  settle=$(( w >= 10000 ? 1500 : 400 ))
  "$LOADGEN" --mode fanout --port "$port" --server-pid "$server_pid" \
    --watchers "$w" --watch-first 0 --trigger-first $(( 10000 + (w / 1000) * 10 )) \
    --rounds 5 --settle-ms "$settle" --label "fanout/presenced/$w" \
    >> "$out/load.jsonl" 2>> "$out/loadgen.log" || {
    tail -5 "$out/loadgen.log"; exit 1; }
  tail -1 "$out/loadgen.log" | sed 's/^/         /'
  stop_server
done

# ---------------------------------------------------------------- 4. results
log "4/5 summary"
bench_nginx_stop "$nginx_dir"
python3 "$here/summarize.py" "$out"
log "5/5 plot"
gnuplot -e "datafile='$out/plot.dat'; outfile='$out/realm_size.png'" \
  "$here/plot.gp"
cat "$out/summary.md"
log "done: $out (summary.md, realm_size.png, raw figures)"
