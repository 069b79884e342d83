#!/usr/bin/env python3
"""Turns the raw figures of bench/run-all.sh into summary.md and plot.dat.

Input (in the results directory): micro.json (Google Benchmark, medians of
repetitions), load.jsonl (one loadgen JSON object per run, labelled
kind/server/size/phase/rep), facts.jsonl (memory, start times, the open-loop
rate), machine.txt. Output: summary.md (tables and the targets of issue #4,
each with the figure and the reference it was measured against in the same
run) and plot.dat (for bench/plot.gp).
"""
import json
import os
import statistics
import sys

ZULIP_MS_PER_REQUEST = 25.0  # the figure for Zulip; not measured here


def load_lines(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    out.append(json.loads(line))
    return out


def micro_medians(path):
    """name -> median entry (cpu_time in ns)."""
    scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
    res = {}
    if not os.path.exists(path):
        return res
    with open(path) as f:
        data = json.load(f)
    for b in data.get("benchmarks", []):
        if b.get("aggregate_name") not in ("median", None):
            continue
        if b.get("run_type") == "aggregate" and b["aggregate_name"] != "median":
            continue
        name = b.get("run_name", b["name"])
        if name in res and b.get("aggregate_name") != "median":
            continue
        b = dict(b)
        unit = scale[b.get("time_unit", "ns")]
        b["cpu_ns"] = b["cpu_time"] * unit
        b["real_ns"] = b["real_time"] * unit
        res[name] = b
    return res


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    if isinstance(v, int) or abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def verdict(ok):
    if ok is None:
        return "not measured"
    return "**met**" if ok else "**missed**"


def main(outdir):
    micro = micro_medians(os.path.join(outdir, "micro.json"))
    runs = load_lines(os.path.join(outdir, "load.jsonl"))
    facts = load_lines(os.path.join(outdir, "facts.jsonl"))
    machine = ""
    if os.path.exists(os.path.join(outdir, "machine.txt")):
        machine = open(os.path.join(outdir, "machine.txt")).read()

    def m(name):
        return micro.get(name)

    def label(r):
        parts = r.get("label", "").split("/")
        return parts + [""] * (5 - len(parts))

    ping = {}  # (server, size, phase) -> [runs]
    for r in runs:
        kind, server, size, phase, rep = label(r)
        if kind in ("ping", "heavy", "two"):
            ping.setdefault((kind, server, int(size), phase), []).append(r)
    sizes = sorted({k[2] for k in ping if k[0] == "ping"})

    def med(vals):
        vals = [v for v in vals if v is not None and v >= 0]
        return statistics.median(vals) if vals else None

    lines = []
    w = lines.append
    w("## Results of this run\n")
    w("Machine:\n")
    w("```\n" + machine.strip() + "\n```\n")

    # ------------------------------------------------------------ micro
    reps = next((b.get("repetitions") for b in micro.values()
                 if b.get("repetitions")), "?")
    w(f"### Micro-benchmarks (core_bench; CPU time, median of {reps} "
      "repetitions run in random order)\n")
    w("| benchmark | realm | time | per row / queue | reference, same run |")
    w("| --- | ---: | ---: | ---: | --- |")
    pw, rw = m("BM_PresenceWrite/10000"), m("BM_RealmWrite/10000")
    if pw:
        w(f"| presence write (service + event hub + transition tracker) | 10k "
          f"| {fmt(pw['cpu_ns'])} ns | | Realm write alone: "
          f"{fmt(rw['cpu_ns']) if rw else 'n/a'} ns |")
    base_q = None
    for n in (1000, 10000, 100000, 1000000):
        b = m(f"BM_IncrementalQuery/{n}")
        if not b:
            continue
        rows = b.get("rows", 0)
        per_row = b["cpu_ns"] / rows if rows else None
        if n == 1000:
            base_q = per_row
        ref = (f"{per_row / base_q:.2f} x the per-row cost at 1k"
               if base_q and per_row else "")
        w(f"| incremental query, 1% of rows changed ({fmt(rows)} rows), "
          f"modern JSON | {n:,} | {fmt(b['cpu_ns'] / 1e3, 2)} us | "
          f"{fmt(per_row)} ns/row | {ref} |")
    base_p = m("BM_IncrementalPing/1000")
    for n in (1000, 10000, 100000, 1000000):
        b = m(f"BM_IncrementalPing/{n}")
        if not b:
            continue
        ref = (f"{b['cpu_ns'] / base_p['cpu_ns']:.2f} x the same ping at 1k"
               if base_p else "")
        w(f"| whole ping through api::Router (auth, write, 11 rows back) | "
          f"{n:,} | {fmt(b['cpu_ns'] / 1e3, 2)} us | | {ref} |")
    memcpy = None
    for name, b in micro.items():
        if name.startswith("BM_Reference_Memcpy/"):
            memcpy = b
    for fmt_name in ("legacy", "modern"):
        for n in (10000, 100000):
            b = m(f"BM_FullSnapshot/{fmt_name}/{n}")
            if not b:
                continue
            rows = b.get("rows", 0)
            ref = ""
            if memcpy and n == 100000:
                ref = (f"memcpy of {fmt(int(memcpy['run_name'].split('/')[1]))}"
                       f" bytes: {fmt(memcpy['cpu_ns'] / 1e3)} us "
                       f"({b['cpu_ns'] / memcpy['cpu_ns']:.0f} x)")
            w(f"| full snapshot, {fmt_name} ({fmt(b.get('bytes', 0))} bytes)"
              f" | {n:,} | {fmt(b['cpu_ns'] / 1e6, 2)} ms | "
              f"{fmt(b['cpu_ns'] / rows if rows else None)} ns/row | {ref} |")
    for kind in ("idle", "parked"):
        for name, b in micro.items():
            if name.startswith(f"BM_FanOut/{kind}/"):
                q = int(b.get("queues", 0))
                w(f"| one event to {q:,} queues ({kind}) | 10k | "
                  f"{fmt(b['cpu_ns'] / 1e3)} us | "
                  f"{fmt(b['cpu_ns'] / q if q else None)} ns/queue | |")
    w("")

    # ------------------------------------------------------------ HTTP
    open_rate = next((f["rate"] for f in facts if f["kind"] == "open_rate"),
                     None)
    w("### HTTP: presenced against the nginx ceiling, same loadgen, "
      "interleaved\n")
    workers = next((f["workers"] for f in facts
                    if f["kind"] == "http_workers"), 2)
    limit_off = {f["size"] for f in facts if f["kind"] == "rate_limit_off"}
    w(f"Each server with {workers} worker(s) (nginx worker_processes, "
      "presenced --threads) unless the row says otherwise. presenced runs "
      "with its default flags (the rate limit on) but for the connection "
      "caps; each realm's pings rotate over all its users but those kept "
      "to come online, so that no user nears 200 requests a minute; a row "
      "marked as an extra row departs from the defaults. "
      f"Closed loop: {runs[0]['connections'] if runs else '?'} keep-alive "
      "connections, median of the interleaved runs; ratio = median of the "
      "per-run ratios. Open loop at "
      f"{fmt(open_rate)} requests/s for both servers and every size, "
      "latency from the time each request was due; the median of 2 runs "
      "per server and size. Cost ratio: nginx's CPU per request (server + "
      "loadgen) over presenced's, what the throughput ratio is when the "
      "cores are the limit; it depends far less on the neighbours' load.\n")
    w("| realm | presenced req/s | nginx req/s | ratio | server CPU us/req "
      "presenced | nginx | cost ratio | rows/answer | open p50 / p99 / "
      "p99.9 ms presenced | nginx |")
    w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    plot = []
    ratios_by_size = {}
    cpu_by_size = {}
    cost_by_size = {}
    for n in sizes:
        pc = ping.get(("ping", "presenced", n, "closed"), [])
        nc = ping.get(("ping", "nginx", n, "closed"), [])
        po = ping.get(("ping", "presenced", n, "open"), [])
        no = ping.get(("ping", "nginx", n, "open"), [])
        pr = med([r["rps"] for r in pc])
        nr = med([r["rps"] for r in nc])
        ratio = med([a["rps"] / b["rps"] for a, b in zip(pc, nc) if b["rps"]])
        ratios_by_size[n] = ratio
        pcpu = med([r["server_cpu_us_per_req"] for r in pc])
        ncpu = med([r["server_cpu_us_per_req"] for r in nc])
        cpu_by_size[n] = pcpu
        # What the throughput ratio is when the cores are the limit: the
        # CPU per request (server + loadgen) of nginx over presenced's.
        pcl = med([r["client_cpu_us_per_req"] for r in pc])
        ncl = med([r["client_cpu_us_per_req"] for r in nc])
        cost = ((ncpu + ncl) / (pcpu + pcl)
                if None not in (pcpu, ncpu, pcl, ncl) else None)
        cost_by_size[n] = cost
        rows = med([r["rows_per_answer"] for r in pc])

        def lat(rs):
            # Median over the open-loop runs of each percentile.
            if not rs:
                return "n/a", None
            p50 = med([r["p50_us"] for r in rs]) / 1e3
            p99 = med([r["p99_us"] for r in rs]) / 1e3
            p999 = med([r["p999_us"] for r in rs]) / 1e3
            return f"{p50:.2f} / {p99:.2f} / {p999:.2f}", p99
        pl, pp99 = lat(po)
        nl, np99 = lat(no)
        # bench-extra: the label of a realm run with the rate limit off
        name = (f"{n:,} (extra row: `--rate-limit 0`, departs from the "
                "defaults: too few users to carry the load under the limit)"
                if n in limit_off else f"{n:,}")
        w(f"| {name} | {fmt(pr)} | {fmt(nr)} | "
          f"{ratio:.2f} | {fmt(pcpu)} | {fmt(ncpu)} | {fmt(cost, 2)} | "
          f"{fmt(rows, 2)} | {pl} | {nl} |"
          if ratio is not None else f"| {n:,} | n/a |")
        plot.append((n, pr or 0, nr or 0, pp99 or 0, np99 or 0, pcpu or 0,
                     ncpu or 0, ratio or 0))
    hp = ping.get(("heavy", "presenced", 10000, "closed"), [])
    hn = ping.get(("heavy", "nginx", 10000, "closed"), [])
    heavy_ratio = None
    if hp and hn:
        heavy_ratio = hp[0]["rps"] / hn[0]["rps"]
        hcost = ((hn[0]["server_cpu_us_per_req"] +
                  hn[0]["client_cpu_us_per_req"]) /
                 (hp[0]["server_cpu_us_per_req"] +
                  hp[0]["client_cpu_us_per_req"]))
        w(f"| 10,000, 5000 online, 1% writes | {fmt(hp[0]['rps'])} | "
          f"{fmt(hn[0]['rps'])} | {heavy_ratio:.2f} | "
          f"{fmt(hp[0]['server_cpu_us_per_req'])} | "
          f"{fmt(hn[0]['server_cpu_us_per_req'])} | {hcost:.2f} | "
          f"{fmt(hp[0]['rows_per_answer'], 2)} | | |")
    tp = ping.get(("two", "presenced", 10000, "closed"), [])
    tn = ping.get(("two", "nginx", 10000, "closed"), [])
    if tp and tn:
        tratio = med([a["rps"] / b["rps"] for a, b in zip(tp, tn) if b["rps"]])
        tpc = med([r["server_cpu_us_per_req"] for r in tp])
        tnc = med([r["server_cpu_us_per_req"] for r in tn])
        tcost = ((tnc + med([r["client_cpu_us_per_req"] for r in tn])) /
                 (tpc + med([r["client_cpu_us_per_req"] for r in tp])))
        w(f"| 10,000, two workers each | {fmt(med([r['rps'] for r in tp]))} | "
          f"{fmt(med([r['rps'] for r in tn]))} | {tratio:.2f} | "
          f"{fmt(tpc)} | {fmt(tnc)} | {tcost:.2f} | "
          f"{fmt(med([r['rows_per_answer'] for r in tp]), 2)} | | |")
    w("")
    problems = [r["label"] for r in runs
                if r.get("errors", 0) or (r.get("cold_exhausted", 0) and
                                          "/presenced/" in r["label"])]
    if problems:
        w("Runs with errors or with too few users left to come online: "
          + ", ".join(problems) + "\n")

    # ------------------------------------------------------------ fan-out
    fans = [r for r in runs if label(r)[0] == "fanout"]
    if fans:
        w("### Fan-out: one user comes online, every parked long poll "
          "answered\n")
        w("| parked polls | rounds | delivery p50 | p99 | max | server CPU "
          "us/delivery | loadgen CPU us/delivery | resident bytes per "
          "parked poll |")
        w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in fans:
            w(f"| {r['watchers']:,} | {r['rounds']} | {r['p50_ms']:.1f} ms | "
              f"{r['p99_ms']:.1f} ms | {r['max_ms']:.1f} ms | "
              f"{fmt(r['server_cpu_us_per_delivery'])} | "
              f"{fmt(r['client_cpu_us_per_delivery'])} | "
              f"{fmt(r['rss_per_parked_poll'])} |")
        w("")

    # ------------------------------------------------------------ memory
    empty = next((f["rss"] for f in facts if f["kind"] == "rss_empty"), None)
    starts = {f["size"]: f for f in facts if f["kind"] == "start"}
    restarts = [f for f in facts if f["kind"] == "restart"]
    per_user = {}
    w("### Memory and start time\n")
    w(f"Empty server (no realm): {fmt(empty / 1048576 if empty else None)} "
      "MiB resident. Per user = (resident after start - empty) / users.\n")
    w("| realm | start, exec to listening (wall) | CPU used by then | "
      "resident | bytes per user |")
    w("| ---: | ---: | ---: | ---: | ---: |")
    for n in sorted(starts):
        f = starts[n]
        pu = (f["rss"] - empty) / n if empty else None
        per_user[n] = pu
        w(f"| {n:,} | {f['ms']:,} ms | {fmt(f.get('cpu_ms'))} ms | "
          f"{f['rss'] / 1048576:.1f} MiB | {fmt(pu)} |")
    restart_ms = med([f["ms"] for f in restarts])
    restart_cpu = med([f.get("cpu_ms") for f in restarts])
    if restarts:
        w(f"| 1,000,000, restart (median of {len(restarts)}) | "
          f"{fmt(restart_ms)} ms | {fmt(restart_cpu)} ms | "
          f"{med([f['rss'] for f in restarts]) / 1048576:.1f} MiB | "
          f"{fmt((med([f['rss'] for f in restarts]) - empty) / 1e6)} |")
    w("")

    # ------------------------------------------------------------ targets
    w("### Targets of issue #4\n")
    w("| target | measured | reference (same run) | verdict |")
    w("| --- | --- | --- | --- |")
    r10 = ratios_by_size.get(10000)
    c10r = cost_by_size.get(10000)
    w(f"| modern incremental pings, realm of 10k: >= 0.8 x nginx | " +
      (f"{r10:.2f} x throughput" if r10 is not None else "n/a (no 10k realm)") +
      (f", {c10r:.2f} x by CPU cost" if c10r else "") +
      (f" ({heavy_ratio:.2f} x throughput with 1% writes)"
       if heavy_ratio else "") +
      " | nginx, same requests, interleaved | "
      f"{verdict(r10 >= 0.8 if r10 is not None else None)} |")
    p1, p100 = m("BM_IncrementalPing/1000"), m("BM_IncrementalPing/100000")
    ping_ratio = p100["cpu_ns"] / p1["cpu_ns"] if p1 and p100 else None
    # The HTTP reference: the smallest realm run with the defaults.
    ref_n = min((n for n in sizes if n not in limit_off and n < 100000),
                default=None)
    http_ratio = (cpu_by_size[100000] / cpu_by_size[ref_n]
                  if ref_n and cpu_by_size.get(100000) and
                  cpu_by_size.get(ref_n) else None)
    w(f"| incremental ping at 100k <= 1.2 x at 1k | " +
      (f"{ping_ratio:.2f} x in process" if ping_ratio else "n/a") +
      (f"; {http_ratio:.2f} x server CPU per HTTP ping at 100k against "
       f"{ref_n:,} (both with the defaults)" if http_ratio else "")
      + " | the same ping at 1k | "
      f"{verdict(ping_ratio <= 1.2 if ping_ratio else None)} |")
    s100 = m("BM_FullSnapshot/modern/100000")
    w(f"| full modern snapshot of 100k users <= 10 ms | "
      f"{s100['cpu_ns'] / 1e6:.2f} ms | "
      + (f"memcpy of the same bytes: {memcpy['cpu_ns'] / 1e6:.3f} ms"
         if memcpy else "") + f" | {verdict(s100['cpu_ns'] <= 10e6)} |"
      if s100 else "| full modern snapshot | n/a | | not measured |")
    f10 = next((r for r in fans if r["watchers"] == 10000), None)
    w(f"| one event to 10k parked long polls: p99 <= 100 ms | "
      + (f"{f10['p99_ms']:.0f} ms (max {f10['max_ms']:.0f} ms)"
         if f10 else "n/a") + " | 1k polls: " +
      (f"{fans[0]['p99_ms']:.0f} ms" if fans else "n/a") +
      f" | {verdict(f10['p99_ms'] <= 100 if f10 else None)} |")
    pu = per_user.get(1000000)
    w(f"| <= 256 resident bytes per user at 1M | {fmt(pu)} bytes | "
      f"empty server {fmt(empty / 1048576 if empty else None)} MiB; "
      f"100k: {fmt(per_user.get(100000))} bytes | "
      f"{verdict(pu <= 256 if pu else None)} |")
    w(f"| restart with 1M users <= 2 s | {fmt(restart_ms)} ms wall, "
      f"{fmt(restart_cpu)} ms CPU | "
      f"1k realm: {fmt(starts.get(1000, {}).get('ms'))} ms | "
      f"{verdict(restart_ms <= 2000 if restart_ms else None)} |")
    w("")
    c10 = cpu_by_size.get(10000)
    if c10:
        w(f"Server CPU per HTTP ping at 10k users: {c10:.1f} us, "
          f"{ZULIP_MS_PER_REQUEST * 1e3 / c10:,.0f} x less than the "
          f"{ZULIP_MS_PER_REQUEST:.0f} ms the issue quotes for Zulip "
          "(Zulip's figure is not measured here).\n")

    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(outdir, "plot.dat"), "w") as f:
        f.write("# users presenced_rps nginx_rps presenced_p99_ms "
                "nginx_p99_ms presenced_cpu_us nginx_cpu_us ratio\n")
        for row in plot:
            f.write(" ".join(str(x) for x in row) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
