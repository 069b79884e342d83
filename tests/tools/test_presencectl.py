#!/usr/bin/env python3
"""End-to-end tests of presencectl against a real presenced.

Starts build/debug/presenced (or $PRESENCED_BINARY) on 127.0.0.1:0 with a
temporary --data directory and an admin token in the environment, reads the
"listening on http://..." line, and runs every presencectl subcommand against
it, checking stdout, stderr and exit codes. A small fake HTTP server checks the
exact requests presencectl sends and its handling of non-JSON answers.

Run: PRESENCED_BINARY=... PRESENCECTL_BINARY=... python3 test_presencectl.py
(CTest sets both; without them the debug build paths are used).
"""

import base64
import http.server
import json
import os
import selectors
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRESENCED = os.environ.get(
    "PRESENCED_BINARY", os.path.join(ROOT, "build", "debug", "presenced"))
PRESENCECTL = os.environ.get(
    "PRESENCECTL_BINARY", os.path.join(ROOT, "build", "debug", "presencectl"))
TOKEN = "test-admin-token-Zq81-0123456789abcdef"
START_TIMEOUT_S = 30


def free_port():
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Presenced:
    """One presenced process on 127.0.0.1:0 with its own data directory."""

    def __init__(self, *extra_flags):
        self._dir = tempfile.TemporaryDirectory(prefix="presencectl_test_")
        self._stderr = open(os.path.join(self._dir.name, "stderr.log"), "w+")
        env = dict(os.environ, PRESENCED_ADMIN_TOKEN=TOKEN)
        self.proc = subprocess.Popen(
            [PRESENCED, "--listen", "127.0.0.1:0", "--data",
             os.path.join(self._dir.name, "data"), "--threads", "2",
             *extra_flags],
            stdout=subprocess.PIPE, stderr=self._stderr, env=env)
        self.url = self._read_url()

    def _read_url(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                self._fail("printed no 'listening on' line in %ds" %
                           START_TIMEOUT_S)
            chunk = os.read(self.proc.stdout.fileno(), 1)
            if not chunk:
                self._fail("exited early")
            line += chunk
        text = line.decode().strip()
        prefix = "listening on "
        if not text.startswith(prefix + "http://"):
            self._fail("printed %r first" % text)
        return text[len(prefix):]

    def _fail(self, what):
        """Stops the server and raises, with its exit code and stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        log = self.stderr()
        self._cleanup()
        raise AssertionError("presenced %s (exit %s); stderr:\n%s"
                             % (what, code, log[-4000:]))

    def stderr(self):
        self._stderr.seek(0)
        return self._stderr.read()

    def stop(self):
        """SIGTERM, wait, and return the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self._cleanup()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._cleanup()

    def _cleanup(self):
        self.proc.stdout.close()
        self._stderr.close()
        self._dir.cleanup()


def run_ctl(*args, server=None, token=TOKEN, env=None, timeout=60):
    """Runs presencectl; the token goes through PRESENCED_ADMIN_TOKEN."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("PRESENCECTL_SERVER", "PRESENCED_ADMIN_TOKEN")}
    if token is not None:
        full_env["PRESENCED_ADMIN_TOKEN"] = token
    full_env.update(env or {})
    cmd = [PRESENCECTL]
    if server is not None:
        cmd += ["--server", server]
    cmd += list(args)
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env,
                          timeout=timeout)


def zulip_call(url, method, path, email, api_key, host, data=None):
    """One Zulip API call with Basic auth; returns (status, json body)."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url + path, data=body, method=method)
    cred = base64.b64encode(("%s:%s" % (email, api_key)).encode()).decode()
    req.add_header("Authorization", "Basic " + cred)
    req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class PresencectlTest(unittest.TestCase):
    """Every subcommand against one presenced started with --test-clock."""

    server = None
    _next = 0

    @classmethod
    def setUpClass(cls):
        cls.server = Presenced("--test-clock")

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        if code != 0:
            raise AssertionError("presenced exited %d after SIGTERM" % code)

    def ctl(self, *args, **kwargs):
        kwargs.setdefault("server", self.server.url)
        return run_ctl(*args, **kwargs)

    def ok(self, *args, **kwargs):
        r = self.ctl(*args, **kwargs)
        self.assertEqual(r.returncode, 0, "%s: %s" % (args, r.stderr))
        self.assertEqual(r.stderr, "")
        return r.stdout

    def fails(self, code, *args, **kwargs):
        r = self.ctl(*args, **kwargs)
        self.assertEqual(r.returncode, code,
                         "%s: stdout %r stderr %r" % (args, r.stdout, r.stderr))
        return r

    def new_realm(self):
        PresencectlTest._next += 1
        sub = "r%d-%d" % (os.getpid(), PresencectlTest._next)
        out = self.ok("realm", "create", sub, "Realm " + sub)
        self.assertRegex(out, r"^realm_id [0-9]+\n$")
        return sub, int(out.split()[1])

    def new_user(self, realm_id, email, *flags):
        out = self.ok("user", "create", str(realm_id), email, *flags)
        lines = out.splitlines()
        self.assertEqual(len(lines), 2, out)
        self.assertRegex(lines[0], r"^user_id [0-9]+$")
        self.assertRegex(lines[1], r"^api_key [A-Za-z0-9]{20,}$")
        return int(lines[0].split()[1]), lines[1].split()[1]

    def ping(self, sub, email, key):
        return zulip_call(self.server.url, "POST", "/api/v1/users/me/presence",
                          email, key, sub + ".localhost",
                          {"status": "active", "slim_presence": "true"})

    def realm_json(self, realm_id):
        out = self.ok("--json", "realm", "list")
        answer = json.loads(out)
        self.assertEqual(answer["result"], "success")
        for r in answer["realms"]:
            if r["realm_id"] == realm_id:
                return r
        self.fail("realm %d not listed: %s" % (realm_id, out))

    # --- realm ---------------------------------------------------------------

    def test_realm_create_list_and_presence_disabled(self):
        sub, realm_id = self.new_realm()
        self.new_user(realm_id, "a@example.com")
        listing = self.ok("realm", "list").splitlines()
        self.assertEqual(listing[0].split(),
                         ["REALM_ID", "USERS", "PRESENCE", "SUBDOMAIN", "NAME"])
        rows = [l.split() for l in listing[1:]]
        self.assertIn([str(realm_id), "1", "enabled", sub, "Realm", sub], rows)

        self.assertEqual(
            self.ok("realm", "presence-disabled", str(realm_id), "true"),
            "presence_disabled true\n")
        self.assertTrue(self.realm_json(realm_id)["presence_disabled"])
        self.assertEqual(
            self.ok("realm", "presence-disabled", str(realm_id), "false"),
            "presence_disabled false\n")
        self.assertFalse(self.realm_json(realm_id)["presence_disabled"])

        r = self.fails(2, "realm", "presence-disabled", str(realm_id), "maybe")
        self.assertIn("maybe", r.stderr)
        r = self.fails(1, "realm", "presence-disabled", "999999", "true")
        self.assertEqual(r.stderr, "presencectl: realm not found (HTTP 404)\n")

    def test_duplicate_realm_is_server_error(self):
        sub, _ = self.new_realm()
        r = self.fails(1, "realm", "create", sub, "Again")
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr,
                         "presencectl: realm already exists (HTTP 409)\n")

    def test_invalid_realm_shows_server_message(self):
        r = self.fails(1, "realm", "create", "Bad_Sub", "Name")
        self.assertRegex(r.stderr, r"^presencectl: Invalid realm: .* \(HTTP 400\)\n$")

    def test_json_prints_server_answer(self):
        PresencectlTest._next += 1
        sub = "j%d-%d" % (os.getpid(), PresencectlTest._next)
        # --json also works after the subcommand.
        out = self.ok("realm", "create", sub, "J", "--json")
        answer = json.loads(out)
        self.assertEqual(answer["result"], "success")
        self.assertIsInstance(answer["realm_id"], int)
        # Error answers are printed too (stdout), with the message on stderr.
        r = self.fails(1, "realm", "create", sub, "J", "--json")
        self.assertEqual(json.loads(r.stdout)["code"], "ALREADY_EXISTS")
        self.assertEqual(r.stderr,
                         "presencectl: realm already exists (HTTP 409)\n")

    # --- user ----------------------------------------------------------------

    def test_user_create_prints_a_working_key_and_clock_set(self):
        sub, realm_id = self.new_realm()
        user_id, key = self.new_user(realm_id, "alice@example.com",
                                     "--full-name", "Alice Liddell",
                                     "--role", "administrator")
        self.assertGreater(user_id, 0)
        self.assertEqual(self.ok("clock", "set", "1700000000"),
                         "now 1700000000\n")
        status, body = self.ping(sub, "alice@example.com", key)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"], "success")
        self.assertAlmostEqual(body["server_timestamp"], 1700000000, places=3)

        out = self.ok("--json", "clock", "set", "1700000100.5")
        self.assertEqual(json.loads(out)["now"], 1700000100.5)
        self.assertEqual(self.ok("clock", "set", "1700000200.25"),
                         "now 1700000200.25\n")
        status, body = self.ping(sub, "alice@example.com", key)
        self.assertAlmostEqual(body["server_timestamp"], 1700000200.25, places=3)

        # A wrong key is refused, so the printed one is not just any string.
        status, _ = self.ping(sub, "alice@example.com", "x" * len(key))
        self.assertEqual(status, 401)

    def test_duplicate_email_is_server_error(self):
        _, realm_id = self.new_realm()
        self.new_user(realm_id, "dup@example.com")
        r = self.fails(1, "user", "create", str(realm_id), "dup@example.com")
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr,
                         "presencectl: user already exists (HTTP 409)\n")

    def test_user_create_options(self):
        _, realm_id = self.new_realm()
        out = self.ok("--json", "user", "create", str(realm_id),
                      "bot@example.com", "--bot", "--limited-access",
                      "--role", "guest", "--full-name", "Build Bot")
        answer = json.loads(out)
        self.assertEqual(answer["result"], "success")
        self.assertIsInstance(answer["user_id"], int)
        self.assertTrue(answer["api_key"])
        r = self.fails(2, "user", "create", str(realm_id), "x@example.com",
                       "--role", "emperor")
        self.assertIn("emperor", r.stderr)
        r = self.fails(1, "user", "create", str(realm_id), "not-an-email")
        self.assertRegex(r.stderr, r"^presencectl: Invalid user: .*\(HTTP 400\)\n$")
        r = self.fails(1, "user", "create", "999999", "y@example.com")
        self.assertEqual(r.stderr, "presencectl: realm not found (HTTP 404)\n")

    def test_user_deactivate_reactivate_and_set(self):
        sub, realm_id = self.new_realm()
        user_id, key = self.new_user(realm_id, "d@example.com")
        rid, uid = str(realm_id), str(user_id)

        self.assertEqual(self.ok("user", "deactivate", rid, uid),
                         "is_active false\n")
        status, _ = self.ping(sub, "d@example.com", key)
        self.assertEqual(status, 401)
        self.assertEqual(self.ok("user", "reactivate", rid, uid),
                         "is_active true\n")
        status, _ = self.ping(sub, "d@example.com", key)
        self.assertEqual(status, 200)

        self.assertEqual(
            self.ok("user", "set", rid, uid, "--role", "moderator",
                    "--presence-enabled", "false"),
            "role moderator\npresence_enabled false\n")
        self.assertEqual(self.ok("user", "set", rid, uid, "--role", "member"),
                         "role member\n")
        self.assertEqual(
            self.ok("user", "set", rid, uid, "--presence-enabled", "true"),
            "presence_enabled true\n")

        r = self.fails(2, "user", "set", rid, uid)
        self.assertIn("--role", r.stderr)
        self.fails(2, "user", "set", rid, uid, "--presence-enabled", "yes")
        r = self.fails(1, "user", "deactivate", rid, "999999")
        self.assertEqual(r.stderr, "presencectl: user not found (HTTP 404)\n")
        r = self.fails(1, "user", "reactivate", "999999", uid)
        self.assertEqual(r.stderr, "presencectl: realm not found (HTTP 404)\n")

    # --- access --------------------------------------------------------------

    def test_access_set_limits_what_a_viewer_sees(self):
        sub, realm_id = self.new_realm()
        users = {}
        for name in ("alice", "bob"):
            users[name] = self.new_user(realm_id, name + "@example.com")
        # Zulip limits guests only: --limited-access needs --role guest.
        users["carol"] = self.new_user(realm_id, "carol@example.com",
                                       "--role", "guest", "--limited-access")
        for name, (_, key) in users.items():
            status, body = self.ping(sub, name + "@example.com", key)
            self.assertEqual(status, 200, body)
        rid = str(realm_id)
        carol_id = str(users["carol"][0])
        alice_id = str(users["alice"][0])

        self.assertEqual(self.ok("access", "set", rid, carol_id, alice_id),
                         "visible %s\n" % alice_id)
        status, body = zulip_call(self.server.url, "GET", "/api/v1/realm/presence",
                                  "carol@example.com", users["carol"][1],
                                  sub + ".localhost")
        self.assertEqual(status, 200, body)
        self.assertIn("alice@example.com", body["presences"])
        self.assertNotIn("bob@example.com", body["presences"])

        self.assertEqual(self.ok("access", "set", rid, carol_id),
                         "visible none\n")
        r = self.fails(1, "access", "set", rid, carol_id, "999999")
        self.assertEqual(
            r.stderr,
            "presencectl: visible names a user not in this realm (HTTP 400)\n")
        self.fails(2, "access", "set", rid, carol_id, "abc")
        self.fails(2, "access", "set", rid)

    # --- global options, tokens, URLs -----------------------------------------

    def test_wrong_token_is_server_error_401(self):
        r = self.fails(1, "realm", "list", token="wrong-token")
        self.assertEqual(r.stdout, "")
        self.assertEqual(
            r.stderr, "presencectl: Invalid or missing admin token (HTTP 401)\n")

    def test_token_sources(self):
        env_free = {"token": None}
        self.ok("--token", TOKEN, "realm", "list", **env_free)
        with tempfile.NamedTemporaryFile("w", suffix=".token") as f:
            f.write(TOKEN + "\n")  # trailing newline is trimmed
            f.flush()
            self.ok("--token-file", f.name, "realm", "list", **env_free)
            # --token-file wins over the environment.
            self.ok("--token-file", f.name, "realm", "list", token="wrong")
            r = self.fails(2, "--token", TOKEN, "--token-file", f.name,
                           "realm", "list")
            self.assertIn("excludes", r.stderr)
        r = self.fails(2, "realm", "list", **env_free)
        self.assertIn("no admin token", r.stderr)
        r = self.fails(2, "--token-file", "/nonexistent/token", "realm", "list")
        self.assertIn("/nonexistent/token", r.stderr)
        self.fails(2, "realm", "list", token="a\x01b")

    def test_server_from_environment(self):
        out = run_ctl("realm", "list", env={"PRESENCECTL_SERVER": self.server.url})
        self.assertEqual(out.returncode, 0, out.stderr)
        # --server overrides the environment.
        dead = "http://127.0.0.1:%d" % free_port()
        r = run_ctl("realm", "list", server=self.server.url,
                    env={"PRESENCECTL_SERVER": dead})
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_ctl("realm", "list", env={"PRESENCECTL_SERVER": dead})
        self.assertEqual(r.returncode, 3)
        self.assertIn(dead, r.stderr)

    def test_bad_urls_are_usage_errors(self):
        r = self.fails(2, "realm", "list",
                       server=self.server.url.replace("http:", "https:"))
        self.assertIn("https is not supported", r.stderr)
        for url in ("127.0.0.1:9991", "ftp://127.0.0.1/", "http://", "http://h:0",
                    "http://h:70000", "http://h:abc", "http://u:p@h:1",
                    "http://h:1/?q=1"):
            r = self.fails(2, "realm", "list", server=url)
            self.assertIn("bad server URL", r.stderr, url)

    def test_usage_errors(self):
        self.fails(2)
        self.fails(2, "realm")
        self.fails(2, "frobnicate")
        self.fails(2, "realm", "create", "only-one-arg")
        self.fails(2, "user", "deactivate", "1", "abc")
        self.fails(2, "user", "deactivate", "1", "0")
        self.fails(2, "clock", "set", "soon")
        self.fails(2, "--timeout", "0", "realm", "list")
        r = self.ctl("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("realm", r.stdout)


class ServerLifecycleTest(unittest.TestCase):
    """A server without --test-clock; SIGTERM; presencectl once it is gone."""

    def test_clock_refused_then_sigterm_then_unreachable(self):
        server = Presenced()
        try:
            r = run_ctl("clock", "set", "1700000000", server=server.url)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(
                r.stderr, "presencectl: Not Found (start presenced with "
                "--test-clock) (HTTP 404)\n")
            r = run_ctl("realm", "create", "life", "Life", server=server.url)
            self.assertEqual((r.returncode, r.stdout), (0, "realm_id 1\n"))
        except BaseException:
            server.kill()
            raise
        self.assertEqual(server.stop(), 0)

        r = run_ctl("realm", "list", server=server.url)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertIn("cannot connect to " + server.url, r.stderr)

    def test_no_answer_times_out(self):
        with socket.socket() as listener:
            # Accepted by the kernel, never answered.
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            url = "http://127.0.0.1:%d" % listener.getsockname()[1]
            start = time.monotonic()
            r = run_ctl("--timeout", "0.5", "realm", "list", server=url)
            elapsed = time.monotonic() - start
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("timed out after 500 ms", r.stderr)
        self.assertLess(elapsed, 20)


class FakeAdminServer(http.server.ThreadingHTTPServer):
    """Records each request and answers with a canned status and body."""

    def __init__(self):
        self.requests = []
        self.answer = (200, "application/json", b'{"result":"success","msg":""}')
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self):
                n = int(self.headers.get("Content-Length") or 0)
                fake.requests.append({
                    "method": self.command, "path": self.path,
                    "headers": dict(self.headers),
                    "body": self.rfile.read(n).decode()})
                status, ctype, body = fake.answer
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = _serve

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self.shutdown()
        self.server_close()


