"""Black-box tests of POST /register and GET/DELETE/PATCH /events.

Each test checks a rule of shared/reference/zulip-presence.md (cited as
"spec 3.3", "spec 4") or of presenced's documented extensions and flags
(--heartbeat-seconds, --queue-timeout-seconds, --max-queue-events,
--presence-event-user-limit, --rate-limit).

Every /api/v1 answer is validated against the OpenAPI document. The
document (feature level 372) predates shapes the spec requires, so this
module extends its schemas, never loosens them:
- /register: top-level `presence_enabled` and `user_settings` (spec 4);
- /events: the FL 419 modern presence event, and the `user_settings` and
  `update_global_notifications` events of the invisible-mode toggle (spec
  2.4, 4);
- PATCH /events (an extension, undocumented there): a plain JsonSuccess.

Long polls are sent on raw sockets (RawPoll) so that a test can hold one
parked while it does something else.
"""

import http.client
import io
import json
import selectors
import socket
import statistics
import sys
import time
import unittest
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import harness
import openapi
from bbtest import ServerTestCase
from harness import LOOPBACK, basic_auth

# --- Schemas: the OpenAPI subset plus what the spec adds --------------------

_MODERN_ENTRY = {
    # Spec 2.5: the current server always sends both keys.
    "allOf": [openapi.component("ModernPresenceFormat"),
              {"required": ["active_timestamp", "idle_timestamp"]}],
}

# Spec 3.3, FL 419 (client_capabilities.simplified_presence_events).
MODERN_PRESENCE_EVENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "presences", "id"],
    "properties": {
        "type": {"enum": ["presence"]},
        "id": openapi.component("EventIdSchema"),
        "presences": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[0-9]+$"},
            "additionalProperties": _MODERN_ENTRY,
        },
    },
}

# Spec 2.4.
USER_SETTINGS_EVENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "op", "property", "value", "id"],
    "properties": {
        "type": {"enum": ["user_settings"]},
        "op": {"enum": ["update"]},
        "property": {"enum": ["presence_enabled"]},
        "value": {"type": "boolean"},
        "id": openapi.component("EventIdSchema"),
    },
}

# Spec 2.4 (sent until FL 439; presenced is FL 419).
GLOBAL_NOTIFICATIONS_EVENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "user", "notification_name", "setting", "id"],
    "properties": {
        "type": {"enum": ["update_global_notifications"]},
        "user": {"type": "string"},
        "notification_name": {"enum": ["presence_enabled"]},
        "setting": {"type": "boolean"},
        "id": openapi.component("EventIdSchema"),
    },
}


def _register_schema():
    schema, _ = openapi.schema_for("/register", "post", 200)
    props = schema["allOf"][1]["properties"]
    assert "presence_enabled" not in props and "user_settings" not in props
    # Spec 4: `user_settings` fetched -> user_settings.presence_enabled with
    # the user_settings_object capability, else top-level presence_enabled.
    props["presence_enabled"] = {"type": "boolean"}
    props["user_settings"] = {
        "type": "object",
        "required": ["presence_enabled"],
        "properties": {"presence_enabled": {"type": "boolean"}},
    }
    return schema


def _events_schema():
    schema, _ = openapi.schema_for("/events", "get", 200)
    items = schema["allOf"][1]["properties"]["events"]["items"]
    items["oneOf"] = items["oneOf"] + [
        MODERN_PRESENCE_EVENT, USER_SETTINGS_EVENT, GLOBAL_NOTIFICATIONS_EVENT]
    return schema


_EXTENDED = {
    ("POST", "/api/v1/register"): (_register_schema(),
                                   "POST /register 200 (+spec 4 fields)"),
    ("GET", "/api/v1/events"): (_events_schema(),
                                "GET /events 200 (+FL 419 / settings events)"),
    ("PATCH", "/api/v1/events"): (openapi.component("JsonSuccess"),
                                  "PATCH /events 200 (extension)"),
}
_BAD_QUEUE = openapi.component("BadEventQueueIdError")


def check(method, url, resp):
    """Validates one /api/v1 answer; returns the parsed body (or None)."""
    method = method.upper()
    path = urllib.parse.urlsplit(url).path
    extended = _EXTENDED.get((method, path)) if resp.status == 200 else None
    if extended is None and path == "/api/v1/events" and resp.status == 400:
        # PATCH is undocumented; its queue errors are BadEventQueueIdError
        # like GET's and DELETE's (other codes: the shared error schemas).
        body = resp.json() if resp.body else None
        if (isinstance(body, dict)
                and body.get("code") == "BAD_EVENT_QUEUE_ID"):
            extended = (_BAD_QUEUE,
                        f"{method} /events 400 (BAD_EVENT_QUEUE_ID)")
    if extended:
        ctype = resp.header("Content-Type") or ""
        assert ctype.split(";")[0].strip().lower() == "application/json", (
            f"{method} {url}: Content-Type {ctype!r}")
        body = resp.json()
        openapi.validate(body, *extended)
    else:
        body = openapi.check_response(method, url, resp)
    return body


# --- Long polls on raw sockets -----------------------------------------------

class RawPoll:
    """One GET /events on its own connection (Connection: close), sent at
    once and read later, blocking (wait) or through a selector (pump)."""

    def __init__(self, server, user, queue_id, last_event_id=-1, **extra):
        query = {"queue_id": queue_id, "last_event_id": str(last_event_id)}
        query.update({k: harness._json_param(v) for k, v in extra.items()})
        self.url = "/api/v1/events?" + urllib.parse.urlencode(query)
        self.sock = socket.create_connection((LOOPBACK, server.port),
                                             timeout=10)
        request = (f"GET {self.url} HTTP/1.1\r\n"
                   f"Host: {user.realm.host}\r\n"
                   f"Authorization: {basic_auth(user.email, user.api_key)}\r\n"
                   f"Connection: close\r\n\r\n")
        self.sock.sendall(request.encode())
        self.sock.setblocking(False)
        self.sent_at = time.monotonic()
        self.buf = bytearray()
        self.done = False
        self.done_at = None
        self.response = None

    def _complete(self):
        head, sep, body = bytes(self.buf).partition(b"\r\n\r\n")
        if not sep:
            return False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return len(body) >= int(value.strip())
        return False  # no length: read to EOF

    def _finish(self):
        self.done = True
        self.done_at = time.monotonic()
        head, sep, body = bytes(self.buf).partition(b"\r\n\r\n")
        if not sep:
            return  # closed without an HTTP answer
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = http.client.parse_headers(
            io.BytesIO(b"\r\n".join(lines[1:]) + b"\r\n\r\n"))
        length = headers.get("Content-Length")
        if length is not None:
            body = body[:int(length)]
        self.response = harness.Response(status, headers, body, "GET",
                                         self.url)

    def pump(self):
        """Reads what has arrived; True once the whole answer is in."""
        while not self.done:
            try:
                chunk = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return False
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self._finish()
                break
            self.buf += chunk
            if self._complete():
                self._finish()
        return True

    def answered_within(self, seconds):
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        try:
            deadline = time.monotonic() + seconds
            while not self.done:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if sel.select(remaining):
                    self.pump()
        finally:
            sel.close()
        return self.done

    def wait(self, timeout=10.0):
        """The validated answer; fails if there is none within `timeout`."""
        if not self.answered_within(timeout):
            raise AssertionError(f"GET {self.url}: no answer within "
                                 f"{timeout:.1f} s")
        self.close()
        if self.response is None:
            raise AssertionError(f"GET {self.url}: connection closed without "
                                 f"an HTTP answer ({bytes(self.buf)!r})")
        check("GET", self.url, self.response)
        return self.response

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --- Helpers ---------------------------------------------------------------

