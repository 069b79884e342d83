"""--version, --config FILE, --check-config and --admin-token-file (issue #16).

The real binary, as an operator runs it: flags read from a TOML file, the
command line overriding the file, unknown keys refused, a token file that
others can read refused, and the shipped example configuration
(deploy/presenced.toml) complete and parsing to the documented defaults.
"""

import os
import re
import secrets
import shutil
import subprocess
import tempfile
import unittest

import harness

EXAMPLE = os.path.join(harness.REPO_ROOT, "deploy", "presenced.toml")


def run(*args, env=None):
    return subprocess.run([harness.binary_path(), *args],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60, env=env)


def settings(output):
    """key -> value text of --check-config's TOML output."""
    out = {}
    for line in output.splitlines():
        m = re.fullmatch(r'\s*([a-z0-9-]+)\s*=\s*(.*?)\s*', line)
        if m:
            out[m.group(1)] = m.group(2).strip('"')
    return out


class ConfigTestCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="presenced-config-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path


class VersionTest(unittest.TestCase):
    def test_version_names_the_project_version(self):
        r = run("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(harness.REPO_ROOT, "CMakeLists.txt")) as f:
            version = re.search(r"project\(presenced VERSION ([0-9.]+)",
                                f.read()).group(1)
        self.assertRegex(r.stdout.strip(),
                         rf"^presenced {re.escape(version)}"
                         r"( \(git [0-9a-f]{7,40}\))?$")


class ConfigFileTest(ConfigTestCase):
    def test_file_sets_flags_and_command_line_overrides_it(self):
        path = self.write("p.toml",
                          'rate-limit = 17\nheartbeat-seconds = 5\n'
                          'root-domain = "chat.example.com"\n')
        r = run("--config", path, "--rate-limit", "23", "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        s = settings(r.stdout)
        self.assertEqual(s.get("rate-limit"), "23", r.stdout)
        self.assertEqual(s.get("heartbeat-seconds"), "5", r.stdout)
        self.assertEqual(s.get("root-domain"), "chat.example.com", r.stdout)

    def test_unknown_key_is_an_error(self):
        path = self.write("p.toml", "rate-limit = 5\nrate-limt = 5\n")
        r = run("--config", path, "--check-config")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("rate-limt", r.stderr + r.stdout)

    def test_section_is_an_error(self):
        path = self.write("p.toml", "[server]\nlisten = \"127.0.0.1:0\"\n")
        r = run("--config", path, "--check-config")
        self.assertNotEqual(r.returncode, 0, r.stdout)

    def test_bad_value_is_an_error(self):
        path = self.write("p.toml", "max-clients-per-user = 65\n")
        r = run("--config", path, "--check-config")
        self.assertNotEqual(r.returncode, 0, r.stdout)

    def test_missing_file_is_an_error(self):
        r = run("--config", os.path.join(self.dir, "absent.toml"),
                "--check-config")
        self.assertNotEqual(r.returncode, 0, r.stdout)

    def test_server_runs_from_the_file(self):
        # The file's admin token file and rate limit reach the running
        # server; the environment's token no longer opens the admin API.
        token = "tok" + secrets.token_hex(16)
        token_file = self.write("admin-token", token + "\n")
        path = self.write("p.toml",
                          f'admin-token-file = "{token_file}"\n'
                          'rate-limit = 3\n')
        server = harness.Server(extra_args=["--config", path]).start()
        try:
            server.admin("GET", "/realms", expect=401)
            server.admin_token = token
            realm = server.create_realm()
            user = realm.create_user()
            statuses = [user.client.raw("GET", "/realm/presence").status
                        for _ in range(5)]
            self.assertEqual(statuses, [200, 200, 200, 429, 429])
            server.stop()
        finally:
            server.cleanup()


class AdminTokenFileTest(ConfigTestCase):
    def test_token_file_readable_by_others_is_refused(self):
        for mode in (0o644, 0o640, 0o604):
            path = self.write("admin-token", "secret-token\n", mode)
            r = run("--admin-token-file", path, "--check-config")
            self.assertEqual(r.returncode, 2, f"mode {mode:o}: {r.stdout}")
            self.assertIn("readable only by the service", r.stderr)
            # And the server refuses to start with it.
            data = tempfile.mkdtemp(dir=self.dir)
            r = run("--admin-token-file", path, "--listen", "127.0.0.1:0",
                    "--data", data)
            self.assertEqual(r.returncode, 2, r.stdout)
            self.assertNotIn("listening on", r.stdout)

    def test_private_token_file_is_accepted(self):
        for mode in (0o600, 0o400):
            # At least 32 characters: a shorter token is refused at start.
            path = self.write("admin-token",
                              "secret-token-0123456789abcdef01234567\n", mode)
            r = run("--admin-token-file", path, "--check-config")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("secret-token", r.stdout + r.stderr)

    def test_missing_token_file_is_refused(self):
        r = run("--admin-token-file", os.path.join(self.dir, "none"),
                "--check-config")
        self.assertEqual(r.returncode, 2)


class ExampleConfigTest(ConfigTestCase):
    """deploy/presenced.toml: every flag, each with its default."""

    def example_lines(self):
        with open(EXAMPLE) as f:
            return [m.groups() for m in
                    (re.fullmatch(r"# ([a-z0-9-]+) = (.*)", line.rstrip("\n"))
                     for line in f) if m]

    def test_example_parses_as_shipped(self):
        r = run("--config", EXAMPLE, "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_every_flag_is_in_the_example(self):
        help_text = run("--help").stdout
        flags = set(re.findall(r"^\s+--([a-z0-9-]+)", help_text, re.M))
        self.assertIn("rate-limit", flags)
        # Not settings: these only act on the command line.
        flags -= {"help", "version", "config", "check-config"}
        listed = {key for key, _ in self.example_lines()}
        self.assertEqual(sorted(flags - listed), [],
                         "flags missing from deploy/presenced.toml")
        self.assertEqual(sorted(listed - flags), [],
                         "keys in deploy/presenced.toml that are no flag")

    def test_example_values_are_the_defaults(self):
        # Every commented line, uncommented, must parse and change nothing.
        uncommented = self.write(
            "all.toml",
            "".join(f"{k} = {v}\n" for k, v in self.example_lines()))
        with_file = run("--config", uncommented, "--check-config")
        self.assertEqual(with_file.returncode, 0, with_file.stderr)
        defaults = run("--check-config")
        self.assertEqual(defaults.returncode, 0, defaults.stderr)
        self.assertEqual(settings(with_file.stdout), settings(defaults.stdout))
        self.assertGreater(len(settings(defaults.stdout)), 20)


if __name__ == "__main__":
    unittest.main()
