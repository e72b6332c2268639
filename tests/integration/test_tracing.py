"""W3C trace context at the edge: a valid incoming traceparent's trace id is kept, a malformed one is ignored
(never an error) and a new id started; the id is in the configured response header and in the access log."""
import json
import os
import unittest

from harness import Conn, DaemonTestCase, basic_config
from test_signals import hello

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def config(with_header=True):
    base = basic_config(hello("v1"), access_log=("$DIR/access.log", "json"))
    if with_header:
        base = base.replace("observability: {", "observability: {tracing: {response_header: X-Trace-Id}, ", 1)
    return base


class TraceIdTest(DaemonTestCase):
    def test_trace_id_in_response_header_and_access_log(self):
        d = self.daemon(config())
        c = Conn(d.public)
        self.addCleanup(c.close)
        kept = c.request("GET", "/hello", headers={"traceparent": TRACEPARENT})
        self.assertEqual(kept.status, 200)
        self.assertEqual(kept.header("X-Trace-Id"), "4bf92f3577b34da6a3ce929d0e0e4736")
        bad = c.request("GET", "/hello", headers={"traceparent": "00-XYZ-bad-01"})
        self.assertEqual(bad.status, 200, "a malformed traceparent is ignored, never an error")
        new = bad.header("X-Trace-Id")
        self.assertRegex(new or "", r"^[0-9a-f]{32}$")
        self.assertNotEqual(new, "0" * 32)
        none = c.request("GET", "/nowhere")
        self.assertEqual(none.status, 404)
        self.assertRegex(none.header("X-Trace-Id") or "", r"^[0-9a-f]{32}$", "404s carry the id too")
        self.assertNotEqual(none.header("X-Trace-Id"), new, "each request starts its own trace")
        d.stop()
        with open(os.path.join(d.dir, "access.log")) as f:
            recs = [json.loads(line) for line in f if line.strip()]
        # One connection is served by one worker, whose lines keep their order.
        self.assertEqual([(r["target"], r.get("trace_id")) for r in recs],
                         [("/hello", "4bf92f3577b34da6a3ce929d0e0e4736"), ("/hello", new),
                          ("/nowhere", none.header("X-Trace-Id"))])

    def test_no_header_unless_configured(self):
        d = self.daemon(config(with_header=False))
        c = Conn(d.public)
        self.addCleanup(c.close)
        r = c.request("GET", "/hello", headers={"traceparent": TRACEPARENT})
        self.assertIsNone(r.header("X-Trace-Id"))
        d.stop()
        with open(os.path.join(d.dir, "access.log")) as f:
            rec = json.loads(f.readline())
        self.assertEqual(rec["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "the access log has it anyway")


if __name__ == "__main__":
    unittest.main()
