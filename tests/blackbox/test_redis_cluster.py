"""Three presenced nodes on a Redis Cluster of three masters (cluster.py's
RedisClusterServers, loopback only): a realm's hash slot is moved to another
master, keys and all, while its users keep pinging through every node, and
every answer stays right; afterwards the nodes agree on every row, and
when the slot moves back with no request in flight each node follows the
old owner's MOVED.

During the move Redis answers ASK (a key already moved) or TRYAGAIN (a
realm script whose keys are split between the two masters, or not all
present); presenced retries them within its bounded budget
(src/store/redis_client.cc), so a move that completes quickly, as this one
does, costs a client nothing but latency.
"""

import threading
import time
import unittest

import cluster
import harness
from harness import BASE_TIME

PINGERS = 3
PINGS_BEFORE = 3  # per pinger, before the move starts
PINGS_AFTER = 6  # per pinger, after it ends: every node serves some


def value(reply):
    """The value of a RESP reply that is a status, an integer or a bulk
    string; raises on an error reply."""
    kind, rest = reply[:1], reply[1:]
    if kind == b"-":
        raise AssertionError(f"redis error: {rest.decode().strip()}")
    if kind == b"+":
        return rest.split(b"\r\n", 1)[0].decode()
    if kind == b":":
        return int(rest.split(b"\r\n", 1)[0])
    if kind == b"$":
        size, body = rest.split(b"\r\n", 1)
        return body[:int(size)].decode()
    raise AssertionError(f"unexpected reply {reply[:40]!r}")


def call(port, *args):
    return value(cluster.redis_command(port, *args))


def error_count(port, prefix):
    """errorstat_<prefix> of INFO errorstats (0 if the node saw none)."""
    for line in call(port, "INFO", "errorstats").splitlines():
        if line.startswith(f"errorstat_{prefix}:count="):
            return int(line.split("=", 1)[1])
    return 0


class Pinger(threading.Thread):
    """Pings as one user through the round-robin cluster until stopped;
    checks every answer; counts them."""

    def __init__(self, user, now, progress):
        super().__init__(daemon=True)
        self.user = user
        self.now = now
        self.progress = progress  # a Condition, notified after each ping
        self.count = 0
        self.failures = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set() and not self.failures:
            try:
                r = self.user.client.post_presence(
                    "active", last_update_id=-1)
                body = r.json()
                if r.status != 200 or body.get("result") != "success":
                    raise AssertionError(f"ping answered {r}")
                own = body["presences"].get(str(self.user.id))
                want = {"active_timestamp": self.now,
                        "idle_timestamp": self.now}
                if own != want:
                    raise AssertionError(f"own row {own}, want {want}")
            except Exception as e:  # reported by the test's thread
                self.failures.append(f"ping {self.count}: {e!r}")
            with self.progress:
                self.count += 1
                self.progress.notify_all()


class RedisClusterSlotMigrationTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        # --rate-limit 0: the pingers send as fast as the nodes answer,
        # far beyond Zulip's 200 requests a minute per user.
        cls.cluster = cluster.Cluster(
            nodes=3, redis="cluster",
            extra_args=["--rate-limit", "0"]).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.cluster.stop()
        finally:
            cls.cluster.cleanup()

    def masters(self):
        return self.cluster.redis.ports

    def owner(self, slot):
        """The index (in masters()) of the master that owns `slot`."""
        nodes = call(self.masters()[0], "CLUSTER", "NODES")
        for line in nodes.splitlines():
            fields = line.split()
            addr = fields[1].split(",")[0].split("@")[0]
            port = int(addr.rsplit(":", 1)[1])
            for r in fields[8:]:
                if r.startswith("["):
                    continue  # a migration in progress, not an owner
                lo, _, hi = r.partition("-")
                if int(lo) <= slot <= int(hi or lo):
                    return self.masters().index(port)
        self.fail(f"no master owns slot {slot}: {nodes}")

    def move_slot(self, slot, src, dst):
        """Moves `slot` with its keys from master `src` to `dst`, as
        redis-cli --cluster reshard does."""
        ports = self.masters()
        ids = [call(p, "CLUSTER", "MYID") for p in ports]
        s = str(slot)
        self.assertEqual(call(ports[dst], "CLUSTER", "SETSLOT", s,
                              "IMPORTING", ids[src]), "OK")
        self.assertEqual(call(ports[src], "CLUSTER", "SETSLOT", s,
                              "MIGRATING", ids[dst]), "OK")
        while True:
            keys = cluster.redis_command(ports[src], "CLUSTER",
                                         "GETKEYSINSLOT", s, "100")
            # An array of bulk strings: *N, then $len / key pairs.
            lines = keys.split(b"\r\n")
            if lines[0] == b"*0":
                break
            names = [k for k in lines[2::2] if k]
            self.assertEqual(
                call(ports[src], "MIGRATE", harness.LOOPBACK, ports[dst], "",
                     "0", "5000", "KEYS", *names), "OK")
        for i in (dst, src, 3 - src - dst):
            self.assertEqual(call(ports[i], "CLUSTER", "SETSLOT", s, "NODE",
                                  ids[dst]), "OK")

    def test_pings_stay_right_while_a_realms_slot_moves(self):
        T = self.cluster.set_clock(BASE_TIME)
        realm = self.cluster.create_realm()
        users = [realm.create_user() for _ in range(PINGERS)]
        meta = f"presenced:{{r{realm.id}}}:meta"
        ports = self.masters()
        slot = call(ports[0], "CLUSTER", "KEYSLOT", meta)
        src = self.owner(slot)
        dst = (src + 1) % 3
        redirects_before = sum(error_count(p, e) for p in ports
                               for e in ("MOVED", "ASK", "TRYAGAIN"))

        progress = threading.Condition()
        pingers = [Pinger(u, T, progress) for u in users]
        for p in pingers:
            p.start()

        def wait_all(n):
            with progress:
                ok = progress.wait_for(
                    lambda: all(p.count >= n or p.failures for p in pingers),
                    timeout=60)
            self.assertTrue(ok, [p.count for p in pingers])

        try:
            wait_all(PINGS_BEFORE)
            self.move_slot(slot, src, dst)
            done = [p.count for p in pingers]
            wait_all(max(done) + PINGS_AFTER)
        finally:
            for p in pingers:
                p.stop.set()
            for p in pingers:
                p.join(timeout=60)
        self.assertEqual([f for p in pingers for f in p.failures], [])

        # The realm now lives on the new master only, and the nodes found it
        # there: some were redirected (MOVED, or ASK/TRYAGAIN mid-move).
        self.assertEqual(self.owner(slot), dst)
        self.assertEqual(call(ports[src], "CLUSTER", "COUNTKEYSINSLOT",
                              str(slot)), 0)
        self.assertGreater(call(ports[dst], "CLUSTER", "COUNTKEYSINSLOT",
                                str(slot)), 0)
        redirects = sum(error_count(p, e) for p in ports
                        for e in ("MOVED", "ASK", "TRYAGAIN"))
        self.assertGreater(redirects, redirects_before)

        # Writes after the move: one ping a user a minute later, each on
        # another node, then every node answers every new row.
        T2 = self.cluster.set_clock(T + 60)
        for i, u in enumerate(users):
            node = self.cluster.node(i % 3)
            r = harness.ZulipClient(node, u.email, u.api_key,
                                    realm.host).post_presence(
                "active", last_update_id=-1)
            self.assertEqual(r.status, 200, r)
        want = {str(u.id): {"active_timestamp": T2, "idle_timestamp": T2}
                for u in users}
        for i in range(3):
            node = self.cluster.node(i)
            body = harness.ZulipClient(node, users[0].email, users[0].api_key,
                                       realm.host).ping(
                "active", last_update_id=-1)
            self.assertEqual(body["presences"], want, f"node {i}")

        # The slot moves back with no request in flight: nothing tells the
        # nodes but the MOVED their next request of the realm meets on the
        # master they knew, which each follows.
        moved_before = error_count(ports[dst], "MOVED")
        self.move_slot(slot, dst, src)
        self.assertEqual(self.owner(slot), src)
        T3 = self.cluster.set_clock(T2 + 60)
        for i, u in enumerate(users):
            body = harness.ZulipClient(self.cluster.node(i % 3), u.email,
                                       u.api_key, realm.host).ping(
                "active", last_update_id=-1)
            self.assertEqual(body["presences"][str(u.id)],
                             {"active_timestamp": T3, "idle_timestamp": T3})
        self.assertGreaterEqual(
            error_count(ports[dst], "MOVED") - moved_before, 3)


if __name__ == "__main__":
    unittest.main()
