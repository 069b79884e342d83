#!/usr/bin/env python3
"""bench/sentinel_failover.py: a Redis master killed under load, behind
Redis Sentinel: requests and errors per interval through the failover.

On loopback: one redis-server master with one replica (persistence off),
three redis-sentinel processes (quorum 2, down-after-milliseconds
--down-after-ms), two presenced nodes with --store redis-sentinel://...
and otherwise the server's defaults (issue #17: the rate limit on).
--clients threads ping over keep-alive connections, half on each node, each
thread in a closed loop over its own --users-per-client users, enough that
none nears the limit of 200 requests a minute (the summary counts 429
answers apart; they must be 0); the master gets SIGKILL at --kill-at
seconds. --wait-replicas N > 0 is an extra run that departs from the
defaults, and its summary line says so. Prints a
markdown table of answered and failed pings per --bucket seconds and a
summary line (the time from the kill to the sentinels' agreement, and to
the first answered ping after the first failure).

Python clients on a shared 2-core machine: the absolute rate is the
clients', not presenced's (bench/scaleout.sh measures throughput); the
timeline's shape is the point.

Usage: bench/sentinel_failover.py [--binary build/release/presenced]
         [--duration 20] [--kill-at 6] [--clients 8] [--bucket 0.5]
         [--down-after-ms 1000] [--wait-replicas 0] [--users-per-client 250]
Needs redis-server and redis-sentinel; PRESENCE_OPENAPI as for
tests/blackbox (the harness is shared).
"""

import argparse
import http.client
import os
import sys
import threading
import time
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))

import cluster  # noqa: E402
import harness  # noqa: E402

MASTER_NAME = "presence"
FAST_SYNC = ["--repl-diskless-sync-delay", "0"]


def wait_until(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"sentinel_failover: timed out: {what}")
        time.sleep(0.02)


