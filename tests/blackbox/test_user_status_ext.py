"""Black-box tests of issue #18's user status extensions: statuses that end
on their own (`scheduled_end_time`) and do-not-disturb (`dnd`,
`dnd_end_time`).

Opt-in: only a queue registered with the `user_status_extensions` client
capability, and GET /users/{id}/status with `user_status_extensions=true`,
see the extension fields; everyone else sees Zulip's answers unchanged.
Ends come from the server's clock: these tests move the test clock and
wait for the event, never sleep. Run on one embedded node and, with
PRESENCED_BLACKBOX_NODES=3, on three nodes sharing one Redis, where exactly
one node clears an ended status and every node's queues hear it once.
"""

import os
import unittest

import harness
import openapi
import test_user_status as zulip_status
from test_user_status import CAR, UserStatusTestCase

NODES = int(os.environ.get("PRESENCED_BLACKBOX_NODES", "1"))

_EXT = {
    "scheduled_end_time": {"type": "integer"},
    "dnd": {"type": "boolean"},
    "dnd_end_time": {"type": "integer"},
}

# The status object and event with the extension fields.
EXT_STATUS_OBJECT = dict(zulip_status.STATUS_OBJECT)
EXT_STATUS_OBJECT["properties"] = {**zulip_status.STATUS_OBJECT["properties"],
                                   **_EXT}
EXT_EVENT = dict(zulip_status.USER_STATUS_EVENT)
EXT_EVENT["properties"] = {**zulip_status.USER_STATUS_EVENT["properties"],
                           **_EXT}

CLEARED = {"status_text": "", "emoji_name": "", "emoji_code": "",
           "reaction_type": "unicode_emoji"}


class ExtTestCase(UserStatusTestCase):

    def call(self, user, method, path, params=None, server=None):
        if method == "GET" and path.endswith("/status") and params:
            # The extended object: validated here, not by Zulip's schema.
            p = {k: harness._json_param(v) for k, v in params.items()}
            client = user.client
            if server is not None:
                client = harness.ZulipClient(server, user.email, user.api_key,
                                             user.realm.host)
            resp = client.raw(method, path, p, "query", validate=False)
            if resp.status == 200:
                openapi.validate(resp.json()["status"], EXT_STATUS_OBJECT,
                                 "extended status")
            return resp
        return super().call(user, method, path, params, server)

    def poll(self, user, queue_id, last_event_id, server=None):
        """Events after last_event_id, waiting for at least one."""
        client = user.client
        if server is not None:
            client = harness.ZulipClient(server, user.email, user.api_key,
                                         user.realm.host)
        r = client.raw("GET", "/events",
                       {"queue_id": queue_id,
                        "last_event_id": str(last_event_id)},
                       "query", validate=False)
        self.assertEqual(r.status, 200, r)
        events = [e for e in r.json()["events"] if e["type"] != "heartbeat"]
        for e in events:
            if e["type"] == "user_status":
                openapi.validate(e, EXT_EVENT, "user_status event")
        return events

    def register_on(self, user, server=None, extensions=True, **params):
        caps = {"user_status_extensions": True} if extensions else {}
        client = user.client
        if server is not None:
            client = harness.ZulipClient(server, user.email, user.api_key,
                                         user.realm.host)
        p = {"event_types": ["user_status"], "client_capabilities": caps,
             **params}
        r = client.raw("POST", "/register",
                       {k: harness._json_param(v) for k, v in p.items()},
                       "form", validate=False)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def status_events_until(self, user, queue_id, marker_text, server=None):
        """The queue's user_status events (without ids) up to and including
        the one whose status_text is `marker_text`."""
        got, last = [], -1
        while True:
            events = self.poll(user, queue_id, last, server)
            if events:
                last = events[-1]["id"]
            for e in events:
                if e["type"] != "user_status":
                    continue
                e = {k: v for k, v in e.items() if k != "id"}
                got.append(e)
                if e.get("status_text") == marker_text:
                    return got

    def get_ext(self, viewer, target, server=None):
        r = self.call(viewer, "GET", f"/users/{target.id}/status",
                      {"user_status_extensions": True}, server=server)
        self.assertEqual(r.status, 200, r)
        return r.json()["status"]


