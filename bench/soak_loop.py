#!/usr/bin/env python3
"""soak_loop: the load and sampling loop of bench/soak.sh, and its summary.

  soak_loop.py run --loadgen BIN --port P --server-pid PID --polls-pid PID
      --polls-status FILE --csv FILE --jsonl FILE --failures-file FILE
      [--rate --duration --interval --users --online --write-fraction
      --connections]
  soak_loop.py summary --csv FILE --warmup S --rate R [--failures N]

`run` drives back-to-back open-loop loadgen slices of --interval seconds
(loadgen reports once per run, so each slice is one run) until --duration
seconds have passed, and after each slice appends one CSV row: the server's
VmRSS (and its anonymous, file and shared parts), that slice's latency percentiles and achieved rate, the parked polls
(median and minimum of the server's /metrics gauge read twice a second
during the slice) and event queues, the events the pollers got, and CPU use
(server, loadgen, poller, whole machine), and the server's memory gauges
(C allocator heap, SQLite memory and page cache; see MEMORY_GAUGES). Bounded: at most
ceil(duration / interval) slices, each under a timeout.
"""
import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import time
import urllib.request

COLUMNS = [
    "time_s", "rss_kib", "p50_ms", "p99_ms", "rate", "parked_polls",
    "p999_ms", "max_ms", "target_rate", "ok", "errors", "dropped",
    "rows_per_answer", "event_queues", "connections", "events_per_s",
    "poll_answers_per_s", "server_cpu_pct", "loadgen_cpu_pct",
    "poller_cpu_pct", "machine_cpu_pct", "load1", "parked_min",
    "rss_anon_kib", "rss_file_kib", "rss_shmem_kib",
    # The server's own account of its memory (/metrics), next to RSS: the C
    # allocator's arenas (held = in use + free), its mmapped blocks and
    # arena count, and SQLite's memory and page cache (with its bound).
    "malloc_arena_kib", "malloc_in_use_kib", "malloc_free_kib",
    "malloc_releasable_kib", "malloc_mmap_kib", "malloc_arenas",
    "sqlite_memory_kib", "sqlite_page_cache_kib", "sqlite_page_cache_limit_kib",
    # Heap trims so far (--malloc-trim-seconds) and their total time.
    "malloc_trims", "malloc_trim_ms_total",
    # Issue 15's limits: what the queues hold (the server's count), 429s so
    # far, queues pushed out by the per-user cap, and queues the soak's
    # queue-opening loop has opened so far.
    "event_queue_kib", "rate_limited", "queues_evicted_per_user",
    "loop_queues_opened",
]
# CSV column -> /metrics gauge (bytes are written in KiB; "" if absent).
MEMORY_GAUGES = [
    ("malloc_arena_kib", "presenced_malloc_arena_bytes"),
    ("malloc_in_use_kib", "presenced_malloc_in_use_bytes"),
    ("malloc_free_kib", "presenced_malloc_free_bytes"),
    ("malloc_releasable_kib", "presenced_malloc_releasable_bytes"),
    ("malloc_mmap_kib", "presenced_malloc_mmap_bytes"),
    ("malloc_arenas", "presenced_malloc_arenas"),
    ("sqlite_memory_kib", "presenced_sqlite_memory_used_bytes"),
    ("sqlite_page_cache_kib", "presenced_sqlite_page_cache_bytes"),
    ("sqlite_page_cache_limit_kib", "presenced_sqlite_page_cache_limit_bytes"),
]
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def proc_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def rss_kib(pid):
    """VmRSS and its parts RssAnon, RssFile, RssShmem (KiB)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0])
    return out


def machine_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = v
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def metrics(port):
    out = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line and not line.startswith("#") and "{" not in line:
                    k, _, v = line.partition(" ")
                    out[k] = float(v)
    except OSError:
        pass
    return out


def polls_status(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def run(a):
    slices = math.ceil(a.duration / a.interval)
    per_slice = max(0, math.ceil(a.write_fraction * a.rate * a.interval))
    cold_pool = a.users - a.online
    per_slice = min(per_slice, cold_pool)
    print(f"soak: up to {slices} slices of {a.interval} s at {a.rate} requests/s, "
          f"{a.online} users online, ~{per_slice} coming online per slice", flush=True)
    f = open(a.csv, "w", newline="")
    w = csv.writer(f)
    w.writerow(COLUMNS)
    f.flush()
    jl = open(a.jsonl, "a")
    t_start = time.monotonic()
    prev_t = t_start
    prev_srv, prev_pol = proc_ticks(a.server_pid), proc_ticks(a.polls_pid)
    prev_mb, prev_mt = machine_ticks()
    st = polls_status(a.polls_status)
    prev_ev, prev_an = st.get("events", 0), st.get("answers", 0)
    failures = 0
    for k in range(slices):
        if time.monotonic() - t_start >= a.duration:
            break
        # Users coming online in this slice: a fresh range of the cold pool,
        # wrapping round (a user comes back far more than 130 s later).
        cold_first = a.online + (k * per_slice) % (cold_pool - per_slice + 1)
        cmd = [a.loadgen, "--mode", "open", "--port", str(a.port),
               "--rate", str(a.rate), "--duration", str(a.interval),
               "--no-warmup", "--users", str(a.online),
               "--write-fraction", str(a.write_fraction),
               "--cold-first", str(cold_first), "--cold-count", str(per_slice),
               "--base-cursor", str(a.users), "--connections", str(a.connections),
               "--server-pid", str(a.server_pid), "--label", f"soak/{k}"]
        j = {}
        parked_seen = []
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        # While the slice runs, read the server's parked-polls gauge twice a
        # second: a single reading can fall on a fan-out, when most polls
        # have just been answered and are being sent again.
        t_slice = time.monotonic()
        while time.monotonic() - t_slice < a.interval + 60:
            try:
                p.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                g_ = metrics(a.port).get("presenced_parked_polls")
                if g_ is not None:
                    parked_seen.append(int(g_))
        try:
            stdout, stderr = p.communicate(timeout=max(1, a.interval + 60 -
                                                      (time.monotonic() - t_slice)))
            lines = stdout.strip().splitlines()
            if lines:
                j = json.loads(lines[-1])
                jl.write(lines[-1] + "\n")
                jl.flush()
            if p.returncode != 0:
                failures += 1
                print(f"soak: slice {k}: loadgen exited {p.returncode}: "
                      f"{stderr.strip().splitlines()[-3:]}", file=sys.stderr, flush=True)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            failures += 1
            print(f"soak: slice {k}: loadgen timed out", file=sys.stderr, flush=True)
        if not os.path.exists(f"/proc/{a.server_pid}"):
            print("soak: presenced died", file=sys.stderr)
            return 1
        # The sample.
        now = time.monotonic()
        mem = rss_kib(a.server_pid)
        rss = mem.get("VmRSS", 0)
        m = metrics(a.port)
        st = polls_status(a.polls_status)
        srv, pol = proc_ticks(a.server_pid), proc_ticks(a.polls_pid)
        mb, mt = machine_ticks()
        wall = now - prev_t
        g = lambda key: j.get(key, 0)
        answered = g("ok") + g("errors")
        loadgen_pct = g("client_cpu_us_per_req") * answered / 1e6 / wall * 100
        ev, an = st.get("events", prev_ev), st.get("answers", prev_an)
        with open("/proc/loadavg") as lf:
            load1 = lf.read().split()[0]
        row = [
            f"{now - t_start:.1f}", rss, f"{g('p50_us') / 1e3:.3f}",
            f"{g('p99_us') / 1e3:.3f}", f"{g('rps'):.0f}",
            int(statistics.median(parked_seen)) if parked_seen
            else int(m.get("presenced_parked_polls", 0)),
            f"{g('p999_us') / 1e3:.3f}",
            f"{g('max_us') / 1e3:.3f}", a.rate, g("ok"), g("errors"), g("dropped"),
            f"{g('rows_per_answer'):.2f}", int(m.get("presenced_event_queues", 0)),
            int(m.get("presenced_connections", 0)), f"{(ev - prev_ev) / wall:.0f}",
            f"{(an - prev_an) / wall:.0f}",
            f"{(srv - prev_srv) / CLK_TCK / wall * 100:.0f}", f"{loadgen_pct:.0f}",
            f"{(pol - prev_pol) / CLK_TCK / wall * 100:.0f}",
            f"{(mb - prev_mb) / max(1, mt - prev_mt) * 100 * NCPU:.0f}", load1,
            min(parked_seen) if parked_seen else int(m.get("presenced_parked_polls", 0)),
            mem.get("RssAnon", 0), mem.get("RssFile", 0), mem.get("RssShmem", 0),
        ]
        for column, gauge in MEMORY_GAUGES:
            v = m.get(gauge)
            row.append("" if v is None else
                       int(v) if column == "malloc_arenas" else f"{v / 1024:.0f}")
        trims = m.get("presenced_malloc_trims_total")
        trim_s = m.get("presenced_malloc_trim_seconds_total")
        row += ["" if trims is None else int(trims),
                "" if trim_s is None else f"{trim_s * 1e3:.1f}"]
        qb = m.get("presenced_event_queue_bytes")
        row += ["" if qb is None else f"{qb / 1024:.0f}",
                int(m.get("presenced_rate_limited_total", 0)),
                int(m.get("presenced_queues_evicted_per_user_total", 0)),
                st.get("loop_registered", 0)]
        w.writerow(row)
        f.flush()
        print(f"soak: t={row[0]}s rss={rss} KiB p50={row[2]} ms p99={row[3]} ms "
              f"rate={row[4]}/s parked={row[5]} server_cpu={row[17]}% "
              f"machine_cpu={row[20]}%", flush=True)
        prev_t, prev_srv, prev_pol, prev_mb, prev_mt = now, srv, pol, mb, mt
        prev_ev, prev_an = ev, an
    f.close()
    jl.close()
    with open(a.failures_file, "w") as ff:
        ff.write(f"{failures}\n")
    return 0


def summary(a):
    rows = list(csv.DictReader(open(a.csv)))
    if not rows:
        print("no samples")
        return 0
    fl = lambda r, k: float(r[k])
    out = []
    post = [r for r in rows if fl(r, "time_s") >= a.warmup]
    all_rss = [fl(r, "rss_kib") for r in rows]
    out.append(f"samples: {len(rows)} over {fl(rows[-1], 'time_s'):.0f} s "
               f"({len(post)} at or after the {a.warmup:.0f} s warm-up)")
    out.append(f"RSS: first sample {all_rss[0] / 1024:.1f} MiB, peak "
               f"{max(all_rss) / 1024:.1f} MiB, last {all_rss[-1] / 1024:.1f} MiB")
    if post:
        rss = [fl(r, "rss_kib") for r in post]
        t = [fl(r, "time_s") for r in post]
        ref = rss[0]
        dev = max(abs(x - ref) / ref for x in rss) * 100
        slope = 0.0
        if len(t) > 1:
            mt_, mr = statistics.fmean(t), statistics.fmean(rss)
            den = sum((x - mt_) ** 2 for x in t)
            slope = sum((x - mt_) * (y - mr) for x, y in zip(t, rss)) / den * 60 if den else 0
        out.append(f"RSS after warm-up: reference {ref / 1024:.1f} MiB (first sample at or "
                   f"after {a.warmup:.0f} s, t={t[0]:.0f} s), min {min(rss) / 1024:.1f}, max "
                   f"{max(rss) / 1024:.1f}, last {rss[-1] / 1024:.1f} MiB; largest deviation "
                   f"{dev:.2f}%; least-squares trend {slope:+.0f} KiB/min")
        if "rss_anon_kib" in post[0]:
            parts = []
            for k, name in (("rss_anon_kib", "anonymous (heap)"), ("rss_file_kib", "file"),
                            ("rss_shmem_kib", "shmem")):
                parts.append(f"{name} {fl(post[0], k) / 1024:.1f} -> {fl(post[-1], k) / 1024:.1f}")
            out.append("RSS parts after warm-up, first -> last, MiB: " + ", ".join(parts))
        have = [(k, g) for k, g in MEMORY_GAUGES if post[0].get(k) and post[-1].get(k)]
        if have:
            parts = []
            for k, _ in have:
                a0, a1 = fl(post[0], k), fl(post[-1], k)
                top = max(fl(r, k) for r in post if r.get(k))
                if k == "malloc_arenas":
                    parts.append(f"{k} {a0:.0f} -> {a1:.0f} (max {top:.0f})")
                else:
                    parts.append(f"{k[:-4]} {a0 / 1024:.2f} -> {a1 / 1024:.2f} MiB "
                                 f"(max {top / 1024:.2f})")
            out.append("server memory gauges after warm-up, first -> last: " +
                       "; ".join(parts))
        last = rows[-1]
        if last.get("malloc_trims"):
            n = int(last["malloc_trims"])
            ms = fl(last, "malloc_trim_ms_total")
            out.append(f"heap trims: {n}, {ms:.0f} ms in all"
                       + (f", {ms / n:.2f} ms each on average" if n else ""))
        last = rows[-1]
        if last.get("event_queue_kib"):
            qk = [fl(r, "event_queue_kib") for r in post if r.get("event_queue_kib")]
            out.append(f"event queues after warm-up: {fl(post[0], 'event_queues'):.0f} -> "
                       f"{fl(last, 'event_queues'):.0f}, holding {qk[0] / 1024:.2f} -> "
                       f"{qk[-1] / 1024:.2f} MiB (max {max(qk) / 1024:.2f}); "
                       f"429 answers {last['rate_limited']}; queues opened by the "
                       f"queue loop {last['loop_queues_opened']}, pushed out by the "
                       f"per-user cap {last['queues_evicted_per_user']}")
        out.append(f"RSS stayed within +-5% after warm-up: {'YES' if dev <= 5 else 'NO'}")
    rates = [fl(r, "rate") for r in rows]
    ok = sum(int(r["ok"]) for r in rows)
    out.append(f"rate: target {a.rate:.0f}/s; achieved per slice median "
               f"{statistics.median(rates):.0f}/s (min {min(rates):.0f}, max {max(rates):.0f}); "
               f"{ok} pings answered, {ok / fl(rows[-1], 'time_s'):.0f}/s over the whole "
               "wall time (the gaps between slices included)")
    col = lambda k: [fl(r, k) for r in rows]
    p50, p99, p999, mx = col("p50_ms"), col("p99_ms"), col("p999_ms"), col("max_ms")
    out.append(f"latency per slice: p50 median {statistics.median(p50):.2f} ms (worst slice "
               f"{max(p50):.2f}); p99 median {statistics.median(p99):.2f} ms (best "
               f"{min(p99):.2f}, worst {max(p99):.2f}); p99.9 median "
               f"{statistics.median(p999):.2f} ms; slowest request {max(mx):.1f} ms")
    errs = sum(int(r["errors"]) for r in rows)
    drop = sum(int(r["dropped"]) for r in rows)
    failures = a.failures
    out.append(f"errors {errs}, dropped (unanswered at a slice's end) {drop}, "
               f"failed slices {failures}")
    parked = [int(r["parked_polls"]) for r in rows]
    queues = [int(r["event_queues"]) for r in rows]
    lowest = min(int(r["parked_min"]) for r in rows)
    out.append(f"parked polls (median of the server's gauge during each slice): min "
               f"{min(parked)}, median {statistics.median(parked):.0f}, max {max(parked)}; "
               f"lowest single reading {lowest}; event queues min {min(queues)}, max "
               f"{max(queues)}")
    out.append(f"presence events delivered to the polls: median "
               f"{statistics.median(col('events_per_s')):.0f}/s in "
               f"{statistics.median(col('poll_answers_per_s')):.0f} poll answers/s")
    med = lambda k: statistics.median(col(k))
    out.append(f"CPU, median per slice in % of one core (the machine has {NCPU}): presenced "
               f"{med('server_cpu_pct'):.0f}%, loadgen {med('loadgen_cpu_pct'):.0f}%, poller "
               f"{med('poller_cpu_pct'):.0f}%, whole machine {med('machine_cpu_pct'):.0f}% "
               f"(the rest is other work on the machine); 1-min load average median "
               f"{med('load1'):.1f}")
    print("\n".join(out))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--loadgen", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--server-pid", type=int, required=True)
    r.add_argument("--polls-pid", type=int, required=True)
    r.add_argument("--polls-status", required=True)
    r.add_argument("--csv", required=True)
    r.add_argument("--jsonl", required=True)
    r.add_argument("--rate", type=int, default=10000)
    r.add_argument("--duration", type=int, default=600)
    r.add_argument("--interval", type=int, default=10)
    r.add_argument("--users", type=int, default=10000)
    r.add_argument("--online", type=int, default=2000)
    r.add_argument("--write-fraction", type=float, default=0.0001)
    r.add_argument("--connections", type=int, default=64)
    r.add_argument("--failures-file", required=True)
    s = sub.add_parser("summary")
    s.add_argument("--csv", required=True)
    s.add_argument("--warmup", type=float, default=60)
    s.add_argument("--rate", type=float, default=10000)
    s.add_argument("--failures", default="?")
    a = p.parse_args()
    return run(a) if a.cmd == "run" else summary(a)


if __name__ == "__main__":
    sys.exit(main())
