"""Limits, faults, operability and the admin surface (issue: hardening).

Each test class starts its own presenced with the flags it needs; every
address is 127.0.0.1.
"""

import os
import re
import socket
import time
import unittest

import harness
from bbtest import ServerTestCase
from harness import LOOPBACK, http_request


def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def read_until_closed(sock, timeout):
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return data, True
            data += chunk
    except ConnectionResetError:
        # The server cut the connection (a reset when unread bytes were
        # left in its buffer): closed, as far as the client can tell.
        return data, True
    except socket.timeout:
        return data, False


class MetricsTest(ServerTestCase):
    def test_metrics_count_requests_pings_and_queues(self):
        r = self.realm()
        a = r.create_user()
        for _ in range(3):
            a.client.ping()
        a.client.raw("POST", "/register", {}, validate=False)
        resp = http_request(self.server.port, "GET", "/metrics")
        self.assertEqual(resp.status, 200)
        self.assertIn("text/plain", resp.header("Content-Type"))
        text = resp.body.decode()
        lines = {l.rsplit(" ", 1)[0]: l.rsplit(" ", 1)[1]
                 for l in text.splitlines() if l and not l.startswith("#")}
        key = ('presenced_requests_total{endpoint="post_users_me_presence",'
               'status="2xx"}')
        self.assertGreaterEqual(int(lines[key]), 3, text)
        self.assertGreaterEqual(int(lines["presenced_pings_total"]), 3)
        self.assertGreaterEqual(float(lines["presenced_event_queues"]), 1)
        self.assertIn("presenced_parked_polls", lines)
        self.assertEqual(lines["presenced_store_failed"], "0")
        self.assertIn('presenced_request_duration_seconds_bucket{endpoint='
                      '"post_users_me_presence",le="+Inf"}', lines)


def metrics_samples(port):
    """/metrics as text, and its samples by name (labels included)."""
    text = http_request(port, "GET", "/metrics").body.decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return text, out


class LoopLagTest(ServerTestCase):
    """How long a readable request waits for its I/O thread, and whether
    for work or for a core (issue #17, pings first)."""

    def samples(self):
        return metrics_samples(self.server.port)

    def test_loop_lag_histogram_and_io_thread_times(self):
        # The probes tick every 10 ms per I/O thread; the thread times are
        # sampled about once a second (the first sample is the baseline).
        want_times = os.path.exists("/proc/thread-self/schedstat")
        deadline = time.monotonic() + 20
        while True:
            text, g = self.samples()
            ready = g.get("presenced_io_loop_lag_seconds_count", 0) >= 50
            if want_times:
                ready = ready and (
                    "presenced_io_thread_cpu_seconds_total" in g)
            if ready:
                break
            self.assertLess(time.monotonic(), deadline, text)
            time.sleep(0.1)
        self.assertIn("# TYPE presenced_io_loop_lag_seconds histogram", text)
        self.assertEqual(g['presenced_io_loop_lag_seconds_bucket{le="+Inf"}'],
                         g["presenced_io_loop_lag_seconds_count"])
        # An idle server runs its timers about on time.
        self.assertLess(g["presenced_io_loop_lag_seconds_sum"] /
                        g["presenced_io_loop_lag_seconds_count"], 0.5, text)
        if not want_times:
            # Without the kernel's schedstat the thread times are left out,
            # not exported as zeros.
            self.assertNotIn("presenced_io_thread_cpu_seconds_total", text)
            return
        self.assertIn("# TYPE presenced_io_thread_cpu_wait_seconds_total "
                      "counter", text)
        self.assertGreaterEqual(
            g["presenced_io_thread_cpu_wait_seconds_total"], 0)
        self.assertGreater(g["presenced_io_thread_cpu_seconds_total"], 0)

    def test_flush_thread_times(self):
        # The flush thread reads its times after each turn (every
        # --flush-interval-ms, 1 s by default), with rows to commit or not.
        if not os.path.exists("/proc/thread-self/schedstat"):
            _, g = self.samples()
            self.assertNotIn("presenced_flush_thread_cpu_seconds_total", g)
            return
        deadline = time.monotonic() + 20
        while True:
            text, g = self.samples()
            if g.get("presenced_flush_thread_cpu_seconds_total", 0) > 0:
                break
            self.assertLess(time.monotonic(), deadline, text)
            time.sleep(0.1)
        self.assertIn("# TYPE presenced_flush_thread_cpu_seconds_total "
                      "counter", text)
        self.assertGreaterEqual(
            g["presenced_flush_thread_cpu_wait_seconds_total"], 0)


