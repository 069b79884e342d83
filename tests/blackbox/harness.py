"""Black-box harness: runs the real presenced binary and talks HTTP to it.

Everything here speaks to 127.0.0.1 only. The binary comes from the
PRESENCED_BINARY environment variable (CTest sets it), or
build/debug/presenced under the repository root.

Every response from an /api/v1 endpoint goes through openapi.check_response,
so no test can receive a Zulip answer that was not checked against the
schema.

Run: python3 -m unittest discover -s tests/blackbox -v   (or: ctest -R blackbox)
Needs python3-jsonschema (Debian), installed by scripts/install-deps.sh.
"""

import base64
import http.client
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections import OrderedDict

import openapi

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 20.0

# A fixed, recognisable base time for the test clock (2023-11-14T22:13:20Z).
BASE_TIME = 1_700_000_000.0
DAY = 86400.0


def binary_path():
    path = os.environ.get("PRESENCED_BINARY") or os.path.join(
        REPO_ROOT, "build", "debug", "presenced")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise RuntimeError(
            f"presenced binary not found or not executable: {path} "
            "(build it, or set PRESENCED_BINARY)")
    return path


class Response:
    """One HTTP answer: status, headers (case-insensitive), raw body."""

    def __init__(self, status, headers, body, method, path):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage
        self.body = body
        self.method = method
        self.path = path

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise AssertionError(
                f"{self.method} {self.path}: body is not JSON ({e}): "
                f"{self.body[:500]!r}") from None

    def json_ordered(self):
        """The body with key order kept (for order-sensitive checks)."""
        return json.loads(self.body.decode("utf-8"),
                          object_pairs_hook=OrderedDict)

    def __repr__(self):
        return (f"<{self.method} {self.path} -> {self.status} "
                f"{self.body[:300]!r}>")


