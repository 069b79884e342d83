#!/usr/bin/env bash
# From a fresh Debian 12 checkout: installs what is missing to build and run
# the server (not what only the tests need), builds the optimised server and
# presencectl, and runs the server on the embedded default (SQLite in ./var).
# On an empty ./var it creates a demo organisation and prints a curl ping.
# Extra arguments go to presenced (e.g. --listen 127.0.0.1:9991).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release
cmake --build --preset release -j "$(nproc)" --target presenced presencectl
exec build/release/presenced --demo "$@"
