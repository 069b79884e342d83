"""Scale-out harness: one redis-server and several presenced nodes sharing it.

`Cluster` has the interface of harness.Server, so the black-box suites run
against it unchanged: every request (API or admin) goes to the next node in
turn (round-robin, as a load balancer would spread them), and the test clock
is set on every node. With the environment variable PRESENCED_BLACKBOX_NODES
set to N > 1, bbtest.ServerTestCase runs its suite on such a cluster.

With PRESENCED_BLACKBOX_REDIS=cluster (or Cluster(redis="cluster")) the
nodes share a Redis Cluster instead of one redis-server: three masters on
loopback, each with its own directory and nodes.conf, joined with
`redis-cli --cluster create` and polled until every master reports
cluster_state:ok (RedisClusterServers, the topology the store tests start in
tests/store/redis_server.h); every node is given all three as seeds.
Forming a cluster takes about 2 s (redis-cli waits for the masters to
agree), so the Clusters of one test process share one Redis Cluster
(shared_redis_cluster), emptied with FLUSHALL for each.

With PRESENCED_BLACKBOX_REDIS=sentinel (or Cluster(redis="sentinel")) the
nodes share the master that Redis Sentinel names: one master, one replica
and three sentinels on loopback (RedisSentinelGroup, the topology
test_sentinel.py fails over), the nodes on its redis-sentinel:// URL. Like
the Redis Cluster, one group serves the Clusters of a test process
(shared_sentinel_group), its master emptied with FLUSHALL for each; its
sentinels call the master down only after 5 s, so that a loaded machine
does not fail it over under a suite.

Everything listens on 127.0.0.1 only; redis-server is started here with no
persistence, on a free port, in a temporary directory. The nodes share a
random cluster secret (--cluster-secret-file, mode 0600, in that directory),
with which they sign the requests they relay to each other; `secrets` gives
some nodes another one.
"""

import atexit
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import harness

REDIS_START_TIMEOUT_S = 15.0


def free_port(bus=False):
    """A port free on loopback right now; with `bus`, one whose cluster bus
    port (port + 10000) is free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind((harness.LOOPBACK, 0))
            port = s.getsockname()[1]
        if not bus:
            return port
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind((harness.LOOPBACK, port + 10000))
            except OSError:
                continue
        return port
    raise AssertionError("no free loopback port pair for a cluster node")


def redis_command(port, *args, timeout=5.0):
    """Sends one command in RESP and returns the raw reply bytes."""
    out = f"*{len(args)}\r\n".encode()
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += f"${len(a)}\r\n".encode() + a + b"\r\n"
    with socket.create_connection((harness.LOOPBACK, port), timeout) as s:
        s.sendall(out)
        return s.recv(65536)


def _read_reply(f):
    """One RESP reply from the file `f`: str, int, None, list, or an
    Exception instance for an error reply."""
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("redis: connection closed mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return Exception(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise OSError(f"redis: bad reply line {line!r}")


def redis_call(port, *args, timeout=5.0):
    """Sends one command and returns its reply decoded (_read_reply)."""
    out = f"*{len(args)}\r\n".encode()
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += f"${len(a)}\r\n".encode() + a + b"\r\n"
    with socket.create_connection((harness.LOOPBACK, port), timeout) as s:
        s.sendall(out)
        with s.makefile("rb") as f:
            return _read_reply(f)


def wait_until(what, predicate, timeout):
    """Re-checks `predicate` until it holds and returns its value; fails
    with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s: {what}")
        time.sleep(0.02)


def replicas_online(port):
    """How many replicas the server at `port` has in sync (online)."""
    try:
        info = redis_call(port, "INFO", "replication")
    except OSError:
        return 0
    return sum(1 for line in info.splitlines()
               if line.startswith("slave") and "state=online" in line)


def write_secret_file(directory, name, secret):
    """A cluster secret file (mode 0600) in `directory`; returns its path."""
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return path


