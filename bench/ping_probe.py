#!/usr/bin/env python3
"""ping_probe: an independent ping prober beside a load run (issue #17 item 7).

Sends POST /api/v1/users/me/presence (status=active&ping_only=true) over one
keep-alive connection, --rate times a second, each from the next user of
--keys (`email,user_id,api_key`, from --first on, so that no user is pinged
twice a minute), and times each ping from the write of its request to the
read of its answer. It is a separate, mostly sleeping process: unlike a
saturated load generator, it reads its answer as soon as it arrives, so its
round trip is the server's (plus the kernel's and the machine's scheduling),
without the generator's own lateness. Prints one line per --interval and a
summary (p50/p99/max) at the end; --csv writes every ping (t_s,rtt_ms).

Only numeric loopback addresses are accepted.
"""
import argparse
import base64
import csv
import socket
import sys
import time


def percentile(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="127.0.0.1:PORT")
    ap.add_argument("--keys", required=True)
    ap.add_argument("--first", type=int, default=500000)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--csv")
    a = ap.parse_args()
    host, port = a.server.rsplit(":", 1)
    if host not in ("127.0.0.1", "::1", "[::1]"):
        sys.exit("ping_probe: loopback addresses only")
    host = host.strip("[]")
    n = int(a.rate * a.seconds) + 1
    auth = []
    with open(a.keys) as f:
        for i, row in enumerate(csv.reader(f)):
            if i <= a.first or row[0] == "email":
                continue
            token = base64.b64encode(f"{row[0]}:{row[2]}".encode()).decode()
            auth.append(token)
            if len(auth) >= n:
                break
    if not auth:
        sys.exit(f"ping_probe: no users after line {a.first} of {a.keys}")
    body = b"status=active&ping_only=true"

    def connect():
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    sock = connect()
    rows, window = [], []
    t0 = time.monotonic()
    # CLOCK_MONOTONIC, so that the pings' times (t_s is from t0) line up
    # with the server's events (perf record -k CLOCK_MONOTONIC).
    print(f"ping_probe: t0 CLOCK_MONOTONIC {t0:.6f} s", flush=True)
    next_report = t0 + a.interval
    errors = 0
    for i in range(min(n, len(auth))):
        due = t0 + i / a.rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        if time.monotonic() - t0 > a.seconds:
            break
        req = (
            f"POST /api/v1/users/me/presence HTTP/1.1\r\nHost: {a.server}\r\n"
            f"Authorization: Basic {auth[i]}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        start = time.monotonic()
        try:
            sock.sendall(req)
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
            head, rest = buf.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            while len(rest) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                rest += chunk
            ok = head.split(b" ", 2)[1] == b"200"
        except (OSError, ConnectionError):
            ok = False
            sock.close()
            try:
                sock = connect()
            except OSError:
                print("ping_probe: the server is gone; stopping", flush=True)
                break
        rtt_ms = (time.monotonic() - start) * 1000
        if not ok:
            errors += 1
        rows.append((start - t0, rtt_ms))
        window.append(rtt_ms)
        if time.monotonic() >= next_report:
            print(
                f"ping_probe: t={time.monotonic() - t0:.0f}s n={len(window)} "
                f"p50={percentile(window, 0.5):.2f} ms "
                f"p99={percentile(window, 0.99):.2f} ms "
                f"max={max(window):.2f} ms errors={errors}",
                flush=True,
            )
            window = []
            next_report += a.interval
    rtts = [r for _, r in rows]
    if not rtts:
        sys.exit("ping_probe: no ping was sent")
    print(
        f"ping_probe: total n={len(rtts)} p50={percentile(rtts, 0.5):.2f} ms "
        f"p99={percentile(rtts, 0.99):.2f} ms max={max(rtts):.2f} ms "
        f"errors={errors}",
        flush=True,
    )
    if a.csv:
        with open(a.csv, "w") as f:
            f.write("t_s,rtt_ms\n")
            for t, r in rows:
                f.write(f"{t:.3f},{r:.3f}\n")


if __name__ == "__main__":
    main()
