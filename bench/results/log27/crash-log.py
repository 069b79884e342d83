#!/usr/bin/env python3
"""Leaves in a stopped server's store the presence log a crash at a million
users would leave at its worst: ROWS rows (the merge threshold and a flush),
flushes of BATCH rows each, every one in user order with an own row and a
client row per user, as the server's flushes append them.

Usage: crash-log.py DATA_DIR [ROWS] [BATCH]
"""
import os
import random
import sqlite3
import sys

data, rows, batch = sys.argv[1], 262_144 + 33_400, 33_400
if len(sys.argv) > 2:
    rows = int(sys.argv[2])
if len(sys.argv) > 3:
    batch = int(sys.argv[3])
db = sqlite3.connect(os.path.join(data, "presence.sqlite3"))
(realm,) = db.execute("SELECT id FROM realms ORDER BY id LIMIT 1").fetchone()
(users,) = db.execute("SELECT count(*) FROM users").fetchone()
(first_user,) = db.execute("SELECT min(id) FROM users").fetchone()
rng = random.Random(27)
now = 1_800_000_000_000_000
written = 0
b = 0
with db:
    while written < rows:
        b += 1
        ids = sorted(rng.sample(range(users), batch // 2))
        out = []
        for i in ids:
            u = first_user + i
            t = now + b * 1_000_000
            out.append((b, u, realm, None, t, t, b))
            out.append((b, u, realm, "website", t, t, b))
        db.executemany(
            "INSERT INTO presence_log (batch, user_id, realm_id, client, "
            "last_connected, last_active, last_update_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", out)
        written += len(out)
print(f"crash-log.py: {written} rows in {b} flushes")
