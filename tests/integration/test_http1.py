# HTTP/1.1 behaviour of the public listener against real clients (curl and raw sockets): GET/HEAD, keep-alive,
# 404/405+Allow, template/prefix/host routing, file bodies, pipelining order, chunked bodies, 100-continue,
# Connection: close and HTTP/1.0. One daemon per test (fresh counters); each asserts on bytes on the wire.
import email.utils
import os
import shutil
import tempfile
import time
import unittest

from harness import (DaemonTestCase, basic_config, build_request, metric_sum, run_curl, wait_metric)

ROUTES = """  - name: hello
    match: {host: "*", path: /hello, method: [GET, HEAD]}
    respond: {status: 200, headers: {Content-Type: text/plain}, body: "hi\\n"}
  - name: api
    match: {host: api.example.com, path: /who}
    respond: {body: "api\\n"}
  - name: wild
    match: {host: "*.example.org", path: /who}
    respond: {body: "wild\\n"}
  - name: who-default
    match: {path: /who}
    respond: {body: "default\\n"}
  - name: user
    match: {path: "/users/{id:int64}", method: GET}
    respond: {body: "user\\n"}
  - name: item
    match: {path: "/items/{name}/detail"}
    respond: {body: "item\\n"}
  - name: static
    match: {prefix: /static/}
    respond: {body: "static\\n"}
  - name: file
    match: {path: /file, method: [GET, HEAD]}
    respond: {headers: {Content-Type: application/octet-stream}, file: $DIR/blob.bin}
  - name: upload
    match: {path: /upload, method: [POST, PUT]}
    respond: {status: 201, body: "stored\\n"}
  - name: p1
    match: {path: /p1}
    respond: {body: "one"}
  - name: p2
    match: {path: /p2}
    respond: {body: "two"}
  - name: p3
    match: {path: /p3}
    respond: {body: "three"}
"""

BLOB = os.urandom(200 * 1024)


