"""Shard router against real PostgreSQL 15 (pgcluster.py: three primaries, a streaming replica of shard 0):
single-shard routing lands on the shard that holds the customer (checked with per-shard data and the server's
port), parameters are typed and bound (400 naming the parameter, never spliced), a customer outside the map is 404,
writes go to the primary and answer 201 with RETURNING rows, types survive into JSON."""
from concurrent.futures import ThreadPoolExecutor
import json
from datetime import datetime
import os
import re
import subprocess
import threading
import unittest

from harness import (Conn, DaemonTestCase, basic_config, fetch_metrics, http_request, metric_sum, require_tool,
                     run_curl, run_edge, wait_until)
from pgcluster import PgCluster

CLUSTER = None


def setUpModule():
    global CLUSTER
    CLUSTER = PgCluster(shards=3, replica_of=0, per_shard=1000, customers=12)
    CLUSTER.start()


def tearDownModule():
    if CLUSTER:
        CLUSTER.stop()


ROUTES = """  - name: orders
    match: {path: "/v1/customers/{customer_id}/orders", method: GET}
    query:
      sql: "SELECT id, customer_id, total_cents, amount, status, paid, created_at FROM orders WHERE customer_id = $1 ORDER BY id"
      params: ["customer_id:int64"]
      shard_by: customer_id
  - name: where
    match: {path: "/v1/customers/{customer_id}/where", method: GET}
    query:
      sql: "SELECT inet_server_port() AS port, pg_is_in_recovery() AS replica, $1::bigint AS customer"
      params: ["customer_id:int64"]
      shard_by: customer_id
      read_only: false
  - name: new_order
    match: {path: "/v1/customers/{customer_id}/orders", method: POST}
    query:
      sql: "INSERT INTO orders (customer_id, total_cents, amount, paid, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id, customer_id, total_cents, amount, paid, created_at"
      params: ["customer_id:int64", "body.total_cents:int64", "body.amount:numeric", "body.paid:bool", "body.at:timestamp"]
      shard_by: customer_id
  - name: echo
    match: {path: "/v1/echo/{customer_id}", method: GET}
    query:
      sql: "SELECT $2::text AS name, $3::bool AS flag, $4::timestamptz AS at, $5::numeric AS amount, $1::bigint AS customer"
      params: ["customer_id:int64", "name:text", "flag:bool", "at:timestamp", "amount:numeric"]
      shard_by: customer_id
"""


def config(cluster, routes=ROUTES, pool="{max_per_endpoint: 4, acquire_timeout: 2s, statement_timeout: 5s}", **kw):
    # $1… in SQL are not harness placeholders ($PUBLIC, $ADMIN): escape them for string.Template.
    return basic_config(routes.replace("$", "$$"), **kw) + cluster.databases_yaml(pool=pool) + "  lag_interval: 200ms\n"


def get_json(port, target, method="GET", body=None, headers=None):
    hdrs = list(headers or [])
    data = None
    if body is not None:
        data = json.dumps(body).encode() if not isinstance(body, (bytes, str)) else body
        hdrs.append(("Content-Type", "application/json"))
    r = http_request(port, method, target, headers=hdrs, body=data)
    try:
        doc = json.loads(r.body) if r.body else None
    except ValueError:
        doc = None
    return r, doc


class ShardRoutingTest(DaemonTestCase):
    def test_single_shard_reads_land_on_the_owning_shard(self):
        d = self.daemon(config(CLUSTER))
        for cid in (1, 7, 1001, 1005, 2001, 2012):
            r, doc = get_json(d.public, f"/v1/customers/{cid}/orders")
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.header("Content-Type"), "application/json")
            shard = CLUSTER.shard_of(cid)
            want = CLUSTER.primaries[shard].query(
                "SELECT id, total_cents FROM orders WHERE customer_id = %s ORDER BY id", (cid,))
            self.assertEqual([(row["id"], row["total_cents"]) for row in doc["rows"]], want)
            self.assertTrue(all(row["customer_id"] == cid for row in doc["rows"]))
        # The server that answered: the shard's primary (a non-read route) for every range.
        for cid in (3, 1500, 2999):
            r, doc = get_json(d.public, f"/v1/customers/{cid}/where")
            self.assertEqual(r.status, 201, r.describe())   # not read_only: a write's status
            row = doc["rows"][0]
            self.assertEqual(row["port"], CLUSTER.primaries[CLUSTER.shard_of(cid)].port)
            self.assertEqual((row["replica"], row["customer"]), (False, cid))

    def test_types_are_kept_in_json(self):
        d = self.daemon(config(CLUSTER))
        r, doc = get_json(d.public, "/v1/customers/1001/orders")
        self.assertEqual(r.status, 200, r.describe())
        row = doc["rows"][0]
        ref = CLUSTER.primaries[1].query(
            "SELECT id, total_cents, amount::text, status, paid, to_char(created_at AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM orders WHERE customer_id = 1001 ORDER BY id LIMIT 1")[0]
        self.assertIsInstance(row["id"], int)
        self.assertIsInstance(row["total_cents"], int)
        self.assertIsInstance(row["amount"], float)      # numeric → a JSON number
        self.assertIn(b'"amount":' + ref[2].encode(), r.body)  # written exactly as PostgreSQL has it
        self.assertIsInstance(row["paid"], bool)
        self.assertEqual((row["id"], row["total_cents"], row["status"], row["paid"], row["created_at"]),
                         (ref[0], ref[1], ref[3], ref[4], ref[5]))
        r, doc = get_json(d.public, "/v1/echo/5?name=O%27Brien%3B%20DROP%20TABLE%20orders&flag=TRUE"
                                    "&at=2025-03-04T05:06:07.5%2B02:00&amount=-12.50")
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(doc["rows"], [{"name": "O'Brien; DROP TABLE orders", "flag": True,
                                        "at": "2025-03-04T03:06:07.5Z", "amount": -12.50, "customer": 5}])
        self.assertIn(b'"amount":-12.50', r.body)
        self.assertGreater(CLUSTER.primaries[0].query("SELECT count(*) FROM orders")[0][0], 0, "nothing was spliced")

    def test_bad_parameters_are_400_naming_them(self):
        d = self.daemon(config(CLUSTER))
        cases = [
            ("/v1/customers/abc/orders", "customer_id"),
            ("/v1/customers/99999999999999999999/orders", "customer_id"),
            ("/v1/echo/5?name=x&flag=maybe&at=2025-01-01&amount=1", "flag"),
            ("/v1/echo/5?name=x&flag=true&at=yesterday&amount=1", "at"),
            ("/v1/echo/5?name=x&flag=true&at=2025-01-01&amount=1e", "amount"),
            ("/v1/echo/5?flag=true&at=2025-01-01&amount=1", "name"),
            ("/v1/echo/5?name=%ff&flag=true&at=2025-01-01&amount=1", "name"),
        ]
        for target, name in cases:
            r, doc = get_json(d.public, target)
            self.assertEqual(r.status, 400, f"{target}: {r.describe()}")
            self.assertEqual(doc["error"], "bad_parameter", target)
            self.assertEqual(doc["parameter"], name, target)
        r, doc = get_json(d.public, "/v1/customers/5/orders", method="POST", body={"total_cents": "x"})
        self.assertEqual((r.status, doc["parameter"]), (400, "body.total_cents"), r.describe())
        r, doc = get_json(d.public, "/v1/customers/5/orders", method="POST", body={"amount": 1})
        self.assertEqual((r.status, doc["parameter"]), (400, "body.total_cents"), r.describe())
        r, doc = get_json(d.public, "/v1/customers/5/orders", method="POST", body=b"{not json")
        self.assertEqual((r.status, doc["error"]), (400, "bad_body"), r.describe())
        # The connection and the server stay fine.
        r, _ = get_json(d.public, "/v1/customers/5/orders")
        self.assertEqual(r.status, 200)

    def test_customer_outside_the_map_is_404(self):
        d = self.daemon(config(CLUSTER))
        for cid in (0, 3001, 10**15):
            r, doc = get_json(d.public, f"/v1/customers/{cid}/orders")
            self.assertEqual(r.status, 404, r.describe())
            self.assertEqual(doc["error"], "not_found")

    def test_write_goes_to_the_owning_primary_and_answers_201(self):
        d = self.daemon(config(CLUSTER))
        body = {"total_cents": 4242, "amount": "42.42", "paid": True, "at": "2025-06-01T12:00:00Z"}
        r, doc = get_json(d.public, "/v1/customers/2003/orders", method="POST", body=body)
        self.assertEqual(r.status, 201, r.describe())
        row = doc["rows"][0]
        self.assertEqual((row["customer_id"], row["total_cents"], row["paid"], row["created_at"]),
                         (2003, 4242, True, "2025-06-01T12:00:00Z"))
        self.assertIn(b'"amount":42.42', r.body)
        got = CLUSTER.primaries[2].query("SELECT customer_id, total_cents FROM orders WHERE id = %s", (row["id"],))
        self.assertEqual(got, [(2003, 4242)])
        for other in (0, 1):
            self.assertEqual(CLUSTER.primaries[other].query("SELECT count(*) FROM orders WHERE id = %s",
                                                            (row["id"],))[0][0], 0)
        # A constraint violation is the client's conflict, not a server error; the connection stays usable.
        r, doc = get_json(d.public, "/v1/customers/2999/orders", method="POST", body=body)
        self.assertEqual(r.status, 409, r.describe())
        r, doc = get_json(d.public, "/v1/customers/2003/orders")
        self.assertEqual(r.status, 200)
        self.assertIn(4242, [x["total_cents"] for x in doc["rows"]])


