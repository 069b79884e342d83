"""Shared base class for the black-box test modules."""

import os
import time
import unittest

import cluster
import harness
import proxy
from harness import BASE_TIME, DAY  # noqa: F401  (re-exported for tests)


class ServerTestCase(unittest.TestCase):
    """One presenced (with --test-clock) per test class; every test makes its
    own realm, so tests do not see each other's presence rows."""

    server = None
    server_kwargs = {}

    @classmethod
    def setUpClass(cls):
        # PRESENCED_BLACKBOX_NODES=N (N > 1): the same suite on N nodes
        # sharing one Redis, requests spread round-robin (cluster.py).
        nodes = int(os.environ.get("PRESENCED_BLACKBOX_NODES", "1"))
        # PRESENCED_BLACKBOX_PROXY=nginx: one node behind Debian's nginx
        # configured from deploy/nginx/presenced.conf (proxy.py).
        via = os.environ.get("PRESENCED_BLACKBOX_PROXY", "")
        if via not in ("", "nginx"):
            raise ValueError(f"unknown PRESENCED_BLACKBOX_PROXY {via!r}")
        if via == "nginx":
            cls.server = proxy.Proxied(**cls.server_kwargs).start()
        elif nodes > 1:
            # Zulip's exact per-user count (the suite asserts the 200th
            # request and every X-RateLimit-Remaining): no lease, which
            # spreads a user's count over nodes in steps of up to 8.
            kwargs = dict(cls.server_kwargs)
            kwargs["extra_args"] = (list(kwargs.get("extra_args", ()))
                                    + ["--rate-lease", "1"])
            cls.server = cluster.Cluster(nodes=nodes, **kwargs).start()
        else:
            cls.server = harness.Server(**cls.server_kwargs).start()

    @classmethod
    def tearDownClass(cls):
        if cls.server is None:
            return
        try:
            if cls.server.running():
                cls.server.stop()
        finally:
            cls.server.cleanup()

    def setUp(self):
        if not self.server.running():
            self.fail("presenced died during an earlier test; stderr:\n"
                      + self.server.stderr_text()[-4000:])
        self.T = BASE_TIME
        self.clock(self.T)

    # -- helpers --

    def clock(self, now):
        self.server.set_clock(now)
        return now

    def realm(self, **kw):
        return self.server.create_realm(**kw)

    def assert_error(self, r, status, msg, code=None):
        self.assertEqual(r.status, status, r)
        body = r.json()
        self.assertEqual(body.get("result"), "error", body)
        if msg is None:
            self.assertIsInstance(body.get("msg"), str, body)
        else:
            self.assertEqual(body.get("msg"), msg, body)
        if code is not None:
            self.assertEqual(body.get("code"), code, body)
        return body

    def modern(self, user, cursor=-1, status="active", **kw):
        """POST presence in the modern format (last_update_id given)."""
        if cursor is None:
            return user.client.ping(status, slim_presence=True, **kw)
        return user.client.ping(status, last_update_id=cursor, **kw)

    def row(self, body, user):
        """A modern entry of `user` in a response body, or None."""
        return body["presences"].get(str(user.id))

    def assert_modern_row(self, body, user, active, idle):
        row = self.row(body, user)
        self.assertIsNotNone(row, f"user {user.id} missing from {body}")
        self.assertEqual(row, {"active_timestamp": int(active),
                               "idle_timestamp": int(idle)}, body)

    def create_user_timed(self, realm, **kw):
        """Creates a user and returns (user, acceptable date_joined values):
        the test clock's value or any real time the creation may have
        taken."""
        before = time.time()
        u = realm.create_user(**kw)
        after = time.time()
        return u, (int(before) - 1, int(after) + 1)

    def assert_date_joined(self, value, clock_value, real_window):
        lo, hi = real_window
        self.assertTrue(value == int(clock_value) or lo <= value <= hi,
                        f"{value} is neither the test clock at creation "
                        f"({int(clock_value)}) nor the real time of creation "
                        f"({lo}..{hi})")