class Http1Test(DaemonTestCase):
    def setUp(self):
        self.d = self.daemon(basic_config(ROUTES), start=False)
        with open(os.path.join(self.d.dir, "blob.bin"), "wb") as f:
            f.write(BLOB)
        self.d.start()
        self.base = f"http://127.0.0.1:{self.d.public}"

    def curl(self, *args):
        """curl → (status, [(name, value)] of the last response, body bytes)."""
        tmp = tempfile.mkdtemp(prefix="virex-curl-")
        self.addCleanup(shutil.rmtree, tmp, True)
        hdr, body = os.path.join(tmp, "h"), os.path.join(tmp, "b")
        cp = run_curl("-D", hdr, "-o", body, *args)
        self.assertEqual(cp.returncode, 0, f"curl {args}: {cp.stderr.decode(errors='replace')}")
        with open(hdr, "rb") as f:
            blocks = [b for b in f.read().decode("latin-1").split("\r\n\r\n") if b.strip()]
        lines = blocks[-1].split("\r\n")
        status = int(lines[0].split()[1])
        headers = [(k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:])]
        with open(body, "rb") as f:
            return status, headers, f.read()

    @staticmethod
    def hget(headers, name):
        vals = [v for k, v in headers if k.lower() == name.lower()]
        return vals[0] if vals else None

    # ---------------------------------------------------------------------------------------------- curl --
    def test_get_with_curl(self):
        status, headers, body = self.curl(self.base + "/hello")
        self.assertEqual(status, 200, headers)
        self.assertEqual(body, b"hi\n")
        self.assertEqual(self.hget(headers, "Content-Type"), "text/plain")
        self.assertEqual(self.hget(headers, "Content-Length"), "3")
        self.assertEqual(self.hget(headers, "Server"), "virex-edge")
        date = self.hget(headers, "Date")
        self.assertIsNotNone(date, headers)
        self.assertRegex(date, r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")  # IMF-fixdate
        self.assertLess(abs(email.utils.parsedate_to_datetime(date).timestamp() - time.time()), 60, date)

    def test_head_with_curl_and_raw(self):
        status, headers, body = self.curl("-I", self.base + "/hello")
        self.assertEqual(status, 200, headers)
        self.assertEqual(self.hget(headers, "Content-Length"), "3")
        # (curl -I writes the head itself to -o, so the absence of a body is checked on the raw socket.)
        # Raw: HEAD followed by GET in one send; if HEAD leaked a body the GET's status line would be garbled.
        c = self.conn(self.d.public)
        c.send(build_request("HEAD", "/file") + build_request("GET", "/hello"))
        r1 = c.read_response("HEAD")
        self.assertEqual(r1.status, 200, r1.describe())
        self.assertEqual(r1.header("Content-Length"), str(len(BLOB)))
        r2 = c.read_response("GET")
        self.assertEqual((r2.status, r2.body), (200, b"hi\n"), r2.describe())

    def test_keepalive_reuse_with_curl(self):
        before = metric_sum(self.d.metrics(), "virex_http_connections_total", listener="public")
        cp = run_curl("-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n",
                      self.base + "/hello", self.base + "/hello")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stdout.decode().split("\n")[:2], ["200 1", "200 0"],
                         "second transfer must reuse the first connection")
        after = wait_metric(self.d.admin, "virex_http_connections_total", before + 1, listener="public")
        self.assertEqual(after - before, 1)

    def test_not_found(self):
        status, headers, body = self.curl(self.base + "/nope")
        self.assertEqual(status, 404, headers)
        self.assertTrue(body, "error responses carry a short text body")

    def test_method_not_allowed_lists_allow(self):
        for method in ("POST", "DELETE"):
            status, headers, body = self.curl("-X", method, self.base + "/hello")
            self.assertEqual(status, 405, (method, headers))
            allow = {t.strip().upper() for t in (self.hget(headers, "Allow") or "").split(",")}
            self.assertEqual(allow, {"GET", "HEAD"}, headers)
            self.assertTrue(body)

    def test_template_and_prefix_routes(self):
        cases = [("/users/42", 200, b"user\n"), ("/users/-7", 200, b"user\n"),
                 ("/users/abc", 404, None), ("/users/42/x", 404, None), ("/users/", 404, None),
                 ("/users/99999999999999999999", 404, None),           # does not fit in int64
                 ("/items/foo/detail", 200, b"item\n"), ("/items/foo/bar/detail", 404, None),
                 ("/static/a/b.css", 200, b"static\n"), ("/static/", 200, b"static\n"), ("/static", 404, None)]
        for path, want_status, want_body in cases:
            status, headers, body = self.curl(self.base + path)
            self.assertEqual(status, want_status, f"{path}: {headers} {body!r}")
            if want_body is not None:
                self.assertEqual(body, want_body, path)

    def test_host_routing(self):
        cases = [("api.example.com", b"api\n"), ("API.Example.COM:8080", b"api\n"),
                 ("x.example.org", b"wild\n"), ("deep.x.example.org:1", b"wild\n"),
                 ("example.net", b"default\n"), ("api.example.com.evil", b"default\n")]
        for host, want in cases:
            status, headers, body = self.curl("-H", f"Host: {host}", self.base + "/who")
            self.assertEqual((status, body), (200, want), f"Host: {host}")

    def test_file_body(self):
        status, headers, body = self.curl(self.base + "/file")
        self.assertEqual(status, 200, headers)
        self.assertEqual(self.hget(headers, "Content-Length"), str(len(BLOB)))
        self.assertEqual(self.hget(headers, "Content-Type"), "application/octet-stream")
        self.assertTrue(body == BLOB, f"file body differs: got {len(body)} bytes, want {len(BLOB)}")

    # ------------------------------------------------------------------------------------------ raw wire --
    def test_pipelining_keeps_order(self):
        c = self.conn(self.d.public)
        reqs = [("GET", "/p1"), ("GET", "/file"), ("GET", "/nope"), ("HEAD", "/hello"), ("GET", "/p2"),
                ("POST", "/upload"), ("GET", "/p3")]
        c.send(b"".join(build_request(m, t, body=b"abc" if m == "POST" else None) for m, t in reqs))
        got = [c.read_response(m) for m, _ in reqs]
        self.assertEqual([r.status for r in got], [200, 200, 404, 200, 200, 201, 200],
                         [r.describe()[:80] for r in got])
        self.assertEqual(got[0].body, b"one")
        self.assertTrue(got[1].body == BLOB, "the file body in the middle of the pipeline differs")
        self.assertEqual(got[3].body, b"")
        self.assertEqual(got[4].body, b"two")
        self.assertEqual(got[5].body, b"stored\n")
        self.assertEqual(got[6].body, b"three")
        # still usable afterwards
        r = c.request("GET", "/p1")
        self.assertEqual((r.status, r.body), (200, b"one"), r.describe())

    def test_chunked_request_body(self):
        c = self.conn(self.d.public)
        head = ("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                "Content-Type: text/plain\r\n\r\n")
        c.send(head + "5\r\nhello\r\n")
        c.send("6;ext=1\r\n world\r\n")          # chunk extension (RFC 9112 §7.1.1), separate segment
        c.send("A\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n")
        r = c.read_response("POST")
        self.assertEqual((r.status, r.body), (201, b"stored\n"), r.describe())
        # the body was consumed exactly: the next request on the connection parses
        r = c.request("GET", "/hello")
        self.assertEqual((r.status, r.body), (200, b"hi\n"), r.describe())

    def test_content_length_body_then_next_request(self):
        c = self.conn(self.d.public)
        c.send(build_request("PUT", "/upload", body=b"x" * 5000) + build_request("GET", "/p2"))
        r = c.read_response("PUT")
        self.assertEqual(r.status, 201, r.describe())
        r = c.read_response("GET")
        self.assertEqual((r.status, r.body), (200, b"two"), r.describe())

    def test_expect_100_continue(self):
        c = self.conn(self.d.public)
        c.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = c.read_response("POST")
        self.assertEqual(interim.status, 100, interim.describe())
        c.send("hello")
        r = c.read_response("POST")
        self.assertEqual((r.status, r.body), (201, b"stored\n"), r.describe())
        r = c.request("GET", "/hello")
        self.assertEqual(r.status, 200, r.describe())

    def test_expect_100_continue_with_curl(self):
        cp = run_curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect: 100-continue",
                      "--expect100-timeout", "5", "--data-binary", "x" * 2048, self.base + "/upload")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stdout, b"201")

    def test_connection_close(self):
        c = self.conn(self.d.public)
        c.send(build_request("GET", "/hello", headers={"Connection": "close"}))
        r = c.read_response("GET")
        self.assertEqual((r.status, r.body), (200, b"hi\n"), r.describe())
        self.assertTrue(r.has_token("Connection", "close"), r.describe())
        self.assertEqual(c.read_until_close(5), b"", "server must close after Connection: close")

    def test_connection_close_in_pipeline_drops_later_requests(self):
        c = self.conn(self.d.public)
        c.send(build_request("GET", "/p1", headers={"Connection": "close"}) + build_request("GET", "/p2"))
        r = c.read_response("GET")
        self.assertEqual((r.status, r.body), (200, b"one"), r.describe())
        self.assertTrue(r.has_token("Connection", "close"), r.describe())
        self.assertEqual(c.read_until_close(5), b"", "no response after the one carrying Connection: close")

    def test_http10_closes_after_response(self):
        for host_header in (True, False):
            c = self.conn(self.d.public)
            c.send("GET /hello HTTP/1.0\r\n" + ("Host: x\r\n" if host_header else "") + "\r\n")
            r = c.read_response("GET")
            self.assertEqual((r.status, r.body), (200, b"hi\n"), r.describe())
            self.assertEqual(c.read_until_close(5), b"", "HTTP/1.0 without keep-alive must be closed")


if __name__ == "__main__":
    unittest.main()
