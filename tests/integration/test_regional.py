"""The regional cache tier against a real redis-server (redis_harness) and a real origin that counts requests:
an edge miss answered from Redis (node B after node A filled it, the origin untouched), the entry's PTTL within
regional_ttl ± 10%, Cache-Status members for both caches, an oversized value skipped, private-scope routes kept
per user and out of the edge cache, Redis killed mid-load (no failed request, breaker open) then restarted (tier
back), and reconnection after CLIENT KILL."""
import threading
import time
import unittest

from harness import DaemonTestCase, basic_config, fetch_metrics, http_request, metric_sum, wait_until
from origin import Origin, Reply
from redis_harness import RedisServer, Resp


def config(origin, redis_address, route_cache="{edge_ttl: 60s, regional_ttl: 10m}", regional_extra="",
           workers=2):
    return (basic_config(f"""  - name: r
    match: {{prefix: /}}
    upstream: web
    cache: {route_cache}
""", workers=workers) + f'upstreams:\n  web: {{endpoints: ["{origin.endpoint}"]}}\n'
        + "cache:\n  edge: {max_bytes: 64MiB, max_object_bytes: 8MiB}\n"
        + f'  regional:\n    redis: {{address: "{redis_address}", timeout: 200ms, prefix: "vx:"{regional_extra}}}\n'
        + "    breaker: {failures: 3, open_for: 200ms}\n")


def cache_status(r):
    return r.header("Cache-Status", "")


