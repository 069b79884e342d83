"""Black-box tests of presenced's Zulip presence API, admin API and routing.

Each test checks one rule of shared/reference/zulip-presence.md (cited as
"spec 3.2" etc.) or of the operator contract. Every Zulip response is also
validated against the OpenAPI document by the harness.
"""

import json
import unittest
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import harness
import openapi
from bbtest import BASE_TIME, DAY, ServerTestCase
from harness import basic_auth


class UpdateRulesTest(ServerTestCase):
    """Spec 1.2, 3.2: when a report writes, and update ids."""

    def test_first_write_in_fresh_realm_gets_update_id_1(self):
        r = self.realm()
        a = r.create_user()
        body = self.modern(a)
        self.assertEqual(body["presence_last_update_id"], 1, body)
        self.assert_modern_row(body, a, self.T, self.T)

    def test_55_second_rule(self):
        r = self.realm()
        a = r.create_user()
        first = self.modern(a)
        self.assertEqual(first["presence_last_update_id"], 1)
        for dt in (30, 55):  # within 55 s (55 itself is not "more than 55")
            self.clock(self.T + dt)
            body = self.modern(a, cursor=-1)
            self.assertEqual(body["presence_last_update_id"], 1,
                             f"ping at +{dt}s must not write: {body}")
            self.assert_modern_row(body, a, self.T, self.T)
        self.clock(self.T + 60)
        body = self.modern(a)
        self.assertEqual(body["presence_last_update_id"], 2,
                         f"ping at +60s must write: {body}")
        self.assert_modern_row(body, a, self.T + 60, self.T + 60)

    def test_55_second_rule_is_strictly_greater_to_the_microsecond(self):
        r = self.realm()
        a = r.create_user()
        self.modern(a)
        self.clock(self.T + 55.5)
        body = self.modern(a)
        self.assertEqual(body["presence_last_update_id"], 2,
                         f"55.5 s > 55 s must write: {body}")
        self.assert_modern_row(body, a, self.T + 55, self.T + 55)

    def test_update_ids_bump_only_on_writes(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        seen = []
        seen.append(self.modern(a)["presence_last_update_id"])        # write
        seen.append(self.modern(b)["presence_last_update_id"])        # write
        seen.append(self.modern(a)["presence_last_update_id"])        # no write
        self.clock(self.T + 20)
        seen.append(self.modern(b, status="idle")["presence_last_update_id"])  # no
        r_bad = a.client.post_presence("foo", last_update_id=-1)     # rejected
        self.assertEqual(r_bad.status, 400)
        seen.append(self.modern(b)["presence_last_update_id"])        # no write
        self.clock(self.T + 60)
        a.client.ping("idle", ping_only=True)                        # write
        seen.append(self.modern(b)["presence_last_update_id"])        # write
        self.assertEqual(seen, [1, 2, 2, 2, 2, 4], seen)

    def test_idle_report_moves_only_connected_time(self):
        r = self.realm()
        a, w = r.create_user(), r.create_user()
        self.modern(a)
        self.clock(self.T + 60)
        self.modern(a, status="idle")
        body = self.modern(w)
        self.assert_modern_row(body, a, self.T, self.T + 60)
        # An active report 30 s later: active time moves (90 s > 55 s) and
        # connected time follows it so that connected >= active.
        self.clock(self.T + 90)
        before = self.modern(w)["presence_last_update_id"]
        self.modern(a)
        body = self.modern(w, cursor=before)
        self.assert_modern_row(body, a, self.T + 90, self.T + 90)
        self.assertEqual(body["presence_last_update_id"], before + 1, body)

    def test_first_idle_report_gives_date_joined_as_active_time(self):
        r = self.realm()
        self.clock(self.T - 1000)
        a, window = self.create_user_timed(r)
        w = r.create_user()
        self.clock(self.T)
        self.modern(a, status="idle")
        row = self.row(self.modern(w), a)
        self.assertEqual(row["idle_timestamp"], int(self.T), row)
        self.assert_date_joined(row["active_timestamp"], self.T - 1000, window)

    def test_report_older_than_stored_time_never_writes(self):
        r = self.realm()
        a, w = r.create_user(), r.create_user()
        self.modern(a)
        before = self.modern(w)["presence_last_update_id"]
        self.clock(self.T - 100)
        self.modern(a)
        self.modern(a, status="idle")
        body = self.modern(w, cursor=-1)
        self.assertEqual(body["presence_last_update_id"], before, body)
        self.assert_modern_row(body, a, self.T, self.T)


class FormatTest(ServerTestCase):
    """Spec 2.1, 2.5, 3.5, 3.6: the response formats."""

    def test_legacy_format_by_default(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        self.clock(self.T + 0.75)
        a.client.ping()
        resp = b.client.post_presence("active")
        self.assertEqual(resp.status, 200)
        body = resp.json_ordered()
        self.assertEqual(set(body["presences"]), {a.email, b.email}, body)
        for email, entry in body["presences"].items():
            self.assertEqual(list(entry), ["aggregated", "website"],
                             f"{email}: exactly aggregated then website")
            agg, web = entry["aggregated"], entry["website"]
            self.assertEqual(dict(agg), {"client": "website", "status": "active",
                                         "timestamp": int(self.T)})
            self.assertEqual(dict(web), {"client": "website", "status": "active",
                                         "timestamp": int(self.T),
                                         "pushable": False})
        self.assertEqual(body["server_timestamp"], self.T + 0.75)
        self.assertEqual(body["presence_last_update_id"], 2)

    def test_slim_presence_gives_modern_format_keyed_by_user_id(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        a.client.ping()
        body = b.client.ping(slim_presence=True)
        self.assertEqual(set(body["presences"]), {str(a.id), str(b.id)}, body)
        for entry in body["presences"].values():
            self.assertEqual(entry, {"active_timestamp": int(self.T),
                                     "idle_timestamp": int(self.T)})
        body = b.client.ping(slim_presence=False)
        self.assertEqual(set(body["presences"]), {a.email, b.email}, body)

    def test_any_last_update_id_forces_modern_format(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        a.client.ping()
        for cursor in (-1, 0, 1):
            body = b.client.ping(slim_presence=False, last_update_id=cursor)
            keys = set(body["presences"])
            self.assertTrue(keys and all(k.isdigit() for k in keys),
                            f"last_update_id={cursor}: modern keys wanted: {body}")
            self.assertIn(str(b.id), keys)

    def test_legacy_70_second_active_rule(self):
        r = self.realm()
        a, b, w = r.create_user(), r.create_user(), r.create_user()
        a.client.ping("active")
        b.client.ping("active")
        self.clock(self.T + 70)  # A + 70 >= C: still "active" at A
        a.client.ping("idle")
        self.clock(self.T + 71)  # A + 70 < C: "idle" at C
        b.client.ping("idle")
        body = w.client.ping()
        pa, pb = body["presences"][a.email], body["presences"][b.email]
        self.assertEqual(pa["aggregated"]["status"], "active", pa)
        self.assertEqual(pa["aggregated"]["timestamp"], int(self.T), pa)
        self.assertEqual(pa["website"]["status"], "active", pa)
        self.assertEqual(pb["aggregated"]["status"], "idle", pb)
        self.assertEqual(pb["aggregated"]["timestamp"], int(self.T + 71), pb)
        self.assertEqual(pb["website"],
                         {"client": "website", "status": "idle",
                          "timestamp": int(self.T + 71), "pushable": False})

    def test_server_timestamp_is_the_test_clock(self):
        r = self.realm()
        a = r.create_user()
        now = self.clock(self.T + 123.25)
        for _ in range(2):  # the clock is held
            body = a.client.ping()
            self.assertEqual(body["server_timestamp"], now, body)
            body = a.client.get_realm_presence().json()
            self.assertEqual(body["server_timestamp"], now, body)
        self.assertEqual(
            body["presences"][a.email]["aggregated"]["timestamp"],
            int(now), "timestamps are truncated to whole seconds")


class LastUpdateIdTest(ServerTestCase):
    """Spec 2.1 presence_last_update_id, 3.4 incremental fetch."""

    def test_rows_give_their_maximum_id(self):
        r = self.realm()
        a, b, c = r.create_user(), r.create_user(), r.create_user()
        a.client.ping()
        b.client.ping()
        body = self.modern(c)
        self.assertEqual(body["presence_last_update_id"], 3, body)
        # Legacy format carries it too.
        body = c.client.ping()
        self.assertEqual(body["presence_last_update_id"], 3, body)

    def test_no_rows_with_cursor_echoes_the_cursor(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        a.client.ping()
        cursor = self.modern(b)["presence_last_update_id"]
        self.assertEqual(cursor, 2)
        # b's own ping within 55 s writes nothing, so no row is newer.
        body = self.modern(b, cursor=cursor)
        self.assertEqual(body["presences"], {}, body)
        self.assertEqual(body["presence_last_update_id"], cursor, body)
        body = self.modern(b, cursor=1000)
        self.assertEqual(body["presences"], {}, body)
        self.assertEqual(body["presence_last_update_id"], 1000, body)

    def test_no_rows_without_cursor_gives_minus_one(self):
        r = self.realm()
        a = r.create_user()
        a.client.ping()
        body = a.client.ping(history_limit_days=0)
        self.assertEqual(body["presences"], {}, body)
        self.assertEqual(body["presence_last_update_id"], -1, body)
        body = a.client.ping(history_limit_days=0, slim_presence=True)
        self.assertEqual(body["presence_last_update_id"], -1, body)

    def test_incremental_fetch_returns_only_rows_newer_than_cursor(self):
        r = self.realm()
        a, b, c = r.create_user(), r.create_user(), r.create_user()
        a.client.ping()
        b.client.ping()
        cursor = self.modern(c)["presence_last_update_id"]  # 3
        self.clock(self.T + 60)
        b.client.ping("idle")                                 # 4
        body = self.modern(c, cursor=cursor)                  # c writes: 5
        self.assertEqual(set(body["presences"]), {str(b.id), str(c.id)}, body)
        self.assert_modern_row(body, b, self.T, self.T + 60)
        self.assertEqual(body["presence_last_update_id"], 5, body)


class PingOnlyTest(ServerTestCase):

    def test_ping_only_body_is_exactly_success_and_still_writes(self):
        r = self.realm()
        a, w = r.create_user(), r.create_user()
        for params in ({"ping_only": True},
                       {"ping_only": True, "slim_presence": True},
                       {"ping_only": True, "last_update_id": -1}):
            resp = a.client.post_presence("active", **params)
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json(), {"result": "success", "msg": ""},
                             params)
        body = self.modern(w)
        self.assert_modern_row(body, a, self.T, self.T)


class HistoryLimitTest(ServerTestCase):
    """Spec 2.1 history_limit_days, 3.4 cutoff."""

    def test_default_window_is_14_days(self):
        r = self.realm()
        old, w = r.create_user(), r.create_user()
        old.client.ping()
        self.clock(self.T + 14 * DAY)  # exactly 14 days: still inside
        body = self.modern(w)
        self.assertIn(str(old.id), body["presences"], body)
        body = w.client.ping()
        self.assertIn(old.email, body["presences"], body)
        self.clock(self.T + 14 * DAY + 1)
        body = self.modern(w)
        self.assertNotIn(str(old.id), body["presences"], body)
        self.assertIn(str(w.id), body["presences"], body)
        body = w.client.ping()
        self.assertNotIn(old.email, body["presences"], body)

    def test_explicit_history_limit_days(self):
        r = self.realm()
        old, w = r.create_user(), r.create_user()
        old.client.ping()
        self.clock(self.T + 2 * DAY)
        body = self.modern(w, history_limit_days=1)
        self.assertNotIn(str(old.id), body["presences"], body)
        body = self.modern(w, history_limit_days=3)
        self.assertIn(str(old.id), body["presences"], body)
        self.clock(self.T + 20 * DAY)
        body = self.modern(w, history_limit_days=21)
        self.assertIn(str(old.id), body["presences"], body)

    def test_zero_days_is_always_empty(self):
        r = self.realm()
        a, w = r.create_user(), r.create_user()
        a.client.ping()
        for kw, want_id in (({}, -1), ({"slim_presence": True}, -1),
                            ({"last_update_id": -1}, -1),
                            ({"last_update_id": 0}, 0),
                            ({"last_update_id": 1}, 1)):
            body = w.client.ping(history_limit_days=0, **kw)
            self.assertEqual(body["presences"], {}, (kw, body))
            self.assertEqual(body["presence_last_update_id"], want_id,
                             (kw, body))

    def test_positive_last_update_id_has_no_time_cutoff(self):
        r = self.realm()
        old, w = r.create_user(), r.create_user()
        w.client.ping()              # id 1
        old.client.ping()            # id 2, at T
        self.clock(self.T + 30 * DAY)
        body = self.modern(w, cursor=1)
        self.assertIn(str(old.id), body["presences"], body)
        self.assert_modern_row(body, old, self.T, self.T)
        body = self.modern(w, cursor=1, history_limit_days=1)
        self.assertIn(str(old.id), body["presences"], body)
        # -1 and 0 are not positive: the cutoff applies.
        for cursor in (-1, 0):
            body = self.modern(w, cursor=cursor)
            self.assertNotIn(str(old.id), body["presences"], (cursor, body))

    def test_negative_history_limit_days_matches_nothing(self):
        # Spec 2.1 (inferred): not rejected; the cutoff lies in the future.
        r = self.realm()
        a, w = r.create_user(), r.create_user()
        a.client.ping()
        body = self.modern(w, history_limit_days=-1)
        self.assertEqual(body["presences"], {}, body)
        self.assertEqual(body["presence_last_update_id"], -1, body)

    def test_get_realm_presence_uses_the_14_day_window(self):
        r = self.realm()
        old, w = r.create_user(), r.create_user()
        old.client.ping()
        self.clock(self.T + 14 * DAY + 1)
        w.client.ping()
        body = w.client.get_realm_presence().json()
        self.assertEqual(set(body["presences"]), {w.email}, body)


class RealmPresenceGetTest(ServerTestCase):
    """Spec 2.2."""

    def test_get_realm_presence_is_legacy_without_last_update_id(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        a.client.ping()
        self.clock(self.T + 80)
        a.client.ping("idle")
        resp = b.client.get_realm_presence()
        self.assertEqual(resp.status, 200, resp)
        body = resp.json_ordered()
        self.assertEqual(set(body), {"result", "msg", "presences",
                                     "server_timestamp"}, body)
        self.assertNotIn("presence_last_update_id", body)
        self.assertEqual(body["server_timestamp"], self.T + 80)
        # b never reported: no row, not listed.
        self.assertEqual(set(body["presences"]), {a.email}, body)
        entry = body["presences"][a.email]
        self.assertEqual(list(entry), ["aggregated", "website"])
        self.assertEqual(dict(entry["aggregated"]),
                         {"client": "website", "status": "idle",
                          "timestamp": int(self.T + 80)})

    def test_get_realm_presence_ignores_query_parameters(self):
        r = self.realm()
        a = r.create_user()
        a.client.ping()
        resp = a.client.raw("GET", "/realm/presence?slim_presence=true"
                                   "&last_update_id=-1")
        self.assertEqual(resp.status, 200, resp)
        body = resp.json()
        self.assertEqual(set(body["presences"]), {a.email}, body)
        self.assertNotIn("presence_last_update_id", body)

    def test_head_answers_get_routes_without_body(self):
        r = self.realm()
        a = r.create_user()
        a.client.ping()
        for path in ("/realm/presence", f"/users/{a.id}/presence",
                     "/server_settings"):
            resp = a.client.raw("HEAD", path)
            self.assertEqual(resp.status, 200, (path, resp))


class SingleUserGetTest(ServerTestCase):
    """Spec 2.3."""

    def test_by_id_by_email_and_self(self):
        r = self.realm()
        a = r.create_user(email="Mixed.Case@Example.COM")
        b = r.create_user()
        a.client.ping()
        want = {"result": "success", "msg": "",
                "presence": {"aggregated": {"status": "active",
                                            "timestamp": int(self.T)},
                             "website": {"status": "active",
                                         "timestamp": int(self.T)}}}
        for who in (a.id, a.email, a.email.lower(), a.email.upper()):
            resp = b.client.get_user_presence(who)
            self.assertEqual(resp.status, 200, (who, resp))
            self.assertEqual(resp.json(), want, who)
        resp = a.client.get_user_presence(a.id)  # oneself
        self.assertEqual(resp.json(), want)
        # The path segment is percent-decoded.
        seg = urllib.parse.quote(a.email, safe="")
        self.assertIn("%40", seg)
        resp = b.client.raw("GET", f"/users/{seg}/presence")
        self.assertEqual(resp.json(), want)

    def test_aggregated_goes_offline_after_200_seconds(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        a.client.ping()
        self.clock(self.T + 200)  # exactly 200 s: not yet "more than 200"
        p = b.client.get_user_presence(a.id).json()["presence"]
        self.assertEqual(p["aggregated"]["status"], "active", p)
        self.clock(self.T + 201)
        p = b.client.get_user_presence(a.id).json()["presence"]
        self.assertEqual(p, {"aggregated": {"status": "offline",
                                            "timestamp": int(self.T)},
                             "website": {"status": "active",
                                         "timestamp": int(self.T)}})
        # No age window: data a year old is still returned.
        self.clock(self.T + 400 * DAY)
        resp = b.client.get_user_presence(a.email)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["presence"]["website"]["timestamp"],
                         int(self.T))

    def test_idle_user_website_status_stays_idle(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        a.client.ping("active")
        self.clock(self.T + 100)
        a.client.ping("idle")
        p = b.client.get_user_presence(a.id).json()["presence"]
        self.assertEqual(p["website"], {"status": "idle",
                                        "timestamp": int(self.T + 100)})
        self.assertEqual(p["aggregated"], p["website"])
        self.clock(self.T + 301)
        p = b.client.get_user_presence(a.id).json()["presence"]
        self.assertEqual(p["aggregated"], {"status": "offline",
                                           "timestamp": int(self.T + 100)})
        self.assertEqual(p["website"]["status"], "idle")

    def test_errors(self):
        r, other = self.realm(), self.realm()
        a = r.create_user()
        silent = r.create_user(email="Silent.One@example.com")
        bot = r.create_user(is_bot=True)
        stranger = other.create_user()
        stranger.client.ping()
        a.client.ping()
        cases = [
            (999999, "No such user"),
            ("nobody@example.com", "No such user"),
            (stranger.id, "No such user"),
            (stranger.email, "No such user"),
            (bot.id, "Presence is not supported for bot users."),
            (bot.email, "Presence is not supported for bot users."),
            (silent.id, f"No presence data for {silent.id}"),
            ("silent.one@EXAMPLE.com",
             "No presence data for silent.one@EXAMPLE.com"),
        ]
        for who, msg in cases:
            resp = a.client.get_user_presence(who)
            self.assert_error(resp, 400, msg, "BAD_REQUEST")

    def test_insufficient_permission_for_limited_guest(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        silent = r.create_user()
        bot = r.create_user(is_bot=True)
        g = r.create_user(role="guest", can_access_all_users=False)
        r.set_access(g, [a])
        a.client.ping()
        b.client.ping()
        g.client.ping()
        self.assertEqual(g.client.get_user_presence(a.id).status, 200)
        self.assertEqual(g.client.get_user_presence(a.email).status, 200)
        self.assertEqual(g.client.get_user_presence(g.id).status, 200)
        for who in (b.id, b.email, silent.id):
            self.assert_error(g.client.get_user_presence(who), 400,
                              "Insufficient permission", "BAD_REQUEST")
        self.assert_error(g.client.get_user_presence(bot.id), 400,
                          "Presence is not supported for bot users.")
        self.assert_error(g.client.get_user_presence(999999), 400,
                          "No such user")


class MethodTest(ServerTestCase):
    """Spec 2.0: 405 before authentication, OPTIONS."""

    def test_get_users_me_presence_is_405(self):
        r = self.realm()
        a = r.create_user()
        a.client.ping()
        for auth in (False, True):
            resp = a.client.raw("GET", "/users/me/presence", auth=auth)
            self.assertEqual(resp.status, 405, resp)
            self.assertEqual(resp.json(), {"result": "error",
                                           "msg": "Method Not Allowed",
                                           "allowed_methods": ["POST"]})

    def test_wrong_methods_on_other_routes(self):
        r = self.realm()
        a = r.create_user()
        for method, path in (("POST", "/realm/presence"),
                             ("DELETE", f"/users/{a.id}/presence"),
                             ("GET", "/settings"),
                             ("PUT", "/users/me/presence")):
            resp = a.client.raw(method, path, auth=False)
            self.assertEqual(resp.status, 405, (method, path, resp))
            self.assertEqual(resp.json()["msg"], "Method Not Allowed")

    def test_options_is_204_with_allow(self):
        r = self.realm()
        a = r.create_user()
        for path, method in (("/users/me/presence", "POST"),
                             ("/realm/presence", "GET"),
                             (f"/users/{a.id}/presence", "GET"),
                             ("/settings", "PATCH"),
                             ("/server_settings", "GET")):
            resp = a.client.raw("OPTIONS", path, auth=False)
            self.assertEqual(resp.status, 204, (path, resp))
            allow = resp.header("Allow")
            self.assertIsNotNone(allow, path)
            methods = {m.strip() for m in allow.split(",")}
            self.assertIn(method, methods, (path, allow))
        allow = a.client.raw("OPTIONS", "/users/me/presence").header("Allow")
        self.assertNotIn("GET", {m.strip() for m in allow.split(",")})


class InvisibleModeTest(ServerTestCase):
    """Spec 1.3, 2.4, 3.7."""

    def _switch(self, how, realm, user, enabled):
        if how == "settings":
            resp = user.client.patch_settings(presence_enabled=enabled)
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json(), {"result": "success", "msg": ""})
        else:
            realm.patch_user(user, presence_enabled=enabled)

    def _invisible_round_trip(self, how):
        r = self.realm()
        u, w = r.create_user(), r.create_user()
        self.modern(u)                                   # A = C = T
        self.clock(self.T + 100)
        cursor = self.modern(w)["presence_last_update_id"]
        self._switch(how, r, u, False)                   # now = T+100
        body = self.modern(w, cursor=cursor)
        back = self.T + 100 - 265
        self.assert_modern_row(body, u, back, back)
        self.assertGreater(body["presence_last_update_id"], cursor)
        cursor = body["presence_last_update_id"]
        # The single GET shows the user offline at once (265 > 200).
        p = w.client.get_user_presence(u.id).json()["presence"]
        self.assertEqual(p["aggregated"]["status"], "offline", p)
        # While invisible, the user's own reports change nothing, but the
        # user still gets everyone else's data.
        for dt, status in ((200, "active"), (300, "idle"), (400, "active")):
            self.clock(self.T + dt)
            own = self.modern(u, status=status, cursor=-1)
            self.assertIn(str(w.id), own["presences"], own)
            self.assert_modern_row(own, u, back, back)
            u.client.ping(status, ping_only=True)
        self.clock(self.T + 400)
        body = self.modern(w, cursor=cursor)
        self.assertNotIn(str(u.id), body["presences"], body)
        cursor = body["presence_last_update_id"]
        # Back to visible: an active report at now.
        self.clock(self.T + 500)
        self._switch(how, r, u, True)
        body = self.modern(w, cursor=cursor)
        self.assert_modern_row(body, u, self.T + 500, self.T + 500)
        self.assertGreater(body["presence_last_update_id"], cursor)

    def test_invisible_mode_via_patch_settings(self):
        self._invisible_round_trip("settings")

    def test_invisible_mode_via_admin_patch(self):
        self._invisible_round_trip("admin")

    def test_invisible_with_old_active_time_backdates_only_connected(self):
        r = self.realm()
        u, w = r.create_user(), r.create_user()
        self.modern(u, status="active")                  # A = C = T
        self.clock(self.T + 200)
        self.modern(u, status="idle")                    # C = T+200
        self.clock(self.T + 300)
        cursor = self.modern(w)["presence_last_update_id"]
        self._switch("settings", r, u, False)            # B = T+35 > A
        body = self.modern(w, cursor=cursor)
        self.assert_modern_row(body, u, self.T, self.T + 300 - 265)

    def test_switching_off_does_nothing_without_a_fresh_row(self):
        r = self.realm()
        never, old, w = r.create_user(), r.create_user(), r.create_user()
        old.client.ping()
        self.clock(self.T + 1000)   # old's C is far older than now - 265
        cursor = self.modern(w)["presence_last_update_id"]
        self._switch("settings", r, never, False)
        self._switch("settings", r, old, False)
        body = self.modern(w, cursor=cursor)
        self.assertEqual(body["presences"], {}, body)
        self.assertEqual(body["presence_last_update_id"], cursor, body)
        self.assert_error(w.client.get_user_presence(never.id), 400,
                          f"No presence data for {never.id}")

    def test_switching_on_records_an_active_report_now(self):
        r = self.realm()
        never, w = r.create_user(), r.create_user()
        self._switch("settings", r, never, False)   # no row: nothing
        self.clock(self.T + 10)
        self._switch("settings", r, never, True)    # creates the row
        body = self.modern(w)
        self.assert_modern_row(body, never, self.T + 10, self.T + 10)
        self.assertEqual(body["presence_last_update_id"], 2, body)

    def test_setting_the_same_value_changes_nothing(self):
        r = self.realm()
        u, w = r.create_user(), r.create_user()
        self.modern(u)
        self.clock(self.T + 100)
        cursor = self.modern(w)["presence_last_update_id"]
        self._switch("settings", r, u, True)   # already true
        body = self.modern(w, cursor=cursor)
        self.assertEqual(body["presences"], {}, body)
        self._switch("settings", r, u, False)
        cursor = self.modern(w, cursor=cursor)["presence_last_update_id"]
        self.clock(self.T + 200)
        self._switch("settings", r, u, False)  # already false
        body = self.modern(w, cursor=cursor)
        self.assertNotIn(str(u.id), body["presences"], body)

    def test_patch_settings_parameter_errors(self):
        r = self.realm()
        u = r.create_user()
        self.assert_error(u.client.patch_settings(presence_enabled="1"), 400,
                          "presence_enabled is not a boolean", "BAD_REQUEST")
        self.assert_error(u.client.patch_settings(presence_enabled="nope"),
                          400, "presence_enabled is not valid JSON",
                          "BAD_REQUEST")


class BotTest(ServerTestCase):
    """Spec 2.1, 2.2, 3.9."""

    def test_bots_cannot_post_presence(self):
        r = self.realm()
        bot = r.create_user(is_bot=True)
        msg = "This endpoint does not accept bot requests."
        self.assert_error(bot.client.post_presence("active"), 400, msg,
                          "BAD_REQUEST")
        # Rejected before parameters are parsed.
        self.assert_error(bot.client.post_presence(None), 400, msg)
        self.assert_error(bot.client.post_presence("foo", slim_presence="1"),
                          400, msg)
        self.assert_error(bot.client.post_presence("active",
                                                   encoding="multipart"),
                          400, msg)

    def test_bots_can_read_realm_presence(self):
        r = self.realm()
        a = r.create_user()
        bot = r.create_user(is_bot=True)
        a.client.ping()
        resp = bot.client.get_realm_presence()
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(set(resp.json()["presences"]), {a.email})
        resp = bot.client.get_user_presence(a.id)
        self.assertEqual(resp.status, 200, resp)


class DeactivatedUserTest(ServerTestCase):
    """Spec 2.0 auth order, 3.9."""

    def test_deactivated_users_are_excluded_and_rejected(self):
        r = self.realm()
        a, d = r.create_user(), r.create_user()
        d.client.ping()
        a.client.ping()
        r.patch_user(d, is_active=False)
        self.assertNotIn(str(d.id), self.modern(a)["presences"])
        self.assertNotIn(d.email, a.client.ping()["presences"])
        self.assertNotIn(d.email,
                         a.client.get_realm_presence().json()["presences"])
        for who in (d.id, d.email):
            self.assert_error(a.client.get_user_presence(who), 400,
                              "No such user")
        for resp in (d.client.post_presence("active"),
                     d.client.get_realm_presence(),
                     d.client.get_user_presence(a.id),
                     d.client.patch_settings(presence_enabled=False)):
            self.assert_error(resp, 401, "Account is deactivated")
        # Reactivated: the row is still there and shows up again.
        r.patch_user(d, is_active=True)
        body = self.modern(a)
        self.assert_modern_row(body, d, self.T, self.T)
        self.assertEqual(d.client.post_presence("active").status, 200)


class RealmPresenceDisabledTest(ServerTestCase):
    """Spec 1.3, 2.1, 2.2, 3.4."""

    def test_disabled_realm_returns_no_presence(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        a.client.ping()
        b.client.ping()
        r.patch(presence_disabled=True)
        for kw in ({}, {"slim_presence": True}, {"last_update_id": -1},
                   {"last_update_id": 1}):
            body = a.client.ping(**kw)
            self.assertEqual(body["presences"], {}, (kw, body))
            self.assertEqual(body["presence_last_update_id"], -1, (kw, body))
        body = a.client.get_realm_presence().json()
        self.assertEqual(body["presences"], {}, body)
        # Rows are still written while disabled.
        self.clock(self.T + 60)
        b.client.ping("idle")
        r.patch(presence_disabled=False)
        body = self.modern(a, cursor=-1)
        self.assert_modern_row(body, b, self.T, self.T + 60)


class GuestAccessTest(ServerTestCase):
    """Spec 3.8 with the contract's explicit access lists."""

    def test_limited_guest_sees_only_access_list_and_self(self):
        r = self.realm()
        a, b, c = r.create_user(), r.create_user(), r.create_user()
        g = r.create_user(role="guest", can_access_all_users=False)
        r.set_access(g, [a])
        for u in (a, b, c):
            u.client.ping()
        body = g.client.ping()
        self.assertEqual(set(body["presences"]), {a.email, g.email}, body)
        self.assertEqual(body["presence_last_update_id"], 4, body)
        body = self.modern(g)
        self.assertEqual(set(body["presences"]), {str(a.id), str(g.id)}, body)
        body = g.client.get_realm_presence().json()
        self.assertEqual(set(body["presences"]), {a.email, g.email}, body)
        # Incremental: only accessible rows, and the cursor logic runs on
        # what the guest may see.
        cursor = self.modern(g)["presence_last_update_id"]
        self.clock(self.T + 60)
        a.client.ping()
        b.client.ping()
        body = self.modern(g, cursor=cursor)            # g writes too
        self.assertEqual(set(body["presences"]), {str(a.id), str(g.id)}, body)
        cursor = body["presence_last_update_id"]
        self.clock(self.T + 61)
        c.client.ping("idle")                           # invisible to g
        body = self.modern(g, cursor=cursor)
        self.assertEqual(body["presences"], {}, body)
        self.assertEqual(body["presence_last_update_id"], cursor, body)
        # Everyone else still sees everyone.
        body = self.modern(a)
        self.assertEqual(set(body["presences"]),
                         {str(u.id) for u in (a, b, c, g)}, body)

    def test_guest_with_full_access_and_members_see_everyone(self):
        r = self.realm()
        a = r.create_user()
        full_guest = r.create_user(role="guest", can_access_all_users=True)
        # can_access_all_users only limits guests (spec 3.8): a member always
        # has full access.
        member = r.create_user(role="member", can_access_all_users=False)
        everyone = (a, full_guest, member)
        for u in everyone:
            u.client.ping()
        for viewer in (full_guest, member):
            body = viewer.client.ping()
            self.assertEqual(set(body["presences"]),
                             {u.email for u in everyone}, body)
            body = self.modern(viewer)
            self.assertEqual(set(body["presences"]),
                             {str(u.id) for u in everyone}, body)
            self.assertEqual(viewer.client.get_user_presence(a.id).status,
                             200)

    def test_role_change_to_guest_limits_access(self):
        r = self.realm()
        a = r.create_user()
        m = r.create_user(role="member", can_access_all_users=False)
        a.client.ping()
        self.assertIn(a.email, m.client.ping()["presences"])
        r.patch_user(m, role="guest")
        body = m.client.ping()
        self.assertEqual(set(body["presences"]), {m.email}, body)
        self.assert_error(m.client.get_user_presence(a.id), 400,
                          "Insufficient permission")


class RealmRoutingTest(ServerTestCase):
    """Contract: realm by Host header; spec 2.0 subdomain check."""

    def test_keys_of_one_realm_are_rejected_in_another(self):
        r1, r2 = self.realm(), self.realm()
        a = r1.create_user()
        r2.create_user().client.ping()
        wrong = r1.client(a, host=r2.host)
        for resp in (wrong.post_presence("active"),
                     wrong.get_realm_presence(),
                     wrong.get_user_presence(a.id),
                     wrong.patch_settings(presence_enabled=False)):
            self.assert_error(resp, 401,
                              "Account is not associated with this subdomain")
            self.assertEqual(resp.header("WWW-Authenticate"),
                             'Basic realm="zulip"')

    def test_unknown_subdomain_is_404_on_every_endpoint(self):
        r = self.realm()
        a = r.create_user()
        port = self.server.port
        for host in (f"nosuch.localhost:{port}", "nosuch.localhost",
                     f"a.{r.subdomain}.localhost:{port}",
                     f"{r.subdomain}.example.com:{port}",
                     f"example.com:{port}"):
            c = harness.ZulipClient(self.server, a.email, a.api_key, host)
            for method, path, auth in (
                    ("POST", "/users/me/presence", True),
                    ("GET", "/realm/presence", True),
                    ("GET", f"/users/{a.id}/presence", True),
                    ("PATCH", "/settings", True),
                    ("GET", "/server_settings", False),
                    ("GET", "/users/me/presence", False),
                    ("POST", "/users/me/presence", False)):
                resp = c.raw(method, path, {"status": "active"}, auth=auth)
                self.assert_error(resp, 404, None, "NONEXISTENT_SUBDOMAIN")

    def test_subdomain_is_case_insensitive_and_port_is_stripped(self):
        r = self.realm()
        a = r.create_user()
        port = self.server.port
        for host in (f"{r.subdomain}.localhost", f"{r.subdomain.upper()}"
                     f".LocalHost:{port}", f"{r.subdomain}.localhost:1"):
            c = harness.ZulipClient(self.server, a.email, a.api_key, host)
            resp = c.post_presence("active")
            self.assertEqual(resp.status, 200, (host, resp))


class RootDomainTest(ServerTestCase):
    """Contract: IP literal or exactly the root domain -> realm ""."""
    server_kwargs = {"root_domain": "chat.example.test"}

    def test_root_domain_and_ip_literals_route_to_the_root_realm(self):
        port = self.server.port
        probe = harness.ZulipClient(self.server, "x@example.com",
                                    "a" * 32, f"chat.example.test:{port}")
        # No root realm yet: 404.
        self.assert_error(probe.raw("GET", "/server_settings", auth=False),
                          404, None, "NONEXISTENT_SUBDOMAIN")
        self.assert_error(probe.post_presence("active"), 404, None,
                          "NONEXISTENT_SUBDOMAIN")
        root = self.realm(subdomain="", name="Root org")
        sub = self.realm(subdomain="team", name="Team org")
        u = root.create_user()
        t = sub.create_user()
        for host in (f"chat.example.test:{port}", "CHAT.Example.Test",
                     f"127.0.0.1:{port}", "127.0.0.1", f"[::1]:{port}",
                     "[::1]"):
            c = harness.ZulipClient(self.server, u.email, u.api_key, host)
            resp = c.post_presence("active")
            self.assertEqual(resp.status, 200, (host, resp))
            resp = c.server_settings()
            self.assertEqual(resp.json()["realm_name"], "Root org", host)
        c = harness.ZulipClient(self.server, t.email, t.api_key,
                                f"team.chat.example.test:{port}")
        self.assertEqual(c.post_presence("active").status, 200)
        self.assertEqual(c.server_settings().json()["realm_name"], "Team org")
        # The default root domain "localhost" is not ours on this server.
        c = harness.ZulipClient(self.server, t.email, t.api_key,
                                f"team.localhost:{port}")
        self.assertEqual(c.post_presence("active").status, 404)
        # A root-realm key on the team subdomain is the wrong realm.
        c = harness.ZulipClient(self.server, u.email, u.api_key,
                                f"team.chat.example.test:{port}")
        self.assert_error(c.post_presence("active"), 401,
                          "Account is not associated with this subdomain")


class AuthTest(ServerTestCase):
    """Spec 2.0 authentication."""

    def setUp(self):
        super().setUp()
        self.r = self.realm()
        self.a = self.r.create_user(email="Auth.User@example.com")
        self.b = self.r.create_user()

    def _post(self, auth):
        return self.a.client.raw("POST", "/users/me/presence",
                                 {"status": "active"}, auth=auth)

    def test_missing_authorization_header(self):
        for method, path in (("POST", "/users/me/presence"),
                             ("GET", "/realm/presence"),
                             ("GET", f"/users/{self.a.id}/presence"),
                             ("PATCH", "/settings")):
            resp = self.a.client.raw(method, path, {"status": "active"},
                                     auth=False)
            self.assert_error(
                resp, 401,
                "Not logged in: API authentication or user session required",
                "UNAUTHORIZED")
            self.assertEqual(resp.header("WWW-Authenticate"),
                             'Basic realm="zulip"', (method, path))

    def test_non_basic_scheme_is_400(self):
        resp = self._post(f"Bearer {self.a.api_key}")
        self.assert_error(resp, 400,
                          "This endpoint requires HTTP basic authentication.")

    def test_malformed_api_key(self):
        for key in ("short", "x" * 33, "a" * 31 + "!", ""):
            resp = self._post(basic_auth(self.a.email, key))
            self.assert_error(resp, 401, "Malformed API key")
            self.assertEqual(resp.header("WWW-Authenticate"),
                             'Basic realm="zulip"')

    def test_invalid_api_key(self):
        wrong_key = ("Z" if self.a.api_key[0] != "Z" else "Y") + self.a.api_key[1:]
        for email, key in ((self.a.email, wrong_key),
                           (self.b.email, self.a.api_key),
                           ("nobody@example.com", self.a.api_key)):
            resp = self._post(basic_auth(email, key))
            self.assert_error(resp, 401, "Invalid API key")
            self.assertEqual(resp.header("WWW-Authenticate"),
                             'Basic realm="zulip"')

    def test_invalid_basic_header(self):
        import base64
        three = base64.b64encode(
            f"{self.a.email}:{self.a.api_key}:x".encode()).decode()
        no_colon = base64.b64encode(self.a.api_key.encode()).decode()
        for header in ("Basic !!!notbase64!!!", f"Basic {three}",
                       f"Basic {no_colon}"):
            resp = self._post(header)
            self.assert_error(resp, 401,
                              "Invalid authorization header for basic auth")

    def test_accepted_variants(self):
        import base64
        spaced = base64.b64encode(
            f"  {self.a.email} : {self.a.api_key} ".encode()).decode()
        for header in (basic_auth(self.a.email.lower(), self.a.api_key),
                       basic_auth(self.a.email.upper(), self.a.api_key),
                       "basic " + basic_auth(self.a.email,
                                             self.a.api_key).split()[1],
                       "BASIC " + basic_auth(self.a.email,
                                             self.a.api_key).split()[1],
                       f"Basic {spaced}"):
            resp = self._post(header)
            self.assertEqual(resp.status, 200, (header, resp))


class ParameterTest(ServerTestCase):
    """Spec 2.0 request parameters, 2.1."""

    def test_missing_status(self):
        r = self.realm()
        a = r.create_user()
        resp = a.client.post_presence(None)
        self.assertEqual(resp.status, 400, resp)
        self.assertEqual(resp.json(), {"result": "error",
                                       "msg": "Missing 'status' argument",
                                       "code": "REQUEST_VARIABLE_MISSING",
                                       "var_name": "status"})

    def test_invalid_status_is_rejected_before_any_write(self):
        r = self.realm()
        a, w = r.create_user(), r.create_user()
        for status in ("foo", "Active", "offline", "", '"active"'):
            resp = a.client.post_presence(status)
            self.assert_error(resp, 400, f"Invalid status: {status}",
                              "BAD_REQUEST")
        body = self.modern(w)
        self.assertNotIn(str(a.id), body["presences"], body)
        self.assertEqual(body["presence_last_update_id"], 1, body)

    def test_json_typed_parameter_errors(self):
        r = self.realm()
        a = r.create_user()
        cases = [
            ({"slim_presence": "1"}, "slim_presence is not a boolean"),
            ({"slim_presence": '"true"'}, "slim_presence is not a boolean"),
            ({"ping_only": "True"}, "ping_only is not valid JSON"),
            ({"new_user_input": "0"}, "new_user_input is not a boolean"),
            ({"last_update_id": "true"}, "last_update_id is not an integer"),
            ({"last_update_id": "1.5"}, "last_update_id is not an integer"),
            ({"last_update_id": "abc"}, "last_update_id is not valid JSON"),
            ({"history_limit_days": '"3"'},
             "history_limit_days is not an integer"),
        ]
        for params, msg in cases:
            resp = a.client.post_presence("active", **params)
            self.assert_error(resp, 400, msg, "BAD_REQUEST")

    def test_typed_errors_win_over_invalid_status(self):
        r = self.realm()
        a = r.create_user()
        resp = a.client.post_presence("foo", slim_presence="1")
        self.assert_error(resp, 400, "slim_presence is not a boolean")

    def test_ignored_parameters_unsupported_listed_sorted(self):
        r = self.realm()
        a = r.create_user()
        resp = a.client.raw(
            "POST", "/users/me/presence?zz_query=1",
            [("status", "active"), ("bogus", "1"), ("anything", "x"),
             ("mid_param", "")])
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["ignored_parameters_unsupported"],
                         ["anything", "bogus", "mid_param", "zz_query"])
        # Known parameters are never listed.
        body = a.client.ping("active", ping_only=False, new_user_input=True,
                             slim_presence=True, last_update_id=-1,
                             history_limit_days=14)
        self.assertNotIn("ignored_parameters_unsupported", body)

    def test_multipart_body_as_npm_form_data_encodes_it(self):
        # harness.multipart_form_data was checked byte for byte against
        # form-data 4.0.6 (FormData.append + getBuffer + getHeaders).
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        a.client.ping()
        resp = b.client.post_presence("active", encoding="multipart",
                                      slim_presence=True, new_user_input=True)
        self.assertEqual(resp.status, 200, resp)
        body = resp.json()
        self.assertEqual(set(body["presences"]), {str(a.id), str(b.id)}, body)
        resp = b.client.post_presence("idle", encoding="multipart",
                                      ping_only=True)
        self.assertEqual(resp.json(), {"result": "success", "msg": ""})
        resp = b.client.post_presence(None, encoding="multipart",
                                      slim_presence=True)
        self.assert_error(resp, 400, "Missing 'status' argument",
                          "REQUEST_VARIABLE_MISSING")
        resp = b.client.post_presence("active", encoding="multipart",
                                      slim_presence="1")
        self.assert_error(resp, 400, "slim_presence is not a boolean")

    def test_query_string_parameters(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()
        a.client.ping()
        resp = b.client.post_presence("active", encoding="query",
                                      last_update_id=-1)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(set(resp.json()["presences"]), {str(a.id), str(b.id)})
        resp = b.client.post_presence("active", encoding="query",
                                      ping_only=True)
        self.assertEqual(resp.json(), {"result": "success", "msg": ""})

    def test_body_wins_over_query(self):
        r = self.realm()
        a = r.create_user()
        q = urllib.parse.urlencode({"status": "foo", "slim_presence": "1"})
        resp = a.client.raw("POST", f"/users/me/presence?{q}",
                            {"status": "active", "slim_presence": "true"})
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(set(resp.json()["presences"]), {str(a.id)})
        q = urllib.parse.urlencode({"status": "active"})
        resp = a.client.raw("POST", f"/users/me/presence?{q}",
                            {"status": "bar"})
        self.assert_error(resp, 400, "Invalid status: bar")
        # Multipart bodies win too.
        resp = a.client.raw("POST", f"/users/me/presence?{q}",
                            {"status": "baz"}, encoding="multipart")
        self.assert_error(resp, 400, "Invalid status: baz")


class KeepAliveTest(ServerTestCase):
    """Clients reuse connections (HTTP/1.1 keep-alive)."""

    def test_several_requests_on_one_connection(self):
        import http.client
        r = self.realm()
        a = r.create_user()
        conn = http.client.HTTPConnection(harness.LOOPBACK, self.server.port,
                                          timeout=10)
        try:
            for i in range(3):
                body = harness.urlencode({"status": "active"})
                conn.request("POST", "/api/v1/users/me/presence", body, {
                    "Host": r.host,
                    "Authorization": basic_auth(a.email, a.api_key),
                    "Content-Type": "application/x-www-form-urlencoded"})
                raw = conn.getresponse()
                resp = harness.Response(raw.status, raw.msg, raw.read(),
                                        "POST", "/api/v1/users/me/presence")
                openapi.check_response(resp.method, resp.path, resp)
                self.assertEqual(resp.status, 200, (i, resp))
                self.assertEqual(resp.json()["result"], "success")
        finally:
            conn.close()


class ServerSettingsTest(ServerTestCase):

    def test_server_settings_without_auth(self):
        r = self.realm(name="Settings Org")
        resp = harness.ZulipClient(self.server, "", "", r.host).server_settings()
        self.assertEqual(resp.status, 200, resp)
        body = resp.json()
        self.assertEqual(body["result"], "success")
        self.assertEqual(body["msg"], "")
        self.assertIsInstance(body.get("zulip_feature_level"), int, body)
        # last_update_id (263) and history_limit_days (288) are served, so
        # clients that gate on the feature level must be told at least 288.
        self.assertGreaterEqual(body["zulip_feature_level"], 288, body)
        self.assertIsInstance(body.get("zulip_version"), str, body)
        self.assertEqual(body.get("realm_name"), "Settings Org", body)
        self.assertIn(r.host.split(":")[0], body.get("realm_url", ""), body)


class AdminApiTest(ServerTestCase):
    """Operator contract: the admin API."""

    def test_admin_requires_the_token(self):
        s = self.server
        for token_header in (None, "Bearer wrong-token",
                             "Basic " + basic_auth("a", "b").split()[1],
                             f"bearer{s.admin_token}", s.admin_token):
            headers = [("Content-Type", "application/json")]
            if token_header is not None:
                headers.append(("Authorization", token_header))
            for method, path, payload in (
                    ("POST", "/admin/v1/realms", {"subdomain": "zz401",
                                                  "name": "x"}),
                    ("POST", "/admin/v1/clock", {"now": 1.0}),
                    ("PATCH", "/admin/v1/realms/1", {"presence_disabled": True})):
                resp = s.request(method, path, headers,
                                 json.dumps(payload))
                self.assertEqual(resp.status, 401, (token_header, path, resp))
                self.assertEqual(resp.json().get("result"), "error", resp)
        # Nothing was created.
        s.admin("POST", "/realms", {"subdomain": "zz401", "name": "x"})

    def test_create_realm_and_users(self):
        s = self.server
        resp = s.admin("POST", "/realms", {"subdomain": "acme", "name": "Acme"})
        body = resp.json()
        self.assertEqual(body["result"], "success")
        rid = body["realm_id"]
        for role in ("owner", "administrator", "moderator", "member", "guest"):
            resp = s.admin("POST", f"/realms/{rid}/users", {
                "email": f"{role}@acme.example.com", "full_name": role.title(),
                "role": role, "is_bot": False, "can_access_all_users": True})
            body = resp.json()
            self.assertIsInstance(body["user_id"], int)
            self.assertRegex(body["api_key"], r"^[A-Za-z0-9]{32}$")

    def test_validation_errors(self):
        s = self.server
        def err(method, path, payload, statuses=(400,)):
            resp = s.admin(method, path, payload, expect=None)
            self.assertIn(resp.status, statuses, (path, payload, resp))
            body = resp.json()
            self.assertEqual(body.get("result"), "error", body)
            self.assertIsInstance(body.get("msg"), str, body)
        for bad in ("has.dot", "spa ce", "bad/slash", "bang!", 123):
            err("POST", "/realms", {"subdomain": bad, "name": "Bad"})
        r = self.realm(subdomain="dupe", name="Dupe")
        err("POST", "/realms", {"subdomain": "dupe", "name": "Again"},
            (400, 409))
        u = r.create_user(email="same@example.com")
        for email in ("same@example.com", "SAME@Example.com"):
            err("POST", f"/realms/{r.id}/users",
                {"email": email, "full_name": "Again", "role": "member",
                 "is_bot": False, "can_access_all_users": True}, (400, 409))
        err("POST", f"/realms/{r.id}/users",
            {"email": "role@example.com", "full_name": "R",
             "role": "superuser", "is_bot": False,
             "can_access_all_users": True})
        err("PATCH", f"/realms/{r.id}/users/{u.id}", {"role": "king"})
        # The first user is intact; the same email in another realm is fine.
        self.assertEqual(u.client.post_presence("active").status, 200)
        other = self.realm()
        other.create_user(email="same@example.com")

    def test_clock_is_404_without_test_clock(self):
        s = harness.Server(test_clock=False).start()
        try:
            resp = s.admin("POST", "/clock", {"now": BASE_TIME}, expect=None)
            self.assertEqual(resp.status, 404, resp)
            # and the server's time is the real one
            r = s.create_realm()
            u = r.create_user()
            import time
            before = time.time()
            body = u.client.ping()
            self.assertLess(abs(body["server_timestamp"] - before), 60, body)
        finally:
            s.stop()
            s.cleanup()

    def test_clock_sets_and_holds_presence_time(self):
        r = self.realm()
        u = r.create_user()
        self.clock(BASE_TIME + 5000.5)
        self.assertEqual(u.client.ping()["server_timestamp"], BASE_TIME + 5000.5)
        self.assertEqual(u.client.ping()["server_timestamp"], BASE_TIME + 5000.5)

    def test_healthz(self):
        resp = self.server.request("GET", "/healthz")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json(), {"status": "ok"})


class ConcurrencyTest(ServerTestCase):
    """Spec 1.2: one row per user, one sequence per realm, under load."""

    def _parallel(self, fns):
        with ThreadPoolExecutor(max_workers=8) as pool:
            return [f.result() for f in [pool.submit(fn) for fn in fns]]

    def test_concurrent_first_reports_of_one_user_write_once(self):
        r = self.realm()
        u, w = r.create_user(), r.create_user()
        results = self._parallel([lambda: u.client.post_presence("active")
                                  for _ in range(12)])
        self.assertEqual([x.status for x in results], [200] * 12)
        body = self.modern(w)
        self.assertEqual(body["presence_last_update_id"], 2, body)
        self.assertEqual(set(self.modern(w, cursor=1)["presences"]),
                         {str(w.id)})

    def test_concurrent_writers_get_distinct_consecutive_ids(self):
        r = self.realm()
        users = [r.create_user() for _ in range(16)]
        results = self._parallel([(lambda u=u: u.client.post_presence(
            "active", last_update_id=-1)) for u in users])
        self.assertEqual([x.status for x in results], [200] * 16)
        n = len(users)
        for k in range(n + 1):
            body = self.modern(users[0], cursor=k)
            self.assertEqual(len(body["presences"]), n - k, (k, body))
            self.assertEqual(body["presence_last_update_id"], max(n, k), k)


class RateLimitTest(ServerTestCase):
    """Spec 2.0 rate limiting: api_by_user, 200 requests per 60 s."""

    def test_rate_limit_headers_on_api_responses(self):
        r = self.realm()
        a = r.create_user()
        first = a.client.get_realm_presence()
        second = a.client.get_realm_presence()
        for resp in (first, second):
            for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining",
                      "X-RateLimit-Reset"):
                self.assertIsNotNone(resp.header(h), f"missing {h}: {resp}")
        self.assertEqual(first.header("X-RateLimit-Limit"), "200")
        self.assertEqual(int(second.header("X-RateLimit-Remaining")),
                         int(first.header("X-RateLimit-Remaining")) - 1)

    def test_201st_request_in_a_minute_is_429(self):
        r = self.realm()
        a = r.create_user()
        statuses = [a.client.get_realm_presence().status for _ in range(200)]
        self.assertEqual(statuses, [200] * 200)
        resp = a.client.get_realm_presence()
        self.assertEqual(resp.status, 429, resp)
        body = resp.json()
        self.assertEqual(body["msg"], "API usage exceeded rate limit")
        self.assertEqual(body["code"], "RATE_LIMIT_HIT")
        self.assertIsInstance(body["retry-after"], (int, float))
        self.assertIsNotNone(resp.header("Retry-After"))
        # Per user: someone else is not limited.
        self.assertEqual(r.create_user().client.get_realm_presence().status,
                         200)


class MethodOverrideTest(ServerTestCase):
    """Spec 2.0: a form field method=<VERB> in a POST body overrides the
    HTTP method (legacy)."""

    def test_post_with_method_field(self):
        r = self.realm()
        a, w = r.create_user(), r.create_user()
        a.client.ping()
        resp = a.client.raw("POST", "/realm/presence", {"method": "GET"})
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(set(resp.json()["presences"]), {a.email})
        self.clock(self.T + 100)
        cursor = self.modern(w)["presence_last_update_id"]
        resp = a.client.raw("POST", "/settings",
                            {"method": "PATCH", "presence_enabled": "false"})
        self.assertEqual(resp.status, 200, resp)
        body = self.modern(w, cursor=cursor)
        self.assert_modern_row(body, a, self.T - 165, self.T - 165)



class UsersListTest(ServerTestCase):
    """GET /users (Zulip's members list, the fields a buddy list needs; the
    endpoint is outside the OpenAPI subset, so its shape is checked here)."""

    def test_members_with_names_and_limited_guests(self):
        r = self.realm()
        a = r.create_user(full_name="Ann Example")
        b = r.create_user(full_name="Bob Example")
        bot = r.create_user(is_bot=True)
        g = r.create_user(role="guest", can_access_all_users=False)
        r.set_access(g, [b])
        resp = a.client.raw("GET", "/users", validate=False)
        self.assertEqual(resp.status, 200, resp)
        body = resp.json()
        self.assertEqual(body["result"], "success")
        by_id = {m["user_id"]: m for m in body["members"]}
        self.assertEqual(set(by_id), {a.id, b.id, bot.id, g.id})
        self.assertEqual(by_id[a.id]["full_name"], "Ann Example")
        self.assertEqual(by_id[a.id]["email"], a.email)
        self.assertIs(by_id[bot.id]["is_bot"], True)
        self.assertIs(by_id[g.id]["is_guest"], True)
        self.assertEqual(by_id[g.id]["role"], 600)
        resp = g.client.raw("GET", "/users", validate=False)
        self.assertEqual({m["user_id"] for m in resp.json()["members"]},
                         {g.id, b.id})
        resp = a.client.raw("POST", "/users", validate=False)
        self.assertEqual(resp.status, 405, resp)


if __name__ == "__main__":
    unittest.main()
