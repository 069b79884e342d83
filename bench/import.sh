#!/usr/bin/env bash
# Bulk onboarding (issue #16): how long `presencectl import` of N users
# (default 100,000) takes against presenced on its embedded SQLite store,
# default flags, on loopback; then the same file again (all unchanged) and
# an export.
#
# Usage: bench/import.sh [--users N] [--build-dir DIR]
# (default build: build/release; build it with
#  cmake --preset release && cmake --build --preset release \
#    --target presenced presencectl)
# Prints one line per step with its wall time in seconds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
. "$here/lib.sh"
users=100000
build="$root/build/release"
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users="$2"; shift 2 ;;
    --build-dir) build="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "import.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bench_require_built import.sh "$build" "" presenced presencectl

work="$(mktemp -d /tmp/presenced-import.XXXXXX)"
server_pid=""
cleanup() {
  bench_stop_quietly "$server_pid"
  rm -rf "$work"
}
trap cleanup EXIT

export PRESENCED_ADMIN_TOKEN="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkfifo "$work/out"
"$build/presenced" --listen 127.0.0.1:0 --data "$work/data" \
  > "$work/out" 2> "$work/stderr.log" &
server_pid=$!
read -r line < "$work/out"
case "$line" in
  "listening on http://"*) url="${line#listening on }" ;;
  *) echo "import.sh: presenced said: $line" >&2; exit 1 ;;
esac
export PRESENCECTL_SERVER="$url"
ctl="$build/presencectl"
realm=$("$ctl" realm create bench "Bench" | awk '$1 == "realm_id" {print $2}')

python3 - "$users" > "$work/users.csv" <<'EOF'
import sys
n = int(sys.argv[1])
print("email,full_name,role,is_bot,can_access_all_users")
for i in range(n):
    role = "guest" if i % 50 == 0 else "member"
    print(f"user{i}@example.com,User {i},{role},false,true")
EOF

now() { date +%s.%N; }
step() {
  local label="$1"
  shift
  local t0 t1
  t0=$(now)
  "$@" > "$work/step.out"
  t1=$(now)
  printf '%-40s %6.2f s   (%s)\n' "$label" "$(python3 -c "print($t1 - $t0)")" \
    "$(tr '\n' ' ' < "$work/step.out" | sed 's/ *$//')"
}
echo "presencectl import of $users users, embedded store ($(nproc) cores)"
step "import (all created)" "$ctl" import "$realm" "$work/users.csv" \
  --keys-file "$work/keys.csv"
step "import again (all unchanged)" "$ctl" import "$realm" \
  "$work/users.csv" --keys-file "$work/keys2.csv"
step "export" "$ctl" export "$realm" -o "$work/export.csv"
echo "keys written: $(($(wc -l < "$work/keys.csv") - 1))"

# The reference, measured in the same run: 1,000 users created the old way,
# one POST /admin/v1/realms/{id}/users each (one connection each, as
# `presencectl user create` does).
single() {
  python3 - "$url" "$realm" <<'PY'
import http.client, json, os, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
for i in range(1000):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request("POST", f"/admin/v1/realms/{sys.argv[2]}/users",
              json.dumps({"email": f"single{i}@example.com"}),
              {"Authorization": "Bearer " + os.environ["PRESENCED_ADMIN_TOKEN"],
               "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
    c.close()
print("created 1000")
PY
}
step "reference: 1,000 users one POST each" single
