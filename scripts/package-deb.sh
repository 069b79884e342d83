#!/usr/bin/env bash
# Builds the Debian packages from an optimised build (the `package` preset,
# prefix /usr): build/package/presenced_VERSION_ARCH.deb (server, presencectl,
# presence-top, man pages, configuration, systemd unit) and
# build/package/presenced-dev_VERSION_ARCH.deb (the client SDK).
# Needs what scripts/install-deps.sh installs (dpkg-dev among it).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset package
cmake --build --preset package \
  --target presenced presencectl presence-top presence_client
cd build/package
rm -f ./*.deb
cpack -G DEB
ls -l ./*.deb
