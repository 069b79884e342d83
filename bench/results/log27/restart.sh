#!/bin/bash
# The 1M restart to the first answered ping (bench/startmeasure.py), from a
# clean stop (an empty presence log) and after a crash (the worst log a
# crash leaves: crash-log.py), ROUNDS times each, each start on a fresh copy.
# Usage: restart.sh BIN OUT [ROUNDS]
set -euo pipefail
bin=$1 out=$2 rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/bench_populate" --data "$work/base" --users 1000000 > "$out/populate.txt" 2>&1
for r in $(seq "$rounds"); do
  for kind in clean crash; do
    rm -rf "$work/data"
    cp -r "$work/base" "$work/data"
    if [ "$kind" = crash ]; then
      python3 "$here/crash-log.py" "$work/data" >> "$out/$kind.txt"
    fi
    echo "load: $(cat /proc/loadavg)" >> "$out/$kind.txt"
    python3 "$repo/bench/startmeasure.py" "$work/data" 1 "$bin/presenced" \
      >> "$out/$kind.txt" 2>&1
  done
done