def subject(event):
    """The user id a presence event is about, whatever its shape."""
    if "presences" in event:
        (key,) = event["presences"]
        return int(key)
    return event["user_id"]


def legacy_presence(status, timestamp):
    return {"website": {"client": "website", "status": status,
                        "timestamp": int(timestamp), "pushable": False}}


class QueueReader:
    """A registered queue read with dont_block polls that acknowledge what
    they returned."""

    def __init__(self, test, user, **register_params):
        self.test = test
        self.user = user
        self.register_body = test.register(user, **register_params)
        self.queue_id = self.register_body["queue_id"]
        self.last = -1

    def take(self):
        events = self.test.events(self.user, self.queue_id, self.last)
        if events:
            self.last = events[-1]["id"]
        return events

    def take_presence_subjects(self):
        events = self.take()
        for e in events:
            self.test.assertEqual(e["type"], "presence", events)
        return [subject(e) for e in events]


class EventsTestCase(ServerTestCase):

    def call(self, user, method, path, params=None, encoding=None):
        if encoding is None:
            encoding = "query" if method in ("GET", "HEAD") else "form"
        p = None
        if params is not None:
            p = {k: harness._json_param(v) for k, v in params.items()}
        resp = user.client.raw(method, path, p, encoding, validate=False)
        check(method, "/api/v1" + path, resp)
        return resp

    def register(self, user, **params):
        resp = self.call(user, "POST", "/register", params)
        self.assertEqual(resp.status, 200, resp)
        return resp.json()

    def get_events(self, user, queue_id, last_event_id=-1, dont_block=True,
                   **extra):
        params = {"queue_id": queue_id}
        if last_event_id is not None:
            params["last_event_id"] = last_event_id
        if dont_block is not None:
            params["dont_block"] = dont_block
        params.update(extra)
        return self.call(user, "GET", "/events", params)

    def events(self, user, queue_id, last_event_id=-1):
        resp = self.get_events(user, queue_id, last_event_id)
        self.assertEqual(resp.status, 200, resp)
        body = resp.json()
        self.assertEqual(body["queue_id"], queue_id, body)
        ids = [e["id"] for e in body["events"]]
        self.assertEqual(ids, sorted(set(ids)), f"ids must increase: {body}")
        for i in ids:
            self.assertGreater(i, last_event_id, body)
        return body["events"]

    def delete_queue(self, user, queue_id):
        return self.call(user, "DELETE", "/events", {"queue_id": queue_id})

    def patch_queue(self, user, queue_id, user_ids):
        return self.call(user, "PATCH", "/events",
                         {"queue_id": queue_id,
                          "presence_user_ids": user_ids})

    def assert_bad_queue(self, resp, queue_id):
        self.assertEqual(resp.status, 400, resp)
        self.assertEqual(resp.json(), {
            "result": "error", "msg": f"Bad event queue ID: {queue_id}",
            "code": "BAD_EVENT_QUEUE_ID", "queue_id": queue_id}, resp)

    def start_poll(self, user, queue_id, last_event_id=-1, **extra):
        poll = RawPoll(self.server, user, queue_id, last_event_id, **extra)
        self.addCleanup(poll.close)
        return poll

    def assert_parked(self, poll, seconds=0.3):
        self.assertFalse(poll.answered_within(seconds),
                         f"a poll with nothing to return must park, got "
                         f"{poll.response!r}")

    def reader(self, user, **register_params):
        return QueueReader(self, user, **register_params)


# --- POST /register ----------------------------------------------------------

