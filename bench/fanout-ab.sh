#!/usr/bin/env bash
# A/B of the fan-out benchmark (run-all.sh's part 3) between presenced
# binaries, interleaved run by run so that the neighbours' load falls on
# every binary alike: for each of RUNS rounds, each binary in turn is started
# fresh on a copy of the same data directory and driven by the same loadgen with W
# watchers (1k and 10k), exactly as run-all.sh drives it. Prints one line per
# run and the medians of p50/p99/max/trigger/server CPU per delivery.
#
# The server runs with its default flags (rate limit and I/O threads
# included; issue #17) except the two connection caps, which W watchers on
# one loopback address need raised: every watcher is a user of its own, so
# its register and re-polls stay far below the per-user limits.
#
# Usage: bench/fanout-ab.sh [--runs N] [--watchers "1000 10000"]
#          [--hold-ms MS] [--out DIR] LOADGEN BENCH_POPULATE NAME=PRESENCED...
# NAME=PRESENCED may carry arguments after the binary, split on spaces
# (paths without spaces): e.g. "floor2=build/release/fanout_floor
# --threads 2" for the machine's floor (bench/fanout_floor.cc), which
# takes the same flags as presenced here and ignores --data.
# --hold-ms: memory with many parked polls (issue #17): after the polls
# park, hold them MS ms more (past the server's 10-s malloc_trim) and read
# the server's RSS, the kernel's TCP buffer pages and the sockets' slab
# memory again; the summary adds bytes per parked poll and the slope of
# RSS over W (e.g. --watchers "1000 5000 10000 19000" --hold-ms 11000;
# the open-file hard limit, 20,000 here, bounds W).
# e.g.   bench/fanout-ab.sh --runs 3 build/fan/loadgen build/fan/bench_populate \
#          old=build/fan-base/presenced new=build/fan/presenced
# Output: DIR/fanout.jsonl (one loadgen object per run, label
# "fanout/NAME/W/RUN"), DIR/loadavg.txt (/proc/loadavg as each run ends),
# DIR/server-NAME-W-RUN.err (the server's stderr, if any). Loopback only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
runs=3
watchers="1000 10000"
hold_ms=0
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --watchers) watchers="$2"; shift 2 ;;
    --hold-ms) hold_ms="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -ge 3 ] || { sed -n '2,30p' "$0"; exit 2; }
loadgen="$1"
populate="$2"
shift 2
names=()
bins=()
for spec in "$@"; do
  names+=("${spec%%=*}")
  bins+=("${spec#*=}")
done
out="${out:-$(mktemp -d /tmp/fanout-ab.XXXXXX)}"
mkdir -p "$out"
work="$(mktemp -d /tmp/fanout-ab-work.XXXXXX)"
server_pid=""
cleanup() {
  bench_stop_quietly "$server_pid"
  rm -rf "$work"
}
trap cleanup EXIT

# The 10k fan-out needs 10k sockets on each side.
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
# Every server starts on a fresh copy: the trigger users' rows must be an
# hour old (the previous server's rounds made them fresh). Watchers are
# users [0, W), the trigger users come after the largest W.
max_w=0
for w in $watchers; do [ "$w" -gt "$max_w" ] && max_w="$w"; done
trigger_first=$(( max_w + 10 ))
"$populate" --data "$work/pristine" --users $(( max_w + 200 )) > /dev/null

start_server() {
  local cmd bin
  read -ra cmd <<< "$1"
  bin="${cmd[0]}"
  rm -rf "$work/data"
  cp -r "$work/pristine" "$work/data"
  : > "$work/server.out"
  # The server's defaults, rate limit included (issue #17: each watcher
  # registers once, parked polls are not counted, each trigger pings once).
  # The one departure: every watcher comes from 127.0.0.1, so the
  # connection caps (--max-connections 10,000 and 2,000 per address by
  # default) are raised to let 10,000 of them in, where the binary has them.
  local per_address=()
  if "${cmd[@]}" --help 2>&1 | grep -q -- '--max-connections-per-address'; then
    per_address=(--max-connections-per-address 20000)
  fi
  : > "$work/server.err"
  "${cmd[@]}" --listen 127.0.0.1:0 --data "$work/data" \
    --max-connections 20000 "${per_address[@]}" \
    >> "$work/server.out" 2>> "$work/server.err" &
  server_pid=$!
  bench_wait_listening "$server_pid" "$work/server.out" 5000 0.002 && return
  echo "fanout-ab: $bin did not start" >&2
  exit 1
}

