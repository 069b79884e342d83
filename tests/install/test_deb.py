"""`cpack -G DEB`: the Debian packages, inspected (issue #16).

Runs CPack on the build tree (already built) into a temporary directory and
reads both packages with dpkg-deb: the files each ships, where the unit and
the configuration land, the Depends dpkg-shlibdeps computed, the conffile and
the maintainer scripts. Whether the package installs and runs on a fresh
Debian 12 is shown by hand with the newcomer rig (README, "Install as a
service").

Environment (CTest sets it): PRESENCE_BUILD_DIR, CPACK_COMMAND.
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("PRESENCE_BUILD_DIR") or os.path.join(
    REPO_ROOT, "build", "debug")
CPACK = os.environ.get("CPACK_COMMAND", "cpack")


def run(args, **kwargs):
    return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=900, **kwargs)


def project_version():
    with open(os.path.join(REPO_ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(presenced VERSION ([0-9.]+)",
                         f.read()).group(1)


class DebTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="presenced-deb-")
        r = run([CPACK, "-G", "DEB", "-B", cls.tmp], cwd=BUILD_DIR)
        if r.returncode != 0:
            raise AssertionError(f"cpack failed:\n{r.stdout}{r.stderr}")
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        version = project_version()
        cls.server = os.path.join(cls.tmp, f"presenced_{version}_{arch}.deb")
        cls.dev = os.path.join(cls.tmp, f"presenced-dev_{version}_{arch}.deb")
        made = sorted(os.path.basename(p)
                      for p in glob.glob(os.path.join(cls.tmp, "*.deb")))
        if made != sorted(map(os.path.basename, (cls.server, cls.dev))):
            raise AssertionError(f"cpack made {made}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def files(self, deb):
        r = run(["dpkg-deb", "-c", deb])
        self.assertEqual(r.returncode, 0, r.stderr)
        # "-rwxr-xr-x root/root 123 2026-01-01 00:00 ./usr/bin/presenced"
        return {line.split()[5][1:]: line.split()[0]
                for line in r.stdout.splitlines()}

    def field(self, deb, name):
        r = run(["dpkg-deb", "-f", deb, name])
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip()

    def test_server_package_files(self):
        files = self.files(self.server)
        for path in ("/usr/bin/presenced", "/usr/bin/presencectl",
                     "/usr/bin/presence-top"):
            self.assertIn(path, files)
            self.assertTrue(files[path].startswith("-rwxr-xr-x"), files[path])
        for path in ("/lib/systemd/system/presenced.service",
                     "/etc/presenced/presenced.toml",
                     "/usr/share/man/man1/presenced.1",
                     "/usr/share/man/man1/presencectl.1",
                     "/usr/share/man/man1/presence-top.1"):
            self.assertIn(path, files)
        # The SDK is in the -dev package only.
        self.assertFalse([p for p in files if p.startswith("/usr/include")],
                         files)
        self.assertFalse([p for p in files if p.endswith(".a")], files)

    def test_unit_in_package_names_usr_bin(self):
        unpacked = os.path.join(self.tmp, "unpacked")
        r = run(["dpkg-deb", "-x", self.server, unpacked])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(unpacked, "lib/systemd/system/presenced.service")) as f:
            unit = f.read()
        self.assertRegex(unit, r"(?m)^ExecStart=/usr/bin/presenced --config "
                               r"/etc/presenced/presenced\.toml ")
        self.assertRegex(unit, r"(?m)^LoadCredential=admin-token:"
                               r"/etc/presenced/admin-token$")

    def test_server_package_depends_on_its_libraries(self):
        self.assertEqual(self.field(self.server, "Package"), "presenced")
        self.assertEqual(self.field(self.server, "Version"), project_version())
        depends = self.field(self.server, "Depends")
        for lib in ("libc6", "libstdc++6", "libsqlite3-0", "libssl3",
                    "libhiredis0.14", "libboost-json1.81.0",
                    "libboost-url1.81.0"):
            self.assertRegex(depends, rf"(^|, ){re.escape(lib)}( \(|,|$)",
                             depends)

    def test_server_package_control_files(self):
        control = os.path.join(self.tmp, "control")
        os.makedirs(control, exist_ok=True)
        r = run(["dpkg-deb", "-e", self.server, control])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(control, "conffiles")) as f:
            self.assertIn("/etc/presenced/presenced.toml", f.read().split())
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(control, script)
            self.assertTrue(os.access(path, os.X_OK), script)
            r = run(["sh", "-n", path])
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_dev_package_holds_the_sdk(self):
        self.assertEqual(self.field(self.dev, "Package"), "presenced-dev")
        files = self.files(self.dev)
        names = {os.path.basename(p) for p in files}
        for name in ("libpresence_client.a", "libpresence_util.a",
                     "presencedConfig.cmake", "presencedConfigVersion.cmake",
                     "presencedTargets.cmake", "presenced-client.pc",
                     "presence_client.h"):
            self.assertIn(name, names)
        self.assertIn("/usr/include/presence/client/presence_client.h", files)
        self.assertFalse([p for p in files if p.startswith("/usr/bin/")])
        depends = self.field(self.dev, "Depends")
        for dep in ("libboost-json1.81-dev", "libboost-url1.81-dev",
                    "libssl-dev"):
            self.assertIn(dep, depends)


if __name__ == "__main__":
    unittest.main()
