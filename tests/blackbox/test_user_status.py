"""Black-box tests of Zulip's user status API (issue #18, item 1).

POST /users/me/status, GET /users/{user_id}/status (feature level 262),
POST /users/{user_id}/status for administrators (feature level 407), the
`user_status` part of POST /register and the `user_status` event, written
from Zulip's API documentation (zulip.com/api/update-status,
/api/get-user-status, /api/update-status-for-user, /api/get-events) and
its server's rules for them. Run on one embedded node and, with
PRESENCED_BLACKBOX_NODES=3, on three nodes sharing one Redis, each request
going to the next node (a status set on one node is read and announced on
the others).

The OpenAPI subset in tests/reference predates these endpoints: their
schemas are written here from Zulip's documentation; errors are the
document's CodedError.
"""

import os
import unittest
import urllib.parse

import harness
import openapi
from bbtest import ServerTestCase

_REACTION_TYPES = ["unicode_emoji", "realm_emoji", "zulip_extra_emoji"]

# Zulip's user status object (GET /users/{id}/status "status", and the
# values of /register's "user_status").
STATUS_OBJECT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "away": {"type": "boolean"},
        "status_text": {"type": "string"},
        "emoji_name": {"type": "string"},
        "emoji_code": {"type": "string"},
        "reaction_type": {"enum": _REACTION_TYPES},
    },
}

GET_STATUS = {
    "allOf": [openapi.component("JsonSuccessBase"), {
        "type": "object",
        "required": ["status"],
        "properties": {"status": STATUS_OBJECT},
    }],
}

# The user_status event (api/get-events).
USER_STATUS_EVENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "user_id", "id"],
    "properties": {
        "id": openapi.component("EventIdSchema"),
        "type": {"enum": ["user_status"]},
        "user_id": {"type": "integer"},
        "away": {"type": "boolean"},
        "status_text": {"type": "string"},
        "emoji_name": {"type": "string"},
        "emoji_code": {"type": "string"},
        "reaction_type": {"enum": _REACTION_TYPES},
    },
}

STATUS_SNAPSHOT = {
    "type": "object",
    "propertyNames": {"pattern": "^[0-9]+$"},
    "additionalProperties": STATUS_OBJECT,
}

CAR = {"emoji_name": "car", "emoji_code": "1f697",
       "reaction_type": "unicode_emoji"}


def check(method, path, resp):
    """Validates one answer of the status endpoints; returns its body."""
    body = resp.json()
    if resp.status == 200:
        if method == "GET":
            openapi.validate(body, GET_STATUS, f"GET {path} 200")
        else:
            openapi.validate(body, openapi.component("IgnoredParametersSuccess"),
                             f"{method} {path} 200")
    else:
        openapi.validate(body, openapi.component("CodedError"),
                         f"{method} {path} {resp.status}")
    return body


class UserStatusTestCase(ServerTestCase):

    def call(self, user, method, path, params=None, server=None):
        encoding = "query" if method == "GET" else "form"
        p = None
        if params is not None:
            p = {k: harness._json_param(v) for k, v in params.items()}
        client = user.client
        if server is not None:
            client = harness.ZulipClient(server, user.email, user.api_key,
                                         user.realm.host)
        resp = client.raw(method, path, p, encoding, validate=False)
        if path.endswith("/status"):
            check(method, path, resp)
        return resp

    def set_status(self, user, **params):
        r = self.call(user, "POST", "/users/me/status", params)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def get_status(self, viewer, target, server=None):
        r = self.call(viewer, "GET", f"/users/{target.id}/status",
                      server=server)
        self.assertEqual(r.status, 200, r)
        return r.json()["status"]

    def register(self, user, **params):
        r = self.call(user, "POST", "/register", params)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def poll(self, user, queue_id, last_event_id):
        """Events after last_event_id, waiting for at least one."""
        r = self.call(user, "GET", "/events",
                      {"queue_id": queue_id, "last_event_id": last_event_id})
        self.assertEqual(r.status, 200, r)
        events = [e for e in r.json()["events"] if e["type"] != "heartbeat"]
        for e in events:
            if e["type"] == "user_status":
                openapi.validate(e, USER_STATUS_EVENT, "user_status event")
        return events

    def poll_status_events(self, user, queue_id, want):
        """Polls until `want` user_status events arrived; returns them."""
        got, last = [], -1
        while len(got) < want:
            events = self.poll(user, queue_id, last)
            if events:
                last = events[-1]["id"]
            got += [e for e in events if e["type"] == "user_status"]
        return got


