#!/usr/bin/env python3
"""early22: one row per run of run.sh (OUT/LABEL/churn.jsonl, OUT/LABEL.perfstat
for the sc runs), with the load average before it (OUT/loads.txt).
Usage: table.py OUT"""
import glob, json, os, sys

out = sys.argv[1]
loads = {}
for line in open(os.path.join(out, "loads.txt")):
    f = line.split()
    loads[f[-1]] = " ".join(f[1:4])
sc, churn = [], []
for path in sorted(glob.glob(os.path.join(out, "*", "churn.jsonl"))):
    for line in open(path):
        r = json.loads(line)
        r["load"] = loads.get(r["label"], "?")
        (sc if r["label"].startswith("sc-") else churn).append(r)

print("System calls per answer (whole server run, set-up included; perf stat)\n")
names = ["recvfrom", "sendto", "epoll_wait", "futex", "epoll_ctl",
         "timerfd_settime"]
print("| run | load before | answers (events each) | all | "
      + " | ".join(names) + " |")
print("|" + " --- |" * (4 + len(names)))
for r in sc:
    counts = {}
    for line in open(os.path.join(out, r["label"] + ".perfstat")):
        f = line.strip().split(",")
        if len(f) < 3 or not f[2].startswith("syscalls:sys_enter_"):
            continue
        try:
            counts[f[2][len("syscalls:sys_enter_"):]] = int(f[0])
        except ValueError:
            pass
    a = r["answers"]
    cells = [f"{counts.get(n, 0) / a:.3f}" for n in names]
    print(f"| {r['label']} | {r['load']} | {a:,} ({r['events_per_answer']:.2f}) | "
          f"**{sum(counts.values()) / a:.2f}** | " + " | ".join(cells) + " |")

print("\nChurn, 19,800 watchers, 20 online/s, 30 s\n")
print("| run | load before | p50 ms | p99 ms | max ms | answers/s | events/answer"
      " | server cores (user/sys) | server µs/answer (user/sys) | loadgen cores"
      " | ping p99 ms | all delivered |")
print("|" + " --- |" * 12)
for r in churn:
    a = r["answers_per_s"]
    us = lambda k: r.get(k, 0) / a * 1e6 if a else 0
    ok = r["missing"] == 0 and r["poll_errors"] == 0
    print(f"| {r['label']} | {r['load']} | {r['delivery_p50_ms']:.0f} | "
          f"{r['delivery_p99_ms']:.0f} | {r['delivery_max_ms']:.0f} | {a:,.0f} | "
          f"{r['events_per_answer']:.2f} | {r['server_cores']:.2f} "
          f"({r.get('server_user_cores', 0):.2f}/{r.get('server_sys_cores', 0):.2f}) | "
          f"{us('server_cores'):.1f} ({us('server_user_cores'):.1f}/"
          f"{us('server_sys_cores'):.1f}) | {r['loadgen_cores']:.2f} | "
          f"{r['ping_p99_ms']:.1f} | {'yes' if ok else 'NO'} |")
