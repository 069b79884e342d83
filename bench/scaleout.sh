#!/usr/bin/env bash
# bench/scaleout.sh: the scale-out figures of issue #7, on loopback only.
#
#   1. Throughput of 1, 2 and 3 presenced nodes sharing one redis-server
#      (closed loop, the same total number of connections spread over the
#      nodes, one loadgen per node at once), next to the embedded SQLite
#      node measured in the same run.
#   2. Cross-node event delivery: watchers' long polls parked on node 2, the
#      ping that triggers the event sent to node 1 (and, for reference, to
#      node 2 itself).
#   3. A node killed (SIGKILL) under open-loop load: what the clients of the
#      other nodes saw, and what the killed node's clients saw.
#
# Usage: bench/scaleout.sh [--build-dir DIR] [--out DIR] [--skip-build]
#                          [--users N] [--duration S]
# Needs redis-server (scripts/install-deps.sh installs it). The redis-server
# started here has persistence off; it listens on 127.0.0.1 only.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build_dir="$root/build/release-bench"
out="$root/build/bench-results/scaleout-$(date +%Y%m%d-%H%M%S)"
skip_build=0
users=10000
duration=10
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$(realpath -m "$2"); shift 2 ;;
    --out) out=$(realpath -m "$2"); shift 2 ;;
    --skip-build) skip_build=1; shift ;;
    --users) users="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    *) echo "scaleout: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
work=$(mktemp -d)
log() { echo "scaleout: $*" >&2; }

if [ "$skip_build" = 0 ]; then
  log "building (Release) in $build_dir"
  cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPRESENCE_BUILD_BENCH=ON > /dev/null
  cmake --build "$build_dir" --target presenced loadgen bench_populate > /dev/null
fi
PRESENCED="$build_dir/presenced"
LOADGEN="$build_dir/loadgen"
POPULATE="$build_dir/bench_populate"
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

redis_pid=""
node_pids=()
node_ports=()
cleanup() {
  for p in "${node_pids[@]}"; do kill -9 "$p" 2> /dev/null || true; done
  [ -n "$redis_pid" ] && kill "$redis_pid" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start_redis() {
  redis_port=$(free_port)
  mkdir -p "$work/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" \
    --appendonly no --dir "$work/redis" > "$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 1 200); do
    redis-cli -p "$redis_port" ping 2> /dev/null | grep -q PONG && return 0
    sleep 0.05
  done
  log "redis-server did not start"; exit 1
}
# Each Redis run starts with every user's rate-limit budget whole, as the
# embedded node's (a new process) does: since the lease of issue #14 the
# Redis runs are fast enough that one user's requests over the runs of one
# minute would pass Zulip's 200 a minute, and a run would measure 429s.
reset_rate_limits() {
  redis-cli -p "$redis_port" --scan --pattern 'presenced:*:rate:*' |
    xargs -r -n 1000 redis-cli -p "$redis_port" DEL > /dev/null
}
stop_redis() { kill "$redis_pid"; wait "$redis_pid" 2> /dev/null || true; redis_pid=""; }

# The secret every node of the group signs its relays with (presenced wants
# it readable only by the service).
secret_file="$work/cluster-secret"
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$secret_file")

# start_node ARGS...: starts presenced, appends its pid and port.
start_node() {
  local i=${#node_pids[@]} line port=""
  : > "$work/node$i.out"
  # The server's defaults (the rate limit on, one I/O thread per core):
  # what an operator runs.
  # ... except the per-address connection cap: every client of this
  # benchmark is 127.0.0.1.
  local per_address=()
  if "$PRESENCED" --help 2>&1 | grep -q -- '--max-connections-per-address'; then
    per_address=(--max-connections-per-address 20000)
  fi
  "$PRESENCED" --listen 127.0.0.1:0 "${per_address[@]}" "$@" > "$work/node$i.out" 2>> "$work/node$i.err" &
  node_pids+=($!)
  for _ in $(seq 1 5000); do
    IFS= read -r line < "$work/node$i.out" || true
    if [[ "$line" == "listening on http://127.0.0.1:"* ]]; then
      port="${line##*:}"; break
    fi
    sleep 0.002
  done
  [ -n "$port" ] || { log "presenced did not start"; tail -5 "$work/node$i.err" >&2; exit 1; }
  node_ports+=("$port")
}
stop_nodes() {
  for p in "${node_pids[@]}"; do kill "$p" 2> /dev/null || true; done
  for p in "${node_pids[@]}"; do wait "$p" 2> /dev/null || true; done
  node_pids=(); node_ports=()
}

json() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d[sys.argv[1]])' "$1"; }

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpus: $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "redis: $(redis-server --version | cut -d' ' -f3)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo '?')"
  echo "server binary: $("$PRESENCED" --version 2>&1 | head -1)"
  echo "users: $users, duration: ${duration}s per run"
} | tee "$out/machine.txt" >&2

