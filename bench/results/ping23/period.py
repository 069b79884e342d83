#!/usr/bin/env python3
"""Is there a period in the slow pings? For each window of a probe.csv
(bench/ping_probe.py), the period (0.8-2.0 s, 1 ms steps) at which the slow
pings' send times cluster most, and how much (the mean resultant length of
their phases: 0 spread evenly, 1 all at one phase). The best of 1,200
candidate periods is never 0: for send times drawn uniformly at random it
is 0.45 with 30 points, 0.33 with 50 and 0.25 with 100 (medians of 20
draws; the largest 0.55, 0.41 and 0.32).

Usage: period.py probe.csv [slow_ms (60)] [window_s (100)]
"""
import csv
import math
import sys

path = sys.argv[1]
slow_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
window = float(sys.argv[3]) if len(sys.argv) > 3 else 100.0
rows = [(float(r["t_s"]), float(r["rtt_ms"])) for r in csv.DictReader(open(path))]
slow = [t for t, rtt in rows if rtt >= slow_ms]
print(f"pings {len(rows)}, slow (>= {slow_ms:.0f} ms) {len(slow)}")
w0 = 0.0
while w0 < rows[-1][0]:
    ts = [t for t in slow if w0 <= t < w0 + window]
    if len(ts) >= 5:
        r, p = max((math.hypot(sum(math.cos(2 * math.pi * t / p) for t in ts),
                               sum(math.sin(2 * math.pi * t / p) for t in ts))
                    / len(ts), p) for p in (0.8 + i * 0.001 for i in range(1200)))
        print(f"{w0:6.0f}-{w0 + window:.0f} s: {len(ts):3d} slow, period {p:.3f} s, resultant {r:.2f}")
    w0 += window