for run in $(seq 1 "$runs"); do
  for w in $watchers; do
    for i in "${!bins[@]}"; do
      start_server "${bins[$i]}"
      sleep 1
      settle=$(( w >= 10000 ? 1500 * w / 10000 : 400 ))
      "$loadgen" --mode fanout --port "$port" --server-pid "$server_pid" \
        --watchers "$w" --watch-first 0 \
        --trigger-first "$trigger_first" --rounds 5 \
        --settle-ms "$settle" --hold-ms "$hold_ms" \
        --label "fanout/${names[$i]}/$w/$run" \
        >> "$out/fanout.jsonl" 2>> "$out/loadgen.log"
      tail -1 "$out/fanout.jsonl"
      # The machine's load as each run ends (shared machines: issue #17).
      echo "fanout/${names[$i]}/$w/$run $(cat /proc/loadavg)" >> "$out/loadavg.txt"
      kill "$server_pid"
      wait "$server_pid" || true
      server_pid=""
      # The server's own log of the run, if it wrote one (the scratch
      # directory's path replaced: results are committed).
      if [ -s "$work/server.err" ]; then
        sed "s#$work#WORKDIR#g" "$work/server.err" \
          > "$out/server-${names[$i]}-$w-$run.err"
      fi
    done
  done
done

python3 - "$out/fanout.jsonl" << 'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = {}
for r in rows:
    _, name, w, _ = r["label"].split("/")
    groups.setdefault((int(w), name), []).append(r)
keys = ["p50_ms", "p99_ms", "max_ms", "trigger_ms",
        "server_cpu_us_per_delivery", "server_user_us_per_delivery",
        "server_sys_us_per_delivery", "client_cpu_us_per_delivery"]
print("watchers binary runs " + " ".join(keys) + " (medians)")
for (w, name), rs in sorted(groups.items()):
    med = [statistics.median(r.get(k, -1) for r in rs) for k in keys]
    print(w, name, len(rs), " ".join(f"{m:.2f}" for m in med))
held = [r for r in rows if r.get("hold_ms", 0) > 0 and r.get("rss_held", -1) > 0]
if held:
    def per(r, a, b):
        return (r[b] - r[a]) / r["watchers"] if r[a] >= 0 and r[b] >= 0 else -1
    print("memory per parked poll, bytes (medians): watchers binary "
          "rss_at_park rss_held tcp_buffers socket_slab(both_ends)")
    mem = {}
    for r in held:
        _, name, w, _ = r["label"].split("/")
        mem.setdefault((int(w), name), []).append(r)
    for (w, name), rs in sorted(mem.items()):
        vals = [statistics.median(r["rss_per_parked_poll"] for r in rs),
                statistics.median(r["rss_per_parked_poll_held"] for r in rs),
                statistics.median(per(r, "tcp_buffer_bytes_before",
                                      "tcp_buffer_bytes_held") for r in rs),
                statistics.median(per(r, "socket_slab_bytes_before",
                                      "socket_slab_bytes_held") for r in rs)]
        print(w, name, " ".join(f"{v:.0f}" for v in vals))
    # The slope of held RSS over W (least squares): what one more parked
    # poll costs, whatever the fixed part.
    for name in sorted({n for _, n in mem}):
        pts = [(w, r["rss_held"] - r["rss_before"])
               for (w, n), rs in mem.items() if n == name for r in rs]
        if len({w for w, _ in pts}) < 2:
            continue
        mw = statistics.mean(w for w, _ in pts)
        my = statistics.mean(y for _, y in pts)
        slope = (sum((w - mw) * (y - my) for w, y in pts) /
                 sum((w - mw) ** 2 for w, _ in pts))
        print(f"slope {name}: {slope:.0f} resident bytes per parked poll "
              f"(least squares over {len(pts)} runs)")
EOF
echo "fanout-ab: raw figures in $out/fanout.jsonl"
