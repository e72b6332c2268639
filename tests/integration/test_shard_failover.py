"""Shard router against failing and lagging PostgreSQL servers (pgcluster.py; these tests stop and restart
servers, so they have a cluster of their own): reads go to the replica once its lag is measured, move to the
primary with no failed request when the replica stops and back when it returns; a replica whose replay is paused
past max_lag is skipped; a stopped primary fails its shard's writes with 503 while the other shards keep working,
fan-out fails (or answers `partial` naming the shard); the pool never opens more than max_per_endpoint
connections (pg_stat_activity) and answers 503 when acquire_timeout passes."""
import os
import signal
import threading
import unittest

from harness import DaemonTestCase, LoadLoop, basic_config, fetch_metrics, metric_sum, wait_until
from pgcluster import PgCluster
from test_shard import get_json

CLUSTER = None


def setUpModule():
    global CLUSTER
    CLUSTER = PgCluster(shards=3, replica_of=0, per_shard=1000, customers=6)
    CLUSTER.start()


def tearDownModule():
    if CLUSTER:
        CLUSTER.stop()


ROUTES = """  - name: where
    match: {path: "/v1/customers/{customer_id}/where", method: GET}
    query:
      sql: "SELECT inet_server_port() AS port, pg_is_in_recovery() AS replica FROM customers WHERE id = $1"
      params: ["customer_id:int64"]
      shard_by: customer_id
  - name: new_order
    match: {path: "/v1/customers/{customer_id}/orders", method: POST}
    query:
      sql: "INSERT INTO orders (customer_id, total_cents) VALUES ($1, $2) RETURNING id"
      params: ["customer_id:int64", "body.total_cents:int64"]
      shard_by: customer_id
  - name: partial
    match: {path: /v1/orders/partial, method: GET}
    query:
      sql: "SELECT id, customer_id FROM orders ORDER BY id LIMIT 3"
      fan_out: {merge: sorted, order_by: id, limit: 100, partial: true}
  - name: strict
    match: {path: /v1/orders/strict, method: GET}
    query:
      sql: "SELECT id, customer_id FROM orders ORDER BY id LIMIT 3"
      fan_out: {merge: sorted, order_by: id, limit: 100}
  - name: slow
    match: {path: "/v1/customers/{customer_id}/slow", method: GET}
    query:
      sql: "SELECT pg_sleep(0.2)::text AS slept, $1::bigint AS c"
      params: ["customer_id:int64"]
      shard_by: customer_id
"""


def config(pool="{max_per_endpoint: 4, acquire_timeout: 2s, statement_timeout: 5s, connect_timeout: 1s}",
           workers=2):
    return (basic_config(ROUTES.replace("$", "$$"), workers=workers) + CLUSTER.databases_yaml(pool=pool)
            + "  lag_interval: 100ms\n  max_lag: 1s\n")


def where(d, cid):
    r, doc = get_json(d.public, f"/v1/customers/{cid}/where")
    assert r.status == 200, r.describe()
    return doc["rows"][0]


