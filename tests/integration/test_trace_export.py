"""Trace export over OTLP/gRPC to a real receiver (tests/tools/otlp_receiver, a gRPC TraceService on the project's
OTLP protos): a proxied request yields a server span (child of the caller's span) and a client span for the
upstream exchange (child of the server span), whose id is the parent the origin saw in its traceparent. Sampling:
ratio 1 exports everything; ratio 0 still exports errors (tail rule) but not a plain 200."""
import json
import os
import re
import subprocess
import threading
import unittest

from harness import DaemonTestCase, basic_config, http_request, wait_until
from origin import Origin, Reply

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class Receiver:
    """The OTLP receiver tool on a free port; collects the JSON span lines it prints."""

    def __init__(self):
        path = os.environ.get("VIREX_OTLP_RECEIVER_BIN")
        if not path or not os.access(path, os.X_OK):
            raise AssertionError(f"VIREX_OTLP_RECEIVER_BIN={path!r} is not an executable (ctest sets it)")
        self.proc = subprocess.Popen([path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = self.proc.stdout.readline()   # bounded: the tool prints its port first, or exits
        m = re.match(r"PORT (\d+)", first or "")
        if not m:
            self.proc.kill()
            raise AssertionError(f"otlp_receiver did not print its port: {first!r} {self.proc.stderr.read()}")
        self.port = int(m.group(1))
        self.spans, self.lock = [], threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.strip():
                with self.lock:
                    self.spans.append(json.loads(line))

    def of_trace(self, trace_id):
        with self.lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]

    def close(self):
        self.proc.kill()
        self.proc.wait(10)
        self.thread.join(10)
        self.proc.stdout.close()
        self.proc.stderr.close()


def config(receiver_port, origin_endpoint, ratio):
    return (basic_config("""  - name: api
    match: {prefix: /}
    upstream: web
""", workers=1).replace(
        "observability: {log_level: info}",
        f'observability: {{log_level: info, tracing: {{otlp_endpoint: "127.0.0.1:{receiver_port}", '
        f"sample_ratio: {ratio}, slow_threshold: 10s}}}}") +
        f'upstreams:\n  web: {{endpoints: ["{origin_endpoint}"], retries: {{attempts: 0}}}}\n')


class TraceExportTest(DaemonTestCase):
    def setUp(self):
        self.rx = Receiver()
        self.addCleanup(self.rx.close)
        self.origin = Origin("a")
        self.origin.start()
        self.addCleanup(self.origin.close)
        self.origin.route("/ok", Reply(200, b"ok"))

    def test_server_and_upstream_spans_with_the_right_parents(self):
        d = self.daemon(config(self.rx.port, self.origin.endpoint, 1.0))
        r = http_request(d.public, "GET", "/ok", headers=[("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")])
        self.assertEqual(r.status, 200, r.describe())
        wait_until(lambda: len(self.rx.of_trace(CALLER_TRACE)) >= 2, what="two spans at the receiver")
        spans = {s["kind"]: s for s in self.rx.of_trace(CALLER_TRACE)}
        server, client = spans[2], spans[3]           # OTLP SpanKind: 2 server, 3 client
        self.assertEqual(server["parent_span_id"], CALLER_SPAN, "the server span is a child of the caller's span")
        self.assertEqual(server["name"], "GET api")
        self.assertEqual(server["attributes"].get("http.response.status_code"), 200)
        self.assertEqual(client["parent_span_id"], server["span_id"], "the upstream span is under the server span")
        self.assertEqual(client["name"], "upstream web")
        self.assertEqual(client["attributes"].get("server.address"), self.origin.endpoint)
        self.assertLessEqual(server["start"], client["start"])
        self.assertLessEqual(client["end"], server["end"] + 5_000_000)  # clocks read at slightly different points
        self.assertEqual(server["service_name"], "virex-edge")
        sent = self.origin.requests()[-1].header_all("traceparent")
        self.assertEqual(sent, [f"00-{CALLER_TRACE}-{client['span_id']}-01"],
                         "the origin's parent is the client span, and the sampled flag is passed on")

    def test_ratio_zero_exports_errors_only(self):
        d = self.daemon(config(self.rx.port, self.origin.endpoint, 0.0))
        ok_trace, err_trace = "1" * 32, "2" * 32
        r = http_request(d.public, "GET", "/ok", headers=[("traceparent", f"00-{ok_trace}-{CALLER_SPAN}-00")])
        self.assertEqual(r.status, 200, r.describe())
        self.origin.stop()   # the next request fails: 502, exported by the tail rule
        r = http_request(d.public, "GET", "/ok", headers=[("traceparent", f"00-{err_trace}-{CALLER_SPAN}-00")])
        self.assertEqual(r.status, 502, r.describe())
        wait_until(lambda: len(self.rx.of_trace(err_trace)) >= 2, what="the failed request's spans")
        err = {s["kind"]: s for s in self.rx.of_trace(err_trace)}
        self.assertEqual(err[2]["status_code"], 2, "the server span is an error (OTLP STATUS_CODE_ERROR)")
        # The pooled connection went with the origin: one try on it, one free retry on a fresh connection.
        self.assertIn(err[3]["attributes"].get("upstream.tries"), (1, 2))
        self.assertEqual(err[3]["status_code"], 2)
        # One worker hands spans over in request order and the exporter keeps that order: the 200's spans would
        # have arrived first.
        self.assertEqual(self.rx.of_trace(ok_trace), [], "a 200 at ratio 0 with an unsampled caller is not exported")

    def test_edge_cache_outcome_on_the_server_span(self):
        self.origin.route("/c", Reply(200, b"c", headers=[("Cache-Control", "max-age=60")]))
        cfg = config(self.rx.port, self.origin.endpoint, 1.0).replace(
            "    upstream: web\n", "    upstream: web\n    cache: {edge_ttl: 60s}\n", 1)
        d = self.daemon(cfg)
        traces = ["3" * 32, "4" * 32]
        for t in traces:
            r = http_request(d.public, "GET", "/c", headers=[("traceparent", f"00-{t}-{CALLER_SPAN}-01")])
            self.assertEqual(r.status, 200, r.describe())
        wait_until(lambda: self.rx.of_trace(traces[1]), what="the second request's span")
        miss = {s["kind"]: s for s in self.rx.of_trace(traces[0])}
        hit = {s["kind"]: s for s in self.rx.of_trace(traces[1])}
        self.assertEqual(miss[2]["attributes"].get("virex.cache.edge"), "miss")
        self.assertIn(3, miss, "the miss went upstream")
        self.assertEqual(hit[2]["attributes"].get("virex.cache.edge"), "hit")
        self.assertNotIn(3, hit, "a hit has no upstream span")
        # The lookup itself: an internal span (kind 1) under the server span, at the start of the request.
        wait_until(lambda: 1 in {s["kind"] for s in self.rx.of_trace(traces[1])}, what="the lookup span")
        for t, outcome in ((traces[0], "miss"), (traces[1], "hit")):
            spans = {s["kind"]: s for s in self.rx.of_trace(t)}
            lookup, server = spans[1], spans[2]
            self.assertEqual(lookup["name"], "edge cache lookup")
            self.assertEqual(lookup["parent_span_id"], server["span_id"])
            self.assertEqual(lookup["attributes"].get("virex.cache.edge"), outcome)
            self.assertGreaterEqual(lookup["start"], server["start"])
            self.assertLessEqual(lookup["end"], server["end"])

    def test_metrics_count_exported_spans(self):
        d = self.daemon(config(self.rx.port, self.origin.endpoint, 1.0))
        for _ in range(3):
            self.assertEqual(http_request(d.public, "GET", "/ok").status, 200)
        wait_until(lambda: len(self.rx.spans) >= 6, what="six spans")
        from harness import fetch_metrics, metric_sum
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_tracing_spans_exported_total") >= 6,
                   what="exported spans counted")


if __name__ == "__main__":
    unittest.main()
