"""The reverse-proxy example (deploy/nginx/presenced.conf) checked by nginx.

- The whole example, TLS included, passes `nginx -t` with a throwaway
  self-signed certificate made here by the openssl command line.
- The proxy settings do what the README promises, seen from a recording
  upstream: the client's Host (with its port) passed on, the client address
  in X-Real-IP and appended to X-Forwarded-For, HTTP/1.1 with connections
  kept alive, the body limit, operator paths not served.
- Long polls outlast the server's heartbeat: the events location's read
  timeout is above presenced's default --heartbeat-seconds.

The Zulip suites themselves run through the proxy as the ctest entries
blackbox_nginx.* (PRESENCED_BLACKBOX_PROXY=nginx, see proxy.py).
"""

import http.client
import http.server
import os
import re
import shutil
import subprocess
import threading
import unittest

import harness
import proxy


def duration_seconds(text):
    """An nginx time ("90s", "2m", "90") in seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", text)
    if not m:
        raise AssertionError(f"not an nginx time: {text!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    return int(m.group(1)) * scale


def make_certificate(directory):
    """A self-signed certificate and key for the example's names; returns
    (cert path, key path)."""
    cert = os.path.join(directory, "fullchain.pem")
    key = os.path.join(directory, "privkey.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=chat.example.org",
         "-addext",
         "subjectAltName=DNS:chat.example.org,DNS:*.chat.example.org"],
        check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    proxy.give_to_nginx(cert)
    proxy.give_to_nginx(key)
    return cert, key


def loopback_listens(text):
    """`text` with each `listen PORT ...` on a free loopback port instead
    (nginx -t binds them, and an unprivileged one cannot bind 80 or 443);
    the IPv6 twins are left out. Flags such as `ssl http2` stay."""
    ports = {}

    def repl(m):
        if m.group(1).startswith("["):
            return ""
        port = ports.setdefault(m.group(1), proxy.free_port())
        return f"listen 127.0.0.1:{port}{m.group(2)};"

    return re.sub(r"listen\s+(\S+?)((?:\s+[a-z0-9_]+)*)\s*;", repl, text)


class TlsExampleTest(unittest.TestCase):
    def setUp(self):
        self.dir = proxy.make_private_dir("presenced-nginx-tls-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def check(self, site):
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(proxy.main_config(self.dir, site))
        proxy.give_to_nginx(conf)
        return proxy.nginx_test(conf, self.dir)

    def test_whole_example_passes_nginx_t_with_a_real_certificate(self):
        cert, key = make_certificate(self.dir)
        text = proxy.example_text()
        self.assertIn("/etc/ssl/presenced/fullchain.pem", text)
        self.assertIn("/etc/ssl/presenced/privkey.pem", text)
        site = (text.replace("/etc/ssl/presenced/fullchain.pem", cert)
                .replace("/etc/ssl/presenced/privkey.pem", key))
        rc, out = self.check(loopback_listens(site))
        self.assertEqual(rc, 0, out)

    def test_nginx_t_does_check_the_certificate(self):
        # Without this, the test above could pass on a file nginx never
        # opened.
        text = proxy.example_text().replace(
            "/etc/ssl/presenced/fullchain.pem",
            os.path.join(self.dir, "missing.pem"))
        rc, out = self.check(text)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("missing.pem", out)

    def test_events_read_timeout_outlasts_the_heartbeat(self):
        # The server's own default, from its --help text.
        help_text = subprocess.run(
            [harness.binary_path(), "--help"], capture_output=True,
            text=True, timeout=30).stdout
        m = re.search(r"--heartbeat-seconds\D*?(\d+)", help_text)
        self.assertIsNotNone(m, help_text)
        heartbeat = int(m.group(1))
        site = proxy.plain_http_site(1, 2)
        events = proxy.blocks(
            site.split("server {", 1)[1], r"location\s*=\s*/api/v1/events")
        self.assertEqual(len(events), 1, site)
        self.assertIn("proxy_buffering off;", events[0])
        m = re.search(r"proxy_read_timeout\s+(\S+);", events[0])
        self.assertIsNotNone(m, events[0])
        self.assertGreater(duration_seconds(m.group(1)), heartbeat + 5)


class Recorder(http.server.BaseHTTPRequestHandler):
    """Upstream that answers 200 {} and records what reached it."""

    protocol_version = "HTTP/1.1"
    seen = []

    def handle_one(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        Recorder.seen.append({
            "method": self.command, "path": self.path,
            "version": self.request_version,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "peer": self.client_address, "body_len": len(body)})
        out = b'{"result":"success","msg":""}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PATCH = do_DELETE = handle_one

    def log_message(self, *args):
        pass


class ProxySettingsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        Recorder.seen = []
        cls.upstream = http.server.ThreadingHTTPServer(
            (harness.LOOPBACK, 0), Recorder)
        cls.thread = threading.Thread(target=cls.upstream.serve_forever,
                                      daemon=True)
        cls.thread.start()
        cls.nginx = proxy.Nginx(cls.upstream.server_address[1]).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.nginx.stop()
            cls.nginx.cleanup()
        finally:
            cls.upstream.shutdown()
            cls.upstream.server_close()

    def setUp(self):
        Recorder.seen.clear()

    def send(self, method, path, headers=(), body=b"", host=None):
        return harness.http_request(self.nginx.port, method, path,
                                    list(headers), body, host=host)

    def test_host_and_client_address_are_passed_on(self):
        host = f"acme.chat.example.org:{self.nginx.port}"
        r = self.send("POST", "/api/v1/users/me/presence",
                      [("X-Forwarded-For", "127.0.0.9")], b"status=active",
                      host=host)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(Recorder.seen), 1, Recorder.seen)
        got = Recorder.seen[0]
        self.assertEqual(got["path"], "/api/v1/users/me/presence")
        self.assertEqual(got["headers"]["host"], host)
        self.assertEqual(got["headers"]["x-real-ip"], "127.0.0.1")
        # The client's own list, then the address nginx saw.
        self.assertEqual(got["headers"]["x-forwarded-for"],
                         "127.0.0.9, 127.0.0.1")
        self.assertEqual(got["headers"]["x-forwarded-proto"], "http")
        self.assertEqual(got["body_len"], len(b"status=active"))

    def test_upstream_connections_are_http11_and_kept_alive(self):
        for _ in range(3):
            r = self.send("GET", "/api/v1/realm/presence",
                          host="acme.chat.example.org")
            self.assertEqual(r.status, 200, r)
        self.assertEqual(len(Recorder.seen), 3)
        for got in Recorder.seen:
            self.assertEqual(got["version"], "HTTP/1.1")
            self.assertNotEqual(got["headers"].get("connection", "").lower(),
                                "close", got)
        # Three client connections, one upstream connection reused.
        self.assertEqual(len({g["peer"] for g in Recorder.seen}), 1,
                         Recorder.seen)

    def test_long_poll_path_is_proxied_with_its_query(self):
        r = self.send("GET", "/api/v1/events?queue_id=q&last_event_id=-1",
                      host="acme.chat.example.org")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(Recorder.seen[0]["path"],
                         "/api/v1/events?queue_id=q&last_event_id=-1")

    def test_body_over_the_limit_is_refused_at_the_proxy(self):
        r = self.send("POST", "/api/v1/users/me/presence",
                      [("Content-Type", "application/x-www-form-urlencoded")],
                      b"x" * (1024 * 1024 + 1), host="acme.chat.example.org")
        self.assertEqual(r.status, 413, r)
        self.assertEqual(Recorder.seen, [])

    def test_operator_paths_are_not_served(self):
        for path in ("/admin/v1/realms", "/metrics", "/healthz"):
            r = self.send("GET", path, host="acme.chat.example.org")
            self.assertEqual(r.status, 404, (path, r))
        self.assertEqual(Recorder.seen, [])


if __name__ == "__main__":
    unittest.main()
