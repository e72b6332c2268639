"""HTTP/2 (RFC 9113) on nghttp2 with real clients: curl --http2 over TLS (ALPN h2) and --http2-prior-knowledge on
an h2c listener (which still serves HTTP/1.1), nghttp, h2load (20,000 requests, 0 failures); routes, 404/405,
admin pages and edge-cache hits over HTTP/2; misses over HTTP/2 stored in the edge cache (hits for both
protocols afterwards, max_object_bytes honoured); upstream trailers passed as trailing HEADERS; a 3 MB response
streamed under a small flow-control window; GOAWAY with the open stream finished on drain (SIGTERM) and when a
reload removes the listener.

The per-connection resource budget (limits.http2) against a raw-frame client: rapid reset (CVE-2023-44487), a
CONTINUATION flood, an HPACK bomb, PING / SETTINGS / empty-DATA floods, too many header fields, a stalled-window
flood — each ends in GOAWAY (ENHANCE_YOUR_CALM) and close, counted by reason, with the server's memory bounded and
another client still served."""
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

import h2raw
from h2raw import RawH2, frame
from harness import (DaemonTestCase, fetch_metrics, http_request, metric_sum, require_tool, run_curl,
                     wait_until)
from origin import Origin, Reply, Stream, Upload, pattern_sha256

BIG = 3 * 1024 * 1024


