#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 checkout: installs what is
# missing, checks formatting, checks the lock annotations with clang-14, runs
# the concurrency tests under TSan, builds under ASan+UBSan and runs every
# test.
# This is the README's test command; .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
scripts/check-format.sh
# Every lock annotation checked by clang-14 (-Werror=thread-safety): the
# production targets, no tests.
cmake --preset clang-tsa
cmake --build --preset clang-tsa -j "$(nproc)"
# The concurrency tests (locks, core and HTTP) under ThreadSanitizer.
cmake --preset tsan
cmake --build --preset tsan -j "$(nproc)" --target util_tests core_tests http_tests
ctest --preset tsan -R '^(MutexTest|SharedMutexTest|CondVarTest|ConcurrencyTest|EventHubTest|HttpServerTest|PresenceServiceTest|Writers/PresenceWriterTest|SharedServiceTest)\.'
# Everything under ASan+UBSan.
cmake --preset debug
cmake --build --preset debug -j "$(nproc)"
# The Node test suites' packages, exactly as locked (npm registry only).
for d in tests/e2e tests/web; do
  (cd "$d" && npm ci --no-audit --no-fund)
done
ctest --preset debug -j "$(nproc)"