class RedisServer:
    """A private redis-server on 127.0.0.1:<free port>."""

    def __init__(self, extra_args=(), cluster_bus=False):
        self.dir = tempfile.mkdtemp(prefix="presenced-redis-")
        self.port = None
        self.proc = None
        self.extra_args = list(extra_args)
        self.cluster_bus = cluster_bus

    def start(self):
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        for _ in range(5):
            self.port = free_port(bus=self.cluster_bus)
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", harness.LOOPBACK,
                 "--save", "", "--appendonly", "no", "--dir", self.dir,
                 "--logfile", os.path.join(self.dir, "redis.log")]
                + self.extra_args,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + REDIS_START_TIMEOUT_S
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    # Ours, not another test's server that took the port a
                    # moment earlier: it reports our child's process id.
                    info = redis_command(self.port, "INFO", "server")
                    if f"process_id:{self.proc.pid}\r".encode() in info:
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            self.stop()
        raise AssertionError("redis-server did not start on loopback")

    @property
    def url(self):
        return f"redis://{harness.LOOPBACK}:{self.port}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        """SIGKILL: a crash, nothing flushed or handed over."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisSentinel:
    """A private redis-sentinel on 127.0.0.1:<free port> watching the master
    `master_name` at 127.0.0.1:`master_port`; its config file (which the
    sentinel rewrites) lives in a temporary directory."""

    def __init__(self, master_name, master_port, quorum=2,
                 down_after_ms=1000, failover_timeout_ms=3000):
        self.dir = tempfile.mkdtemp(prefix="presenced-sentinel-")
        self.master_name = master_name
        self.master_port = master_port
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.port = None
        self.proc = None

    def start(self):
        binary = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
        for _ in range(5):
            self.port = free_port()
            conf = os.path.join(self.dir, "sentinel.conf")
            with open(conf, "w") as f:
                f.write(
                    f"port {self.port}\n"
                    f"bind {harness.LOOPBACK}\n"
                    f"dir {self.dir}\n"
                    f"logfile {os.path.join(self.dir, 'sentinel.log')}\n"
                    f"sentinel monitor {self.master_name} {harness.LOOPBACK} "
                    f"{self.master_port} {self.quorum}\n"
                    f"sentinel down-after-milliseconds {self.master_name} "
                    f"{self.down_after_ms}\n"
                    f"sentinel failover-timeout {self.master_name} "
                    f"{self.failover_timeout_ms}\n"
                    f"sentinel parallel-syncs {self.master_name} 1\n")
            self.proc = subprocess.Popen(
                [binary, conf], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + REDIS_START_TIMEOUT_S
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if redis_call(self.port, "PING") == "PONG":
                        return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise AssertionError("redis-sentinel did not start on loopback")

    def master(self):
        """The master's port as this sentinel names it now (None if it
        names none)."""
        reply = redis_call(self.port, "SENTINEL", "get-master-addr-by-name",
                           self.master_name)
        return int(reply[1]) if isinstance(reply, list) else None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self):
        try:
            with open(os.path.join(self.dir, "sentinel.log")) as f:
                return f.read()
        except OSError:
            return ""

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisSentinelGroup:
    """One master and one replica (redis-server) and three redis-sentinel
    processes watching them as `master_name` (quorum 2), all on 127.0.0.1.
    start() returns once the replica is in sync and every sentinel names the
    master and knows the replica and the two other sentinels (ready for a
    failover). Used where a RedisServer is (start, url, dir, stop,
    cleanup)."""

    SENTINELS = 3
    # A replica's first sync starts at once (Redis 7 waits 5 s by default
    # for more replicas to share one transfer).
    FAST_SYNC = ["--repl-diskless-sync-delay", "0"]

    def __init__(self, master_name="presence", down_after_ms=1000):
        self.master_name = master_name
        self.down_after_ms = down_after_ms
        self.master = RedisServer(self.FAST_SYNC)
        self.replica = None
        self.sentinels = []
        # The master's directory holds what the group shares (the nodes'
        # secret files).
        self.dir = self.master.dir

    def start(self):
        self.master.start()
        self.replica = RedisServer(
            self.FAST_SYNC + ["--replicaof", harness.LOOPBACK,
                              str(self.master.port)])
        self.replica.start()
        wait_until("the replica is in sync",
                   lambda: replicas_online(self.master.port) == 1, 20)
        for _ in range(self.SENTINELS):
            s = RedisSentinel(self.master_name, self.master.port,
                              down_after_ms=self.down_after_ms)
            self.sentinels.append(s)
            s.start()
        others = self.SENTINELS - 1
        for s in self.sentinels:
            wait_until(
                f"sentinel {s.port} names the master and knows the replica "
                f"and {others} sentinels",
                lambda s=s: (
                    s.master() == self.master.port and
                    len(redis_call(s.port, "SENTINEL", "replicas",
                                   self.master_name)) == 1 and
                    len(redis_call(s.port, "SENTINEL", "sentinels",
                                   self.master_name)) == others),
                20)
        return self

    def sentinels_agree_on(self, port):
        """Whether every sentinel names 127.0.0.1:`port` as the master."""
        try:
            return all(s.master() == port for s in self.sentinels)
        except OSError:
            return False

    def flush(self):
        """Empties the master (FLUSHALL); the replica follows it."""
        reply = redis_command(self.master.port, "FLUSHALL")
        if not reply.startswith(b"+OK"):
            raise AssertionError(f"FLUSHALL on {self.master.port}: {reply!r}")

    @property
    def url(self):
        return "redis-sentinel://" + ",".join(
            f"{harness.LOOPBACK}:{s.port}" for s in self.sentinels) + \
            "/" + self.master_name

    def servers(self):
        return self.sentinels + [self.replica, self.master]

    def stop(self):
        for s in self.servers():
            if s:
                s.stop()

    def cleanup(self):
        for s in self.servers():
            if s:
                s.cleanup()


