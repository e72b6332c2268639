"""The admin listener's live dashboard, loaded in a real headless Chromium after traffic: the rendered DOM shows
the figures from /stats.json, and a screenshot is kept as a test artifact ($VIREX_ARTIFACT_DIR)."""
import html
import json
import os
import re
import subprocess
import tempfile
import unittest

from harness import DaemonTestCase, basic_config, http_get, require_tool, wait_until
from origin import Origin, Reply
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

    def test_upstreams_section(self):
        """A proxied route to a real origin (a) and a second endpoint failing its health checks (b): /stats.json
        has the cluster's totals and histogram and each endpoint's state; the page renders both tables."""
        a, b = Origin("a").start(), Origin("b").start()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        a.route("/boom", Reply(500, b"broken\n"))
        b.set_health(500)
        d = self.daemon(basic_config("  - {name: api, match: {prefix: /}, upstream: web}\n", workers=1) +
                        f'upstreams:\n  web: {{endpoints: ["{a.endpoint}", "{b.endpoint}"], '
                        "health_check: {interval: 200ms, timeout: 200ms, healthy: 1, unhealthy: 2}}\n")

        def web():
            up = json.loads(http_get(d.admin, "/stats.json").body)["upstreams"]
            self.assertEqual([u["cluster"] for u in up], ["web"])
            return up[0], {e["endpoint"]: e for e in up[0]["endpoints"]}
        wait_until(lambda: (lambda e: (e[a.endpoint]["healthy"], e[b.endpoint]["healthy"]) == (1, 0))(web()[1]),
                   10, what="b unhealthy, a healthy")
        for _ in range(5):
            self.assertEqual(http_get(d.public, "/x").status, 200)
        self.assertEqual(http_get(d.public, "/boom").status, 500)
        up, ends = wait_until(lambda: (lambda w: w if w[1][a.endpoint]["idle"] == 1 else None)(web()), 10,
                              what="a's connection back in the pool")
        self.assertEqual((up["requests"], up["responses"], up["responses_5xx"], up["errors"]), (6, 6, 1, 0), up)
        self.assertEqual((up["reused"], up["connections_opened"]), (5, 1), up)
        self.assertEqual(up["latency"]["cumulative"][-1], 6, up)
        self.assertEqual(ends[a.endpoint], {"endpoint": a.endpoint, "requests": 6, "healthy": 1, "ejected": 0,
                                            "active": 0, "idle": 1})
        self.assertEqual((ends[b.endpoint]["healthy"], ends[b.endpoint]["requests"]), (0, 0))

        dom = self.chromium("--dump-dom", f"http://127.0.0.1:{d.admin}/dashboard").stdout
        cells = r"<td[^>]*>([^<]*)</td>"
        m = re.search(r"<tr><td>web</td>" + cells * 4 + "</tr>", dom)
        self.assertTrue(m, dom[-3000:])
        self.assertRegex(m.group(3), r"^[0-9.]+ (µs|ms|s)$", "p99 of web")
        self.assertEqual(m.group(4), "1/2", "healthy endpoints of web")
        self.assertRegex(dom, rf"<td>web · {a.endpoint}</td><td class=\"ok\">up</td>")
        self.assertRegex(dom, rf"<td>web · {b.endpoint}</td><td class=\"bad\">down</td>")

        artifacts = os.environ.get("VIREX_ARTIFACT_DIR") or d.dir
        os.makedirs(artifacts, exist_ok=True)
        shot = os.path.join(artifacts, "dashboard-upstreams-phone.png")   # a phone's width
        cp = self.chromium("--window-size=390,1400", f"--screenshot={shot}", f"http://127.0.0.1:{d.admin}/dashboard")
        self.assertTrue(os.path.getsize(shot) > 10_000, cp.stderr[-2000:])
        d.stop()

    def test_cache_tiers_section(self):
        """A caching route: /stats.json counts the edge tier's lookups and hits (one miss, four hits) and what it
        holds; the page shows the tier's hit ratio."""
        a = Origin("a").start()
        self.addCleanup(a.close)
        a.route("/c", Reply(200, b"cached\n", headers=[("Cache-Control", "max-age=60")]))
        d = self.daemon(basic_config("  - {name: api, match: {prefix: /}, upstream: web, cache: {edge_ttl: 60s}}\n",
                                     workers=1) + f'upstreams:\n  web: {{endpoints: ["{a.endpoint}"]}}\n')
        for _ in range(5):
            self.assertEqual(http_get(d.public, "/c").status, 200)

        def edge():
            tiers = json.loads(http_get(d.admin, "/stats.json").body)["cache"]
            self.assertEqual([t["tier"] for t in tiers], ["edge"])
            return tiers[0] if tiers[0]["objects"] == 1 else None   # the store's gauges refresh every second
        t = wait_until(edge, 10, what="the edge tier's gauges")
        self.assertEqual((t["lookups"], t["hits"]), (5, 4), t)
        self.assertGreater(t["bytes"], 0)
        dom = self.chromium("--dump-dom", f"http://127.0.0.1:{d.admin}/dashboard").stdout
        self.assertRegex(dom, r'<tr><td>edge</td><td class="ok">80\.0 %</td>', dom[-3000:])
        d.stop()

    def test_shards_section(self):
        """Query routes on two real PostgreSQL shards (one with a streaming replica): /stats.json lists each shard's
        queries and each endpoint's role, pool and replica lag; the page renders the table."""
        from pgcluster import PgCluster
        pg = PgCluster(shards=2, replica_of=0, per_shard=1000, customers=2)
        pg.start()
        self.addCleanup(pg.stop)
        route = """  - name: orders
    match: {path: "/v1/customers/{customer_id}/orders", method: GET}
    query: {sql: "SELECT count(*) AS n FROM orders WHERE customer_id = $$1", params: ["customer_id:int64"],
            shard_by: customer_id}
"""
        d = self.daemon(basic_config(route, workers=1) + pg.databases_yaml() + "  lag_interval: 200ms\n")
        for c in (1, 2, 1001):
            self.assertEqual(http_get(d.public, f"/v1/customers/{c}/orders").status, 200)

        def shards():
            sh = {x["shard"]: x for x in json.loads(http_get(d.admin, "/stats.json").body)["shards"]}
            # Shard 0's replica also answers the lag probe's statements: its count is at least the two reads.
            ok = sh.keys() == {"0", "1"} and sh["0"]["queries"] >= 2 and sh["1"]["queries"] == 1 and any(
                e["role"] == "replica" and e["lag_ms"] >= 0 for e in sh["0"]["endpoints"])
            return sh if ok else None
        sh = wait_until(shards, 15, what="both shards' queries and the replica's measured lag")
        self.assertEqual(sh["1"]["queries"], 1)
        self.assertEqual(sh["0"]["errors"] + sh["1"]["errors"], 0)
        self.assertEqual(sorted(e["role"] for e in sh["0"]["endpoints"]), ["primary", "replica"])
        dom = self.chromium("--dump-dom", f"http://127.0.0.1:{d.admin}/dashboard").stdout
        self.assertRegex(dom, r"<tr><td>0 · [^<]+</td><td>replica</td>", dom[-3000:])
        self.assertRegex(dom, r"<tr><td>1 · [^<]+</td><td>primary</td>")
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