class RegionalTierTest(DaemonTestCase):
    def setUp(self):
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.stop)
        self.o = Origin("o")
        self.o.start()
        self.addCleanup(self.o.close)

    def hits(self, path):
        return len(self.o.requests(path=path))

    def entry_keys(self):
        return sorted(k.decode() for k in self.redis("KEYS", "vx:e:*"))

    def test_stats_json_has_the_regional_tier(self):
        self.o.route("/s", Reply(200, b"s", headers=[("Cache-Control", "max-age=60")]))
        a = self.daemon(config(self.o, self.redis.address))
        b = self.daemon(config(self.o, self.redis.address))
        self.assertEqual(http_request(a.public, "GET", "/s").body, b"s")
        wait_until(lambda: len(self.entry_keys()) == 1, what="the regional copy")
        self.assertEqual(http_request(b.public, "GET", "/s").body, b"s")   # b: edge miss, regional hit
        import json
        tiers = {t["tier"]: t for t in json.loads(http_request(b.admin, "GET", "/stats.json").body)["cache"]}
        self.assertEqual((tiers["regional"]["lookups"], tiers["regional"]["hits"]), (1, 1), tiers)
        self.assertNotIn("bytes", tiers["regional"], "the region's size is not this node's to report")
        self.assertEqual(tiers["edge"]["lookups"], 1)

    def test_a_background_refresh_writes_the_region_too(self):
        # stale-while-revalidate at the edge: the refresh's new response replaces the regional copy as well, so
        # another node filling from the region does not get the older one.
        self.o.route("/w", Reply(200, b"v1", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=60")]))
        d = self.daemon(config(self.o, self.redis.address))
        self.assertEqual(http_request(d.public, "GET", "/w").body, b"v1")
        wait_until(lambda: len(self.entry_keys()) == 1, what="the regional copy")
        self.o.route("/w", Reply(200, b"v2", headers=[("Cache-Control", "max-age=60")]))
        wait_until(lambda: "stale-while-revalidate" in cache_status(http_request(d.public, "GET", "/w")), timeout=10,
                   what="a stale-while-revalidate answer")
        wait_until(lambda: http_request(d.public, "GET", "/w").body == b"v2", what="the refreshed edge entry")
        key = self.entry_keys()[0]
        wait_until(lambda: b"v2" in self.redis("GET", key), what="the refreshed regional copy")
        self.assertEqual(self.hits("/w"), 2)

    def test_node_b_answers_from_the_region_after_node_a_filled_it(self):
        self.o.route("/a", Reply(200, b"shared", headers=[("Cache-Control", "max-age=300"), ("ETag", '"e1"'),
                                                          ("Surrogate-Key", "grp")]))
        a = self.daemon(config(self.o, self.redis.address))
        b = self.daemon(config(self.o, self.redis.address))
        first = http_request(a.public, "GET", "/a")
        self.assertEqual((first.status, first.body), (200, b"shared"), first.describe())
        self.assertRegex(cache_status(first), r"^virex-regional; fwd=uri-miss, virex-edge; fwd=uri-miss; fwd-status=200; stored",
                         first.describe())
        wait_until(lambda: len(self.entry_keys()) == 1, what="the entry written to redis")
        key = self.entry_keys()[0]
        pttl = self.redis("PTTL", key)
        self.assertTrue(540_000 <= pttl <= 660_000, f"PTTL {pttl} ms is not 10m ± 10%")
        self.assertEqual(self.redis("SMEMBERS", "vx:t:grp"), [key.encode()], "the tag index names the key")
        self.assertTrue(0 < self.redis("PTTL", "vx:t:grp") <= 20 * 60 * 1000)
        # Node B: an edge miss answered from the region; the origin saw only node A's request.
        r = http_request(b.public, "GET", "/a")
        self.assertEqual((r.status, r.body), (200, b"shared"), r.describe())
        self.assertRegex(cache_status(r), r"^virex-regional; hit; ttl=\d+, virex-edge; fwd=uri-miss; stored",
                         r.describe())
        self.assertEqual(r.header("ETag"), '"e1"')
        self.assertRegex(r.header("Age", ""), r"^\d+$")
        self.assertEqual(self.hits("/a"), 1, "the origin is untouched by node B")
        # Node B's edge was filled: its next requests are edge hits, whichever worker takes them.
        for _ in range(4):
            again = http_request(b.public, "GET", "/a")
            self.assertRegex(cache_status(again), r"^virex-edge; hit", again.describe())
        self.assertEqual(self.hits("/a"), 1)
        cond = http_request(b.public, "GET", "/a", headers=[("If-None-Match", '"e1"')])
        self.assertEqual(cond.status, 304)
        m = fetch_metrics(b.admin)
        self.assertEqual(metric_sum(m, "virex_regional_lookups_total", result="hit"), 1)
        self.assertEqual(metric_sum(m, "virex_regional_lookups_total", result="miss"), 0)
        ma = fetch_metrics(a.admin)
        self.assertEqual(metric_sum(ma, "virex_regional_lookups_total", result="miss"), 1)
        self.assertEqual(metric_sum(ma, "virex_regional_stores_total", result="stored"), 1)
        self.assertGreaterEqual(metric_sum(ma, "virex_regional_commands_total", result="ok"), 3)
        self.assertGreaterEqual(metric_sum(ma, "virex_regional_pipeline_depth_count"), 1)

    def test_concurrent_misses_make_one_regional_lookup(self):
        # Redis is made slow (DEBUG SLEEP on another connection) so the misses overlap: the flight's leader asks
        # Redis, the others wait for it and are answered from the edge entry it filled.
        self.redis.stop()
        self.redis = RedisServer(extra_args=["--enable-debug-command", "yes"]).start()
        self.addCleanup(self.redis.stop)
        self.o.route("/co", Reply(200, b"co", headers=[("Cache-Control", "max-age=300")]))
        a = self.daemon(config(self.o, self.redis.address, workers=1))
        b = self.daemon(config(self.o, self.redis.address, workers=2).replace(
            "timeout: 200ms", "timeout: 3s"))
        self.assertEqual(http_request(a.public, "GET", "/co").status, 200)
        wait_until(lambda: len(self.entry_keys()) == 1, what="the entry in redis")
        sleeper = threading.Thread(target=lambda: self.redis("DEBUG", "SLEEP", "1"))
        sleeper.start()

        def redis_busy():
            c = Resp(self.redis.port, timeout=0.05)
            try:
                c("PING")
                return False
            except OSError:           # socket.timeout: the server is inside DEBUG SLEEP
                return True
            finally:
                c.close()
        wait_until(redis_busy, what="redis asleep")
        results = []
        def get():
            results.append(http_request(b.public, "GET", "/co", timeout=10))
        threads = [threading.Thread(target=get) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads + [sleeper]:
            t.join(timeout=20)
        self.assertEqual(len(results), 8)
        for r in results:
            self.assertEqual((r.status, r.body), (200, b"co"), r.describe())
        m = fetch_metrics(b.admin)
        self.assertEqual(metric_sum(m, "virex_regional_lookups_total"), 1, "one lookup for the whole flight")
        self.assertEqual(metric_sum(m, "virex_regional_lookups_total", result="hit"), 1)
        self.assertGreaterEqual(metric_sum(m, "virex_cache_requests_total", result="collapsed"), 1)
        self.assertEqual(self.hits("/co"), 1, "the origin saw node A's request only")

    def test_slow_redis_costs_one_timeout_then_the_breaker_skips_it(self):
        self.redis.stop()
        self.redis = RedisServer(extra_args=["--enable-debug-command", "yes"]).start()
        self.addCleanup(self.redis.stop)
        self.o.route("/s", Reply(200, b"s", headers=[("Cache-Control", "max-age=60")]))
        d = self.daemon(config(self.o, self.redis.address, workers=1))   # timeout 200ms, breaker: 3 failures
        self.assertEqual(http_request(d.public, "GET", "/s?warm").status, 200)
        sleeper = threading.Thread(target=lambda: self.redis("DEBUG", "SLEEP", "3"))
        sleeper.start()
        self.addCleanup(sleeper.join, 10)

        def redis_busy():
            c = Resp(self.redis.port, timeout=0.05)
            try:
                c("PING")
                return False
            except OSError:
                return True
            finally:
                c.close()
        wait_until(redis_busy, what="redis asleep")
        took = []
        for i in range(6):
            t0 = time.monotonic()
            r = http_request(d.public, "GET", f"/s?n={i}")
            took.append(time.monotonic() - t0)
            self.assertEqual(r.status, 200, r.describe())
            self.assertIn("virex-regional; fwd=", cache_status(r), r.describe())
        # A request waits at most one command timeout (200 ms; less when an older command's deadline resets the
        # connection first), never more; then the breaker skips Redis.
        self.assertLess(max(took), 1.0, took)
        self.assertLess(took[-1], 0.19, f"the breaker is open: no wait ({took})")
        m = fetch_metrics(d.admin)
        self.assertGreaterEqual(metric_sum(m, "virex_regional_commands_total", result="timeout"), 1)
        self.assertGreaterEqual(metric_sum(m, "virex_regional_lookups_total", result="timeout")
                                + metric_sum(m, "virex_regional_lookups_total", result="error"), 1)
        self.assertGreaterEqual(metric_sum(m, "virex_regional_lookups_total", result="skipped"), 1)
        self.assertEqual(metric_sum(m, "virex_regional_breaker_state"), 1)

    def test_oversized_value_is_not_stored_regionally(self):
        self.o.route("/big", Reply(200, b"x" * 8192, headers=[("Cache-Control", "max-age=60")]))
        self.o.route("/small", Reply(200, b"y" * 100, headers=[("Cache-Control", "max-age=60")]))
        d = self.daemon(config(self.o, self.redis.address, regional_extra=", max_value_bytes: 4KiB"))
        self.assertEqual(http_request(d.public, "GET", "/big").status, 200)
        self.assertEqual(http_request(d.public, "GET", "/small").status, 200)
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_regional_stores_total") >= 2, what="stores")
        m = fetch_metrics(d.admin)
        self.assertEqual(metric_sum(m, "virex_regional_stores_total", result="oversized"), 1)
        self.assertEqual(metric_sum(m, "virex_regional_stores_total", result="stored"), 1)
        wait_until(lambda: len(self.entry_keys()) == 1, what="only the small entry in redis")
        self.assertRegex(cache_status(http_request(d.public, "GET", "/big")), r"virex-edge; hit",
                         "the edge cache still has it")

    def test_private_route_is_per_user_and_regional_only(self):
        # `private` responses may be kept per user (RFC 9111 §5.2.2.7), never in the shared edge cache.
        self.o.route("/me", Reply(200, b"mine", headers=[("Cache-Control", "private, max-age=60")]))
        route = "{edge_ttl: 60s, regional_ttl: 10m, scope: private, identity: {header: X-User}}"
        a = self.daemon(config(self.o, self.redis.address, route_cache=route))
        b = self.daemon(config(self.o, self.redis.address, route_cache=route))
        r = http_request(a.public, "GET", "/me", headers=[("X-User", "alice")])
        self.assertEqual(r.status, 200, r.describe())
        self.assertIn("virex-edge; fwd=bypass", cache_status(r))
        wait_until(lambda: len(self.redis("KEYS", "vx:p:*")) == 1, what="alice's entry in redis")
        key = self.redis("KEYS", "vx:p:*")[0]
        self.assertNotIn(b"alice", key, "the identity is hashed, never stored")
        # Alice on node B: from the region. Bob: his own fetch. Anonymous: the origin, nothing stored.
        r = http_request(b.public, "GET", "/me", headers=[("X-User", "alice")])
        self.assertRegex(cache_status(r), r"^virex-regional; hit", r.describe())
        r = http_request(b.public, "GET", "/me", headers=[("X-User", "bob")])
        self.assertRegex(cache_status(r), r"^virex-regional; fwd=uri-miss", r.describe())
        r = http_request(b.public, "GET", "/me")
        self.assertNotIn("virex-regional", cache_status(r))
        self.assertEqual(self.hits("/me"), 3)
        wait_until(lambda: len(self.redis("KEYS", "vx:p:*")) == 2, what="bob's entry")
        # Nothing private entered either node's shared edge cache: alice again is a regional hit on both.
        for d in (a, b):
            for _ in range(3):
                r = http_request(d.public, "GET", "/me", headers=[("X-User", "alice")])
                self.assertRegex(cache_status(r), r"^virex-regional; hit; ttl=\d+, virex-edge; fwd=bypass", r.describe())
        self.assertEqual(self.hits("/me"), 3)

    def test_redis_killed_mid_load_then_restarted(self):
        self.o.route("/k", Reply(200, b"k", headers=[("Cache-Control", "max-age=1")]))
        d = self.daemon(config(self.o, self.redis.address, route_cache="{edge_ttl: 1s, regional_ttl: 5m}"))
        self.assertEqual(http_request(d.public, "GET", "/k").status, 200)
        wait_until(lambda: len(self.entry_keys()) == 1, what="the entry in redis")
        failures, statuses, stop = [], [], threading.Event()

        def load():
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    r = http_request(d.public, "GET", f"/k?n={i % 50}", timeout=5)
                    statuses.append(r.status)
                    if r.status != 200:
                        failures.append(r.describe())
                except Exception as e:  # a connection error is a failed client request too
                    failures.append(repr(e))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: len(statuses) >= 50, what="load running")
            self.redis.kill()
            wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_regional_breaker_state") >= 1,
                       what="a breaker open")
            n = len(statuses)
            wait_until(lambda: len(statuses) >= n + 50, what="requests served while redis is down")
            self.redis.restart()
            wait_until(lambda: len(self.entry_keys()) >= 1, timeout=20, what="the tier back after the restart")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        self.assertEqual(failures, [], "no client request failed while redis was down")
        m = fetch_metrics(d.admin)
        self.assertGreaterEqual(metric_sum(m, "virex_regional_lookups_total", result="skipped")
                                + metric_sum(m, "virex_regional_lookups_total", result="error"), 1)
        self.assertEqual(metric_sum(m, "virex_http_requests_total", status_class="5xx"), 0)

    def test_reconnects_after_client_kill(self):
        self.o.route("/c", Reply(200, b"c", headers=[("Cache-Control", "max-age=60")]))
        a = self.daemon(config(self.o, self.redis.address, workers=1))
        b = self.daemon(config(self.o, self.redis.address, workers=1))
        self.assertEqual(http_request(a.public, "GET", "/c").status, 200)
        wait_until(lambda: len(self.entry_keys()) == 1, what="the entry in redis")
        wait_until(lambda: metric_sum(fetch_metrics(b.admin), "virex_regional_connections_total", event="connect") >= 2,
                   what="node B's command and subscriber connections")
        killed = self.redis("CLIENT", "KILL", "TYPE", "normal")
        self.assertGreaterEqual(killed, 2)
        wait_until(lambda: metric_sum(fetch_metrics(b.admin), "virex_regional_connections_total", event="connect") >= 3,
                   what="node B reconnected")

        def regional_hit():
            r = http_request(b.public, "GET", "/c")
            self.assertEqual(r.status, 200)
            return cache_status(r).startswith("virex-regional; hit") or cache_status(r).startswith("virex-edge; hit")
        wait_until(regional_hit, what="node B answering from the region again")
        self.assertEqual(self.hits("/c"), 1)


if __name__ == "__main__":
    unittest.main()


TOKEN = "regional-purge-token-0123"


class FleetInvalidationTest(DaemonTestCase):
    """Purges on node A reach node B's edge cache (pub/sub, protobuf Invalidation) and Redis (tag and path
    indexes); writes through a caching route invalidate the target everywhere; a node that lost its subscription
    drops its edge cache."""

    def setUp(self):
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.stop)
        self.o = Origin("o")
        self.o.start()
        self.addCleanup(self.o.close)
        for path, tag in (("/p1", "grp"), ("/p2", "grp"), ("/p3", None)):
            headers = [("Cache-Control", "max-age=300")] + ([("Surrogate-Key", tag)] if tag else [])
            self.o.route(path, Reply(200, path.encode(), headers=headers))
        cfg = config(self.o, self.redis.address) + f'admin: {{token: "{TOKEN}"}}\n'
        self.a = self.daemon(cfg)
        self.b = self.daemon(cfg)
        for d in (self.a, self.b):
            wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_regional_connections_total",
                                          event="connect") >= 3, what="command and subscriber connections")
        for p in ("/p1", "/p2", "/p3"):
            self.assertEqual(http_request(self.a.public, "GET", p).status, 200)
        wait_until(lambda: len(self.redis("KEYS", "vx:e:*")) == 3, what="three entries in redis")
        for p in ("/p1", "/p2", "/p3"):
            r = http_request(self.b.public, "GET", p)
            self.assertRegex(cache_status(r), r"^virex-regional; hit", r.describe())
        wait_until(lambda: metric_sum(fetch_metrics(self.b.admin), "virex_cache_objects") == 3,
                   what="node B's edge filled (the gauge is copied once a second)")

    def purge(self, d, body):
        r = http_request(d.admin, "POST", "/cache/purge", headers=[("Authorization", f"Bearer {TOKEN}"),
                                                                    ("Content-Type", "application/json")],
                         body=body.encode())
        self.assertEqual(r.status, 200, r.describe())
        return r

    def applied(self, d):
        return metric_sum(fetch_metrics(d.admin), "virex_regional_invalidations_total", event="applied")

    def edge_hit(self, d, path):
        return cache_status(http_request(d.public, "GET", path)).startswith("virex-edge; hit")

    def test_purge_by_tag_then_path_on_a_clears_b_and_redis(self):
        r = self.purge(self.a, '{"tag": "grp"}')
        self.assertIn(b'"regional":"sent"', r.body)
        wait_until(lambda: self.applied(self.b) >= 1, what="node B applied the invalidation")
        wait_until(lambda: len(self.redis("KEYS", "vx:e:*")) == 1, what="the tagged entries gone from redis")
        self.assertEqual(self.redis("EXISTS", "vx:t:grp"), 0, "the tag index went with them")
        for p in ("/p1", "/p2"):
            r = http_request(self.b.public, "GET", p)
            self.assertRegex(cache_status(r), r"^virex-regional; fwd=uri-miss, virex-edge; fwd=uri-miss", r.describe())
            self.assertEqual(len(self.o.requests(path=p)), 2, "refetched from the origin")
        self.assertTrue(self.edge_hit(self.b, "/p3"), "untagged entries stay")
        m = fetch_metrics(self.a.admin)
        self.assertEqual(metric_sum(m, "virex_regional_invalidations_total", event="published"), 1)
        wait_until(lambda: metric_sum(fetch_metrics(self.a.admin), "virex_regional_invalidations_total",
                                      event="echo") == 1, what="node A dropping its own echo")
        self.assertEqual(self.applied(self.a), 0)
        # By path.
        self.purge(self.a, '{"path": "/p3"}')
        wait_until(lambda: self.applied(self.b) >= 2, what="node B applied the path purge")
        self.assertFalse(self.edge_hit(self.b, "/p3"))
        self.assertEqual(len(self.o.requests(path="/p3")), 2)

    def test_prefix_purge_and_write_invalidation(self):
        self.purge(self.b, '{"prefix": "/p"}')
        wait_until(lambda: self.applied(self.a) >= 1, what="node A applied the prefix purge")
        wait_until(lambda: len(self.redis("KEYS", "vx:e:*")) == 0, what="every entry under /p gone from redis")
        self.assertFalse(self.edge_hit(self.a, "/p1"))
        # Refill both, then a POST through node B invalidates /p2 on node A too (RFC 9111 §4.4).
        self.assertTrue(self.edge_hit(self.a, "/p2") or self.edge_hit(self.a, "/p2"))
        wait_until(lambda: len(self.redis("KEYS", "vx:e:*")) >= 1, what="p2 back in redis")
        self.o.route("/p2", Reply(200, b"written", headers=[("Cache-Control", "max-age=300")]))
        before = self.applied(self.a)
        r = http_request(self.b.public, "POST", "/p2", body=b"x=1", headers=[("Content-Type", "text/plain")])
        self.assertEqual(r.status, 200, r.describe())
        wait_until(lambda: self.applied(self.a) > before, what="node A applied the write invalidation")
        r = http_request(self.a.public, "GET", "/p2")
        self.assertEqual(r.body, b"written", r.describe())

    def test_lost_subscription_drops_the_edge_cache(self):
        self.redis("CLIENT", "KILL", "TYPE", "pubsub")
        for d in (self.a, self.b):
            wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_regional_edge_resyncs_total") == 1,
                       what="the edge cache dropped after resubscribing")
            wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_cache_objects") == 0,
                       what="an empty edge cache")
        r = http_request(self.b.public, "GET", "/p1")
        self.assertRegex(cache_status(r), r"^virex-regional; hit", "refilled from the region")


