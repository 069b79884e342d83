import http.client, json, time, sys, os
port = int(open("out.txt").read().split(":")[-1])
tok = os.environ["PRESENCED_ADMIN_TOKEN"]
def req(method, path, body=None, headers={}):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse(); d = r.read(); c.close(); return r.status, d
def metric(name):
    s, d = req("GET", "/metrics", headers={"Authorization": "Bearer " + tok})
    for line in d.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return line
now = time.time() + 300
s, d = req("POST", "/admin/v1/clock", json.dumps({"now": now}),
           {"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
print("clock", s, d[:100])
t_end = time.time() + 8
lat = []
while time.time() < t_end:
    t0 = time.perf_counter(); s, _ = req("GET", "/healthz"); lat.append((time.perf_counter() - t0) * 1000)
    assert s == 200, s
lat.sort()
print("healthz n=%d p50=%.2f p99=%.2f max=%.2f ms" % (len(lat), lat[len(lat)//2], lat[int(len(lat)*0.99)], lat[-1]))
