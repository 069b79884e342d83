#!/usr/bin/env python3
"""presence-top driven in a real terminal: tmux (Debian's) runs it against a
real presenced on 127.0.0.1; the test types with send-keys and reads the
screen with capture-pane.

Needs PRESENCED_BINARY and PRESENCE_TOP_BINARY (CTest sets both; otherwise
build/debug/...) and tmux (scripts/install-deps.sh). A missing tmux fails
the test: it is not skipped.

Run: python3 tests/tools/test_presence_top.py -v   (or: ctest -R presence_top)
"""

import base64
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ADMIN_TOKEN = "presence-top-test-token-0123456789abcdef"
DAY = 86400


def binary(env, default):
    path = os.environ.get(env) or os.path.join(REPO, "build", "debug", default)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{default} not found at {path} (build it or set {env})")
    return path


class Server:
    """presenced --test-clock on 127.0.0.1:0 with a throw-away data dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="presence-top-test-")
        env = dict(os.environ, PRESENCED_ADMIN_TOKEN=ADMIN_TOKEN)
        self.stderr = open(os.path.join(self.dir, "stderr"), "wb")
        self.proc = subprocess.Popen(
            [binary("PRESENCED_BINARY", "presenced"), "--listen", "127.0.0.1:0",
             "--data", self.dir, "--test-clock"],
            stdout=subprocess.PIPE, stderr=self.stderr, env=env)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"listening on (http://127\.0\.0\.1:(\d+))", line)
        if not m:
            self.stop()
            raise RuntimeError(f"presenced did not start: {line!r}")
        self.url, self.port = m.group(1), int(m.group(2))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def request(self, method, path, headers, body=b""):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def admin(self, method, path, obj):
        status, body = self.request(
            method, "/admin/v1" + path,
            {"Authorization": "Bearer " + ADMIN_TOKEN,
             "Content-Type": "application/json"},
            json.dumps(obj).encode())
        assert status == 200, (path, status, body)
        return body

    def set_clock(self, now):
        self.admin("POST", "/clock", {"now": now})

    def api(self, user, method, path, params=None):
        auth = base64.b64encode(f"{user['email']}:{user['key']}".encode()).decode()
        headers = {"Authorization": "Basic " + auth}
        body = b""
        if method == "GET":
            if params:
                path += "?" + urllib.parse.urlencode(params)
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urllib.parse.urlencode(params or {}).encode()
        return self.request(method, "/api/v1" + path, headers, body)

    def report(self, user, status):
        code, body = self.api(user, "POST", "/users/me/presence",
                              {"status": status, "ping_only": "true"})
        assert code == 200, body


class Tmux:
    """A private tmux server (own socket, no user config)."""

    def __init__(self):
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed (scripts/install-deps.sh)")
        self.socket = f"presence-top-test-{os.getpid()}"

    def run(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                              check=check, capture_output=True, text=True)

    def start(self, command, env, width=120, height=30):
        env_args = []
        for k, v in env.items():
            env_args += ["-e", f"{k}={v}"]
        # The shell line reports the exit status after the program ends, and
        # keeps the pane open so that the test can read it.
        self.run("new-session", "-d", "-s", "top", "-x", str(width), "-y",
                 str(height), *env_args,
                 f"{command}; echo \"presence-top exited with $?\"; sleep 600")

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "top").stdout

    def keys(self, *keys):
        self.run("send-keys", "-t", "top", *keys)

    def kill(self):
        self.run("kill-server", check=False)

    def wait_for(self, predicate, timeout=30, what="screen"):
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; screen was:\n{screen}")


ROW = re.compile(r"^\S\s+(active|idle|offline)\s+(.+?)\s{2,}(\S+@\S+)\s{2,}(.+?)\s*$")


def rows(screen):
    """(status, name, email, last active) for each user row on screen."""
    out = []
    for line in screen.splitlines():
        m = ROW.match(line)
        if m:
            out.append(tuple(g.strip() for g in m.groups()))
    return out


class PresenceTopTest(unittest.TestCase):
    def setUp(self):
        self.server = Server()
        self.addCleanup(self.server.stop)
        self.tmux = Tmux()
        self.addCleanup(self.tmux.kill)
        # Everyone joined three days ago (date_joined follows the test
        # clock): clients show max(last active, date_joined) for offline
        # users, as Zulip's web app does.
        self.t0 = float(int(time.time()))
        self.server.set_clock(self.t0 - 3 * DAY)
        realm = self.server.admin("POST", "/realms", {"subdomain": "", "name": "Acme"})
        self.users = {}
        for name in ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank"]:
            email = name.lower() + "@example.com"
            u = self.server.admin("POST", f"/realms/{realm['realm_id']}/users",
                                  {"email": email, "full_name": name})
            self.users[name] = {"email": email, "key": u["api_key"], "id": u["user_id"]}
        # History on the server's clock (now = t0 + 300):
        #   Erin   active two days ago                    -> offline, "2 days ago"
        #   Carol  active at t0, idle reports at t0 + 300 -> idle
        #   Dave   active at t0, nothing since            -> offline, "5 minutes ago"
        #   Bob    active at t0 + 300                     -> active
        #   Frank  never                                  -> offline, "Not active recently"
        self.server.set_clock(self.t0 + 300 - 2 * DAY)
        self.server.report(self.users["Erin"], "active")
        self.server.set_clock(self.t0)
        self.server.report(self.users["Carol"], "active")
        self.server.report(self.users["Dave"], "active")
        self.server.set_clock(self.t0 + 300)
        self.server.report(self.users["Carol"], "idle")
        self.server.report(self.users["Bob"], "active")

    def start_top(self, user="Alice", key=None, **size):
        top = binary("PRESENCE_TOP_BINARY", "presence-top")
        self.tmux.start(
            f"{top} --server {self.server.url} --email {self.users[user]['email']}",
            {"PRESENCE_API_KEY": key or self.users[user]["key"], "NO_COLOR": "1"},
            **size)

    def test_shows_users_sorted_with_last_active_and_follows_events(self):
        self.start_top()
        screen = self.tmux.wait_for(lambda s: len(rows(s)) == 6, what="six rows")
        self.assertIn("connected", screen.splitlines()[0])
        self.assertIn("2 active  1 idle  3 offline", screen)
        self.assertEqual(rows(screen), [
            ("active", "Alice (you)", "alice@example.com", "Active now"),
            ("active", "Bob", "bob@example.com", "Active now"),
            ("idle", "Carol", "carol@example.com", "Idle"),
            ("offline", "Dave", "dave@example.com", "5 minutes ago"),
            ("offline", "Erin", "erin@example.com", "2 days ago"),
            ("offline", "Frank", "frank@example.com", "Not active recently"),
        ])

        # presence-top reports for its user like any client: the server
        # knows Alice is here.
        code, body = self.server.api(self.users["Bob"], "GET",
                                     f"/users/{self.users['Alice']['id']}/presence")
        self.assertEqual(code, 200, body)
        self.assertEqual(body["presence"]["aggregated"]["status"], "active")

        # Frank comes online and Dave comes back: events, shown at once (the
        # next regular report is a minute away), re-sorted by name.
        self.server.report(self.users["Frank"], "active")
        self.server.report(self.users["Dave"], "active")
        screen = self.tmux.wait_for(
            lambda s: [r[1] for r in rows(s)] ==
            ["Alice (you)", "Bob", "Dave", "Frank", "Carol", "Erin"],
            timeout=10, what="Dave and Frank active")
        self.assertIn("4 active  1 idle  1 offline", screen)
        self.assertEqual(rows(screen)[3],
                         ("active", "Frank", "frank@example.com", "Active now"))

        # Any key is input; 'q' quits and gives the terminal back.
        self.tmux.keys("x")
        self.tmux.keys("q")
        screen = self.tmux.wait_for(lambda s: "presence-top exited with 0" in s,
                                    timeout=10, what="exit")
        self.assertNotIn("STATUS", screen)  # the alternate screen is gone

    def test_narrow_terminal_drops_the_email_column(self):
        self.start_top(width=50, height=20)
        screen = self.tmux.wait_for(lambda s: "Frank" in s, what="rows")
        for line in screen.splitlines():
            self.assertLessEqual(len(line), 50, line)
        self.assertNotIn("EMAIL", screen)
        self.assertNotIn("bob@example.com", screen.split("\n", 1)[1])
        self.tmux.keys("q")
        self.tmux.wait_for(lambda s: "exited with 0" in s, what="exit")

    def test_redraws_on_resize(self):
        self.start_top(width=120, height=30)
        self.tmux.wait_for(lambda s: "EMAIL" in s, what="wide screen")
        self.tmux.run("set-option", "-t", "top", "window-size", "manual")
        self.tmux.run("resize-window", "-t", "top", "-x", "50", "-y", "20")
        self.tmux.wait_for(lambda s: "EMAIL" not in s and "Frank" in s,
                           timeout=10, what="narrow redraw")
        self.tmux.keys("q")
        self.tmux.wait_for(lambda s: "exited with 0" in s, what="exit")

    def test_wrong_api_key_exits_with_the_servers_reason(self):
        self.start_top(key="x" * 32)
        screen = self.tmux.wait_for(lambda s: "exited with" in s, what="exit")
        self.assertIn("presence-top exited with 1", screen)
        self.assertIn("Invalid API key", screen)

    def test_missing_arguments_are_a_usage_error(self):
        top = binary("PRESENCE_TOP_BINARY", "presence-top")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRESENCE_")}
        p = subprocess.run([top, "--server", self.server.url], env=env,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--email", p.stderr)


if __name__ == "__main__":
    unittest.main()
