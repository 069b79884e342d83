#!/bin/bash
cd WORKDIR
cat /proc/loadavg; date
for r in 1 2; do
  for b in h1 h2; do
    OUT/phases.sh OUT/presenced-$b OUT/ph3-$b-$r.log
    echo "$b $r $(grep -o 'realms_ms.*' OUT/ph3-$b-$r.log)"
  done
done
python3 bench/startmeasure.py --json OUT/data1m 3 BASE/presenced OUT/presenced-h2
