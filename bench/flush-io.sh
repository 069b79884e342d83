#!/usr/bin/env bash
# The cost of SQLite persistence under the million load's pings (issue #17
# item 5): starts presenced (default flags unless --server-flag, a fresh
# embedded store on loopback), imports --users users, runs bench/million.cc
# with no watchers and no churn (only every user's once-a-minute ping,
# 16,700 pings/s for 1M users) and, over --seconds after --skip seconds,
# reads the server's CPU and every thread's read/write syscalls and bytes
# from /proc (the thread with the most reads is the flusher: the I/O threads
# read sockets with recvmsg/read too, so the table lists every busy thread),
# the WAL file's size, and the flush counters of /metrics. Prints one
# key=value line per figure on stdout.
#
# Usage: bench/flush-io.sh [--users N] [--seconds S] [--skip S]
#          [--build-dir DIR] [--server-flag FLAG]...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
. "$here/lib.sh"
users=1000000
seconds=60
skip=30
build="$root/build/release"
server_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --skip) skip="$2"; shift 2 ;;
    --build-dir) build="$2"; shift 2 ;;
    --server-flag) server_flags+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "flush-io.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bench_require_built flush-io.sh "$build" \
  " (cmake --build --preset release --target presenced presencectl million)" \
  presenced presencectl million
ulimit -n "$(ulimit -Hn)"
work="$(mktemp -d -t presenced-flushio.XXXXXX)"
server_pid=""
gen_pid=""
cleanup() {
  # The generator forks one process per --procs: stop them, then it.
  if [ -n "$gen_pid" ]; then
    pkill -P "$gen_pid" 2> /dev/null || true
    kill "$gen_pid" 2> /dev/null || true
  fi
  bench_stop_quietly "$server_pid"
  rm -rf "$work"
}
trap cleanup EXIT
export PRESENCED_ADMIN_TOKEN="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkfifo "$work/out"
"$build/presenced" --listen 127.0.0.1:0 --data "$work/data" \
  "${server_flags[@]}" > "$work/out" 2> "$work/server.log" &
server_pid=$!
read -r line < "$work/out" || { tail -3 "$work/server.log" >&2; exit 1; }
url="${line#listening on }"
cat "$work/out" > /dev/null &
hostport="${url#http://}"
hostport="${hostport%/}"
export PRESENCECTL_SERVER="$url"
ctl="$build/presencectl"
realm=$("$ctl" realm create "" "Million" | awk '$1 == "realm_id" {print $2}')
python3 -c "
import sys
n = int(sys.argv[1])
print('email,full_name')
for i in range(n): print(f'm{i}@million.example,Member {i}')" "$users" > "$work/users.csv"
"$ctl" import "$realm" "$work/users.csv" --keys-file "$work/keys.csv" > /dev/null
"$build/million" --server "$hostport" --keys "$work/keys.csv" --watchers 0 \
  --churn 0 --warmup 0 --duration $((skip + seconds + 30)) --interval 5 \
  --server-pid "$server_pid" --csv "$work/million.csv" 2> "$work/million.log" &
gen_pid=$!
sleep "$skip"
snap() {  # cpu ticks of the process; per thread: tid syscr syscw rchar wchar ticks
  awk '{print "proc", $14 + $15}' "/proc/$server_pid/stat"
  for t in /proc/$server_pid/task/*; do
    awk -v tid="${t##*/}" '
      FILENAME ~ /io$/ {v[$1] = $2; next}
      {ticks = $14 + $15}
      END {print "thread", tid, v["syscr:"], v["syscw:"], v["rchar:"], v["wchar:"], ticks}' \
      "$t/io" "$t/stat" 2> /dev/null || true
  done
  curl -s "$url/metrics" | awk '/^presenced_(flushes_total|flushed_rows_total|flush_seconds_total|sqlite_[a-z_]*|pings_total) / {print "metric", $1, $2}'
}
snap > "$work/a"
wal_max=0
for _ in $(seq "$seconds"); do
  sleep 1
  w=$(stat -c %s "$work/data/"*-wal 2> /dev/null | head -1 || echo 0)
  [ "${w:-0}" -le "$wal_max" ] || wal_max=$w
done
snap > "$work/b"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
hz=$(getconf CLK_TCK)
python3 - "$work/a" "$work/b" "$seconds" "$hz" "$wal_max" "$load" "$work/data" << 'PY'
import os, sys
a, b, secs, hz, wal_max, load, data = sys.argv[1:8]
secs, hz = float(secs), float(hz)
def parse(p):
    d = {"thread": {}, "metric": {}}
    for line in open(p):
        f = line.split()
        if f[0] == "proc": d["proc"] = float(f[1])
        elif f[0] == "thread": d["thread"][f[1]] = [float(x) for x in f[2:]]
        elif f[0] == "metric": d["metric"][f[1]] = float(f[2])
    return d
A, B = parse(a), parse(b)
m = lambda k: B["metric"].get(k, 0) - A["metric"].get(k, 0)
cpu = (B["proc"] - A["proc"]) / hz / secs
flushes = m("presenced_flushes_total")
rows = m("presenced_flushed_rows_total")
print(f"load={load.replace(' ', '/')}")
print(f"server_cpu_cores={cpu:.3f} pings_per_s={m('presenced_pings_total') / secs:.0f}")
print(f"flushes={flushes:.0f} rows_per_s={rows / secs:.0f} "
      f"flush_ms_mean={1000 * m('presenced_flush_seconds_total') / max(flushes, 1):.1f}")
if rows:
    print(f"server_cpu_us_per_flushed_row={1e6 * cpu * secs / rows:.2f}")
    pr, pw = m("presenced_sqlite_pages_read_total"), m("presenced_sqlite_pages_written_total")
    if pr or pw:
        print(f"sqlite_pages_read_per_row={pr / rows:.2f} sqlite_pages_written_per_row={pw / rows:.2f}")
print(f"wal_max_bytes={wal_max}")
for f in sorted(os.listdir(data)):
    print(f"file {f} {os.path.getsize(os.path.join(data, f))}")
rowsout = []
for tid, v in B["thread"].items():
    u = A["thread"].get(tid)
    if not u: continue
    d = [(x - y) / secs for x, y in zip(v, u)]
    if d[0] + d[1] < 1: continue
    rowsout.append((d[4] / hz, tid, d))
for cores, tid, d in sorted(rowsout, reverse=True):
    per_row = f" reads/row={d[0] * secs / rows:.2f} writes/row={d[1] * secs / rows:.2f}" if rows else ""
    print(f"thread {tid}: cpu={cores:.3f} cores reads/s={d[0]:.0f} writes/s={d[1]:.0f} "
          f"read_MB/s={d[2] / 1e6:.1f} write_MB/s={d[3] / 1e6:.1f}{per_row}")
for k in sorted(B["metric"]):
    if k.startswith("presenced_sqlite"): print(f"metric {k} {B['metric'][k]:.0f}")
PY
grep -o 'measuring.*\|warm-up.*' "$work/million.log" | tail -2 >&2 || true
