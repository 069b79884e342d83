"""/metrics and the alerting rules checked by Prometheus's own tool (#16).

`promtool check metrics` (Debian's prometheus package, installed by
scripts/install-deps.sh --test) lints a live scrape taken after the server
has answered pings, a long poll, an error and a rate-limited request, so that
every family, labelled series and histogram is in it. `promtool check rules`
validates deploy/prometheus/presenced-alerts.yml, and the metric names its
expressions use must be ones the server exports. Without promtool these
tests fail; they are never skipped.
"""

import os
import re
import shutil
import subprocess
import unittest

from bbtest import ServerTestCase
from harness import http_request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ALERTS = os.path.join(REPO, "deploy", "prometheus", "presenced-alerts.yml")


def promtool():
    path = shutil.which("promtool")
    if path is None:
        raise AssertionError("promtool not found: Debian's prometheus package "
                             "(scripts/install-deps.sh --test) provides it")
    return path


def run_promtool(args, stdin=None):
    return subprocess.run([promtool()] + args, input=stdin,
                          capture_output=True, timeout=60)


class PromtoolTest(ServerTestCase):
    # A low rate limit so that a 429 (and its counter) shows in the scrape.
    server_kwargs = {"extra_args": ["--rate-limit", "5"]}

    def scrape(self):
        resp = http_request(self.server.port, "GET", "/metrics")
        self.assertEqual(resp.status, 200)
        return resp.body

    def exported_names(self, text):
        names = set()
        for line in text.decode().splitlines():
            m = re.match(r"# TYPE (\S+) (\S+)", line)
            if m:
                names.add(m.group(1))
                if m.group(2) == "histogram":
                    for suffix in ("_bucket", "_sum", "_count"):
                        names.add(m.group(1) + suffix)
        return names

    def test_live_scrape_passes_promtool_check_metrics(self):
        r = self.realm()
        a = r.create_user()
        a.client.ping()
        # A long poll answered at once (a presence event waits in the queue)
        # and an error answer, for the labelled series and the histogram.
        reg = a.client.raw("POST", "/register", {}, validate=False)
        self.assertEqual(reg.status, 200)
        a.client.raw("GET", "/users/nobody@example.invalid/presence", {},
                     validate=False)
        statuses = [a.client.raw("POST", "/users/me/presence",
                                 {"status": "active"}, validate=False).status
                    for _ in range(10)]
        self.assertIn(429, statuses)
        text = self.scrape()
        self.assertIn(b'presenced_request_duration_seconds_bucket{', text)
        self.assertIn(b'status="4xx"', text)
        result = run_promtool(["check", "metrics"], stdin=text)
        self.assertEqual(result.returncode, 0,
                         (result.stdout + result.stderr).decode()
                         + "\n--- scrape:\n" + text.decode())

    def test_alert_rules_pass_promtool_and_use_exported_metrics(self):
        result = run_promtool(["check", "rules", ALERTS])
        self.assertEqual(result.returncode, 0,
                         (result.stdout + result.stderr).decode())
        exported = self.exported_names(self.scrape())
        with open(ALERTS, encoding="utf-8") as f:
            rules = f.read()
        used = set(re.findall(r"\bpresenced_[a-z_]+", rules))
        self.assertTrue(used)
        self.assertEqual(used - exported, set(),
                         "metric names in the rules that /metrics lacks")


if __name__ == "__main__":
    unittest.main()
