#!/usr/bin/env python3
"""One row per churn run of bench/results/gen21: the generator's CPU per
answer (user and system, from loadgen's getrusage split), the online pings'
lateness and the delivery latency. Usage: table.py DIR..."""
import json, re, sys

print("| run | load before/after | answers/s | events/answer | loadgen cores (user+sys) | "
      "us/answer user | us/answer sys | us/answer all (watch thread) | online late p50/p99 ms | "
      "delivery p50/p99 ms | server cores |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for d in sys.argv[1:]:
    log = open(d + "/churn.log").read()
    loads = re.findall(r"load ([\d.]+) [\d.]+ [\d.]+ (before|after)", log)
    j = json.loads(open(d + "/churn.jsonl").read().splitlines()[-1])
    a = j["answers_per_s"]
    u, s = j["loadgen_user_cores"], j["loadgen_sys_cores"]
    print(f"| {j['label']} | {loads[0][0]}/{loads[-1][0]} | {a:,.0f} | {j['events_per_answer']:.2f} | "
          f"{j['loadgen_cores']:.2f} ({u:.3f}+{s:.3f}) | {u/a*1e6:.2f} | {s/a*1e6:.2f} | "
          f"{j['loadgen_us_per_answer']:.2f} ({j['loadgen_watch_us_per_answer']:.2f}) | "
          f"{j['online_late_p50_ms']:.1f}/{j['online_late_p99_ms']:.1f} | "
          f"{j['delivery_p50_ms']:.0f}/{j['delivery_p99_ms']:.0f} | {j['server_cores']:.2f} |")
