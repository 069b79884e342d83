"""Redis time per call of the report script, with and without a client row.

    PRESENCED_BINARY=build/release/presenced N=2000 python3 bench/redis_report_cost.py

Starts one presenced node on a private redis-server on loopback (the
black-box harness, tests/blackbox/cluster.py), creates 2N+1 users, learns
the report script's SHA and key layout from MONITOR while the node takes
one ping, then calls EVALSHA directly (pipelined, N users per group) and
reads INFO commandstats: Redis's microseconds per script call (usec_per_call,
wall time inside Redis, so inflated on a loaded machine) for reports that
write (61 s after the last) and for reports that write nothing, without a
client name (a client row named 'Unspecified', as a ping without a
User-Agent makes) and with one (per-client rows, issue #14), the server's
rate limit on (each call counts 8 requests of the user's budget, as the
lease does). Prints figures; not a test.
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

# The server's defaults (issue #17): the script is timed by calling EVALSHA
# directly, so the node itself takes one ping and its rate limit is moot.
cl = cluster.Cluster(nodes=1, threads=1).start()
try:
    T = harness.BASE_TIME
    cl.set_clock(T)
    realm = cl.create_realm()
    users = [realm.create_user() for _ in range(2 * N + 1)]
    rc = Conn(cl.redis.port)
    mon = Conn(cl.redis.port)
    mon.call("MONITOR")
    users[-1].client.ping("active")
    # The report script is the EVALSHA that reads the rows and the client
    # rows. Its layout with the defaults: 7 realm keys, then the user's two
    # rate-limit keys; argv = realm, user, now (us), status, wall clock (us,
    # for the limit's window), limit, window (us), client name, and the
    # rest as the node sent it.
    sha = keys = argv = None
    mon.s.settimeout(30)
    while sha is None:
        try:
            line = mon.f.readline().decode(errors="replace")
        except socket.timeout:
            sys.exit("redis_report_cost: no report script seen in 30 s")
        if '"EVALSHA"' not in line.upper() or ':rows"' not in line or \
                ':clients"' not in line:
            continue
        parts = line.split('"')[1::2]
        i = [p.upper() for p in parts].index("EVALSHA")
        cand = parts[i + 1:]
        nkeys = int(cand[1])
        keys, argv = cand[2:2 + nkeys], cand[2 + nkeys:]
        sha = cand[0]
    mon.s.close()
    print(f"report script {sha[:12]}..., {len(keys)} keys, argv example from one ping: {argv}")
    if len(argv) < 8 or not any(":rate:" in k for k in keys):
        sys.exit("redis_report_cost: the report script's layout changed; "
                 "update this script")
    uid0 = argv[1]
    groups = {"client 'Unspecified'": (users[:N], argv[7]),
              "client 'website'": (users[N:2 * N], "website")}
    def call(u, client, now):
        k = [x.replace(f":rate:{uid0}:", f":rate:{u.id}:") for x in keys]
        a = list(argv)
        a[1], a[2], a[4], a[7] = u.id, now, int(time.time() * 1e6), client
        return resp("EVALSHA", sha, len(k), *k, *a)
    def run(us, client, now):
        c = Conn(cl.redis.port)
        c.call("CONFIG", "RESETSTAT")
        batch = b"".join(call(u, client, now) for u in us)
        t0 = time.perf_counter(); c.send(batch)
        errors = 0
        for _ in us:
            r = c.read()
            errors += isinstance(r, tuple) and r[0] == b"-"
        wall = time.perf_counter() - t0
        if errors:
            sys.exit(f"redis_report_cost: {errors} script calls failed")
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
