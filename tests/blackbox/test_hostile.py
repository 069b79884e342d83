"""What a hostile client or a careless deployment could do, closed (issue #15):
work done before authentication, and scrapes that read the allocator.

Each test class starts its own presenced; every address is 127.0.0.1.
"""

import unittest

from bbtest import ServerTestCase
from harness import basic_auth, http_request, multipart_form_data


def metrics(server):
    text = http_request(server.port, "GET", "/metrics").body.decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


class BodyAfterAuthenticationTest(ServerTestCase):
    """A large body is read (and parsed) only once the head's credentials
    pass; a caller whose credentials fail gets its 401 from the head."""

    BIG = 1_000_000  # under --max-body-bytes (1 MiB) with the multipart frame

    def big_multipart(self):
        return multipart_form_data({"status": "active", "filler": "x" * self.BIG})

    def post(self, user, auth):
        ctype, body = self.big_multipart()
        headers = [("Content-Type", ctype)]
        if auth is not None:
            headers.append(("Authorization", auth))
        return http_request(self.server.port, "POST",
                            "/api/v1/users/me/presence", headers, body,
                            host=user.realm.host)

    def test_a_bad_key_with_a_large_body_is_refused_unread(self):
        user = self.realm().create_user()
        for auth in (basic_auth(user.email, "x" * 32),  # wrong key
                     None,                              # no credentials
                     "Basic !!!"):                      # malformed
            before = metrics(self.server)
            r = self.post(user, auth)
            self.assertEqual(r.status, 401, r)
            self.assertEqual(r.json()["result"], "error")
            self.assertEqual(r.header("Connection"), "close")
            after = metrics(self.server)
            # Not read in full, so not parsed either.
            self.assertEqual(after["presenced_request_body_bytes_total"],
                             before["presenced_request_body_bytes_total"], auth)
            self.assertEqual(after["presenced_refused_before_body_total"],
                             before["presenced_refused_before_body_total"] + 1)

    def test_a_good_key_with_a_large_body_is_read_and_parsed(self):
        user = self.realm().create_user()
        before = metrics(self.server)
        r = self.post(user, basic_auth(user.email, user.api_key))
        # Parsed: its one oversized parameter is what the answer names.
        self.assert_error(r, 400, "Parameter 'filler' is too long",
                          "BAD_REQUEST")
        after = metrics(self.server)
        self.assertGreaterEqual(after["presenced_request_body_bytes_total"] -
                                before["presenced_request_body_bytes_total"],
                                self.BIG)
        self.assertEqual(after["presenced_refused_before_body_total"],
                         before["presenced_refused_before_body_total"])

    def test_a_small_body_is_judged_as_before(self):
        # Below the threshold nothing changes: a malformed body is a 400
        # even with a bad key (Zulip decodes a POST body before it checks
        # the method and the caller).
        user = self.realm().create_user()
        r = http_request(self.server.port, "POST",
                         "/api/v1/users/me/presence",
                         [("Content-Type", "application/x-www-form-urlencoded"),
                          ("Authorization", basic_auth(user.email, "y" * 32))],
                         b"status=active&%zz", host=user.realm.host)
        self.assertEqual(r.status, 400, r)

    def test_the_admin_api_refuses_a_large_body_without_its_token(self):
        before = metrics(self.server)
        r = http_request(self.server.port, "POST", "/admin/v1/realms",
                         [("Content-Type", "application/json"),
                          ("Authorization", "Bearer not-the-token")],
                         b'{"subdomain":"big","name":"' + b"n" * 100_000 + b'"}')
        self.assertEqual(r.status, 401, r)
        after = metrics(self.server)
        self.assertEqual(after["presenced_refused_before_body_total"],
                         before["presenced_refused_before_body_total"] + 1)


class HeapSampledNotScrapedTest(ServerTestCase):
    """The allocator's figures are read by the flush thread, not per scrape
    (mallinfo2/malloc_info take the arena's lock)."""

    # One flush (and heap sample) a minute: none happens during the test.
    server_kwargs = {"flush_interval_ms": 60_000}

    def test_scrapes_show_the_last_sample(self):
        first = metrics(self.server)
        self.assertIn("presenced_malloc_arena_bytes", first)
        samples = first["presenced_malloc_samples_total"]
        self.assertGreaterEqual(samples, 1)
        for _ in range(10):
            g = metrics(self.server)
            self.assertEqual(g["presenced_malloc_samples_total"], samples)
            self.assertEqual(g["presenced_malloc_arena_bytes"],
                             first["presenced_malloc_arena_bytes"])


if __name__ == "__main__":
    unittest.main()