class ReplicaTest(DaemonTestCase):
    def setUp(self):
        self.primary = CLUSTER.primaries[0]
        self.replica = CLUSTER.replica
        if not self.replica.running:
            self.replica.restart()

    def test_reads_use_the_replica_and_survive_its_stop(self):
        d = self.daemon(config())
        # Once its lag is measured (by every worker: each probes its own), shard 0's reads go to the replica; shard 1
        # has none and reads its primary.
        wait_until(lambda: all(where(d, 2)["port"] == self.replica.port for _ in range(8)), what="reads on the replica")
        self.assertTrue(where(d, 2)["replica"])
        self.assertEqual(where(d, 1002)["port"], CLUSTER.primaries[1].port)
        load = LoadLoop(d.public, "/v1/customers/3/where", conns=4).start(min_requests=20)
        try:
            self.replica.stop("fast")
            n = len(load.records)
            wait_until(lambda: len(load.records) > n + 100, timeout=20, what="reads while the replica is down")
        finally:
            records = load.stop()
        failed = [r for r in records if r["status"] != 200]
        self.assertEqual(failed, [], "no read failed while the replica stopped")
        self.assertEqual(where(d, 3)["port"], self.primary.port)
        # Back once it returns (reconnect after backoff, lag measured again).
        self.replica.restart()
        wait_until(lambda: all(where(d, 3)["port"] == self.replica.port for _ in range(8)), timeout=20,
                   what="reads back on the replica")

    def test_a_lagging_replica_is_skipped(self):
        d = self.daemon(config())
        wait_until(lambda: where(d, 2)["port"] == self.replica.port, what="reads on the replica")
        # A replayed commit gives the replica a last-replay time to measure its lag from.
        self.primary.query("INSERT INTO orders (customer_id, total_cents) VALUES (2, 1)")
        CLUSTER.wait_replica_caught_up()
        self.replica.query("SELECT pg_wal_replay_pause()")
        try:
            # Writes the replica receives but does not replay: its lag grows past max_lag (1s).
            def lagging():
                self.primary.query("INSERT INTO orders (customer_id, total_cents) VALUES (2, 1)")
                return where(d, 2)["port"] == self.primary.port
            wait_until(lagging, timeout=15, interval=0.2, what="reads moved off the lagging replica")
            # Worker 0's measurement (the gauge) may trail the worker that moved the read by one probe.
            wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_shard_replica_lag_milliseconds", shard="0") > 1000,
                       timeout=10, what="the lag gauge past max_lag")
        finally:
            self.replica.query("SELECT pg_wal_replay_resume()")
        wait_until(lambda: where(d, 2)["port"] == self.replica.port, timeout=15, what="replica used again")

    def test_an_idle_primary_does_not_make_its_replica_look_old(self):
        # max_lag 3s; the primary then stays idle until the replica's last replayed commit is 6s old.
        cfg = (basic_config(ROUTES.replace("$", "$$"), workers=1) + CLUSTER.databases_yaml(
            pool="{max_per_endpoint: 4, acquire_timeout: 2s, statement_timeout: 5s}") +
            "  lag_interval: 100ms\n  max_lag: 3s\n")
        d = self.daemon(cfg)
        wait_until(lambda: where(d, 2)["port"] == self.replica.port, what="reads on the replica")
        self.primary.query("INSERT INTO orders (customer_id, total_cents) VALUES (2, 1)")
        CLUSTER.wait_replica_caught_up()
        wait_until(lambda: self.replica.query(
            "SELECT now() - pg_last_xact_replay_timestamp() > interval '6 seconds'")[0][0], timeout=40,
            interval=0.2, what="the replica's last replayed commit 6s old")
        self.replica.query("SELECT pg_wal_replay_pause()")
        try:
            self.primary.query("INSERT INTO orders (customer_id, total_cents) VALUES (2, 1)")
            # Behind now, by one fresh commit: not by the 6s since the previous one.
            lag = lambda: metric_sum(fetch_metrics(d.admin), "virex_shard_replica_lag_milliseconds", shard="0")
            seen = wait_until(lambda: (lambda v: v if v > 0 else None)(lag()), timeout=10, what="the replica seen behind")
            self.assertLess(seen, 3000, "lag taken from how long it has been behind, not from the idle spell")
            # Still behind (replay paused): its lag grows with the clock and it is skipped past max_lag.
            wait_until(lambda: where(d, 2)["port"] == self.primary.port, timeout=15, what="reads moved off it")
            wait_until(lambda: lag() > 3000, timeout=5, what="the lag gauge past max_lag")
        finally:
            self.replica.query("SELECT pg_wal_replay_resume()")
        wait_until(lambda: where(d, 2)["port"] == self.replica.port, timeout=15, what="replica used again")


class PrimaryDownTest(DaemonTestCase):
    def test_a_stopped_primary_fails_only_its_shards_writes(self):
        d = self.daemon(config())
        r, _ = get_json(d.public, "/v1/customers/2001/orders", method="POST", body={"total_cents": 1})
        self.assertEqual(r.status, 201, r.describe())
        primary = CLUSTER.primaries[2]
        primary.stop("fast")
        try:
            for _ in range(3):
                r, doc = get_json(d.public, "/v1/customers/2002/orders", method="POST", body={"total_cents": 1})
                self.assertEqual(r.status, 503, r.describe())
            for cid in (1, 1001):
                r, doc = get_json(d.public, f"/v1/customers/{cid}/orders", method="POST", body={"total_cents": 2})
                self.assertEqual(r.status, 201, r.describe())
            r, doc = get_json(d.public, "/v1/orders/strict")
            self.assertEqual(r.status, 503, r.describe())
            self.assertEqual(r.header("Virex-Missing-Shards"), "2")
            r, doc = get_json(d.public, "/v1/orders/partial")
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.header("Virex-Missing-Shards"), "2")
            self.assertEqual({CLUSTER.shard_of(x["customer_id"]) for x in doc["rows"]}, {0, 1})
        finally:
            primary.restart()
        wait_until(lambda: get_json(d.public, "/v1/customers/2002/orders", method="POST",
                                    body={"total_cents": 3})[0].status == 201, timeout=20, interval=0.2,
                   what="writes to shard 2 after its primary returned")