class RedisClusterServers:
    """A Redis Cluster of three masters (no replicas) on 127.0.0.1, each in
    its own directory with its own nodes.conf; `url` names all three as
    seeds. Used where a RedisServer is (start, url, dir, stop, cleanup)."""

    MASTERS = 3

    def __init__(self):
        self.servers = [
            RedisServer(["--cluster-enabled", "yes",
                         "--cluster-config-file", "nodes.conf",
                         "--cluster-node-timeout", "5000"],
                        cluster_bus=True)
            for _ in range(self.MASTERS)]
        # The first master's directory holds what the group shares (the
        # nodes' secret files, redis-cli's log).
        self.dir = self.servers[0].dir

    @property
    def ports(self):
        return [s.port for s in self.servers]

    def start(self):
        for s in self.servers:
            s.start()
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        log_path = os.path.join(self.dir, "cluster-create.log")
        with open(log_path, "wb") as log:
            create = subprocess.run(
                [cli, "--cluster", "create"]
                + [f"{harness.LOOPBACK}:{p}" for p in self.ports]
                + ["--cluster-replicas", "0", "--cluster-yes"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                timeout=REDIS_START_TIMEOUT_S * 2, check=False)
        if create.returncode != 0:
            with open(log_path, errors="replace") as f:
                raise AssertionError(
                    "redis-cli --cluster create failed:\n" + f.read())
        self.wait_ok()
        return self

    def wait_ok(self):
        """Waits until every master sees the whole cluster as ok (the slots
        are assigned, the nodes have met), as presenced needs to read the
        slot map."""
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S * 2
        for port in self.ports:
            while b"cluster_state:ok" not in redis_command(port, "CLUSTER",
                                                           "INFO"):
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"cluster_state is not ok on {harness.LOOPBACK}:"
                        f"{port}")
                time.sleep(0.02)

    def flush(self):
        """Empties every master (FLUSHALL); the cluster stays formed."""
        for port in self.ports:
            reply = redis_command(port, "FLUSHALL")
            if not reply.startswith(b"+OK"):
                raise AssertionError(f"FLUSHALL on {port}: {reply!r}")
        self.wait_ok()

    @property
    def url(self):
        return "redis://" + ",".join(f"{harness.LOOPBACK}:{p}"
                                     for p in self.ports)

    def stop(self):
        for s in self.servers:
            s.stop()

    def cleanup(self):
        for s in self.servers:
            s.cleanup()


_shared_redis_cluster = None


def shared_redis_cluster():
    """This process's Redis Cluster: started on first use, stopped at exit,
    emptied for every later user. Only one Cluster may use it at a time."""
    global _shared_redis_cluster
    if _shared_redis_cluster is None:
        servers = RedisClusterServers()
        try:
            servers.start()
        except BaseException:
            servers.cleanup()
            raise
        atexit.register(servers.cleanup)
        _shared_redis_cluster = servers
    else:
        _shared_redis_cluster.flush()
    return _shared_redis_cluster