def h2_config(d_dir, limits="", extra_routes="", upstream="", workers=1, tls="", admin_protocols="[http1, h2c]",
              cache=""):
    return f"""node: {{name: t, region: r, workers: {workers}}}
limits: {{idle_timeout: 3s{limits}}}
listeners:
  - {{name: public, address: "127.0.0.1:$PUBLIC", protocols: [http1, h2c]}}
  - {{name: admin, address: "127.0.0.1:$ADMIN", admin: true, protocols: {admin_protocols}}}
{tls}routes:
  - name: hello
    match: {{path: /hello, method: [GET, HEAD]}}
    respond: {{status: 200, headers: {{Content-Type: text/plain}}, body: "hi\\n"}}
  - name: big
    match: {{path: /big}}
    respond: {{file: {d_dir}/big.bin}}
{extra_routes}{upstream}{cache}observability: {{log_level: info, access_log: {{path: {d_dir}/access.log, format: combined}}}}
"""


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Http2Test(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="virex-h2-")
        cls.big = os.urandom(BIG)
        with open(os.path.join(cls.dir, "big.bin"), "wb") as f:
            f.write(cls.big)
        openssl = require_tool("openssl")
        cls.crt, cls.key = os.path.join(cls.dir, "a.crt"), os.path.join(cls.dir, "a.key")
        r = subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                            "-keyout", cls.key, "-out", cls.crt, "-days", "2", "-subj", "/CN=a.test",
                            "-addext", "subjectAltName=DNS:a.test"], capture_output=True)
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def tls_listener(self, port):
        return (f'  - {{name: secure, address: "127.0.0.1:{port}", protocols: [http1, h2], '
                f'tls: {{certificates: [{{cert: {self.crt}, key: {self.key}}}]}}}}\n')

    def curl_h2c(self, port, path, *args):
        return run_curl("-i", "--http2-prior-knowledge", *args, f"http://127.0.0.1:{port}{path}")

    def still_served(self, d):
        r = self.curl_h2c(d.public, "/hello")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"HTTP/2 200", r.stdout)
        self.assertTrue(r.stdout.endswith(b"hi\n"))

    # -- real clients --
    def test_curl_over_tls_alpn_h2_and_h2c_prior_knowledge(self):
        tls_port = socket.socket()
        tls_port.bind(("127.0.0.1", 0))
        port = tls_port.getsockname()[1]
        tls_port.close()
        d = self.daemon(h2_config(self.dir, tls=self.tls_listener(port)))
        r = run_curl("-v", "--http2", "--cacert", self.crt, "--resolve", f"a.test:{port}:127.0.0.1",
                     f"https://a.test:{port}/hello")
        self.assertEqual((r.returncode, r.stdout), (0, b"hi\n"), r.stderr)
        self.assertIn(b"ALPN: server accepted h2", r.stderr)
        self.assertIn(b"< HTTP/2 200", r.stderr)
        # HTTP/1.1 still negotiates on the same TLS listener.
        r = run_curl("-v", "--http1.1", "--cacert", self.crt, "--resolve", f"a.test:{port}:127.0.0.1",
                     f"https://a.test:{port}/hello")
        self.assertIn(b"ALPN: server accepted http/1.1", r.stderr)
        r = self.curl_h2c(d.public, "/hello")
        self.assertIn(b"HTTP/2 200", r.stdout)
        self.assertIn(b"content-type: text/plain", r.stdout)
        self.assertRegex(r.stdout, rb"date: \w{3}, \d\d \w{3} \d{4}")
        self.assertNotIn(b"connection:", r.stdout.lower())
        # An h2c listener still speaks HTTP/1.1 to clients without prior knowledge.
        self.assertEqual(http_request(d.public, "GET", "/hello").status, 200)
        head = self.curl_h2c(d.public, "/hello", "-I")
        self.assertIn(b"content-length: 3", head.stdout)
        r = self.curl_h2c(d.public, "/nowhere")
        self.assertIn(b"HTTP/2 404", r.stdout)
        r = self.curl_h2c(d.public, "/hello", "-X", "POST", "-d", "x=1")
        self.assertIn(b"HTTP/2 405", r.stdout)
        self.assertIn(b"allow: GET, HEAD", r.stdout)
        m = fetch_metrics(d.admin)
        self.assertEqual(metric_sum(m, "virex_http_connections_by_protocol_total", listener="secure", protocol="h2",
                                    tls="TLSv1.3"), 1)
        self.assertGreaterEqual(metric_sum(m, "virex_http_connections_by_protocol_total", listener="public",
                                           protocol="h2c"), 4)
        self.assertGreaterEqual(metric_sum(m, "virex_http2_streams_total", listener="public"), 4)
        self.assertGreaterEqual(metric_sum(m, "virex_http_requests_total", listener="public", route="hello",
                                           status_class="2xx"), 3)
        def logged():
            with open(os.path.join(self.dir, "access.log")) as f:
                return "GET /nowhere HTTP/2.0\" 404" in f.read()
        wait_until(logged, what="access log line of an HTTP/2 request")

    def test_nghttp_and_h2load(self):
        d = self.daemon(h2_config(self.dir))
        r = subprocess.run([require_tool("nghttp"), "-nv", f"http://127.0.0.1:{d.public}/hello"], capture_output=True,
                           timeout=20)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        self.assertRegex(out, r"recv \(stream_id=\d+\) :status: 200")
        self.assertIn("[SETTINGS_MAX_HEADER_LIST_SIZE(0x06):65536]", out)  # the server's budget, announced
        r = subprocess.run([require_tool("h2load"), "-n", "20000", "-c", "10", "-m", "10",
                            f"http://127.0.0.1:{d.public}/hello"], capture_output=True, timeout=120)
        out = r.stdout.decode()
        self.assertIn("requests: 20000 total, 20000 started, 20000 done, 20000 succeeded, 0 failed, 0 errored", out)
        self.assertIn("status codes: 20000 2xx", out)

    def test_h2load_over_tls(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        self.daemon(h2_config(self.dir, tls=self.tls_listener(port)))
        r = subprocess.run([require_tool("h2load"), "-n", "20000", "-c", "10", "-m", "10",
                            f"https://127.0.0.1:{port}/hello"], capture_output=True, timeout=120)
        out = r.stdout.decode()
        self.assertIn("Application protocol: h2", out)
        self.assertIn("20000 succeeded, 0 failed, 0 errored", out)

    def test_large_response_streams_under_flow_control(self):
        d = self.daemon(h2_config(self.dir))
        # A 1 KiB window: the server may send only what the client grants, stream and connection.
        c = RawH2(d.public, initial=h2raw.settings(initial_window_size=1024))
        self.addCleanup(c.close)
        c.send(c.request(1, "/big"))
        headers, body = c.response(1, timeout=60)
        self.assertEqual(headers[":status"], "200")
        self.assertEqual(headers["content-length"], str(BIG))
        self.assertEqual(hashlib.sha256(body).digest(), hashlib.sha256(self.big).digest())
        self.assertTrue(all(len(f.payload) <= 1024 for f in c.frames if f.type == h2raw.DATA))
        # curl too, with its own windows.
        r = run_curl("--http2-prior-knowledge", f"http://127.0.0.1:{d.public}/big", timeout=60)
        self.assertEqual(hashlib.sha256(r.stdout).digest(), hashlib.sha256(self.big).digest())

    def test_admin_pages_over_h2c(self):
        d = self.daemon(h2_config(self.dir))
        r = self.curl_h2c(d.admin, "/metrics")
        self.assertIn(b"HTTP/2 200", r.stdout)
        self.assertIn(b"virex_http2_streams_total", r.stdout)
        self.assertIn(b"HTTP/2 200", self.curl_h2c(d.admin, "/healthz").stdout)

    def test_edge_cache_hit_over_h2(self):
        o = Origin("a")
        o.start()
        self.addCleanup(o.close)
        o.route("/c", Reply(200, b"cached body", headers=[("Cache-Control", "max-age=300")]))
        routes = "  - name: c\n    match: {prefix: /c}\n    upstream: web\n    cache: {edge_ttl: 60s}\n"
        d = self.daemon(h2_config(self.dir, extra_routes=routes,
                                  upstream=f'upstreams:\n  web: {{endpoints: ["{o.endpoint}"]}}\n'))
        self.assertEqual(http_request(d.public, "GET", "/c").body, b"cached body")  # fills the cache (HTTP/1.1)
        r = self.curl_h2c(d.public, "/c", "-H", "Host: localhost")  # the same cache key (host) as the fill
        self.assertIn(b"HTTP/2 200", r.stdout)
        self.assertRegex(r.stdout, rb"cache-status: virex-edge; hit")
        self.assertRegex(r.stdout, rb"age: \d+")
        self.assertTrue(r.stdout.endswith(b"cached body"))
        self.assertEqual(len(o.requests(path="/c")), 1)

    def test_edge_cache_fill_over_h2(self):
        o = Origin("a")
        o.start()
        self.addCleanup(o.close)
        cc = [("Cache-Control", "max-age=300")]
        o.route("/c", Reply(200, b"cached body", headers=cc))
        o.route("/chunked", Reply(200, b"chunked body", headers=cc, framing="chunked"))
        o.route("/large", Reply(200, b"b" * 5000, headers=cc))
        o.route("/largechunked", Reply(200, b"c" * 5000, headers=cc, framing="chunked"))
        o.route("/nostore", Reply(200, b"private", headers=[("Cache-Control", "no-store")]))
        routes = "  - name: c\n    match: {prefix: /}\n    upstream: web\n    cache: {edge_ttl: 60s}\n"
        d = self.daemon(h2_config(self.dir, extra_routes=routes,
                                  upstream=f'upstreams:\n  web: {{endpoints: ["{o.endpoint}"]}}\n',
                                  cache="cache: {edge: {max_bytes: 64MiB, max_object_bytes: 4KiB}}\n"))
        # The first HTTP/2 GET goes to the origin and is stored, as HTTP/1.1 stores it.
        r = self.curl_h2c(d.public, "/c", "-H", "Host: localhost")
        self.assertIn(b"HTTP/2 200", r.stdout)
        m = re.search(rb"cache-status: virex-edge; fwd=uri-miss; fwd-status=200; stored; ttl=(\d+)\r\n", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        self.assertIn(int(m.group(1)), (59, 60))  # max-age=300 capped by the route's edge_ttl
        self.assertTrue(r.stdout.endswith(b"cached body"))
        self.assertEqual(len(o.requests(path="/c")), 1)
        # The second HTTP/2 GET and an HTTP/1.1 GET are hits; the origin saw one request.
        r = self.curl_h2c(d.public, "/c", "-H", "Host: localhost")
        self.assertRegex(r.stdout, rb"cache-status: virex-edge; hit; ttl=\d+")
        self.assertRegex(r.stdout, rb"age: \d+")
        self.assertTrue(r.stdout.endswith(b"cached body"))
        h1 = http_request(d.public, "GET", "/c")
        self.assertEqual((h1.status, h1.body), (200, b"cached body"))
        self.assertRegex(h1.header("Cache-Status"), r"^virex-edge; hit")
        self.assertEqual(len(o.requests(path="/c")), 1)
        # A chunked origin body is stored too (the raw client: a hit has Content-Length, no trailers).
        for path, body in (("/chunked", b"chunked body"),):
            r = self.curl_h2c(d.public, path, "-H", "Host: localhost")
            self.assertRegex(r.stdout, rb"cache-status: virex-edge; fwd=uri-miss; fwd-status=200; stored; ttl=\d+")
            c = RawH2(d.public)
            self.addCleanup(c.close)
            c.send(c.request(1, path))
            headers, got = c.response(1, timeout=20)
            self.assertEqual((headers[":status"], got), ("200", body))
            self.assertRegex(headers["cache-status"], r"^virex-edge; hit")
            self.assertEqual(headers["content-length"], str(len(body)))
            self.assertEqual(len(o.requests(path=path)), 1)
        # Over max_object_bytes: passed on, not stored — announced as such with a Content-Length, found out
        # while streaming for a chunked body. Either way the next request goes to the origin again.
        for path, body in (("/large", b"b" * 5000), ("/largechunked", b"c" * 5000)):
            for n in (1, 2):
                r = self.curl_h2c(d.public, path, "-H", "Host: localhost")
                self.assertIn(b"HTTP/2 200", r.stdout)
                self.assertTrue(r.stdout.endswith(body), path)
                self.assertRegex(r.stdout, rb"cache-status: virex-edge; fwd=uri-miss; fwd-status=200")
                self.assertEqual(len(o.requests(path=path)), n, path)
        self.assertNotIn(b"stored", self.curl_h2c(d.public, "/large", "-H", "Host: localhost").stdout)
        # What decide() refuses is not stored either.
        for n in (1, 2):
            r = self.curl_h2c(d.public, "/nostore", "-H", "Host: localhost")
            self.assertTrue(r.stdout.endswith(b"private"))
            self.assertEqual(len(o.requests(path="/nostore")), n)
        self.assertNotIn(b"stored", r.stdout)
        m = fetch_metrics(d.admin)
        self.assertEqual(metric_sum(m, "virex_cache_requests_total", route="c", result="hit"), 3)
        self.assertEqual(metric_sum(m, "virex_cache_requests_total", route="c", result="miss"), 9)

    def test_proxy_over_h2(self):
        o = Origin("a")
        o.start()
        self.addCleanup(o.close)
        o.route("/api/small", Reply(200, b"from origin", headers=[("X-Up", "1"), ("Connection", "keep-alive")]))
        o.route("/api/big", Stream(BIG, framing="chunked"))
        o.route("/api/len", Stream(BIG, framing="length"))
        o.route("/api/upload", Upload())
        o.route("/api/missing", Reply(404, b"nope"))
        routes = "  - name: api\n    match: {prefix: /api/}\n    upstream: web\n"
        d = self.daemon(h2_config(self.dir, extra_routes=routes,
                                  upstream=f'upstreams:\n  web: {{endpoints: ["{o.endpoint}"]}}\n'))
        r = self.curl_h2c(d.public, "/api/small?q=1")
        self.assertIn(b"HTTP/2 200", r.stdout)
        self.assertIn(b"x-up: 1", r.stdout)
        self.assertIn(b"via: 1.1 t", r.stdout)
        self.assertNotIn(b"connection:", r.stdout.lower())
        self.assertTrue(r.stdout.endswith(b"from origin"))
        req = o.requests(path="/api/small")[-1]
        self.assertEqual(req.target, "/api/small?q=1")
        self.assertEqual(req.header("X-Forwarded-Proto"), "http")
        self.assertIsNotNone(req.header("Host"))
        self.assertIn(b"HTTP/2 404", self.curl_h2c(d.public, "/api/missing").stdout)
        # Bodies both ways: a 3 MB upload (buffered, then sent with Content-Length), 3 MB downloads streamed
        # from a chunked and a sized origin response.
        up = os.path.join(self.dir, "up.bin")
        with open(up, "wb") as f:
            f.write(self.big[:300000])
        r = run_curl("--http2-prior-knowledge", "--data-binary", f"@{up}", f"http://127.0.0.1:{d.public}/api/upload")
        self.assertIn(hashlib.sha256(self.big[:300000]).hexdigest().encode(), r.stdout, r.stderr)
        for path in ("/api/big", "/api/len"):
            r = run_curl("--http2-prior-knowledge", f"http://127.0.0.1:{d.public}{path}", timeout=60)
            self.assertEqual(hashlib.sha256(r.stdout).hexdigest(), pattern_sha256(BIG), path)
        # Under a small window the relay waits for the client (bounded buffering), and still completes.
        c = RawH2(d.public, initial=h2raw.settings(initial_window_size=4096))
        self.addCleanup(c.close)
        c.send(c.request(1, "/api/big"))
        headers, body = c.response(1, timeout=60)
        self.assertEqual(headers[":status"], "200")
        self.assertEqual(hashlib.sha256(body).hexdigest(), pattern_sha256(BIG))
        # Concurrent streams on one connection, all proxied.
        r = subprocess.run([require_tool("h2load"), "-n", "2000", "-c", "4", "-m", "8",
                            f"http://127.0.0.1:{d.public}/api/small"], capture_output=True, timeout=120)
        self.assertIn("2000 succeeded, 0 failed, 0 errored", r.stdout.decode())
        # The origin down: 502 with Proxy-Status.
        o.close()
        r = self.curl_h2c(d.public, "/api/small")
        self.assertRegex(r.stdout, rb"HTTP/2 50[24]")
        self.assertIn(b"proxy-status: virex-edge; error=", r.stdout)

    def test_trailers_passed_over_h2(self):
        o = Origin("a")
        o.start()
        self.addCleanup(o.close)
        trailers = [("grpc-status", "0"), ("Grpc-Message", "all good"), ("Host", "evil"), ("Connection", "close")]
        o.route("/api/t", Reply(200, b"grpc body", framing="chunked", headers=[("Content-Type", "application/grpc")],
                                trailers=trailers))
        o.route("/api/t0", Reply(200, b"", framing="chunked", trailers=[("X-Sum", "e3b0")]))
        routes = "  - name: api\n    match: {prefix: /api/}\n    upstream: web\n"
        d = self.daemon(h2_config(self.dir, extra_routes=routes,
                                  upstream=f'upstreams:\n  web: {{endpoints: ["{o.endpoint}"]}}\n'))
        # nghttp: the trailer section arrives as a second HEADERS frame that ends the stream.
        r = subprocess.run([require_tool("nghttp"), "-v", f"http://127.0.0.1:{d.public}/api/t"], capture_output=True,
                           timeout=20)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        self.assertIn("grpc body", out)
        after_data = out[out.rindex("recv DATA frame"):]
        self.assertRegex(after_data, r"recv HEADERS frame <length=\d+, flags=0x05, stream_id=1[13]>")
        self.assertIn("; END_STREAM | END_HEADERS", after_data)
        self.assertRegex(after_data, r"recv \(stream_id=1[13]\) grpc-status: 0")
        self.assertRegex(after_data, r"recv \(stream_id=1[13]\) grpc-message: all good")
        self.assertNotRegex(after_data, r"recv \(stream_id=1[13]\) (host|connection):")  # RFC 9110 §6.5.1
        # The raw client: HEADERS, DATA (no END_STREAM), HEADERS with END_STREAM and only the trailer fields.
        c = RawH2(d.public)
        self.addCleanup(c.close)
        for sid, path in ((1, "/api/t"), (3, "/api/t0")):
            c.send(c.request(sid, path))
            headers, body = c.response(sid, timeout=20)
            frames = [f for f in c.frames if f.stream_id == sid and f.type in (h2raw.HEADERS, h2raw.DATA)]
            self.assertEqual([f.type for f in frames][0], h2raw.HEADERS)
            self.assertEqual(frames[0].headers[":status"], "200")
            self.assertEqual(frames[-1].type, h2raw.HEADERS)
            self.assertTrue(frames[-1].flags & h2raw.END_STREAM)
            self.assertFalse(any(f.flags & h2raw.END_STREAM for f in frames[:-1]))
            self.assertNotIn(":status", headers)
            if sid == 1:
                self.assertEqual(body, b"grpc body")
                self.assertEqual(headers, {"grpc-status": "0", "grpc-message": "all good"})
            else:
                self.assertEqual(body, b"")
                self.assertEqual(headers, {"x-sum": "e3b0"})
        # The same route over HTTP/1.1: a correct (re-chunked) response with the body.
        r = http_request(d.public, "GET", "/api/t")
        self.assertEqual((r.status, r.body), (200, b"grpc body"))
        self.assertEqual(len(o.requests(path="/api/t")), 3)

    def test_drain_sends_goaway_and_finishes_the_open_stream(self):
        d = self.daemon(h2_config(self.dir))
        c = RawH2(d.public, initial=h2raw.settings(initial_window_size=16384))
        self.addCleanup(c.close)
        c.send(c.request(1, "/big"))
        deadline = time.monotonic() + 10
        got = b""
        while not got:  # the stream is under way, held by the window
            f = c.read_frame(deadline)
            if f.type == h2raw.DATA:
                got += f.payload
        d.send_signal(signal.SIGTERM)
        inc = struct.pack(">I", len(got))
        c.send(frame(h2raw.WINDOW_UPDATE, 0, 0, inc) + frame(h2raw.WINDOW_UPDATE, 0, 1, inc))
        goaway = None
        while True:
            f = c.read_frame(time.monotonic() + 20)
            if f is None:
                break
            if f.type == h2raw.GOAWAY:
                goaway = f
            elif f.type == h2raw.DATA and f.stream_id == 1:
                got += f.payload
                inc = struct.pack(">I", len(f.payload))
                c.send(frame(h2raw.WINDOW_UPDATE, 0, 0, inc) + frame(h2raw.WINDOW_UPDATE, 0, 1, inc))
        self.assertIsNotNone(goaway, "GOAWAY on drain")
        self.assertEqual(goaway.goaway_error(), h2raw.NO_ERROR)
        self.assertEqual(goaway.goaway_last_stream(), 1)
        self.assertEqual(len(got), BIG, "the open stream was finished before the close")
        self.assertEqual(d.wait_exit(20), 0)

    def test_reload_removing_the_listener_sends_goaway(self):
        d = self.daemon(h2_config(self.dir))
        c = RawH2(d.public)
        self.addCleanup(c.close)
        c.send(c.request(1, "/hello"))
        self.assertEqual(c.response(1)[1], b"hi\n")
        d.write_config(h2_config(self.dir).replace('  - {name: public, address: "127.0.0.1:$PUBLIC", protocols: [http1, h2c]}\n', ""))
        d.reload()
        goaway, closed = c.until_goaway()
        self.assertIsNotNone(goaway)
        self.assertEqual(goaway.goaway_error(), h2raw.NO_ERROR)
        self.assertTrue(closed)

    # -- the resource budget --
    def attack(self, d, payload, reason, code=h2raw.ENHANCE_YOUR_CALM, initial=b"", before=None):
        rss0 = rss_kib(d.pid)
        c = RawH2(d.public, initial=initial)
        self.addCleanup(c.close)
        if before:
            c.send(before(c))
        c.send(payload(c) if callable(payload) else payload)
        goaway, closed = c.until_goaway(timeout=15)
        self.assertIsNotNone(goaway, f"{reason}: no GOAWAY; frames: {c.frames[-5:]}")
        self.assertEqual(goaway.goaway_error(), code, reason)
        self.assertTrue(closed, f"{reason}: the connection was closed")
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_http2_budget_breaches_total", listener="public",
                                      reason=reason) == 1, what=f"breach {reason} counted")
        self.assertLess(rss_kib(d.pid) - rss0, 64 * 1024, f"{reason}: memory grew by more than 64 MiB")
        self.still_served(d)
        return c

    def test_rapid_reset(self):
        d = self.daemon(h2_config(self.dir, limits=", http2: {max_resets_per_second: 50}"))

        def flood(c):
            out = b""
            for i in range(2000):
                sid = 2 * i + 1
                out += c.request(sid, "/hello") + frame(h2raw.RST_STREAM, 0, sid, struct.pack(">I", 8))
            return out
        self.attack(d, flood, "rapid_reset")
        self.assertEqual(metric_sum(fetch_metrics(d.admin), "virex_http2_goaways_total", reason="rapid_reset"), 1)

    def test_continuation_flood(self):
        d = self.daemon(h2_config(self.dir))

        def flood(c):
            block = c.header_block("/hello")
            out = frame(h2raw.HEADERS, h2raw.END_STREAM, 1, block[:5])
            for _ in range(5000):
                out += frame(h2raw.CONTINUATION, 0, 1, b"")
            return out
        self.attack(d, flood, "continuation")

    def test_hpack_bomb(self):
        d = self.daemon(h2_config(self.dir, limits=", http2: {max_header_list_size: 16KiB}"))

        def bomb(c):
            # One 4 KB field enters the dynamic table, then is referenced 1,000 times (one byte each): ~4 MB
            # decoded from ~5 KB on the wire.
            block = c.header_block("/hello", extra=[("x-bomb", "a" * 4000)] + [("x-bomb", "a" * 4000)] * 1000)
            self.assertLess(len(block), 8000)
            return frame(h2raw.HEADERS, h2raw.END_STREAM | h2raw.END_HEADERS, 1, block)
        self.attack(d, bomb, "header_list_size")

    def test_too_many_header_fields(self):
        d = self.daemon(h2_config(self.dir, limits=", http2: {max_header_count: 20}"))
        self.attack(d, lambda c: c.request(1, "/hello", extra=[(f"x-h{i}", "v") for i in range(40)]), "header_count")

    def test_ping_flood(self):
        d = self.daemon(h2_config(self.dir))
        self.attack(d, b"".join(frame(h2raw.PING, 0, 0, struct.pack(">Q", i)) for i in range(5000)), "ping_flood")

    def test_settings_flood(self):
        d = self.daemon(h2_config(self.dir))
        self.attack(d, b"".join(frame(h2raw.SETTINGS, 0, 0) for _ in range(5000)), "settings_flood")

    def test_empty_data_flood(self):
        d = self.daemon(h2_config(self.dir))

        def flood(c):
            return c.request(1, "/hello", method="POST", end_stream=False) + b"".join(
                frame(h2raw.DATA, 0, 1) for _ in range(5000))
        self.attack(d, flood, "empty_data")

    def test_stalled_window_flood(self):
        # Zero windows and many streams: static bodies are the snapshot's (nothing is held per stream), so memory
        # stays flat; the connection, making no progress, is closed at the idle timeout; the concurrency cap holds.
        d = self.daemon(h2_config(self.dir, limits=", http2: {max_concurrent_streams: 8, max_stalled_bytes: 16KiB}"))
        rss0 = rss_kib(d.pid)
        c = RawH2(d.public, initial=h2raw.settings(initial_window_size=0))
        self.addCleanup(c.close)
        c.send(b"".join(c.request(2 * i + 1, "/big") for i in range(200)))
        goaway, closed = c.until_goaway(timeout=20)
        self.assertTrue(closed)
        self.assertIsNotNone(goaway)
        answered = {f.stream_id for f in c.frames if f.type == h2raw.HEADERS}
        refused = {f.stream_id for f in c.frames if f.type == h2raw.RST_STREAM}
        self.assertLessEqual(len(answered), 8, "never more streams than max_concurrent_streams")
        self.assertGreater(len(refused), 0)
        self.assertEqual(sum(len(f.payload) for f in c.frames if f.type == h2raw.DATA), 0)
        self.assertLess(rss_kib(d.pid) - rss0, 64 * 1024)
        self.still_served(d)
        # Owned response bytes (admin pages) held by closed windows breach max_stalled_bytes.
        c2 = RawH2(d.admin, initial=h2raw.settings(initial_window_size=0))
        self.addCleanup(c2.close)
        c2.send(b"".join(c2.request(2 * i + 1, "/metrics") for i in range(8)))
        goaway, closed = c2.until_goaway(timeout=20)
        self.assertIsNotNone(goaway)
        self.assertEqual(goaway.goaway_error(), h2raw.ENHANCE_YOUR_CALM)
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_http2_budget_breaches_total", listener="admin",
                                      reason="stalled_bytes") == 1, what="stalled_bytes breach")


if __name__ == "__main__":
    unittest.main()
