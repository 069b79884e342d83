#!/usr/bin/env python3
"""Start presenced on a data directory and report the time to the listening
line, the time to the first answered ping (issue #17: what a client sees after
a restart), the CPU used by then and the resident memory.

Usage: startmeasure.py [--cursor N] [--flag ARG]... DATA ROUNDS BINARY...

Binaries are started alternately, ROUNDS times each, with their default flags
(plus any --flag given). The ping is bench user 0's (bench/bench_users.h),
Zulip's modern incremental ping `status=active&last_update_id=N`, N being
--cursor (default: the number of users bench_populate wrote, i.e. the
realm's sequence before the restart: a client that pinged before). It is
sent as soon as the port is known and again every millisecond until it is
answered 200. Prints one line per start, then one JSON object per start on
stdout with --json. Loopback only.
"""
import base64
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time


def bench_auth(i):
    email = f"u{i}@bench.example"
    key = "bk" + str(i).rjust(30, "0")
    return base64.b64encode(f"{email}:{key}".encode()).decode()


def ping_once(port, cursor):
    """One ping on a fresh connection: the HTTP status, or None."""
    body = f"status=active&last_update_id={cursor}".encode()
    req = (f"POST /api/v1/users/me/presence HTTP/1.1\r\n"
           f"Host: 127.0.0.1:{port}\r\n"
           f"Authorization: Basic {bench_auth(0)}\r\n"
           "Content-Type: application/x-www-form-urlencoded\r\n"
           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
           ).encode() + body
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(req)
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                data += chunk
        return int(data.split(b" ", 2)[1])
    except OSError:
        return None


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def measure(binary, data, cursor, flags):
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--data", data]
                         + flags, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    try:
        line = p.stdout.readline()
        t_listen = time.monotonic() - t0
        assert line.startswith("listening on"), line
        port = int(line.strip().rsplit(":", 1)[1])
        status = None
        while status != 200:
            status = ping_once(port, cursor)
            if status != 200:
                assert p.poll() is None, "server exited"
                time.sleep(0.001)
        t_ping = time.monotonic() - t0
        cpu = cpu_seconds(p.pid)
        time.sleep(0.5)
        rss = rss_kib(p.pid)
    finally:
        p.terminate()
        p.wait(timeout=120)
    return t_listen, t_ping, cpu, rss


def main(argv):
    cursor = None
    flags = []
    as_json = False
    while argv and argv[0].startswith("--"):
        if argv[0] == "--cursor":
            cursor = int(argv[1])
            argv = argv[2:]
        elif argv[0] == "--flag":
            flags.append(argv[1])
            argv = argv[2:]
        elif argv[0] == "--json":
            as_json = True
            argv = argv[1:]
        else:
            sys.exit(__doc__)
    if len(argv) < 3:
        sys.exit(__doc__)
    data, rounds, binaries = argv[0], int(argv[1]), argv[2:]
    users = None
    db = os.path.join(data, "presence.sqlite3")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        users = c.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    if cursor is None:
        cursor = users
    for _ in range(rounds):
        for b in binaries:
            t_listen, t_ping, cpu, rss = measure(b, data, cursor, flags)
            print(f"{b}: {users} users: listening {t_listen:.2f} s, first "
                  f"ping answered {t_ping:.2f} s, cpu {cpu:.2f} s, rss "
                  f"{rss / 1024:.0f} MiB ({rss * 1024 / users:.0f} B/user)",
                  file=sys.stderr if as_json else sys.stdout, flush=True)
            if as_json:
                print(json.dumps({"binary": b, "users": users,
                                  "listening_s": round(t_listen, 3),
                                  "first_ping_s": round(t_ping, 3),
                                  "cpu_s": round(cpu, 2), "rss_kib": rss}),
                      flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
