#!/usr/bin/env python3
"""Start presenced on a data directory and report time to the listening line,
CPU used by then and resident memory. Usage: startmeasure.py DATA ROUNDS BINARY...
Binaries are started alternately, ROUNDS times each; loopback only."""
import subprocess, sys, time, os
def measure(binary, data):
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--data", data, "--threads", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    t = time.monotonic() - t0
    assert line.startswith("listening on"), line
    with open(f"/proc/{p.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    time.sleep(0.5)
    rss = 0
    with open(f"/proc/{p.pid}/status") as f:
        for l in f:
            if l.startswith("VmRSS"): rss = int(l.split()[1])
    p.terminate(); p.wait(timeout=60)
    return t, cpu, rss
data = sys.argv[1]
for rnd in range(int(sys.argv[2])):
    for b in sys.argv[3:]:
        t, cpu, rss = measure(b, data)
        print(f"{b}: wall {t:.2f} s cpu {cpu:.2f} s rss {rss/1024:.0f} MiB ({rss*1024/1e6:.0f} B/user)", flush=True)
