# Self-test of the scripted origin (origin.py) the proxy tests rely on, driven by curl and raw sockets with no
# daemon involved: each behaviour produces exactly the bytes, framing and connection handling it documents,
# so a proxy test failure points at the proxy rather than at its fixture.
import hashlib
import json
import os
import socket
import struct
import subprocess
import tempfile
import threading
import unittest

from harness import Conn, assert_refused, require_tool
from origin import (Blackhole, Close, Drip, Hold, Origin, Partial, Raw, Reply, Reset, Stream, Upload,
                    WebSocketEcho, pattern, pattern_sha256, ws_accept, ws_frame, ws_read_frame)


def curl(*args, timeout=30):
    return subprocess.run([require_tool("curl"), "-sS", "--max-time", str(timeout), *args],
                          capture_output=True, timeout=timeout + 5, stdin=subprocess.DEVNULL)


class OriginTest(unittest.TestCase):
    def setUp(self):
        self.o = Origin("o1").start()
        self.addCleanup(self.o.close)
        self.url = f"http://{self.o.endpoint}"

    def curl_ok(self, *args):
        cp = curl(*args)
        self.assertEqual(cp.returncode, 0, cp.stderr.decode(errors="replace"))
        return cp.stdout

    def test_default_reply_keepalive_and_log(self):
        out = self.curl_ok("-H", "X-Test: 1", "-w", "|%{http_code} %{num_connects}\n", self.url + "/a?x=1",
                           "-w", "|%{http_code} %{num_connects}\n", self.url + "/b")
        self.assertEqual(out, b"o1\n|200 1\no1\n|200 0\n", "two requests over one kept-alive connection")
        self.assertEqual(self.o.connections_accepted, 1)
        reqs = self.o.requests()
        self.assertEqual([(r.method, r.target, r.path, r.seq) for r in reqs],
                         [("GET", "/a?x=1", "/a", 1), ("GET", "/b", "/b", 2)])
        self.assertEqual(reqs[0].header("x-test"), "1")
        self.assertEqual(reqs[0].peer[0], "127.0.0.1")

    def test_reply_framings_status_headers(self):
        self.o.route("/len", Reply(201, b"len-body", headers=[("X-A", "1")]))
        self.o.route("/chunked", Reply(200, b"chunked-body", framing="chunked"))
        self.o.route("/close", Reply(200, b"close-body", framing="close"))
        self.o.route("/p", Reply(202, "post"), method="POST")
        for path, body, marker in (("/len", b"len-body", b"Content-Length: 8"),
                                   ("/chunked", b"chunked-body", b"Transfer-Encoding: chunked"),
                                   ("/close", b"close-body", b"Connection: close")):
            out = self.curl_ok("-i", "--raw", self.url + path)
            self.assertTrue(out.endswith(body) or body in out, out)
            if marker != b"Connection: close":
                self.assertIn(marker, out)
            else:
                self.assertNotIn(b"Content-Length", out)
                self.assertNotIn(b"Transfer-Encoding", out)
        self.assertIn(b"X-A: 1", self.curl_ok("-i", self.url + "/len"))
        self.assertEqual(self.curl_ok("-X", "POST", "-d", "x", self.url + "/p"), b"post")
        self.assertEqual(self.curl_ok(self.url + "/p"), b"o1\n", "method-restricted route")
        # close framing closes the connection; HEAD gets no body
        c = Conn(self.o.port)
        self.addCleanup(c.close)
        r = c.request("HEAD", "/len")
        self.assertEqual((r.status, r.header("Content-Length"), r.body), (201, "8", b""))
        r = c.request("GET", "/close")
        self.assertEqual(r.body, b"close-body")
        self.assertEqual(c.read_until_close(5), b"")

    def test_upload_sha_and_expect(self):
        data = os.urandom(1_500_000)             # over 1 MiB: curl sends Expect: 100-continue
        self.o.route("/up", Upload())
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            got = json.loads(self.curl_ok("--data-binary", "@" + f.name, self.url + "/up"))
            self.assertEqual(got, {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "chunked": False})
            got = json.loads(self.curl_ok("-H", "Transfer-Encoding: chunked", "--data-binary", "@" + f.name,
                                          self.url + "/up"))
            self.assertEqual(got["size"], len(data))
            self.assertTrue(got["chunked"])
        reqs = self.o.requests(path="/up")
        self.assertEqual(reqs[0].header("Expect"), "100-continue")
        self.assertEqual(reqs[0].body_len, len(data))
        self.assertEqual(reqs[0].body, data[:64 * 1024])
        self.assertTrue(reqs[1].complete and reqs[1].chunked)

    def test_stream_big_body(self):
        size = 32 * 1024 * 1024 + 123
        self.o.route("/big", Stream(size))
        self.o.route("/bigc", Stream(size, framing="chunked"))
        for path in ("/big", "/bigc"):
            out = self.curl_ok("-o", "/dev/null", "-w", "%{size_download}", self.url + path)
            self.assertEqual(int(out), size)
        # content is independent of the piece size and position-dependent
        self.assertEqual(b"".join(pattern(300_000, piece=64 * 1024)), b"".join(pattern(300_000)))
        blocks = b"".join(pattern(128 * 1024))
        self.assertNotEqual(blocks[:64 * 1024], blocks[64 * 1024:])
        h = hashlib.sha256(subprocess.run([require_tool("curl"), "-sS", self.url + "/big"],
                                          capture_output=True).stdout).hexdigest()
        self.assertEqual(h, pattern_sha256(size))

    def test_hold_until_gate(self):
        gate = threading.Event()
        self.addCleanup(gate.set)
        self.o.route("/slow", Hold(gate, Reply(200, b"late")))
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("out", self.curl_ok(self.url + "/slow")))
        t.start()
        self.o.wait_in_flight(1)
        self.assertTrue(t.is_alive(), "nothing is sent while the gate is closed")
        gate.set()
        t.join(10)
        self.assertEqual(result["out"], b"late")
        # The origin's thread counts the request done just after the last byte left: the client can be first.
        self.o.wait_for(lambda: self.o.in_flight == 0, 10, "the held request to end")

    def test_hold_notices_peer_close(self):
        self.o.route("/slow", Hold(threading.Event()))
        c = Conn(self.o.port)
        c.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        self.o.wait_in_flight(1)
        c.close()
        self.o.wait_connection_closed(1)
        self.assertTrue(self.o.connections[0].closed_by_peer)

    def test_partial_close_reset_hold(self):
        gate = threading.Event()
        self.addCleanup(gate.set)
        self.o.route("/close", Partial(10_000, 1000, then="close"))
        self.o.route("/reset", Partial(10_000, 1000, then="reset"))
        self.o.route("/chunk", Partial(10_000, 1000, then="close", framing="chunked"))
        self.o.route("/hold", Partial(10_000, 1000, then="hold", gate=gate))
        for path in ("/close", "/reset", "/chunk"):
            cp = curl(self.url + path, "-o", "/dev/null")
            self.assertIn(cp.returncode, (18, 56), f"{path}: curl must see a truncated transfer: {cp.stderr}")
        c = Conn(self.o.port)
        self.addCleanup(c.close)
        c.send(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        with self.assertRaises(AssertionError):            # head and 1000 bytes, then silence
            c.read_response(timeout=0.5)
        self.assertEqual(len(c.buf), 1000, "the head was parsed, 1000 of 10000 body bytes wait in the buffer")
        gate.set()
        self.assertEqual(len(c.read_until_close(5)), 1000, "FIN once the gate opens")

    def test_reset_close_raw_drip(self):
        self.o.route("/rst", Reset())
        self.o.route("/fin", Close())
        self.o.route("/raw", Raw(b"HTTP/1.1 abc\r\n\r\n"))
        self.o.route("/drip", Drip(5, 0.01))
        self.assertEqual(curl(self.url + "/rst").returncode, 56, "RST: recv failure")
        self.assertEqual(curl(self.url + "/fin").returncode, 52, "FIN: empty reply")
        self.assertNotEqual(curl(self.url + "/raw").returncode, 0, "malformed status line")
        self.assertEqual(self.curl_ok(self.url + "/drip"), b"ddddd")

    def test_health_switch(self):
        self.assertEqual(self.curl_ok("-w", "%{http_code}", "-o", "/dev/null", self.url + "/health"), b"200")
        self.o.set_health(500)
        self.assertEqual(self.curl_ok("-w", "%{http_code}", "-o", "/dev/null", self.url + "/health"), b"500")
        self.assertEqual(len(self.o.health_checks()), 2)
        self.assertEqual(self.o.requests(), [], "health checks are logged apart")

    def test_stop_start_same_port(self):
        port = self.o.port
        c = Conn(port)
        self.assertEqual(c.request("GET", "/x").status, 200)
        self.o.stop()
        assert_refused(port)
        self.assertEqual(c.read_until_close(5), b"", "stop() closes open connections")
        c.close()
        self.o.start()
        self.assertEqual(self.o.port, port)
        self.assertEqual(self.curl_ok(self.url + "/y"), b"o1\n")
        self.assertEqual(self.o.connections_accepted, 2)

    def test_websocket_echo(self):
        self.o.route("/ws", WebSocketEcho())
        c = Conn(self.o.port)
        self.addCleanup(c.close)
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        c.send(f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 101)
        self.assertEqual(r.header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")  # RFC 6455 §1.3
        self.assertEqual(ws_accept(key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        for payload in (b"hello", os.urandom(300), os.urandom(70_000)):
            c.send(ws_frame(0x2, payload))
            fin, op, masked, got = ws_read_frame(c.read_exact)
            self.assertEqual((fin, op, masked, got), (True, 0x2, False, payload))
        c.send(ws_frame(0x8, struct.pack(">H", 1000)))
        self.assertEqual(ws_read_frame(c.read_exact)[1], 0x8)
        self.assertEqual(c.read_until_close(5), b"")
        self.assertEqual([f[2] for f in self.o.ws_frames], [True] * 4, "client frames arrive masked")

    def test_blackhole_connect_times_out(self):
        b = Blackhole()
        self.addCleanup(b.close)
        s = socket.socket()
        s.settimeout(0.3)
        with self.assertRaises((socket.timeout, TimeoutError)):
            s.connect(("127.0.0.1", b.port))
        s.close()
        self.assertEqual(curl("--connect-timeout", "0.3", f"http://{b.endpoint}/").returncode, 28)


if __name__ == "__main__":
    unittest.main()