class RegisterTest(EventsTestCase):
    """Spec 4 (response fields), 3.4, 3.6, 2.0 (ignored parameters)."""

    def test_defaults(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        a.client.ping()
        self.clock(self.T + 0.5)
        body = self.register(b)
        self.assertIsInstance(body["queue_id"], str)
        self.assertTrue(body["queue_id"], body)
        self.assertEqual(body["last_event_id"], -1, body)
        self.assertGreaterEqual(body["zulip_feature_level"], 419, body)
        self.assertIsInstance(body["zulip_version"], str)
        self.assertTrue(body["zulip_version"], body)
        # presence: legacy, keyed by email, by default.
        self.assertEqual(body["presences"], {a.email: {
            "aggregated": {"client": "website", "status": "active",
                           "timestamp": int(self.T)},
            "website": {"client": "website", "status": "active",
                        "timestamp": int(self.T), "pushable": False}}}, body)
        self.assertEqual(body["presence_last_update_id"], 1, body)
        self.assertEqual(body["server_timestamp"], self.T + 0.5, body)
        # realm
        self.assertIs(body["realm_presence_disabled"], False, body)
        self.assertEqual(body["server_presence_ping_interval_seconds"], 60)
        self.assertEqual(body["server_presence_offline_threshold_seconds"],
                         200)
        # user_settings without the user_settings_object capability.
        self.assertIs(body["presence_enabled"], True, body)
        self.assertNotIn("user_settings", body)
        self.assertNotIn("ignored_parameters_unsupported", body)

    def test_queue_ids_are_distinct(self):
        r = self.realm()
        a = r.create_user()
        ids = {self.register(a)["queue_id"] for _ in range(5)}
        self.assertEqual(len(ids), 5, ids)

    def test_slim_presence_gives_modern_snapshot(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        a.client.ping()
        body = self.register(b, slim_presence=True)
        self.assertEqual(body["presences"], {str(a.id): {
            "active_timestamp": int(self.T),
            "idle_timestamp": int(self.T)}}, body)
        self.assertEqual(body["presence_last_update_id"], 1, body)

    def test_simplified_presence_events_capability_gives_modern_snapshot(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        a.client.ping()
        for extra in ({}, {"slim_presence": False}):
            body = self.register(b, client_capabilities={
                "simplified_presence_events": True}, **extra)
            self.assertEqual(body["presences"], {str(a.id): {
                "active_timestamp": int(self.T),
                "idle_timestamp": int(self.T)}}, (extra, body))

    def test_fetch_event_types_select_sections(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        a.client.ping()
        presence = {"presences", "presence_last_update_id", "server_timestamp"}
        realm = {"realm_presence_disabled",
                 "server_presence_ping_interval_seconds",
                 "server_presence_offline_threshold_seconds"}
        settings = {"presence_enabled", "user_settings"}
        cases = [
            ({"fetch_event_types": ["presence"]}, presence),
            ({"fetch_event_types": ["realm"]}, realm),
            ({"fetch_event_types": ["user_settings"]}, {"presence_enabled"}),
            ({"fetch_event_types": []}, set()),
            ({"fetch_event_types": ["message", "no_such_type"]}, set()),
            # Without fetch_event_types, event_types decides.
            ({"event_types": ["realm"]}, realm),
            ({"event_types": ["heartbeat"]}, set()),
            # fetch_event_types wins over event_types.
            ({"event_types": ["presence"], "fetch_event_types": ["realm"]},
             realm),
            ({"event_types": ["realm"], "fetch_event_types": ["presence"]},
             presence),
        ]
        for params, want in cases:
            body = self.register(b, **params)
            got = set(body) & (presence | realm | settings)
            self.assertEqual(got, want, (params, body))
            self.assertIsInstance(body["queue_id"], str)
            self.assertEqual(body["last_event_id"], -1)

    def test_user_settings_object_capability(self):
        r = self.realm()
        a = r.create_user()
        caps = {"user_settings_object": True}
        body = self.register(a, client_capabilities=caps)
        self.assertEqual(body["user_settings"]["presence_enabled"], True,
                         body)
        self.assertNotIn("presence_enabled", body)
        resp = a.client.patch_settings(presence_enabled=False)
        self.assertEqual(resp.status, 200, resp)
        body = self.register(a, client_capabilities=caps)
        self.assertIs(body["user_settings"]["presence_enabled"], False, body)
        body = self.register(a)
        self.assertIs(body["presence_enabled"], False, body)
        self.assertNotIn("user_settings", body)

    def test_presence_history_limit_days(self):
        r = self.realm()
        old, new, w = r.create_user(), r.create_user(), r.create_user()
        self.clock(self.T - 20 * 86400)
        old.client.ping()
        self.clock(self.T)
        new.client.ping()
        body = self.register(w, slim_presence=True)
        self.assertEqual(set(body["presences"]), {str(new.id)}, body)
        body = self.register(w, slim_presence=True,
                             presence_history_limit_days=30)
        self.assertEqual(set(body["presences"]), {str(old.id), str(new.id)})
        self.assertEqual(body["presence_last_update_id"], 2, body)
        body = self.register(w, slim_presence=True,
                             presence_history_limit_days=0)
        self.assertEqual(body["presences"], {}, body)
        self.assertEqual(body["presence_last_update_id"], -1, body)

    def test_realm_presence_disabled(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        a.client.ping()
        r.patch(presence_disabled=True)
        body = self.register(b)
        self.assertIs(body["realm_presence_disabled"], True, body)
        self.assertEqual(body["presences"], {}, body)
        self.assertEqual(body["presence_last_update_id"], -1, body)

    def test_unknown_parameters_are_listed_sorted(self):
        r = self.realm()
        a = r.create_user()
        body = self.register(a, zzz_unknown="1", aaa_unknown="x",
                             slim_presence=True, event_types=["presence"],
                             fetch_event_types=["presence", "realm"],
                             presence_history_limit_days=3,
                             client_capabilities={},
                             presence_user_ids=[a.id])
        self.assertEqual(body["ignored_parameters_unsupported"],
                         ["aaa_unknown", "zzz_unknown"], body)


    def test_json_typed_parameter_errors(self):
        # Spec 2.0: Json[...] parameters must be JSON text of their type.
        r = self.realm()
        a = r.create_user()
        for params, msg in (
                ({"slim_presence": "1"}, "slim_presence is not a boolean"),
                ({"presence_history_limit_days": "true"},
                 "presence_history_limit_days is not an integer"),
                ({"event_types": "presence"},
                 "event_types is not valid JSON")):
            resp = self.call(a, "POST", "/register", params)
            self.assert_error(resp, 400, msg, "BAD_REQUEST")
        q = self.register(a)["queue_id"]
        for params, msg in (
                ({"dont_block": "1"}, "dont_block is not a boolean"),
                ({"last_event_id": "x"}, "last_event_id is not valid JSON")):
            resp = self.call(a, "GET", "/events", dict(queue_id=q, **params))
            self.assert_error(resp, 400, msg, "BAD_REQUEST")


# --- GET /events, DELETE /events ---------------------------------------------

class EventsTest(EventsTestCase):
    """Spec 3.3 (shapes, delivery), 4; Zulip's queue protocol."""

    def test_parked_poll_is_woken_by_first_ping(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        q = self.register(a)["queue_id"]
        poll = self.start_poll(a, q)
        self.assert_parked(poll)
        self.clock(self.T + 5.25)
        t0 = time.monotonic()
        b.client.ping()
        body = poll.wait(5).json()
        elapsed = poll.done_at - t0
        self.assertLess(elapsed, 1.0, f"woken after {elapsed:.3f} s")
        self.assertEqual(body["queue_id"], q, body)
        self.assertEqual(len(body["events"]), 1, body)
        ev = body["events"][0]
        self.assertIsInstance(ev["id"], int)
        self.assertEqual(ev, {
            "type": "presence", "user_id": b.id, "email": b.email,
            "server_timestamp": self.T + 5.25,
            "presence": legacy_presence("active", self.T + 5),
            "id": ev["id"]}, body)

    def test_event_shapes_per_queue(self):
        r = self.realm()
        self.clock(self.T - 1000)
        a, b, c = r.create_user(), r.create_user(), r.create_user()
        self.clock(self.T)
        legacy = self.reader(a)
        slim = self.reader(a, slim_presence=True)
        modern = self.reader(a, client_capabilities={
            "simplified_presence_events": True})
        # The capability takes precedence over slim_presence.
        both = self.reader(a, slim_presence=True, client_capabilities={
            "simplified_presence_events": True})
        self.clock(self.T + 0.5)
        b.client.ping()                                  # row created
        ev = legacy.take()
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual(ev[0], {
            "type": "presence", "user_id": b.id, "email": b.email,
            "server_timestamp": self.T + 0.5,
            "presence": legacy_presence("active", self.T),
            "id": ev[0]["id"]})
        ev = slim.take()
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual(ev[0], {
            "type": "presence", "user_id": b.id,
            "server_timestamp": self.T + 0.5,
            "presence": legacy_presence("active", self.T),
            "id": ev[0]["id"]})
        for q in (modern, both):
            ev = q.take()
            self.assertEqual(len(ev), 1, ev)
            self.assertEqual(ev[0], {
                "type": "presence",
                "presences": {str(b.id): {"active_timestamp": int(self.T),
                                          "idle_timestamp": int(self.T)}},
                "id": ev[0]["id"]})
        # A first report that is idle also creates the row (spec 3.2) and
        # is announced; active time falls back to date_joined (spec 3.5).
        self.clock(self.T + 10)
        c.client.ping("idle")
        ev = modern.take()
        self.assertEqual(len(ev), 1, ev)
        entry = ev[0]["presences"][str(c.id)]
        self.assertEqual(entry["idle_timestamp"], int(self.T + 10), ev)
        joined = entry["active_timestamp"]
        if joined + 70 >= self.T + 10:
            want = legacy_presence("active", joined)
        else:
            want = legacy_presence("idle", self.T + 10)
        ev = legacy.take()
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual(ev[0]["user_id"], c.id, ev)
        self.assertEqual(ev[0]["presence"], want, ev)
        self.assertEqual(slim.take_presence_subjects(), [c.id])
        self.assertEqual(both.take_presence_subjects(), [c.id])

    def test_own_first_ping_reaches_own_queue(self):
        r = self.realm()
        a = r.create_user()
        q = self.reader(a, slim_presence=True)
        a.client.ping()
        self.assertEqual(q.take_presence_subjects(), [a.id])

    def test_last_event_id_acknowledges(self):
        r = self.realm()
        a, b, c, d = (r.create_user() for _ in range(4))
        q = self.register(a)["queue_id"]
        b.client.ping()
        c.client.ping()
        evs = self.events(a, q, -1)
        self.assertEqual([subject(e) for e in evs], [b.id, c.id], evs)
        first, second = evs[0]["id"], evs[1]["id"]
        # Not acknowledged yet: the same events again.
        self.assertEqual(self.events(a, q, -1), evs)
        self.assertEqual(self.events(a, q, first), evs[1:])
        self.assertEqual(self.events(a, q, second), [])
        # Acknowledged events are gone for good.
        self.assertEqual(self.events(a, q, -1), [])
        resp = self.get_events(a, q, last_event_id=None)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["events"], [], resp)
        d.client.ping()
        evs = self.events(a, q, second)
        self.assertEqual([subject(e) for e in evs], [d.id], evs)
        self.assertGreater(evs[0]["id"], second)

    def test_dont_block_returns_empty_at_once(self):
        r = self.realm()
        a = r.create_user()
        q = self.register(a)["queue_id"]
        t0 = time.monotonic()
        resp = self.get_events(a, q, -1, dont_block=True)
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertEqual(resp.status, 200, resp)
        body = resp.json()
        self.assertEqual(body["events"], [], body)
        self.assertEqual(body["queue_id"], q, body)

    def test_unknown_queue_is_bad_event_queue_id(self):
        r = self.realm()
        a = r.create_user()
        self.register(a)
        for qid in ("fb67bf8a-c031-47cc-84cf-ed80accacda8", "nope"):
            self.assert_bad_queue(self.get_events(a, qid), qid)
            # A blocking poll on an unknown queue is answered at once.
            self.assert_bad_queue(self.start_poll(a, qid).wait(5), qid)
            self.assert_bad_queue(self.delete_queue(a, qid), qid)

    def test_another_users_queue_is_bad_event_queue_id(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        q = self.register(a)["queue_id"]
        self.assert_bad_queue(self.get_events(b, q), q)
        self.assert_bad_queue(self.start_poll(b, q).wait(5), q)
        self.assert_bad_queue(self.delete_queue(b, q), q)
        self.assert_bad_queue(self.patch_queue(b, q, [a.id]), q)
        # The owner's queue is untouched.
        self.assertEqual(self.events(a, q), [])
        b.client.ping()
        self.assertEqual([subject(e) for e in self.events(a, q)], [b.id])

    def test_delete_frees_the_queue_and_answers_its_parked_poll(self):
        r = self.realm()
        a = r.create_user()
        q = self.register(a)["queue_id"]
        keep = self.register(a)["queue_id"]
        poll = self.start_poll(a, q)
        self.assert_parked(poll)
        resp = self.delete_queue(a, q)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json(), {"result": "success", "msg": ""})
        self.assert_bad_queue(poll.wait(5), q)
        self.assert_bad_queue(self.get_events(a, q), q)
        self.assert_bad_queue(self.delete_queue(a, q), q)
        self.assertEqual(self.events(a, keep), [])

    def test_second_poll_on_a_queue_supersedes_the_first(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        q = self.register(a)["queue_id"]
        first = self.start_poll(a, q)
        self.assert_parked(first)
        second = self.start_poll(a, q)
        body = first.wait(5).json()
        self.assertEqual(body["events"], [], body)
        self.assertEqual(body["queue_id"], q, body)
        self.assert_parked(second, 0.5)
        b.client.ping()
        body = second.wait(5).json()
        self.assertEqual([subject(e) for e in body["events"]], [b.id], body)


# --- When events are sent, and to whom ---------------------------------------

class EventRulesTest(EventsTestCase):
    """Spec 3.2, 3.3, 3.7, 3.8, 4."""

    def test_only_row_creation_and_coming_online_send_events(self):
        r = self.realm()
        a, w = r.create_user(), r.create_user()
        q = self.reader(w, slim_presence=True)
        a.client.ping()                                   # row created
        self.assertEqual(q.take_presence_subjects(), [a.id])
        for dt in (60, 120):                              # regular pings
            self.clock(self.T + dt)
            a.client.ping()
            self.assertEqual(q.take(), [], f"ping at +{dt}s")
        # The pings did write (60 > 55), they just are not announced.
        body = w.client.get_realm_presence().json()
        self.assertEqual(body["presences"][a.email]["aggregated"]["timestamp"],
                         int(self.T + 120), body)
        self.clock(self.T + 250)                          # exactly 130 s
        a.client.ping()
        self.assertEqual(q.take(), [], "130 s is not more than 130 s")
        self.clock(self.T + 320)
        a.client.ping("idle")                             # idle: never online
        self.assertEqual(q.take(), [])
        self.clock(self.T + 380.5)                        # 130.5 s: online
        a.client.ping()
        ev = q.take()
        self.assertEqual([subject(e) for e in ev], [a.id], ev)
        self.assertEqual(ev[0]["presence"],
                         legacy_presence("active", self.T + 380), ev)
        self.assertEqual(ev[0]["server_timestamp"], self.T + 380.5, ev)
        self.clock(self.T + 440.5)
        a.client.ping()
        self.assertEqual(q.take(), [])

    def _toggle(self, user, enabled):
        resp = user.client.patch_settings(presence_enabled=enabled)
        self.assertEqual(resp.status, 200, resp)

    def test_invisible_toggles_send_forced_events_in_order(self):
        r = self.realm()
        u, w = r.create_user(), r.create_user()
        own, other = self.reader(u), self.reader(w)
        u.client.ping()
        self.assertEqual(own.take_presence_subjects(), [u.id])
        self.assertEqual(other.take_presence_subjects(), [u.id])
        for dt, enabled, stamp in ((100, False, self.T + 100 - 265),
                                   (200, True, self.T + 200)):
            self.clock(self.T + dt)
            self._toggle(u, enabled)
            ev = own.take()
            self.assertEqual([e["type"] for e in ev],
                             ["user_settings", "update_global_notifications",
                              "presence"], ev)
            self.assertEqual(ev[0], {
                "type": "user_settings", "op": "update",
                "property": "presence_enabled", "value": enabled,
                "id": ev[0]["id"]})
            self.assertEqual(ev[1], {
                "type": "update_global_notifications", "user": u.email,
                "notification_name": "presence_enabled", "setting": enabled,
                "id": ev[1]["id"]})
            presence = {"type": "presence", "user_id": u.id,
                        "email": u.email,
                        "server_timestamp": self.T + dt,
                        "presence": legacy_presence("active", stamp)}
            self.assertEqual(ev[2], dict(presence, id=ev[2]["id"]))
            ev = other.take()
            self.assertEqual(len(ev), 1, ev)
            self.assertEqual(ev[0], dict(presence, id=ev[0]["id"]))

    def test_toggles_without_a_row_and_repeated_values(self):
        r = self.realm()
        u, w = r.create_user(), r.create_user()
        own, other = self.reader(u), self.reader(w, slim_presence=True)
        # Off without a row: the settings events, nothing to back-date, so
        # no presence event (spec 3.7).
        self._toggle(u, False)
        self.assertEqual([e["type"] for e in own.take()],
                         ["user_settings", "update_global_notifications"])
        self.assertEqual(other.take(), [])
        # The same value again changes nothing and sends nothing (spec 2.4).
        self._toggle(u, False)
        self.assertEqual(own.take(), [])
        # On: an active report at now, forced; it creates the row.
        self.clock(self.T + 10)
        self._toggle(u, True)
        ev = own.take()
        self.assertEqual([e["type"] for e in ev],
                         ["user_settings", "update_global_notifications",
                          "presence"], ev)
        self.assertEqual(ev[2]["presence"],
                         legacy_presence("active", self.T + 10), ev)
        self.assertEqual(other.take_presence_subjects(), [u.id])
        self._toggle(u, True)
        self.assertEqual(own.take(), [])
        self.assertEqual(other.take(), [])

    def test_switching_off_with_an_old_row_sends_no_presence_event(self):
        # Spec 3.7: C <= now - 265 s -> nothing to back-date, no event.
        r = self.realm()
        u, w = r.create_user(), r.create_user()
        u.client.ping()
        own, other = self.reader(u), self.reader(w)
        self.clock(self.T + 1000)
        self._toggle(u, False)
        self.assertEqual([e["type"] for e in own.take()],
                         ["user_settings", "update_global_notifications"])
        self.assertEqual(other.take(), [])

    def test_invisible_users_reports_send_no_events(self):
        r = self.realm()
        u, w = r.create_user(), r.create_user()
        q = self.reader(w, slim_presence=True)
        u.client.ping()
        self.clock(self.T + 100)
        self._toggle(u, False)
        self.assertEqual(q.take_presence_subjects(), [u.id, u.id])
        self.clock(self.T + 1000)       # would be "came online"
        u.client.ping()
        self.assertEqual(q.take(), [])

    def test_bots_receive_presence_events(self):
        r = self.realm()
        a = r.create_user()
        bot = r.create_user(is_bot=True)
        q = self.reader(bot, slim_presence=True)
        a.client.ping()
        self.assertEqual(q.take_presence_subjects(), [a.id])

    def test_events_stay_in_their_realm(self):
        r1, r2 = self.realm(), self.realm()
        a = r1.create_user()
        w1, w2 = r1.create_user(), r2.create_user()
        q1, q2 = self.reader(w1), self.reader(w2)
        a.client.ping()
        self.assertEqual(q1.take_presence_subjects(), [a.id])
        self.assertEqual(q2.take(), [])

    def test_settings_events_follow_event_types(self):
        r = self.realm()
        u = r.create_user()
        u.client.ping()
        only_presence = self.reader(u, event_types=["presence"])
        only_settings = self.reader(u, event_types=["user_settings"])
        self.clock(self.T + 100)
        self._toggle(u, False)
        self.assertEqual([e["type"] for e in only_presence.take()],
                         ["presence"])
        self.assertEqual([e["type"] for e in only_settings.take()],
                         ["user_settings"])

    def test_realm_presence_disabled_sends_only_forced_events(self):
        r = self.realm()
        u, w = r.create_user(), r.create_user()
        r.patch(presence_disabled=True)
        q = self.reader(w, slim_presence=True)
        u.client.ping()                                  # row created
        self.assertEqual(q.take(), [])
        self.clock(self.T + 300)
        u.client.ping()                                  # came online
        self.assertEqual(q.take(), [])
        self.clock(self.T + 310)
        self._toggle(u, False)                           # forced
        ev = q.take()
        self.assertEqual([subject(e) for e in ev], [u.id], ev)
        self.assertEqual(ev[0]["presence"],
                         legacy_presence("active", self.T + 310 - 265), ev)

    def test_limited_guest_gets_events_only_about_accessible_users(self):
        r = self.realm()
        a, b, m = r.create_user(), r.create_user(), r.create_user()
        g = r.create_user(role="guest", can_access_all_users=False)
        r.set_access(g, [a])
        qg = self.reader(g, slim_presence=True)
        qm = self.reader(m, slim_presence=True)
        for u in (a, b, g):
            u.client.ping()
        self.assertEqual(qg.take_presence_subjects(), [a.id, g.id])
        self.assertEqual(qm.take_presence_subjects(), [a.id, b.id, g.id])
        # The register snapshot is limited the same way (spec 3.8).
        body = self.register(g, slim_presence=True)
        self.assertEqual(set(body["presences"]), {str(a.id), str(g.id)}, body)

    def test_event_types_filter_presence_events(self):
        r = self.realm()
        a, w = r.create_user(), r.create_user()
        heartbeat_only = self.reader(w, event_types=["heartbeat"])
        realm_only = self.reader(w, event_types=["realm"])
        presence = self.reader(w, event_types=["presence"])
        unfiltered = self.reader(w)
        a.client.ping()
        self.assertEqual(heartbeat_only.take(), [])
        self.assertEqual(realm_only.take(), [])
        self.assertEqual(presence.take_presence_subjects(), [a.id])
        self.assertEqual(unfiltered.take_presence_subjects(), [a.id])

    def test_default_server_has_no_user_limit(self):
        r = self.realm()
        users = [r.create_user() for _ in range(150)]
        w, a = users[0], users[1]
        q = self.reader(w, slim_presence=True)
        a.client.ping()
        self.assertEqual(q.take_presence_subjects(), [a.id],
                         "150 active users: the default has no cut-off")


# --- Extensions: presence_user_ids -------------------------------------------

class PresenceSubsetTest(EventsTestCase):
    """presenced extension: register presence_user_ids, PATCH /events."""

    def test_register_presence_user_ids_restricts_snapshot_and_events(self):
        r = self.realm()
        a, b, c, w = (r.create_user() for _ in range(4))
        for u in (a, b, c):
            u.client.ping()
        q = self.reader(w, slim_presence=True,
                        presence_user_ids=[a.id, c.id])
        self.assertEqual(set(q.register_body["presences"]),
                         {str(a.id), str(c.id)}, q.register_body)
        self.clock(self.T + 200)                 # everyone comes online
        for u in (a, b, c):
            u.client.ping()
        self.assertEqual(q.take_presence_subjects(), [a.id, c.id])

    def test_patch_events_changes_the_set(self):
        r = self.realm()
        a, b, w = r.create_user(), r.create_user(), r.create_user()
        q = self.reader(w, slim_presence=True)
        a.client.ping()
        b.client.ping()
        self.assertEqual(q.take_presence_subjects(), [a.id, b.id])

        def ok(ids):
            resp = self.patch_queue(w, q.queue_id, ids)
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json(), {"result": "success", "msg": ""})

        def come_online(dt):
            self.clock(self.T + dt)
            a.client.ping()
            b.client.ping()

        ok([b.id])
        come_online(200)
        self.assertEqual(q.take_presence_subjects(), [b.id])
        ok(None)                                 # everyone again
        come_online(400)
        self.assertEqual(q.take_presence_subjects(), [a.id, b.id])
        ok([])                                   # no one
        come_online(600)
        self.assertEqual(q.take(), [])
        for qid in ("no-such-queue", "fb67bf8a-c031-47cc-84cf-ed80accacda8"):
            self.assert_bad_queue(self.patch_queue(w, qid, [a.id]), qid)


# --- Deactivation ------------------------------------------------------------

class DeactivationTest(EventsTestCase):
    """Deactivating a user frees their queues at once.

    What the answers are, from reading the code: deactivation drops the
    user's queues and wakes their parked polls; a woken poll is handled
    again from the top, authentication included, and a deactivated user
    cannot authenticate (spec 2.0, 3.9). So the parked poll is answered at
    once with 401 "Account is deactivated", and so is the next poll. That
    the queues were freed, not merely hidden behind authentication, shows
    after reactivation: both queues are then BAD_EVENT_QUEUE_ID.
    """

    def test_deactivation_frees_queues(self):
        r = self.realm()
        d, a = r.create_user(), r.create_user()
        parked_q = self.register(d)["queue_id"]
        idle_q = self.register(d, slim_presence=True)["queue_id"]
        other = self.reader(a)
        poll = self.start_poll(d, parked_q)
        self.assert_parked(poll)
        r.patch_user(d, is_active=False)
        self.assert_error(poll.wait(5), 401, "Account is deactivated")
        self.assert_error(self.get_events(d, idle_q), 401,
                          "Account is deactivated")
        r.patch_user(d, is_active=True)
        for q in (parked_q, idle_q):
            self.assert_bad_queue(self.get_events(d, q), q)
        # Other users' queues are untouched.
        self.assertEqual(other.take(), [])


# --- Heartbeat, expiry, overflow (short settings) ----------------------------

class QueueLimitsTest(EventsTestCase):
    """--heartbeat-seconds, --queue-timeout-seconds, --max-queue-events."""

    server_kwargs = {"extra_args": ["--heartbeat-seconds", "1",
                                    "--queue-timeout-seconds", "2",
                                    "--max-queue-events", "3"]}

    def test_heartbeat(self):
        r = self.realm()
        a = r.create_user()
        body = self.register(a)
        # "guaranteed to be somewhat greater than the heartbeat frequency"
        self.assertGreater(body["event_queue_longpoll_timeout_seconds"], 1)
        q = self.register(a, event_types=["presence"])["queue_id"]
        last = -1
        for _ in range(2):
            poll = self.start_poll(a, q, last)
            body = poll.wait(10).json()
            elapsed = poll.done_at - poll.sent_at
            self.assertGreaterEqual(elapsed, 0.5, body)
            # One heartbeat period (1 s) after parking, not a timer period
            # later (the session timer serves the idle timeout too).
            self.assertLess(elapsed, 3.0, body)
            self.assertEqual(len(body["events"]), 1, body)
            ev = body["events"][0]
            self.assertEqual(ev, {"type": "heartbeat", "id": ev["id"]}, body)
            self.assertGreater(ev["id"], last)
            last = ev["id"]

    def event_queues_gauge(self):
        """The servers' own count of live event queues (/metrics), summed
        over the nodes when the suite runs on several."""
        total = 0.0
        for node in getattr(self.server, "nodes", [self.server]):
            text = harness.http_request(node.port, "GET",
                                        "/metrics").body.decode()
            values = [float(line.split()[1]) for line in text.splitlines()
                      if line.startswith("presenced_event_queues ")]
            self.assertEqual(len(values), 1,
                             "no presenced_event_queues gauge:\n" + text)
            total += values[0]
        return total

    def wait_for_event_queues(self, want, deadline, while_waiting=None):
        while self.event_queues_gauge() != want:
            self.assertLess(time.monotonic(), deadline,
                            f"presenced_event_queues never reached {want}")
            if while_waiting is not None:
                while_waiting()
            time.sleep(0.1)

    def test_unpolled_queue_expires(self):
        r = self.realm()
        a = r.create_user()
        # Queues left by the other tests of this class expire first (2 s).
        self.wait_for_event_queues(0, time.monotonic() + 15)
        idle = self.register(a)["queue_id"]
        registered_at = time.monotonic()
        live = self.register(a)["queue_id"]
        self.assertEqual(self.event_queues_gauge(), 2)

        # Keep `live` polled until the server itself counts one queue fewer
        # (the 2 s timeout, swept every second), within a bounded deadline.
        def poll_live():
            self.assertEqual(self.events(a, live), [])

        self.wait_for_event_queues(1, registered_at + 15, poll_live)
        # Not before its timeout.
        self.assertGreaterEqual(time.monotonic() - registered_at, 2.0)
        self.assert_bad_queue(self.get_events(a, idle), idle)
        self.assertEqual(self.events(a, live), [])

    def test_overflow_drops_the_queue(self):
        r = self.realm()
        w = r.create_user()
        u1, u2, u3, u4 = (r.create_user() for _ in range(4))
        quiet = self.register(w)["queue_id"]
        read = self.register(w)["queue_id"]
        acked = self.register(w)["queue_id"]
        for u in (u1, u2, u3):
            u.client.ping()
        # Exactly the maximum: still there.
        self.assertEqual(len(self.events(w, read, -1)), 3)
        last = self.events(w, acked, -1)[-1]["id"]
        self.assertEqual(self.events(w, acked, last), [])
        u4.client.ping()                      # a 4th unacknowledged event
        self.assert_bad_queue(self.get_events(w, quiet), quiet)
        self.assert_bad_queue(self.get_events(w, read), read)
        evs = self.events(w, acked, last)
        self.assertEqual([subject(e) for e in evs], [u4.id], evs)


# --- Zulip's recipient cut-off (--presence-event-user-limit) -----------------

class UserLimitTest(EventsTestCase):
    """Spec 3.3: more than N active users (bots included) -> no unforced
    presence events; forced ones still go out."""

    server_kwargs = {"extra_args": ["--presence-event-user-limit", "3"]}

    def test_cut_off_above_the_limit(self):
        r = self.realm()
        w, a, b = r.create_user(), r.create_user(), r.create_user()
        q = self.reader(w, slim_presence=True)
        a.client.ping()                          # 3 active users: sent
        self.assertEqual(q.take_presence_subjects(), [a.id])
        c = r.create_user()                      # 4 > 3
        b.client.ping()                          # row created: not sent
        self.clock(self.T + 200)
        a.client.ping()                          # came online: not sent
        self.assertEqual(q.take(), [])
        r.patch_user(c, is_active=False)         # 3 active again
        self.clock(self.T + 400)
        a.client.ping()
        self.assertEqual(q.take_presence_subjects(), [a.id])

    def test_bots_count_toward_the_limit(self):
        r = self.realm()
        w, a, b = r.create_user(), r.create_user(), r.create_user()
        r.create_user(is_bot=True)
        q = self.reader(w, slim_presence=True)
        a.client.ping()
        self.assertEqual(q.take(), [], "3 humans + 1 bot = 4 > 3")

    def test_limit_counts_the_recipients_of_the_event(self):
        # Spec 3.3: the cut-off applies to the recipient list, which with
        # access limits (always on in presenced, spec 3.8) holds only the
        # users who can access the target. Here: w, a and two limited
        # guests who cannot see a -> 4 active users, but a's change has 2
        # recipients (w, a), which is not more than 3.
        r = self.realm()
        w, a = r.create_user(), r.create_user()
        for _ in range(2):
            g = r.create_user(role="guest", can_access_all_users=False)
            r.set_access(g, [w])
        q = self.reader(w, slim_presence=True)
        a.client.ping()
        self.assertEqual(q.take_presence_subjects(), [a.id],
                         "2 recipients (w, a) is not more than 3")

    def test_forced_events_ignore_the_limit(self):
        r = self.realm()
        users = [r.create_user() for _ in range(6)]
        u, w = users[0], users[1]
        q = self.reader(w, slim_presence=True)
        u.client.ping()
        self.assertEqual(q.take(), [])
        self.clock(self.T + 100)
        resp = u.client.patch_settings(presence_enabled=False)
        self.assertEqual(resp.status, 200, resp)
        ev = q.take()
        self.assertEqual([subject(e) for e in ev], [u.id], ev)


# --- Fan-out to 1,000 parked polls -------------------------------------------

class FanOutTest(EventsTestCase):
    """One realm, 50 users x 20 queues, every queue with a parked poll; one
    user comes online and every poll receives that one event."""

    server_kwargs = {"extra_args": ["--rate-limit", "0"]}
    USERS = 50
    QUEUES_PER_USER = 20
    TIMEOUT_S = 30.0
    figures = None  # (p50, p99, max) in ms, for the report

    def test_thousand_parked_polls_each_get_the_event(self):
        r = self.realm()
        users = [r.create_user() for _ in range(self.USERS)]
        x = r.create_user()
        slots = [u for u in users for _ in range(self.QUEUES_PER_USER)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            qids = list(pool.map(
                lambda u: self.register(u, event_types=["presence"],
                                        fetch_event_types=[],
                                        slim_presence=True)["queue_id"],
                slots))
        self.assertEqual(len(set(qids)), len(slots))

        sel = selectors.DefaultSelector()
        polls = []
        try:
            for u, q in zip(slots, qids):
                p = RawPoll(self.server, u, q)
                polls.append(p)
                sel.register(p.sock, selectors.EVENT_READ, p)
            # Give the server time to park them all; none may answer.
            early = self._pump(sel, time.monotonic() + 1.0)
            self.assertEqual(early, [], "polls answered before any event")

            self.clock(self.T + 1)
            t0 = time.monotonic()
            x.client.ping()
            deadline = t0 + self.TIMEOUT_S
            finished = 0
            while finished < len(polls):
                done = self._pump(sel, deadline)
                if not done and time.monotonic() >= deadline:
                    break
                finished += len(done)
            missing = [p for p in polls if not p.done]
            self.assertEqual(len(missing), 0,
                             f"{len(missing)} of {len(polls)} polls not "
                             f"answered within {self.TIMEOUT_S:.0f} s")
        finally:
            sel.close()
            for p in polls:
                p.close()

        want = {"type": "presence", "user_id": x.id,
                "server_timestamp": self.T + 1,
                "presence": legacy_presence("active", self.T + 1)}
        for p, q in zip(polls, qids):
            self.assertIsNotNone(p.response, p.url)
            check("GET", p.url, p.response)
            self.assertEqual(p.response.status, 200, p.response)
            body = p.response.json()
            self.assertEqual(body["queue_id"], q)
            self.assertEqual(len(body["events"]), 1, body)
            ev = body["events"][0]
            self.assertEqual(ev, dict(want, id=ev["id"]), body)

        ms = sorted((p.done_at - t0) * 1000 for p in polls)
        p50 = statistics.median(ms)
        p99 = ms[min(len(ms) - 1, int(round(0.99 * len(ms))) - 1)]
        FanOutTest.figures = (p50, p99, ms[-1])
        sys.stderr.write(
            f"\nfan-out to {len(polls)} parked polls: delivery after the "
            f"ping was sent p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
            f"max {ms[-1]:.1f} ms (min {ms[0]:.1f} ms)\n")

    @staticmethod
    def _pump(sel, deadline):
        """Reads until `deadline` or something completes; returns the polls
        that completed."""
        done = []
        while not done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for key, _ in sel.select(remaining):
                p = key.data
                if p.pump():
                    sel.unregister(p.sock)
                    done.append(p)
        return done



class TransitionsTest(EventsTestCase):
    """The presence_transitions extension over HTTP: idle and offline events
    found by the server's deadline heap (ticked once a second of real time
    against the presence clock), each said once, offline only after the
    grace window. Outside the OpenAPI subset, so shapes are checked here."""

    server_kwargs = {"extra_args": ["--transition-grace-seconds", "20"]}

    def transition_events(self, user, queue_id, last, want, timeout=6):
        """Polls (dont_block) until `want` transition events arrived."""
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            resp = user.client.raw("GET", "/events", {
                "queue_id": queue_id, "last_event_id": str(last),
                "dont_block": "true"}, "query", validate=False)
            self.assertEqual(resp.status, 200, resp)
            for e in resp.json()["events"]:
                last = e["id"]
                if "transition" in e:
                    got.append(e)
            if len(got) >= want:
                break
            time.sleep(0.2)
        return got, last

    def test_idle_then_offline_each_once_after_grace(self):
        r = self.realm()
        watcher, a = r.create_user(), r.create_user()
        resp = watcher.client.raw("POST", "/register", {
            "client_capabilities": json.dumps(
                {"simplified_presence_events": True,
                 "presence_transitions": True})}, validate=False)
        self.assertEqual(resp.status, 200, resp)
        queue_id = resp.json()["queue_id"]
        plain = self.register(watcher)["queue_id"]
        a.client.ping("active")
        self.clock(self.T + 60)
        a.client.ping("idle")
        self.clock(self.T + 120)
        a.client.ping("idle")
        # Still active until 200 s after the last active report.
        self.clock(self.T + 199)
        got, last = self.transition_events(watcher, queue_id, -1, 1, timeout=2.5)
        self.assertEqual(got, [])
        self.clock(self.T + 201)
        got, last = self.transition_events(watcher, queue_id, last, 1)
        self.assertEqual(len(got), 1, got)
        self.assertEqual(got[0]["transition"], "idle")
        self.assertEqual(got[0]["presences"], {str(a.id): {
            "active_timestamp": self.T, "idle_timestamp": self.T + 120}})
        self.assertEqual(int(got[0]["server_timestamp"]), self.T + 201)
        # Offline waits for the threshold plus the grace window.
        self.clock(self.T + 120 + 200 + 10)
        got, last = self.transition_events(watcher, queue_id, last, 1, timeout=2.5)
        self.assertEqual(got, [])
        self.clock(self.T + 120 + 200 + 21)
        got, last = self.transition_events(watcher, queue_id, last, 1)
        self.assertEqual([e["transition"] for e in got], ["offline"])
        # Said once.
        self.clock(self.T + 5000)
        got, last = self.transition_events(watcher, queue_id, last, 1, timeout=2.5)
        self.assertEqual(got, [])
        # A queue without the capability never sees a transition.
        events = self.events(watcher, plain)
        self.assertFalse(any("transition" in e for e in events), events)


class CoalescingTest(EventsTestCase):
    """Issue #17: in a modern-shape queue, a user's newer presence event
    replaces the older one that no answer carried yet (new id at the end);
    legacy queues keep every event; an event an answer carried stays."""

    modern = {"client_capabilities": {"simplified_presence_events": True},
              "event_types": ["presence"]}

    def comes_online_twice(self, user):
        user.client.ping()                     # row created: an event
        self.clock(self.T + 260)
        user.client.ping()                     # came online again: an event

    def test_newer_presence_replaces_the_unsent_one(self):
        r = self.realm()
        a, w, v = r.create_user(), r.create_user(), r.create_user()
        modern = self.register(w, **self.modern)["queue_id"]
        legacy = self.register(v, event_types=["presence"])["queue_id"]
        self.comes_online_twice(a)
        ev = self.events(w, modern)
        self.assertEqual([e["id"] for e in ev], [1], ev)
        self.assertEqual(ev[0]["presences"], {str(a.id): {
            "active_timestamp": self.T + 260,
            "idle_timestamp": self.T + 260}}, ev)
        ev = self.events(v, legacy)
        self.assertEqual([subject(e) for e in ev], [a.id, a.id], ev)
        # Carried by that answer, not acknowledged: a third change is
        # appended after it, and a repeated poll gets both.
        self.clock(self.T + 520)
        a.client.ping()
        ev = self.events(w, modern, -1)
        self.assertEqual([e["id"] for e in ev], [1, 2], ev)
        self.assertEqual(self.coalesced(), 1)

    def coalesced(self):
        """presenced_events_coalesced_total, summed over the nodes."""
        total = 0.0
        for node in getattr(self.server, "nodes", [self.server]):
            text = harness.http_request(node.port, "GET",
                                        "/metrics").body.decode()
            total += sum(float(line.split()[1]) for line in text.splitlines()
                         if line.startswith("presenced_events_coalesced_total "))
        return total


class CoalescingOffTest(CoalescingTest):
    """--coalesce-presence-events=false: every event is kept."""

    server_kwargs = {"extra_args": ["--coalesce-presence-events=false"]}

    def test_newer_presence_replaces_the_unsent_one(self):
        r = self.realm()
        a, w = r.create_user(), r.create_user()
        modern = self.register(w, **self.modern)["queue_id"]
        self.comes_online_twice(a)
        ev = self.events(w, modern)
        self.assertEqual([e["id"] for e in ev], [0, 1], ev)


if __name__ == "__main__":
    unittest.main()