def replicas_online(port):
    try:
        info = cluster.redis_call(port, "INFO", "replication")
    except OSError:
        return 0
    return sum(1 for line in info.splitlines()
               if line.startswith("slave") and "state=online" in line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary",
                    default=os.path.join(ROOT, "build", "release", "presenced"))
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--kill-at", type=float, default=6)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--bucket", type=float, default=0.5)
    ap.add_argument("--down-after-ms", type=int, default=1000)
    ap.add_argument("--wait-replicas", type=int, default=0)
    ap.add_argument("--users-per-client", type=int, default=250)
    args = ap.parse_args()
    os.environ["PRESENCED_BINARY"] = os.path.abspath(args.binary)

    cleanups = []
    try:
        master = cluster.RedisServer(FAST_SYNC)
        cleanups.append(master.cleanup)
        master.start()
        replica = cluster.RedisServer(
            FAST_SYNC + ["--replicaof", harness.LOOPBACK, str(master.port)])
        cleanups.append(replica.cleanup)
        replica.start()
        wait_until("replica in sync", lambda: replicas_online(master.port), 20)
        sentinels = []
        for _ in range(3):
            s = cluster.RedisSentinel(MASTER_NAME, master.port,
                                      down_after_ms=args.down_after_ms)
            cleanups.append(s.cleanup)
            sentinels.append(s.start())
        for s in sentinels:
            wait_until("sentinels ready", lambda s=s: (
                len(cluster.redis_call(s.port, "SENTINEL", "replicas",
                                       MASTER_NAME)) == 1 and
                len(cluster.redis_call(s.port, "SENTINEL", "sentinels",
                                       MASTER_NAME)) == 2), 20)
        url = "redis-sentinel://" + ",".join(
            f"{harness.LOOPBACK}:{s.port}" for s in sentinels) + \
            "/" + MASTER_NAME
        secret = cluster.write_secret_file(master.dir, "secret",
                                           "sec" + os.urandom(24).hex())
        node_args = ["--store", url, "--cluster-secret-file", secret]
        if args.wait_replicas:
            # bench-extra: --wait-replicas N, labelled in the summary line
            node_args += ["--redis-wait-replicas", str(args.wait_replicas)]
        nodes = []
        for _ in range(2):
            n = harness.Server(test_clock=False, extra_args=node_args,
                               admin_token=nodes[0].admin_token if nodes else None)
            cleanups.append(n.cleanup)
            nodes.append(n.start())
        realm = nodes[0].create_realm()
        per = args.users_per_client
        users = [realm.create_user() for _ in range(args.clients * per)]

        stop = threading.Event()
        results = [[] for _ in range(args.clients)]  # (done at, ok)
        limited = [0] * args.clients  # 429 answers
        t0 = time.monotonic()

        def client(k):
            node = nodes[k % 2]
            mine = users[k * per:(k + 1) * per]
            conn = None
            i = 0
            body = urllib.parse.urlencode(
                {"status": "active", "slim_presence": "true"}).encode()
            while not stop.is_set():
                u = mine[i % len(mine)]
                i += 1
                ok = False
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(
                            harness.LOOPBACK, node.port, timeout=15)
                    conn.request("POST", "/api/v1/users/me/presence", body, {
                        "Host": f"{realm.subdomain}.localhost:{node.port}",
                        "Authorization": harness.basic_auth(u.email,
                                                            u.api_key),
                        "Content-Type": "application/x-www-form-urlencoded"})
                    r = conn.getresponse()
                    r.read()
                    ok = r.status == 200
                    limited[k] += r.status == 429
                except (OSError, http.client.HTTPException):
                    if conn is not None:
                        conn.close()
                    conn = None
                results[k].append((time.monotonic() - t0, ok))

        threads = [threading.Thread(target=client, args=(k,))
                   for k in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(args.kill_at)
        killed = time.monotonic() - t0
        master.kill()
        agreed = None
        while time.monotonic() - t0 < args.duration:
            if agreed is None:
                try:
                    if all(s.master() == replica.port for s in sentinels):
                        agreed = time.monotonic() - t0
                except OSError:
                    pass
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(30)

        events = sorted(e for r in results for e in r)
        buckets = int(args.duration / args.bucket) + 1
        ok = [0] * buckets
        bad = [0] * buckets
        for t, good in events:
            b = min(int(t / args.bucket), buckets - 1)
            (ok if good else bad)[b] += 1
        print(f"| t (s) | answered/s | failed/s |")
        print("| ---: | ---: | ---: |")
        for b in range(buckets):
            mark = " (kill)" if b == int(killed / args.bucket) else ""
            print(f"| {b * args.bucket:.1f}{mark} | {ok[b] / args.bucket:.0f} |"
                  f" {bad[b] / args.bucket:.0f} |")
        failures = [t for t, good in events if not good and t > killed]
        first_fail = failures[0] if failures else None
        resumed = next((t for t, good in events
                        if good and first_fail is not None and
                        t > first_fail), None)
        print(f"\nkill at {killed:.2f} s; sentinels agreed "
              f"{(agreed - killed) if agreed else float('nan'):.2f} s after; "
              f"{len(failures)} failed pings, the last "
              f"{(failures[-1] - killed) if failures else 0:.2f} s after the "
              f"kill; first answer after the first failure "
              f"{(resumed - killed) if resumed else float('nan'):.2f} s after "
              f"the kill; clients {args.clients} over {len(users)} users, "
              f"{sum(limited)} answers 429; " +
              # bench-extra: the label of a --wait-replicas run
              (f"--redis-wait-replicas {args.wait_replicas} (extra run, "
               "departs from the defaults)" if args.wait_replicas
               else "the server's default flags"))
    finally:
        for c in reversed(cleanups):
            try:
                c()
            except Exception as e:  # keep cleaning up
                print(f"sentinel_failover: cleanup: {e!r}", file=sys.stderr)


if __name__ == "__main__":
    main()
