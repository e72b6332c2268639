"""Trace context reaches PostgreSQL (issue 8): while a sampled request's statement runs on a real shard, another
session sees it in `pg_stat_activity.query` with the sqlcommenter comment `/*traceparent='00-<trace>-<span>-01'*/`,
and <span> is the id of the shard-query client span the OTLP receiver gets (child of the request's server span)."""
import threading
import unittest

from harness import DaemonTestCase, basic_config, http_request, wait_until
from pgcluster import PgCluster

CLUSTER = None


def setUpModule():
    global CLUSTER
    CLUSTER = PgCluster(shards=2, replica_of=None, per_shard=1000, customers=4)
    CLUSTER.start()


def tearDownModule():
    if CLUSTER:
        CLUSTER.stop()


ROUTES = """  - name: slow
    match: {path: "/v1/slow/{customer_id}", method: GET}
    query:
      sql: "SELECT pg_sleep(1.5) IS NULL AS slept, $$1::bigint AS c"
      params: ["customer_id:int64"]
      shard_by: customer_id
"""


class PgStatActivityTest(DaemonTestCase):
    def test_traceparent_in_pg_stat_activity_while_the_query_runs(self):
        from test_trace_export import CALLER_SPAN, CALLER_TRACE, Receiver
        rx = Receiver()
        self.addCleanup(rx.close)
        d = self.daemon((basic_config(ROUTES) + CLUSTER.databases_yaml()).replace(
            "observability: {log_level: info}",
            f'observability: {{log_level: info, tracing: {{otlp_endpoint: "127.0.0.1:{rx.port}", sample_ratio: 0}}}}'))
        result = {}

        def request():
            result["r"] = http_request(d.public, "GET", "/v1/slow/1002", timeout=30,
                                       headers=[("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")])
        t = threading.Thread(target=request, daemon=True)
        t.start()
        shard1 = CLUSTER.primaries[1]   # customers 1001–2000

        def running():
            rows = shard1.query("SELECT query FROM pg_stat_activity WHERE query LIKE '%pg_sleep(1.5)%' "
                                "AND pid <> pg_backend_pid() AND state = 'active'")
            return rows[0][0] if rows else None
        seen = wait_until(running, timeout=20, what="the statement in pg_stat_activity while it runs")
        t.join(30)
        self.assertEqual(result["r"].status, 200, result["r"].describe())
        self.assertIn(f"/*traceparent='00-{CALLER_TRACE}-", seen)
        span_in_pg = seen.split("/*traceparent='")[1].split("'*/")[0].split("-")[2]
        wait_until(lambda: len(rx.of_trace(CALLER_TRACE)) >= 2, what="the server span and the shard span")
        spans = rx.of_trace(CALLER_TRACE)
        server = next(s for s in spans if s["kind"] == 2)
        client = next(s for s in spans if s["kind"] == 3)
        self.assertEqual(client["span_id"], span_in_pg, "PostgreSQL saw the shard span's id as the parent")
        self.assertEqual(client["parent_span_id"], server["span_id"])
        self.assertEqual(server["parent_span_id"], CALLER_SPAN)


if __name__ == "__main__":
    unittest.main()
