"""The admin listener's live dashboard, loaded in a real headless Chromium after traffic: the rendered DOM shows
the figures from /stats.json, and a screenshot is kept as a test artifact ($VIREX_ARTIFACT_DIR)."""
import html
import json
import os
import re
import subprocess
import tempfile
import unittest

from harness import DaemonTestCase, basic_config, http_get, require_tool
from test_signals import hello

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  "--virtual-time-budget=4000"]


def element_text(dom, element_id):
    m = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    return html.unescape(m.group(1)) if m else None


class DashboardTest(DaemonTestCase):
    def chromium(self, *args):
        exe = require_tool("chromium")
        with tempfile.TemporaryDirectory() as profile:
            return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                                  capture_output=True, text=True, timeout=120)

    def test_dashboard_renders_live_figures(self):
        d = self.daemon(basic_config(hello("v1")))
        for _ in range(7):
            self.assertEqual(http_get(d.public, "/hello").status, 200)
        for _ in range(3):
            self.assertEqual(http_get(d.public, "/missing").status, 404)
        stats = json.loads(http_get(d.admin, "/stats.json").body)
        self.assertEqual(stats["requests"], 10, stats)       # the admin listener's own requests are left out
        self.assertEqual(stats["status"].get("2xx"), 7, stats)
        self.assertEqual({r["route"]: r["requests"] for r in stats["routes"]}, {"hello": 7, "none": 3})
        self.assertEqual(stats["latency"]["cumulative"][-1], 10, stats)

        cp = self.chromium("--dump-dom", f"http://127.0.0.1:{d.admin}/dashboard")
        dom = cp.stdout
        self.assertEqual(element_text(dom, "state"), "live", dom[-2000:] + cp.stderr[-2000:])
        self.assertEqual(element_text(dom, "total"), "10", dom[-2000:])
        for figure in ("p50", "p99"):
            text = element_text(dom, figure)
            self.assertRegex(text or "", r"^[0-9.]+ (µs|ms|s)$", f"{figure}: {text!r}")
            self.assertGreater(float(text.split()[0]), 0)
        self.assertIn(">hello<", dom, "the route table lists the route")

        artifacts = os.environ.get("VIREX_ARTIFACT_DIR") or d.dir
        os.makedirs(artifacts, exist_ok=True)
        shot = os.path.join(artifacts, "dashboard.png")
        cp = self.chromium("--window-size=1100,800", f"--screenshot={shot}", f"http://127.0.0.1:{d.admin}/dashboard")
        self.assertTrue(os.path.getsize(shot) > 10_000, cp.stderr[-2000:])
        d.stop()

    def test_stats_and_dashboard_only_on_admin_listeners(self):
        d = self.daemon(basic_config(hello("v1")))
        self.assertEqual(http_get(d.public, "/stats.json").status, 404)
        self.assertEqual(http_get(d.public, "/dashboard").status, 404)
        r = http_get(d.admin, "/dashboard")
        self.assertEqual(r.status, 200)
        self.assertIn(b"<title>Virex Edge</title>", r.body)
        self.assertNotRegex(r.body.decode(), r'<script[^>]+src=|<link[^>]+href=|https?://', "self-contained")
        d.stop()


if __name__ == "__main__":
    unittest.main()