class ParamsTest(ExtTestCase):

    def test_errors(self):
        realm = self.realm()
        alice = realm.create_user()
        admin = realm.create_user(role="administrator")
        now = int(self.T)
        cases = [
            ({"scheduled_end_time": now},
             "scheduled_end_time must be in the future (or 0 for no end)"),
            ({"scheduled_end_time": now - 10},
             "scheduled_end_time must be in the future (or 0 for no end)"),
            ({"scheduled_end_time": now + 366 * 86400 + 1},
             "scheduled_end_time must be at most 366 days ahead"),
            ({"scheduled_end_time": "soon"},
             "scheduled_end_time is not valid JSON"),
            ({"scheduled_end_time": "1.5"},
             "scheduled_end_time is not an integer"),
            ({"dnd": "1"}, "dnd is not a boolean"),
            ({"dnd_end_time": now + 60}, "dnd_end_time needs dnd=true"),
            ({"dnd": False, "dnd_end_time": now + 60},
             "dnd_end_time needs dnd=true"),
            ({"dnd": True, "dnd_end_time": now},
             "dnd_end_time must be in the future (or 0 for no end)"),
            ({"dnd": True, "dnd_end_time": now + 400 * 86400},
             "dnd_end_time must be at most 366 days ahead"),
        ]
        for params, msg in cases:
            with self.subTest(params=params):
                r = self.call(alice, "POST", "/users/me/status", params)
                self.assert_error(r, 400, msg, "BAD_REQUEST")
                r = self.call(admin, "POST", f"/users/{alice.id}/status",
                              params)
                self.assert_error(r, 400, msg, "BAD_REQUEST")
        # Nothing was written.
        self.assertEqual(self.get_ext(admin, alice), {})

    def test_extension_parameters_alone_are_accepted(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        admin = realm.create_user(role="administrator")
        now = int(self.T)
        self.set_status(alice, dnd=True)
        self.assertEqual(self.get_ext(bob, alice), {"dnd": True})
        self.set_status(alice, status_text="busy", **CAR)
        self.set_status(alice, scheduled_end_time=now + 3600)
        self.assertEqual(self.get_ext(bob, alice),
                         {"status_text": "busy", **CAR,
                          "scheduled_end_time": now + 3600, "dnd": True})
        r = self.call(admin, "POST", f"/users/{alice.id}/status",
                      {"dnd": True, "dnd_end_time": now + 60})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.get_ext(bob, alice)["dnd_end_time"], now + 60)
        # 0 removes an end; dnd=false removes dnd and its end.
        self.set_status(alice, scheduled_end_time=0)
        self.set_status(alice, dnd=False)
        self.assertEqual(self.get_ext(bob, alice),
                         {"status_text": "busy", **CAR})

    def test_a_new_text_without_an_end_removes_the_end(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        now = int(self.T)
        self.set_status(alice, status_text="meeting",
                        scheduled_end_time=now + 600)
        self.set_status(alice, status_text="vacation")
        self.assertEqual(self.get_ext(bob, alice),
                         {"status_text": "vacation"})
        self.set_status(alice, emoji_name="car", emoji_code="1f697",
                        scheduled_end_time=now + 600)
        self.set_status(alice, emoji_name="")
        self.assertEqual(self.get_ext(bob, alice),
                         {"status_text": "vacation"})


class CapabilityTest(ExtTestCase):

    def test_zulip_clients_see_nothing_new(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        now = int(self.T)
        self.set_status(alice, status_text="meeting",
                        scheduled_end_time=now + 600, dnd=True,
                        dnd_end_time=now + 300)
        carol = realm.create_user()
        self.set_status(carol, dnd=True)  # extension-only status
        # GET: byte for byte Zulip's answer without the parameter.
        r = bob.client.raw("GET", f"/users/{alice.id}/status", None, "query",
                           validate=False)
        self.assertEqual(r.body, b'{"result":"success","msg":"",'
                                 b'"status":{"status_text":"meeting"}}')
        self.assertEqual(self.get_status(bob, carol), {})
        self.assertEqual(self.get_ext(bob, alice),
                         {"status_text": "meeting",
                          "scheduled_end_time": now + 600, "dnd": True,
                          "dnd_end_time": now + 300})
        # Snapshots.
        plain = self.register_on(bob, extensions=False,
                                 fetch_event_types=["user_status"])
        self.assertEqual(plain["user_status"],
                         {str(alice.id): {"status_text": "meeting"}})
        ext = self.register_on(bob, fetch_event_types=["user_status"])
        self.assertEqual(ext["user_status"], {
            str(alice.id): {"status_text": "meeting",
                            "scheduled_end_time": now + 600, "dnd": True,
                            "dnd_end_time": now + 300},
            str(carol.id): {"dnd": True},
        })
        # Events: an extension-only change reaches only the capability
        # queue; the marker (a text) reaches both.
        self.set_status(alice, dnd=False)
        self.set_status(alice, scheduled_end_time=now + 900)
        self.set_status(alice, status_text="marker")
        self.assertEqual(
            self.status_events_until(bob, plain["queue_id"], "marker"),
            [{"type": "user_status", "user_id": alice.id,
              "status_text": "marker"}])
        self.assertEqual(
            self.status_events_until(bob, ext["queue_id"], "marker"), [
                {"type": "user_status", "user_id": alice.id, "dnd": False,
                 "dnd_end_time": 0},
                {"type": "user_status", "user_id": alice.id,
                 "scheduled_end_time": now + 900},
                # The new text removed the end it was set with.
                {"type": "user_status", "user_id": alice.id,
                 "status_text": "marker", "scheduled_end_time": 0},
            ])


class ExpiryTest(ExtTestCase):

    def test_status_clears_at_its_end(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        now = int(self.T)
        plain = self.register_on(bob, extensions=False)["queue_id"]
        ext = self.register_on(bob)["queue_id"]
        self.set_status(alice, away=True, status_text="meeting", **CAR,
                        scheduled_end_time=now + 60, dnd=True)
        self.clock(now + 59)
        self.set_status(bob, status_text="early")
        got = self.status_events_until(bob, ext, "early")
        self.assertFalse([e for e in got if e.get("status_text") == ""], got)
        self.clock(now + 60)
        # The server clears it on its own.
        events, last = [], -1
        while not any(e.get("user_id") == alice.id and
                      e.get("status_text") == "" for e in events):
            batch = self.poll(bob, plain, last)
            if batch:
                last = batch[-1]["id"]
            events += [{k: v for k, v in e.items() if k != "id"}
                       for e in batch if e["type"] == "user_status"]
        self.assertEqual([e for e in events if e["user_id"] == alice.id][-1],
                         {"type": "user_status", "user_id": alice.id,
                          **CLEARED})
        self.set_status(bob, status_text="after")
        ext_events = self.status_events_until(bob, ext, "after")
        clears = [e for e in ext_events
                  if e["user_id"] == alice.id and e.get("status_text") == ""]
        self.assertEqual(clears, [{"type": "user_status", "user_id": alice.id,
                                   **CLEARED, "scheduled_end_time": 0}])
        # away (presence_enabled) and dnd stay.
        self.assertEqual(self.get_ext(bob, alice), {"away": True, "dnd": True})

    def test_dnd_ends_for_capability_queues_only(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        now = int(self.T)
        plain = self.register_on(bob, extensions=False)["queue_id"]
        ext = self.register_on(bob)["queue_id"]
        self.set_status(alice, status_text="focus", dnd=True,
                        dnd_end_time=now + 30)
        self.clock(now + 31)
        events, last = [], -1
        while {"type": "user_status", "user_id": alice.id, "dnd": False,
               "dnd_end_time": 0} not in events:
            batch = self.poll(bob, ext, last)
            if batch:
                last = batch[-1]["id"]
            events += [{k: v for k, v in e.items() if k != "id"}
                       for e in batch if e["type"] == "user_status"]
        self.assertEqual(self.get_ext(bob, alice), {"status_text": "focus"})
        self.set_status(alice, status_text="marker")
        self.assertEqual(
            self.status_events_until(bob, plain, "marker"), [
                {"type": "user_status", "user_id": alice.id,
                 "status_text": "focus"},
                {"type": "user_status", "user_id": alice.id,
                 "status_text": "marker"},
            ])

    def test_a_status_changed_before_its_end_is_not_cleared(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        now = int(self.T)
        ext = self.register_on(bob)["queue_id"]
        self.set_status(alice, status_text="meeting",
                        scheduled_end_time=now + 60)
        self.set_status(alice, scheduled_end_time=now + 120)
        self.clock(now + 61)
        self.set_status(bob, status_text="marker")
        # The marker was written after the old end came: a clear of the old
        # end would be before it.
        got = self.status_events_until(bob, ext, "marker")
        self.assertFalse([e for e in got if e.get("status_text") == ""], got)
        self.assertEqual(self.get_ext(bob, alice),
                         {"status_text": "meeting",
                          "scheduled_end_time": now + 120})


@unittest.skipIf(NODES > 1, "restarts the one embedded node (Redis keeps the "
                 "ends across nodes: GroupExpiryTest)")
class RestartTest(ExtTestCase):

    def test_ends_survive_a_restart(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        now = int(self.T)
        self.set_status(alice, status_text="meeting", **CAR,
                        scheduled_end_time=now + 60)
        self.set_status(bob, status_text="focus", dnd=True,
                        dnd_end_time=now + 90)
        server = self.server
        server.stop()
        restarted = server.restart()
        restarted._own_data_dir, server._own_data_dir = True, False
        server.cleanup()
        type(self).server = restarted
        realm.server = restarted
        self.clock(now + 10)
        carol = realm.create_user()
        ext = self.register_on(carol, fetch_event_types=["user_status"])
        self.assertEqual(ext["user_status"], {
            str(alice.id): {"status_text": "meeting", **CAR,
                            "scheduled_end_time": now + 60},
            str(bob.id): {"status_text": "focus", "dnd": True,
                          "dnd_end_time": now + 90},
        })
        self.clock(now + 100)
        self.set_status(carol, status_text="marker")
        events, last = [], -1
        want = [{"type": "user_status", "user_id": alice.id, **CLEARED,
                 "scheduled_end_time": 0},
                {"type": "user_status", "user_id": bob.id, "dnd": False,
                 "dnd_end_time": 0}]
        while not all(w in events for w in want):
            batch = self.poll(carol, ext["queue_id"], last)
            if batch:
                last = batch[-1]["id"]
            events += [{k: v for k, v in e.items() if k != "id"}
                       for e in batch if e["type"] == "user_status"]
        # A new queue's snapshot has them cleared.
        again = self.register_on(carol, fetch_event_types=["user_status"])
        self.assertEqual(again["user_status"], {
            str(bob.id): {"status_text": "focus"},
            str(carol.id): {"status_text": "marker"},
        })


@unittest.skipIf(NODES < 2, "needs PRESENCED_BLACKBOX_NODES > 1")
class GroupExpiryTest(ExtTestCase):

    def test_exactly_one_clear_reaches_every_nodes_queues_once(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        now = int(self.T)
        nodes = [self.server.node(i) for i in range(NODES)]
        queues = []
        for n in nodes:
            queues.append((n, self.register_on(bob, server=n)["queue_id"]))
            queues.append((n, self.register_on(bob, server=n,
                                               extensions=False)["queue_id"]))
        self.set_status(alice, status_text="meeting",
                        scheduled_end_time=now + 60, dnd=True,
                        dnd_end_time=now + 60)
        self.clock(now + 61)  # every node's clock
        # Every queue hears the clear, then a marker written after it: each
        # holds exactly one clear and (capability queues) one dnd end.
        seen = [[] for _ in queues]
        last = [-1 for _ in queues]

        def until(i, done):
            n, q = queues[i]
            while not done(seen[i]):
                batch = self.poll(bob, q, last[i], server=n)
                if batch:
                    last[i] = batch[-1]["id"]
                seen[i] += [{k: v for k, v in e.items() if k != "id"}
                            for e in batch if e["type"] == "user_status"]

        for i in range(len(queues)):
            until(i, lambda got: any(e.get("status_text") == ""
                                     for e in got))
        self.set_status(bob, status_text="marker")
        for i, (n, q) in enumerate(queues):
            until(i, lambda got: any(e.get("status_text") == "marker"
                                     for e in got))
            ext = i % 2 == 0
            got = seen[i]
            clears = [e for e in got if e.get("status_text") == ""]
            want = dict(CLEARED)
            if ext:
                want["scheduled_end_time"] = 0
            self.assertEqual(clears, [{"type": "user_status",
                                       "user_id": alice.id, **want}],
                             f"queue {i} on node {nodes.index(n)}: {got}")
            dnd_ends = [e for e in got if "dnd" in e and not e["dnd"]]
            self.assertEqual(len(dnd_ends), 1 if ext else 0,
                             f"queue {i}: {got}")
        for n in nodes:
            self.assertEqual(self.get_ext(bob, alice, server=n), {})


if __name__ == "__main__":
    unittest.main()