def thread_names(pid):
    """{thread name: how many threads of the process have it}, from /proc."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().rstrip("\n")
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        out[name] = out.get(name, 0) + 1
    return out


class FlushThreadNameTest(unittest.TestCase):
    """The group-commit thread is named, so that top -H, ps -L and perf
    tell it from the I/O threads (issue #17 reads its CPU apart)."""

    def test_one_thread_is_named_presenced_flush(self):
        s = harness.Server(test_clock=False).start()
        try:
            # "listening on" is printed before the I/O threads start; they
            # are all spawned before any request is served, so one answer
            # means every thread to be counted below exists.
            self.assertEqual(s.request("GET", "/metrics").status, 200)
            deadline = time.monotonic() + 15
            while True:
                names = thread_names(s.proc.pid)
                if "presenced-flush" in names:
                    break
                self.assertLess(time.monotonic(), deadline, names)
                time.sleep(0.05)
            self.assertEqual(names["presenced-flush"], 1, names)
            # The main thread and the I/O threads (--threads 2) keep the
            # process's name.
            self.assertGreaterEqual(names.get("presenced", 0), 2, names)
        finally:
            s.stop()
            s.cleanup()


class MemoryGaugesTest(ServerTestCase):
    """The memory gauges the soak samples next to RSS (issue #6)."""

    server_kwargs = {"extra_args": ["--malloc-trim-seconds", "1"]}

    def gauges(self):
        return metrics_samples(self.server.port)

    def test_sqlite_memory_and_page_cache_are_reported(self):
        r = self.realm()
        for _ in range(5):
            r.create_user().client.ping()
        text, g = self.gauges()
        for name in ("presenced_sqlite_memory_used_bytes",
                     "presenced_sqlite_memory_highwater_bytes",
                     "presenced_sqlite_page_cache_bytes",
                     "presenced_sqlite_page_cache_limit_bytes"):
            self.assertIn(name, g, text)
            self.assertIn(f"# TYPE {name} gauge", text)
        self.assertGreater(g["presenced_sqlite_memory_used_bytes"], 0)
        self.assertGreaterEqual(g["presenced_sqlite_memory_highwater_bytes"],
                                g["presenced_sqlite_memory_used_bytes"])
        # The users above were written, so their pages are in the cache.
        self.assertGreater(g["presenced_sqlite_page_cache_bytes"], 0)
        # The page cache is part of SQLite's memory.
        self.assertLessEqual(g["presenced_sqlite_page_cache_bytes"],
                             g["presenced_sqlite_memory_used_bytes"])
        self.assertGreater(g["presenced_sqlite_page_cache_limit_bytes"], 0)

    def test_heap_gauges_add_up_when_reported(self):
        text, g = self.gauges()
        names = ("presenced_malloc_arena_bytes", "presenced_malloc_in_use_bytes",
                 "presenced_malloc_free_bytes",
                 "presenced_malloc_releasable_bytes",
                 "presenced_malloc_mmap_bytes", "presenced_malloc_arenas")
        # glibc's figures, or (ASan build) the sanitizer allocator's.
        present = [n for n in names if n in g]
        self.assertEqual(present, list(names), text)
        self.assertGreater(g["presenced_malloc_in_use_bytes"], 0)
        self.assertEqual(g["presenced_malloc_arena_bytes"],
                         g["presenced_malloc_in_use_bytes"] +
                         g["presenced_malloc_free_bytes"])
        self.assertLessEqual(g["presenced_malloc_releasable_bytes"],
                             g["presenced_malloc_free_bytes"])
        self.assertGreaterEqual(g["presenced_malloc_arenas"], 1)

    def test_heap_is_looked_at_every_interval_and_trimmed_at_start(self):
        # The flush thread looks every --malloc-trim-seconds and trims only
        # when RSS grew since it last settled (HeapTrimPolicy, unit-tested
        # in util_tests); it always trims once as it starts.
        _, g = self.gauges()
        first = g["presenced_malloc_trim_checks_total"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            _, g = self.gauges()
            if (g["presenced_malloc_trim_checks_total"] >= first + 2 and
                    g["presenced_malloc_trims_total"] >= 1):
                break
            time.sleep(0.2)
        self.assertGreaterEqual(g["presenced_malloc_trim_checks_total"],
                                first + 2)
        self.assertGreaterEqual(g["presenced_malloc_trims_total"], 1)
        self.assertGreater(g["presenced_malloc_trim_seconds_total"], 0)
        self.assertIn("# TYPE presenced_malloc_trim_checks_total counter",
                      metrics_samples(self.server.port)[0])


class RateLimitCountedTest(ServerTestCase):
    server_kwargs = {"extra_args": ["--rate-limit", "5"]}

    def test_refusals_are_counted(self):
        r = self.realm()
        a = r.create_user()
        statuses = [a.client.raw("GET", "/realm/presence").status
                    for _ in range(7)]
        self.assertEqual(statuses.count(429), 2, statuses)
        text = http_request(self.server.port, "GET", "/metrics").body.decode()
        self.assertIn("presenced_rate_limited_total 2", text)


class FaultTest(ServerTestCase):
    server_kwargs = {"extra_args": ["--test-faults"], "flush_interval_ms": 50}

    @classmethod
    def tearDownClass(cls):
        # The store failed: the final flush cannot succeed, and presenced
        # says so with exit code 1 rather than claiming it saved everything.
        cls.server.proc.terminate()
        rc = cls.server.proc.wait(timeout=30)
        cls.server.cleanup()
        if rc != 1:
            raise AssertionError(f"exit code {rc} after a store failure, want 1")

    def test_store_failure_is_sticky_refuses_writes_keeps_reads(self):
        r = self.realm()
        a, b = r.create_user(), r.create_user()

        def flushed_rows():
            text = http_request(self.server.port, "GET", "/metrics").body
            m = re.search(rb"^presenced_flushed_rows_total (\d+)", text, re.M)
            return int(m.group(1))

        before = flushed_rows()
        a.client.ping()
        # Let that first write reach the disk before the disk "fails", so
        # that the failure below is the second write's, not a race.
        deadline = time.monotonic() + 10
        while flushed_rows() == before and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertGreater(flushed_rows(), before)
        self.assertEqual(http_request(self.server.port, "GET", "/healthz").status,
                         200)
        self.server.admin("POST", "/faults", {"fail_writes": True})
        self.clock(self.T + 60)
        a.client.ping()  # accepted in memory; the flush behind it fails
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            health = http_request(self.server.port, "GET", "/healthz")
            if health.status == 503:
                break
            time.sleep(0.05)
        self.assertEqual(health.status, 503, health)
        self.assertEqual(health.json()["status"], "failed")
        self.assertIn("writing presence failed", health.json()["reason"])
        # Sticky even once the disk is back.
        self.server.admin("POST", "/faults", {"fail_writes": False})
        self.clock(self.T + 120)
        resp = b.client.raw("POST", "/users/me/presence", {"status": "active"})
        self.assertEqual(resp.status, 503, resp)
        self.assertEqual(resp.json()["code"], "STORE_FAILED")
        self.assertIn("writing presence failed", resp.json()["msg"])
        # Reads keep working.
        self.assertEqual(b.client.raw("GET", "/realm/presence").status, 200)
        # Directory writes are refused too.
        resp = self.server.admin("POST", f"/realms/{r.id}/users",
                                 {"email": "x@example.com", "full_name": "X"},
                                 expect=None)
        self.assertEqual(resp.status, 503, resp)
        text = http_request(self.server.port, "GET", "/metrics").body.decode()
        self.assertIn("presenced_store_failed 1", text)

    def test_faults_endpoint_needs_the_flag(self):
        other = harness.Server().start()
        try:
            resp = other.admin("POST", "/faults", {"fail_writes": True},
                               expect=None)
            self.assertEqual(resp.status, 404, resp)
        finally:
            other.stop()
            other.cleanup()


class AdminListenTest(unittest.TestCase):
    def test_admin_api_on_its_own_address(self):
        port = free_port()
        server = harness.Server(
            extra_args=["--admin-listen", f"{LOOPBACK}:{port}"]).start()
        try:
            token = server.admin_token
            hdrs = {"Authorization": f"Bearer {token}",
                    "Content-Type": "application/json"}
            # Not on the main listener...
            resp = http_request(server.port, "POST", "/admin/v1/realms", hdrs,
                                b'{"subdomain":"","name":"R"}')
            self.assertEqual(resp.status, 404, resp)
            # ... but on the admin one, which serves no Zulip API.
            resp = http_request(port, "POST", "/admin/v1/realms", hdrs,
                                b'{"subdomain":"","name":"R"}')
            self.assertEqual(resp.status, 200, resp)
            resp = http_request(port, "GET", "/api/v1/server_settings")
            self.assertEqual(resp.status, 404, resp)
            resp = http_request(server.port, "GET", "/api/v1/server_settings")
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(http_request(port, "GET", "/healthz").status, 200)
        finally:
            server.stop()
            server.cleanup()


class AdminTokenEverywhereTest(ServerTestCase):
    def test_every_admin_path_needs_the_token(self):
        r = self.realm()
        u = r.create_user()
        calls = [("POST", "/realms", {"subdomain": "x", "name": "X"}),
                 ("GET", "/realms", None),
                 ("PATCH", f"/realms/{r.id}", {"presence_disabled": True}),
                 ("POST", f"/realms/{r.id}/users", {"email": "n@example.com"}),
                 ("PATCH", f"/realms/{r.id}/users/{u.id}", {"is_active": False}),
                 ("POST", f"/realms/{r.id}/access",
                  {"viewer": u.id, "visible": []}),
                 ("POST", "/clock", {"now": 1}),
                 ("POST", "/faults", {"fail_writes": True}),
                 ("GET", "/nonexistent", None)]
        for token in ("", "wrong-token"):
            for method, path, payload in calls:
                resp = self.server.admin(method, path, payload, token=token,
                                         expect=None)
                self.assertEqual(resp.status, 401, (method, path, resp))
                self.assertEqual(resp.json()["result"], "error")
        # Nothing changed.
        self.assertEqual(u.client.raw("GET", "/realm/presence").status, 200)


class ConnectionLimitTest(ServerTestCase):
    server_kwargs = {"extra_args": ["--max-connections", "2",
                                    "--idle-timeout-seconds", "2"]}

    def test_connections_over_the_limit_get_503(self):
        held = []
        deadline = time.monotonic() + 10
        while len(held) < 2 and time.monotonic() < deadline:
            # A full keep-alive exchange: the server has surely accepted it.
            # (Retried: the set-up's own connection may still be closing.)
            s = socket.create_connection((LOOPBACK, self.server.port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            s.settimeout(5)
            if b"200" in s.recv(4096).split(b"\r\n")[0]:
                held.append(s)
            else:
                s.close()
                time.sleep(0.1)
        self.assertEqual(len(held), 2)
        try:
            extra = socket.create_connection((LOOPBACK, self.server.port))
            data, closed = read_until_closed(extra, 5)
            extra.close()
            self.assertTrue(closed)
            self.assertIn(b"503", data.split(b"\r\n")[0])
            self.assertIn(b"TOO_MANY_CONNECTIONS", data)
        finally:
            for s in held:
                s.close()
        # Once they are gone, service resumes.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if http_request(self.server.port, "GET", "/healthz").status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        self.assertEqual(http_request(self.server.port, "GET", "/healthz").status,
                         200)

    def test_slow_loris_is_cut_off_by_the_idle_timeout(self):
        s = socket.create_connection((LOOPBACK, self.server.port))
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            start = time.monotonic()
            closed = False
            while time.monotonic() - start < 10:
                try:
                    s.sendall(b"a")
                except OSError:
                    closed = True
                    break
                data, closed = read_until_closed(s, 0.5)
                if closed:
                    break
            self.assertTrue(closed, "a header trickle must not hold the server")
            self.assertLess(time.monotonic() - start, 8)
        finally:
            s.close()


class BodyLimitTest(ServerTestCase):
    server_kwargs = {"extra_args": ["--max-body-bytes", "4096",
                                    "--max-header-bytes", "2048"]}

    def test_oversized_body_and_headers_get_json_errors(self):
        r = self.realm()
        a = r.create_user()
        resp = a.client.raw("POST", "/users/me/presence",
                            {"status": "active", "x": "y" * 8000},
                            validate=False)
        self.assertEqual(resp.status, 413, resp)
        self.assertEqual(resp.json()["result"], "error")
        resp = http_request(self.server.port, "GET",
                            "/api/v1/realm/presence?" + "a" * 4000)
        self.assertEqual(resp.status, 431, resp)
        self.assertEqual(resp.json()["result"], "error")
        # The server is fine afterwards.
        self.assertEqual(a.client.ping().get("result"), "success")



class LogTest(ServerTestCase):
    def test_admin_changes_are_logged_without_keys_or_tokens(self):
        r = self.realm()
        u = r.create_user()
        u.client.ping()
        r.patch_user(u, is_active=False)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            text = self.server.stderr_text()
            if "is_active" in text or text.count("event=admin_change") >= 3:
                break
            time.sleep(0.1)
        lines = [l for l in text.splitlines() if "event=admin_change" in l]
        created = [l for l in lines if f"user_id={u.id}" in l and "POST" in l]
        self.assertEqual(len(created), 1, lines)
        self.assertIn(f"path=/admin/v1/realms/{r.id}/users", created[0])
        self.assertTrue(any(f"/users/{u.id}" in l and "PATCH" in l
                            for l in lines), lines)
        for line in text.splitlines():
            self.assertTrue(line.startswith("ts="), line)
        self.assertNotIn(u.api_key, text)
        self.assertNotIn(self.server.admin_token, text)


if __name__ == "__main__":
    unittest.main()
