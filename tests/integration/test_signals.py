# Signals on the real binary: SIGHUP reload under load (zero failed requests, new config visible once READY=1),
# an invalid reload keeping the old config, listeners added/removed by reload, SIGTERM drain under load
# (in-flight requests finish, /readyz 503 while draining, exit 0 before drain_timeout), the drain deadline,
# and SIGUSR1 reopening the access log. Synchronised on sd_notify messages; bounded waits only.
import json
import os
import signal
import time
import unittest

from harness import (DaemonTestCase, LoadLoop, assert_refused, basic_config, build_request, fetch_metrics,
                     free_port, http_get, metric_sum, parse_metrics, wait_until)


def hello(body, extra_routes=""):
    return f"""  - name: hello
    match: {{host: "*", path: /hello, method: [GET, HEAD]}}
    respond: {{status: 200, headers: {{Content-Type: text/plain}}, body: "{body}\\n"}}
  - name: upload
    match: {{path: /upload, method: POST}}
    respond: {{status: 201, body: "stored\\n"}}
{extra_routes}"""


def extra_listener(name, placeholder):
    return f'  - {{name: {name}, address: "127.0.0.1:${placeholder}"}}\n'


CLEAN_CLOSE = ("connection closed with no response", "ConnectionRefusedError", "ConnectionResetError",
               "BrokenPipeError")


def failures(records):
    return [r for r in records if r["error"] is not None or r["status"] != 200]


def summary(records, limit=10, t0=None):
    """Failed records; with t0 (the moment the signal was sent), each one's send/finish time relative to it."""
    bad = failures(records)

    def rel(t):
        return "-" if t is None or t0 is None else f"{(t - t0) * 1000:+.3f}ms"
    return f"{len(bad)} of {len(records)} failed; first: " + "; ".join(
        f"[status={r['status']} err={r['error']} reused={r['conn_reused']} sent={rel(r['sent_at'])} "
        f"done={rel(r['done_at'])}]" for r in bad[:limit])


class ReloadTest(DaemonTestCase):
    def test_reload_under_load_zero_failures(self):
        d = self.daemon(basic_config(hello("v1")))
        pid = d.pid
        load = LoadLoop(d.public, conns=4).start(min_requests=50)
        try:
            for version in ("v2", "v3", "v4"):
                d.write_config(basic_config(hello(version)))
                d.reload()
                r = http_get(d.public, "/hello")          # a new connection right after READY=1
                self.assertEqual((r.status, r.body), (200, f"{version}\n".encode()), r.describe())
            n = len(load.records)
            wait_until(lambda: len(load.records) >= n + 50, what="50 more requests after the last reload")
        finally:
            records = load.stop()
        self.assertEqual(failures(records), [], summary(records))
        self.assertEqual({r["body"] for r in records} - {b"v1\n", b"v2\n", b"v3\n", b"v4\n"}, set())
        self.assertTrue(d.alive())
        self.assertEqual(d.pid, pid)
        m = fetch_metrics(d.admin)
        self.assertEqual(metric_sum(m, "virex_config_reloads_total", result="ok"), 3)
        self.assertEqual(metric_sum(m, "virex_config_reloads_total", result="failed"), 0)

    def test_reload_reaches_existing_keepalive_connections(self):
        # READY=1 means every worker runs the new config: a request sent after it, even on a keep-alive
        # connection opened before the reload, gets the new response.
        d = self.daemon(basic_config(hello("v1")))
        conns = [self.conn(d.public) for _ in range(4)]
        for c in conns:
            self.assertEqual(c.request("GET", "/hello").body, b"v1\n")
        load = LoadLoop(d.public, conns=4).start(min_requests=20)
        try:
            d.write_config(basic_config(hello("v2")))
            d.reload()
            t_ready = time.monotonic()
            for c in conns:
                r = c.request("GET", "/hello")
                self.assertEqual((r.status, r.body), (200, b"v2\n"), "old keep-alive connection after READY=1")
            n = len(load.records)
            wait_until(lambda: len(load.records) >= n + 20, what="20 more requests after READY=1")
        finally:
            records = load.stop()
        self.assertEqual(failures(records), [], summary(records))
        stale = [r for r in records if r["sent_at"] and r["sent_at"] > t_ready and r["body"] != b"v2\n"]
        self.assertEqual(stale, [], f"{len(stale)} requests sent after READY=1 got the old body")

    def test_invalid_reload_keeps_old_config(self):
        d = self.daemon(basic_config(hello("v1")))
        load = LoadLoop(d.public, conns=2).start(min_requests=20)
        try:
            with open(d.config_path, "a") as f:
                f.write("bogus_top_level_key: 1\n")
            d.reload()                         # RELOADING=1 then READY=1 after logging the error
            r = http_get(d.public, "/hello")
            self.assertEqual((r.status, r.body), (200, b"v1\n"), r.describe())
            m = fetch_metrics(d.admin)
            self.assertEqual(metric_sum(m, "virex_config_reloads_total", result="failed"), 1)
            self.assertEqual(metric_sum(m, "virex_config_reloads_total", result="ok"), 0)
            # The daemon log is asynchronous: the line may reach stderr just after READY=1.
            wait_until(lambda: "bogus_top_level_key" in d.stderr(), 5, what="the reload error in the log")
            self.assertIn(d.config_path, d.stderr(), "the reload error is logged with the file name")
            # a later valid reload still works
            d.write_config(basic_config(hello("v2")))
            d.reload()
            r = http_get(d.public, "/hello")
            self.assertEqual((r.status, r.body), (200, b"v2\n"), r.describe())
        finally:
            records = load.stop()
        self.assertEqual(failures(records), [], summary(records))
        self.assertEqual(metric_sum(fetch_metrics(d.admin), "virex_config_reloads_total", result="ok"), 1)

    def test_listener_added_and_removed_by_reload(self):
        old, new = free_port(), free_port()
        d = self.daemon(basic_config(hello("v1"), extra_listeners=extra_listener("old", "OLD")), OLD=old, NEW=new)
        self.assertEqual(http_get(old, "/hello").status, 200)
        assert_refused(new)
        d.write_config(basic_config(hello("v2"), extra_listeners=extra_listener("new", "NEW")))
        d.reload()
        r = http_get(new, "/hello")
        self.assertEqual((r.status, r.body), (200, b"v2\n"), "added listener accepts once READY=1")
        assert_refused(old)
        self.assertEqual(http_get(d.public, "/hello").status, 200, "unchanged listener keeps serving")
        self.assertEqual(wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_http_requests_total",
                                                       listener="new") or None, 5, what="listener=new series"),
                         1)