def edge_backends(server):
    return [r[0] for r in server.query(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'virex-edge' ORDER BY pid")]


class PoolUpkeepTest(DaemonTestCase):
    """The pool's minimum is opened before any request, idle connections are probed and replaced when the server
    drops them, idle ones above the minimum close after idle_timeout, old ones are replaced after max_lifetime,
    and a replica that hangs (accepts, never answers) costs a read statement_timeout, then the primary answers."""

    def test_the_minimum_is_opened_at_start_probed_and_restored(self):
        d = self.daemon(config(pool="{max_per_endpoint: 4, min_per_endpoint: 2, health_interval: 200ms, "
                                    "acquire_timeout: 2s, statement_timeout: 5s, connect_timeout: 1s}", workers=1))
        server = CLUSTER.primaries[1]  # no replica: nothing but the pool's upkeep talks to it until a request
        first = wait_until(lambda: (lambda p: p if len(p) == 2 else None)(edge_backends(server)),
                           what="min_per_endpoint connections opened with no request")
        # Probed while idle: their last statement is the health check.
        wait_until(lambda: server.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                        "'virex-edge' AND query = 'SELECT 1'")[0][0] == 2, what="idle connections probed")
        server.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'virex-edge'")
        again = wait_until(lambda: (lambda p: p if len(p) == 2 and not set(p) & set(first) else None)(
            edge_backends(server)), what="the minimum reopened in the background")
        self.assertEqual(len(again), 2)
        r, doc = get_json(d.public, "/v1/customers/1001/where")
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(doc["rows"][0]["port"], server.port)

    def test_an_idle_connection_whose_server_stopped_answering_is_closed_and_replaced(self):
        d = self.daemon(config(pool="{max_per_endpoint: 2, min_per_endpoint: 1, health_interval: 200ms, "
                                    "acquire_timeout: 2s, statement_timeout: 1s}", workers=1))
        server = CLUSTER.primaries[1]
        first = wait_until(lambda: (lambda p: p if len(p) == 1 else None)(edge_backends(server)),
                           what="the minimum opened")
        os.kill(first[0], signal.SIGSTOP)  # accepts bytes, answers nothing: only the probe can find it out
        try:
            wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_shard_health_check_failures_total",
                                          shard="1") >= 1, timeout=15, what="the silent connection failing its probe")
            wait_until(lambda: [p for p in edge_backends(server) if p != first[0]], timeout=15,
                       what="a fresh connection in its place")
        finally:
            os.kill(first[0], signal.SIGCONT)
        r, doc = get_json(d.public, "/v1/customers/1001/where")
        self.assertEqual(r.status, 200, r.describe())

    def test_idle_connections_above_the_minimum_close_and_old_ones_are_replaced(self):
        d = self.daemon(config(pool="{max_per_endpoint: 4, min_per_endpoint: 1, idle_timeout: 300ms, "
                                    "max_lifetime: 2s, health_interval: 100ms, acquire_timeout: 2s, "
                                    "statement_timeout: 5s}", workers=1))
        server = CLUSTER.primaries[2]
        load = LoadLoop(d.public, "/v1/customers/2001/slow", conns=8).start(min_requests=8)
        try:
            wait_until(lambda: len(edge_backends(server)) >= 3, what="the pool grown under load")
        finally:
            records = load.stop()
        self.assertEqual([r for r in records if r["status"] != 200], [])
        left = wait_until(lambda: (lambda p: p if len(p) == 1 else None)(edge_backends(server)),
                          what="idle connections above the minimum closed")
        wait_until(lambda: (lambda p: p if len(p) == 1 and p != left else None)(edge_backends(server)),
                   what="the last connection replaced after max_lifetime")
        m = fetch_metrics(d.admin)
        self.assertGreaterEqual(metric_sum(m, "virex_shard_connections_retired_total", shard="2"), 3)

    def test_a_hung_replica_falls_back_to_the_primary(self):
        replica = CLUSTER.replica
        if not replica.running:
            replica.restart()
        d = self.daemon(config(pool="{max_per_endpoint: 2, acquire_timeout: 2s, statement_timeout: 1s, "
                                    "connect_timeout: 1s}", workers=1))
        wait_until(lambda: where(d, 4)["port"] == replica.port, what="reads on the replica")
        stopped = edge_backends(replica)
        self.assertTrue(stopped)
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            row = where(d, 4)  # the replica's connection never answers: after statement_timeout, the primary
            self.assertEqual(row["port"], CLUSTER.primaries[0].port)
            self.assertFalse(row["replica"])
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
        wait_until(lambda: where(d, 4)["port"] == replica.port, timeout=20, what="the replica used again")


class PoolTest(DaemonTestCase):
    def test_pool_stays_within_max_and_times_out_with_503(self):
        # 2 workers share max_per_endpoint 2 → one connection each; one statement per connection at a time.
        d = self.daemon(config(pool="{max_per_endpoint: 2, max_pipeline: 1, acquire_timeout: 100ms, "
                                    "statement_timeout: 5s}"))
        statuses, lock = [], threading.Lock()
        peak = [0]
        stop = threading.Event()

        def client():
            while not stop.is_set():
                r, _ = get_json(d.public, "/v1/customers/1003/slow")
                with lock:
                    statuses.append(r.status)

        def watch():
            while not stop.is_set():
                n = CLUSTER.primaries[1].query(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'virex-edge'")[0][0]
                peak[0] = max(peak[0], n)
                stop.wait(0.02)
        threads = [threading.Thread(target=client) for _ in range(8)] + [threading.Thread(target=watch)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: statuses.count(503) >= 3 and statuses.count(200) >= 3, timeout=30,
                       what="some answered, some timed out waiting for the pool")
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        self.assertLessEqual(peak[0], 2, "never more than max_per_endpoint connections")
        self.assertGreaterEqual(peak[0], 1)
        self.assertEqual(set(statuses), {200, 503})
        m = fetch_metrics(d.admin)
        self.assertGreaterEqual(metric_sum(m, "virex_shard_pool_acquire_timeouts_total", shard="1"), 3)


if __name__ == "__main__":
    unittest.main()
