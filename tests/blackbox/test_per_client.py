"""Black-box tests of the per-client presence extension (issue #8).

Presence is recorded per (user, client), the client named from the
User-Agent as Zulip named it. Nothing changes for requests that do not ask:
those answers are still validated against Zulip's OpenAPI schemas. Requests
with per_client=true (or queues with the presence_per_client capability)
get the per-client shapes documented in the README; those are checked here
field by field (Zulip's schemas forbid the extra keys).
"""

import json
import signal
import unittest

from bbtest import BASE_TIME, ServerTestCase
from harness import Server

MOBILE_UA = "ZulipMobile/27.192 (Android 11)"
BROWSER_UA = ("Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 "
              "Firefox/115.0")
DESKTOP_UA = ("ZulipElectron/5.11.1 Mozilla/5.0 (X11; Linux x86_64) "
              "AppleWebKit/537.36 (KHTML, like Gecko) Zulip/5.11.1 "
              "Chrome/124.0.6367.243 Electron/30.1.2 Safari/537.36")
TERMINAL_UA = ("ZulipTerminal/0.7.0 Linux-6.1.0-x86_64-with-glibc2.36 "
               "(Debian GNU/Linux; 12)")


def post(user, ua, status="active", validate=True, **params):
    p = {"status": status}
    for k, v in params.items():
        p[k] = v if isinstance(v, str) else json.dumps(v)
    r = user.client.raw("POST", "/users/me/presence", p,
                        headers={"User-Agent": ua}, validate=validate)
    assert r.status == 200, r
    return r.json()


def get(user, path, validate=True, **params):
    p = {k: v if isinstance(v, str) else json.dumps(v)
         for k, v in params.items()}
    return user.client.raw("GET", path, p or None, encoding="query",
                           validate=validate)


class PerClientTestCase(ServerTestCase):

    def phone_then_browser(self, realm):
        """Alice reports from her phone, then (10 s later) from a browser."""
        alice, bob = realm.create_user(), realm.create_user()
        post(alice, MOBILE_UA, ping_only=True)
        self.clock(self.T + 10)
        post(alice, BROWSER_UA, "idle", ping_only=True)
        return alice, bob

    def phone_then_idle_browser(self, realm):
        """Alice's phone reports active; 100 s later an idle browser. (An
        idle report within 70 s of joining would read "active" at
        date_joined in the legacy format, spec 3.5.)"""
        alice, bob = realm.create_user(), realm.create_user()
        post(alice, MOBILE_UA, ping_only=True)
        self.clock(self.T + 100)
        post(alice, BROWSER_UA, "idle", ping_only=True)
        return alice, bob


class PlainAnswersTest(PerClientTestCase):
    """Without per_client, every answer is exactly Zulip's."""

    def test_legacy_and_modern_answers_are_unchanged(self):
        r = self.realm()
        alice, bob = self.phone_then_browser(r)
        legacy = post(bob, BROWSER_UA)  # validated against Zulip's schema
        self.assertEqual(legacy["presences"][alice.email], {
            "aggregated": {"client": "website", "status": "active",
                           "timestamp": int(self.T)},
            "website": {"client": "website", "status": "active",
                        "timestamp": int(self.T), "pushable": False}})
        modern = post(bob, BROWSER_UA, last_update_id=-1)
        self.assertEqual(modern["presences"][str(alice.id)],
                         {"active_timestamp": int(self.T),
                          "idle_timestamp": int(self.T)})
        # The browser's report came within 55 s: the user row did not move,
        # so a plain cursor sees nothing new.
        self.assertEqual(modern["presence_last_update_id"], 3, modern)
        inc = post(bob, BROWSER_UA, last_update_id=1)
        self.assertNotIn(str(alice.id), inc["presences"])

    def test_realm_and_single_user_gets_are_unchanged(self):
        r = self.realm()
        alice, bob = self.phone_then_browser(r)
        body = get(bob, "/realm/presence").json()
        self.assertEqual(set(body["presences"][alice.email]),
                         {"aggregated", "website"})
        single = get(bob, f"/users/{alice.id}/presence").json()
        self.assertEqual(single["presence"], {
            "aggregated": {"status": "active", "timestamp": int(self.T)},
            "website": {"status": "active", "timestamp": int(self.T)}})