class Http2Test(DaemonTestCase):
    """Query routes over HTTP/2 (h2c, real curl and h2load): the same rows as over HTTP/1.1, writes commit and
    answer 201, bad parameters 400 — never the empty answer of a `respond` route."""

    def test_reads_writes_and_errors_over_h2(self):
        cfg = config(CLUSTER, workers=1).replace('address: "127.0.0.1:$PUBLIC"}',
                                                 'address: "127.0.0.1:$PUBLIC", protocols: [http1, h2c]}')
        d = self.daemon(cfg)
        base = f"http://127.0.0.1:{d.public}"

        def h2(path, *args):
            cp = run_curl("--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}", *args, base + path)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            body, _, tail = cp.stdout.decode().rpartition("\n")
            version, status = tail.split()
            self.assertEqual(version, "2")
            return int(status), json.loads(body)

        status, doc = h2("/v1/customers/1002/orders")
        self.assertEqual(status, 200)
        r, h1doc = get_json(d.public, "/v1/customers/1002/orders")
        self.assertEqual(doc, h1doc)
        self.assertTrue(doc["rows"])
        status, doc = h2("/v1/customers/2004/orders", "-X", "POST", "-H", "Content-Type: application/json", "--data",
                         json.dumps({"total_cents": 777, "amount": "7.77", "paid": True, "at": "2025-07-01T00:00:00Z"}))
        self.assertEqual(status, 201, doc)
        new_id = doc["rows"][0]["id"]
        self.assertEqual(CLUSTER.primaries[2].query("SELECT total_cents FROM orders WHERE id = %s", (new_id,)), [(777,)])
        status, doc = h2("/v1/customers/x/orders")
        self.assertEqual((status, doc["parameter"]), (400, "customer_id"))
        status, doc = h2("/v1/customers/99999/orders")
        self.assertEqual(status, 404)
        # Many concurrent streams on one connection (their reads share segments): every one answered 200.
        r = subprocess.run([require_tool("h2load"), "-n", "400", "-c", "2", "-m", "50", base + "/v1/customers/3/orders"],
                           capture_output=True, timeout=120)
        out = r.stdout.decode()
        self.assertIn("400 succeeded, 0 failed, 0 errored", out)
        self.assertIn("status codes: 400 2xx", out)

    def test_cached_reads_and_invalidating_writes_over_h2(self):
        cfg = (config(CLUSTER, CACHED_ROUTES) + "cache: {edge: {max_bytes: 16MiB}}\n").replace(
            'address: "127.0.0.1:$PUBLIC"}', 'address: "127.0.0.1:$PUBLIC", protocols: [http1, h2c]}')
        d = self.daemon(cfg)
        base = f"http://127.0.0.1:{d.public}"
        cid = 1009

        def h2(path, *args):
            cp = run_curl("--http2-prior-knowledge", "-i", "-H", "Host: localhost", *args, base + path)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            head, _, body = cp.stdout.decode().partition("\r\n\r\n")
            self.assertTrue(head.startswith("HTTP/2 "), head)
            fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:])
            return int(head.split()[1]), fields, json.loads(body)

        status, fields, doc1 = h2(f"/v1/customers/{cid}/orders")
        self.assertEqual(status, 200)
        self.assertIn("stored", fields["cache-status"])
        status, fields, doc2 = h2(f"/v1/customers/{cid}/orders")
        self.assertRegex(fields["cache-status"], r"^virex-edge; hit")
        self.assertEqual(doc1, doc2)
        # HTTP/1.1 shares the entry (same host and path, and Accept variant: curl sends Accept: */*).
        r, _ = get_json(d.public, f"/v1/customers/{cid}/orders", headers=[("Accept", "*/*")])
        self.assertRegex(r.header("Cache-Status", ""), r"^virex-edge; hit")
        status, fields, created = h2(f"/v1/customers/{cid}/orders", "-X", "POST", "-H",
                                     "Content-Type: application/json", "--data", json.dumps({"total_cents": 4321}))
        self.assertEqual(status, 201, created)
        status, fields, doc3 = h2(f"/v1/customers/{cid}/orders")
        self.assertNotRegex(fields["cache-status"], r"^virex-edge; hit")
        self.assertIn(created["rows"][0]["id"], [x["id"] for x in doc3["rows"]])


