#!/usr/bin/env bash
# Fails if any C++ source disagrees with .clang-format.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.h' '*.cc' 2>/dev/null || true)
[ -z "$files" ] && files=$(find src tests tools bench fuzz -name '*.h' -o -name '*.cc' 2>/dev/null)
# shellcheck disable=SC2086
clang-format --dry-run --Werror $files
echo "format: $(echo "$files" | wc -w) files ok"