class PerClientAnswersTest(PerClientTestCase):

    def test_legacy_lists_one_key_per_client_and_aggregates_the_latest(self):
        r = self.realm()
        alice, bob = self.phone_then_idle_browser(r)
        body = post(bob, BROWSER_UA, validate=False, per_client=True)
        self.assertEqual(body["result"], "success")
        self.assertEqual(body["presences"][alice.email], {
            "aggregated": {"client": "website", "status": "idle",
                           "timestamp": int(self.T) + 100},
            "ZulipMobile": {"client": "ZulipMobile", "status": "active",
                            "timestamp": int(self.T), "pushable": False},
            "website": {"client": "website", "status": "idle",
                        "timestamp": int(self.T) + 100, "pushable": False}})
        self.assertIn("presence_last_update_id", body)

    def test_modern_adds_a_clients_map(self):
        r = self.realm()
        alice, bob = self.phone_then_browser(r)
        body = post(bob, BROWSER_UA, validate=False, per_client=True,
                    last_update_id=-1)
        self.assertEqual(body["presences"][str(alice.id)], {
            "active_timestamp": int(self.T),
            "idle_timestamp": int(self.T),
            "clients": {
                "ZulipMobile": {"active_timestamp": int(self.T),
                                "idle_timestamp": int(self.T)},
                "website": {"active_timestamp": int(self.T),
                            "idle_timestamp": int(self.T) + 10}}})

    def test_a_per_client_cursor_sees_a_new_device(self):
        r = self.realm()
        alice, bob = r.create_user(), r.create_user()
        post(alice, MOBILE_UA, ping_only=True)               # id 1
        first = post(bob, BROWSER_UA, validate=False, per_client=True,
                     last_update_id=-1)                     # bob: id 2
        cursor = first["presence_last_update_id"]
        self.clock(self.T + 10)
        post(alice, DESKTOP_UA, ping_only=True)  # a new device, no user write
        body = post(bob, BROWSER_UA, validate=False, per_client=True,
                    last_update_id=cursor)
        self.assertGreater(body["presence_last_update_id"], cursor, body)
        entry = body["presences"][str(alice.id)]
        self.assertEqual(sorted(entry["clients"]), ["ZulipMobile", "website"])
        # The same cursor without per_client: nothing new (Zulip's rules).
        plain = post(bob, BROWSER_UA, last_update_id=cursor)
        self.assertNotIn(str(alice.id), plain["presences"])

    def test_gets_with_per_client(self):
        r = self.realm()
        alice, bob = self.phone_then_idle_browser(r)
        realm_body = get(bob, "/realm/presence", validate=False,
                         per_client=True).json()
        self.assertEqual(sorted(realm_body["presences"][alice.email]),
                         ["ZulipMobile", "aggregated", "website"])
        self.clock(self.T + 305)  # the browser's report is 205 s old
        single = get(bob, f"/users/{alice.id}/presence", validate=False,
                     per_client=True).json()
        self.assertEqual(single["presence"], {
            "aggregated": {"status": "offline",
                           "timestamp": int(self.T) + 100},
            "ZulipMobile": {"status": "active", "timestamp": int(self.T)},
            "website": {"status": "idle", "timestamp": int(self.T) + 100}})

    def test_terminal_and_desktop_names(self):
        r = self.realm()
        alice, bob = r.create_user(), r.create_user()
        post(alice, TERMINAL_UA, ping_only=True)
        post(alice, DESKTOP_UA, ping_only=True)
        body = post(bob, BROWSER_UA, validate=False, per_client=True,
                    last_update_id=-1)
        self.assertEqual(sorted(body["presences"][str(alice.id)]["clients"]),
                         ["ZulipTerminal", "website"])

    def test_per_client_must_be_a_json_boolean(self):
        r = self.realm()
        a = r.create_user()
        resp = a.client.raw("POST", "/users/me/presence",
                            {"status": "active", "per_client": "yes"})
        self.assert_error(resp, 400, "per_client is not valid JSON",
                          "BAD_REQUEST")


class BoundTest(PerClientTestCase):
    server_kwargs = {"extra_args": ["--max-clients-per-user", "2"]}

    def test_the_stalest_client_is_dropped(self):
        r = self.realm()
        alice, bob = r.create_user(), r.create_user()
        post(alice, MOBILE_UA, ping_only=True)
        self.clock(self.T + 10)
        post(alice, TERMINAL_UA, ping_only=True)
        self.clock(self.T + 70)
        post(alice, MOBILE_UA, ping_only=True)  # the terminal is stalest now
        self.clock(self.T + 80)
        post(alice, BROWSER_UA, ping_only=True)
        body = post(bob, BROWSER_UA, validate=False, per_client=True,
                    last_update_id=-1)
        self.assertEqual(sorted(body["presences"][str(alice.id)]["clients"]),
                         ["ZulipMobile", "website"])


