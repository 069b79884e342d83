"""Debian's nginx in front of presenced, configured from the shipped example.

deploy/nginx/presenced.conf is the example an operator installs. `Nginx`
runs nginx as an ordinary process on a free loopback port with a
configuration made from that file: its `upstream presenced` block pointed
at the server under test and its TLS server block with the `ssl_*` lines
left out and `listen 127.0.0.1:PORT` instead of 443 (plain HTTP), every
proxy setting kept as the example has it. The prefix, pid file, logs and
temporary paths are in a temporary directory of its own. Run as root, nginx
is started as `nobody` (setpriv), so it is unprivileged either way.

`Proxied` has the interface of harness.Server: Zulip API requests go
through nginx, operator requests (/admin, /healthz, /metrics, which the
example does not serve publicly) straight to presenced, as an operator
reaches them on the private side. With PRESENCED_BLACKBOX_PROXY=nginx,
bbtest.ServerTestCase runs its suite behind such a proxy.
"""

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time

import harness

EXAMPLE = os.path.join(harness.REPO_ROOT, "deploy", "nginx", "presenced.conf")
NGINX_START_TIMEOUT_S = 15.0
OPERATOR_PATHS = ("/admin/", "/healthz", "/metrics")


def nginx_binary():
    for path in ("/usr/sbin/nginx", shutil.which("nginx")):
        if path and os.access(path, os.X_OK):
            return path
    raise AssertionError("nginx not found (Debian: apt-get install nginx-light)")


def strip_comments(text):
    """The configuration without `# ...` comments (the example has no '#'
    inside a quoted string)."""
    return "\n".join(line.split("#", 1)[0].rstrip()
                     for line in text.splitlines())


def blocks(text, opener):
    """Every top-level block of `text` (comments stripped) whose header
    matches the regex `opener` (e.g. r"server"), as whole text from the
    header to its closing brace."""
    out = []
    depth = 0
    i = 0
    start = None
    while i < len(text):
        c = text[i]
        if c == "{":
            if depth == 0:
                line_start = text.rfind(";", 0, i)
                line_start = max(line_start, text.rfind("}", 0, i)) + 1
                header = text[line_start:i].strip()
                if re.fullmatch(opener, header):
                    start = line_start
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0 and start is not None:
                out.append(text[start:i + 1].strip())
                start = None
        i += 1
    return out


def example_text():
    with open(EXAMPLE, encoding="utf-8") as f:
        return f.read()


def plain_http_site(backend_port, listen_port, example=None):
    """The example's upstream and TLS server block, for plain HTTP on
    127.0.0.1:listen_port in front of presenced on 127.0.0.1:backend_port."""
    text = strip_comments(example if example is not None else example_text())
    upstreams = blocks(text, r"upstream\s+presenced")
    if len(upstreams) != 1:
        raise AssertionError("the example must hold one upstream presenced")
    upstream, n = re.subn(r"server\s+[^;]+;",
                          f"server 127.0.0.1:{backend_port};", upstreams[0],
                          count=1)
    if n != 1:
        raise AssertionError("the upstream names no server")
    tls = [b for b in blocks(text, r"server") if "ssl_certificate" in b]
    if len(tls) != 1:
        raise AssertionError("the example must hold one TLS server block")
    lines = []
    listened = False
    for line in tls[0].splitlines():
        word = line.strip().split(" ", 1)[0]
        if word.startswith("ssl_"):
            continue
        if word == "listen":
            if not listened:
                lines.append(f"    listen 127.0.0.1:{listen_port} "
                             "default_server;")
                listened = True
            continue
        lines.append(line)
    return upstream + "\n\n" + "\n".join(lines) + "\n"


def main_config(directory, site):
    """A whole nginx.conf around `site` (http-level text), every path it
    writes under `directory`."""
    d = directory
    return f"""worker_processes 1;
worker_rlimit_nofile 8192;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 4096; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{site}
}}
"""


