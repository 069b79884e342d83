#!/bin/bash
# phases.sh BINARY LOG: start on the 10M data, wait for "listening on", stop.
"$1" --data OUT/data10m --listen 127.0.0.1:0 > "$2" 2>&1 &
pid=$!
for i in $(seq 600); do grep -q "listening on" "$2" && break; sleep 0.1; done
kill $pid; wait $pid