class PerClientEventsTest(PerClientTestCase):

    def register(self, user, **params):
        p = {k: json.dumps(v) for k, v in params.items()}
        resp = user.client.raw("POST", "/register", p, validate=False)
        self.assertEqual(resp.status, 200, resp)
        return resp.json()

    def events(self, user, queue_id):
        resp = user.client.raw("GET", "/events", {
            "queue_id": queue_id, "last_event_id": "-1",
            "dont_block": "true"}, encoding="query", validate=False)
        self.assertEqual(resp.status, 200, resp)
        return [e for e in resp.json()["events"] if e["type"] == "presence"]

    def test_capability_gets_device_changes_in_the_per_client_shape(self):
        r = self.realm()
        alice, bob = r.create_user(), r.create_user()
        per = self.register(bob, event_types=["presence"],
                            client_capabilities={
                                "simplified_presence_events": True,
                                "presence_per_client": True})
        plain = self.register(bob, event_types=["presence"],
                              client_capabilities={
                                  "simplified_presence_events": True})
        post(alice, BROWSER_UA, ping_only=True)
        self.clock(self.T + 10)
        post(alice, MOBILE_UA, ping_only=True)  # a new device
        t = int(self.T)
        got = self.events(bob, per["queue_id"])
        self.assertEqual([e["presences"] for e in got], [
            {str(alice.id): {
                "active_timestamp": t, "idle_timestamp": t,
                "clients": {"website": {"active_timestamp": t,
                                        "idle_timestamp": t}}}},
            {str(alice.id): {
                "active_timestamp": t, "idle_timestamp": t,
                "clients": {
                    "ZulipMobile": {"active_timestamp": t + 10,
                                    "idle_timestamp": t + 10},
                    "website": {"active_timestamp": t,
                                "idle_timestamp": t}}}}])
        # Without the capability: Zulip's one event, exactly.
        self.assertEqual([e["presences"] for e in self.events(
            bob, plain["queue_id"])],
            [{str(alice.id): {"active_timestamp": t, "idle_timestamp": t}}])

    def test_legacy_queue_and_snapshot_with_the_capability(self):
        r = self.realm()
        alice, bob = r.create_user(), r.create_user()
        post(alice, MOBILE_UA, ping_only=True)
        reg = self.register(bob, event_types=["presence"],
                            client_capabilities={"presence_per_client": True})
        self.assertEqual(sorted(reg["presences"][alice.email]),
                         ["ZulipMobile", "aggregated"])
        self.clock(self.T + 10)
        post(alice, BROWSER_UA, ping_only=True)
        got = self.events(bob, reg["queue_id"])
        self.assertEqual(len(got), 1, got)
        self.assertEqual(got[0]["user_id"], alice.id)
        self.assertEqual(got[0]["email"], alice.email)
        self.assertEqual(sorted(got[0]["presence"]),
                         ["ZulipMobile", "aggregated", "website"])
        self.assertEqual(got[0]["presence"]["aggregated"]["client"], "website")


class PerClientDurabilityTest(unittest.TestCase):

    def test_client_rows_survive_a_restart(self):
        s = Server(flush_interval_ms=3_600_000).start()
        s2 = None
        try:
            s.set_clock(BASE_TIME)
            r = s.create_realm()
            alice, bob = r.create_user(), r.create_user()
            post(alice, MOBILE_UA, ping_only=True)
            s.set_clock(BASE_TIME + 10)
            post(alice, BROWSER_UA, ping_only=True)
            before = post(bob, BROWSER_UA, validate=False, per_client=True,
                          last_update_id=-1)
            s.stop(signal.SIGTERM)  # the shutdown flush writes them
            s2 = s.restart()
            r.server = s2
            s2.set_clock(BASE_TIME + 10)
            after = post(bob, BROWSER_UA, validate=False, per_client=True,
                         last_update_id=-1)
            self.assertEqual(after["presences"][str(alice.id)],
                             before["presences"][str(alice.id)])
            self.assertEqual(
                sorted(after["presences"][str(alice.id)]["clients"]),
                ["ZulipMobile", "website"])
            self.assertGreaterEqual(after["presence_last_update_id"],
                                    before["presence_last_update_id"])
            s2.stop()
        finally:
            s.cleanup()
            if s2 is not None:
                s2.cleanup()


if __name__ == "__main__":
    unittest.main()
