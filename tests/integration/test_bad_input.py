# Malformed and oversized requests over a raw socket: each must be answered with the contract's status and a
# short text body, the connection closed afterwards, and virex_http_parse_errors_total moved. Also the header
# timeout (408, measured from the first byte, not per read) and the keep-alive idle timeout (silent close).
import threading
import time
import unittest

from harness import (DaemonTestCase, basic_config, build_request, metric_sum, wait_metric)

LIMITS = ("{max_header_bytes: 4KiB, max_uri_bytes: 1KiB, max_body_bytes: 1KiB, header_timeout: 1s, "
          "idle_timeout: 1s, drain_timeout: 10s}")
ROUTES = """  - name: hello
    match: {host: "*", path: /hello, method: [GET, HEAD]}
    respond: {status: 200, headers: {Content-Type: text/plain}, body: "hi\\n"}
  - name: upload
    match: {path: /upload, method: [POST, PUT]}
    respond: {status: 201, body: "stored\\n"}
"""

H = "Host: x\r\n"

# name → (raw bytes, status). Bodies are kept small so the server reads everything we send before it closes
# (closing with unread bytes makes the kernel send RST, which could discard the response we want to check).
CASES = {
    "header_section_too_large": ("GET /hello HTTP/1.1\r\n" + H + "X-Fill: " + "a" * 4200 + "\r\n\r\n", 431),
    "many_headers_too_large": ("GET /hello HTTP/1.1\r\n" + H +
                               "".join(f"X-H{i}: {'b' * 40}\r\n" for i in range(100)) + "\r\n", 431),
    "uri_too_long": ("GET /hello?q=" + "u" * 1100 + " HTTP/1.1\r\n" + H + "\r\n", 414),
    "content_length_too_large": ("POST /upload HTTP/1.1\r\n" + H + "Content-Length: 2048\r\n\r\n", 413),
    "content_length_too_large_with_expect": ("POST /upload HTTP/1.1\r\n" + H + "Content-Length: 2048\r\n"
                                             "Expect: 100-continue\r\n\r\n", 413),
    "chunked_body_grows_too_large": ("POST /upload HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n" +
                                     "320\r\n" + "c" * 800 + "\r\n" + "320\r\n" + "c" * 800 + "\r\n0\r\n\r\n", 413),
    "content_length_and_transfer_encoding": ("POST /upload HTTP/1.1\r\n" + H + "Content-Length: 5\r\n"
                                             "Transfer-Encoding: chunked\r\n\r\n", 400),
    "two_different_content_lengths": ("POST /upload HTTP/1.1\r\n" + H + "Content-Length: 5\r\n"
                                      "Content-Length: 6\r\n\r\n", 400),
    "bad_chunk_size": ("POST /upload HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    "unknown_transfer_encoding": ("POST /upload HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip\r\n\r\n", 501),
    "bare_cr_in_header": ("GET /hello HTTP/1.1\r\n" + H + "X-A: b\rc\r\n\r\n", 400),
    "obs_fold_space": ("GET /hello HTTP/1.1\r\n" + H + "X-A: b\r\n  c\r\n\r\n", 400),
    "obs_fold_tab": ("GET /hello HTTP/1.1\r\n" + H + "X-A: b\r\n\tc\r\n\r\n", 400),
    "nul_in_header": ("GET /hello HTTP/1.1\r\n" + H + "X-A: b\x00c\r\n\r\n", 400),
    "http11_without_host": ("GET /hello HTTP/1.1\r\nUser-Agent: t\r\n\r\n", 400),
    "http10_with_transfer_encoding": ("POST /upload HTTP/1.0\r\nConnection: keep-alive\r\n"
                                      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "target_not_origin_form": ("GET hello HTTP/1.1\r\n" + H + "\r\n", 400),
    "invalid_host": ("GET /hello HTTP/1.1\r\nHost: a/b@c\r\n\r\n", 400),
    "http2_version": ("GET /hello HTTP/2.0\r\n" + H + "\r\n", 505),
}


class BadInputTest(DaemonTestCase):
    def setUp(self):
        self.d = self.daemon(basic_config(ROUTES, limits=LIMITS))

    def parse_errors(self):
        return metric_sum(self.d.metrics(), "virex_http_parse_errors_total")

    def assert_answered_and_closed(self, c, want_status, method, before, what, timeout=5.0):
        r = c.read_response(method, timeout=timeout)
        self.assertEqual(r.status, want_status, f"{what}: sent {c.sent[:300]!r}\ngot {r.describe()}")
        self.assertTrue(r.body.strip(), f"{what}: error response must say why: {r.describe()}")
        rest = c.read_until_close(5)
        self.assertEqual(rest, b"", f"{what}: connection must be closed after the error response")
        after = wait_metric(self.d.admin, "virex_http_parse_errors_total", before + 1)
        self.assertGreaterEqual(after - before, 1, f"{what}: virex_http_parse_errors_total did not move")
        return r

    def test_each_bad_input_case(self):
        for name, (raw, status) in CASES.items():
            with self.subTest(name):
                before = self.parse_errors()
                c = self.conn(self.d.public)
                c.send(raw.encode("latin-1"))
                self.assert_answered_and_closed(c, status, raw.split(" ", 1)[0], before, name)
        # the server is still fine
        c = self.conn(self.d.public)
        r = c.request("GET", "/hello")
        self.assertEqual(r.status, 200, r.describe())

    def test_bad_request_after_a_good_one_on_the_same_connection(self):
        before = self.parse_errors()
        c = self.conn(self.d.public)
        c.send(build_request("GET", "/hello") + b"GET /hello HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n")
        r = c.read_response("GET")
        self.assertEqual((r.status, r.body), (200, b"hi\n"), r.describe())
        self.assert_answered_and_closed(c, 400, "GET", before, "obs-fold in the second pipelined request")

    def test_endless_chunk_extension_is_bounded(self):
        # Beast bounds neither chunk lines nor trailers; the server must, not buffer them until idle_timeout.
        before = self.parse_errors()
        c = self.conn(self.d.public)
        c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=" + b"e" * 8000)
        self.assert_answered_and_closed(c, 400, "POST", before, "an endless chunk extension")

    def test_expect_continue_without_a_route_gets_the_final_status(self):
        c = self.conn(self.d.public)
        c.send(b"PUT /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
        r = c.read_response("PUT")
        self.assertEqual(r.status, 404, f"no 100 Continue for a body nobody wants: {r.describe()}")
        self.assertEqual(c.read_until_close(5), b"", "closed: the client may or may not send the body")

    def test_http10_without_host_is_fine(self):
        c = self.conn(self.d.public)
        c.send(b"GET /hello HTTP/1.0\r\n\r\n")
        r = c.read_response("GET")
        self.assertEqual((r.status, r.body), (200, b"hi\n"), r.describe())

    def test_header_timeout_408(self):
        before = self.parse_errors()
        c = self.conn(self.d.public)
        t0 = time.monotonic()
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n")         # headers never completed
        self.assert_answered_and_closed(c, 408, "GET", before, "partial request", timeout=6)
        self.assertGreater(time.monotonic() - t0, 0.5, "408 came before header_timeout (1s)")
        self.assertEqual(metric_sum(self.d.metrics(), "virex_http_timeouts_total", phase="header"), 1)

    def test_header_timeout_counts_from_first_byte_not_per_read(self):
        # Slowloris: one header line every 0.3 s never completes the head. A timer reset by every read would
        # never fire while we trickle (3 s); header_timeout = 1s must answer 408 well before the trickle ends.
        before = self.parse_errors()
        c = self.conn(self.d.public)
        done = threading.Event()

        def trickle():
            try:
                c.sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
                for i in range(10):
                    if done.wait(0.3):
                        return
                    c.sock.sendall(f"X-Slow-{i}: y\r\n".encode())
            except OSError:
                pass

        t = threading.Thread(target=trickle, daemon=True)
        t0 = time.monotonic()
        t.start()
        try:
            r = c.read_response("GET", timeout=6)
        finally:
            done.set()
            t.join(5)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 408, r.describe())
        self.assertLess(elapsed, 2.5, f"408 only after {elapsed:.2f}s: the header timer is reset per read")
        self.assertEqual(c.read_until_close(5), b"")
        after = wait_metric(self.d.admin, "virex_http_parse_errors_total", before + 1)
        self.assertGreaterEqual(after - before, 1)

    def test_idle_keepalive_connection_closed_without_response(self):
        c = self.conn(self.d.public)
        r = c.request("GET", "/hello")
        self.assertEqual(r.status, 200, r.describe())
        t0 = time.monotonic()
        rest = c.read_until_close(6)
        self.assertEqual(rest, b"", f"idle close must not send a response, got {rest[:200]!r}")
        self.assertGreater(time.monotonic() - t0, 0.5, "closed before idle_timeout (1s)")
        self.assertEqual(metric_sum(self.d.metrics(), "virex_http_timeouts_total", phase="idle"), 1)

    def test_stalled_body_times_out(self):
        c = self.conn(self.d.public)
        c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123")   # then nothing
        self.assertEqual(c.read_until_close(6), b"", "a stalled body is cut off after idle_timeout (1s)")
        self.assertEqual(metric_sum(self.d.metrics(), "virex_http_timeouts_total", phase="body"), 1)


if __name__ == "__main__":
    unittest.main()
