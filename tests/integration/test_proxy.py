# Reverse proxy (`upstreams:` + a route's `upstream:`) against scripted in-test origins (origin.py) on
# loopback: relay and framing, proxy headers (hop-by-hop, X-Forwarded-*, Via, Host, rewrite), keep-alive
# pooling, errors and timeouts with Proxy-Status, retries, balancing, health checks and ejection, circuit
# breaking, streaming in bounded memory, request smuggling, WebSocket and the upstream metrics.
# Shape of each test: origins → inline YAML → daemon → real client → assert on what the origin saw, on the
# response and on the counters. One daemon per test; bounded waits only; ports are free ones.
import base64
import hashlib
import json
import os
import re
import threading
import unittest

from harness import (ConnectionClosed, Conn, DaemonTestCase, basic_config, build_request, fetch_metrics,
                     free_port, http_request, metric_series, metric_sum, wait_metric, wait_until)
from origin import (Blackhole, Close, Drip, Hold, Origin, Partial, Raw, Reply, Reset, Stream, Upload,
                    WebSocketEcho, pattern, pattern_sha256, ws_accept, ws_frame, ws_read_frame)

# ---- names the implementation may still adjust: kept in one place ------------------------------------------
M_REQUESTS = "virex_upstream_requests_total"          # {cluster}: requests sent upstream
M_CONNECTIONS = "virex_upstream_connections_total"    # {cluster, endpoint}: new upstream connections opened
M_RETRIES = "virex_upstream_retries_total"            # {cluster}
M_ERRORS = "virex_upstream_errors_total"              # {cluster, error}: error = the Proxy-Status error type
L_CLUSTER, L_ENDPOINT, L_ERROR = "cluster", "endpoint", "error"
PROXY_STATUS_NAME = "virex-edge"                      # the proxy's name in Proxy-Status (RFC 9209 §2)
NODE = "t"                                            # node.name in harness.basic_config
VIA = f"1.1 {NODE}"
TRUSTED_PEER = "127.0.0.2"                            # listed in proxy.trusted_proxies below
UNTRUSTED_PEER = "127.0.0.1"

MiB = 1024 * 1024
LIMITS = ("{max_header_bytes: 16KiB, max_uri_bytes: 8KiB, max_body_bytes: 1GiB, header_timeout: 10s, "
          "idle_timeout: 60s, drain_timeout: 3s}")
# Retries and passive ejection off: a test that wants them says so.
QUIET = {"retries": "{attempts: 0}", "outlier": "{consecutive_5xx: 0, consecutive_failures: 0}"}


