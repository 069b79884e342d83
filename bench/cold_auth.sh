#!/usr/bin/env bash
# Throughput with the server's defaults and cold authentication, against
# nginx in the same run (issue #17): for realms of 10k, 100k and 1M users,
# modern incremental pings over keep-alive rotate over every user of the
# realm, so that no user comes near the default rate limit (200 requests a
# minute) and, past 10k, every request authenticates with a header no cache
# of the server still holds. Prints the ratio presenced / nginx per size.
#
# Both servers run with the same number of workers, one per core (nginx's
# worker_processes, each with its own listening socket (reuseport), so that
# the kernel spreads the connections over both as presenced's acceptor
# does; presenced's default --threads 0, one I/O thread per core);
# presenced gets no flag but --listen and --data. A million users take
# most of a minute to warm up on a busy machine: the script warns when the
# warm-up took more than 40 s (the first users' pings may then write, and
# rows/answer shows it). The load: loadgen,
# closed loop, 64 connections, two threads (as `wrk -t2 -c64`). Per size:
# one warm-up pings every user once (ping_only), so that the measured pings
# write nothing (the 55 s rule) and find nothing new; then REPS runs of
# SECONDS each, nginx and presenced in turn, each presenced run continuing
# the rotation where the last one stopped. Every presenced run reports 429
# answers (rate_limited; must be 0) and the requests per user per minute its
# load would reach if sustained.
#
# Usage: bench/cold_auth.sh [--out DIR] [--build-dir DIR] [--skip-build]
#          [--sizes "10000 100000 1000000"] [--reps 3] [--seconds 3]
#          [--presenced BINARY]
# Output: DIR (default build/bench-results/cold-auth-<date>) holds
# load.jsonl (one loadgen object per run), summary.md and machine.txt.
# Needs nginx (Debian: nginx-light) and python3. Loopback only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
. "$here/lib.sh"
out=""
build_dir=""
skip_build=0
sizes="10000 100000 1000000"
reps=3
seconds=3
presenced=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --build-dir) build_dir="$2"; shift 2 ;;
    --skip-build) skip_build=1; shift ;;
    --sizes) sizes="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --presenced) presenced="$2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "cold_auth: unknown argument $1" >&2; exit 2 ;;
  esac
done
out="${out:-$root/build/bench-results/cold-auth-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
build="${build_dir:-$root/build/release}"
command -v nginx > /dev/null || {
  echo "cold_auth: nginx is missing (apt-get install nginx-light)" >&2
  exit 1
}
if [ "$skip_build" = 0 ]; then
  [ -f "$build/CMakeCache.txt" ] || cmake -S "$root" -B "$build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release > "$out/build.log"
  cmake --build "$build" --target presenced loadgen bench_populate \
    >> "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
fi
PRESENCED="${presenced:-$build/presenced}"
LOADGEN="$build/loadgen"
POPULATE="$build/bench_populate"
WORKERS="$(nproc)"
CONNECTIONS=64
LOAD_THREADS=2

work="$(mktemp -d /tmp/presenced-cold-auth.XXXXXX)"
server_pid=""
nginx_dir="$work/nginx"
cleanup() {
  bench_stop_quietly "$server_pid"
  bench_nginx_stop "$nginx_dir"
  rm -rf "$work"
}
trap cleanup EXIT

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
  echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
  echo "presenced: $("$PRESENCED" --version 2>&1 | head -1)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo '?')$(git -C "$root" diff --quiet 2> /dev/null || echo ' (with uncommitted changes)')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/machine.txt"
cat "$out/machine.txt"

# nginx answers the JSON a ping with nothing new gets; one listening socket
# per worker (reuseport), as presenced's acceptor spreads connections.
bench_nginx_start "$nginx_dir" "$WORKERS" 4096 reuseport

