#!/usr/bin/env python3
"""soak_polls: the parked long polls of bench/soak.sh.

Creates --polls watcher users through the admin API (POST
/admin/v1/realms/{id}/users in the realm whose subdomain is "", one
keep-alive connection), then, one connection per watcher, registers an event
queue (presence events, modern format, no initial snapshot) and keeps a
`GET /api/v1/events?queue_id=..&last_event_id=..` parked on it: every answer
(events or a heartbeat) is followed at once by the next poll, as a Zulip
client does. A queue the server dropped (BAD_EVENT_QUEUE_ID) is registered
again; a closed connection is reopened.

With --queue-loop-users K (and --queue-loop-per-minute N), K more users
each open a new event queue N times a minute on a keep-alive connection and
never poll or delete any: a client that opens queues in a loop (issue 15).
The server keeps at most its per-user queue cap of them (20 by default),
dropping the stalest; without that cap they would pile up until they time
out.

Every second it rewrites --status-file (atomically) with one JSON object:
  ready       true once every watcher has its first poll parked
  watchers    watchers created
  in_flight   polls sent and not answered yet (= parked, seen from here)
  answers     poll answers so far (200)
  events      presence events received so far
  heartbeats  heartbeats received so far
  reregistered, reconnects, errors
  loop_registered, loop_refused, loop_errors   the queue-opening loop:
              queues opened, 429 answers, other failures
  cpu_s       CPU seconds this process has used
Loopback only; bounded: it exits on SIGTERM/SIGINT or after --max-seconds.
"""
import argparse
import asyncio
import base64
import http.client
import json
import os
import signal
import sys
import time
import urllib.parse


def log(msg):
    print(f"soak_polls: {msg}", file=sys.stderr, flush=True)


