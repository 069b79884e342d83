#!/usr/bin/env bash
# Memory per user with everyone online (issue #17, item 3): a realm of N
# users (default 1,000,000) where every user pinged in the last minute (so
# every row is fresh, the status tracker follows everyone, and the rate
# limiter, on at its default 200/min, keeps a log for everyone), 10% of them
# from a second client (two client rows), and 10,000 event queues.
#
# Usage: bench/memory.sh [--users N] [--second-client-percent P]
#          [--queues Q] [--build-dir DIR] [--out DIR] [--no-extra-rows]
# (default build: build/release; build it with
#  cmake --preset release && cmake --build --preset release \
#    --target presenced loadgen bench_populate)
#
# The server runs with its default flags. The users are written by
# bench_populate (as run-all.sh does; rows an hour old), then everything
# else goes through the public API, in this order: Q users register one
# queue each (event_types `user_settings`, nothing fetched: so that the
# million "came online" events of the next steps do not overflow and drop
# them; a queue's memory here is its structure, not events), P% of the
# users ping as the mobile app (`ZulipMobile`), then every user pings
# (loadgen's warm-up: `status=active`, no User-Agent, so its client row is
# `Unspecified`): P% end with two client rows. The last step is the state
# of issue #17 item 3 (rows fresh, the status tracker following everyone,
# the limiter's logs of the last minute, P% with two client rows, Q
# queues), read within the minute after it and long before anyone goes
# offline (230 s after their ping).
# After each step it waits for the server's flush thread to go round twice
# and look at the heap once (it trims when RSS grew since it last settled;
# events in /metrics, not a fixed sleep), then
# reads the server's resident memory (VmRSS) and the allocator's bytes in
# use (malloc in use + mmapped, from /metrics). Per user = (figure - empty
# server) / N; each step's share is its difference / N.
#
# Extra rows (they depart from the defaults and say so; --no-extra-rows
# skips them): the same with `--rate-limit 0`, whose difference is the
# rate limiter's share.
#
# Output: a table on stdout, and in --out DIR (default
# build/bench-results/memory-<date>): steps.jsonl (one object per step),
# summary.txt (the table), machine.txt (the binary's --version and the
# tree's commit, load average before and after).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
. "$here/lib.sh"
users=1000000
second_percent=10
queues=10000
build="$root/build/release"
out=""
extra_rows=1
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users="$2"; shift 2 ;;
    --second-client-percent) second_percent="$2"; shift 2 ;;
    --queues) queues="$2"; shift 2 ;;
    --build-dir) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-extra-rows) extra_rows=0; shift ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "memory.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bench_require_built memory.sh "$build" "" presenced loadgen bench_populate
[ -n "$out" ] || out="$root/build/bench-results/memory-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
: > "$out/steps.jsonl"
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true

work="$(mktemp -d /tmp/presenced-memory.XXXXXX)"
server_pid=""
cleanup() {
  bench_stop_quietly "$server_pid"
  rm -rf "$work"
}
trap cleanup EXIT

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  # What was measured is the binary: its --version names the commit its
  # build directory was configured from (a later commit built without
  # reconfiguring keeps the old name). The source tree's HEAD is kept
  # beside it, since the binary may come from another tree or commit.
  version="$("$build/presenced" --version 2> /dev/null | head -1 || true)"
  echo "binary: ${version:-unknown (a build without --version)}"
  echo "tree: $(git -C "$root" rev-parse --short=12 HEAD 2> /dev/null || echo unknown)$(git -C "$root" diff --quiet HEAD 2> /dev/null || echo ' (with uncommitted changes)')"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/machine.txt"

