"""What one authenticated user may cost the server (issue 15): queues per
user, queue memory, /register's lists and capabilities, and GET /events'
own budget.

Each test class starts its own presenced with the limits it exercises set
low; every address is 127.0.0.1.
"""

import json
import unittest

from bbtest import ServerTestCase
from harness import http_request


def metrics(server):
    text = http_request(server.port, "GET", "/metrics").body.decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def register(user, **params):
    p = {k: v if isinstance(v, str) else json.dumps(v)
         for k, v in params.items()}
    return user.client.raw("POST", "/register", p, validate=False)


def poll(user, queue_id, **params):
    p = {"queue_id": queue_id}
    p.update({k: v if isinstance(v, str) else json.dumps(v)
              for k, v in params.items()})
    return user.client.raw("GET", "/events", p, "query", validate=False)


class QueuesPerUserTest(ServerTestCase):
    server_kwargs = {"extra_args": ["--max-queues-per-user", "2"]}

    def test_a_third_queue_pushes_out_the_stalest(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        other = register(b).json()["queue_id"]
        first = register(a).json()["queue_id"]
        second = register(a).json()["queue_id"]
        # `first` is polled last: `second` is now the stalest.
        self.assertEqual(poll(a, first, dont_block=True).status, 200)
        third = register(a)
        self.assertEqual(third.status, 200, third)
        gone = poll(a, second, dont_block=True)
        self.assert_error(gone, 400, f"Bad event queue ID: {second}",
                          "BAD_EVENT_QUEUE_ID")
        for user, q in ((a, first), (a, third.json()["queue_id"]),
                        (b, other)):
            self.assertEqual(poll(user, q, dont_block=True).status, 200, q)
        m = metrics(self.server)
        self.assertEqual(m["presenced_queues_evicted_per_user_total"], 1)
        self.assertEqual(m["presenced_event_queues"], 3)
        self.assertGreater(m["presenced_event_queue_bytes"], 0)
        self.assertEqual(m["presenced_event_queue_bytes_limit"], 1 << 30)


class QueueMemoryTest(ServerTestCase):
    server_kwargs = {"extra_args": ["--max-queue-memory-mb", "1",
                                    "--max-queues-per-user", "10000"]}

    def test_queue_memory_stays_under_its_cap(self):
        r = self.realm()
        a = r.create_user()
        ids = list(range(1, 10001))
        # Each queue holds a 10,000-id subset (80 kB): 30 of them do not fit
        # in 1 MiB, and the stalest go.
        for _ in range(30):
            resp = register(a, presence_user_ids=ids,
                            fetch_event_types=[])
            self.assertEqual(resp.status, 200, resp)
        m = metrics(self.server)
        self.assertLessEqual(m["presenced_event_queue_bytes"], 1 << 20)
        self.assertEqual(m["presenced_event_queue_bytes_limit"], 1 << 20)
        self.assertGreater(m["presenced_queues_evicted_memory_total"], 0)
        self.assertLess(m["presenced_event_queues"], 30)


class RegisterListsTest(ServerTestCase):
    def test_lists_over_their_bound_get_400(self):
        r = self.realm()
        a = r.create_user()
        types = [f"type{i}" for i in range(101)]
        for name in ("event_types", "fetch_event_types"):
            resp = register(a, **{name: types})
            self.assert_error(resp, 400, f"{name} has more than 100 entries",
                              "BAD_REQUEST")
        resp = register(a, presence_user_ids=list(range(10001)))
        self.assert_error(resp, 400,
                          "presence_user_ids has more than 10000 entries",
                          "BAD_REQUEST")
        self.assertEqual(metrics(self.server)["presenced_event_queues"], 0)
        ok = register(a, event_types=types[:100],
                      presence_user_ids=list(range(10000)))
        self.assertEqual(ok.status, 200, ok)


class RegisterCapabilitiesTest(ServerTestCase):
    def test_client_capabilities_over_the_bound_get_400(self):
        r = self.realm()
        a = r.create_user()
        # Unknown capabilities are ignored, as Zulip ignores them, up to the
        # same bound as the lists (--max-event-types); the known ones still
        # count beside them.
        caps = {f"unknown_{i}": True for i in range(99)}
        caps["simplified_presence_events"] = True
        a.client.ping()
        ok = register(a, client_capabilities=caps,
                      fetch_event_types=["presence"])
        self.assertEqual(ok.status, 200, ok)
        # Modern presence: keyed by user id, not by email.
        self.assertEqual(list(ok.json()["presences"]), [str(a.id)])
        caps["one_too_many"] = False
        resp = register(a, client_capabilities=caps)
        self.assert_error(resp, 400,
                          "client_capabilities has more than 100 entries",
                          "BAD_REQUEST")
        self.assertEqual(metrics(self.server)["presenced_event_queues"], 1)


class EventsBudgetTest(ServerTestCase):
    server_kwargs = {"extra_args": ["--events-poll-limit", "5",
                                    "--rate-limit", "1000"]}

    def test_non_blocking_poll_loop_gets_429(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        q = register(a, event_types=["presence"]).json()["queue_id"]
        statuses = [poll(a, q, dont_block=True).status for _ in range(7)]
        self.assertEqual(statuses, [200] * 5 + [429] * 2)
        refused = poll(a, q, dont_block=True)
        # The shape of the API rate limit's answer.
        body = self.assert_error(refused, 429, "API usage exceeded rate limit",
                                 "RATE_LIMIT_HIT")
        self.assertGreater(body["retry-after"], 0)
        self.assertGreater(float(refused.header("Retry-After")), 0)
        # A poll that brings a new event is never refused.
        b.client.ping()
        fresh = poll(a, q, dont_block=True, last_event_id=-1)
        self.assertEqual(fresh.status, 200, fresh)
        self.assertEqual(len(fresh.json()["events"]), 1)
        # Another user's budget is its own.
        qb = register(b, event_types=["presence"]).json()["queue_id"]
        self.assertEqual(poll(b, qb, dont_block=True).status, 200)
        m = metrics(self.server)
        self.assertEqual(m["presenced_event_polls_refused_total"], 3)
        self.assertGreaterEqual(m["presenced_rate_limited_total"], 3)
        # What the limiters hold: the polls that cost were a's five (more
        # than two in the window: a ring) and b's one.
        polls = '{limiter="events_poll_limit"}'
        self.assertEqual(m["presenced_rate_limiter_users" + polls], 2)
        self.assertEqual(m["presenced_rate_limiter_heap_logs" + polls], 1)
        self.assertGreater(m["presenced_rate_limiter_bytes" + polls],
                           5 * 8)
        requests = '{limiter="rate_limit"}'
        self.assertEqual(m["presenced_rate_limiter_users" + requests], 2)
        self.assertGreater(m["presenced_rate_limiter_bytes" + requests], 0)


if __name__ == "__main__":
    unittest.main()
