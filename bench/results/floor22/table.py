#!/usr/bin/env python3
"""floor22: one row per churn run (OUT/SERVER-W-R/churn.jsonl), with the
load average before it (OUT/loads.txt), then medians per server and shape.
Usage: table.py OUT"""
import glob, json, os, statistics, sys

out = sys.argv[1]
loads = {}
for line in open(os.path.join(out, "loads.txt")):
    f = line.split()
    loads[f[-1]] = f[1]
rows = []
for path in sorted(glob.glob(os.path.join(out, "*", "churn.jsonl"))):
    for line in open(path):
        r = json.loads(line)
        if r["label"].startswith("perf-"):
            continue  # perf.sh's runs: perf's cost is in them
        a = r["answers_per_s"]
        r["us_answer"] = r["server_cores"] / a * 1e6 if a else 0
        r["us_user"] = r.get("server_user_cores", -1) / a * 1e6 if a else 0
        r["us_sys"] = r.get("server_sys_cores", -1) / a * 1e6 if a else 0
        r["load"] = loads.get(r["label"], "?")
        r["ok"] = r["missing"] == 0 and r["poll_errors"] == 0
        # Each watcher's answer period: W / answers per second.
        r["cycle_ms"] = r["watchers"] / a * 1e3 if a else 0
        r["p99_cycles"] = r["delivery_p99_ms"] / r["cycle_ms"] if a else 0
        rows.append(r)
hdr = ("| run | load before | p50 ms | p99 ms | max ms | answers/s | events/answer"
       " | cycle ms (W/answers/s) | p99 in cycles"
       " | server cores (user/sys) | server µs/answer (user/sys)"
       " | loadgen cores (its watcher thread) | ping p99 ms | all delivered |")
print(hdr)
print("|" + " --- |" * (hdr.count("|") - 1))
key = lambda r: (-r["watchers"], r["label"].split("-")[0], int(r["label"].split("-")[-1]))
for r in sorted(rows, key=key):
    print(f"| {r['label']} | {r['load']} | {r['delivery_p50_ms']:.0f} | "
          f"{r['delivery_p99_ms']:.0f} | {r['delivery_max_ms']:.0f} | "
          f"{r['answers_per_s']:,.0f} | {r['events_per_answer']:.2f} | "
          f"{r['cycle_ms']:.0f} | {r['p99_cycles']:.2f} | "
          f"{r['server_cores']:.2f} ({r.get('server_user_cores', -1):.2f}/"
          f"{r.get('server_sys_cores', -1):.2f}) | {r['us_answer']:.1f} "
          f"({r['us_user']:.1f}/{r['us_sys']:.1f}) | {r['loadgen_cores']:.2f} "
          f"({r['loadgen_watch_cores']:.2f}) | "
          f"{r['ping_p99_ms']:.1f} | {'yes' if r['ok'] else 'NO'} |")
print()
print("| server, shape | runs | p50 ms (median) | p99 ms (median; each) | answers/s | events/answer | p99 in cycles | server µs/answer (user/sys) | server cores | loadgen cores |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
groups = {}
for r in rows:
    s = r["label"].rsplit("-", 1)[0]
    groups.setdefault(s, []).append(r)
med = lambda g, k: statistics.median(x[k] for x in g)
for s in sorted(groups, key=lambda s: (-int(s.split("-")[1]), s)):
    g = groups[s]
    each = ", ".join(f"{x['delivery_p99_ms']:.0f}" for x in sorted(g, key=lambda x: x["label"]))
    print(f"| {s} | {len(g)} | {med(g, 'delivery_p50_ms'):.0f} | "
          f"{med(g, 'delivery_p99_ms'):.0f} ({each}) | {med(g, 'answers_per_s'):,.0f} | "
          f"{med(g, 'events_per_answer'):.2f} | {med(g, 'p99_cycles'):.2f} | "
          f"{med(g, 'us_answer'):.1f} "
          f"({med(g, 'us_user'):.1f}/{med(g, 'us_sys'):.1f}) | "
          f"{med(g, 'server_cores'):.2f} | {med(g, 'loadgen_cores'):.2f} |")
