#!/bin/bash
cd WORKDIR
cat /proc/loadavg; date
python3 bench/startmeasure.py --json OUT/data10m 2 BASE/presenced OUT/presenced-h2
OUT/phases.sh OUT/presenced-h2 OUT/ph-h2.log
perf record -e cpu-clock -F 499 -g -o OUT/perf-h2.data OUT/phases.sh OUT/presenced-h2 OUT/ph-h2p.log
