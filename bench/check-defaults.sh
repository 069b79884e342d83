#!/usr/bin/env bash
# ctest bench_defaults: every benchmark runs presenced with its default flags
# (issue #17); a departure is only an extra row that says so.
#
# Grep-level rules over the bench scripts (bench/*.sh, bench/*.py):
#   - the server's flags are the ones src/app/flags.cc declares;
#   - a few of them only say where and how the server runs, not what a
#     request does, and are allowed anywhere (SETUP below: addresses,
#     paths, stores, secrets, and the connection caps that thousands of
#     benchmark clients on one loopback address need);
#   - any other server flag written in a script (the rate limit set to
#     0 on the command line or in a Python argument list, `--max-connections=...` passed through, ...)
#     must carry the marker `bench-extra:` on its line or on one of the 3
#     lines above, saying which extra row it belongs to; that row's label
#     in the script's output must say it departs from the defaults;
#   - comment lines (first non-blank character `#`) are documentation and
#     are not checked.
# Prints every offending line as FILE:LINE: FLAG and exits 1 if any.
#
# Usage: bench/check-defaults.sh [ROOT]   (default: this checkout)
#        bench/check-defaults.sh --self-test
#   (the rules on planted scripts: an unmarked departure must fail, a marked
#   one, a setup flag and a comment must pass)
set -euo pipefail
if [ "${1:-}" = --self-test ]; then
  here="$(cd "$(dirname "$0")" && pwd)"
  t="$(mktemp -d /tmp/check-defaults.XXXXXX)"
  trap 'rm -rf "$t"' EXIT
  mkdir -p "$t/src/app" "$t/bench"
  cp "$here/../src/app/flags.cc" "$t/src/app/"
  # The departure is spelt in pieces so that this file itself names no
  # unmarked departure to a plain grep.
  rl="--rate""-limit"
  cat > "$t/bench/ok.sh" << EOS
# A comment may name $rl 0.
"\$PRESENCED" --listen 127.0.0.1:0 --data "\$d" --max-connections 20000
# bench-extra: the limit's cost, labelled in the output
"\$PRESENCED" --listen 127.0.0.1:0 $rl 0
EOS
  cat > "$t/bench/ok.py" << EOS
args = ["--store", url]
# bench-extra: an extra row
args += ["$rl", "0"]
EOS
  bash "$0" "$t" > /dev/null || { echo "self-test: clean scripts rejected" >&2; exit 1; }
  echo "\"\$PRESENCED\" --listen 127.0.0.1:0 $rl 0" > "$t/bench/bad.sh"
  if bash "$0" "$t" > /dev/null 2>&1; then
    echo "self-test: an unmarked $rl 0 in a .sh passed" >&2; exit 1
  fi
  rm "$t/bench/bad.sh"
  printf 'x = ["--events-poll-limit=0"]\n' > "$t/bench/bad.py"
  if bash "$0" "$t" > /dev/null 2>&1; then
    echo "self-test: an unmarked --events-poll-limit=0 in a .py passed" >&2; exit 1
  fi
  echo "check-defaults: self-test passed"
  exit 0
fi
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
flags_cc="$root/src/app/flags.cc"
[ -f "$flags_cc" ] || { echo "check-defaults: no $flags_cc" >&2; exit 2; }

# Where and how the server runs; not a departure from the defaults.
# --threads: the I/O threads are sized like the reference's workers
# (nginx's worker_processes) and every summary states the count.
SETUP=" --listen --data --store --cluster-secret-file --advertise
  --admin-listen --admin-token-file --root-domain --threads
  --max-connections --max-connections-per-address "

mapfile -t server_flags < <(grep -oE 'add_(option|flag)\("--[a-z0-9-]+' \
  "$flags_cc" | sed 's/.*("//' | sort -u)
[ "${#server_flags[@]}" -gt 10 ] || {
  echo "check-defaults: found only ${#server_flags[@]} flags in $flags_cc" >&2
  exit 2
}
departures=()
for f in "${server_flags[@]}"; do
  case "$SETUP" in *" $f "* | *" $f"$'\n'*) continue ;; esac
  departures+=("$f")
done
# One alternation: --rate-limit, --events-poll-limit, ... (the longest
# names first does not matter: a flag must end at a non-name character).
pattern="($(IFS='|'; echo "${departures[*]}"))([^a-z0-9-]|\$)"

bad=0
shopt -s nullglob
for file in "$root"/bench/*.sh "$root"/bench/*.py; do
  rel="${file#"$root"/}"
  [ "$rel" = bench/check-defaults.sh ] && continue  # the rules' own examples
  # awk keeps the last 3 lines to find the marker above a hit.
  while IFS= read -r hit; do
    echo "$rel:$hit"
    bad=1
  done < <(awk -v pat="$pattern" '
    {
      line = $0
      stripped = line
      sub(/^[ \t]+/, "", stripped)
      marked = (line ~ /bench-extra:/ || p1 ~ /bench-extra:/ ||
                p2 ~ /bench-extra:/ || p3 ~ /bench-extra:/)
      if (substr(stripped, 1, 1) != "#" && !marked && match(line, pat)) {
        flag = substr(line, RSTART, RLENGTH)
        sub(/[^a-z0-9-]$/, "", flag)
        printf "%d: %s (a departure from the defaults outside a row marked bench-extra:)\n", NR, flag
      }
      p3 = p2; p2 = p1; p1 = line
    }' "$file")
done
if [ "$bad" = 1 ]; then
  echo "check-defaults: benchmarks must run presenced with its default flags;" \
    "mark an extra row with 'bench-extra: <why>' and label it in the output" >&2
  exit 1
fi
echo "check-defaults: every bench script runs presenced with its defaults" \
  "(${#departures[@]} server flags checked)"
