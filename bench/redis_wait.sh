#!/usr/bin/env bash
# bench/redis_wait.sh: what --redis-wait-replicas costs (issue #14, item 4).
#
# One redis-server master with one replica, both on loopback with
# persistence off, and one presenced node in front of them, measured with
# the same loadgen closed loop of modern pings in turn:
#   redis://        --redis-wait-replicas 0   (reference)
#   redis://        --redis-wait-replicas 1   (WAIT 1 after each write)
#   redis-sentinel:// (three sentinels)  --redis-wait-replicas 0
# Each configuration runs --rounds times, interleaved (A B C A B C ...), so
# that the machine's other load falls on all of them alike; the summary
# gives each run and the ratio of the medians to the reference. The WAIT
# rows depart from the defaults by design (they measure that flag) and say
# so. Two mixes:
#   read-mostly  --online users (20,000) pinging again and again, so their
#                pings fall under the 55 s rule and write nothing (WAIT
#                after a script that wrote nothing returns at once; it
#                still costs a round trip);
#   write-heavy  every other ping is the first of a user in an hour, so it
#                writes (--write-fraction 0.5, --cold-per-run such users per
#                run, each run a fresh range, bounded by --max-requests).
# The node runs with the server's defaults (issue #17: the rate limit on,
# one I/O thread per core): the load rotates over --online users, enough
# that none nears 200 requests a minute (every run reports its 429 answers,
# which must be 0), and the rate-limit logs in Redis are cleared before
# each run, as a fresh embedded node starts with none (bench/scaleout.sh).
#
# Usage: bench/redis_wait.sh [--build-dir DIR] [--out DIR] [--skip-build]
#                            [--duration S] [--rounds N] [--online N]
#                            [--connections N] [--cold-per-run N]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build_dir="$root/build/release-bench"
out="$root/build/bench-results/redis-wait-$(date +%Y%m%d-%H%M%S)"
skip_build=0
duration=10
rounds=2
connections=32
cold_per_run=20000
online=20000
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$(realpath -m "$2"); shift 2 ;;
    --out) out=$(realpath -m "$2"); shift 2 ;;
    --skip-build) skip_build=1; shift ;;
    --duration) duration="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --cold-per-run) cold_per_run="$2"; shift 2 ;;
    --online) online="$2"; shift 2 ;;
    *) echo "redis_wait: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
work=$(mktemp -d)
log() { echo "redis_wait: $*" >&2; }

if [ "$skip_build" = 0 ]; then
  log "building (Release) in $build_dir"
  cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPRESENCE_BUILD_BENCH=ON > /dev/null
  cmake --build "$build_dir" --target presenced loadgen bench_populate > /dev/null
fi
PRESENCED="$build_dir/presenced"
LOADGEN="$build_dir/loadgen"
POPULATE="$build_dir/bench_populate"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pids=()
node_pid=""
cleanup() {
  [ -n "$node_pid" ] && kill -9 "$node_pid" 2> /dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_ping() {  # PORT
  for _ in $(seq 1 200); do
    redis-cli -p "$1" ping 2> /dev/null | grep -q PONG && return 0
    sleep 0.05
  done
  log "nothing answers on $1"; exit 1
}

master_port=$(free_port)
mkdir -p "$work/master" "$work/replica"
redis-server --port "$master_port" --bind 127.0.0.1 --save "" \
  --appendonly no --repl-diskless-sync-delay 0 --dir "$work/master" > "$work/master.log" 2>&1 &
pids+=($!)
wait_ping "$master_port"
replica_port=$(free_port)
redis-server --port "$replica_port" --bind 127.0.0.1 --save "" \
  --appendonly no --dir "$work/replica" \
  --replicaof 127.0.0.1 "$master_port" > "$work/replica.log" 2>&1 &
pids+=($!)
wait_ping "$replica_port"
for _ in $(seq 1 200); do
  redis-cli -p "$master_port" info replication | grep -q 'state=online' && break
  sleep 0.05
done

secret_file="$work/cluster-secret"
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$secret_file")

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpus: $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "redis: $(redis-server --version | cut -d' ' -f3)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo '?')"
  echo "duration: ${duration}s per read-mostly run, rounds: $rounds, connections: $connections, online users: $online, write-heavy: $cold_per_run writing users per run"
  echo "server flags: the defaults (rate limit on) and the store; the WAIT rows add WAIT 1"
} | tee "$out/machine.txt" >&2

users=$((online + rounds * 3 * cold_per_run))
log "populating redis with $users users"
# Every row was written an hour ago; the realm's last update id is $users
# (the loadgen's --base-cursor).
"$POPULATE" --store "redis://127.0.0.1:$master_port" --users "$users" > /dev/null

