"""Black-box durability tests: restarts on the same --data directory.

Operator contract: SIGTERM/SIGINT flush everything and exit 0; presence rows
are group-committed every --flush-interval-ms; update ids are never reissued
(spec 1.2: strictly increasing per realm), even across a crash.
"""

import os
import re
import signal
import sqlite3
import time
import unittest

import harness
from bbtest import BASE_TIME
from harness import Server

T = BASE_TIME


def rebind(server, *realms):
    """Points realms (and so their users' clients) at a restarted server."""
    for r in realms:
        r.server = server


class DurabilityTestCase(unittest.TestCase):

    def setUp(self):
        self._servers = []

    def tearDown(self):
        for s in self._servers:
            s.cleanup()

    def start(self, **kw):
        s = Server(**kw)
        self._servers.append(s)
        return s.start()

    def restart(self, old, **kw):
        s = old.restart(**kw)
        self._servers.append(s)
        return s

    def snapshot(self, watcher):
        """Everything a realm fetch shows, without writing: GET
        /realm/presence (legacy) and a modern fetch from a watcher whose own
        ping must not write (its last write is < 55 s old)."""
        legacy = watcher.client.get_realm_presence().json()["presences"]
        modern = watcher.client.ping(last_update_id=-1)
        return legacy, modern["presences"], modern["presence_last_update_id"]


class DirectoryDurabilityTest(DurabilityTestCase):

    def test_realms_users_keys_settings_access_survive_restart(self):
        s = self.start()
        s.set_clock(T)
        r = s.create_realm(name="Durable Org")
        off = s.create_realm(name="Quiet Org")
        a = r.create_user(email="Alice@example.com")
        b = r.create_user()
        g = r.create_user(role="guest", can_access_all_users=False)
        m = r.create_user(role="member", can_access_all_users=False)
        bot = r.create_user(is_bot=True)
        d = r.create_user()
        p = r.create_user()
        q = off.create_user()
        r.set_access(g, [a])
        r.patch_user(d, is_active=False)
        r.patch_user(m, role="guest")
        off.patch(presence_disabled=True)
        for u in (a, b, g, m, p, q):
            u.client.ping()
        s.set_clock(T + 100)
        resp = p.client.patch_settings(presence_enabled=False)
        self.assertEqual(resp.status, 200, resp)
        s.stop()

        s2 = self.restart(s)
        rebind(s2, r, off)
        s2.set_clock(T + 110)
        # Keys still work (and the realm's name is kept).
        self.assertEqual(a.client.post_presence("active").status, 200)
        self.assertEqual(a.client.server_settings().json()["realm_name"],
                         "Durable Org")
        wrong = harness.ZulipClient(s2, a.email, b.api_key, r.host)
        self.assertEqual(wrong.post_presence("active").status, 401)
        # Access list and roles.
        self.assertEqual(set(g.client.ping()["presences"]), {a.email, g.email})
        self.assertEqual(set(m.client.ping()["presences"]), {m.email})
        # Bot flag.
        self.assertEqual(bot.client.post_presence("active").json()["msg"],
                         "This endpoint does not accept bot requests.")
        # Deactivation.
        resp = d.client.post_presence("active")
        self.assertEqual(resp.status, 401, resp)
        self.assertEqual(resp.json()["msg"], "Account is deactivated")
        # Invisible mode: p's reports still change nothing.
        s2.set_clock(T + 300)
        cursor = b.client.ping(last_update_id=-1)["presence_last_update_id"]
        p.client.ping()
        p.client.ping("idle")
        body = b.client.ping(last_update_id=cursor)
        self.assertNotIn(str(p.id), body["presences"], body)
        row = b.client.ping(last_update_id=-1)["presences"][str(p.id)]
        self.assertEqual(row, {"active_timestamp": int(T + 100 - 265),
                               "idle_timestamp": int(T + 100 - 265)})
        # Realm presence_disabled.
        body = q.client.ping(last_update_id=-1)
        self.assertEqual((body["presences"], body["presence_last_update_id"]),
                         ({}, -1))
        # Uniqueness is still enforced, and new ids are fresh.
        resp = s2.admin("POST", "/realms", {"subdomain": r.subdomain,
                                            "name": "Again"}, expect=None)
        self.assertIn(resp.status, (400, 409), resp)
        resp = s2.admin("POST", f"/realms/{r.id}/users", {
            "email": "alice@EXAMPLE.com", "full_name": "Again",
            "role": "member", "is_bot": False, "can_access_all_users": True},
            expect=None)
        self.assertIn(resp.status, (400, 409), resp)
        r3 = s2.create_realm()
        self.assertNotIn(r3.id, (r.id, off.id))
        n = r.create_user()
        self.assertNotIn(n.id, [u.id for u in (a, b, g, m, bot, d, p, q)])
        self.assertEqual(n.client.post_presence("active").status, 200)
        s2.stop()


