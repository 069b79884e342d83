#!/usr/bin/env bash
# floor24, with the million run's pings: run.sh (19,000 watchers, 30
# events/s: 570k requested deliveries/s) plus 16,700 pings/s over 1,000,000
# users who are online already (so a ping writes nothing), labelled
# "-pings".
# Usage: run-pings.sh OUT RUNS BIN LOCK
set -euo pipefail
exec "$(dirname "$0")/run.sh" "$1" "$2" "$3" "$4" 16700 1000000 -pings
