# Admin listener (/healthz, /readyz, /metrics only there), the Prometheus exposition checked by the real
# promtool, counters/histograms/gauges moving with real requests, and the access log formats (json, combined).
import json
import os
import subprocess
import unittest

from harness import (HELLO_ROUTE, DaemonTestCase, Conn, basic_config, fetch_metrics, fetch_metrics_text,
                     http_get, http_request, metric_series, metric_sum, require_tool, run_curl, run_edge,
                     wait_metric, wait_until)

CONFIG = basic_config(HELLO_ROUTE + """  - name: upload
    match: {path: /upload, method: POST}
    respond: {status: 201, body: "stored\\n"}
""")


class AdminTest(DaemonTestCase):
    def test_healthz_readyz(self):
        d = self.daemon(CONFIG)
        r = http_get(d.admin, "/healthz")
        self.assertEqual((r.status, r.body), (200, b"ok\n"), r.describe())
        r = http_get(d.admin, "/readyz")
        self.assertEqual(r.status, 200, r.describe())

    def test_metrics_only_on_admin_listener(self):
        d = self.daemon(CONFIG)
        r = http_get(d.admin, "/metrics")
        self.assertEqual(r.status, 200, r.describe())
        self.assertTrue((r.header("Content-Type") or "").startswith("text/plain"), r.describe())
        self.assertIn(b"virex_build_info", r.body)
        r = http_get(d.public, "/metrics")
        self.assertEqual(r.status, 404, r.describe())
        # admin listeners serve only the admin endpoints, not routes
        r = http_get(d.admin, "/hello")
        self.assertEqual(r.status, 404, r.describe())

    def test_public_route_may_claim_metrics_path(self):
        d = self.daemon(basic_config("""  - name: fake-metrics
    match: {path: /metrics}
    respond: {body: "mine\\n"}
"""))
        r = http_get(d.public, "/metrics")
        self.assertEqual((r.status, r.body), (200, b"mine\n"), r.describe())
        self.assertEqual(http_get(d.admin, "/metrics").status, 200)

    def test_promtool_check_metrics_passes(self):
        promtool = require_tool("promtool")
        d = self.daemon(CONFIG)
        for path in ("/hello", "/nope", "/hello"):       # populate labelled series and the histogram
            http_get(d.public, path)
        http_request(d.public, "POST", "/hello")          # 405
        text = fetch_metrics_text(d.admin)
        cp = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=30)
        self.assertEqual(cp.returncode, 0, f"promtool check metrics:\n{cp.stdout}{cp.stderr}\n--- input ---\n"
                                           f"{text}")

    def test_metric_families_present_with_labels(self):
        d = self.daemon(CONFIG)
        http_get(d.public, "/hello")
        samples = fetch_metrics(d.admin)
        names = {n for n, _, _ in samples}
        for fam in ("virex_http_requests_total", "virex_http_request_duration_seconds_bucket",
                    "virex_http_request_duration_seconds_sum", "virex_http_request_duration_seconds_count",
                    "virex_http_connections_open", "virex_http_connections_total",
                    "virex_http_received_bytes_total", "virex_http_sent_bytes_total",
                    "virex_build_info"):
            self.assertIn(fam, names, f"missing {fam}")
        text = fetch_metrics_text(d.admin)
        for fam, typ in (("virex_http_requests_total", "counter"),
                         ("virex_http_request_duration_seconds", "histogram"),
                         ("virex_http_connections_open", "gauge"),
                         ("virex_config_reloads_total", "counter"),
                         ("virex_http_parse_errors_total", "counter")):
            self.assertRegex(text, rf"(?m)^# TYPE {fam} {typ}$", f"TYPE line of {fam}")
        for labels, _ in metric_series(samples, "virex_http_requests_total"):
            self.assertEqual(set(labels), {"listener", "route", "status_class"}, labels)
        cp = run_edge("version")
        build = metric_series(samples, "virex_build_info")
        self.assertEqual(len(build), 1, build)
        self.assertEqual(build[0][1], 1.0)
        self.assertIn(build[0][0].get("version", "<none>"), cp.stdout, "build_info version vs `version`")
        self.assertEqual((build[0][0].get("node"), build[0][0].get("region")), ("t", "r"), build)

    def test_counters_move_after_requests(self):
        d = self.daemon(CONFIG)
        m0 = fetch_metrics(d.admin)
        c = Conn(d.public)
        self.addCleanup(c.close)
        for _ in range(3):
            self.assertEqual(c.request("GET", "/hello").status, 200)
        self.assertEqual(c.request("GET", "/nope").status, 404)
        self.assertEqual(c.request("DELETE", "/hello").status, 405)
        self.assertEqual(c.request("POST", "/upload", body=b"x" * 100).status, 201)
        sent_bytes = len(c.sent)

        ok = wait_metric(d.admin, "virex_http_requests_total", 3, listener="public", route="hello",
                         status_class="2xx")
        self.assertEqual(ok, 3)
        m = fetch_metrics(d.admin)
        # The 404 and the 405 (path matched, method did not, so no route matched) count with route="none".
        self.assertEqual(metric_sum(m, "virex_http_requests_total", listener="public", route="none",
                                    status_class="4xx"), 2, "404 and 405 count with route=\"none\"")
        self.assertEqual(metric_sum(m, "virex_http_requests_total", listener="public", route="upload",
                                    status_class="2xx"), 1)
        self.assertEqual(metric_sum(m, "virex_http_requests_total", listener="public", status_class="4xx"), 2)
        self.assertEqual(metric_sum(m, "virex_http_requests_total", listener="public"), 6)
        self.assertEqual(metric_sum(m, "virex_http_request_duration_seconds_count", listener="public",
                                    route="hello"), 3)
        inf = [v for ls, v in metric_series(m, "virex_http_request_duration_seconds_bucket")
               if ls.get("listener") == "public" and ls.get("route") == "hello" and ls.get("le") == "+Inf"]
        self.assertEqual(inf, [3.0])
        self.assertGreater(metric_sum(m, "virex_http_request_duration_seconds_sum", listener="public",
                                      route="hello"), 0)
        self.assertEqual(metric_sum(m, "virex_http_connections_total", listener="public")
                         - metric_sum(m0, "virex_http_connections_total", listener="public"), 1)
        self.assertGreaterEqual(metric_sum(m, "virex_http_connections_open", listener="public"), 1,
                                "our keep-alive connection is open")
        c.close()
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_http_connections_open",
                                      listener="public") == 0, 5, what="connections_open back to 0")
        m = fetch_metrics(d.admin)      # byte counters may be flushed per read or at close: both are done now
        received = metric_sum(m, "virex_http_received_bytes_total", listener="public")
        self.assertEqual(received, sent_bytes, "received bytes = every byte the client sent")
        self.assertGreater(metric_sum(m, "virex_http_sent_bytes_total", listener="public"), 6 * 100)

    def test_access_log_json(self):
        d = self.daemon(basic_config(HELLO_ROUTE, access_log=("$DIR/access.log", "json")))
        cp = run_curl("-o", "/dev/null", "-H", "Referer: http://ref.example/", "-A", "probe/1.0",
                      f"http://127.0.0.1:{d.public}/hello?x=1")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        http_get(d.public, "/nope")
        d.stop()                                   # flushes the log; the lines are complete after exit 0
        with open(os.path.join(d.dir, "access.log")) as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        self.assertEqual(len(lines), 2, lines)
        # Each worker hands its lines over in chunks: lines of different workers need not be in time order.
        rec = next(r for r in map(json.loads, lines) if r["target"] != "/nope")
        want_keys = {"time", "client", "method", "host", "target", "version", "status", "bytes_in", "bytes_out",
                     "duration_s", "route", "referer", "user_agent"}
        self.assertTrue(want_keys <= set(rec), f"missing keys {want_keys - set(rec)} in {rec}")
        self.assertEqual(rec["method"], "GET")
        self.assertEqual(rec["target"], "/hello?x=1")
        self.assertEqual(int(rec["status"]), 200)
        self.assertEqual(rec["route"], "hello")
        self.assertEqual(rec["referer"], "http://ref.example/")
        self.assertEqual(rec["user_agent"], "probe/1.0")
        self.assertIn("127.0.0.1", rec["client"])
        self.assertGreater(int(rec["bytes_out"]), 3)
        self.assertGreater(int(rec["bytes_in"]), 0)
        self.assertGreaterEqual(float(rec["duration_s"]), 0)
        rec2 = next(r for r in map(json.loads, lines) if r["target"] == "/nope")
        self.assertEqual(int(rec2["status"]), 404)

    def test_access_log_combined(self):
        d = self.daemon(basic_config(HELLO_ROUTE, access_log=("$DIR/access.log", "combined")))
        cp = run_curl("-o", "/dev/null", "-H", "Referer: http://ref.example/", "-A", "probe/1.0",
                      f"http://127.0.0.1:{d.public}/hello")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        d.stop()
        with open(os.path.join(d.dir, "access.log")) as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        self.assertEqual(len(lines), 1, lines)
        # nginx combined: $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
        # "$http_referer" "$http_user_agent", then rt=<seconds> route="<name>" trace_id="<W3C trace id>"
        self.assertRegex(lines[0], r'^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] '
                                   r'"GET /hello HTTP/1\.1" 200 3 "http://ref\.example/" "probe/1\.0" '
                                   r'rt=\d+(\.\d+)? route="hello" trace_id="[0-9a-f]{32}"$')

    def test_access_log_stdout(self):
        d = self.daemon(basic_config(HELLO_ROUTE, access_log=("-", "json")))
        http_get(d.public, "/hello")
        d.stop()
        recs = [json.loads(ln) for ln in d.stdout().splitlines() if ln.startswith("{")]
        self.assertEqual([r["target"] for r in recs], ["/hello"], d.stdout())


if __name__ == "__main__":
    unittest.main()