def cluster_yaml(name, endpoints, **fields):
    """One entry of `upstreams:`; FIELDS are YAML values written as given (strings)."""
    lines = [f"  {name}:", "    endpoints: [" + ", ".join(f'"{e}"' for e in endpoints) + "]"]
    lines += [f"    {k}: {v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def routes_yaml(cluster="web", api_extra=""):
    """/api/* → CLUSTER with `/api` stripped (plus API_EXTRA lines), everything else → CLUSTER unchanged."""
    return f"""  - name: api
    match: {{prefix: /api/}}
    upstream: {cluster}
    rewrite: {{strip_prefix: /api}}
{api_extra}  - name: all
    match: {{prefix: /}}
    upstream: {cluster}
"""


def proxy_config(upstreams, routes=None, workers=1, limits=LIMITS):
    return (basic_config(routes or routes_yaml(), workers=workers, limits=limits) +
            f'proxy: {{trusted_proxies: ["{TRUSTED_PEER}/32"], via: true}}\n'
            f"upstreams:\n{upstreams}")


def tokens(values):
    """Comma-separated header values → stripped elements, in order."""
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


def proxy_error(resp):
    """(name, error) of the Proxy-Status header (RFC 9209), (None, None) when absent."""
    v = resp.header("Proxy-Status")
    if v is None:
        return None, None
    m = re.search(r';\s*error\s*=\s*("?)([A-Za-z0-9_]+)\1', v)
    return v.split(";")[0].strip().strip('"'), (m.group(2) if m else None)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class RssSampler:
    """Largest VmRSS of PID seen while running (a measurement, not a synchronisation)."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop_ev = pid, rss_kib(pid), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_ev.wait(0.02):
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (OSError, AssertionError):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.thread.join(5)
        self.peak = max(self.peak, rss_kib(self.pid))
        return False


def bounded_memory_env():
    """ASan keeps freed memory in a 256 MiB quarantine by default, which would look like growth: shrink it so
    RSS reflects what the proxy holds. Ignored by non-sanitizer builds."""
    base = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:strict_string_checks=1")
    return {"ASAN_OPTIONS": base + ":quarantine_size_mb=8:thread_local_quarantine_size_kb=256"}


class ProxyTestCase(DaemonTestCase):
    def origin(self, name, start=True):
        o = Origin(name)
        if start:
            o.start()
        self.addCleanup(o.close)
        return o

    def gate(self):
        """A threading.Event for Hold/Partial; opened before the daemon stops so no request holds its drain."""
        g = threading.Event()
        self._gates = getattr(self, "_gates", []) + [g]
        self.addCleanup(g.set)
        return g

    def proxy(self, upstreams, routes=None, workers=1, **kw):
        d = self.daemon(proxy_config(upstreams, routes, workers), **kw)
        self.addCleanup(lambda: [g.set() for g in getattr(self, "_gates", [])])   # runs before the stop
        return d

    def get(self, d, target, headers=None, host="localhost", timeout=10.0, method="GET", body=None):
        return http_request(d.public, method, target, headers=headers, body=body, host=host, timeout=timeout)

    def assert_proxy_error(self, resp, status, errors):
        errors = (errors,) if isinstance(errors, str) else tuple(errors)
        self.assertEqual(resp.status, status, resp.describe())
        name, error = proxy_error(resp)
        self.assertEqual(name, PROXY_STATUS_NAME, f"Proxy-Status names the proxy: {resp.describe()}")
        self.assertIn(error, errors, f"Proxy-Status error: {resp.describe()}")

    def errors_counted(self, d, error=None, at_least=1):
        labels = {L_CLUSTER: "web"}
        if error:
            labels[L_ERROR] = error
        return wait_metric(d.admin, M_ERRORS, at_least, **labels)


# ================================================================================================= relay ====

class RelayTest(ProxyTestCase):
    def test_status_headers_and_body_relayed(self):
        o = self.origin("a")
        o.route("/thing", Reply(201, b"created thing\n", headers=[("X-Custom", "v1"), ("Cache-Control", "no-store"),
                                                                   ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]))
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET))
        r = self.get(d, "/thing?q=1")
        self.assertEqual((r.status, r.body), (201, b"created thing\n"), r.describe())
        self.assertEqual(r.header("X-Custom"), "v1")
        self.assertEqual(r.header("Cache-Control"), "no-store")
        self.assertEqual(r.header_all("Set-Cookie"), ["a=1", "b=2"], "repeated headers kept apart, in order")
        self.assertEqual(r.header("X-Origin"), "a")
        seen = o.requests()
        self.assertEqual([(q.method, q.target) for q in seen], [("GET", "/thing?q=1")])

    def test_each_origin_framing_relayed_on_one_client_connection(self):
        o = self.origin("a")
        big = os.urandom(300_000)
        o.route("/len", Reply(200, big))
        o.route("/chunked", Reply(200, big, framing="chunked"))
        o.route("/close", Reply(200, big, framing="close"))
        o.route("/empty", Reply(204))
        o.route("/notmod", Reply(304, headers=[("ETag", '"x"')]))
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET))
        r = self.get(d, "/close")                 # close-delimited: the proxy may end the client connection too
        self.assertEqual((r.status, len(r.body), r.body == big), (200, len(big), True), r.describe())
        c = self.conn(d.public)
        for path in ("/len", "/chunked", "/len"):
            r = c.request("GET", path)
            self.assertEqual((r.status, len(r.body), r.body == big), (200, len(big), True), path)
        r = c.request("HEAD", "/len")
        self.assertEqual((r.status, r.body, r.header("Content-Length")), (200, b"", str(len(big))))
        self.assertEqual(c.request("GET", "/empty").status, 204)
        self.assertEqual(c.request("GET", "/notmod").status, 304)
        r = c.request("GET", "/len")              # still in sync after the bodiless responses
        self.assertEqual((r.status, r.body == big), (200, True), r.describe())

    def test_request_bodies_relayed(self):
        o = self.origin("a")
        o.route("/up", Upload(), method="POST")
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET))
        data = os.urandom(200_000)
        c = self.conn(d.public)
        r = c.request("POST", "/up", body=data)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(json.loads(r.body)["sha256"], hashlib.sha256(data).hexdigest())
        chunked = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in (data[:1000], data[1000:])) + \
            b"0\r\n\r\n"
        c.send(build_request("POST", "/up", headers=[("Transfer-Encoding", "chunked")]) + chunked)
        r = c.read_response("POST")
        self.assertEqual((r.status, json.loads(r.body)["size"]), (200, len(data)), r.describe())
        for q in o.requests(path="/up"):
            self.assertTrue(q.complete)
            self.assertEqual((q.body_len, q.body_sha256), (len(data), hashlib.sha256(data).hexdigest()))

    def test_strip_prefix_rewrite(self):
        o = self.origin("a")
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET))
        for target, want in (("/api/users?id=7", "/users?id=7"), ("/api/", "/"), ("/api/a/b", "/a/b"),
                             ("/apix", "/apix"), ("/other/api/x", "/other/api/x")):
            r = self.get(d, target)
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(o.requests()[-1].target, want, target)

    def test_client_host_passed_through(self):
        o = self.origin("a")
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET))
        self.assertEqual(self.get(d, "/h", host="shop.example:8080").status, 200)
        self.assertEqual(o.requests()[-1].header_all("Host"), ["shop.example:8080"])

    def test_host_header_override(self):
        o = self.origin("a")
        d = self.proxy(cluster_yaml("web", [o.endpoint], host_header="origin.internal", **QUIET))
        self.assertEqual(self.get(d, "/h", host="shop.example").status, 200)
        q = o.requests()[-1]
        self.assertEqual(q.header_all("Host"), ["origin.internal"])
        self.assertEqual(q.header_all("X-Forwarded-Host"), ["shop.example"], "the client's Host is kept here")


# =============================================================================================== headers ====

class HeadersTest(ProxyTestCase):
    def setUp(self):
        self.o = self.origin("a")
        self.d = self.proxy(cluster_yaml("web", [self.o.endpoint], **QUIET))

    def test_hop_by_hop_request_headers_removed(self):
        hop = [("Connection", "keep-alive, X-Hop-A, x-hop-b"), ("X-Hop-A", "1"), ("X-Hop-B", "2"),
               ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Trailer", "X-Sum"), ("Upgrade", "h2c"),
               ("Proxy-Authorization", "Basic Zm9vOmJhcg=="), ("Proxy-Connection", "keep-alive"),
               ("Proxy-Foo", "bar"), ("X-End-To-End", "kept")]
        r = self.get(self.d, "/hop", headers=hop)
        self.assertEqual(r.status, 200, r.describe())
        q = self.o.requests()[-1]
        names = {k.lower() for k, _ in q.headers}
        for gone in ("x-hop-a", "x-hop-b", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization",
                     "proxy-connection", "proxy-foo"):
            self.assertNotIn(gone, names, f"{gone} reached the origin: {q.headers}")
        self.assertEqual(q.header_all("X-End-To-End"), ["kept"])
        conn_tokens = {t.lower() for t in tokens(q.header_all("Connection"))}
        self.assertLessEqual(conn_tokens, {"keep-alive", "close"}, f"the client's Connection leaked: {q.headers}")

    def test_hop_by_hop_response_headers_removed(self):
        self.o.route("/resp", Reply(200, b"x", headers=[("Connection", "X-Resp-Hop"), ("X-Resp-Hop", "1"),
                                                        ("Keep-Alive", "timeout=5, max=100"),
                                                        ("X-Kept", "yes")]))
        r = self.get(self.d, "/resp")
        self.assertEqual((r.status, r.body), (200, b"x"), r.describe())
        self.assertIsNone(r.header("X-Resp-Hop"), r.describe())
        self.assertIsNone(r.header("Keep-Alive"), r.describe())
        self.assertNotIn("x-resp-hop", {t.lower() for t in tokens(r.header_all("Connection"))})
        self.assertEqual(r.header("X-Kept"), "yes")

    def xff(self, source, sent):
        c = Conn(self.d.public, source=source)
        self.addCleanup(c.close)
        r = c.request("GET", "/xff", headers=[("X-Forwarded-For", v) for v in sent])
        self.assertEqual(r.status, 200, r.describe())
        return tokens(self.o.requests()[-1].header_all("X-Forwarded-For"))

    def test_x_forwarded_for_from_untrusted_client_replaced(self):
        self.assertEqual(self.xff(UNTRUSTED_PEER, []), [UNTRUSTED_PEER])
        self.assertEqual(self.xff(UNTRUSTED_PEER, ["1.2.3.4"]), [UNTRUSTED_PEER], "a spoofed XFF is dropped")
        self.assertEqual(self.xff(UNTRUSTED_PEER, ["1.2.3.4", "5.6.7.8, 9.9.9.9"]), [UNTRUSTED_PEER])

    def test_x_forwarded_for_from_trusted_proxy_appended(self):
        self.assertEqual(self.xff(TRUSTED_PEER, ["1.2.3.4"]), ["1.2.3.4", TRUSTED_PEER])
        self.assertEqual(self.xff(TRUSTED_PEER, ["1.2.3.4", "5.6.7.8"]), ["1.2.3.4", "5.6.7.8", TRUSTED_PEER])
        self.assertEqual(self.xff(TRUSTED_PEER, []), [TRUSTED_PEER])

    def test_x_forwarded_proto_and_host(self):
        r = self.get(self.d, "/f", host="shop.example:8080",
                     headers=[("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example")])
        self.assertEqual(r.status, 200, r.describe())
        q = self.o.requests()[-1]
        self.assertEqual(q.header_all("X-Forwarded-Proto"), ["http"], "an untrusted client's value is replaced")
        self.assertEqual(q.header_all("X-Forwarded-Host"), ["shop.example:8080"])

    def test_via_on_request_and_response(self):
        self.o.route("/v", Reply(200, b"v", headers=[("Via", "1.1 origin-cache")]))
        r = self.get(self.d, "/v", headers=[("Via", "1.0 fred")])
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(tokens(self.o.requests()[-1].header_all("Via")), ["1.0 fred", VIA])
        self.assertEqual(tokens(r.header_all("Via")), ["1.1 origin-cache", VIA])
        r = self.get(self.d, "/plain")
        self.assertEqual(tokens(r.header_all("Via")), [VIA])
        self.assertEqual(tokens(self.o.requests()[-1].header_all("Via")), [VIA])


    def test_traceparent_propagated_with_a_new_parent_id(self):
        # W3C Trace Context §3.2: the caller's trace id and flags reach the origin; the parent id is this
        # proxy's span, not the caller's. Without an incoming one, a new trace starts.
        self.o.route("/t", Reply(200, b"t"))
        incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        r = self.get(self.d, "/t", headers=[("traceparent", incoming)])
        self.assertEqual(r.status, 200, r.describe())
        sent = self.o.requests()[-1].header_all("traceparent")
        self.assertEqual(len(sent), 1, sent)
        m = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", sent[0])
        self.assertIsNotNone(m, sent)
        self.assertEqual(m.group(1), "4bf92f3577b34da6a3ce929d0e0e4736")
        self.assertNotEqual(m.group(2), "00f067aa0ba902b7")
        self.assertEqual(m.group(3), "01")
        self.get(self.d, "/t", headers=[("traceparent", "00-garbage")])
        fresh = self.o.requests()[-1].header_all("traceparent")
        self.assertEqual(len(fresh), 1, fresh)
        self.assertRegex(fresh[0], r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$")
        self.assertNotIn("garbage", fresh[0])


# =============================================================================================== pooling ====

class PoolingTest(ProxyTestCase):
    WORKERS = 2

    def test_keepalive_reuse_over_one_client_connection(self):
        o = self.origin("a")
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET), workers=self.WORKERS)
        c = self.conn(d.public)
        for i in range(200):
            r = c.request("GET", f"/k/{i}")
            self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(len(o.requests()), 200)
        self.assertLessEqual(o.connections_accepted, 2, "one client connection lands on one worker")
        opened = wait_metric(d.admin, M_CONNECTIONS, o.connections_accepted, **{L_CLUSTER: "web"})
        self.assertEqual(opened, o.connections_accepted, f"{M_CONNECTIONS} counts the connections opened")
        series = [ls for ls, _ in metric_series(fetch_metrics(d.admin), M_CONNECTIONS) if ls.get(L_CLUSTER) == "web"]
        self.assertEqual({ls.get(L_ENDPOINT) for ls in series}, {o.endpoint}, series)
        self.assertEqual(wait_metric(d.admin, M_REQUESTS, 200, **{L_CLUSTER: "web"}), 200)

    def test_pool_shared_by_client_connections(self):
        o = self.origin("a")
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET), workers=self.WORKERS)
        for i in range(100):
            r = self.get(d, f"/fresh/{i}")            # a new client connection each time
            self.assertEqual(r.status, 200, r.describe())
        self.assertLessEqual(o.connections_accepted, 2 * self.WORKERS,
                             f"100 requests over 100 client connections opened {o.connections_accepted} "
                             "origin connections")

    def test_connection_not_reused_after_client_aborts_mid_body(self):
        o = self.origin("a")
        o.route("/big", Stream(64 * MiB))
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET))
        c = Conn(d.public)
        c.send(build_request("GET", "/big"))
        r = c.read_head()
        self.assertEqual(r.status, 200, r.describe())
        got = 0
        for piece in c.iter_body(r):
            got += len(piece)
            if got >= MiB:
                break
        c.close()
        big_conn = o.requests(path="/big")[0].conn_id
        o.wait_connection_closed(big_conn)
        self.assertTrue([x for x in o.connections if x.id == big_conn][0].closed_by_peer,
                        "the proxy closes an upstream connection whose body it did not read")
        r = self.get(d, "/small")
        self.assertEqual(r.status, 200, r.describe())
        self.assertNotEqual(o.requests(path="/small")[0].conn_id, big_conn)


# ================================================================================================ errors ====

class ErrorsTest(ProxyTestCase):
    def test_origin_refusing_connections_502(self):
        d = self.proxy(cluster_yaml("web", [f"127.0.0.1:{free_port()}"], **QUIET))
        r = self.get(d, "/x")
        self.assert_proxy_error(r, 502, "connection_refused")
        self.assertGreaterEqual(self.errors_counted(d, "connection_refused"), 1)

    def test_origin_down_then_up_again(self):
        o = self.origin("a")
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET))
        c = self.conn(d.public)
        self.assertEqual(c.request("GET", "/1").status, 200)
        o.stop()                                       # closes the pooled connection too
        r = c.request("GET", "/2")
        self.assertIn(r.status, (502, 503), r.describe())
        self.assert_proxy_error(r, r.status, ("connection_refused", "destination_unavailable"))
        o.start()
        wait_until(lambda: self.get(d, "/3").status == 200, 10, interval=0.05,
                   what="the proxy to reach the restarted origin")

    def test_connect_timeout_504(self):
        hole = Blackhole()
        self.addCleanup(hole.close)
        d = self.proxy(cluster_yaml("web", [hole.endpoint], timeouts="{connect: 300ms}", **QUIET))
        r = self.get(d, "/x", timeout=8)
        self.assert_proxy_error(r, 504, "connection_timeout")
        self.assertGreaterEqual(self.errors_counted(d, "connection_timeout"), 1)

    def test_first_byte_timeout_504_route_override(self):
        o = self.origin("a")
        o.route("/slow", Hold(self.gate()))
        d = self.proxy(cluster_yaml("web", [o.endpoint], timeouts="{connect: 1s, first_byte: 30s}", **QUIET),
                       routes=routes_yaml(api_extra="    timeouts: {first_byte: 500ms}\n"))
        r = self.get(d, "/api/slow", timeout=10)   # the cluster's 30s would outlast this client deadline
        self.assert_proxy_error(r, 504, "http_response_timeout")
        q = o.requests(path="/slow")[0]
        o.wait_connection_closed(q.conn_id)        # a timed-out connection is closed, never pooled
        self.assertGreaterEqual(self.errors_counted(d, "http_response_timeout"), 1)

    def test_idle_timeout_truncates_response(self):
        o = self.origin("a")
        o.route("/stall", Partial(100_000, 1000, then="hold", gate=self.gate()))
        d = self.proxy(cluster_yaml("web", [o.endpoint], timeouts="{first_byte: 2s, idle: 500ms}", **QUIET))
        c = self.conn(d.public)
        c.send(build_request("GET", "/stall"))
        with self.assertRaises(ConnectionClosed):
            c.read_response(timeout=8)
        o.wait_connection_closed(o.requests(path="/stall")[0].conn_id)
        self.assertGreaterEqual(self.errors_counted(d), 1)

    def test_request_timeout_truncates_response(self):
        o = self.origin("a")
        o.route("/drip", Drip(200, 0.05))         # 10 s of trickle, never idle for long
        d = self.proxy(cluster_yaml("web", [o.endpoint],
                                    timeouts="{first_byte: 2s, idle: 2s, request: 1s}", **QUIET))
        c = self.conn(d.public)
        c.send(build_request("GET", "/drip"))
        with self.assertRaises(ConnectionClosed):
            c.read_response(timeout=8)
        o.wait_connection_closed(o.requests(path="/drip")[0].conn_id)
        self.assertGreaterEqual(self.errors_counted(d), 1)

    def assert_truncated(self, behaviour, error):
        o = self.origin("a")
        o.route("/cut", behaviour)
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET))
        c = self.conn(d.public)
        c.send(build_request("GET", "/cut"))
        with self.assertRaises(ConnectionClosed, msg="a cut origin response must not end cleanly"):
            r = c.read_response(timeout=8)
            self.fail(f"got a complete response: {r.describe()}")
        self.assertGreaterEqual(self.errors_counted(d, error), 1)
        r = self.get(d, "/after")                 # the proxy itself is fine
        self.assertEqual(r.status, 200, r.describe())

    def test_origin_closing_mid_body_truncates_client(self):
        self.assert_truncated(Partial(100_000, 1000, then="close"), "http_response_incomplete")

    def test_origin_closing_mid_chunk_truncates_client(self):
        self.assert_truncated(Partial(100_000, 1000, then="close", framing="chunked"), "http_response_incomplete")

    def test_origin_reset_mid_body_truncates_client(self):
        self.assert_truncated(Partial(100_000, 1000, then="reset"), "http_response_incomplete")

    def test_origin_reset_before_response_502(self):
        o = self.origin("a")
        o.route("/rst", Reset())
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET))
        self.assert_proxy_error(self.get(d, "/rst"), 502, "connection_terminated")
        self.assertGreaterEqual(self.errors_counted(d, "connection_terminated"), 1)

    def test_origin_closing_before_response_502(self):
        o = self.origin("a")
        o.route("/fin", Close())
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET))
        self.assert_proxy_error(self.get(d, "/fin"), 502, "connection_terminated")

    def test_malformed_response_502(self):
        o = self.origin("a")
        o.route("/bad", Raw(b"HTTP/1.1 abc\r\n\r\n"))
        o.route("/bad2", Raw(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nxyz"))   # RFC 9112 §6.3 (5): 502
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET))
        self.assert_proxy_error(self.get(d, "/bad"), 502, "http_protocol_error")
        self.assert_proxy_error(self.get(d, "/bad2"), 502, "http_protocol_error")
        self.assertGreaterEqual(self.errors_counted(d, "http_protocol_error"), 1)

    def test_chunk_line_longer_than_the_read_buffer(self):
        # A 10 KiB chunk extension (allowed: under the 64 KiB line limit) must not stall the relay.
        o = self.origin("a")
        ext = b";x=" + b"a" * 10000
        o.route("/ext", Raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"5" + ext +
                            b"\r\nhello\r\n0\r\n\r\n"))
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET))
        r = self.get(d, "/ext", timeout=10)
        self.assertEqual((r.status, r.body), (200, b"hello"), r.describe())

    def test_bad_chunk_in_the_first_read_is_a_clean_502(self):
        # The head and a malformed chunk arrive together: nothing of the 200 may reach the client before the
        # 502, and the client connection stays usable (its framing is intact).
        o = self.origin("a")
        o.route("/badchunk", Raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n"))
        o.route("/ok", Reply(200, b"fine"))
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET))
        c = self.conn(d.public)
        c.send(build_request("GET", "/badchunk"))
        r = c.read_response()
        self.assert_proxy_error(r, 502, "http_protocol_error")
        c.send(build_request("GET", "/ok"))
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"fine"), r.describe())

    def test_bad_request_body_never_echoes_the_upstream_head(self):
        # A chunked upload whose chunk size is garbage: the client gets its 400 and nothing else — not the
        # head built for the upstream (X-Forwarded-For, Via, traceparent) nor its own body echoed back.
        o = self.origin("a")
        o.route("/up", Upload(), method="POST")
        d = self.proxy(cluster_yaml("web", [o.endpoint], **QUIET))
        c = self.conn(d.public)
        c.send(b"POST /up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4\r\nabcd\r\nzz\r\n")
        raw = c.read_until_close()
        self.assertTrue(raw.startswith(b"HTTP/1.1 400 "), raw[:200])
        self.assertEqual(raw.count(b"HTTP/1.1"), 1, raw)
        self.assertNotIn(b"X-Forwarded-For", raw)
        self.assertNotIn(b"abcd", raw)


# =============================================================================================== retries ====

NO_OUTLIER = "{consecutive_5xx: 0, consecutive_failures: 0}"
RETRY = "{attempts: 1, budget: 100%, min_concurrent: 10, backoff: 10ms, max_backoff: 50ms}"


class RetryTest(ProxyTestCase):
    def test_get_retried_on_refused_endpoint(self):
        b = self.origin("b")
        d = self.proxy(cluster_yaml("web", [f"127.0.0.1:{free_port()}", b.endpoint], retries=RETRY,
                                    outlier=NO_OUTLIER))
        for i in range(10):
            r = self.get(d, f"/r/{i}")
            self.assertEqual((r.status, r.header("X-Origin")), (200, "b"), r.describe())
        self.assertEqual(len(b.requests()), 10)
        self.assertGreaterEqual(wait_metric(d.admin, M_RETRIES, 1, **{L_CLUSTER: "web"}), 1)

    def test_get_retried_on_503_to_the_other_endpoint(self):
        a, b = self.origin("a"), self.origin("b")
        a.route("/r", Reply(503, b"busy"), prefix=True)
        d = self.proxy(cluster_yaml("web", [a.endpoint, b.endpoint], retries=RETRY, outlier=NO_OUTLIER))
        for i in range(10):
            r = self.get(d, f"/r/{i}")
            self.assertEqual((r.status, r.header("X-Origin")), (200, "b"), r.describe())
        self.assertGreaterEqual(len(a.requests()), 1, "round robin sent some first tries to a")
        self.assertEqual(len(b.requests()), 10)
        retried = {q.path for q in a.requests()}
        self.assertLessEqual(retried, {q.path for q in b.requests()}, "each 503 was retried on b")
        self.assertGreaterEqual(wait_metric(d.admin, M_RETRIES, len(retried), **{L_CLUSTER: "web"}), len(retried))

    def test_post_not_retried(self):
        a, b = self.origin("a"), self.origin("b")
        a.route("/p", Reset(), method="POST", prefix=True)       # the request reached a: it may have acted
        a.route("/q", Reply(503, b"busy"), method="POST", prefix=True)
        d = self.proxy(cluster_yaml("web", [a.endpoint, b.endpoint], retries=RETRY, outlier=NO_OUTLIER))
        statuses = []
        for i in range(6):                         # three per round: round robin puts /p and /q on a in turn
            for path in (f"/p/{i}", f"/q/{i}", f"/x/{i}"):
                statuses.append(self.get(d, path, method="POST", body=b"order=1").status)
        seen = [q.path for o in (a, b) for q in o.requests(method="POST")]
        self.assertEqual(sorted(seen), sorted(set(seen)), f"a POST reached the origins twice: {sorted(seen)}")
        self.assertEqual(len(seen), 18)
        self.assertIn(502, statuses)
        self.assertIn(503, statuses, "the origin's 503 to a POST is relayed, not retried")
        self.assertEqual(metric_sum(fetch_metrics(d.admin), M_RETRIES, **{L_CLUSTER: "web"}), 0)

    def test_retry_budget_exhausted_means_no_retry(self):
        # budget 0% and no minimum: retries are configured but never allowed.
        a, b = self.origin("a"), self.origin("b")
        a.route("/", Reply(503, b"busy"), prefix=True)
        d = self.proxy(cluster_yaml("web", [a.endpoint, b.endpoint], outlier=NO_OUTLIER,
                                    retries="{attempts: 2, budget: 0%, min_concurrent: 0}"))
        statuses = [self.get(d, f"/b/{i}").status for i in range(6)]
        self.assertIn(503, statuses, "without budget a's 503 reaches the client")
        self.assertEqual(len(a.requests()) + len(b.requests()), 6)
        self.assertEqual(metric_sum(fetch_metrics(d.admin), M_RETRIES, **{L_CLUSTER: "web"}), 0)


# =============================================================================================== balance ====

def served_by(resp):
    return resp.header("X-Origin")


class BalanceTest(ProxyTestCase):
    def test_round_robin_spreads_evenly(self):
        origins = [self.origin(n) for n in ("a", "b", "c")]
        d = self.proxy(cluster_yaml("web", [o.endpoint for o in origins], balance="round_robin", **QUIET))
        c = self.conn(d.public)
        counts = {"a": 0, "b": 0, "c": 0}
        for i in range(90):
            r = c.request("GET", f"/rr/{i}")
            self.assertEqual(r.status, 200, r.describe())
            counts[served_by(r)] += 1
        for n, k in counts.items():
            self.assertTrue(27 <= k <= 33, f"round robin over 3 origins: {counts}")

    def test_least_request_avoids_the_stuck_origin(self):
        # One request is parked on whichever origin least_request picks for it; then 60 quick requests. The
        # parked origin has one active request and the others none, so it should get few of them: power of
        # two choices picks it only when both choices are it (1/9, ~7 of 60); round robin would send 20.
        origins = {n: self.origin(n) for n in ("a", "b", "c")}
        gate = self.gate()
        for o in origins.values():
            o.route("/stuck", Hold(gate, Reply(200, b"unstuck")))
        d = self.proxy(cluster_yaml("web", [o.endpoint for o in origins.values()], balance="least_request",
                                    timeouts="{first_byte: 30s}", **QUIET))
        parked = []
        t = threading.Thread(target=lambda: parked.append(self.get(d, "/stuck", timeout=40)))
        t.start()
        stuck = wait_until(lambda: next((n for n, o in origins.items() if o.in_flight == 1), None), 10,
                           interval=0.005, what="the parked request to reach an origin")
        served = []
        c = self.conn(d.public)
        for i in range(60):
            r = c.request("GET", f"/lr/{i}")
            self.assertEqual(r.status, 200, r.describe())
            served.append(served_by(r))
        self.assertEqual(origins[stuck].in_flight, 1)
        to_stuck = served.count(stuck)
        self.assertLessEqual(to_stuck, 15, f"least_request sent {to_stuck} of 60 requests to {stuck}, which was "
                                           f"busy with one request while the others were idle: {served}")
        self.assertEqual(set(served) - {stuck}, set(origins) - {stuck}, "the idle origins share the rest")
        gate.set()
        t.join(45)
        self.assertEqual([(r.status, r.body) for r in parked], [(200, b"unstuck")])

    def hash_owner(self, d, user, header="X-User"):
        r = self.get(d, "/h", headers=[(header, user)])
        self.assertEqual(r.status, 200, r.describe())
        return served_by(r)

    def test_consistent_hash_on_header(self):
        origins = [self.origin(n) for n in ("a", "b", "c")]
        d = self.proxy(cluster_yaml("web", [o.endpoint for o in origins], balance="consistent_hash",
                                    hash_on="header:X-User", **QUIET), workers=2)
        owners = {}
        for rnd in range(3):                       # fresh client connections: both workers answer
            for u in range(40):
                owner = self.hash_owner(d, f"user-{u}")
                self.assertEqual(owners.setdefault(u, owner), owner, f"user-{u} moved in round {rnd}")
        spread = {n: sum(1 for v in owners.values() if v == n) for n in ("a", "b", "c")}
        self.assertTrue(all(k >= 3 for k in spread.values()), f"40 users over 3 origins: {spread}")

    def test_consistent_hash_on_cookie_and_path(self):
        origins = [self.origin(n) for n in ("a", "b", "c")]
        ups = (cluster_yaml("web", [o.endpoint for o in origins], balance="consistent_hash",
                            hash_on="cookie:sid", **QUIET) +
               cluster_yaml("bypath", [o.endpoint for o in origins], balance="consistent_hash", hash_on="path",
                            **QUIET))
        routes = """  - name: bypath
    match: {prefix: /p/}
    upstream: bypath
  - name: all
    match: {prefix: /}
    upstream: web
"""
        d = self.proxy(ups, routes=routes)
        for kind, make in (("cookie", lambda k: ("/c", [("Cookie", f"theme=dark; sid=s{k}; x=1")])),
                           ("path", lambda k: (f"/p/item{k}", []))):
            owners = {}
            for _ in range(2):
                for k in range(30):
                    target, hdrs = make(k)
                    r = self.get(d, target, headers=hdrs)
                    self.assertEqual(r.status, 200, r.describe())
                    self.assertEqual(owners.setdefault(k, served_by(r)), served_by(r), f"{kind} key {k} moved")
            self.assertEqual(len(set(owners.values())), 3, f"{kind}: 30 keys over 3 origins: {owners}")

    def test_consistent_hash_adding_an_endpoint_moves_few_keys(self):
        a, b, c, e = (self.origin(n) for n in ("a", "b", "c", "e"))
        three = cluster_yaml("web", [a.endpoint, b.endpoint, c.endpoint], balance="consistent_hash",
                             hash_on="header:X-User", **QUIET)
        d = self.proxy(three)
        keys = [f"k{i}" for i in range(200)]
        before = {k: self.hash_owner(d, k) for k in keys}
        d.write_config(proxy_config(cluster_yaml("web", [a.endpoint, b.endpoint, c.endpoint, e.endpoint],
                                                 balance="consistent_hash", hash_on="header:X-User", **QUIET)))
        d.reload()
        after = {k: self.hash_owner(d, k) for k in keys}
        moved = [k for k in keys if before[k] != after[k]]
        to_new = [k for k in moved if after[k] == "e"]
        self.assertTrue(20 <= len(moved) <= 80, f"adding a 4th endpoint moved {len(moved)} of 200 keys (~50)")
        self.assertGreaterEqual(len(to_new), 0.75 * len(moved), "moved keys go to the new endpoint")


# ================================================================================================ health ====

class HealthTest(ProxyTestCase):
    HC = "{path: /health, interval: 200ms, timeout: 200ms, healthy: 1, unhealthy: 2}"

    def counts(self, d, n):
        out = {}
        for i in range(n):
            r = self.get(d, f"/h/{i}")
            out[served_by(r) or r.status] = out.get(served_by(r) or r.status, 0) + 1
        return out

    def test_unhealthy_origin_gets_no_traffic_and_recovers(self):
        a, b = self.origin("a"), self.origin("b")
        d = self.proxy(cluster_yaml("web", [a.endpoint, b.endpoint], health_check=self.HC, **QUIET))
        wait_until(lambda: self.counts(d, 4).get("b"), 10, what="b to receive traffic")
        b.set_health(500)
        wait_until(lambda: set(self.counts(d, 6)) == {"a"}, 10, what="b to stop receiving traffic")
        self.assertEqual(self.counts(d, 30), {"a": 30})
        self.assertTrue(any(q.path == "/health" for q in b.health_checks()))
        b.set_health(200)
        wait_until(lambda: self.counts(d, 4).get("b"), 10, what="b to receive traffic again")

    def test_no_healthy_endpoint_503(self):
        a, b = self.origin("a"), self.origin("b")
        a.set_health(500)
        b.set_health(503)
        d = self.proxy(cluster_yaml("web", [a.endpoint, b.endpoint], health_check=self.HC, **QUIET))
        a.wait_health_checks(2)
        b.wait_health_checks(2)
        wait_until(lambda: self.get(d, "/x").status == 503, 10, what="a 503 with every endpoint unhealthy")
        n = len(a.requests()) + len(b.requests())
        self.assert_proxy_error(self.get(d, "/x"), 503, "destination_unavailable")
        self.assertEqual(len(a.requests()) + len(b.requests()), n, "no request reaches an unhealthy origin")

    # Three endpoints, so ejecting one stays under max_ejected_percent (50) however it is rounded.
    def test_passive_ejection_after_consecutive_5xx(self):
        a, b, c = self.origin("a"), self.origin("b"), self.origin("c")
        a.route("/", Reply(500, b"broken"), prefix=True)
        d = self.proxy(cluster_yaml("web", [a.endpoint, b.endpoint, c.endpoint], retries="{attempts: 0}",
                                    outlier="{consecutive_5xx: 3, consecutive_failures: 0, base_ejection: 5s, "
                                            "max_ejection: 30s, max_ejected_percent: 50}"))
        statuses = [self.get(d, f"/e/{i}").status for i in range(30)]
        self.assertEqual(statuses.count(500), len(a.requests()), "a's 500s are relayed as they are")
        self.assertTrue(3 <= len(a.requests()) <= 5, f"a ejected after 3 consecutive 5xx: {statuses}")
        self.assertEqual(statuses[-15:], [200] * 15, statuses)
        a.route("/", Reply(200), prefix=True)
        wait_until(lambda: self.counts(d, 4).get("a"), 20, interval=0.1, what="a to return after its ejection")

    def test_passive_ejection_after_connect_failures(self):
        b, c = self.origin("b"), self.origin("c")
        d = self.proxy(cluster_yaml("web", [f"127.0.0.1:{free_port()}", b.endpoint, c.endpoint],
                                    retries="{attempts: 0}",
                                    outlier="{consecutive_5xx: 0, consecutive_failures: 2, base_ejection: 30s}"))
        statuses = [self.get(d, f"/e/{i}").status for i in range(20)]
        self.assertLessEqual(statuses.count(502), 4, statuses)
        self.assertEqual(statuses[-10:], [200] * 10, statuses)


# ======================================================================================= circuit breaker ====

class CircuitBreakerTest(ProxyTestCase):
    def test_max_requests_fails_fast_with_503(self):
        o = self.origin("a")
        gate = self.gate()
        o.route("/slow", Hold(gate, Reply(200, b"done")))
        d = self.proxy(cluster_yaml("web", [o.endpoint], limits="{max_connections: 100, max_pending: 10, "
                                                                 "max_requests: 2}", **QUIET))
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.get(d, "/slow", timeout=30)))
                   for _ in range(2)]
        for t in threads:
            t.start()
        o.wait_in_flight(2)
        r = self.get(d, "/slow", timeout=10)
        self.assertTrue(o.in_flight == 2 and not gate.is_set(), "answered while the other two are held")
        self.assert_proxy_error(r, 503, ("connection_limit_reached", "destination_unavailable",
                                         "proxy_internal_response"))
        self.assertEqual(len(o.requests(path="/slow")), 2, "the rejected request never reached the origin")
        gate.set()
        for t in threads:
            t.join(15)
        self.assertEqual([(x.status, x.body) for x in results], [(200, b"done")] * 2)
        self.assertEqual(self.get(d, "/slow").status, 200, "capacity is back")


# ============================================================================================= streaming ====

class StreamingTest(ProxyTestCase):
    SIZE = 256 * MiB
    RSS_SLACK_KIB = 64 * 1024

    def streaming_proxy(self, o):
        d = self.proxy(cluster_yaml("web", [o.endpoint], timeouts="{first_byte: 30s, idle: 30s}", **QUIET),
                       env=bounded_memory_env())
        o.route("/warm", Stream(8 * MiB))
        o.route("/warmup", Upload(), method="POST")
        c = self.conn(d.public, timeout=60)
        self.assertEqual(len(c.request("GET", "/warm").body), 8 * MiB)
        self.assertEqual(c.request("POST", "/warmup", body=os.urandom(4 * MiB)).status, 200)
        return d

    def test_256mib_download_in_bounded_memory(self):
        o = self.origin("a")
        o.route("/big", Stream(self.SIZE))
        d = self.streaming_proxy(o)
        base = rss_kib(d.pid)
        c = self.conn(d.public, timeout=60)
        h, n = hashlib.sha256(), 0
        with RssSampler(d.pid) as rss:
            c.send(build_request("GET", "/big"))
            r = c.read_head()
            self.assertEqual(r.status, 200, r.describe())
            for piece in c.iter_body(r, timeout=60):
                h.update(piece)
                n += len(piece)
        self.assertEqual(n, self.SIZE)
        self.assertEqual(h.hexdigest(), pattern_sha256(self.SIZE))
        self.assertLess(rss.peak - base, self.RSS_SLACK_KIB,
                        f"RSS grew from {base} KiB to {rss.peak} KiB during a {self.SIZE // MiB} MiB download")

    def test_256mib_chunked_upload_in_bounded_memory(self):
        o = self.origin("a")
        o.route("/up", Upload(), method="POST")
        d = self.streaming_proxy(o)
        base = rss_kib(d.pid)
        c = self.conn(d.public, timeout=60)
        with RssSampler(d.pid) as rss:
            c.send(build_request("POST", "/up", headers=[("Transfer-Encoding", "chunked")]))
            for piece in pattern(self.SIZE):
                c.sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")   # not c.send: it keeps a copy
            c.sock.sendall(b"0\r\n\r\n")
            r = c.read_response("POST", timeout=60)
        self.assertEqual(r.status, 200, r.describe())
        got = json.loads(r.body)
        self.assertEqual((got["size"], got["sha256"]), (self.SIZE, pattern_sha256(self.SIZE)))
        self.assertLess(rss.peak - base, self.RSS_SLACK_KIB,
                        f"RSS grew from {base} KiB to {rss.peak} KiB during a {self.SIZE // MiB} MiB upload")


# ============================================================================================= smuggling ====

class SmugglingTest(ProxyTestCase):
    H = "Host: x\r\n"
    # Header sections only (no body bytes), so the daemon has read everything when it answers and closes.
    AMBIGUOUS = {
        "content_length_and_transfer_encoding": ("POST /api/s HTTP/1.1\r\n" + H + "Content-Length: 6\r\n"
                                                 "Transfer-Encoding: chunked\r\n\r\n", (400,)),
        "transfer_encoding_and_content_length": ("POST /api/s HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n"
                                                 "Content-Length: 6\r\n\r\n", (400,)),
        "two_content_lengths": ("POST /api/s HTTP/1.1\r\n" + H + "Content-Length: 6\r\nContent-Length: 7\r\n\r\n",
                                (400,)),
        "signed_content_length": ("POST /api/s HTTP/1.1\r\n" + H + "Content-Length: +6\r\n\r\n", (400,)),
        "space_before_colon": ("POST /api/s HTTP/1.1\r\n" + H + "Transfer-Encoding : chunked\r\n\r\n", (400,)),
        "chunked_not_last": ("POST /api/s HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n"
                             "Transfer-Encoding: identity\r\n\r\n", (400, 501)),
        "obfuscated_chunked": ("POST /api/s HTTP/1.1\r\n" + H + "Transfer-Encoding: xchunked\r\n\r\n", (400, 501)),
    }

    def setUp(self):
        self.o = self.origin("a")
        self.o.route("/", Upload(), method="POST", prefix=True)
        self.d = self.proxy(cluster_yaml("web", [self.o.endpoint], **QUIET))

    def test_ambiguous_framing_rejected_before_the_origin(self):
        for name, (raw, statuses) in self.AMBIGUOUS.items():
            with self.subTest(name):
                c = self.conn(self.d.public)
                c.send(raw)
                r = c.read_response("POST")
                self.assertIn(r.status, statuses, f"{name}: {r.describe()}")
                self.assertEqual(c.read_until_close(5), b"", f"{name}: the connection is closed after it")
        self.assertEqual(self.o.requests(), [], "no ambiguous request reached the origin")
        self.assertEqual(self.o.errors, [])

    def test_request_inside_a_chunk_stays_body(self):
        inner = b"GET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        c = self.conn(self.d.public)
        c.send(b"POST /api/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
               f"{len(inner):x}\r\n".encode() + inner + b"\r\n0\r\n\r\n")
        r = c.read_response("POST")
        self.assertEqual((r.status, json.loads(r.body)["size"]), (200, len(inner)), r.describe())
        r = c.request("GET", "/api/after")
        self.assertEqual(r.status, 200, r.describe())
        seen = [(q.method, q.path) for q in self.o.requests()]
        self.assertEqual(seen, [("POST", "/a"), ("GET", "/after")], "the chunk's request must stay body")
        self.assertEqual(self.o.requests()[0].body, inner)

    def test_request_inside_a_content_length_body_stays_body(self):
        inner = b"GET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        c = self.conn(self.d.public)
        for method in ("POST", "GET"):
            c.send(f"{method} /api/b HTTP/1.1\r\nHost: x\r\nContent-Length: {len(inner)}\r\n\r\n".encode() + inner)
            r = c.read_response(method)
            self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(c.request("GET", "/api/after").status, 200)
        self.assertNotIn("/smuggled", [q.path for q in self.o.requests()])
        self.assertEqual(len(self.o.requests()), 3)


# ============================================================================================= websocket ====

class WebSocketTest(ProxyTestCase):
    def test_websocket_echo_through_the_proxy(self):
        o = self.origin("a")
        o.route("/ws", WebSocketEcho())
        d = self.proxy(cluster_yaml("web", [o.endpoint], timeouts="{idle: 10s}", **QUIET))
        c = self.conn(d.public)
        key = base64.b64encode(os.urandom(16)).decode()
        c.send(build_request("GET", "/api/ws", headers=[("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                                         ("Sec-WebSocket-Key", key),
                                                         ("Sec-WebSocket-Version", "13")]))
        r = c.read_response()
        self.assertEqual(r.status, 101, r.describe())
        self.assertEqual(r.header("Sec-WebSocket-Accept"), ws_accept(key))
        self.assertEqual((r.header("Upgrade") or "").lower(), "websocket")
        self.assertIn("upgrade", {t.lower() for t in tokens(r.header_all("Connection"))})
        q = o.requests(path="/ws")[0]
        self.assertEqual((q.header("Upgrade") or "").lower(), "websocket")
        self.assertEqual(q.header("Sec-WebSocket-Key"), key)
        for opcode, payload in ((0x1, "hello through the proxy".encode()), (0x2, os.urandom(200)),
                                (0x2, os.urandom(70_000)), (0x9, b"ping")):
            c.send(ws_frame(opcode, payload))
            fin, op, masked, got = ws_read_frame(c.read_exact)
            self.assertEqual((fin, op, got == payload), (True, 0xA if opcode == 0x9 else opcode, True))
            self.assertFalse(masked, "server frames are not masked")
        c.send(ws_frame(0x8, (1000).to_bytes(2, "big") + b"bye"))
        self.assertEqual(ws_read_frame(c.read_exact)[1], 0x8)
        self.assertEqual(c.read_until_close(5), b"", "the tunnel closes with the origin")
        self.assertTrue(all(masked for _, _, masked in o.ws_frames), "client frames reach the origin as sent")


# =============================================================================================== metrics ====

class MetricsTest(ProxyTestCase):
    def test_upstream_counters(self):
        dead = f"127.0.0.1:{free_port()}"
        b = self.origin("b")
        d = self.proxy(cluster_yaml("web", [dead, b.endpoint], retries=RETRY, outlier=NO_OUTLIER))
        c = self.conn(d.public)
        for i in range(10):
            self.assertEqual(c.request("GET", f"/m/{i}").status, 200)
        self.assertGreaterEqual(wait_metric(d.admin, M_REQUESTS, 10, **{L_CLUSTER: "web"}), 10)
        m = fetch_metrics(d.admin)
        self.assertGreater(metric_sum(m, M_CONNECTIONS, **{L_CLUSTER: "web", L_ENDPOINT: b.endpoint}), 0)
        self.assertLessEqual(metric_sum(m, M_CONNECTIONS, **{L_CLUSTER: "web", L_ENDPOINT: b.endpoint}),
                             b.connections_accepted)
        self.assertGreater(metric_sum(m, M_RETRIES, **{L_CLUSTER: "web"}), 0)
        self.assertGreater(metric_sum(m, M_ERRORS, **{L_CLUSTER: "web", L_ERROR: "connection_refused"}), 0)
        for name in (M_REQUESTS, M_CONNECTIONS, M_RETRIES, M_ERRORS):
            for labels, _ in metric_series(m, name):
                self.assertEqual(labels.get(L_CLUSTER), "web", f"{name} {labels}")


if __name__ == "__main__":
    unittest.main()
