#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with Debian's clang-14 in build/fuzz,
# replays every saved crash under fuzz/regressions/<target>/, then fuzzes
# each target for SECONDS (default 30) and prints executions, coverage and
# any crash. Exits non-zero if a regression input or the fuzzing crashes.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# The working corpus grows in build/fuzz/corpus/<target> (seeded from
# fuzz/corpus/<target>, which is not written to); crash inputs land in
# build/fuzz/artifacts/<target>/. Extra libFuzzer flags: FUZZ_FLAGS="...".
# One fuzzer runs at a time, on one core.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=${1:-30}
if [ $# -gt 0 ]; then shift; fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
  exit 2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(request_params_fuzz router_fuzz admin_fuzz)
fi

for tool in clang-14 clang++-14 cmake; do
  if ! command -v "$tool" >/dev/null; then
    echo "fuzz: $tool not found (scripts/install-deps.sh installs it)" >&2
    exit 1
  fi
done
if [ ! -f "$(clang++-14 -print-resource-dir)/lib/linux/libclang_rt.fuzzer-$(uname -m).a" ]; then
  echo "fuzz: libFuzzer missing (apt-get install libclang-rt-14-dev)" >&2
  exit 1
fi

build="$root/build/fuzz"
# One fuzz.sh at a time per checkout (two test presets may run it at once).
mkdir -p "$root/build"
exec 9>"$root/build/fuzz.lock"
flock 9
generator=()
if [ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null; then
  generator=(-G Ninja)
fi
CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE= -DPRESENCE_FUZZ=ON -DPRESENCE_BUILD_TESTS=OFF \
  -DPRESENCE_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target "${targets[@]}" -j "$(nproc)"

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1"

status=0
summary=()
for t in "${targets[@]}"; do
  bin="$build/$t"
  artifacts="$build/artifacts/$t"
  corpus="$build/corpus/$t"
  mkdir -p "$artifacts" "$corpus"
  dict=()
  if [ -f "fuzz/$t.dict" ]; then dict=(-dict="fuzz/$t.dict"); fi

  # 1. Regression inputs: every crash ever found, run once each.
  shopt -s nullglob
  regressions=(fuzz/regressions/"$t"/*)
  shopt -u nullglob
  if [ ${#regressions[@]} -gt 0 ]; then
    if "$bin" "${regressions[@]}" >"$build/$t.regressions.log" 2>&1; then
      echo "fuzz: $t: ${#regressions[@]} regression inputs pass"
    else
      echo "fuzz: $t: a regression input FAILS:"
      tail -n 60 "$build/$t.regressions.log"
      status=1
      summary+=("$t: regression FAILED")
      continue
    fi
  fi

  # 2. Fuzzing for a bounded time.
  seeds=()
  if [ -d "fuzz/corpus/$t" ]; then seeds=("fuzz/corpus/$t"); fi
  log="$build/$t.log"
  rc=0
  started=$SECONDS
  # shellcheck disable=SC2086
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" \
    ${FUZZ_FLAGS:-} "$corpus" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  elapsed=$((SECONDS - started))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -a -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
  ft=$(grep -a -o 'ft: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
  units=$(find "$corpus" -type f | wc -l)
  line="$t: ${execs:-?} executions in ${elapsed}s, cov ${cov:-?}, ft ${ft:-?}, corpus $units"
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $t CRASHED (exit $rc); log $log"
    grep -a -E '^(==[0-9]+== ?ERROR|SUMMARY|CHECK failed|.*runtime error)' "$log" |
      head -n 20 || true
    grep -a -A 40 -m 1 -E '^==[0-9]+== ?ERROR|CHECK failed|runtime error' "$log" |
      grep -a -E '^ +#[0-9]+ ' | head -n 25 || true
    grep -a -E 'Test unit written to' "$log" || true
    echo "fuzz: save the input as fuzz/regressions/$t/<name> to keep it a test"
    status=1
    summary+=("$line: CRASH")
  else
    summary+=("$line: no crash")
  fi
done

echo "fuzz summary:"
for s in "${summary[@]}"; do echo "  $s"; done
exit "$status"