# ------------------------------------------------------------ throughput
connections=96
# All but 2,000 users ping (from a shared cursor: incremental answers from
# the first), so that no user passes Zulip's default limit (200 requests a
# minute) within a run: a run measures answers, not 429s. The last 2,000
# stay offline for the fan-out (watchers, and users who come online).
online=$((users - 2000))
results="$out/throughput.jsonl"
: > "$results"

log "embedded SQLite node (reference)"
"$POPULATE" --data "$work/sqlite" --users "$users" > /dev/null
start_node --data "$work/sqlite"
"$LOADGEN" --port "${node_ports[0]}" --mode closed --connections "$connections" \
  --duration "$duration" --users "$online" --base-cursor 0 --label "sqlite-1" >> "$results" 2> /dev/null
stop_nodes

start_redis
log "populating redis with $users users"
"$POPULATE" --store "redis://127.0.0.1:$redis_port" --users "$users" > /dev/null
for n in 1 2 3; do
  log "$n node(s) on redis"
  reset_rate_limits
  for _ in $(seq 1 "$n"); do
    start_node --store "redis://127.0.0.1:$redis_port" \
      --cluster-secret-file "$secret_file" --data "$work/unused"
  done
  pids=()
  for i in $(seq 0 $((n - 1))); do
    "$LOADGEN" --port "${node_ports[$i]}" --mode closed \
      --connections $((connections / n)) --duration "$duration" \
      --users "$online" --base-cursor 0 --label "redis-$n-node$i" > "$work/lg$i.json" 2> /dev/null &
    pids+=($!)
  done
  if [ "$n" = 1 ]; then
    redis-cli -p "$redis_port" CONFIG RESETSTAT > /dev/null
    redis-cli -p "$redis_port" INFO cpu > "$out/cpu-before-1node.txt"
  fi
  for p in "${pids[@]}"; do wait "$p"; done
  if [ "$n" = 1 ]; then
    # What one node's pings cost Redis: commands and CPU time per request.
    redis-cli -p "$redis_port" INFO commandstats > "$out/commandstats-1node.txt"
    redis-cli -p "$redis_port" INFO cpu > "$out/cpu-after-1node.txt"
  fi
  for i in $(seq 0 $((n - 1))); do cat "$work/lg$i.json" >> "$results"; done
  stop_nodes
done

# What the shared rate limit costs (the same run, one node, limit off).
# bench-extra: the limit's cost, a row labelled as departing from the defaults
log "1 node on redis, --rate-limit 0 (the limit's cost)"
reset_rate_limits
start_node --store "redis://127.0.0.1:$redis_port" --rate-limit 0 \
  --cluster-secret-file "$secret_file" --data "$work/unused"
"$LOADGEN" --port "${node_ports[0]}" --mode closed --connections "$connections" \
  --duration "$duration" --users "$online" --base-cursor 0 \
  --label "redis-nolimit" >> "$results" 2> /dev/null
stop_nodes
# The runs above spent every user's budget of the minute (Zulip's default
# limit, 200 requests); the phases below measure delivery and failure, not
# the limit: the logs are emptied.
redis-cli -p "$redis_port" --scan --pattern 'presenced:*:rate:*' |
  xargs -r -n 500 redis-cli -p "$redis_port" DEL > /dev/null

# ------------------------------------------------------------ fan-out
log "cross-node event delivery (1000 watchers on node 2)"
for _ in 1 2 3; do start_node --store "redis://127.0.0.1:$redis_port" \
      --cluster-secret-file "$secret_file" --data "$work/unused"; done
fanout="$out/fanout.jsonl"
: > "$fanout"
"$LOADGEN" --port "${node_ports[1]}" --trigger-port "${node_ports[0]}" \
  --mode fanout --watchers 1000 --watch-first "$online" \
  --trigger-first $((online + 1000)) \
  --rounds 5 --label "trigger-on-node1" >> "$fanout" 2> "$out/fanout1.err"
"$LOADGEN" --port "${node_ports[1]}" --mode fanout --watchers 1000 \
  --watch-first "$online" --trigger-first $((online + 1010)) --rounds 5 \
  --label "trigger-on-node2" >> "$fanout" 2> "$out/fanout2.err"

# ------------------------------------------------------------ kill a node
log "killing node 3 under load"
kill_log="$out/kill.jsonl"
: > "$kill_log"
pids=()
for i in 0 1 2; do
  "$LOADGEN" --port "${node_ports[$i]}" --mode open --rate 1000 \
    --connections 32 --duration "$duration" --users "$online" \
    --label "kill-node$((i + 1))" > "$work/kill$i.json" 2> /dev/null &
  pids+=($!)