class RegionalTracingTest(DaemonTestCase):
    """The regional lookup is a client span under the server span in trace export; the access log says regional=."""

    def test_regional_span_and_access_log(self):
        from test_trace_export import Receiver
        rx = Receiver()
        self.addCleanup(rx.close)
        redis = RedisServer().start()
        self.addCleanup(redis.stop)
        o = Origin("o")
        o.start()
        self.addCleanup(o.close)
        o.route("/t", Reply(200, b"t", headers=[("Cache-Control", "max-age=60")]))
        import os
        import tempfile
        import shutil
        log_dir = tempfile.mkdtemp(prefix="virex-regional-log-")
        self.addCleanup(shutil.rmtree, log_dir, True)
        log = os.path.join(log_dir, "access.log")
        cfg = config(o, redis.address, workers=1).replace(
            "observability: {log_level: info}",
            f'observability: {{log_level: info, access_log: {{path: {log}, format: json}}, tracing: '
            f'{{otlp_endpoint: "127.0.0.1:{rx.port}", sample_ratio: 1.0, slow_threshold: 10s}}}}')
        d = self.daemon(cfg)
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        r = http_request(d.public, "GET", "/t", headers=[("traceparent", f"00-{trace}-00f067aa0ba902b7-01")])
        self.assertEqual(r.status, 200, r.describe())
        wait_until(lambda: len(rx.of_trace(trace)) >= 3, what="server, regional and upstream spans")
        spans = rx.of_trace(trace)
        server = next(s for s in spans if s["kind"] == 2)
        regional = next(s for s in spans if s["name"] == "regional GET")
        upstream = next(s for s in spans if s["name"] == "upstream web")
        self.assertEqual(regional["kind"], 3)
        self.assertEqual(regional["parent_span_id"], server["span_id"])
        self.assertEqual(upstream["parent_span_id"], server["span_id"])
        self.assertEqual(regional["attributes"].get("db.system"), "redis")
        self.assertEqual(regional["attributes"].get("virex.cache.regional"), "miss")
        self.assertEqual(server["attributes"].get("virex.cache.regional"), "miss")
        self.assertLessEqual(regional["end"], upstream["start"] + 1_000_000, "the region is asked before the origin")
        d.stop()
        from harness import json_lines
        lines = [l for l in json_lines(log) if l.get("route") == "r"]
        self.assertEqual(lines[0].get("regional"), "miss", lines)