# The sentinels start after the bulk load (which keeps redis busy for longer
# than down-after-milliseconds: they would fail the master over). No
# failover is expected during the runs; the summary checks that the master
# is still the master.
sentinel_ports=()
for i in 1 2 3; do
  p=$(free_port)
  mkdir -p "$work/s$i"
  cat > "$work/s$i/sentinel.conf" << EOF
port $p
bind 127.0.0.1
dir $work/s$i
sentinel monitor presence 127.0.0.1 $master_port 2
sentinel down-after-milliseconds presence 5000
sentinel failover-timeout presence 10000
EOF
  redis-sentinel "$work/s$i/sentinel.conf" > "$work/s$i.log" 2>&1 &
  pids+=($!)
  sentinel_ports+=("$p")
done
for p in "${sentinel_ports[@]}"; do wait_ping "$p"; done
sentinel_url="redis-sentinel://127.0.0.1:${sentinel_ports[0]},127.0.0.1:${sentinel_ports[1]},127.0.0.1:${sentinel_ports[2]}/presence"


# Each run starts with every user's rate-limit budget whole, as a new
# embedded node's is.
reset_rate_limits() {
  redis-cli -p "$master_port" --scan --pattern 'presenced:*:rate:*' |
    xargs -r -n 1000 redis-cli -p "$master_port" DEL > /dev/null
}

# run LABEL MIX ARGS...: one node with ARGS under the closed loop; MIX is
# "read" or "write" (the next range of cold users).
next_cold=$online
run() {
  local label=$1 mix=$2 line port="" extra=()
  shift 2
  if [ "$mix" = write ]; then
    extra=(--write-fraction 0.5 --cold-first "$next_cold"
           --cold-count "$cold_per_run" --max-requests $((2 * cold_per_run)))
    next_cold=$((next_cold + cold_per_run))
  fi
  reset_rate_limits
  : > "$work/node.out"
  "$PRESENCED" --listen 127.0.0.1:0 --data "$work/unused" \
    --cluster-secret-file "$secret_file" "$@" > "$work/node.out" 2>> "$work/node.err" &
  node_pid=$!
  for _ in $(seq 1 5000); do
    IFS= read -r line < "$work/node.out" || true
    if [[ "$line" == "listening on http://127.0.0.1:"* ]]; then
      port="${line##*:}"; break
    fi
    sleep 0.002
  done
  [ -n "$port" ] || { log "presenced did not start"; tail -5 "$work/node.err" >&2; exit 1; }
  "$LOADGEN" --port "$port" --mode closed --connections "$connections" \
    --duration "$duration" --users "$online" --base-cursor "$users" \
    "${extra[@]}" --label "$label" \
    >> "$out/runs.jsonl" 2>> "$out/loadgen.log"
  kill "$node_pid"; wait "$node_pid" 2> /dev/null || true; node_pid=""
}

: > "$out/runs.jsonl"
for r in $(seq 1 "$rounds"); do
  log "round $r"
  for mix in read write; do
    run "$mix-redis" "$mix" --store "redis://127.0.0.1:$master_port"
    # bench-extra: what WAIT costs, rows labelled as departing from the defaults
    run "$mix-redis-wait1" "$mix" --store "redis://127.0.0.1:$master_port" \
      --redis-wait-replicas 1
    run "$mix-sentinel" "$mix" --store "$sentinel_url"
  done
done

echo "master's role at the end: $(redis-cli -p "$master_port" role | head -1)" \
  | tee -a "$out/machine.txt" >&2

python3 - "$out" > "$out/summary.md" << 'EOF'
import json, statistics, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/runs.jsonl") if l.strip()]
names = {"redis": "redis://, no WAIT (reference)",
         # bench-extra: the label of the extra rows
         "redis-wait1": "redis://, --redis-wait-replicas 1 (extra row, departs from the defaults)",
         "sentinel": "redis-sentinel://, no WAIT"}
print("| mix | setup | requests/s (each run) | median vs reference | p50 ms (median) | p99 ms (median) | writes | errors | 429 answers |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for mix in ("read", "write"):
    def runs(l):
        return [r for r in rows if r["label"] == f"{mix}-{l}"]
    ref = statistics.median(r["rps"] for r in runs("redis"))
    for l in names:
        g = runs(l)
        each = ", ".join("%.0f" % r["rps"] for r in g)
        med = statistics.median(r["rps"] for r in g)
        p50 = statistics.median(r["p50_us"] for r in g) / 1e3
        p99 = statistics.median(r["p99_us"] for r in g) / 1e3
        print(f"| {mix} | {names[l]} | {each} | {med / ref:.2f} | "
              f"{p50:.2f} | {p99:.2f} | {sum(r['writes'] for r in g)} | "
              f"{sum(r['errors'] for r in g)} | "
              f"{sum(r.get('rate_limited', 0) for r in g)} |")
EOF
cat "$out/summary.md"
