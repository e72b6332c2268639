"""The demo stack `./scripts/run` starts (scripts/demo_stack.py) on free ports with the built binary: every tier
answers — a cached page walks origin → regional → edge, single-shard and fan-out SQL routes answer from the real
PostgreSQL shards, a write invalidates its customer's cached read — and SIGTERM stops it all with exit 0."""
import json
import os
import signal
import subprocess
import unittest

from harness import edge_bin, free_port, http_request, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class DemoStackTest(unittest.TestCase):
    def test_every_tier_answers_and_sigterm_stops_everything(self):
        public, admin = free_port(), free_port()
        log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"virex-demo-test-{os.getpid()}.log"), "w+")
        self.addCleanup(log.close)
        proc = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "scripts", "demo_stack.py"), edge_bin(),
                                 "--public", f"127.0.0.1:{public}", "--admin", f"127.0.0.1:{admin}"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def cleanup():
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        self.addCleanup(cleanup)

        def up():
            if proc.poll() is not None:
                log.seek(0)
                raise AssertionError(f"demo stack exited ({proc.returncode}):\n{log.read()[-4000:]}")
            try:
                return http_request(public, "GET", "/", timeout=2).status == 200
            except OSError:
                return False
        wait_until(up, timeout=120, interval=0.2, what="the demo stack to serve")

        first = http_request(public, "GET", "/catalog/shoes")
        self.assertEqual(first.status, 200, first.describe())
        self.assertIn("virex-regional; fwd=uri-miss", first.header("Cache-Status", ""))
        again = http_request(public, "GET", "/catalog/shoes")
        self.assertRegex(again.header("Cache-Status", ""), r"virex-edge; hit", again.describe())

        orders = http_request(public, "GET", "/v1/customers/42/orders")
        self.assertEqual(orders.status, 200, orders.describe())
        rows = json.loads(orders.body)["rows"]
        self.assertTrue(rows and all(r["customer_id"] == 42 for r in rows), rows[:3])
        top = json.loads(http_request(public, "GET", "/v1/orders/top").body)["rows"]
        self.assertEqual(len(top), 10)
        self.assertGreater(len({r["customer_id"] // 10000 for r in top}), 1, "rows from several shards")
        totals = [r["total_cents"] for r in top]
        self.assertEqual(totals, sorted(totals, reverse=True))
        stats = json.loads(http_request(public, "GET", "/v1/orders/stats").body)["rows"]
        self.assertEqual(sorted(r["region"] for r in stats), ["ap", "eu", "us"])

        # A write to customer 42 purges its cached order list: the next read shows the new order.
        self.assertRegex(http_request(public, "GET", "/v1/customers/42/orders").header("Cache-Status", ""), "hit")
        made = http_request(public, "POST", "/v1/customers/42/orders", body=b'{"total_cents": 1999}',
                            headers=[("Content-Type", "application/json")])
        self.assertEqual(made.status, 201, made.describe())
        new_id = json.loads(made.body)["rows"][0]["id"]
        after = json.loads(http_request(public, "GET", "/v1/customers/42/orders").body)["rows"]
        self.assertEqual(after[0]["id"], new_id)

        self.assertEqual(http_request(admin, "GET", "/metrics").status, 200)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(60), 0)


if __name__ == "__main__":
    unittest.main()