class DrainTest(DaemonTestCase):
    def test_sigterm_finishes_started_requests(self):
        # Two requests the server has started reading when SIGTERM arrives: a POST with half its body and a
        # /readyz with half its head. They must finish (readyz answering 503 while draining), then exit 0.
        d = self.daemon(basic_config(hello("v1")))
        body_conn = self.conn(d.public)
        body_conn.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
        ready_conn = self.conn(d.admin)
        self.assertEqual(ready_conn.request("GET", "/readyz").status, 200)
        ready_conn.send(b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 200 + b"\r\n")
        wait_bytes_read(self, d, public=len(body_conn.sent), admin=len(ready_conn.sent))
        t_sig = time.monotonic()
        d.send_signal(signal.SIGTERM)
        d.wait_notify("STOPPING=1")
        ready_conn.send(b"\r\n")
        r = ready_conn.read_response("GET")
        self.assertEqual(r.status, 503, f"/readyz while draining: {r.describe()}")
        body_conn.send(b"56789")
        r = body_conn.read_response("POST")
        self.assertEqual((r.status, r.body), (201, b"stored\n"), f"in-flight POST: {r.describe()}")
        self.assertTrue(r.has_token("Connection", "close"), r.describe())
        self.assertEqual(body_conn.read_until_close(5), b"", "drained connection closes after its response")
        wait_until(lambda: _refused(d.public), 5, what="public listener to stop accepting")
        rc = d.wait_exit(15)
        elapsed = time.monotonic() - t_sig
        self.assertEqual(rc, 0, d.stderr())
        self.assertLess(elapsed, 8.0, "drain must finish well before drain_timeout (10s) once work is done")

    def test_sigterm_drains_under_load(self):
        # Keep-alive load across SIGTERM. Loopback delivery is synchronous, so a request written before kill()
        # is in the server's receive queue when the signal arrives: it must be answered, never dropped.
        # Requests written after it may be answered or cleanly refused (EOF/RST/ECONNREFUSED), never cut short.
        d = self.daemon(basic_config(hello("v1")))
        load = LoadLoop(d.public, conns=4).start(min_requests=50)
        try:
            t_sig = time.monotonic()
            d.send_signal(signal.SIGTERM)
            d.wait_notify("STOPPING=1")
            rc = d.wait_exit(15)
            elapsed = time.monotonic() - t_sig
        finally:
            records = load.stop()
        self.assertEqual(rc, 0, d.stderr())
        before = [r for r in records if r["sent_at"] is not None and r["sent_at"] < t_sig]
        self.assertGreater(len(before), 50)
        self.assertEqual(failures(before), [],
                         "requests written before SIGTERM must complete: " + summary(before, t0=t_sig))
        after = [r for r in records if r["sent_at"] is None or r["sent_at"] >= t_sig]
        truncated = [r for r in after if r["error"] and not any(s in r["error"] for s in CLEAN_CLOSE)]
        self.assertEqual(truncated, [], "after SIGTERM a request is answered or cleanly refused, never cut")
        wrong = [r for r in after if r["status"] not in (None, 200)]
        self.assertEqual(wrong, [], "after SIGTERM: unexpected statuses")
        self.assertLess(elapsed, 8.0, "drain must finish well before drain_timeout (10s): "
                                      "a keep-alive connection was left open")

    def test_sigterm_closes_idle_connections_and_exits_promptly(self):
        d = self.daemon(basic_config(hello("v1")))
        idle = self.conn(d.public)
        self.assertEqual(idle.request("GET", "/hello").status, 200)
        elapsed = d.stop()
        self.assertLess(elapsed, 5.0, "an idle keep-alive connection must not hold the drain")
        self.assertEqual(idle.read_until_close(2), b"")

    def daemon_with_stuck_upload(self, drain_timeout):
        """A daemon holding one request that never completes (half its body sent)."""
        limits = ("{max_header_bytes: 16KiB, max_uri_bytes: 8KiB, max_body_bytes: 1MiB, header_timeout: 30s, "
                  f"idle_timeout: 60s, drain_timeout: {drain_timeout}}}")
        d = self.daemon(basic_config(hello("v1"), limits=limits))
        stuck = self.conn(d.public)
        stuck.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01")   # never completed
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_http_connections_open",
                                      listener="public") >= 1, 5, what="the stuck connection to be accepted")
        return d

    def test_drain_timeout_bounds_shutdown(self):
        d = self.daemon_with_stuck_upload("2s")
        t0 = time.monotonic()
        d.send_signal(signal.SIGTERM)
        d.wait_notify("STOPPING=1")
        rc = d.wait_exit(10)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(rc, 0, f"killed by signal {-rc}: {d.stderr()}")
        self.assertGreater(elapsed, 1.5, "exited before drain_timeout although a request was in flight")
        self.assertLess(elapsed, 6.0, "drain_timeout (2s) did not bound the shutdown")
        d.assert_no_sanitizer_findings()

    def test_second_sigterm_stops_without_waiting_for_the_drain(self):
        d = self.daemon_with_stuck_upload("60s")
        d.send_signal(signal.SIGTERM)
        d.wait_notify("STOPPING=1")
        self.assertTrue(d.alive(), "the first SIGTERM drains: the stuck request holds the process")
        t0 = time.monotonic()
        d.send_signal(signal.SIGTERM)
        rc = d.wait_exit(10)
        self.assertEqual(rc, 0, d.stderr())
        self.assertLess(time.monotonic() - t0, 5.0, "a second SIGTERM must not wait for drain_timeout (60s)")
        d.assert_no_sanitizer_findings()


