#!/usr/bin/env bash
# Installs, from Debian 12's own archive, what presenced needs.
#
#   scripts/install-deps.sh          to build and run the release server
#                                    (scripts/run-demo.sh)
#   scripts/install-deps.sh --test   that, plus everything the test suite
#                                    needs (scripts/test.sh)
#
# Safe to run again: packages already installed are skipped, and nothing is
# asked of apt when nothing is missing.
#
# Daemons: redis-server, redis-sentinel, nginx and prometheus are installed
# for their programs only (the tests start their own redis-server, sentinels
# and nginx on loopback ports, and run promtool). Their packages would start
# services listening on 6379, *:26379, *:80 and *:9090; so while apt installs
# the ones missing here, a temporary /usr/sbin/policy-rc.d (exit 101) keeps
# them from starting (an existing policy-rc.d is set aside and put back), and
# afterwards the services of the packages this run installed are disabled
# for the next boot (`systemctl disable`, plus `--now` where systemd runs;
# `update-rc.d disable` without systemd). Services of packages that were
# already installed are left alone.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

with_tests=0
case "${1:-}" in
  "") ;;
  --test) with_tests=1 ;;
  *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac

# Building and running the server (release build, no tests).
run_packages=(
  g++ cmake ninja-build pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libsqlite3-dev libssl-dev libcli11-dev
  # The Redis store (src/store/redis_store.cc) is always compiled in.
  libhiredis-dev
)
# Only the tests need these.
test_packages=(
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  clang-format python3 python3-jsonschema sqlite3
  tmux
  # The Redis store's tests start their own redis-server processes on free
  # loopback ports; --store redis-sentinel:// and its failover test start
  # their own sentinels.
  redis-tools
  # The man-page check of tests/install; the reverse-proxy tests' throwaway
  # certificate for `nginx -t` (tests/blackbox/test_nginx.py).
  man-db openssl
  clang-14 libclang-rt-14-dev
  # Browser test of the buddy-list page (tests/web): Debian's Chromium, and a
  # font for its screenshots.
  chromium fonts-dejavu-core
  # Packaging and deployment checks: CPack DEB with shlibdeps, and
  # `systemd-analyze verify/security --offline` on the unit file.
  dpkg-dev file systemd
)
# Test-only packages that come with a daemon (see the top of this file).
service_packages=(redis-server redis-sentinel nginx-light prometheus)
# package -> the service it brings
declare -A service_of=(
  [redis-server]=redis-server [redis-sentinel]=redis-sentinel
  [nginx-light]=nginx [prometheus]=prometheus
)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
missing_of() {
  local p
  for p in "$@"; do installed "$p" || echo "$p"; done
}

packages=("${run_packages[@]}")
if [ "$with_tests" = 1 ]; then
  packages+=("${test_packages[@]}")
  # tests/e2e and tests/web need Node.js >= 18 and npm. Debian's nodejs (18)
  # and npm (9.2) are installed when there is no node at all; a node that is
  # already there (e.g. a newer one from elsewhere) is never replaced.
  if ! command -v node >/dev/null 2>&1 && ! command -v nodejs >/dev/null 2>&1; then
    packages+=(nodejs npm)
  else
    node_bin=$(command -v node || command -v nodejs)
    node_major=$("$node_bin" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    if [ "$node_major" -lt 18 ]; then
      echo "error: $node_bin is Node.js $node_major; tests/e2e and tests/web need >= 18" >&2
      exit 1
    fi
    if ! command -v npm >/dev/null 2>&1; then
      if installed nodejs && dpkg-query -W -f='${Version}' nodejs | grep -q '^18\.'; then
        packages+=(npm)  # Debian's own nodejs: its npm fits
      else
        echo "error: $node_bin has no npm beside it; install npm for it" >&2
        exit 1
      fi
    fi
  fi
fi

mapfile -t missing < <(missing_of "${packages[@]}")
missing_services=()
if [ "$with_tests" = 1 ]; then
  mapfile -t missing_services < <(missing_of "${service_packages[@]}")
fi
if [ ${#missing[@]} -eq 0 ] && [ ${#missing_services[@]} -eq 0 ]; then
  exit 0
fi

apt_install() {
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    --no-install-recommends "$@"
}
$SUDO apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt_install "${missing[@]}"
fi

if [ ${#missing_services[@]} -gt 0 ]; then
  policy=/usr/sbin/policy-rc.d
  saved=$policy.presenced-saved
  restore_policy() {
    $SUDO rm -f "$policy"
    if $SUDO test -e "$saved"; then $SUDO mv "$saved" "$policy"; fi
  }
  # A saved copy left by an interrupted run is the original: keep it.
  if $SUDO test -e "$policy" && ! $SUDO test -e "$saved"; then
    $SUDO mv "$policy" "$saved"
  fi
  trap restore_policy EXIT
  printf '#!/bin/sh\n# scripts/install-deps.sh: no daemon starts during this install\nexit 101\n' |
    $SUDO tee "$policy" >/dev/null
  $SUDO chmod 0755 "$policy"
  echo "installing without starting their services: ${missing_services[*]}"
  apt_install "${missing_services[@]}"
  restore_policy
  trap - EXIT
  for p in "${missing_services[@]}"; do
    svc=${service_of[$p]}
    if [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
    elif command -v systemctl >/dev/null 2>&1; then
      # systemd installed but not running (a container, a chroot): disables
      # the unit and the init.d links for the next boot.
      $SUDO systemctl disable "$svc" >/dev/null 2>&1 || true
    elif [ -e "/etc/init.d/$svc" ]; then
      $SUDO update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
  done
fi