class PresenceDurabilityTest(DurabilityTestCase):

    def _write_some_presence(self, s):
        s.set_clock(T)
        r = s.create_realm()
        users = [r.create_user() for _ in range(6)]
        watcher = users[0]
        for i, u in enumerate(users):
            u.client.ping("idle" if i % 2 else "active")
        s.set_clock(T + 60)
        users[1].client.ping("active")
        users[2].client.ping("idle")
        watcher.client.ping()
        return r, users, watcher

    def _tables(self, s):
        """Rows in the stopped server's presence log and presence table."""
        db = sqlite3.connect(os.path.join(s.data_dir, "presence.sqlite3"))
        try:
            return tuple(
                db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("presence_log", "presence"))
        finally:
            db.close()

    def _assert_same_after_restart(self, stop, flush_interval_ms,
                                   merged_on_stop=True):
        s = self.start(flush_interval_ms=flush_interval_ms)
        r, users, watcher = self._write_some_presence(s)
        before = self.snapshot(watcher)
        self.assertEqual(len(before[1]), len(users))
        stop(s)
        log_rows, presence_rows = self._tables(s)
        if merged_on_stop:
            # A clean stop merges the presence log into the tables.
            self.assertEqual((log_rows, presence_rows), (0, len(users)))
            merged = re.search(r"event=stopped .*log_rows_merged=(\d+)",
                               s.stderr_text())
            self.assertIsNotNone(merged, s.stderr_text()[-2000:])
            self.assertGreaterEqual(int(merged.group(1)), len(users))
        else:
            # A crash leaves the log (its rows written since the tables'
            # last merge: all of them, far below the merge threshold) to
            # the next start.
            self.assertGreaterEqual(log_rows, len(users))
            self.assertEqual(presence_rows, 0)
        s2 = self.restart(s)
        rebind(s2, r)
        s2.set_clock(T + 60)
        after = self.snapshot(watcher)
        self.assertEqual(after, before)
        s2.stop()

    def test_sigterm_loses_no_presence(self):
        # A flush interval of an hour: only the shutdown flush can save it.
        self._assert_same_after_restart(lambda s: s.stop(signal.SIGTERM),
                                        3_600_000)

    def test_sigint_loses_no_presence(self):
        self._assert_same_after_restart(lambda s: s.stop(signal.SIGINT),
                                        3_600_000)

    def test_kill9_after_a_flush_interval_keeps_rows(self):
        def crash(s):
            time.sleep(1.2)
            s.kill()
        self._assert_same_after_restart(crash, 100, merged_on_stop=False)


