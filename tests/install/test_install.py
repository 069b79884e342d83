"""`cmake --install` as an operator and an SDK user see it (issue #16).

Installs the build tree into a temporary prefix once, then checks what is
there: the three binaries (each answering --version), their man pages, the
example configuration (which the installed server accepts), the systemd unit
(`systemd-analyze verify` passes, `systemd-analyze security` rates it 2.0 or
below), and the SDK: examples/buddy_list configured with find_package against
the installed tree only, compiled again with `pkg-config` flags, and run
against the installed presenced (--demo) on loopback.

Environment (CTest sets it): PRESENCE_BUILD_DIR, CMAKE_COMMAND, PRESENCE_CXX.
"""

import base64
import os
import re
import shutil
import subprocess
import tempfile
import threading
import unittest
import urllib.request

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("PRESENCE_BUILD_DIR") or os.path.join(
    REPO_ROOT, "build", "debug")
CMAKE = os.environ.get("CMAKE_COMMAND", "cmake")
CXX = os.environ.get("PRESENCE_CXX", "c++")
BINARIES = ("presenced", "presencectl", "presence-top")
MAX_EXPOSURE = 2.0


def run(args, timeout=600, **kwargs):
    r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout, **kwargs)
    return r


def project_version():
    with open(os.path.join(REPO_ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(presenced VERSION ([0-9.]+)",
                         f.read()).group(1)


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="presenced-install-")
        cls.prefix = os.path.join(cls.tmp, "prefix")
        r = run([CMAKE, "--install", BUILD_DIR, "--prefix", cls.prefix])
        if r.returncode != 0:
            raise AssertionError(f"cmake --install failed:\n{r.stdout}{r.stderr}")
        cls.unit = os.path.join(cls.prefix, "lib", "systemd", "system",
                                "presenced.service")
        cls.config = os.path.join(cls.prefix, "etc", "presenced",
                                  "presenced.toml")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.prefix, *parts)

    def test_binaries_answer_version(self):
        for name in BINARIES:
            binary = self.path("bin", name)
            self.assertTrue(os.access(binary, os.X_OK), binary)
            r = run([binary, "--version"], timeout=60)
            self.assertEqual(r.returncode, 0, f"{name}: {r.stderr}")
            self.assertRegex(r.stdout.strip(),
                             rf"^{re.escape(name)} "
                             rf"{re.escape(project_version())}"
                             r"( \(git [0-9a-f]+\))?$")

    def test_man_pages_render(self):
        for name in BINARIES:
            page = self.path("share", "man", "man1", f"{name}.1")
            self.assertTrue(os.path.isfile(page), page)
            r = run(["man", "--warnings", "-l", "-Tutf8", page], timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr, "", f"{name}.1 has warnings")
            text = re.sub(".\b", "", r.stdout).replace("\u2010", "-")
            self.assertIn("--version", text)

    def test_installed_config_is_accepted(self):
        r = run([self.path("bin", "presenced"), "--config", self.config,
                 "--check-config"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_unit_names_the_installed_binary_and_config(self):
        with open(self.unit) as f:
            text = f.read()
        self.assertNotIn("@BINDIR@", text)
        self.assertNotIn("@CONFDIR@", text)
        exec_start = re.search(r"^ExecStart=(\S+) --config (\S+)", text, re.M)
        self.assertIsNotNone(exec_start, text)
        self.assertEqual(exec_start.group(1), self.path("bin", "presenced"))
        self.assertEqual(exec_start.group(2), self.config)
        for line in ("DynamicUser=yes", "StateDirectory=presenced",
                     "Restart=on-failure", "KillSignal=SIGTERM",
                     "ProtectSystem=strict", "NoNewPrivileges=yes",
                     "PrivateTmp=yes", "ProtectHome=yes",
                     "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                     "CapabilityBoundingSet=", "MemoryDenyWriteExecute=yes",
                     "SystemCallFilter=@system-service"):
            self.assertRegex(text, rf"(?m)^{re.escape(line)}$")

    def test_systemd_analyze_verify_passes(self):
        env = dict(os.environ, MANPATH=self.path("share", "man"))
        r = run(["systemd-analyze", "verify", self.unit], env=env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr.strip(), "", r.stderr)

    def test_systemd_analyze_security_rates_it_low(self):
        r = run(["systemd-analyze", "security", "--offline=true", self.unit],
                timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"Overall exposure level for presenced\.service: "
                      r"([0-9.]+)", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        exposure = float(m.group(1))
        print(f"systemd-analyze security: exposure {exposure}")
        self.assertLessEqual(exposure, MAX_EXPOSURE, r.stdout)

    def test_sdk_package_builds_the_example_and_it_runs(self):
        example = os.path.join(REPO_ROOT, "examples", "buddy_list")
        build = os.path.join(self.tmp, "example-cmake")
        # Only the installed tree: the source and build trees are not on
        # any search path, and the package registry is off.
        r = run([CMAKE, "-S", example, "-B", build, "-G", "Ninja",
                 f"-DCMAKE_CXX_COMPILER={CXX}",
                 f"-DCMAKE_PREFIX_PATH={self.prefix}",
                 "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run([CMAKE, "--build", build])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            cache = f.read()
        self.assertIn(f"presenced_DIR:PATH={self.prefix}", cache)
        self.assertNotIn(os.path.join(REPO_ROOT, "src"),
                         open(os.path.join(build, "build.ninja")).read())

        # The same program from pkg-config's flags alone.
        env = dict(os.environ, PKG_CONFIG_PATH=":".join(
            os.path.join(root, "pkgconfig") for root in
            (self.path("lib"), *self._multiarch_libdirs())))
        flags = run(["pkg-config", "--cflags", "--libs", "presenced-client"],
                    env=env, timeout=60)
        self.assertEqual(flags.returncode, 0, flags.stderr)
        includes = [os.path.normpath(f[2:]) for f in flags.stdout.split()
                    if f.startswith("-I")]
        self.assertIn(self.path("include", "presence"), includes)
        pc_binary = os.path.join(self.tmp, "buddy_list_pc")
        r = run([CXX, "-std=c++20", os.path.join(example, "main.cc"), "-o",
                 pc_binary, *flags.stdout.split()])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        for binary in (os.path.join(build, "buddy_list"), pc_binary):
            self._run_against_demo_server(binary)

    def _multiarch_libdirs(self):
        lib = self.path("lib")
        return [os.path.join(lib, d) for d in os.listdir(lib)
                if d.endswith("-linux-gnu")]

    def _run_against_demo_server(self, binary):
        data = tempfile.mkdtemp(dir=self.tmp)
        server = subprocess.Popen(
            [self.path("bin", "presenced"), "--listen", "127.0.0.1:0",
             "--data", data, "--demo", "--threads", "1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        try:
            url = key = None
            for line in server.stdout:
                m = re.match(r"listening on (http://127\.0\.0\.1:\d+)", line)
                if m:
                    url = m.group(1)
                m = re.match(r"demo: user alice@example\.com key (\S+)", line)
                if m:
                    key = m.group(1)
                if url and key:
                    break
            self.assertTrue(url and key, "no demo credentials from presenced")
            bob_key = None
            for line in server.stdout:
                m = re.match(r"demo: user bob@example\.com key (\S+)", line)
                if m:
                    bob_key = m.group(1)
                    break
            self.assertTrue(bob_key, "no demo key for bob")
            threading.Thread(target=server.stdout.read, daemon=True).start()
            # Bob is online, so the list has someone active to show.
            auth = base64.b64encode(f"bob@example.com:{bob_key}".encode())
            request = urllib.request.Request(
                url + "/api/v1/users/me/presence",
                data=b"status=active&slim_presence=true",
                headers={"Authorization": "Basic " + auth.decode()})
            with urllib.request.urlopen(request, timeout=30) as answer:
                self.assertEqual(answer.status, 200)
            key_file = os.path.join(data, "alice.key")
            with open(key_file, "w") as f:
                f.write(key + "\n")
            r = run([binary, url, "alice@example.com", key_file, "--once"],
                    timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("state: connected", r.stderr)
            self.assertRegex(r.stdout, r"(?m)^active\s+\S")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    unittest.main()