# start_server DATA_DIR FLAGS...: sets server_pid and port.
start_server() {
  local data="$1"
  shift
  : > "$work/server.out"
  "$build/presenced" --listen 127.0.0.1:0 --data "$data" "$@" \
    >> "$work/server.out" 2>> "$work/server.err" &
  server_pid=$!
  if ! bench_wait_listening "$server_pid" "$work/server.out" 30000 0.01; then
    echo "memory.sh: presenced did not start" >&2
    tail -5 "$work/server.err" >&2
    exit 1
  fi
}

stop_server() {
  kill "$server_pid"
  wait "$server_pid" || { echo "memory.sh: presenced did not exit 0" >&2; exit 1; }
  server_pid=""
}

metric() {  # metric NAME: its value in the server's /metrics, or 0
  curl -s -m 20 "http://127.0.0.1:$port/metrics" |
    awk -v n="$1" '$1 == n {printf "%.0f\n", $2; found=1} END {if (!found) print 0}'
}

# settle: waits until the server's flush thread has gone round twice (each
# round flushes what is dirty, then samples the heap) and looked once since
# the call whether to trim the heap (it trims when RSS grew since it last
# settled), so the figures read after it describe the state the step left
# (at most 90 s).
settle() {
  local s0 c0
  s0=$(metric presenced_malloc_samples_total)
  c0=$(metric presenced_malloc_trim_checks_total)
  for _ in $(seq 1 450); do
    if [ "$(metric presenced_malloc_samples_total)" -gt $(( s0 + 1 )) ] &&
       [ "$(metric presenced_malloc_trim_checks_total)" -gt "$c0" ]; then
      return 0
    fi
    sleep 0.2
  done
  echo "memory.sh: warning: the server did not flush, sample and look at the heap within 90 s" >&2
}