done
sleep $((duration / 2))
kill -9 "${node_pids[2]}"
killed_at=$(date +%s.%N)
for p in "${pids[@]}"; do wait "$p" || true; done
for i in 0 1 2; do cat "$work/kill$i.json" >> "$kill_log" || true; done
unset 'node_pids[2]'
# The survivors still answer, and still agree.
status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${node_ports[0]}/healthz" || true)
stop_nodes
stop_redis

# ------------------------------------------------------------ summary
python3 - "$out" "$status" > "$out/summary.md" << 'EOF'
import json, sys
out, health = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(f"{out}/throughput.jsonl") if l.strip()]
ref = next(r for r in rows if r["label"] == "sqlite-1")
print("| setup | requests/s (sum) | vs embedded | p50 ms | p99 ms (worst node) | errors |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
print(f"| 1 node, SQLite | {ref['rps']:.0f} | 1.00 | {ref['p50_us']/1e3:.2f} | {ref['p99_us']/1e3:.2f} | {ref['errors']} |")
for n in (1, 2, 3):
    g = [r for r in rows if r["label"].startswith(f"redis-{n}-")]
    rps = sum(r["rps"] for r in g)
    print(f"| {n} node(s), Redis | {rps:.0f} | {rps/ref['rps']:.2f} | "
          f"{max(r['p50_us'] for r in g)/1e3:.2f} | {max(r['p99_us'] for r in g)/1e3:.2f} | "
          f"{sum(r['errors'] for r in g)} |")
for r in rows:
    if r["label"] == "redis-nolimit":
        # bench-extra: the label of the extra row
        print(f"| 1 node, Redis, --rate-limit 0 (extra row, departs from the defaults: the limit's cost) | {r['rps']:.0f} | "
              f"{r['rps']/ref['rps']:.2f} | {r['p50_us']/1e3:.2f} | {r['p99_us']/1e3:.2f} | {r['errors']} |")
one = [r for r in rows if r["label"].startswith("redis-1-")][0]
stats = {}
for l in open(f"{out}/commandstats-1node.txt"):
    if l.startswith("cmdstat_"):
        name, _, rest = l.strip().partition(":")
        stats[name[8:]] = dict(kv.split("=") for kv in rest.split(","))
def cpu(path):
    f = dict(l.strip().split(":") for l in open(path) if ":" in l)
    return float(f["used_cpu_user"]) + float(f["used_cpu_sys"])
redis_cpu_us = (cpu(f"{out}/cpu-after-1node.txt") - cpu(f"{out}/cpu-before-1node.txt")) * 1e6
requests = one["ok"] + one["errors"]
# Sent by the node: scripts (the commands they run inside are listed by
# Redis too, but are not round trips) and anything else it sends itself.
scripts = sum(int(stats[c]["calls"]) for c in ("evalsha", "eval") if c in stats)
inner = ", ".join(f"{k} {v['calls']}" for k, v in sorted(stats.items())
                  if k not in ("evalsha", "eval", "config", "info"))
print()
print(f"Redis cost of one node's requests ({requests} requests answered): "
      f"{scripts / requests:.2f} scripts (round trips) per request; "
      f"{redis_cpu_us / requests:.1f} us of Redis CPU per request (INFO cpu, "
      f"networking and the feed included), so one Redis core serves about "
      f"{requests / redis_cpu_us * 1e6:.0f} requests/s; evalsha's own time "
      f"{int(stats.get('evalsha', {}).get('usec', 0)) / max(scripts, 1):.1f} us per call "
      f"(INFO commandstats; inside the scripts: {inner}).")
print()
print("| event delivery, 1000 watchers on node 2 | p50 ms | p99 ms | max ms |")
print("| --- | ---: | ---: | ---: |")
for l in open(f"{out}/fanout.jsonl"):
    r = json.loads(l)
    print(f"| {r['label']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} |")
print()
print("| node 3 killed mid-run (open loop, 1000 req/s per node) | ok | errors | p99 ms | max ms |")
print("| --- | ---: | ---: | ---: | ---: |")
for l in open(f"{out}/kill.jsonl"):
    if not l.strip():
        continue
    r = json.loads(l)
    print(f"| {r['label']} | {r['ok']} | {r['errors']} | {r['p99_us']/1e3:.1f} | {r['max_us']/1e3:.1f} |")
print()
print(f"/healthz of node 1 after the kill: {health}")
EOF
{
  echo
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  sed 's/^/- /' "$out/machine.txt"
} >> "$out/summary.md"
cat "$out/summary.md"