class UpdateStatusTest(UserStatusTestCase):

    def test_set_then_read_by_another_user(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        self.set_status(alice, status_text="on vacation", away=False, **CAR)
        self.assertEqual(self.get_status(bob, alice), {
            "status_text": "on vacation", "emoji_name": "car",
            "emoji_code": "1f697", "reaction_type": "unicode_emoji"})

    def test_only_the_parameters_passed_change(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        self.set_status(alice, status_text="in a meeting", **CAR)
        self.set_status(alice, status_text="  at lunch  ")  # trimmed
        self.assertEqual(self.get_status(bob, alice), {
            "status_text": "at lunch", **CAR})
        self.set_status(alice, emoji_name="")  # clears the emoji only
        self.assertEqual(self.get_status(bob, alice),
                         {"status_text": "at lunch"})
        self.set_status(alice, emoji_name="zulip")  # looked up by name
        self.assertEqual(self.get_status(bob, alice), {
            "status_text": "at lunch", "emoji_name": "zulip",
            "emoji_code": "zulip", "reaction_type": "zulip_extra_emoji"})
        self.set_status(alice, status_text="")  # empty text clears it
        self.assertEqual(self.get_status(bob, alice), {
            "emoji_name": "zulip", "emoji_code": "zulip",
            "reaction_type": "zulip_extra_emoji"})

    def test_text_of_sixty_characters_after_trimming(self):
        realm = self.realm()
        alice = realm.create_user()
        sixty = "\u00e9" * 60  # characters, not bytes
        self.set_status(alice, status_text=f"  {sixty}  ")
        self.assertEqual(self.get_status(alice, alice),
                         {"status_text": sixty})
        r = self.call(alice, "POST", "/users/me/status",
                      {"status_text": "x" * 61})
        self.assert_error(r, 400,
                          "status_text is too long (limit: 60 characters)",
                          "BAD_REQUEST")
        self.assertEqual(self.get_status(alice, alice),
                         {"status_text": sixty})

    def test_validation_errors(self):
        realm = self.realm()
        alice = realm.create_user()
        cases = [
            ({}, "Client did not pass any new values."),
            # Without away, status_text or emoji_name nothing is "new".
            ({"emoji_code": "1f697"}, "Client did not pass any new values."),
            ({"status_text": "x", "emoji_code": "1f697"},
             "Client must pass emoji_name if they pass either emoji_code "
             "or reaction_type."),
            ({"status_text": "x", "reaction_type": "unicode_emoji"},
             "Client must pass emoji_name if they pass either emoji_code "
             "or reaction_type."),
            ({"emoji_name": "car", "emoji_code": "1f697",
              "reaction_type": "sticker"}, "Invalid emoji type."),
            ({"emoji_name": "car", "emoji_code": "not-hex",
              "reaction_type": "unicode_emoji"}, "Invalid emoji code."),
            ({"emoji_name": "party", "emoji_code": "1",
              "reaction_type": "realm_emoji"}, "Invalid custom emoji."),
            ({"emoji_name": "zulip", "emoji_code": "1f697",
              "reaction_type": "zulip_extra_emoji"}, "Invalid emoji code."),
            ({"emoji_name": "octopus", "emoji_code": "zulip",
              "reaction_type": "zulip_extra_emoji"}, "Invalid emoji name."),
            ({"away": "maybe"}, "away is not valid JSON"),
            ({"away": "1"}, "away is not a boolean"),
        ]
        for params, msg in cases:
            with self.subTest(params=params):
                r = self.call(alice, "POST", "/users/me/status", params)
                self.assert_error(r, 400, msg, "BAD_REQUEST")
        # Nothing was written: the user still has no status.
        self.assertEqual(self.get_status(alice, alice), {})

    def test_empty_emoji_code_without_a_name_changes_nothing(self):
        realm = self.realm()
        alice = realm.create_user()
        self.set_status(alice, status_text="hi", emoji_code="",
                        reaction_type="")
        self.assertEqual(self.get_status(alice, alice), {"status_text": "hi"})

    def test_bots_may_not_set_a_status(self):
        realm = self.realm()
        bot = realm.create_user(is_bot=True)
        r = self.call(bot, "POST", "/users/me/status", {"status_text": "x"})
        self.assert_error(r, 400,
                          "This endpoint does not accept bot requests.",
                          "BAD_REQUEST")

    def test_away_is_the_inverse_of_presence_enabled(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        self.set_status(alice, away=True)
        self.assertEqual(self.get_status(bob, alice), {"away": True})
        state = self.register(alice, fetch_event_types=["user_settings"])
        self.assertFalse(state["presence_enabled"], state)
        self.set_status(alice, away=False)
        self.assertEqual(self.get_status(bob, alice), {})
        state = self.register(alice, fetch_event_types=["user_settings"])
        self.assertTrue(state["presence_enabled"], state)
        # PATCH /settings shows in the status too (away = !presence_enabled).
        r = alice.client.patch_settings(presence_enabled=False)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.get_status(bob, alice), {"away": True})

    def test_unknown_parameters_are_listed(self):
        realm = self.realm()
        alice = realm.create_user()
        body = self.set_status(alice, status_text="x", colour="red")
        self.assertEqual(body.get("ignored_parameters_unsupported"),
                         ["colour"], body)


class GetStatusTest(UserStatusTestCase):

    def test_never_set_is_empty(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        self.assertEqual(self.get_status(bob, alice), {})
        # presence_enabled off without a status row: still no row to show.
        alice.client.patch_settings(presence_enabled=False)
        self.assertEqual(self.get_status(bob, alice), {})

    def test_errors(self):
        realm = self.realm()
        alice = realm.create_user()
        bot = realm.create_user(is_bot=True)
        gone = realm.create_user()
        realm.patch_user(gone, is_active=False)
        other = self.realm().create_user()
        for target, msg in [(bot.id, "No such user"),
                            (gone.id, "User is deactivated"),
                            (other.id, "No such user"),
                            (10**9, "No such user")]:
            with self.subTest(target=target):
                r = self.call(alice, "GET", f"/users/{target}/status")
                self.assert_error(r, 400, msg, "BAD_REQUEST")
        r = alice.client.raw("GET", "/users/me/status", validate=False)
        self.assertEqual(r.status, 405, r)
        r = alice.client.raw("GET", "/users/abc/status", validate=False)
        self.assertEqual(r.status, 404, r)

    def test_guest_with_limited_access(self):
        realm = self.realm()
        alice, carol = realm.create_user(), realm.create_user()
        guest = realm.create_user(role="guest", can_access_all_users=False)
        realm.set_access(guest, [carol])
        self.set_status(alice, status_text="hidden")
        self.set_status(carol, status_text="shown")
        r = self.call(guest, "GET", f"/users/{alice.id}/status")
        self.assert_error(r, 400, "Insufficient permission", "BAD_REQUEST")
        self.assertEqual(self.get_status(guest, carol),
                         {"status_text": "shown"})


class AdminStatusTest(UserStatusTestCase):

    def test_administrator_sets_another_users_status(self):
        realm = self.realm()
        admin = realm.create_user(role="administrator")
        alice = realm.create_user()
        r = self.call(admin, "POST", f"/users/{alice.id}/status",
                      {"status_text": "out sick", "away": True, **CAR})
        self.assertEqual(r.status, 200, r)
        # No `away` on this endpoint: ignored, and presence untouched.
        self.assertEqual(r.json().get("ignored_parameters_unsupported"),
                         ["away"], r.json())
        self.assertEqual(self.get_status(admin, alice),
                         {"status_text": "out sick", **CAR})

    def test_owner_may_and_members_and_moderators_may_not(self):
        realm = self.realm()
        owner = realm.create_user(role="owner")
        moderator = realm.create_user(role="moderator")
        alice = realm.create_user()
        bot = realm.create_user(is_bot=True)
        r = self.call(owner, "POST", f"/users/{alice.id}/status",
                      {"status_text": "by the owner"})
        self.assertEqual(r.status, 200, r)
        for caller in (moderator, alice):
            with self.subTest(role=caller.role):
                r = self.call(caller, "POST", f"/users/{owner.id}/status",
                              {"status_text": "x"})
                self.assert_error(r, 400, "Insufficient permission",
                                  "BAD_REQUEST")
        r = self.call(owner, "POST", f"/users/{bot.id}/status",
                      {"status_text": "x"})
        self.assert_error(r, 400, "No such user", "BAD_REQUEST")
        r = self.call(owner, "POST", f"/users/{alice.id}/status", {})
        self.assert_error(r, 400, "Client did not pass any new values.",
                          "BAD_REQUEST")
        self.assertEqual(self.get_status(owner, alice),
                         {"status_text": "by the owner"})


class StatusEventsTest(UserStatusTestCase):

    def test_event_names_what_was_passed(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        q = self.register(bob, event_types=["user_status"])["queue_id"]
        self.set_status(alice, status_text="  busy ")
        self.set_status(alice, **CAR)
        self.set_status(alice, emoji_name="")
        events = self.poll_status_events(bob, q, 3)
        for e in events:
            del e["id"]
        self.assertEqual(events, [
            {"type": "user_status", "user_id": alice.id,
             "status_text": "busy"},
            {"type": "user_status", "user_id": alice.id, **CAR},
            {"type": "user_status", "user_id": alice.id, "emoji_name": "",
             "emoji_code": "", "reaction_type": "unicode_emoji"},
        ])

    def test_away_sends_the_settings_event_first(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        q_alice = self.register(
            alice, event_types=["user_settings", "user_status"])["queue_id"]
        q_bob = self.register(bob, event_types=["user_status"])["queue_id"]
        self.set_status(alice, away=True, status_text="gone")
        events = []
        last = -1
        while not any(e["type"] == "user_status" for e in events):
            got = self.poll(alice, q_alice, last)
            if got:
                last = got[-1]["id"]
            events += got
        types = [e["type"] for e in events]
        self.assertEqual(types, ["user_settings", "user_status"], events)
        self.assertEqual(events[1]["away"], True, events)
        [e] = self.poll_status_events(bob, q_bob, 1)
        del e["id"]
        self.assertEqual(e, {"type": "user_status", "user_id": alice.id,
                             "away": True, "status_text": "gone"})

    def test_every_write_is_announced_even_unchanged(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        q = self.register(bob, event_types=["user_status"])["queue_id"]
        self.set_status(alice, status_text="same")
        self.set_status(alice, status_text="same")
        events = self.poll_status_events(bob, q, 2)
        self.assertEqual([e["status_text"] for e in events], ["same", "same"])

    def test_limited_guest_hears_only_users_it_may_see(self):
        realm = self.realm()
        alice, carol = realm.create_user(), realm.create_user()
        guest = realm.create_user(role="guest", can_access_all_users=False)
        realm.set_access(guest, [carol])
        q = self.register(guest, event_types=["user_status"])["queue_id"]
        self.set_status(alice, status_text="secret")
        self.set_status(carol, status_text="public")  # the marker
        events = self.poll_status_events(guest, q, 1)
        self.assertEqual([(e["user_id"], e["status_text"]) for e in events],
                         [(carol.id, "public")])

    def test_queues_without_the_type_hear_nothing(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        q = self.register(bob, event_types=["user_settings"])["queue_id"]
        self.set_status(alice, status_text="x")
        bob.client.patch_settings(presence_enabled=False)  # the marker
        events = []
        while not events:
            events = self.poll(bob, q, -1)
        self.assertEqual([e["type"] for e in events], ["user_settings"])


class RegisterSnapshotTest(UserStatusTestCase):

    def test_snapshot_lists_statuses_that_say_something(self):
        realm = self.realm()
        alice, bob, carol, dave = (realm.create_user() for _ in range(4))
        self.set_status(alice, status_text="hello", **CAR)
        self.set_status(bob, status_text="x")
        self.set_status(bob, status_text="")  # a row that says nothing
        self.set_status(carol, away=True)
        gone = realm.create_user()
        self.set_status(gone, status_text="bye")
        realm.patch_user(gone, is_active=False)
        state = self.register(dave, fetch_event_types=["user_status"])
        openapi.validate(state["user_status"], STATUS_SNAPSHOT, "user_status")
        self.assertEqual(state["user_status"], {
            str(alice.id): {"status_text": "hello", **CAR},
            str(carol.id): {"away": True},
        })
        # event_types alone asks for it too; other types leave it out.
        state = self.register(dave, event_types=["user_status"])
        self.assertIn(str(alice.id), state["user_status"])
        state = self.register(dave, fetch_event_types=["presence"])
        self.assertNotIn("user_status", state)

    def test_limited_guest_snapshot(self):
        realm = self.realm()
        alice, carol = realm.create_user(), realm.create_user()
        guest = realm.create_user(role="guest", can_access_all_users=False)
        realm.set_access(guest, [carol])
        self.set_status(alice, status_text="hidden")
        self.set_status(carol, status_text="shown")
        self.set_status(guest, status_text="me")
        state = self.register(guest, fetch_event_types=["user_status"])
        self.assertEqual(state["user_status"], {
            str(carol.id): {"status_text": "shown"},
            str(guest.id): {"status_text": "me"},
        })


class PersistenceTest(UserStatusTestCase):

    def test_status_survives_a_restart(self):
        realm = self.realm()
        alice, bob = realm.create_user(), realm.create_user()
        self.set_status(alice, status_text="persisted", **CAR)
        self.set_status(bob, away=True)
        if int(os.environ.get("PRESENCED_BLACKBOX_NODES", "1")) > 1:
            # Redis holds it: a node started afterwards reads it there.
            first = self.server.node(0)
            fresh = harness.Server(test_clock=True,
                                   extra_args=list(first.extra_args),
                                   admin_token=self.server.admin_token)
            fresh.start()
            try:
                fresh.set_clock(self.T)
                self.assertEqual(self.get_status(bob, alice, server=fresh),
                                 {"status_text": "persisted", **CAR})
                self.assertEqual(self.get_status(alice, bob, server=fresh),
                                 {"away": True})
            finally:
                fresh.stop()
                fresh.cleanup()
            return
        server = self.server
        server.stop()
        restarted = server.restart()
        # The new process owns the data directory from now on.
        restarted._own_data_dir, server._own_data_dir = True, False
        server.cleanup()
        type(self).server = restarted
        realm.server = restarted
        self.clock(self.T)
        self.assertEqual(self.get_status(bob, alice),
                         {"status_text": "persisted", **CAR})
        self.assertEqual(self.get_status(alice, bob), {"away": True})
        state = self.register(bob, fetch_event_types=["user_status"])
        self.assertEqual(state["user_status"][str(alice.id)],
                         {"status_text": "persisted", **CAR})


if __name__ == "__main__":
    unittest.main()