def wait_bytes_read(test, d, public, admin):
    """Bounded wait until the daemon has read at least PUBLIC bytes on the public listener and ADMIN bytes on
    the admin listener (virex_http_received_bytes_total), i.e. the requests are in flight inside the server.
    Probing /metrics adds its own request bytes on the admin listener: they are accounted for, and a partial
    request longer than one probe cannot be mistaken for it."""
    probe = test.conn(d.admin)
    req = build_request("GET", "/metrics")
    sent_before = [0]

    def done():
        before = sent_before[0]
        probe.send(req)
        sent_before[0] += len(req)
        m = parse_metrics(probe.read_response("GET").body.decode())
        return (metric_sum(m, "virex_http_received_bytes_total", listener="public") >= public and
                metric_sum(m, "virex_http_received_bytes_total", listener="admin") >= before + admin)

    try:
        wait_until(done, 5, what="the daemon to read the partial requests")
    finally:
        probe.close()


def _refused(port):
    try:
        assert_refused(port, timeout=1)
        return True
    except AssertionError:
        return False


class AccessLogReopenTest(DaemonTestCase):
    def test_sigusr1_reopens_access_log(self):
        d = self.daemon(basic_config(hello("v1"), workers=1, access_log=("$DIR/access.log", "json")))
        log = os.path.join(d.dir, "access.log")

        def has(path, target):
            try:
                with open(path) as f:
                    return any(json.loads(ln).get("target") == target for ln in f if ln.strip())
            except FileNotFoundError:
                return False

        self.assertEqual(http_get(d.public, "/hello?m=1").status, 200)
        wait_until(lambda: has(log, "/hello?m=1"), 5, what="the first line in access.log")
        os.rename(log, log + ".1")
        self.assertEqual(http_get(d.public, "/hello?m=between").status, 200)  # still goes to the renamed file
        wait_until(lambda: has(log + ".1", "/hello?m=between"), 5, what="a line written to the renamed file")
        d.send_signal(signal.SIGUSR1)
        probes = []

        def reopened():
            probes.append(f"/hello?probe={len(probes)}")
            http_get(d.public, probes[-1])
            return os.path.exists(log)

        wait_until(reopened, 5, interval=0.05, what="access.log to be recreated after SIGUSR1")
        self.assertEqual(http_get(d.public, "/hello?m=2").status, 200)
        d.stop()
        with open(log + ".1") as f:
            old = [json.loads(ln)["target"] for ln in f if ln.strip()]
        with open(log) as f:
            new = [json.loads(ln)["target"] for ln in f if ln.strip()]
        self.assertEqual(old[:2], ["/hello?m=1", "/hello?m=between"], old)
        self.assertIn("/hello?m=2", new)
        self.assertNotIn("/hello?m=2", old)
        self.assertEqual(sorted(old + new), sorted(["/hello?m=1", "/hello?m=between", "/hello?m=2"] + probes),
                         "every request logged exactly once across the two files")


if __name__ == "__main__":
    unittest.main()
