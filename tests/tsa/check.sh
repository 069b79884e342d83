#!/usr/bin/env bash
# Proves the clang-tsa build checks something: tests/tsa/violations.cc must
# compile cleanly as written (VIOLATION=0) and fail, with the expected
# diagnostic, for each seeded mistake. Needs clang++-14
# (scripts/install-deps.sh); without it this test fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
cxx=${CLANGXX:-clang++-14}
compile() {
  "$cxx" -std=c++20 -Isrc -fsyntax-only -Wthread-safety -Wthread-safety-beta \
    -Werror=thread-safety -DVIOLATION="$1" tests/tsa/violations.cc 2>&1
}
status=0
if ! out=$(compile 0); then
  echo "FAIL: the correct code was rejected:"; echo "$out"; status=1
fi
expect=(
  ""
  "writing variable 'balance_' requires holding mutex 'mu_' exclusively"
  "calling function 'BalanceLocked' requires holding mutex 'mu_'"
  "acquiring mutex 'mu_' that is already held"
  "writing variable 'audits_' requires holding mutex 'audit_mu_' exclusively"
  "calling function 'Wait' requires holding mutex 'mu_' exclusively"
)
for n in 1 2 3 4 5; do
  if out=$(compile "$n"); then
    echo "FAIL: violation $n compiled: ${expect[$n]}"; status=1
  elif ! grep -qF -- "${expect[$n]}" <<<"$out"; then
    echo "FAIL: violation $n: expected \"${expect[$n]}\", got:"; echo "$out"
    status=1
  else
    echo "ok: violation $n rejected: ${expect[$n]}"
  fi
done
exit $status
