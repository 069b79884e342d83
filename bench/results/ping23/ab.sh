#!/usr/bin/env bash
# Interleaved 4-minute million runs, each under the machine lock, in the
# order given: ab.sh NAME=BUILD_DIR... (from the repository root; results in
# OUT_ROOT/NAME, the load average before each in OUT_ROOT/NAME.load).
# This session: ab.sh b3=BASE h3=HEAD b4=BASE h4=HEAD, where HEAD/presenced
# was a wrapper: exec HEAD_NICE/presenced "$@" --flush-thread-nice 0
out_root=${OUT_ROOT:-out}
for spec in "$@"; do
  name=${spec%%=*}; bin=${spec#*=}
  flock -x "${MACHINE_LOCK:-/tmp/machine.lock}" bash -c "cat /proc/loadavg > $out_root/$name.load; bench/million.sh --build-dir $bin --minutes 4 --probe 20 --memory-interval 2 --out $out_root/$name > $out_root/$name.stdout 2>&1"
done
