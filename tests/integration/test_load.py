# Short wrk run against a respond route: no socket errors, no non-2xx, and the daemon's request counter agrees
# with what wrk completed (plus at most one in-flight request per wrk connection when wrk stopped).
# Correctness under concurrency only; speed is asserted in bench/load, never here.
import unittest

from harness import (HELLO_ROUTE, DaemonTestCase, basic_config, fetch_metrics, metric_sum, run_wrk,
                     wait_metric)

CONNS = 16


class LoadTest(DaemonTestCase):
    def test_wrk_counts_match(self):
        d = self.daemon(basic_config(HELLO_ROUTE, workers=2))
        res, out = run_wrk(f"http://127.0.0.1:{d.public}/hello", threads=1, conns=CONNS, secs=2)
        self.assertIsNotNone(res["requests"], out)
        self.assertGreater(res["requests"], 100, out)
        self.assertEqual(res["socket_errors"], {"connect": 0, "read": 0, "write": 0, "timeout": 0}, out)
        self.assertEqual(res["non2xx"], 0, out)
        n = res["requests"]
        wait_metric(d.admin, "virex_http_requests_total", n, listener="public", route="hello")
        m = fetch_metrics(d.admin)
        counted = metric_sum(m, "virex_http_requests_total", listener="public", route="hello")
        self.assertGreaterEqual(counted, n, f"daemon counted fewer requests than wrk completed\n{out}")
        self.assertLessEqual(counted, n + CONNS, f"daemon counted more than wrk sent\n{out}")
        self.assertEqual(metric_sum(m, "virex_http_requests_total", listener="public", route="hello",
                                    status_class="2xx"), counted)
        self.assertEqual(metric_sum(m, "virex_http_request_duration_seconds_count", listener="public",
                                    route="hello"), counted)
        # wrk opens CONNS connections plus, before the run, one probe connect to check the address.
        self.assertIn(metric_sum(m, "virex_http_connections_total", listener="public"), (CONNS, CONNS + 1), out)
        self.assertEqual(metric_sum(m, "virex_http_parse_errors_total"), 0)


if __name__ == "__main__":
    unittest.main()
