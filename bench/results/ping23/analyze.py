#!/usr/bin/env python3
"""Lines the prober's pings up with the server's periodic work.

Usage: analyze.py RUN_DIR   (a run-diag.sh output: probe.log, probe.csv and
probes.txt, `perf script -F tid,time,event` of the uprobes)

Prints: each probed function's durations (entry to return); the transition
tick's slices by their position in a tick; the share of slow pings (>= 40 ms
round trip) by how long after a tick's start they were sent; and the same
by where in a flush (tenths of it, its CollectDirty, or between flushes).
"""
import bisect
import collections
import csv
import re
import sys

SLOW_MS = 40.0
d = sys.argv[1]
t0 = None
for line in open(d + "/probe.log"):
    m = re.search(r"t0 CLOCK_MONOTONIC ([0-9.]+)", line)
    if m:
        t0 = float(m.group(1))
if t0 is None:
    sys.exit("probe.log has no CLOCK_MONOTONIC start (ping_probe.py too old)")
pings = [(t0 + float(r["t_s"]), float(r["rtt_ms"]))
         for r in csv.DictReader(open(d + "/probe.csv"))]
events = []
for line in open(d + "/probes.txt"):
    m = re.match(r"\s*(\d+)\s+([0-9.]+):\s+probe_presenced:(\w+)", line)
    if m:
        events.append((float(m.group(2)), int(m.group(1)),
                       m.group(3).replace("__return", "")))
events.sort()
span = events[-1][0] - events[0][0]
opened, intervals = {}, collections.defaultdict(list)
for t, tid, name in events:
    if name.endswith("_ret"):
        key = (tid, name[:-4])
        if key in opened:
            intervals[name[:-4]].append((opened.pop(key), t))
    else:
        opened[(tid, name)] = t
print(f"probed {span:.0f} s; pings {len(pings)}")
for name, ivs in sorted(intervals.items()):
    ds = sorted((b - a) * 1e3 for a, b in ivs)
    print(f"{name:8s} n {len(ds):5d}  p50 {ds[len(ds) // 2]:8.2f} ms  "
          f"p99 {ds[int(len(ds) * 0.99)]:8.2f}  max {ds[-1]:8.2f}  "
          f"busy {sum(ds) / span:6.1f} ms/s")

# Ticks: slices closer than 0.5 s to the previous one belong to its tick.
ticks = []
for a, b in sorted(intervals["tick"]):
    if ticks and a - ticks[-1][-1][1] < 0.5:
        ticks[-1].append((a, b))
    else:
        ticks.append([(a, b)])
print(f"\nticks {len(ticks)}, {len(intervals['tick']) / len(ticks):.1f} "
      f"slices each, period {(ticks[-1][0][0] - ticks[0][0][0]) / (len(ticks) - 1):.3f} s")
by_pos = collections.defaultdict(list)
for tick in ticks:
    for i, (a, b) in enumerate(tick):
        by_pos[min(i, 5)].append((b - a) * 1e3)
for i in sorted(by_pos):
    v = sorted(by_pos[i])
    label = f"slice #{i}" if i < 5 else "slice #5+"
    print(f"{label:10s} n {len(v):5d}  p50 {v[len(v) // 2]:6.1f} ms  "
          f"p90 {v[int(len(v) * 0.9)]:6.1f}  max {v[-1]:6.1f}")

window = [(s, r) for s, r in pings if events[0][0] < s < events[-1][0] - 1]
starts = [t[0][0] for t in ticks]
hist, hist_slow = collections.Counter(), collections.Counter()
for s, r in window:
    i = bisect.bisect_right(starts, s) - 1
    if i < 0:
        continue
    b = min(int((s - starts[i]) * 10), 12)
    hist[b] += 1
    hist_slow[b] += r >= SLOW_MS
print(f"\npings sent in the window {len(window)}, slow (>= {SLOW_MS:.0f} ms) "
      f"{sum(1 for _, r in window if r >= SLOW_MS)}")
print("sent after a tick's start: pings, slow, slow share")
for b in range(13):
    label = f"{b * 100}-{b * 100 + 100} ms" if b < 12 else ">= 1200 ms"
    print(f"  {label:13s} {hist[b]:5d} {hist_slow[b]:4d} "
          f"{100 * hist_slow[b] / max(1, hist[b]):5.1f}%")

flushes = sorted(intervals["flush"])
collects = sorted(intervals["collect"])
fstarts = [a for a, _ in flushes]
cstarts = [a for a, _ in collects]
hist, hist_slow = collections.Counter(), collections.Counter()
for s, r in window:
    i = bisect.bisect_right(fstarts, s) - 1
    if i < 0 or s > flushes[-1][1]:
        continue
    a, b = flushes[i]
    j = bisect.bisect_right(cstarts, s) - 1
    if j >= 0 and collects[j][0] <= s <= collects[j][1]:
        key = "in CollectDirty"
    elif s > b:
        key = "between flushes"
    else:
        key = f"flush tenth {min(int((s - a) / (b - a) * 10), 9)}"
    hist[key] += 1
    hist_slow[key] += r >= SLOW_MS
print("sent during a flush: pings, slow, slow share")
for k in sorted(hist):
    print(f"  {k:16s} {hist[k]:5d} {hist_slow[k]:4d} "
          f"{100 * hist_slow[k] / hist[k]:5.1f}%")