class RequestShapeTest(unittest.TestCase):
    """The exact requests presencectl sends, and odd answers."""

    def setUp(self):
        self.fake = FakeAdminServer()
        self.addCleanup(self.fake.close)

    def sent(self, *args, base=""):
        r = run_ctl(*args, server=self.fake.url + base)
        self.assertEqual(r.returncode, 0, r.stderr)
        req = self.fake.requests.pop()
        body = json.loads(req["body"]) if req["body"] else None
        return req, body

    def test_requests(self):
        self.fake.answer = (200, "application/json",
                            b'{"result":"success","msg":"","user_id":7,'
                            b'"api_key":"k"}')
        req, body = self.sent("user", "create", "3", "e@example.com",
                              "--bot", "--limited-access", "--role", "guest",
                              "--full-name", "E E", base="/prefix/")
        self.assertEqual((req["method"], req["path"]),
                         ("POST", "/prefix/admin/v1/realms/3/users"))
        self.assertEqual(req["headers"]["Authorization"], "Bearer " + TOKEN)
        self.assertEqual(req["headers"]["Content-Type"], "application/json")
        self.assertEqual(body, {"email": "e@example.com", "is_bot": True,
                                "can_access_all_users": False, "role": "guest",
                                "full_name": "E E"})
        _, body = self.sent("user", "create", "3", "f@example.com")
        self.assertEqual(body, {"email": "f@example.com", "is_bot": False,
                                "can_access_all_users": True})

        self.fake.answer = (200, "application/json",
                            b'{"result":"success","msg":""}')
        cases = [
            (("realm", "create", "", "Root"), "POST", "/admin/v1/realms",
             {"subdomain": "", "name": "Root"}),
            (("realm", "presence-disabled", "4", "true"), "PATCH",
             "/admin/v1/realms/4", {"presence_disabled": True}),
            (("user", "deactivate", "4", "5"), "PATCH",
             "/admin/v1/realms/4/users/5", {"is_active": False}),
            (("user", "reactivate", "4", "5"), "PATCH",
             "/admin/v1/realms/4/users/5", {"is_active": True}),
            (("user", "set", "4", "5", "--presence-enabled", "false"), "PATCH",
             "/admin/v1/realms/4/users/5", {"presence_enabled": False}),
            (("access", "set", "4", "5", "6", "7"), "POST",
             "/admin/v1/realms/4/access", {"viewer": 5, "visible": [6, 7]}),
            (("access", "set", "4", "5"), "POST", "/admin/v1/realms/4/access",
             {"viewer": 5, "visible": []}),
            (("clock", "set", "1700000000"), "POST", "/admin/v1/clock",
             {"now": 1700000000}),
            (("--json", "realm", "list"), "GET", "/admin/v1/realms", None),
        ]
        for args, method, path, want in cases:
            # The realm create answer has no realm_id: only --json is happy.
            req, body = self.sent("--json", *args)
            self.assertEqual((req["method"], req["path"], body),
                             (method, path, want), args)

    def test_non_json_and_malformed_answers(self):
        self.fake.answer = (502, "text/html", b"<html>Bad Gateway</html>\n")
        r = run_ctl("realm", "list", server=self.fake.url)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr,
                         "presencectl: server error (HTTP 502): "
                         "<html>Bad Gateway</html>\n")
        self.fake.answer = (200, "application/json", b'{"result":"success"}')
        r = run_ctl("realm", "create", "x", "X", server=self.fake.url)
        self.assertEqual(r.returncode, 1)
        self.assertIn("unexpected answer from the server: no integer 'realm_id'",
                      r.stderr)
        self.fake.answer = (200, "text/plain", b"ok")
        r = run_ctl("realm", "list", server=self.fake.url)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a JSON object (HTTP 200)", r.stderr)


if __name__ == "__main__":
    unittest.main()