start_server() {
  local data="$1"
  : > "$work/server.out"
  "$PRESENCED" --listen 127.0.0.1:0 --data "$data" \
    >> "$work/server.out" 2>> "$work/server.err" &
  server_pid=$!
  bench_wait_listening "$server_pid" "$work/server.out" 15000 0.002 && return
  echo "cold_auth: presenced did not start" >&2
  tail -5 "$work/server.err" >&2
  exit 1
}

# run LABEL PORT PIDS ARGS...: one loadgen run; its JSON goes to load.jsonl.
run() {
  local label="$1" p="$2" pids="$3"
  shift 3
  "$LOADGEN" --port "$p" --server-pid "$pids" --label "$label" \
    --connections "$CONNECTIONS" --threads "$LOAD_THREADS" "$@" \
    >> "$out/load.jsonl" 2>> "$out/loadgen.log" || {
    echo "cold_auth: loadgen $label failed" >&2
    tail -5 "$out/loadgen.log" >&2
    exit 1
  }
  tail -1 "$out/loadgen.log"
}

for n in $sizes; do
  data="$work/data-$n"
  echo "== realm of $n users, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  "$POPULATE" --data "$data" --users "$n" > /dev/null
  start_server "$data"
  # Every user once, ping_only: their rows are fresh for the next 55 s.
  run "warmup/presenced/$n" "$port" "$server_pid" --mode closed --users "$n" \
    --warmup-only
  python3 -c 'import json,sys; s=json.loads(sys.argv[1])["seconds"]; s > 40 and print(f"cold_auth: warning: the warm-up took {s:.0f} s; pings past 55 s write")' \
    "$(tail -1 "$out/load.jsonl")"
  common=(--mode closed --users "$n" --base-cursor "$n" --duration "$seconds"
          --no-warmup)
  from=0
  for rep in $(seq 1 "$reps"); do
    run "cold/nginx/$n/$rep" "$nginx_port" "$nginx_pids" "${common[@]}" \
      --user-limit 0
    run "cold/presenced/$n/$rep" "$port" "$server_pid" "${common[@]}" \
      --rotate-from "$from"
    sent=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["ok"]+r["errors"]+r["dropped"])' \
      "$(tail -1 "$out/load.jsonl")")
    from=$(( (from + sent) % n ))
  done
  kill "$server_pid"
  wait "$server_pid" || { echo "cold_auth: presenced did not exit 0" >&2; exit 1; }
  server_pid=""
  rm -rf "$data"
done

python3 - "$out" << 'EOF' | tee "$out/summary.md"
import json, statistics, sys, os
out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "load.jsonl"))]
machine = open(os.path.join(out, "machine.txt")).read()
print("```\n" + machine.strip() + "\n```\n")
print("| users in rotation | presenced req/s | nginx req/s | ratio | "
      "server CPU µs/req presenced / nginx | 429 answers | rows/answer | "
      "requests/user/min (sustained) | presenced p99 ms |")
print("| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
sizes = sorted({int(r["label"].split("/")[2]) for r in rows
                if r["label"].startswith("cold/")})
for n in sizes:
    p = [r for r in rows if r["label"].startswith(f"cold/presenced/{n}/")]
    g = [r for r in rows if r["label"].startswith(f"cold/nginx/{n}/")]
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    prps, nrps = med(p, "rps"), med(g, "rps")
    print(f"| {n:,} | {prps:,.0f} | {nrps:,.0f} | **{prps / nrps:.2f}** | "
          f"{med(p, 'server_cpu_us_per_req'):.1f} / "
          f"{med(g, 'server_cpu_us_per_req'):.1f} | "
          f"{sum(r['rate_limited'] for r in p)} | "
          f"{med(p, 'rows_per_answer'):.2f} | "
          f"{max(r['user_rate_per_min'] for r in p):.0f} | "
          f"{med(p, 'p99_us') / 1e3:.2f} |")
print("\nMedians of the runs; ratio = median presenced req/s / median nginx "
      "req/s, the two interleaved run by run.")
EOF
echo "cold_auth: raw figures in $out"
