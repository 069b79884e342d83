"""Issue 14: requests that wait on Redis never hold an I/O thread, and
/healthz tells the truth while writes fail (--redis-wait-replicas without
a replica in sync). One node on a Redis of its own (loopback)."""

import json
import os
import signal
import threading
import time
import unittest

import cluster
import harness
from harness import BASE_TIME
from test_scaleout import wait_until


class StoreCallsOffTheIoThreadTest(unittest.TestCase):
    """Issue 14: the requests that still waited on Redis on an I/O thread
    (admin and directory writes, the first request for a realm this node
    has not loaded, the group clock's live-node read) run off it. One node
    with one I/O thread; Redis is stopped (SIGSTOP) while such a request
    waits for it: the thread keeps answering requests that need no Redis.
    (The settings write and a relayed queue's owner lookup come after the
    request's own store step, so Redis cannot be stopped between the two
    here: tests/api/offload_test.cc shows them handed to the workers.)"""

    def setUp(self):
        self.cluster = cluster.Cluster(nodes=1, threads=1).start()
        self.addCleanup(self.cluster.cleanup)
        self.node = self.cluster.nodes[0]
        self.redis = self.cluster.redis
        self.realm = self.cluster.create_realm()
        self.user = self.realm.create_user()

    def admin(self, method, path, payload):
        return harness.http_request(
            self.node.port, method, "/admin/v1" + path,
            [("Authorization", f"Bearer {self.cluster.admin_token}"),
             ("Content-Type", "application/json")],
            json.dumps(payload).encode(), timeout=30)

    def served_while_redis_stopped(self, what, action):
        """Runs `action` while Redis is stopped; for 1.5 s (half the Redis
        I/O timeout a blocked thread would wait) checks that the node's
        only I/O thread answers a page that needs no Redis at once, and
        that `action` is still waiting; then lets Redis go on and returns
        what `action` got."""
        got = {}

        def run():
            got["r"] = action()

        os.kill(self.redis.proc.pid, signal.SIGSTOP)
        resumed = False
        try:
            t = threading.Thread(target=run)
            t.start()
            slowest = 0.0
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                sent = time.monotonic()
                r = harness.http_request(self.node.port, "GET", "/",
                                         timeout=10)
                self.assertEqual(r.status, 200)
                slowest = max(slowest, time.monotonic() - sent)
            self.assertTrue(t.is_alive(), f"{what} answered without Redis")
            os.kill(self.redis.proc.pid, signal.SIGCONT)
            resumed = True
            t.join(30)
        finally:
            if not resumed:
                os.kill(self.redis.proc.pid, signal.SIGCONT)
        print(f"\nslowest answer while {what} waited on a stopped Redis: "
              f"{slowest * 1000:.0f} ms", flush=True)
        self.assertLess(slowest, 0.75, what)
        self.assertFalse(t.is_alive())
        self.assertTrue(self.node.running(), self.node.stderr_text())
        return got["r"]

    def test_admin_user_write(self):
        r = self.served_while_redis_stopped(
            "an admin user write",
            lambda: self.admin("POST", f"/realms/{self.realm.id}/users",
                               {"email": "late@example.com"}))
        self.assertIn(r.status, (200, 503), r)

    def test_batch_import(self):
        users = [{"email": f"b{i}@example.com"} for i in range(3)]
        r = self.served_while_redis_stopped(
            "a batch import",
            lambda: self.admin("POST", f"/realms/{self.realm.id}/users:batch",
                               {"users": users}))
        self.assertIn(r.status, (200, 503), r)

    def test_realm_settings_write(self):
        r = self.served_while_redis_stopped(
            "a realm settings write",
            lambda: self.admin("PATCH", f"/realms/{self.realm.id}",
                               {"presence_disabled": True}))
        self.assertIn(r.status, (200, 503), r)

    def test_first_request_for_a_realm_not_loaded(self):
        host = f"nosuch{os.urandom(3).hex()}.localhost:{self.node.port}"
        r = self.served_while_redis_stopped(
            "a request for a subdomain this node has not loaded",
            lambda: harness.http_request(
                self.node.port, "GET", "/api/v1/server_settings",
                host=host, timeout=30))
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json()["code"], "NONEXISTENT_SUBDOMAIN")

    def test_group_clock_reads_the_live_nodes_off_the_io_thread(self):
        r = self.served_while_redis_stopped(
            "POST /admin/v1/clock",
            lambda: self.admin("POST", "/clock", {"now": BASE_TIME}))
        self.assertEqual(r.status, 200, r)


class WaitHealthTest(unittest.TestCase):
    """Issue 14: with --redis-wait-replicas and no replica in sync, every
    write fails while Redis answers: /healthz says "degraded" and why (200:
    reads are still served, and every node shares the condition), and "ok"
    again once a replica acknowledges writes."""

    def replica_of(self, redis):
        replica = cluster.RedisServer(extra_args=[
            "--replicaof", harness.LOOPBACK, str(redis.port)]).start()
        self.addCleanup(replica.cleanup)
        self.addCleanup(replica.stop)
        wait_until("the replica is in sync", lambda: b"master_link_status:up"
                   in cluster.redis_command(replica.port, "INFO",
                                            "replication"), timeout=20)
        return replica

    def setUp(self):
        self.cluster = cluster.Cluster(
            nodes=1, threads=1,
            extra_args=["--redis-wait-replicas", "1",
                        "--redis-wait-timeout-ms", "200"])
        self.addCleanup(self.cluster.cleanup)
        # A node registers with a write, which WAIT needs a replica for.
        redis = self.cluster.redis.start()
        self.replica = self.replica_of(redis)
        redis.start = lambda: redis
        self.cluster.start()
        self.addCleanup(self.cluster.stop)
        self.node = self.cluster.nodes[0]

    def health(self):
        r = harness.http_request(self.node.port, "GET", "/healthz")
        return r.status, r.json()

    def write(self):
        return self.cluster.admin("POST", "/realms",
                                  {"subdomain": "w" + os.urandom(3).hex(),
                                   "name": "W"}, expect=None).status

    def test_healthz_says_degraded_while_writes_cannot_be_acknowledged(self):
        self.assertEqual(self.write(), 200)
        self.assertEqual(self.health(), (200, {"status": "ok"}))
        self.replica.stop()
        wait_until("/healthz says degraded",
                   lambda: self.health()[1]["status"] == "degraded")
        status, body = self.health()
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "degraded", body)
        self.assertIn("replica", body["reason"])
        # What it says holds: a write fails.
        self.assertEqual(self.write(), 503)
        status, body = self.health()
        self.assertEqual((status, body["status"]), (200, "degraded"), body)
        # A replica again: writes are acknowledged, and /healthz says so.
        self.replica_of(self.cluster.redis)
        wait_until("a write is acknowledged by the new replica",
                   lambda: self.write() == 200, timeout=20)
        self.assertEqual(self.health(), (200, {"status": "ok"}))


if __name__ == "__main__":
    unittest.main()