def unprivileged_argv(argv):
    """`argv` run as nobody when we are root (nginx's master then never has
    privileges); as it is otherwise."""
    if os.geteuid() != 0:
        return list(argv)
    return ["setpriv", "--reuid=nobody", "--regid=nogroup",
            "--clear-groups", "--"] + list(argv)


def make_private_dir(prefix):
    """A temporary directory that nginx (perhaps as nobody) can write."""
    d = tempfile.mkdtemp(prefix=prefix)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
    return d


def give_to_nginx(path):
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)


def free_port():
    with socket.socket() as s:
        s.bind((harness.LOOPBACK, 0))
        return s.getsockname()[1]


def nginx_test(conf_path, directory):
    """`nginx -t` on conf_path; returns (exit code, output)."""
    argv = unprivileged_argv([nginx_binary(), "-t", "-q", "-p", directory,
                              "-c", conf_path, "-e",
                              os.path.join(directory, "error.log")])
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


class Nginx:
    """nginx on 127.0.0.1:<free port> in front of 127.0.0.1:backend_port."""

    def __init__(self, backend_port, example=None):
        self.backend_port = backend_port
        self.example = example
        self.dir = None
        self.port = None
        self.proc = None

    def start(self):
        self.dir = make_private_dir("presenced-nginx-")
        self.port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(main_config(self.dir, plain_http_site(
                self.backend_port, self.port, self.example)))
        give_to_nginx(conf)
        rc, out = nginx_test(conf, self.dir)
        if rc != 0:
            raise AssertionError(f"nginx -t refused the generated "
                                 f"configuration:\n{out}")
        argv = unprivileged_argv([nginx_binary(), "-p", self.dir, "-c", conf,
                                  "-e", os.path.join(self.dir, "error.log")])
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        # Ready once it accepts a connection on its port.
        deadline = time.monotonic() + NGINX_START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited ({self.proc.returncode})"
                                     f":\n{self.error_log()[-4000:]}")
            try:
                socket.create_connection((harness.LOOPBACK, self.port),
                                         timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("nginx did not accept connections "
                                         f"within {NGINX_START_TIMEOUT_S} s:"
                                         f"\n{self.error_log()[-4000:]}")
                time.sleep(0.02)
        return self

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGQUIT: graceful shutdown (as `nginx -s quit`)."""
        if self.running():
            self.proc.send_signal(3)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self):
        if self.running():
            self.proc.kill()
            self.proc.wait()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class Proxied:
    """A harness.Server behind `Nginx`, used like one harness.Server."""

    def __init__(self, **server_kwargs):
        self.backend = harness.Server(**server_kwargs)
        self.nginx = None

    def start(self):
        try:
            self.backend.start()
            self.nginx = Nginx(self.backend.port)
            self.nginx.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    @property
    def port(self):
        return self.nginx.port

    @property
    def nodes(self):
        """The servers behind the proxy, reached directly (e.g. for
        /metrics)."""
        return [self.backend]

    @property
    def admin_token(self):
        return self.backend.admin_token

    @property
    def stdout_lines(self):
        return self.backend.stdout_lines

    def running(self):
        return self.backend.running() and self.nginx.running()

    def stderr_text(self):
        return (self.backend.stderr_text() + "\n--- nginx error.log ---\n"
                + self.nginx.error_log())

    def stop(self):
        try:
            self.nginx.stop()
        finally:
            self.backend.stop()

    def cleanup(self):
        try:
            if self.nginx:
                self.nginx.cleanup()
        finally:
            self.backend.cleanup()

    def request(self, method, path, headers=None, body=b"", host=None):
        if path.startswith(OPERATOR_PATHS):
            return self.backend.request(method, path, headers, body, host)
        port = self.port
        return harness.http_request(
            port, method, path, headers, body,
            host=host if host is not None else f"{harness.LOOPBACK}:{port}")

    def admin(self, *args, **kwargs):
        return self.backend.admin(*args, **kwargs)

    def set_clock(self, now):
        return self.backend.set_clock(now)

    def create_realm(self, subdomain=None, name=None):
        return harness.Server.create_realm(self, subdomain, name)
