"""Availability on Redis Sentinel: the master killed (SIGKILL) under load.

On loopback: one redis-server master, one replica, three redis-sentinel
processes (quorum 2, down-after-milliseconds 1000, in temporary
directories), two presenced nodes with --store redis-sentinel://...: node
`durable` with --redis-wait-replicas 1, node `fast` without it. Writers ping
through both nodes from threads and /healthz is polled on both while the
master is killed. What is asserted:

- the sentinels promote the replica, and both nodes follow it: pings are
  answered again within RESUME_BOUND_S of the kill (on `fast`; `durable`
  needs a replica to acknowledge, so it resumes once a new replica of the
  new master is in sync), and a ping on one node reaches an event queue on
  the other (the feed follows the new master too);
- /healthz said 503 at some point after the kill and says 200 again after;
- every ping `durable` acknowledged (WAIT 1 on) is in the new master;
- `durable` acknowledges nothing while the new master has no replica;
- a manual failover (SENTINEL FAILOVER: the old master lives on, demoted,
  and answers READONLY) costs the node without WAIT no failed ping.

- a write the failover lost (both nodes had applied it from the feed)
  does not hide the acknowledged writes after it: the nodes notice the
  store went back, fence it and read the realm whole.

Everything waits on observed state (the sentinels' answer, /healthz,
acknowledgements), each wait bounded. Timings are printed, not asserted
beyond the stated bound.
"""

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

import cluster
import harness
from harness import BASE_TIME

MASTER_NAME = "presence"
# From the kill to the first answered ping on the node without WAIT: the
# sentinels take down-after-milliseconds (1 s) to call the master down, then
# elect a leader and promote the replica (about 1-3 s on loopback), and a
# node notices at its next command. Stated generously for loaded CI
# machines under ASan.
RESUME_BOUND_S = 12.0
FAST_SYNC = cluster.RedisSentinelGroup.FAST_SYNC
wait_until = cluster.wait_until
replicas_online = cluster.replicas_online


def call(node, user, method, path, params=None, timeout=20.0):
    """One API request to one node (form-encoded, Basic auth)."""
    headers = [("Authorization", harness.basic_auth(user.email, user.api_key))]
    url = "/api/v1" + path
    body = b""
    if params is not None:
        if method in ("GET", "DELETE"):
            url += "?" + urllib.parse.urlencode(params)
        else:
            body = urllib.parse.urlencode(params).encode()
            headers.append(("Content-Type",
                            "application/x-www-form-urlencoded"))
    host = f"{user.realm.subdomain}.localhost:{node.port}"
    return harness.http_request(node.port, method, url, headers, body,
                                host=host, timeout=timeout)


def ping(node, user, timeout=20.0):
    return call(node, user, "POST", "/users/me/presence",
                {"status": "active", "slim_presence": "true"},
                timeout=timeout)


def healthz(node):
    try:
        return harness.http_request(node.port, "GET", "/healthz",
                                    timeout=10).status
    except OSError:
        return None


