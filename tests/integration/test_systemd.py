"""systemd integration: socket activation (LISTEN_FDS, via systemd-socket-activate) and the watchdog
(WATCHDOG_USEC: WATCHDOG=1 only while every worker answers)."""
import time
import unittest

from harness import DaemonTestCase, basic_config, build_request, require_tool, wait_until
from test_signals import hello


class SocketActivationTest(DaemonTestCase):
    def test_inherited_socket_serves_the_connection_that_started_it(self):
        tool = require_tool("systemd-socket-activate")
        # systemd-socket-activate binds $PUBLIC (without SO_REUSEPORT, so a bind of our own would fail with
        # EADDRINUSE) and execs the daemon on the first connection, which waits in that socket's backlog.
        d = self.daemon(basic_config(hello("v1")), start=False)
        d.argv_prefix = [tool, "-l", f"127.0.0.1:{d.public}", "-E", "NOTIFY_SOCKET", "-E", "ASAN_OPTIONS",
                         "-E", "UBSAN_OPTIONS"]
        d.start(wait_ready=False)
        first = self.conn_when_listening(d.public)
        first.send(build_request("GET", "/hello"))
        d.wait_notify("READY=1")
        r = first.read_response("GET")
        self.assertEqual((r.status, r.body), (200, b"v1\n"), r.describe())
        wait_until(lambda: "socket from systemd" in d.stderr(), 5, what="the log line naming the inherited socket")
        # Every worker accepts on the shared socket: several connections all get answers.
        for _ in range(8):
            c = self.conn(d.public)
            self.assertEqual(c.request("GET", "/hello").status, 200)
        d.stop()

    def conn_when_listening(self, port, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.conn(port)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)  # systemd-socket-activate is binding; bounded poll, not a synchronisation


class WatchdogTest(DaemonTestCase):
    def test_watchdog_pings_while_workers_answer(self):
        d = self.daemon(basic_config(hello("v1")), env={"WATCHDOG_USEC": "200000"})  # 200 ms: ping every 100
        for _ in range(3):
            d.wait_notify("WATCHDOG=1", 5)
        d.stop()

    def test_no_watchdog_without_watchdog_usec(self):
        d = self.daemon(basic_config(hello("v1")))
        self.assertEqual(self.conn(d.public).request("GET", "/hello").status, 200)
        d.stop()
        self.assertFalse(any("WATCHDOG=1" in m.split("\n") for m in d.notify.messages), d.notify.messages)


if __name__ == "__main__":
    unittest.main()
