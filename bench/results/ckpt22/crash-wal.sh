#!/usr/bin/env bash
# The WAL a kill -9 leaves behind at the million load, and what it costs the
# next start (ckpt22, issue #17 item 5). Starts BUILD/presenced on a fresh
# store, imports USERS users, runs the million generator with pings only
# (no watchers, no churn) and, 20 s into them, watches the WAL index's frame
# count (mxFrame, offset 16 of the -shm file); once it reaches FRAMES, kill -9
# the server. Then times ROUNDS starts of the same binary to its "listening
# on" line, alternating: a copy of the crashed directory (SQLite rebuilds the
# WAL index from every valid frame of the WAL) and a copy checkpointed
# beforehand (no WAL). The files are warm in the page cache (just written),
# so this is the CPU side of recovery, not a cold disk read.
#
# Usage: crash-wal.sh BUILD FRAMES [USERS] [ROUNDS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$1"; frames="$2"; users="${3:-1000000}"; rounds="${4:-3}"
ulimit -n "$(ulimit -Hn)"
work="$(mktemp -d -t presenced-crashwal.XXXXXX)"
server_pid=""; gen_pid=""
cleanup() {
  [ -z "$gen_pid" ] || { pkill -P "$gen_pid" 2> /dev/null || true; kill "$gen_pid" 2> /dev/null || true; }
  [ -z "$server_pid" ] || kill -9 "$server_pid" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export PRESENCED_ADMIN_TOKEN="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkfifo "$work/out"
"$build/presenced" --listen 127.0.0.1:0 --data "$work/data" > "$work/out" 2> "$work/server.log" &
server_pid=$!
read -r line < "$work/out"
url="${line#listening on }"; cat "$work/out" > /dev/null &
hostport="${url#http://}"; hostport="${hostport%/}"
export PRESENCECTL_SERVER="$url"
realm=$("$build/presencectl" realm create "" "Million" | awk '$1 == "realm_id" {print $2}')
python3 -c "
import sys
print('email,full_name')
for i in range(int(sys.argv[1])): print(f'm{i}@million.example,Member {i}')" "$users" > "$work/users.csv"
"$build/presencectl" import "$realm" "$work/users.csv" --keys-file "$work/keys.csv" > /dev/null
"$build/million" --server "$hostport" --keys "$work/keys.csv" --watchers 0 --churn 0 \
  --warmup 0 --duration 600 --interval 5 --server-pid "$server_pid" \
  --csv "$work/million.csv" 2> "$work/million.log" &
gen_pid=$!
# The import itself went through the WAL (and may have left it past FRAMES):
# let the pings' commits run first, so that the WAL watched is theirs.
sleep 20
shm="$work/data/presence.sqlite3-shm"
mx() { od -An -tu4 -j16 -N4 "$shm" 2> /dev/null | tr -d ' ' || echo 0; }
deadline=$((SECONDS + 300))
while [ "$(mx)" -lt "$frames" ] && [ $SECONDS -lt $deadline ]; do sleep 0.02; done
got=$(mx)
kill -9 "$server_pid"; wait "$server_pid" 2> /dev/null || true; server_pid=""
pkill -P "$gen_pid" 2> /dev/null || true; kill "$gen_pid" 2> /dev/null || true; gen_pid=""
wal=$(stat -c %s "$work/data/presence.sqlite3-wal")
echo "killed at mxFrame=$got wal_file_bytes=$wal db_bytes=$(stat -c %s "$work/data/presence.sqlite3")"
cp -r "$work/data" "$work/crashed"
cp -r "$work/data" "$work/clean"
python3 -c "
import sqlite3, sys, time
t = time.monotonic()
c = sqlite3.connect(sys.argv[1]); n = c.execute('select count(*) from presence').fetchone()[0]
r = time.monotonic() - t
c.execute('pragma wal_checkpoint(TRUNCATE)'); c.close()
print(f'sqlite_open_and_count_s={r:.3f} presence_rows={n}')" "$work/clean/presence.sqlite3"
start_once() {  # DIR -> seconds to the listening line
  rm -rf "$work/run"; cp -r "$1" "$work/run"
  local t0 t1 p
  t0=$(date +%s.%N)
  "$build/presenced" --listen 127.0.0.1:0 --data "$work/run" > "$work/out2" 2> /dev/null &
  p=$!
  until grep -q "listening on" "$work/out2" 2> /dev/null; do sleep 0.005; done
  t1=$(date +%s.%N)
  kill "$p"; wait "$p" 2> /dev/null || true
  echo "$t1 - $t0" | bc
}
for r in $(seq "$rounds"); do
  echo "round $r crashed_start_s=$(start_once "$work/crashed") checkpointed_start_s=$(start_once "$work/clean") load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
done
