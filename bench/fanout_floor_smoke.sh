#!/usr/bin/env bash
# ctest fanout_floor_smoke: bench/fanout-ab.sh drives bench/fanout_floor.cc
# (the machine's floor for one event to W parked polls) exactly as it drives
# presenced, with 300 watchers and the floor on 1 thread answering in slices
# of 7 and on 2 threads answering all at once. Passes if
# every round delivered one answer to every watcher (loadgen exits non-zero
# otherwise), and the floor's log says every answer it sent had the size
# asked for, in one send each (no partial send). Then the floor's churn mode
# under bench/churn.sh (below). Loopback only, about 20 seconds.
#
# Usage: bench/fanout_floor_smoke.sh LOADGEN BENCH_POPULATE FANOUT_FLOOR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -eq 3 ] || { sed -n '2,11p' "$0"; exit 2; }
out="$(mktemp -d /tmp/fanout-floor-smoke.XXXXXX)"
trap 'rm -rf "$out"' EXIT
bytes=1234
loadgen="$1" populate="$2" floor="$3"
bash "$here/fanout-ab.sh" --runs 1 --watchers 300 --out "$out" "$1" "$2" \
  "floor1=$3 --threads 1 --answer-bytes $bytes --slice 7" \
  "floor2=$3 --threads 2 --answer-bytes $bytes" > "$out/summary.txt"
python3 - "$out" "$bytes" << 'PY'
import glob, json, re, sys
out, size = sys.argv[1], int(sys.argv[2])
rows = [json.loads(l) for l in open(f"{out}/fanout.jsonl")]
assert len(rows) == 2, rows
for r in rows:
    assert r["deliveries"] == r["rounds"] * 300 and r["empty"] == 0, r
for name, threads in (("floor1", 1), ("floor2", 2)):
    lines = open(f"{out}/server-{name}-300-1.err").read().splitlines()
    sent = {}
    for l in lines:
        m = re.search(r"round (\d+) thread (\d+): (\d+) answers of (\d+) B, .*"
                      r", (\d+) partial", l)
        assert m, l
        assert int(m[4]) == size and int(m[5]) == 0, l
        sent[int(m[1])] = sent.get(int(m[1]), 0) + int(m[3])
    # 5 rounds, every one answering all 300 watchers over `threads` threads.
    assert sent == {k: 300 for k in range(1, 6)}, (name, sent)
    assert len(lines) == 5 * threads, (name, lines)
PY
# The churn mode (--churn): bench/churn.sh drives it as it drives presenced,
# 300 watchers re-polling on every answer while 200 users a second come
# online, and plain pings meanwhile. Passes if every event reached every
# watcher exactly once (delivered = requested, none missing) and no request
# failed (loadgen exits non-zero otherwise).
for spec in "1 --slice 7" "2"; do
  set -- $spec
  bash "$here/churn.sh" --watchers 300 --rate 200 --ping-rate 200 \
    --ping-users 500 --duration 3 --label "churn$1" --out "$out/churn$1" \
    "$loadgen" "$populate" "$floor" --churn --threads "$@" \
    > "$out/churn$1.txt"
done
python3 - "$out" << 'PY'
import json, sys
out = sys.argv[1]
for t in (1, 2):
    rows = [json.loads(l) for l in open(f"{out}/churn{t}/churn.jsonl")]
    assert len(rows) == 1, rows
    r = rows[0]
    assert r["came_online"] >= 600 and r["requested"] == r["came_online"] * 300, r
    assert r["delivered"] == r["requested"] and r["missing"] == 0, r
    assert r["poll_errors"] == 0 and r["online_errors"] == 0, r
    assert r["pings"] > 0 and r["ping_errors"] == 0, r
    print(f"churn on {t} thread(s): {r['delivered']} deliveries, "
          f"{r['events_per_answer']} events per answer")
print("fanout_floor_smoke: passed")
PY