def http_request(port, method, path, headers=None, body=b"", host=None,
                 timeout=REQUEST_TIMEOUT_S, source=None):
    """Sends one request on a fresh connection to 127.0.0.1:port.

    `host` is the Host header to send (default "127.0.0.1:<port>"); `headers`
    a list of (name, value) pairs or a dict; `source` the loopback address
    to connect from (default: the system's choice, 127.0.0.1).
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn = http.client.HTTPConnection(
        LOOPBACK, port, timeout=timeout,
        source_address=(source, 0) if source else None)
    try:
        conn.putrequest(method, path, skip_host=True,
                        skip_accept_encoding=True)
        conn.putheader("Host", host if host is not None else f"{LOOPBACK}:{port}")
        items = headers.items() if isinstance(headers, dict) else (headers or [])
        names = set()
        for k, v in items:
            conn.putheader(k, v)
            names.add(k.lower())
        if body or method in ("POST", "PUT", "PATCH"):
            if "content-length" not in names:
                conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body if body else None)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.msg, data, method, path)
    finally:
        conn.close()


# --- Request encodings ------------------------------------------------------

def urlencode(params):
    """application/x-www-form-urlencoded, as browsers and Zulip clients send it."""
    return urllib.parse.urlencode(list(_pairs(params)))


def _pairs(params):
    if params is None:
        return []
    if isinstance(params, dict):
        return list(params.items())
    return list(params)


def form_data_boundary():
    """A boundary of the npm form-data package's shape: 26 dashes and 24
    hexadecimal digits."""
    return "-" * 26 + secrets.token_hex(12)


def multipart_form_data(params, boundary=None):
    """Encodes string fields byte for byte as the npm `form-data` package does
    (FormData.append(name, string) then getBuffer()/pipe):

        --<boundary>\\r\\n
        Content-Disposition: form-data; name="<name>"\\r\\n
        \\r\\n
        <value>\\r\\n
        ... one such part per field ...
        --<boundary>--\\r\\n

    with the request header `Content-Type: multipart/form-data; boundary=<b>`
    (no quotes). Returns (content_type, body_bytes).
    """
    boundary = boundary or form_data_boundary()
    out = bytearray()
    for name, value in _pairs(params):
        out += f"--{boundary}\r\n".encode()
        out += f'Content-Disposition: form-data; name="{name}"\r\n'.encode()
        out += b"\r\n"
        out += str(value).encode("utf-8")
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


def basic_auth(email, api_key):
    token = base64.b64encode(f"{email}:{api_key}".encode("utf-8")).decode()
    return f"Basic {token}"


# --- The server process -----------------------------------------------------

class Server:
    """One presenced process on 127.0.0.1:<free port>.

    start() waits for the `listening on http://HOST:PORT` line; stop() sends
    SIGTERM and asserts exit code 0; kill() sends SIGKILL.
    """

    def __init__(self, data_dir=None, test_clock=True, flush_interval_ms=None,
                 root_domain=None, extra_args=(), admin_token=None,
                 threads=2, preexec_fn=None):
        self._own_data_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="presenced-bb-")
        self.test_clock = test_clock
        self.flush_interval_ms = flush_interval_ms
        self.root_domain = root_domain
        self.extra_args = list(extra_args)
        self.admin_token = admin_token or ("adm" + secrets.token_hex(16))
        self.threads = threads
        # Run in the child before presenced starts (e.g. to set rlimits).
        self.preexec_fn = preexec_fn
        self.proc = None
        self.port = None
        self.listen_line = None
        self.stdout_lines = []
        self._stdout_queue = queue.Queue()
        self._stderr_file = None
        self.stderr_path = None

    # -- lifecycle --

    def start(self):
        args = [binary_path(), "--listen", f"{LOOPBACK}:0",
                "--data", self.data_dir]
        if self.test_clock:
            args.append("--test-clock")
        if self.flush_interval_ms is not None:
            args += ["--flush-interval-ms", str(self.flush_interval_ms)]
        if self.root_domain is not None:
            args += ["--root-domain", self.root_domain]
        if self.threads:
            args += ["--threads", str(self.threads)]
        args += self.extra_args
        env = dict(os.environ)
        env["PRESENCED_ADMIN_TOKEN"] = self.admin_token
        fd, self.stderr_path = tempfile.mkstemp(prefix="presenced-stderr-",
                                                suffix=".log")
        self._stderr_file = os.fdopen(fd, "wb")
        self.stdout_lines = []
        self._stdout_queue = queue.Queue()
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._stderr_file, env=env, preexec_fn=self.preexec_fn)
        reader = threading.Thread(target=self._read_stdout,
                                  args=(self.proc, self._stdout_queue),
                                  daemon=True)
        reader.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        line = None
        while time.monotonic() < deadline:
            try:
                item = self._stdout_queue.get(timeout=0.05)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if item is None:
                break
            if item.startswith("listening on "):
                line = item
                break
        if line is None:
            rc = self.proc.poll()
            if rc is None:
                self.proc.kill()
                self.proc.wait()
            raise AssertionError(
                f"presenced did not print 'listening on http://HOST:PORT' "
                f"within {START_TIMEOUT_S:.0f} s (exit code {rc}); "
                f"args {args}; stdout {self.stdout_lines!r}; "
                f"stderr:\n{self.stderr_text()[-4000:]}")
        m = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if not m or int(m.group(1)) == 0:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"malformed listening line: {line!r}")
        self.listen_line = line
        self.port = int(m.group(1))
        return self

    def _read_stdout(self, proc, q):
        for raw in proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.stdout_lines.append(text)
            q.put(text)
        q.put(None)

    def stderr_text(self):
        if not self.stderr_path:
            return ""
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """Sends `sig` (SIGTERM or SIGINT), waits, asserts exit code 0."""
        assert self.proc is not None, "server not started"
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"presenced did not exit within {STOP_TIMEOUT_S:.0f} s of "
                f"signal {sig}; stderr:\n{self.stderr_text()[-4000:]}")
        self._close()
        if rc != 0:
            raise AssertionError(
                f"presenced exited with {rc} after signal {sig}, want 0; "
                f"stderr:\n{self.stderr_text()[-4000:]}")
        listening = [l for l in self.stdout_lines if l.startswith("listening on")]
        if len(listening) != 1:
            raise AssertionError(
                f"want exactly one 'listening on' line on stdout, got "
                f"{self.stdout_lines!r}")
        return rc

    def kill(self):
        """SIGKILL, no flush: simulates a crash."""
        assert self.proc is not None, "server not started"
        self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._close()

    def _close(self):
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if self._stderr_file:
            self._stderr_file.close()
            self._stderr_file = None

    def cleanup(self):
        """Kills the process if still running and removes temp files."""
        if self.running():
            self.proc.kill()
            self.proc.wait()
        self._close()
        if self.stderr_path and os.path.exists(self.stderr_path):
            os.unlink(self.stderr_path)
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self, **kwargs):
        """A new process on the same data directory (kwargs: flags)."""
        s = Server(data_dir=self.data_dir,
                   test_clock=kwargs.get("test_clock", self.test_clock),
                   flush_interval_ms=kwargs.get("flush_interval_ms",
                                                self.flush_interval_ms),
                   root_domain=kwargs.get("root_domain", self.root_domain),
                   admin_token=self.admin_token)
        s._own_data_dir = False
        return s.start()

    # -- raw HTTP --

    def request(self, method, path, headers=None, body=b"", host=None):
        return http_request(self.port, method, path, headers, body,
                            host=host if host is not None
                            else f"{LOOPBACK}:{self.port}")

    # -- admin API --

    def admin(self, method, path, payload=None, token=None, expect=200):
        """Calls /admin/v1/<path> with the bearer token and JSON body.

        Asserts the HTTP status is `expect` (None: no check) and returns the
        Response."""
        token = self.admin_token if token is None else token
        headers = [("Content-Type", "application/json")]
        if token != "":
            headers.append(("Authorization", f"Bearer {token}"))
        body = json.dumps(payload).encode() if payload is not None else b""
        r = self.request(method, "/admin/v1" + path, headers, body)
        if expect is not None and r.status != expect:
            raise AssertionError(
                f"admin {method} {path} {payload!r}: status {r.status}, want "
                f"{expect}: {r.body[:500]!r}")
        return r

    def set_clock(self, now):
        """Sets and holds the presence clock (needs --test-clock)."""
        r = self.admin("POST", "/clock", {"now": now})
        body = r.json()
        assert body.get("result") == "success", body
        return now

    def create_realm(self, subdomain=None, name=None):
        subdomain = subdomain if subdomain is not None else (
            "r" + secrets.token_hex(5))
        name = name or f"Realm {subdomain or 'root'}"
        r = self.admin("POST", "/realms", {"subdomain": subdomain, "name": name})
        body = r.json()
        assert body.get("result") == "success", body
        assert isinstance(body.get("realm_id"), int), body
        return Realm(self, body["realm_id"], subdomain, name)


class Realm:
    def __init__(self, server, realm_id, subdomain, name):
        self.server = server
        self.id = realm_id
        self.subdomain = subdomain
        self.name = name
        self._n = 0

    @property
    def host(self):
        if self.subdomain == "":
            return f"localhost:{self.server.port}"
        return f"{self.subdomain}.localhost:{self.server.port}"

    def create_user(self, email=None, full_name=None, role="member",
                    is_bot=False, can_access_all_users=True):
        self._n += 1
        email = email or f"u{self._n}-{secrets.token_hex(3)}@{self.subdomain or 'root'}.example.com"
        full_name = full_name or f"User {self._n}"
        r = self.server.admin("POST", f"/realms/{self.id}/users", {
            "email": email, "full_name": full_name, "role": role,
            "is_bot": is_bot, "can_access_all_users": can_access_all_users})
        body = r.json()
        assert isinstance(body.get("user_id"), int), body
        key = body.get("api_key")
        assert isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9]{32}", key), (
            f"api_key must be 32 alphanumerics (Zulip's format), got {key!r}")
        return User(self, body["user_id"], email, key, role, is_bot)

    def patch(self, **fields):
        return self.server.admin("PATCH", f"/realms/{self.id}", fields)

    def patch_user(self, user, **fields):
        uid = user.id if isinstance(user, User) else user
        return self.server.admin("PATCH", f"/realms/{self.id}/users/{uid}",
                                 fields)

    def set_access(self, viewer, visible):
        return self.server.admin("POST", f"/realms/{self.id}/access", {
            "viewer": viewer.id,
            "visible": [u.id for u in visible]})

    def client(self, user, host=None):
        return ZulipClient(self.server, user.email, user.api_key,
                           host or self.host)


class User:
    def __init__(self, realm, user_id, email, api_key, role, is_bot):
        self.realm = realm
        self.id = user_id
        self.email = email
        self.api_key = api_key
        self.role = role
        self.is_bot = is_bot

    @property
    def client(self):
        return self.realm.client(self)


class ZulipClient:
    """A Zulip API client: HTTP Basic auth, chosen Host header, three
    parameter encodings. Each call returns a Response whose body has already
    been validated against the OpenAPI document."""

    def __init__(self, server, email, api_key, host):
        self.server = server
        self.email = email
        self.api_key = api_key
        self.host = host

    def raw(self, method, path, params=None, encoding="form", headers=None,
            auth=True, host=None, body=None, content_type=None,
            validate=True):
        """One request to /api/v1<path>.

        encoding: "form" (urlencoded body), "multipart" (npm form-data),
        "query" (parameters in the query string, empty body).
        auth: True (Basic with this client's credentials), False (no
        Authorization header) or a literal header value.
        """
        hdrs = list(headers.items() if isinstance(headers, dict) else headers or [])
        if auth is True:
            hdrs.append(("Authorization", basic_auth(self.email, self.api_key)))
        elif auth:
            hdrs.append(("Authorization", auth))
        url = "/api/v1" + path
        data = b""
        if body is not None:
            data = body if isinstance(body, bytes) else body.encode()
            if content_type:
                hdrs.append(("Content-Type", content_type))
        elif params is not None:
            if encoding == "query":
                sep = "&" if "?" in url else "?"
                url = url + sep + urlencode(params)
            elif encoding == "form":
                data = urlencode(params).encode()
                hdrs.append(("Content-Type",
                             "application/x-www-form-urlencoded"))
            elif encoding == "multipart":
                ctype, data = multipart_form_data(params)
                hdrs.append(("Content-Type", ctype))
            else:
                raise ValueError(encoding)
        r = http_request(self.server.port, method, url, hdrs, data,
                         host=host or self.host)
        if validate:
            # A POST's `method` form field overrides the HTTP method (a
            # legacy Zulip feature): the answer is that method's.
            effective = method
            if (method.upper() == "POST" and isinstance(params, dict)
                    and "method" in params):
                effective = params["method"]
            openapi.check_response(effective, url, r)
        return r

    # -- the presence endpoints --

    def post_presence(self, status="active", encoding="form", **params):
        p = {}
        if status is not None:
            p["status"] = status
        for k, v in params.items():
            p[k] = _json_param(v)
        return self.raw("POST", "/users/me/presence", p, encoding)

    def ping(self, status="active", **params):
        """A POST presence that must succeed; returns the parsed body."""
        r = self.post_presence(status, **params)
        assert r.status == 200, r
        return r.json()

    def get_realm_presence(self):
        return self.raw("GET", "/realm/presence")

    def get_user_presence(self, who):
        seg = urllib.parse.quote(str(who), safe="@")
        return self.raw("GET", f"/users/{seg}/presence")

    def patch_settings(self, encoding="form", **params):
        return self.raw("PATCH", "/settings",
                        {k: _json_param(v) for k, v in params.items()},
                        encoding)

    def server_settings(self):
        return self.raw("GET", "/server_settings", auth=False)


def _json_param(v):
    """Python values become the JSON text Zulip's Json[...] parameters want;
    strings are sent as they are."""
    if isinstance(v, str):
        return v
    return json.dumps(v)
