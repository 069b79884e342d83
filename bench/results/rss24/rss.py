#!/usr/bin/env python3
"""rss24: RSS, heap trims and per-minute figures of a bench/million.sh run.

Usage: rss.py DIR [DIR...]  (each a million.sh --out directory)

Prints, for the measured part (after the warm-up) and its second half, the
RSS range and spread from memory.csv (every 2 s), the heap trims and the
RSS steps (a change of 4 MB or more between samples 2 s apart), and by
minute the delivery p99 (mean and worst of the 5-s rows) and the prober's
ping p99 (probe.csv).
"""
import csv
import sys


def pct(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100 * len(values) + 0.5)) - 1))
    return values[k]


def spread(rows):
    rss = [float(r["rss_mb"]) for r in rows]
    lo, hi = min(rss), max(rss)
    return lo, hi, (hi - lo) / lo * 100


def main(d):
    rows = list(csv.DictReader(open(f"{d}/million.csv")))
    run = [r for r in rows if r["phase"] == "run"]
    start = float(run[0]["t_s"]) - 5
    end = float(run[-1]["t_s"])
    mem = [r for r in csv.DictReader(open(f"{d}/memory.csv"))
           if start <= float(r["t_s"]) <= end]
    half = [r for r in mem if float(r["t_s"]) >= (start + end) / 2]
    print(f"== {d}: measured {start:.0f}-{end:.0f} s")
    for name, part in (("measured part", mem), ("second half", half)):
        lo, hi, s = spread(part)
        print(f"RSS over the {name}: {lo:.1f}-{hi:.1f} MB ({s:.1f}%)")
    trims = [(float(r["t_s"]), int(r["malloc_trims"])) for r in mem]
    print(f"heap trims in the measured part: {trims[-1][1] - trims[0][1]}"
          f" (counter {trims[0][1]} -> {trims[-1][1]})")
    prev = None
    for r in mem:
        rss = float(r["rss_mb"])
        if prev is not None and abs(rss - prev) >= 4:
            print(f"  step at {float(r['t_s']):.0f} s: {prev:.1f} -> {rss:.1f} MB"
                  f" (trims {r['malloc_trims']})")
        prev = rss
    # Delivery p99 by minute (5-s rows); the prober's pings by minute (its
    # t_s counts from the start of the measured part).
    probe = [(float(r["t_s"]), float(r["rtt_ms"]))
             for r in csv.DictReader(open(f"{d}/probe.csv"))]
    for m in range(int((end - start) // 60)):
        lo, hi = start + 60 * m, start + 60 * (m + 1)
        p99 = [float(r["delivery_p99_ms"]) for r in run
               if lo < float(r["t_s"]) <= hi]
        rtt = [v for t, v in probe if 60 * m <= t < 60 * (m + 1)]
        print(f"minute {m}: delivery p99 mean {sum(p99) / len(p99):,.0f}"
              f" worst {max(p99):,.0f} ms; prober p99 {pct(rtt, 99):.1f} ms"
              f" ({len(rtt)} pings)")


if __name__ == "__main__":
    for d in sys.argv[1:]:
        main(d)