SEGMENT_ROUTES = """  - name: div
    match: {path: "/v1/div/{customer_id}/{d}", method: GET}
    query:
      sql: "SELECT 1000 / $2::int AS q, $1::bigint AS customer"
      params: ["customer_id:int64", "d:int64"]
      shard_by: customer_id
  - name: broken
    match: {path: "/v1/broken/{customer_id}", method: GET}
    query:
      sql: "SELECT no_such_column FROM orders WHERE customer_id = $1"
      params: ["customer_id:int64"]
      shard_by: customer_id
""" + ROUTES


class SharedSegmentTest(DaemonTestCase):
    """The reads queued on a connection in one event-loop turn share one Sync (PostgreSQL's per-Sync cost is most
    of a round trip). A statement that fails there aborts the rest of the segment: the others must still answer
    right (run again alone), and writes never share a segment (each commits on its own)."""

    def test_reads_sharing_a_segment_survive_each_others_errors_and_writes_commit_alone(self):
        # One worker, one connection to shard 1's primary: every concurrent statement shares that connection.
        d = self.daemon(config(CLUSTER, routes=SEGMENT_ROUTES, workers=1,
                               pool="{max_per_endpoint: 1, max_pipeline: 64, acquire_timeout: 5s, statement_timeout: 5s}"))
        cid = 1012  # shard 1 (no replica: reads and writes on the same primary connection)
        before = CLUSTER.primaries[1].query("SELECT count(*) FROM orders WHERE customer_id = %s", (cid,))[0][0]
        posts, lock = [0], threading.Lock()

        def one(i):
            kind = i % 6
            if kind == 5:
                r, doc = get_json(d.public, f"/v1/customers/{cid}/orders", method="POST",
                                  body={"total_cents": i, "amount": "1.50", "paid": False, "at": "2025-06-01T12:00:00Z"})
                self.assertEqual(r.status, 201, r.describe())
                self.assertEqual(doc["rows"][0]["total_cents"], i)
                with lock:
                    posts[0] += 1
            elif kind == 4:
                r, doc = get_json(d.public, f"/v1/broken/{cid}")
                self.assertEqual(r.status, 500, r.describe())
                self.assertIn("no_such_column", doc["detail"])
            else:
                r, doc = get_json(d.public, f"/v1/div/{cid}/{kind}")
                if kind == 0:
                    self.assertEqual(r.status, 400, r.describe())
                    self.assertIn("division by zero", doc["detail"])
                else:
                    self.assertEqual(r.status, 200, r.describe())
                    self.assertEqual(doc["rows"], [{"q": 1000 // kind, "customer": cid}])

        def retries():
            return metric_sum(fetch_metrics(d.admin), "virex_shard_segment_retries_total", shard="1")

        # Bursts of 48 concurrent clients until some segment held a failing statement next to others (bounded).
        with ThreadPoolExecutor(48) as pool:
            for burst in range(40):
                list(pool.map(one, range(burst * 48, burst * 48 + 48)))
                if retries() > 0:
                    break
        m = wait_until(lambda: (lambda m: m if metric_sum(m, "virex_shard_segment_retries_total", shard="1") > 0
                                else None)(fetch_metrics(d.admin)), what="a retried segment in the metrics")
        statements = metric_sum(m, "virex_shard_queries_total", shard="1")
        syncs = metric_sum(m, "virex_shard_syncs_total", shard="1")
        self.assertLess(syncs, statements, "concurrent reads shared Syncs")
        after = CLUSTER.primaries[1].query("SELECT count(*) FROM orders WHERE customer_id = %s", (cid,))[0][0]
        self.assertEqual(after - before, posts[0], "every 201 committed, nothing else")


FANOUT_ROUTES = """  - name: all
    match: {path: /v1/orders/all, method: GET}
    query:
      sql: "SELECT id, customer_id, total_cents, created_at FROM orders"
      fan_out: {merge: concat}
  - name: top
    match: {path: /v1/orders/top, method: GET}
    query:
      sql: "SELECT id, customer_id, total_cents FROM orders ORDER BY total_cents DESC, id LIMIT $1"
      params: ["fan_out.fetch:int64"]
      fan_out: {merge: sorted, order_by: "total_cents desc, id", limit: 5, offset: offset}
  - name: recent
    match: {path: /v1/orders/recent, method: GET}
    query:
      sql: "SELECT id, customer_id, created_at FROM orders WHERE created_at >= $1 ORDER BY created_at DESC LIMIT 7"
      params: ["since:timestamp"]
      fan_out: {merge: sorted, order_by: "created_at desc", limit: 7}
  - name: stats
    match: {path: /v1/orders/stats, method: GET}
    query:
      sql: "SELECT count(*) AS n, sum(total_cents) AS revenue, min(total_cents) AS lo, max(total_cents) AS hi, sum(amount) AS amount FROM orders WHERE paid = $1"
      params: ["paid:bool"]
      fan_out: {merge: aggregate, aggregates: {n: count, revenue: sum, lo: min, hi: max, amount: sum, mean: {avg: [revenue, n]}}}
  - name: by_status
    match: {path: /v1/orders/by-status, method: GET}
    query:
      sql: "SELECT o.status, c.region, count(*) AS n, sum(o.total_cents) AS revenue, max(o.created_at) AS last FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY o.status, c.region"
      fan_out: {merge: aggregate, aggregates: {n: count, revenue: sum, last: max, mean: {avg: [revenue, n]}}, group_by: [status, region]}
  - name: capped
    match: {path: /v1/orders/capped, method: GET}
    query:
      sql: "SELECT id FROM orders"
      max_rows: 20
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
""" + ROUTES


class FanOutTest(DaemonTestCase):
    def setUp(self):
        CLUSTER.sync_reference()

    def test_concat_is_every_shards_rows(self):
        d = self.daemon(config(CLUSTER, FANOUT_ROUTES))
        r, doc = get_json(d.public, "/v1/orders/all")
        self.assertEqual(r.status, 200, r.describe())
        got = sorted((x["id"], x["customer_id"], x["total_cents"]) for x in doc["rows"])
        self.assertEqual(got, sorted(CLUSTER.reference("SELECT id, customer_id, total_cents FROM orders")))
        self.assertEqual({CLUSTER.shard_of(x["customer_id"]) for x in doc["rows"]}, {0, 1, 2})

    def test_sorted_with_limit_and_offset_matches_one_database(self):
        d = self.daemon(config(CLUSTER, FANOUT_ROUTES))
        for offset in (None, 0, 3, 11, 500):
            target = "/v1/orders/top" + (f"?offset={offset}" if offset is not None else "")
            r, doc = get_json(d.public, target)
            self.assertEqual(r.status, 200, r.describe())
            want = CLUSTER.reference("SELECT id, customer_id, total_cents FROM orders ORDER BY total_cents DESC, id "
                                     "LIMIT 5 OFFSET %s", (offset or 0,))
            self.assertEqual([(x["id"], x["customer_id"], x["total_cents"]) for x in doc["rows"]], want, target)
        r, doc = get_json(d.public, "/v1/orders/recent?since=2025-02-01T00:00:00Z")
        self.assertEqual(r.status, 200, r.describe())
        want = CLUSTER.reference("SELECT id FROM orders WHERE created_at >= '2025-02-01T00:00:00Z' "
                                 "ORDER BY created_at DESC LIMIT 7")
        self.assertEqual([x["id"] for x in doc["rows"]], [w[0] for w in want])
        r, doc = get_json(d.public, "/v1/orders/top?offset=-1")
        self.assertEqual((r.status, doc["parameter"]), (400, "offset"))
        r, doc = get_json(d.public, "/v1/orders/top?offset=x")
        self.assertEqual((r.status, doc["parameter"]), (400, "offset"))

    def test_aggregates_match_one_database(self):
        d = self.daemon(config(CLUSTER, FANOUT_ROUTES))
        for paid in ("true", "false"):
            r, doc = get_json(d.public, f"/v1/orders/stats?paid={paid}")
            self.assertEqual(r.status, 200, r.describe())
            want = CLUSTER.reference("SELECT count(*), sum(total_cents), min(total_cents), max(total_cents), "
                                     "sum(amount)::text, avg(total_cents)::float8 FROM orders WHERE paid = %s", (paid == "true",))[0]
            row = doc["rows"][0]
            self.assertEqual((row["n"], row["revenue"], row["lo"], row["hi"]), tuple(want[:4]))
            self.assertIn(f'"amount":{want[4]}'.encode(), r.body)   # numeric sums exactly
            self.assertAlmostEqual(row["mean"], want[5], places=6)
        r, doc = get_json(d.public, "/v1/orders/by-status")
        self.assertEqual(r.status, 200, r.describe())
        want = CLUSTER.reference(
            "SELECT o.status, c.region, count(*), sum(o.total_cents), avg(o.total_cents)::float8, max(o.created_at) "
            "FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY 1, 2 ORDER BY 1, 2")
        # Timestamps compared as instants: rows written by other tests carry fractional seconds.
        got = [(x["status"], x["region"], x["n"], x["revenue"], x["mean"], datetime.fromisoformat(x["last"]))
               for x in doc["rows"]]
        self.assertEqual(len(got), len(want))
        for g, w in zip(got, want):
            self.assertEqual(g[:4] + g[5:], tuple(w[:4]) + (w[5],))
            self.assertAlmostEqual(g[4], w[4], places=6)
        self.assertEqual([x["status"] for x in doc["rows"]], sorted(x["status"] for x in doc["rows"]))

    def test_row_cap(self):
        d = self.daemon(config(CLUSTER, FANOUT_ROUTES))
        r, doc = get_json(d.public, "/v1/orders/capped")
        self.assertEqual(r.status, 500, r.describe())
        self.assertIn("max_rows", doc["detail"])

    def test_the_shard_map_reloads_on_sighup(self):
        d = self.daemon(config(CLUSTER) + "  version: 1\n")
        r, doc = get_json(d.public, "/v1/customers/2002/orders")
        self.assertEqual(r.status, 200, r.describe())
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_shard_map_version") == 1, what="version 1")
        # Shard 2 leaves the map (version 2): its customers are outside it now; the others are unaffected.
        two = config(CLUSTER).split("    - {id: 2,")[0] + "  version: 2\n"
        d.write_config(two)
        d.reload()
        r, doc = get_json(d.public, "/v1/customers/2002/orders")
        self.assertEqual(r.status, 404, r.describe())
        r, doc = get_json(d.public, "/v1/customers/1002/orders")
        self.assertEqual(r.status, 200, r.describe())
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_shard_map_version") == 2, what="version 2")


CACHED_ROUTES = """  - name: cached_orders
    match: {path: "/v1/customers/{customer_id}/orders", method: GET}
    query:
      sql: "SELECT id, total_cents FROM orders WHERE customer_id = $1 ORDER BY id"
      params: ["customer_id:int64"]
      shard_by: customer_id
    cache: {edge_ttl: 60s, tags: ["customer:{customer_id}"]}
  - name: cached_count
    match: {path: "/v1/customers/{customer_id}/count", method: GET}
    query:
      sql: "SELECT count(*) AS n FROM orders WHERE customer_id = $1"
      params: ["customer_id:int64"]
      shard_by: customer_id
    cache: {edge_ttl: 60s}
  - name: add_order
    match: {path: "/v1/customers/{customer_id}/orders", method: POST}
    query:
      sql: "INSERT INTO orders (customer_id, total_cents) VALUES ($1, $2) RETURNING id"
      params: ["customer_id:int64", "body.total_cents:int64"]
      shard_by: customer_id
    invalidate: ["tag:customer:{customer_id}", "path:/v1/customers/{customer_id}/count"]
  - name: add_order_quietly
    match: {path: "/v1/customers/{customer_id}/quiet", method: POST}
    query:
      sql: "INSERT INTO orders (customer_id, total_cents) VALUES ($1, $2) RETURNING id"
      params: ["customer_id:int64", "body.total_cents:int64"]
      shard_by: customer_id
"""


class AccessLogTest(DaemonTestCase):
    def test_access_log_names_the_shards_and_roles(self):
        import os
        import tempfile
        from harness import json_lines
        path = os.path.join(tempfile.mkdtemp(prefix="virex-shard-log-"), "access.json")
        d = self.daemon(config(CLUSTER, FANOUT_ROUTES, access_log=(path, "json")))
        self.assertEqual(get_json(d.public, "/v1/customers/2001/orders")[0].status, 200)
        self.assertEqual(get_json(d.public, "/v1/orders/all")[0].status, 200)
        d.stop()
        lines = {l["target"]: l for l in json_lines(path)}
        self.assertRegex(lines["/v1/customers/2001/orders"]["shards"], r"^2:(primary|replica)$")
        self.assertRegex(lines["/v1/orders/all"]["shards"], r"^0:(primary|replica),1:primary,2:primary$")


class CacheTest(DaemonTestCase):
    def test_a_write_purges_what_it_names_and_the_next_get_shows_it(self):
        d = self.daemon(config(CLUSTER, CACHED_ROUTES) + "cache: {edge: {max_bytes: 16MiB}}\n")
        cid = 1007
        first, doc1 = get_json(d.public, f"/v1/customers/{cid}/orders")
        self.assertEqual(first.status, 200, first.describe())
        self.assertIn("stored", first.header("Cache-Status", ""))
        hit, doc2 = get_json(d.public, f"/v1/customers/{cid}/orders")
        self.assertRegex(hit.header("Cache-Status", ""), r"^virex-edge; hit", hit.describe())
        self.assertEqual(doc1, doc2)
        n1 = get_json(d.public, f"/v1/customers/{cid}/count")[1]["rows"][0]["n"]
        # A write that names nothing: the cached answers stay (they really come from the cache).
        r, _ = get_json(d.public, f"/v1/customers/{cid}/quiet", method="POST", body={"total_cents": 11})
        self.assertEqual(r.status, 201, r.describe())
        self.assertEqual(get_json(d.public, f"/v1/customers/{cid}/orders")[1], doc1)
        self.assertEqual(get_json(d.public, f"/v1/customers/{cid}/count")[1]["rows"][0]["n"], n1)
        # A write with invalidate: the tag and the path are purged after commit.
        r, created = get_json(d.public, f"/v1/customers/{cid}/orders", method="POST", body={"total_cents": 777})
        self.assertEqual(r.status, 201, r.describe())
        after, doc3 = get_json(d.public, f"/v1/customers/{cid}/orders")
        self.assertEqual(after.status, 200)
        self.assertNotRegex(after.header("Cache-Status", ""), r"^virex-edge; hit")
        self.assertIn(created["rows"][0]["id"], [x["id"] for x in doc3["rows"]])
        self.assertEqual(len(doc3["rows"]), len(doc1["rows"]) + 2)
        self.assertEqual(get_json(d.public, f"/v1/customers/{cid}/count")[1]["rows"][0]["n"], n1 + 2)
        # Another customer's cached entry is untouched.
        get_json(d.public, "/v1/customers/1008/orders")
        r, _ = get_json(d.public, f"/v1/customers/{cid}/orders", method="POST", body={"total_cents": 1})
        self.assertRegex(get_json(d.public, "/v1/customers/1008/orders")[0].header("Cache-Status", ""),
                         r"^virex-edge; hit")


TIERED_ROUTES = """  - name: tiered_orders
    match: {path: "/v1/customers/{customer_id}/orders", method: GET}
    query:
      sql: "SELECT id, total_cents FROM orders WHERE customer_id = $1 ORDER BY id"
      params: ["customer_id:int64"]
      shard_by: customer_id
    cache: {edge_ttl: 60s, regional_ttl: 10m, tags: ["customer:{customer_id}"]}
  - name: tiered_count
    match: {path: "/v1/customers/{customer_id}/count", method: GET}
    query:
      sql: "SELECT count(*) AS n FROM orders WHERE customer_id = $1"
      params: ["customer_id:int64"]
      shard_by: customer_id
    cache: {edge_ttl: 60s, regional_ttl: 10m}
  - name: gated_count
    match: {path: "/v1/customers/{customer_id}/gated", method: GET}
    query:
      # Waits while the test holds advisory lock 4242 on the shard: concurrent misses overlap for certain.
      sql: "SELECT count(*) AS n FROM orders, pg_advisory_xact_lock_shared(4242) WHERE customer_id = $1"
      params: ["customer_id:int64"]
      shard_by: customer_id
    cache: {edge_ttl: 60s, regional_ttl: 10m}
  - name: add_order
    match: {path: "/v1/customers/{customer_id}/orders", method: POST}
    query:
      sql: "INSERT INTO orders (customer_id, total_cents) VALUES ($1, $2) RETURNING id"
      params: ["customer_id:int64", "body.total_cents:int64"]
      shard_by: customer_id
    invalidate: ["tag:customer:{customer_id}", "path:/v1/customers/{customer_id}/count"]
  - name: my_orders
    match: {path: "/v1/customers/{customer_id}/mine", method: GET}
    query:
      sql: "SELECT count(*) AS n FROM orders WHERE customer_id = $1"
      params: ["customer_id:int64"]
      shard_by: customer_id
    cache: {edge_ttl: 60s, regional_ttl: 10m, scope: private, identity: {header: X-User}}
"""


class QueryCacheTiersTest(DaemonTestCase):
    """Query routes in the regional tier (real redis-server) and coalesced: node B answers from the region what
    node A's statement stored; a write on node A purges node B's edge and Redis; concurrent misses for one key run
    one statement. Customers 1010/1011 (shard 1) and 2010/2011 (shard 2) have no replica: a read sees a write."""

    def setUp(self):
        from redis_harness import RedisServer
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.stop)
        self.cfg = (config(CLUSTER, TIERED_ROUTES) + "cache:\n  edge: {max_bytes: 16MiB}\n"
                    + f'  regional:\n    redis: {{address: "{self.redis.address}", timeout: 2s, prefix: "vq:"}}\n')

    def node(self):
        d = self.daemon(self.cfg)
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_regional_connections_total",
                                      event="connect") >= 3, what="command and subscriber connections")
        return d

    def entry_keys(self):
        return sorted(k.decode() for k in self.redis("KEYS", "vq:e:*"))

    @staticmethod
    def statements(d, shard):
        return metric_sum(fetch_metrics(d.admin), "virex_shard_queries_total", shard=shard)

    def test_node_b_answers_from_the_region_without_running_sql(self):
        a, b = self.node(), self.node()
        target = "/v1/customers/2010/orders"
        first, doc = get_json(a.public, target)
        self.assertEqual(first.status, 200, first.describe())
        self.assertRegex(first.header("Cache-Status", ""),
                         r"^virex-regional; fwd=uri-miss, virex-edge; fwd=uri-miss; stored; ttl=60$", first.describe())
        self.assertEqual(self.statements(a, 2), 1)
        wait_until(lambda: len(self.entry_keys()) == 1, what="the answer written to redis")
        key = self.entry_keys()[0]
        self.assertTrue(540_000 <= self.redis("PTTL", key) <= 660_000, "regional_ttl 10m ± 10%")
        self.assertEqual(self.redis("SMEMBERS", "vq:t:customer:2010"), [key.encode()], "the tag index names it")
        self.assertEqual(self.redis("SMEMBERS", "vq:k:" + target), [key.encode()], "the path index names it")
        # Node B (its edge empty): answered from the region; no statement ran there.
        r, doc_b = get_json(b.public, target)
        self.assertEqual(r.status, 200, r.describe())
        self.assertRegex(r.header("Cache-Status", ""), r"^virex-regional; hit; ttl=\d+, virex-edge; fwd=uri-miss; stored",
                         r.describe())
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertEqual(r.header("Vary"), "Accept")
        self.assertEqual(doc_b, doc)
        self.assertEqual(self.statements(b, 2), 0, "node B ran no SQL")
        # The region filled node B's edge: edge hits from now on, whichever worker answers.
        for _ in range(3):
            again = get_json(b.public, target)[0]
            self.assertRegex(again.header("Cache-Status", ""), r"^virex-edge; hit", again.describe())
        # The region keeps one variant per key (JSON here): a protobuf request is a miss that runs the statement.
        pb = http_request(b.public, "GET", target, headers=[("Accept", "application/x-protobuf")])
        self.assertEqual((pb.status, pb.header("Content-Type")), (200, "application/x-protobuf"), pb.describe())
        self.assertRegex(pb.header("Cache-Status", ""), r"^virex-regional; fwd=uri-miss, virex-edge; fwd=vary-miss")
        self.assertEqual(self.statements(b, 2), 1)
        m = fetch_metrics(b.admin)
        self.assertEqual(metric_sum(m, "virex_regional_lookups_total", result="hit"), 1)
        self.assertEqual(metric_sum(m, "virex_regional_lookups_total", result="miss"), 1)
        self.assertEqual(self.statements(a, 2), 1, "node A ran its statement once")

    def test_a_write_on_node_a_purges_node_b_and_the_region(self):
        a, b = self.node(), self.node()
        cid = 1010
        orders, count = f"/v1/customers/{cid}/orders", f"/v1/customers/{cid}/count"
        doc1 = get_json(a.public, orders)[1]
        n1 = get_json(a.public, count)[1]["rows"][0]["n"]
        wait_until(lambda: len(self.entry_keys()) == 2, what="both answers in redis")
        for t in (orders, count):
            r = get_json(b.public, t)[0]
            self.assertRegex(r.header("Cache-Status", ""), r"^virex-regional; hit", r.describe())
            r = get_json(b.public, t)[0]
            self.assertRegex(r.header("Cache-Status", ""), r"^virex-edge; hit", r.describe())
        applied = lambda: metric_sum(fetch_metrics(b.admin), "virex_regional_invalidations_total", event="applied")
        self.assertEqual(applied(), 0)
        r, created = get_json(a.public, orders, method="POST", body={"total_cents": 4321})
        self.assertEqual(r.status, 201, r.describe())
        new_id = created["rows"][0]["id"]
        # The tag and the path: deleted from redis (with their indexes), then applied by node B's subscriber.
        wait_until(lambda: applied() == 2, what="node B applied the tag and path invalidations")
        self.assertEqual(self.entry_keys(), [], "the regional copies are gone")
        self.assertEqual(self.redis("EXISTS", f"vq:t:customer:{cid}", f"vq:k:{count}"), 0)
        wait_until(lambda: metric_sum(fetch_metrics(a.admin), "virex_regional_invalidations_total",
                                      event="published") == 2, what="node A's two publications counted")
        before = self.statements(b, 1)
        after, doc2 = get_json(b.public, orders)
        self.assertEqual(after.status, 200, after.describe())
        self.assertRegex(after.header("Cache-Status", ""), r"^virex-regional; fwd=uri-miss, virex-edge; fwd=uri-miss; stored",
                         after.describe())
        self.assertIn(new_id, [x["id"] for x in doc2["rows"]])
        self.assertEqual(len(doc2["rows"]), len(doc1["rows"]) + 1)
        r, doc = get_json(b.public, count)
        self.assertRegex(r.header("Cache-Status", ""), r"^virex-regional; fwd=uri-miss", r.describe())
        self.assertEqual(doc["rows"][0]["n"], n1 + 1)
        self.assertEqual(self.statements(b, 1), before + 2, "node B ran both statements anew")
        # Node A's own edge was purged at once (its echo is dropped, not applied twice).
        r, doc = get_json(a.public, count)
        self.assertNotRegex(r.header("Cache-Status", ""), r"^virex-edge; hit", r.describe())
        self.assertEqual(doc["rows"][0]["n"], n1 + 1)

    def test_the_write_answers_once_redis_ran_the_purge(self):
        # Read-your-writes on the writing node: a GET after the 201, on any worker, must not refill the edge from
        # a regional copy the write made stale — so the 201 waits for Redis to run the purge script.
        d = self.node()
        target = "/v1/customers/1011/orders"
        self.assertEqual(get_json(d.public, target)[0].status, 200)
        wait_until(lambda: len(self.entry_keys()) == 1, what="the answer in redis")
        key = self.entry_keys()[0]
        # Every client's commands wait for 1.5 s (less than the node's 2 s command timeout); no unpause needed.
        self.redis("CLIENT", "PAUSE", "1500", "ALL")
        done = []
        t = threading.Thread(target=lambda: done.append(
            get_json(d.public, target, method="POST", body={"total_cents": 5})[0]))
        t.start()
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_regional_invalidations_total",
                                      event="published") >= 1, what="the purge sent to the paused redis")
        self.assertEqual(done, [], "no answer before redis ran the purge")
        t.join(timeout=30)
        self.assertEqual(done[0].status, 201, done[0].describe())
        self.assertEqual(self.redis("EXISTS", key), 0, "purged before the 201")
        r = get_json(d.public, target)[0]
        self.assertRegex(r.header("Cache-Status", ""), r"^virex-regional; fwd=uri-miss, virex-edge; fwd=uri-miss",
                         r.describe())

    def test_private_route_is_per_user_in_the_region_only(self):
        a, b = self.node(), self.node()
        target = "/v1/customers/2009/mine"
        alice = [("X-User", "alice")]
        r = get_json(a.public, target, headers=alice)[0]
        self.assertEqual(r.status, 200, r.describe())
        self.assertRegex(r.header("Cache-Status", ""), r"^virex-regional; fwd=uri-miss, virex-edge; fwd=bypass$")
        wait_until(lambda: len(self.redis("KEYS", "vq:p:*")) == 1, what="alice's entry in redis")
        self.assertNotIn(b"alice", self.redis("KEYS", "vq:p:*")[0], "the identity is hashed, never stored")
        self.assertEqual(self.entry_keys(), [], "no shared regional entry")
        # Alice on node B: from the region, no statement. Bob: his own statement.
        for _ in range(2):
            r, doc = get_json(b.public, target, headers=alice)
            self.assertRegex(r.header("Cache-Status", ""), r"^virex-regional; hit; ttl=\d+, virex-edge; fwd=bypass",
                             r.describe())
        self.assertEqual(self.statements(b, 2), 0)
        r = get_json(b.public, target, headers=[("X-User", "bob")])[0]
        self.assertRegex(r.header("Cache-Status", ""), r"^virex-regional; fwd=uri-miss", r.describe())
        self.assertEqual(self.statements(b, 2), 1)
        wait_until(lambda: len(self.redis("KEYS", "vq:p:*")) == 2, what="bob's entry")
        # Nothing private at the edge: a public answer stored after alice's is node A's only edge entry (the gauge
        # is copied once a second: once it shows the public entry, it shows every entry stored before it).
        self.assertEqual(get_json(a.public, "/v1/customers/2009/count")[0].status, 200)
        objects = lambda: metric_sum(fetch_metrics(a.admin), "virex_cache_objects")
        self.assertEqual(wait_until(objects, what="node A's edge entry counted"), 1)

    def _gated(self, d, cid, n, leader_conn=None):
        """n concurrent GETs of customer `cid`'s gated count while the test holds advisory lock 4242 on its shard:
        the first (on `leader_conn` when given, which stays open) leads the flight, its statement waiting on the
        lock; then the other n-1, until they all wait on the leader's flight. Returns (lock connection, threads,
        results: [(response, doc)], the count of statements waiting on the lock)."""
        shard = CLUSTER.shard_of(cid)
        lock = CLUSTER.primaries[shard].connect()
        self.addCleanup(lock.close)
        with lock.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(4242)")
        target = f"/v1/customers/{cid}/gated"
        results = []

        def get(conn=None):
            r = conn.request("GET", target) if conn else http_request(d.public, "GET", target)
            results.append((r, json.loads(r.body) if r.status == 200 else None))
        waiting = lambda: CLUSTER.primaries[shard].query(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")[0][0]
        threads = [threading.Thread(target=get, args=(leader_conn,))]
        threads[0].start()
        wait_until(lambda: waiting() == 1, what="the leader's statement waiting on the lock")
        threads += [threading.Thread(target=get) for _ in range(n - 1)]
        for t in threads[1:]:
            t.start()
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_cache_requests_total", result="collapsed") == n - 1,
                   what="the other requests waiting on the leader's flight")
        return lock, threads, results, waiting

    def test_concurrent_misses_run_the_statement_once(self):
        d = self.node()
        n = 8
        lock, threads, results, _ = self._gated(d, 2011, n)
        self.assertEqual(self.statements(d, 2), 0, "the leader's statement has not finished")
        with lock.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(4242)")
        for t in threads:
            t.join(timeout=30)
        self.assertEqual(len(results), n)
        self.assertEqual(len({r.body for r, _ in results}), 1, [r.body for r, _ in results])
        self.assertTrue(all(r.status == 200 for r, _ in results), [r.describe() for r, _ in results])
        expected = CLUSTER.primaries[2].query("SELECT count(*) FROM orders WHERE customer_id = 2011")[0][0]
        self.assertEqual(json.loads(results[0][0].body)["rows"][0]["n"], expected)
        # (In answer order, which the threads record racily: the leader's need not come first.)
        statuses = sorted(r.header("Cache-Status", "") for r, _ in results)
        self.assertRegex(statuses[-1], r"^virex-regional; fwd=uri-miss, virex-edge; fwd=uri-miss; stored; ttl=60$")
        self.assertTrue(all(re.match(r"^virex-edge; hit; collapsed; ttl=\d+$", s) for s in statuses[:-1]), statuses)
        self.assertEqual(self.statements(d, 2), 1, "one statement for the whole flight")
        self.assertEqual(metric_sum(fetch_metrics(d.admin), "virex_regional_lookups_total"), 1,
                         "the leader alone asked the region")

    def test_a_failed_leader_ends_its_flight_and_the_waiters_run_their_own(self):
        # The leader's statement is cancelled (504, as a statement_timeout is): nothing is stored, its flight ends
        # with its answer although its connection stays open, and the waiters run the statement themselves.
        self.cfg += 'admin: {token: "query-cache-token-0123"}\n'
        d = self.node()
        n = 4
        leader = Conn(d.public)
        self.addCleanup(leader.close)
        lock, threads, results, waiting = self._gated(d, 2012, n, leader_conn=leader)
        CLUSTER.primaries[2].query("SELECT pg_cancel_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        threads[0].join(timeout=30)
        self.assertEqual(len(results), 1, "the waiters' own statements wait on the lock")
        self.assertEqual(results[0][0].status, 504, results[0][0].describe())
        wait_until(lambda: waiting() >= 1, what="a waiter's own statement on the lock")
        with lock.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(4242)")
        for t in threads:
            t.join(timeout=30)
        self.assertEqual(len(results), n)
        rest = [r for r, _ in results[1:]]
        self.assertTrue(all(r.status == 200 for r in rest), [r.describe() for r in rest])
        self.assertEqual(len({r.body for r in rest}), 1)
        self.assertEqual(metric_sum(fetch_metrics(d.admin), "virex_shard_queries_total", shard=2, outcome="ok"),
                         n - 1, "each waiter ran its own statement")
        # No flight is left behind for the key (the leader's connection is still open): after a purge, the next
        # miss leads (its statement waits on the lock) instead of queueing behind a flight that never ends.
        purge = http_request(d.admin, "POST", "/cache/purge", body=b'{"path": "/v1/customers/2012/gated"}',
                             headers=[("Authorization", "Bearer query-cache-token-0123"),
                                      ("Content-Type", "application/json")])
        self.assertEqual(purge.status, 200, purge.describe())
        collapsed = metric_sum(fetch_metrics(d.admin), "virex_cache_requests_total", result="collapsed")
        with lock.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(4242)")
        again = []
        t = threading.Thread(target=lambda: again.append(http_request(d.public, "GET", "/v1/customers/2012/gated")))
        t.start()
        wait_until(lambda: waiting() == 1, what="the new miss's statement waiting on the lock")
        self.assertEqual(metric_sum(fetch_metrics(d.admin), "virex_cache_requests_total", result="collapsed"),
                         collapsed, "the new miss leads: it waits for no flight")
        with lock.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(4242)")
        t.join(timeout=30)
        self.assertEqual(again[0].status, 200, again[0].describe())
        self.assertEqual(leader.request("GET", "/v1/customers/2012/gated").status, 200, "the leader's connection lives")


TRACED_ROUTES = """  - name: seen
    match: {path: /v1/seen, method: GET}
    query:
      sql: "SELECT current_query() AS q, inet_server_port() AS port"
  - name: seen_one
    match: {path: "/v1/seen/{customer_id}", method: GET}
    query:
      sql: "SELECT current_query() AS q, $1::bigint AS c"
      params: ["customer_id:int64"]
      shard_by: customer_id
"""


class TracingTest(DaemonTestCase):
    def test_sqlcommenter_traceparent_and_a_span_per_shard(self):
        from test_trace_export import CALLER_SPAN, CALLER_TRACE, Receiver
        rx = Receiver()
        self.addCleanup(rx.close)
        cfg = config(CLUSTER, TRACED_ROUTES).replace(
            "observability: {log_level: info}",
            f'observability: {{log_level: info, tracing: {{otlp_endpoint: "127.0.0.1:{rx.port}", sample_ratio: 0}}}}')
        d = self.daemon(cfg)
        r, doc = get_json(d.public, "/v1/seen", headers=[("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")])
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(len(doc["rows"]), 3)
        wait_until(lambda: len(rx.of_trace(CALLER_TRACE)) >= 4, what="server span + three shard spans")
        spans = rx.of_trace(CALLER_TRACE)
        server = [s for s in spans if s["kind"] == 2][0]
        clients = [s for s in spans if s["kind"] == 3]
        self.assertEqual(sorted(c["name"] for c in clients), ["query seen shard 0", "query seen shard 1",
                                                             "query seen shard 2"])
        self.assertTrue(all(c["parent_span_id"] == server["span_id"] for c in clients))
        # Each shard saw the traceparent naming its own span (sqlcommenter), bound parameters untouched.
        comments = sorted(row["q"].split("/*traceparent='")[1].split("'*/")[0] for row in doc["rows"])
        self.assertEqual(comments, sorted(f"00-{CALLER_TRACE}-{c['span_id']}-01" for c in clients))
        one_trace = "5" * 32
        r, doc = get_json(d.public, "/v1/seen/1004", headers=[("traceparent", f"00-{one_trace}-{CALLER_SPAN}-01")])
        self.assertIn(f"/*traceparent='00-{one_trace}-", doc["rows"][0]["q"])
        self.assertEqual(doc["rows"][0]["c"], 1004)
        # Not sampled: no comment (the statement stays prepared).
        r, doc = get_json(d.public, "/v1/seen/1004", headers=[("traceparent", f"00-{'6' * 32}-{CALLER_SPAN}-00")])
        self.assertNotIn("traceparent", doc["rows"][0]["q"])
        r, doc = get_json(d.public, "/v1/seen/1004")
        self.assertNotIn("traceparent", doc["rows"][0]["q"])


def protoc_decode(data):
    """virex.query.v1.Result bytes → protoc's text format (the real protobuf decoder, from the .proto file)."""
    import subprocess
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    cp = subprocess.run(["protoc", "--decode=virex.query.v1.Result", f"--proto_path={root}/proto",
                         f"{root}/proto/virex/query/v1/result.proto"], input=data, capture_output=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout.decode()


class ProtobufTest(DaemonTestCase):
    def test_accept_protobuf_gets_the_same_rows_in_protobuf(self):
        d = self.daemon(config(CLUSTER, CACHED_ROUTES + ROUTES.replace("name: orders", "name: orders2")
                               .replace('"/v1/customers/{customer_id}/orders", method: GET', '"/v2/{customer_id}/orders", method: GET'))
                        + "cache: {edge: {max_bytes: 16MiB}}\n")
        pb = [("Accept", "application/x-protobuf")]
        r = http_request(d.public, "GET", "/v2/1002/orders", headers=pb)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.header("Content-Type"), "application/x-protobuf")
        text = protoc_decode(r.body)
        want = CLUSTER.primaries[1].query("SELECT id, total_cents, amount::text FROM orders WHERE customer_id = 1002 ORDER BY id")
        self.assertIn('columns: "id"', text)
        self.assertIn('columns: "created_at"', text)
        for oid, cents, amount in want:
            self.assertIn(f"int_value: {oid}\n", text)
            self.assertIn(f"int_value: {cents}\n", text)
            self.assertIn(f'numeric_value: "{amount}"', text)
        self.assertEqual(text.count("rows {"), len(want))
        self.assertIn("timestamp_micros: ", text)
        # A cached route keeps the two encodings apart (Vary: Accept).
        j1, _ = get_json(d.public, "/v1/customers/1009/orders")
        p1 = http_request(d.public, "GET", "/v1/customers/1009/orders", headers=pb)
        j2, doc = get_json(d.public, "/v1/customers/1009/orders")
        p2 = http_request(d.public, "GET", "/v1/customers/1009/orders", headers=pb)
        self.assertEqual((j1.header("Content-Type"), j2.header("Content-Type")), ("application/json",) * 2)
        self.assertEqual((p1.header("Content-Type"), p2.header("Content-Type")), ("application/x-protobuf",) * 2)
        self.assertRegex(j2.header("Cache-Status", ""), r"^virex-edge; hit")
        self.assertRegex(p2.header("Cache-Status", ""), r"^virex-edge; hit")
        self.assertEqual(p1.body, p2.body)
        self.assertEqual(protoc_decode(p2.body).count("rows {"), len(doc["rows"]))


class ToolsTest(unittest.TestCase):
    """`virex-edge shards migrate FILE.sql` and `virex-edge shards check` (libpqxx) on the real shards."""

    def setUp(self):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="virex-tools-")
        self.cfg = os.path.join(self.tmp, "edge.yaml")
        with open(self.cfg, "w") as f:
            f.write('listeners: [{name: p, address: "127.0.0.1:1"}]\n' + CLUSTER.databases_yaml())

    def tearDown(self):
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_migrate_applies_to_every_primary_and_reaches_the_replica(self):
        sql = os.path.join(self.tmp, "m.sql")
        with open(sql, "w") as f:
            f.write("CREATE TABLE IF NOT EXISTS migrated (x int);\nINSERT INTO migrated VALUES (1), (2);\n")
        cp = run_edge("shards", "migrate", sql, "--config", self.cfg, timeout=60)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertIn("3/3 shards migrated", cp.stdout)
        for p in CLUSTER.primaries:
            self.assertEqual(p.query("SELECT count(*) FROM migrated")[0][0], 2)
        CLUSTER.wait_replica_caught_up()
        self.assertEqual(CLUSTER.replica.query("SELECT count(*) FROM migrated")[0][0], 2)
        # A file that fails on a shard: named, non-zero exit, and that shard's transaction rolled back.
        with open(sql, "w") as f:
            f.write("INSERT INTO migrated VALUES (3); SELECT 1/0;\n")
        cp = run_edge("shards", "migrate", sql, "--config", self.cfg, timeout=60)
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertIn("shard 0: failed: ", cp.stderr)
        self.assertIn("division by zero", cp.stderr)
        self.assertEqual(CLUSTER.primaries[0].query("SELECT count(*) FROM migrated")[0][0], 2)

    def test_check_reports_every_endpoint(self):
        cp = run_edge("shards", "check", "--config", self.cfg, timeout=60)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertIn("customers 1..3000", cp.stdout)
        for i in range(3):
            self.assertIn(f"shard {i} primary 127.0.0.1:{CLUSTER.primaries[i].port}: ok, customers outside", cp.stdout)
        self.assertRegex(cp.stdout, rf"shard 0 replica 127.0.0.1:{CLUSTER.replica.port} \(r\): ok, receiver streaming")
        self.assertIn("all endpoints ok", cp.stdout)
        # A "replica" that is a primary, and a customer row in the wrong shard, are problems.
        with open(self.cfg, "w") as f:
            f.write('listeners: [{name: p, address: "127.0.0.1:1"}]\n' + CLUSTER.databases_yaml().replace(
                f'replicas: ["{CLUSTER.replica.dsn}"]', f'replicas: ["{CLUSTER.primaries[1].dsn}"]'))
        CLUSTER.primaries[2].query("INSERT INTO customers (id, name, region) VALUES (5, 'misplaced', 'eu')")
        try:
            cp = run_edge("shards", "check", "--config", self.cfg, timeout=60)
        finally:
            CLUSTER.primaries[2].query("DELETE FROM customers WHERE id = 5")
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertIn("NOT A REPLICA", cp.stdout)
        self.assertIn("customers outside [2001, 3000]: 1", cp.stdout)
        self.assertIn("2 problem(s)", cp.stdout)


if __name__ == "__main__":
    unittest.main()