class SentinelFailoverTest(unittest.TestCase):
    def setUp(self):
        # Ready for a failover once started: each sentinel sees the
        # replica and enough other sentinels to reach the quorum and elect
        # a leader.
        self.group = cluster.RedisSentinelGroup(MASTER_NAME)
        self.addCleanup(self.group.cleanup)
        self.group.start()
        self.master = self.group.master
        self.replica = self.group.replica
        self.sentinels = self.group.sentinels
        url = self.group.url
        secret = cluster.write_secret_file(self.master.dir, "cluster-secret",
                                           "sec" + os.urandom(24).hex())
        common = ["--store", url, "--cluster-secret-file", secret]
        self.durable = harness.Server(extra_args=common + [
            "--redis-wait-replicas", "1", "--redis-wait-timeout-ms", "2000"])
        self.addCleanup(self.durable.cleanup)
        self.durable.start()
        self.fast = harness.Server(extra_args=common,
                                   admin_token=self.durable.admin_token)
        self.addCleanup(self.fast.cleanup)
        self.fast.start()
        for n in (self.durable, self.fast):
            n.set_clock(BASE_TIME)
        self.realm = self.durable.create_realm()

    def sentinels_agree_on(self, port):
        return self.group.sentinels_agree_on(port)

    def test_nodes_follow_a_promoted_replica_and_keep_acknowledged_writes(self):
        # Fresh users for the durable writer: an acknowledged first ping of a
        # user means its row exists, so each acknowledgement is checkable.
        durable_users = [self.realm.create_user() for _ in range(400)]
        fast_users = [self.realm.create_user() for _ in range(30)]
        stop = threading.Event()
        acked = []       # users whose ping `durable` acknowledged
        acked_at = []    # (sent at, answered at) of each of those pings
        durable_failures = []  # (sent at, status, body) of its failures
        fast_log = []    # (sent at, status or None) of `fast`'s pings
        health = {id(self.durable): [], id(self.fast): []}

        def durable_writer():
            i = 0
            while not stop.is_set() and i < len(durable_users):
                u = durable_users[i]
                sent = time.monotonic()
                try:
                    r = ping(self.durable, u, timeout=15)
                    ok = r.status == 200
                    if not ok:
                        durable_failures.append((sent, r.status, r.body[:300]))
                except OSError as e:
                    ok = False
                    durable_failures.append((sent, None, repr(e)))
                if ok:
                    acked_at.append((sent, time.monotonic()))
                    acked.append(u)
                    i += 1
                # Paced (the same user again after a failure): the users
                # last through the failover.
                stop.wait(0.03)

        def fast_writer():
            # Paced to stay inside the default rate limit (200 a minute per
            # user over 30 users).
            i = 0
            while not stop.is_set():
                u = fast_users[i % len(fast_users)]
                i += 1
                sent = time.monotonic()
                try:
                    status = ping(self.fast, u, timeout=15).status
                except OSError:
                    status = None
                fast_log.append((sent, status))
                stop.wait(0.03)

        def health_poller(node):
            while not stop.is_set():
                health[id(node)].append((time.monotonic(), healthz(node)))
                stop.wait(0.05)

        workers = [threading.Thread(target=durable_writer),
                   threading.Thread(target=fast_writer),
                   threading.Thread(target=health_poller,
                                    args=(self.durable,)),
                   threading.Thread(target=health_poller, args=(self.fast,))]
        for w in workers:
            w.start()
        try:
            wait_until("writes are acknowledged before the kill",
                       lambda: len(acked) >= 20 and
                       sum(1 for _, s in fast_log if s == 200) >= 10, 30)
            acked_before = len(acked)
            self.master.kill()
            # Taken once the master is reaped: a ping sent between a time
            # taken before the kill and the signal could still be
            # acknowledged by the old master with its replica.
            killed_at = time.monotonic()

            wait_until("the sentinels promote the replica",
                       lambda: self.sentinels_agree_on(self.replica.port),
                       RESUME_BOUND_S)
            promoted_at = time.monotonic()
            resumed = wait_until(
                "the node without WAIT answers pings again",
                lambda: next((t for t, s in fast_log
                              if t > killed_at and s == 200), None),
                RESUME_BOUND_S)
            for n in (self.durable, self.fast):
                wait_until(f"/healthz of node {n.port} says 200 again",
                           lambda n=n: health[id(n)] and
                           health[id(n)][-1][1] == 200 and
                           health[id(n)][-1][0] > promoted_at,
                           RESUME_BOUND_S)

            # WAIT 1 needs a replica of the new master: the operator's
            # replacement for the dead one.
            acked_without_replica = len(acked)
            spare_started = time.monotonic()
            spare = cluster.RedisServer(
                FAST_SYNC + ["--replicaof", harness.LOOPBACK,
                             str(self.replica.port)])
            self.addCleanup(spare.cleanup)
            spare.start()
            wait_until("the replacement replica is in sync",
                       lambda: replicas_online(self.replica.port) == 1, 20)
            wait_until("the durable node acknowledges writes again",
                       lambda: len(acked) >= acked_without_replica + 10 or (
                           len(acked) == len(durable_users) and
                           self.fail("the durable writer ran out of users")),
                       30)
        finally:
            stop.set()
            for w in workers:
                w.join(30)

        # Timings, for the report (not asserted beyond the bound above).
        fast_after = [(t, s) for t, s in fast_log if t > killed_at]
        failed = [t for t, s in fast_after if s != 200]
        unhealthy = {id(n): [t for t, s in health[id(n)]
                             if t > killed_at and s != 200]
                     for n in (self.durable, self.fast)}
        print(f"\nsentinel failover: promoted {promoted_at - killed_at:.2f} s "
              f"after the kill; first answered ping {resumed - killed_at:.2f}"
              f" s after it; {len(failed)} failed pings on the node without "
              f"WAIT; /healthz unhealthy for "
              f"{[round(v[-1] - v[0], 2) if v else 0 for v in unhealthy.values()]}"
              f" s; durable acks: {acked_before} before the kill, "
              f"{acked_without_replica - acked_before} with no replica, "
              f"{len(acked)} in all; {len(durable_failures)} failed",
              flush=True)

        self.assertLessEqual(resumed - killed_at, RESUME_BOUND_S)
        # WAIT 1 with no replica in sync: nothing sent after the kill was
        # acknowledged before the replacement replica came.
        self.assertEqual([(s, d) for s, d in acked_at
                          if s > killed_at and d < spare_started], [])
        for n in (self.durable, self.fast):
            self.assertTrue(unhealthy[id(n)],
                            f"/healthz of {n.port} never said 503 after the "
                            f"kill: {health[id(n)][-20:]}")
            self.assertEqual(healthz(n), 200)

        # Every acknowledged write of the durable node is in the new master.
        rows_key = f"presenced:{{r{self.realm.id}}}:rows"
        present = cluster.redis_call(self.replica.port, "HMGET", rows_key,
                                     *[u.id for u in acked])
        missing = [u.id for u, row in zip(acked, present) if row is None]
        self.assertEqual(missing, [], "acknowledged writes lost")

        # Both nodes read and write on the new master, and the feed of each
        # follows it: a ping on one node reaches a queue on the other.
        watcher, mover = fast_users[0], fast_users[1]
        for here, there in ((self.fast, self.durable),
                            (self.durable, self.fast)):
            r = call(here, watcher, "POST", "/register",
                     {"event_types": json.dumps(["presence"]),
                      "slim_presence": "true"})
            self.assertEqual(r.status, 200, r)
            queue_id = r.json()["queue_id"]
            # Long enough offline that the next ping is an event.
            self.advance_clock(900)
            r = ping(there, mover)
            self.assertEqual(r.status, 200, r)
            r = call(here, watcher, "GET", "/events",
                     {"queue_id": queue_id, "last_event_id": -1})
            self.assertEqual(r.status, 200, r)
            self.assertIn(mover.id, [e.get("user_id")
                                     for e in r.json()["events"]
                                     if e.get("type") == "presence"], r.json())

    def test_a_manual_failover_is_followed_through_readonly_replies(self):
        # SENTINEL FAILOVER demotes a live master: connections to it stay
        # open, and its write scripts answer READONLY from then on.
        users = [self.realm.create_user() for _ in range(30)]
        stop = threading.Event()
        log = []  # (sent at, node, status, body)

        def writer(node, offset):
            i = offset
            while not stop.is_set():
                u = users[i % len(users)]
                i += 1
                sent = time.monotonic()
                try:
                    r = ping(node, u, timeout=15)
                    log.append((sent, node.port, r.status, r.body[:200]))
                except OSError as e:
                    log.append((sent, node.port, None, repr(e)))
                stop.wait(0.03)

        workers = [threading.Thread(target=writer, args=(self.fast, 0)),
                   threading.Thread(target=writer, args=(self.durable, 15))]
        for w in workers:
            w.start()
        try:
            wait_until("pings are answered before the failover",
                       lambda: sum(1 for e in log if e[2] == 200) >= 10, 30)
            started = time.monotonic()
            self.assertEqual(cluster.redis_call(
                self.sentinels[0].port, "SENTINEL", "FAILOVER", MASTER_NAME),
                "OK")
            wait_until("the sentinels promote the replica",
                       lambda: self.sentinels_agree_on(self.replica.port),
                       RESUME_BOUND_S)
            wait_until("the old master is a replica of the new one",
                       lambda: replicas_online(self.replica.port) == 1, 20)
            promoted = time.monotonic()
            for port in (self.fast.port, self.durable.port):
                wait_until(f"node {port} answers pings after the failover",
                           lambda port=port: any(
                               e[0] > promoted and e[1] == port and
                               e[2] == 200 for e in log), RESUME_BOUND_S)
        finally:
            stop.set()
            for w in workers:
                w.join(30)
        failed = [e for e in log if e[0] > started and e[2] != 200]
        print(f"\nmanual failover: {len(failed)} of "
              f"{sum(1 for e in log if e[0] > started)} pings failed, "
              f"{sum(1 for e in failed if e[1] == self.fast.port)} of them "
              f"on the node without WAIT: {failed[:3]}", flush=True)
        # The node without WAIT retried its READONLY replies on the new
        # master: none reached a client. (The durable node fails writes
        # that no replica acknowledged while the roles change.)
        self.assertEqual([e for e in failed if e[1] == self.fast.port], [])
        # After the failover, both nodes answer every ping.
        self.assertEqual([e for e in log if e[0] > promoted and e[2] != 200],
                         [])
        self.assertEqual(cluster.redis_call(self.master.port, "ROLE")[0],
                         "slave")

    # A write the failover lost was already applied by the nodes from the
    # feed, so their replicas are ahead of the new master, which would hand
    # the same log numbers and update ids out again: the nodes would take
    # its next entries for ones already applied and not show them. The
    # nodes notice the store went back and fence it (README, Redis
    # Sentinel). Skipped if this run could not make the failover lose the
    # write.
    def test_a_write_the_failover_lost_does_not_hide_later_writes(self):
        x, y, watcher = (self.realm.create_user() for _ in range(3))
        rows = f"presenced:{{r{self.realm.id}}}:rows"
        # The replica stopped, and the kernel's buffers towards it full: the
        # next write stays in the master's memory, and dies with it.
        os.kill(self.replica.proc.pid, signal.SIGSTOP)
        try:
            cluster.redis_call(self.master.port, "SET", "filler",
                               b"f" * (32 << 20), timeout=30)
            self.assertEqual(ping(self.fast, x).status, 200)
            self.assertEqual(cluster.redis_call(self.master.port, "HEXISTS",
                                                rows, x.id), 1)
            self.master.kill()
        finally:
            os.kill(self.replica.proc.pid, signal.SIGCONT)
        wait_until("the sentinels promote the replica",
                   lambda: self.sentinels_agree_on(self.replica.port),
                   RESUME_BOUND_S)
        # x's row, not the realm's log position: a node may fence the new
        # master (raising its log) as soon as it reconnects.
        if cluster.redis_call(self.replica.port, "HEXISTS", rows, x.id):
            self.skipTest("the replica had the write: nothing was lost")
        wait_until("/healthz says 200 again",
                   lambda: healthz(self.fast) == 200, RESUME_BOUND_S)
        self.assertEqual(ping(self.fast, y).status, 200)
        self.assertEqual(cluster.redis_call(
            self.replica.port, "HEXISTS", rows, y.id), 1)
        for n in (self.fast, self.durable):
            # Polled gently: the watcher's requests count against the rate
            # limit.
            deadline = time.monotonic() + 5
            while True:
                r = call(n, watcher, "GET", "/realm/presence")
                self.assertEqual(r.status, 200, r)
                if y.email in r.json()["presences"]:
                    break
                self.assertLess(time.monotonic(), deadline,
                                f"node {n.port} does not show y's "
                                f"acknowledged row: {r.json()}")
                time.sleep(0.25)

    def advance_clock(self, seconds):
        self.now = getattr(self, "now", BASE_TIME) + seconds
        for n in (self.durable, self.fast):
            n.set_clock(self.now)