_shared_sentinel_group = None


def shared_sentinel_group():
    """This process's RedisSentinelGroup (down-after-milliseconds 5000):
    started on first use, stopped at exit, emptied for every later user.
    Only one Cluster may use it at a time."""
    global _shared_sentinel_group
    if _shared_sentinel_group is None:
        group = RedisSentinelGroup(down_after_ms=5000)
        try:
            group.start()
        except BaseException:
            group.cleanup()
            raise
        atexit.register(group.cleanup)
        _shared_sentinel_group = group
    else:
        _shared_sentinel_group.flush()
    return _shared_sentinel_group


SHARED_REDIS = {"cluster": shared_redis_cluster,
                "sentinel": shared_sentinel_group}


class Cluster:
    """N presenced nodes on one Redis, used like one harness.Server.

    `redis`: "single" (one redis-server of its own), "cluster" (the
    process's shared_redis_cluster) or "sentinel" (its shared_sentinel_group;
    for these two, `redis` is set by start()); None takes
    PRESENCED_BLACKBOX_REDIS, else "single"."""

    def __init__(self, nodes=3, test_clock=True, root_domain=None,
                 extra_args=(), admin_token=None, threads=2, secrets=None,
                 redis=None, **_ignored):
        redis = redis or os.environ.get("PRESENCED_BLACKBOX_REDIS", "single")
        self._shared_redis = SHARED_REDIS.get(redis)
        if self._shared_redis:
            self.redis = None
        elif redis == "single":
            self.redis = RedisServer()
        else:
            raise ValueError(f"unknown Redis topology {redis!r}: "
                             "single, cluster or sentinel")
        self.secret = "sec" + os.urandom(24).hex()
        # One per node (None: the group's), for tests of a foreign node.
        self.secrets = list(secrets or [None] * nodes)
        self.admin_token = admin_token or ("adm" + os.urandom(16).hex())
        self.nodes = [
            harness.Server(test_clock=test_clock, root_domain=root_domain,
                           extra_args=list(extra_args), threads=threads,
                           admin_token=self.admin_token)
            for _ in range(nodes)]
        self._turn = itertools.cycle(range(nodes))
        self._lock = threading.Lock()
        self.test_clock = test_clock

    def start(self):
        if self._shared_redis:
            self.redis = self._shared_redis()
        else:
            self.redis.start()
        for i, n in enumerate(self.nodes):
            path = write_secret_file(self.redis.dir, f"cluster-secret-{i}",
                                     self.secrets[i] or self.secret)
            n.extra_args += ["--store", self.redis.url,
                             "--cluster-secret-file", path]
            n.start()
        return self

    # -- harness.Server's interface, spread over the nodes --

    @property
    def port(self):
        """The next node's port: each request goes to the next node."""
        with self._lock:
            return self.nodes[next(self._turn)].port

    @property
    def stdout_lines(self):
        return [l for n in self.nodes for l in n.stdout_lines]

    def node(self, i):
        return self.nodes[i]

    def running(self):
        return all(n.running() for n in self.nodes)

    def stderr_text(self):
        return "\n".join(f"--- node {i} ---\n{n.stderr_text()}"
                         for i, n in enumerate(self.nodes))

    def stop(self):
        try:
            for n in self.nodes:
                if n.running():
                    n.stop()
        finally:
            if self.redis and not self._shared_redis:
                self.redis.stop()

    def cleanup(self):
        for n in self.nodes:
            n.cleanup()
        if self.redis and not self._shared_redis:
            self.redis.cleanup()

    def request(self, method, path, headers=None, body=b"", host=None):
        port = self.port
        return harness.http_request(
            port, method, path, headers, body,
            host=host if host is not None else f"{harness.LOOPBACK}:{port}")

    def admin(self, *args, **kwargs):
        return harness.Server.admin(self, *args, **kwargs)

    def set_clock(self, now):
        for n in self.nodes:
            n.set_clock(now)
        return now

    def create_realm(self, subdomain=None, name=None):
        return harness.Server.create_realm(self, subdomain, name)
