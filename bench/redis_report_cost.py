"""Redis time per call of the report script, with and without a client row.

    PRESENCED_BINARY=build/release/presenced N=2000 python3 bench/redis_report_cost.py

Starts one presenced node on a private redis-server on loopback (the
black-box harness, tests/blackbox/cluster.py), creates 2N+1 users, learns
the report script's SHA and key layout from MONITOR while the node takes
one ping, then calls EVALSHA directly (pipelined, N users per group) and
reads INFO commandstats: Redis's microseconds per script call (usec_per_call,
wall time inside Redis, so inflated on a loaded machine) for reports that
write (61 s after the last) and for reports that write nothing, without a
client name and with one (per-client rows, issue #14). Prints figures; not
a test.
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "blackbox"))
import cluster  # noqa: E402
import harness  # noqa: E402

N = int(os.environ.get("N", "2000"))

def resp(*args):
    out = f"*{len(args)}\r\n".encode()
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += f"${len(a)}\r\n".encode() + a + b"\r\n"
    return out

class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")
    def send(self, data): self.s.sendall(data)
    def read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t in (b"+", b"-", b":"): return (t, rest)
        if t == b"$":
            n = int(rest)
            if n < 0: return None
            d = self.f.read(n + 2)[:-2]; return d
        if t == b"*":
            n = int(rest); return [self.read() for _ in range(n)]
        raise RuntimeError(line)
    def call(self, *a):
        self.send(resp(*a)); return self.read()

def stat(c):
    info = c.call("INFO", "commandstats").decode()
    for line in info.splitlines():
        if line.startswith("cmdstat_evalsha:"):
            kv = dict(p.split("=") for p in line.split(":", 1)[1].split(","))
            return int(kv["calls"]), float(kv["usec_per_call"])
    return 0, 0.0

cl = cluster.Cluster(nodes=1, threads=1, extra_args=["--rate-limit", "0"]).start()
try:
    T = harness.BASE_TIME
    cl.set_clock(T)
    realm = cl.create_realm()
    users = [realm.create_user() for _ in range(2 * N + 1)]
    rc = Conn(cl.redis.port)
    mon = Conn(cl.redis.port)
    mon.call("MONITOR")
    users[-1].client.ping("active")
    sha = keys = None
    while sha is None:
        line = mon.f.readline().decode(errors="replace")
        if '"EVALSHA"' in line.upper() and "{r" in line and '"report' not in line:
            parts = line.split('"')[1::2]
            i = [p.upper() for p in parts].index("EVALSHA")
            cand = parts[i + 1:]
            nkeys = int(cand[1])
            k = cand[2:2 + nkeys]; argv = cand[2 + nkeys:]
            if nkeys == 7 and len(argv) == 6:
                sha, keys, realm_arg = cand[0], k, argv[0]
    mon.s.close()
    print(f"report script {sha[:12]}..., {len(keys)} keys, argv example from one ping: {argv}")
    groups = {"no client": (users[:N], ""), "client 'website'": (users[N:2 * N], "website")}
    def run(us, client, now, active="1"):
        c = Conn(cl.redis.port)
        c.call("CONFIG", "RESETSTAT")
        batch = b"".join(resp("EVALSHA", sha, 7, *keys, realm_arg, u.id, now, active, client, 8) for u in us)
        t0 = time.perf_counter(); c.send(batch)
        for _ in us: r = c.read()
        wall = time.perf_counter() - t0
        calls, usec = stat(c)
        return calls, usec, wall
    us = 1_000_000
    for name, (us_, client) in groups.items():
        run(us_, client, T * us)  # rows created
    for label, dt in (("writes (61 s later)", 61), ("no-op (10 s after that)", 71)):
        for name, (us_, client) in groups.items():
            calls, usec, wall = run(us_, client, (T + dt) * us)
            print(f"{label:26s} {name:18s} calls={calls} redis_usec_per_call={usec:.2f} wall_per_call_us={wall / len(us_) * 1e6:.1f}")
finally:
    cl.stop(); cl.cleanup()