class SentinelFlagsTest(unittest.TestCase):
    """What presenced says about a bad sentinel store or WAIT flag, before
    it listens (no Redis needed)."""

    def run_node(self, *args):
        data = tempfile.mkdtemp(prefix="presenced-sentinel-flags-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", data]))
        secret = cluster.write_secret_file(data, "secret",
                                           "sec" + os.urandom(24).hex())
        return subprocess.run(
            [harness.binary_path(), "--listen", "127.0.0.1:0", "--data", data,
             "--cluster-secret-file", secret] + list(args),
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=30)

    def test_a_malformed_sentinel_url_is_refused_with_the_expected_form(self):
        for url in ("redis-sentinel://127.0.0.1:26379",
                    "redis-sentinel://127.0.0.1:26379/",
                    "redis-sentinel://127.0.0.1/presence"):
            r = self.run_node("--store", url)
            self.assertNotEqual(r.returncode, 0, r)
            self.assertIn("redis-sentinel://HOST:PORT[,HOST:PORT...]/"
                          "MASTERNAME", r.stderr)
            self.assertNotIn("listening on", r.stdout)

    def test_no_sentinel_answering_is_refused_naming_the_address(self):
        port = cluster.free_port()
        r = self.run_node("--store",
                          f"redis-sentinel://127.0.0.1:{port}/presence")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(f"127.0.0.1:{port}", r.stderr)
        self.assertNotIn("listening on", r.stdout)

    def test_wait_replicas_without_a_redis_store_is_refused(self):
        r = self.run_node("--redis-wait-replicas", "1")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("--redis-wait-replicas needs", r.stderr)


if __name__ == "__main__":
    unittest.main()