# record RUN STEP: the server's figures now, appended to steps.jsonl.
record() {
  local rss heap
  rss=$(awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$server_pid/status")
  heap=$(( $(metric presenced_malloc_in_use_bytes) + $(metric presenced_malloc_mmap_bytes) ))
  echo "{\"run\":\"$1\",\"step\":\"$2\",\"rss\":$rss,\"heap\":$heap,\"load\":\"$(cut -d' ' -f1 /proc/loadavg)\"}" >> "$out/steps.jsonl"
  echo "memory.sh: $1 / $2: RSS $(( rss / 1048576 )) MiB, heap $(( heap / 1048576 )) MiB (load $(cut -d' ' -f1 /proc/loadavg))" >&2
}

# clients FIRST COUNT: COUNT users from FIRST ping once more as the mobile
# app, over keep-alive connections.
clients() {
  python3 - "$port" "$1" "$2" <<'EOF'
import base64, http.client, sys
from concurrent.futures import ThreadPoolExecutor
port, first, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def auth(i):
    cred = "u%d@bench.example:bk%030d" % (i, i)
    return "Basic " + base64.b64encode(cred.encode()).decode()
def run(part):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for i in range(first + part, first + count, 8):
        conn.request("POST", "/api/v1/users/me/presence",
                     "status=active&ping_only=true",
                     {"Authorization": auth(i),
                      "User-Agent": "ZulipMobile/27.200 (Android 14)",
                      "Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse(); r.read()
        if r.status != 200:
            sys.exit("memory.sh: ping of user %d: %d" % (i, r.status))
with ThreadPoolExecutor(8) as ex:
    list(ex.map(run, range(8)))
EOF
}

# register COUNT: users 0..COUNT-1 register one event queue each.
register() {
  python3 - "$port" "$1" <<'EOF'
import base64, http.client, json, sys
from concurrent.futures import ThreadPoolExecutor
port, count = int(sys.argv[1]), int(sys.argv[2])
body = "event_types=%5B%22user_settings%22%5D&fetch_event_types=%5B%5D"
def run(part):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for i in range(part, count, 8):
        cred = "u%d@bench.example:bk%030d" % (i, i)
        conn.request("POST", "/api/v1/register", body,
                     {"Authorization": "Basic " + base64.b64encode(cred.encode()).decode(),
                      "User-Agent": "ZulipMobile/27.200 (Android 14)",
                      "Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse(); data = r.read()
        if r.status != 200 or "queue_id" not in json.loads(data):
            sys.exit("memory.sh: register of user %d: %d %s" % (i, r.status, data[:200]))
with ThreadPoolExecutor(8) as ex:
    list(ex.map(run, range(8)))
EOF
}

# The empty server: the baseline.
mkdir -p "$work/empty"
start_server "$work/empty"
settle
record empty empty
stop_server

echo "memory.sh: populating $users users" >&2
"$build/bench_populate" --data "$work/data" --users "$users" > "$work/populate.json"
cp -r "$work/data" "$work/data-pristine"

# one_run NAME FLAGS...: the steps, on a copy of the populated directory.
one_run() {
  local name="$1"
  shift
  rm -rf "$work/data"
  cp -r "$work/data-pristine" "$work/data"
  start_server "$work/data" "$@"
  settle
  record "$name" at_rest
  register "$queues"
  settle
  record "$name" queues
  clients 0 $(( users * second_percent / 100 ))
  settle
  record "$name" mobile_first
  # Everyone pings (the loadgen's warm-up), then a few measured incremental
  # pings with a cursor past the end (empty answers).
  "$build/loadgen" --port "$port" --mode closed --users "$users" \
    --connections 64 --duration 0.2 --max-requests 64 \
    --base-cursor 1000000000000 > "$work/loadgen.json" 2>> "$out/loadgen.log"
  settle
  record "$name" everyone_online
  stop_server
}

one_run defaults
if [ "$extra_rows" = 1 ]; then
  # bench-extra: the limiter's share, its own row labelled as a departure
  one_run rate_limit_0 --rate-limit 0
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"

python3 - "$out/steps.jsonl" "$users" "$second_percent" "$queues" <<'EOF' | tee "$out/summary.txt"
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1])]
users, pct, queues = int(sys.argv[2]), sys.argv[3], sys.argv[4]
by = {(s["run"], s["step"]): s for s in steps}
empty = by[("empty", "empty")]
names = {
    "at_rest": "users at rest (rows an hour old)",
    "queues": queues + " event queues",
    "mobile_first": pct + "% ping as the mobile app (row, status, limiter log, 1st client row)",
    "everyone_online": "everyone pings (the rest: row, status, limiter log, 1st client row; the " + pct + "%: 2nd client row, 2nd log entry): the whole state",
}
print("users: %d; empty server: RSS %.1f MiB, heap %.1f MiB" %
      (users, empty["rss"] / 2**20, empty["heap"] / 2**20))
print()
print("| run | step | RSS per user | its share | heap per user | its share | load |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for run in ("defaults", "rate_limit_0"):
    prev = None
    for step in ("at_rest", "queues", "mobile_first", "everyone_online"):
        s = by.get((run, step))
        if s is None:
            continue
        rss = (s["rss"] - empty["rss"]) / users
        heap = (s["heap"] - empty["heap"]) / users
        share = "" if prev is None else "%+.0f B" % (rss - prev[0])
        hshare = "" if prev is None else "%+.0f B" % (heap - prev[1])
        # bench-extra: the label of the extra row
        label = run if run == "defaults" else "`--rate-limit 0` (departs from the defaults)"
        print("| %s | %s | **%.0f B** | %s | %.0f B | %s | %s |" %
              (label, names[step], rss, share, heap, hshare, s["load"]))
        prev = (rss, heap)
d = by.get(("defaults", "everyone_online"))
z = by.get(("rate_limit_0", "everyone_online"))
if d and z:
    print()
    # bench-extra: the difference with the extra row
    print("rate limiter (defaults - --rate-limit 0, after everyone pinged): "
          "RSS %+.0f B per user, heap %+.0f B per user" %
          ((d["rss"] - z["rss"]) / users, (d["heap"] - z["heap"]) / users))
EOF
