#!/usr/bin/env bash
# Installs, from Debian 12's own archive, every package presenced needs to be
# built, run and tested. Safe to run again: apt skips what is already there.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
packages=(
  g++ cmake ninja-build pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libsqlite3-dev sqlite3 libssl-dev libcli11-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  clang-format python3 python3-jsonschema
  tmux
  # cpack -G DEB (dpkg-shlibdeps computes the package's Depends) and the
  # man-page check of tests/install.
  dpkg-dev man-db
  # The reverse-proxy tests (tests/blackbox/proxy.py, test_nginx.py): nginx
  # in front of presenced, and a throwaway certificate for `nginx -t`.
  nginx-light openssl
  # The Redis store (src/store/redis_store.cc) and its tests. The tests start
  # their own redis-server processes on free loopback ports; the service that
  # Debian's package starts on 6379 is neither needed nor used.
  libhiredis-dev redis-server redis-tools
  # --store redis-sentinel:// and its failover test (tests/blackbox/
  # test_sentinel.py starts its own sentinels; the package's service on
  # 26379 is not used).
  redis-sentinel
  clang-14 libclang-rt-14-dev
  # Browser test of the buddy-list page (tests/web): Debian's Chromium, and a
  # font for its screenshots. Node.js 20 and npm come with the machine.
  chromium fonts-dejavu-core
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# tests/e2e and tests/web need Node.js 20 or later (Debian 12's own nodejs is
# 18: it is not installed over a newer one).
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "warning: Node.js >= 20 and npm are needed by tests/e2e and tests/web" >&2
fi
