"""Bulk onboarding: `presencectl import` / `export` and the batch endpoint.

presencectl (PRESENCECTL_BINARY, else build/debug/presencectl) runs against
the server under test: one presenced with its SQLite store, or, with
PRESENCED_BLACKBOX_NODES=3, three nodes on one Redis (each request to the
next node), so the batch endpoint is checked in both store modes.
"""

import json
import os
import pty
import re
import select
import stat
import subprocess
import tempfile
import time

import harness
from bbtest import ServerTestCase

CTL_TIMEOUT_S = 240


def ctl_binary():
    path = os.environ.get("PRESENCECTL_BINARY") or os.path.join(
        harness.REPO_ROOT, "build", "debug", "presencectl")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"presencectl not found: {path} "
                           "(build it, or set PRESENCECTL_BINARY)")
    return path


def summary(stdout):
    """The `key value` summary lines as a dict of ints (dry_run kept as
    a string)."""
    out = {}
    for line in stdout.splitlines():
        k, _, v = line.partition(" ")
        out[k] = int(v) if v.isdigit() else v
    return out


class ImportTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="presenced-import-")
        self.addCleanup(self.tmp.cleanup)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)
        return p

    def ctl(self, *args, stderr_tty=False):
        """Runs presencectl; returns (exit code, stdout, stderr)."""
        argv = [ctl_binary(), "--server",
                f"http://127.0.0.1:{self.server.port}", *args]
        env = dict(os.environ, PRESENCED_ADMIN_TOKEN=self.server.admin_token)
        if not stderr_tty:
            p = subprocess.run(argv, env=env, capture_output=True, text=True,
                               stdin=subprocess.DEVNULL,
                               timeout=CTL_TIMEOUT_S)
            return p.returncode, p.stdout, p.stderr
        # stderr on a terminal (a pty), stdout on a pipe.
        master, slave = pty.openpty()
        try:
            p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=slave)
            os.close(slave)
            slave = None
            err = b""
            while True:
                ready, _, _ = select.select([master], [], [], CTL_TIMEOUT_S)
                if not ready:
                    p.kill()
                    break
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                err += chunk
            out = p.stdout.read().decode()
            p.stdout.close()
            return p.wait(timeout=CTL_TIMEOUT_S), out, err.decode()
        finally:
            os.close(master)
            if slave is not None:
                os.close(slave)

    def directory(self, realm):
        body = self.server.admin("GET", f"/realms/{realm.id}/users").json()
        return {u["email"]: u for u in body["users"]}

    def keys(self, path):
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], "email,user_id,api_key")
        return {email: (int(uid), key) for email, uid, key in
                (line.split(",") for line in lines[1:])}

    def assert_key_works(self, realm, email, key):
        c = harness.ZulipClient(self.server, email, key, realm.host)
        r = c.post_presence("active")
        self.assertEqual(r.status, 200, r)

    CSV = ("email,full_name,role,is_bot,can_access_all_users\n"
           "ada@example.com,\"Lovelace, Ada\",administrator,false,true\n"
           "bot@example.com,Build Bot,member,true,\n"
           "gus@example.com,Gus Guest,guest,false,false\n")

    # -- import ------------------------------------------------------------

    def test_import_creates_users_and_writes_keys_mode_0600(self):
        r = self.realm()
        users = self.write("users.csv", self.CSV)
        keys = self.path("keys.csv")
        rc, out, err = self.ctl("import", str(r.id), users, "--keys-file",
                                keys)
        self.assertEqual(rc, 0, err)
        self.assertEqual(summary(out), {"created": 3, "updated": 0,
                                        "unchanged": 0, "failed": 0}, out)
        self.assertEqual(stat.S_IMODE(os.stat(keys).st_mode), 0o600)
        got = self.keys(keys)
        self.assertEqual(set(got), {"ada@example.com", "bot@example.com",
                                    "gus@example.com"})
        d = self.directory(r)
        ada, bot, gus = (d[e] for e in ("ada@example.com", "bot@example.com",
                                        "gus@example.com"))
        self.assertEqual((ada["full_name"], ada["role"], ada["is_bot"]),
                         ("Lovelace, Ada", "administrator", False))
        self.assertTrue(bot["is_bot"])
        self.assertTrue(bot["can_access_all_users"], "empty cell: default")
        self.assertEqual((gus["role"], gus["can_access_all_users"]),
                         ("guest", False))
        for email, (uid, key) in got.items():
            self.assertEqual(d[email]["user_id"], uid)
        self.assert_key_works(r, "ada@example.com", got["ada@example.com"][1])
        self.assert_key_works(r, "gus@example.com", got["gus@example.com"][1])
        # No key in the directory listing.
        listing = self.server.admin("GET", f"/realms/{r.id}/users").body
        for _, key in got.values():
            self.assertNotIn(key.encode(), listing)

    def test_reimport_changes_nothing_and_an_edit_updates(self):
        r = self.realm()
        users = self.write("users.csv", self.CSV)
        rc, _, err = self.ctl("import", str(r.id), users, "--keys-file",
                              self.path("k1"))
        self.assertEqual(rc, 0, err)
        first_keys = self.keys(self.path("k1"))
        before = self.directory(r)

        rc, out, err = self.ctl("import", str(r.id), users, "--keys-file",
                                self.path("k2"))
        self.assertEqual(rc, 0, err)
        self.assertEqual(summary(out), {"created": 0, "updated": 0,
                                        "unchanged": 3, "failed": 0}, out)
        self.assertEqual(self.keys(self.path("k2")), {})
        self.assertEqual(self.directory(r), before)

        # A new name, a new role, an email in other case: two updates.
        edited = (self.CSV.replace("Build Bot", "CI Bot")
                  .replace("gus@example.com,Gus Guest,guest,false,false",
                           "GUS@example.com,Gus Guest,member,false,false"))
        rc, out, err = self.ctl("import", str(r.id),
                                self.write("edited.csv", edited),
                                "--keys-file", self.path("k3"))
        self.assertEqual(rc, 0, err)
        self.assertEqual(summary(out), {"created": 0, "updated": 2,
                                        "unchanged": 1, "failed": 0}, out)
        after = self.directory(r)
        self.assertEqual(after["bot@example.com"]["full_name"], "CI Bot")
        self.assertEqual(after["gus@example.com"]["role"], "member")
        self.assertEqual(after["gus@example.com"]["user_id"],
                         before["gus@example.com"]["user_id"])
        # Keys are never changed by an update.
        self.assert_key_works(r, "gus@example.com",
                              first_keys["gus@example.com"][1])

    def test_bad_rows_are_named_and_nothing_is_applied(self):
        r = self.realm()
        users = self.write("bad.csv", (
            "email,full_name,role,is_bot\n"
            "ok@example.com,Fine,member,false\n"      # line 2
            "x@example.com,X,emperor,false\n"         # line 3: role
            "y@example.com,Y,member,maybe\n"          # line 4: is_bot
            "OK@example.com,Again,member,false\n"     # line 5: duplicate
            "\"multi\nline\"@example.com,Z,member,false\n"))  # line 6
        keys = self.path("keys.csv")
        rc, out, err = self.ctl("import", str(r.id), users, "--keys-file",
                                keys)
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("bad.csv:3: role: must be one of", err)
        self.assertIn("bad.csv:4: is_bot: must be true or false, not 'maybe'",
                      err)
        self.assertIn("bad.csv:5: email: same email as 2", err)
        self.assertIn("nothing was imported", err)
        self.assertEqual(summary(out)["failed"], 3, out)
        self.assertEqual(self.directory(r), {})
        self.assertFalse(os.path.exists(keys), "no keys file for nothing")

        # Rows only the server can judge (the email's shape), found in its
        # checking pass: still nothing applied, the line named.
        users = self.write("bad2.csv", (
            "email,full_name\n"
            "fine@example.com,Fine\n"
            "\"multi\nline\"@example.com,Z\n"          # lines 3-4
            "no-at-sign,Nope\n"                        # line 5
            "ctl@example.com,\"Tab\there\"\n"))        # line 6
        rc, out, err = self.ctl("import", str(r.id), users, "--keys-file",
                                keys, "--batch-size", "2")
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("bad2.csv:3: email: must look like name@domain", err)
        self.assertIn("bad2.csv:5: email: must look like name@domain", err)
        self.assertIn("bad2.csv:6: full_name: must be 1-100 bytes", err)
        self.assertEqual(summary(out)["failed"], 3, out)
        self.assertEqual(self.directory(r), {})

    def test_bad_json_is_named_by_position(self):
        r = self.realm()
        users = self.write("users.json", json.dumps([
            {"email": "a@example.com"},
            {"email": "b@example.com", "is_bot": "yes"},
            {"email": "c@example.com", "api_key": "x"}]))
        rc, out, err = self.ctl("import", str(r.id), users, "--keys-file",
                                self.path("keys"))
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("users.json: user 2: is_bot: not a boolean", err)
        self.assertIn("users.json: user 3: api_key: unknown field", err)
        self.assertEqual(self.directory(r), {})
        rc, out, err = self.ctl("import", str(r.id),
                                self.write("broken.json", "[{"),
                                "--keys-file", self.path("keys"))
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("broken.json: not JSON", err)

    def test_batch_endpoint_checks_every_row_first(self):
        r = self.realm()
        resp = self.server.admin("POST", f"/realms/{r.id}/users:batch", {
            "users": [{"email": "a@example.com"},
                      {"email": "b@example.com", "role": "king"},
                      {"email": "nope"}]}, expect=400)
        body = resp.json()
        self.assertEqual(body["result"], "error", body)
        self.assertEqual([(e["index"], e["field"]) for e in body["errors"]],
                         [(1, "role")], body)
        resp = self.server.admin("POST", f"/realms/{r.id}/users:batch", {
            "users": [{"email": "a@example.com"}, {"email": "nope"}]},
            expect=400)
        self.assertEqual([(e["index"], e["field"])
                          for e in resp.json()["errors"]], [(1, "email")])
        self.assertEqual(self.directory(r), {})
        # Dry run: the counts, nothing applied, no key.
        resp = self.server.admin("POST", f"/realms/{r.id}/users:batch", {
            "users": [{"email": "a@example.com"}], "dry_run": True})
        body = resp.json()
        self.assertEqual((body["created"], body["dry_run"]), (1, True), body)
        self.assertNotIn("api_key", body["users"][0])
        self.assertEqual(self.directory(r), {})
        self.server.admin("POST", "/realms/999999/users:batch",
                          {"users": []}, expect=404)

    def test_keys_file_is_never_overwritten_unless_asked(self):
        r = self.realm()
        users = self.write("users.csv", self.CSV)
        keys = self.write("keys.csv", "precious\n")
        os.chmod(keys, 0o644)
        rc, out, err = self.ctl("import", str(r.id), users, "--keys-file",
                                keys)
        self.assertEqual(rc, 2, (out, err))
        self.assertIn("refusing to overwrite", err)
        with open(keys, encoding="utf-8") as f:
            self.assertEqual(f.read(), "precious\n")
        self.assertEqual(self.directory(r), {}, "refused before anything")
        rc, out, err = self.ctl("import", str(r.id), users)
        self.assertEqual(rc, 2, (out, err))
        self.assertIn("--keys-file FILE is required", err)

        rc, out, err = self.ctl("import", str(r.id), users, "--keys-file",
                                keys, "--overwrite-keys")
        self.assertEqual(rc, 0, err)
        self.assertEqual(stat.S_IMODE(os.stat(keys).st_mode), 0o600)
        self.assertEqual(len(self.keys(keys)), 3)

    def test_dry_run_counts_without_applying(self):
        r = self.realm()
        users = self.write("users.csv", self.CSV)
        rc, out, err = self.ctl("import", str(r.id), users, "--dry-run")
        self.assertEqual(rc, 0, err)
        self.assertEqual(summary(out)["created"], 3, out)
        self.assertIn("dry_run true", out)
        self.assertEqual(self.directory(r), {})

    # -- export --------------------------------------------------------------

    def test_export_round_trip_is_all_unchanged(self):
        r = self.realm()
        rc, _, err = self.ctl("import", str(r.id),
                              self.write("users.csv", self.CSV),
                              "--keys-file", self.path("keys"))
        self.assertEqual(rc, 0, err)
        self.server.admin("PATCH", f"/realms/{r.id}/users/"
                          f"{self.directory(r)['bot@example.com']['user_id']}",
                          {"is_active": False})
        keys = {k for _, k in self.keys(self.path("keys")).values()}
        for fmt in ("csv", "json"):
            out_path = self.path(f"export.{fmt}")
            rc, _, err = self.ctl("export", str(r.id), "-o", out_path)
            self.assertEqual(rc, 0, err)
            self.assertEqual(stat.S_IMODE(os.stat(out_path).st_mode), 0o600)
            with open(out_path, encoding="utf-8") as f:
                text = f.read()
            for k in keys:
                self.assertNotIn(k, text)
            self.assertIn("Lovelace, Ada", text)
            rc, out, err = self.ctl("import", str(r.id), out_path,
                                    "--keys-file", self.path(f"k-{fmt}"))
            self.assertEqual(rc, 0, err)
            self.assertEqual(summary(out), {"created": 0, "updated": 0,
                                            "unchanged": 3, "failed": 0},
                             (fmt, out))
        # To stdout, CSV by default; and into a new realm, the same users.
        rc, out, err = self.ctl("export", str(r.id))
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith(
            "email,full_name,role,is_bot,can_access_all_users\n"), out)
        other = self.realm()
        rc, out2, err = self.ctl("import", str(other.id),
                                 self.write("copy.csv", out),
                                 "--keys-file", self.path("k-copy"))
        self.assertEqual(rc, 0, err)
        self.assertEqual(summary(out2)["created"], 3, out2)
        strip = lambda d: {e: {k: v for k, v in u.items()  # noqa: E731
                               if k not in ("user_id", "is_active")}
                           for e, u in d.items()}
        self.assertEqual(strip(self.directory(other)),
                         strip(self.directory(r)))

    # -- the terminal --------------------------------------------------------

    def test_progress_bar_only_on_a_terminal(self):
        r = self.realm()
        rows = "".join(f"p{i}@example.com,P {i}\n" for i in range(40))
        users = self.write("users.csv", "email,full_name\n" + rows)
        rc, out, err = self.ctl("import", str(r.id), users, "--keys-file",
                                self.path("k1"), "--batch-size", "10")
        self.assertEqual(rc, 0, err)
        self.assertNotIn("\r", err)
        self.assertEqual(err, "")
        r2 = self.realm()
        rc, out, err = self.ctl("import", str(r2.id), users, "--keys-file",
                                self.path("k2"), "--batch-size", "10",
                                stderr_tty=True)
        self.assertEqual(rc, 0, err)
        self.assertIn("importing [", err)
        self.assertIn("40/40 100%", err)
        self.assertIn("\r", err)
        self.assertEqual(summary(out)["created"], 40, out)

    # -- size ----------------------------------------------------------------

    def test_ten_thousand_users(self):
        r = self.realm()
        n = 10000
        rows = "".join(f"user{i}@example.com,User {i},member,false,true\n"
                       for i in range(n))
        users = self.write("big.csv",
                           "email,full_name,role,is_bot,"
                           "can_access_all_users\n" + rows)
        t0 = time.monotonic()
        rc, out, err = self.ctl("import", str(r.id), users, "--keys-file",
                                self.path("keys"))
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, err)
        self.assertEqual(summary(out), {"created": n, "updated": 0,
                                        "unchanged": 0, "failed": 0}, out)
        self.assertEqual(len(self.keys(self.path("keys"))), n)
        self.assertEqual(len(self.directory(r)), n)
        rc, out, err = self.ctl("import", str(r.id), users, "--keys-file",
                                self.path("keys2"))
        self.assertEqual(rc, 0, err)
        self.assertEqual(summary(out)["unchanged"], n, out)
        print(f"\nimport of {n} users: {took:.2f} s (this build)")
        self.assertTrue(re.fullmatch(r"[A-Za-z0-9]{32}", next(iter(
            self.keys(self.path("keys")).values()))[1]))