class UpdateIdDurabilityTest(DurabilityTestCase):

    def _never_reissued(self, flush_interval_ms):
        s = self.start(flush_interval_ms=flush_interval_ms)
        s.set_clock(T)
        r = s.create_realm()
        users = [r.create_user() for _ in range(4)]
        seen = []
        for step in range(3):
            s.set_clock(T + 60 * step)
            for u in users:
                seen.append(u.client.ping(
                    last_update_id=-1)["presence_last_update_id"])
        if flush_interval_ms <= 100:
            time.sleep(0.3)  # some of it flushed, some not
        s.set_clock(T + 200)
        for u in users:  # more writes, then a crash right away
            seen.append(u.client.ping(
                last_update_id=-1)["presence_last_update_id"])
        s.kill()
        highest = max(seen)
        self.assertEqual(highest, 16, seen)

        s2 = self.restart(s)
        rebind(s2, r)
        s2.set_clock(T + 1000)
        body = users[0].client.ping(last_update_id=highest)
        new_id = body["presence_last_update_id"]
        self.assertGreater(new_id, highest,
                           f"update id reissued after a crash: {new_id} <= "
                           f"{highest} (seen {seen})")
        self.assertIn(str(users[0].id), body["presences"], body)
        body = users[1].client.ping(last_update_id=highest)
        self.assertIn(str(users[0].id), body["presences"], body)
        self.assertIn(str(users[1].id), body["presences"], body)
        self.assertGreater(body["presence_last_update_id"], new_id)
        # And after a clean restart too.
        s2.stop()
        s3 = self.restart(s2)
        rebind(s3, r)
        s3.set_clock(T + 2000)
        top = body["presence_last_update_id"]
        body = users[2].client.ping(last_update_id=top)
        self.assertGreater(body["presence_last_update_id"], top)
        self.assertEqual(set(body["presences"]), {str(users[2].id)}, body)
        s3.stop()

    def test_update_ids_never_reissued_after_kill9(self):
        self._never_reissued(100)

    def test_update_ids_never_reissued_after_kill9_without_any_flush(self):
        self._never_reissued(3_600_000)


class SecretsAtRestTest(DurabilityTestCase):

    def _files(self, root):
        for dirpath, _, names in os.walk(root):
            for n in names:
                yield os.path.join(dirpath, n)

    def _assert_no_key_on_disk(self, data_dir, users, where):
        files = list(self._files(data_dir))
        blobs = {}
        for f in files:
            with open(f, "rb") as fh:
                blobs[f] = fh.read()
        # Not vacuous: the directory really holds the users.
        self.assertTrue(any(users[0].email.encode() in b
                            for b in blobs.values()),
                        f"{where}: no file in {data_dir} holds the user "
                        f"directory ({files})")
        for u in users:
            for f, data in blobs.items():
                self.assertNotIn(u.api_key.encode(), data,
                                 f"{where}: plain API key of {u.email} in {f}")
                self.assertNotIn(u.api_key.lower().encode(), data.lower(),
                                 f"{where}: API key of {u.email} in {f}")

    def test_store_holds_no_plain_api_key(self):
        s = self.start(flush_interval_ms=100)
        s.set_clock(T)
        r = s.create_realm()
        users = [r.create_user() for _ in range(5)]
        users.append(r.create_user(is_bot=True))
        for u in users[:5]:
            u.client.ping()
        time.sleep(0.3)
        self._assert_no_key_on_disk(s.data_dir, users, "while running")
        s.kill()
        self._assert_no_key_on_disk(s.data_dir, users, "after kill -9")
        s2 = self.restart(s)
        rebind(s2, r)
        self.assertEqual(users[0].client.post_presence("active").status, 200)
        s2.stop()
        self._assert_no_key_on_disk(s.data_dir, users, "after SIGTERM")


class StartupTest(DurabilityTestCase):

    def test_listening_line_and_clean_exit_on_empty_data_dir(self):
        import tempfile
        parent = tempfile.mkdtemp(prefix="presenced-bb-new-")
        s = Server(data_dir=os.path.join(parent, "fresh"))
        self._servers.append(s)
        try:
            s.start()
            resp = s.request("GET", "/healthz")
            self.assertEqual((resp.status, resp.json()),
                             (200, {"status": "ok"}))
            s.stop()
            s2 = self.restart(s)
            self.assertEqual(s2.request("GET", "/healthz").status, 200)
            s2.stop()
        finally:
            import shutil
            shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