def create_watchers(host, port, token, count, prefix):
    """Creates `count` users through the admin API; returns [(email, key)]."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(method, path, body=None):
        data = None if body is None else json.dumps(body)
        conn.request(method, path, body=data, headers=auth)
        r = conn.getresponse()
        text = r.read()
        if r.status != 200:
            raise SystemExit(f"soak_polls: {method} {path}: HTTP {r.status} {text[:200]!r}")
        return json.loads(text)

    realms = call("GET", "/admin/v1/realms")["realms"]
    realm = [r for r in realms if r["subdomain"] == ""]
    if not realm:
        raise SystemExit("soak_polls: no realm with subdomain \"\"")
    realm_id = realm[0]["realm_id"]
    out = []
    t0 = time.monotonic()
    for i in range(count):
        email = f"{prefix}{i}@soak.example"
        u = call("POST", f"/admin/v1/realms/{realm_id}/users",
                 {"email": email, "full_name": f"Soak Watcher {i}"})
        out.append((email, u["api_key"]))
    conn.close()
    log(f"created {count} watcher users in realm {realm_id} through the admin API "
        f"in {time.monotonic() - t0:.1f} s")
    return out


class Stats:
    def __init__(self):
        self.watchers = 0
        self.parked_once = 0
        self.in_flight = 0
        self.answers = 0
        self.events = 0
        self.heartbeats = 0
        self.reregistered = 0
        self.reconnects = 0
        self.errors = 0
        self.loop_registered = 0
        self.loop_refused = 0
        self.loop_errors = 0


REG_BODY = urllib.parse.urlencode({
    "event_types": json.dumps(["presence"]),
    "fetch_event_types": json.dumps([]),
    "client_capabilities": json.dumps({"simplified_presence_events": True}),
}).encode()


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    close = False
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"connection" and v.strip().lower() == b"close":
            close = True
    body = await reader.readexactly(length) if length else b""
    return status, body, close


async def watcher(i, email, key, args, st, stop, first_parked):
    auth = "Basic " + base64.b64encode(f"{email}:{key}".encode()).decode()
    host_hdr = f"Host: {args.host}:{args.port}\r\n"
    counted = False
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(args.host, args.port)
        except OSError:
            st.errors += 1
            await asyncio.sleep(1)
            continue
        try:
            queue_id = None
            last = -1
            while not stop.is_set():
                if queue_id is None:
                    writer.write(
                        (f"POST /api/v1/register HTTP/1.1\r\n{host_hdr}"
                         f"Authorization: {auth}\r\n"
                         "Content-Type: application/x-www-form-urlencoded\r\n"
                         f"Content-Length: {len(REG_BODY)}\r\n\r\n").encode() + REG_BODY)
                    status, body, close = await read_response(reader)
                    if status != 200:
                        st.errors += 1
                        log(f"register {i}: HTTP {status} {body[:200]!r}")
                        await asyncio.sleep(1)
                        break
                    d = json.loads(body)
                    queue_id = d["queue_id"]
                    last = d.get("last_event_id", -1)
                    if close:
                        break
                    continue
                writer.write(
                    (f"GET /api/v1/events?queue_id={urllib.parse.quote(queue_id)}"
                     f"&last_event_id={last} HTTP/1.1\r\n{host_hdr}"
                     f"Authorization: {auth}\r\n\r\n").encode())
                st.in_flight += 1
                if not counted:
                    counted = True
                    st.parked_once += 1
                    if st.parked_once == st.watchers:
                        first_parked.set()
                try:
                    status, body, close = await read_response(reader)
                finally:
                    st.in_flight -= 1
                if status == 200:
                    st.answers += 1
                    for e in json.loads(body).get("events", []):
                        last = max(last, e.get("id", last))
                        if e.get("type") == "heartbeat":
                            st.heartbeats += 1
                        else:
                            st.events += 1
                elif status == 400 and b"BAD_EVENT_QUEUE_ID" in body:
                    st.reregistered += 1
                    queue_id = None
                else:
                    st.errors += 1
                    if st.errors <= 5:
                        log(f"poll {i}: HTTP {status} {body[:200]!r}")
                    await asyncio.sleep(1)
                if close:
                    break
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, KeyError):
            if not stop.is_set():
                st.reconnects += 1
                await asyncio.sleep(0.1)
        finally:
            writer.close()


async def queue_looper(i, email, key, args, st, stop):
    """Opens a queue every 60 / --queue-loop-per-minute seconds, on a fixed
    schedule, and never polls it."""
    auth = "Basic " + base64.b64encode(f"{email}:{key}".encode()).decode()
    request = (f"POST /api/v1/register HTTP/1.1\r\n"
               f"Host: {args.host}:{args.port}\r\n"
               f"Authorization: {auth}\r\n"
               "Content-Type: application/x-www-form-urlencoded\r\n"
               f"Content-Length: {len(REG_BODY)}\r\n\r\n").encode() + REG_BODY
    period = 60.0 / args.queue_loop_per_minute
    # Spread the loopers over one period.
    next_at = time.monotonic() + period * i / max(args.queue_loop_users, 1)
    writer = None
    while not stop.is_set():
        delay = next_at - time.monotonic()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), delay)
                break
            except asyncio.TimeoutError:
                pass
        next_at += period
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(args.host, args.port)
            writer.write(request)
            status, body, close = await read_response(reader)
            if status == 200:
                st.loop_registered += 1
            elif status == 429:
                st.loop_refused += 1
            else:
                st.loop_errors += 1
                if st.loop_errors <= 5:
                    log(f"queue loop {i}: HTTP {status} {body[:200]!r}")
            if close:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, ValueError):
            st.loop_errors += 1
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


def write_status(path, st, ready):
    d = {
        "t": round(time.time(), 3),
        "ready": ready,
        "watchers": st.watchers,
        "in_flight": st.in_flight,
        "answers": st.answers,
        "events": st.events,
        "heartbeats": st.heartbeats,
        "reregistered": st.reregistered,
        "reconnects": st.reconnects,
        "errors": st.errors,
        "loop_registered": st.loop_registered,
        "loop_refused": st.loop_refused,
        "loop_errors": st.loop_errors,
        "cpu_s": round(time.process_time(), 3),
    }
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(d) + "\n")
    os.replace(tmp, path)


async def main_async(args, creds, loop_creds):
    st = Stats()
    st.watchers = len(creds)
    stop = asyncio.Event()
    first_parked = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    deadline = time.monotonic() + args.max_seconds
    tasks = []
    # Open the connections a batch at a time so as not to flood the backlog.
    for start in range(0, len(creds), 200):
        for i in range(start, min(start + 200, len(creds))):
            email, key = creds[i]
            tasks.append(asyncio.create_task(
                watcher(i, email, key, args, st, stop, first_parked)))
        await asyncio.sleep(0.05)
    for i, (email, key) in enumerate(loop_creds):
        tasks.append(asyncio.create_task(
            queue_looper(i, email, key, args, st, stop)))
    ready = False
    while not stop.is_set() and time.monotonic() < deadline:
        if not ready and first_parked.is_set():
            ready = True
            log(f"{st.watchers} polls parked")
        write_status(args.status_file, st, ready)
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    write_status(args.status_file, st, ready)
    log(f"stopped: {st.answers} poll answers, {st.events} events, "
        f"{st.heartbeats} heartbeats, {st.reregistered} re-registered, "
        f"{st.reconnects} reconnects, {st.errors} errors, "
        f"queue loop: {st.loop_registered} opened, {st.loop_refused} refused, "
        f"{st.loop_errors} errors, "
        f"{time.process_time():.1f} s CPU")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--polls", type=int, default=2000)
    p.add_argument("--prefix", default="soakwatcher")
    p.add_argument("--status-file", required=True)
    p.add_argument("--max-seconds", type=float, default=1200)
    p.add_argument("--queue-loop-users", type=int, default=0)
    p.add_argument("--queue-loop-per-minute", type=float, default=150)
    args = p.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit("soak_polls: loopback only")
    if not 1 <= args.polls <= 20000:
        raise SystemExit("soak_polls: --polls must be 1..20000")
    token = os.environ.get("PRESENCED_ADMIN_TOKEN", "")
    if not token:
        raise SystemExit("soak_polls: PRESENCED_ADMIN_TOKEN is not set")
    if not 0 <= args.queue_loop_users <= 1000:
        raise SystemExit("soak_polls: --queue-loop-users must be 0..1000")
    if not 0 < args.queue_loop_per_minute <= 6000:
        raise SystemExit("soak_polls: --queue-loop-per-minute must be in (0, 6000]")
    creds = create_watchers(args.host, args.port, token, args.polls, args.prefix)
    loop_creds = []
    if args.queue_loop_users:
        loop_creds = create_watchers(args.host, args.port, token,
                                     args.queue_loop_users, args.prefix + "loop")
    asyncio.run(main_async(args, creds, loop_creds))


if __name__ == "__main__":
    main()
