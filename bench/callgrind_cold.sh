#!/usr/bin/env bash
# Instructions per cold-authentication ping on the I/O thread, counted by
# callgrind (issue #17): repeatable on a loaded machine, where wall-clock
# figures scatter by 10% run to run. cold19/cold20's method, kept here once
# (it was copied under bench/results/cold20/callgrind/ before):
#   - a realm of --users users (default 20,000; bench_populate), presenced
#     with its default flags under valgrind's callgrind, instrumentation off;
#   - a warm-up pings every user once (ping_only), so that the measured pings
#     write nothing;
#   - instrumentation on only while --pings measured pings (default 20,000)
#     run, of users in rotation past the warm-up's cursor: the thread's
#     authentication caches do not hold them (16 connections, one loadgen
#     thread, closed loop);
#   - the inclusive counts of the main functions divided by the number of
#     measured pings (per-ping.txt); the whole inclusive list in incl.txt.
# Valgrind hides SHA-NI from OpenSSL, so the SHA-256 of a cold key counts
# about 2,000 instructions here and far fewer cycles on a CPU that has it.
#
# Usage: bench/callgrind_cold.sh [--build-dir DIR] [--users N] [--pings M]
#          PRESENCED OUT
#   DIR (default build/release) holds loadgen and bench_populate; OUT gets
#   callgrind.out.1, incl.txt, per-ping.txt, warmup.json, measured.json.
# Needs valgrind (callgrind_control, callgrind_annotate). Loopback only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
build="$root/build/release"
users=20000
pings=20000
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --pings) pings="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    -*) echo "callgrind_cold: unknown argument $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 2 ] || { sed -n '20,24p' "$0" >&2; exit 2; }
presenced="$1"
out="$2"
mkdir -p "$out"
work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2> /dev/null || true; wait "$pid" 2> /dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
"$build/bench_populate" --data "$work/data" --users "$users" > /dev/null
valgrind --tool=callgrind --instr-atstart=no --dump-instr=no \
  --callgrind-out-file="$out/callgrind.out" \
  "$presenced" --listen 127.0.0.1:0 --data "$work/data" \
  > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 1 6000); do
  grep -q "listening on" "$work/out" && break
  kill -0 "$pid" 2> /dev/null || { cat "$work/err" >&2; exit 1; }
  sleep 0.05
done
port="$(grep -m1 "listening on" "$work/out" | sed 's/.*://')"
"$build/loadgen" --port "$port" --mode closed --users "$users" --warmup-only \
  --connections 16 --threads 1 > "$out/warmup.json" 2>&1
callgrind_control -i on "$pid" > /dev/null
"$build/loadgen" --port "$port" --mode closed --users "$users" \
  --base-cursor "$users" --no-warmup --max-requests "$pings" --duration 300 \
  --connections 16 --threads 1 > "$out/measured.json" 2>&1
callgrind_control -d "$pid" > /dev/null
callgrind_control -i off "$pid" > /dev/null
kill "$pid"
wait "$pid" || true
pid=""
callgrind_annotate --inclusive=yes "$out/callgrind.out.1" 2> /dev/null \
  > "$out/incl.txt"
for f in "scheduler::run(" "HttpSession::HandleRequest(" \
  "HttpSession::Dispatch(" "HttpSession::Respond(" "AppendResponseHead(" \
  "HttpSession::DoRead(" "ZulipApi::Authenticate(" "RequestParams::Parse(" \
  "ZulipApi::ParsePing(" "ZulipApi::PingAnswer(" "basic_parser<true>::put("; do
  v="$(grep -F -m1 "$f" "$out/incl.txt" | awk '{print $1}' | tr -d ,)"
  printf "%-50s %8s\n" "$f" $(( ${v:-0} / pings ))
done | tee "$out/per-ping.txt"
tail -1 "$out/measured.json"
