"""Edge cache on a proxied route (`cache:`) against a real origin that counts requests: a storable response is
answered from the cache after the first miss (Age, RFC 9211 Cache-Status), HEAD from the GET entry, a matching
If-None-Match as 304, Vary variants apart; no-store, Set-Cookie, private scope and oversized responses never
stored; edge_ttl caps the origin's lifetime."""
import unittest

from harness import DaemonTestCase, basic_config, http_request, wait_until
from origin import Behaviour, Origin, Reply


class Validating(Behaviour):
    """200 with validators (ETag, Last-Modified) and `stale` Cache-Control; a request whose If-None-Match carries
    the ETag (or, without one, whose If-Modified-Since equals Last-Modified) gets 304 with `fresh` Cache-Control
    and an X-Version field the 200 does not have."""

    def __init__(self, body, etag, last_modified, stale, fresh):
        self.body, self.etag, self.lm, self.stale, self.fresh = body, etag, last_modified, stale, fresh

    def handle(self, conn, req):
        validators = [("ETag", self.etag)] if self.etag else []
        validators += [("Last-Modified", self.lm)] if self.lm else []
        inm, ims = req.header("If-None-Match"), req.header("If-Modified-Since")
        if (self.etag and inm == self.etag) or (inm is None and self.lm and ims == self.lm):
            return Reply(304, headers=validators + [("Cache-Control", self.fresh), ("X-Version", "304")]).handle(conn, req)
        return Reply(200, self.body, headers=validators + [("Cache-Control", self.stale)]).handle(conn, req)


def config(origin_endpoint, cache_yaml="{edge_ttl: 60s}", max_object="8MiB"):
    return (basic_config(f"""  - name: c
    match: {{prefix: /}}
    upstream: web
    cache: {cache_yaml}
""", workers=2) + f'upstreams:\n  web: {{endpoints: ["{origin_endpoint}"]}}\n'
        + f"cache: {{edge: {{max_bytes: 64MiB, max_object_bytes: {max_object}}}}}\n")


class EdgeCacheTest(DaemonTestCase):
    def setUp(self):
        self.o = Origin("a")
        self.o.start()
        self.addCleanup(self.o.close)

    def hits(self, path):
        return len(self.o.requests(path=path))

    def get(self, d, path, method="GET", headers=None):
        return http_request(d.public, method, path, headers=headers)

    def test_second_request_is_a_hit_with_age_and_cache_status(self):
        self.o.route("/a", Reply(200, b"v1", headers=[("Cache-Control", "max-age=300"), ("ETag", '"e1"')]))
        d = self.daemon(config(self.o.endpoint))
        first = self.get(d, "/a")
        self.assertEqual((first.status, first.body), (200, b"v1"), first.describe())
        self.assertIn("fwd=uri-miss", first.header("Cache-Status", ""))
        self.assertIn("stored", first.header("Cache-Status", ""))
        # Both workers share the store: whichever takes them, later requests are hits.
        for _ in range(6):
            r = self.get(d, "/a")
            self.assertEqual((r.status, r.body), (200, b"v1"), r.describe())
            self.assertRegex(r.header("Cache-Status", ""), r"^virex-edge; hit", r.describe())
            self.assertRegex(r.header("Age", ""), r"^\d+$")
            self.assertEqual(r.header("Content-Length"), "2")
            self.assertIsNotNone(r.header("Date"))
        self.assertEqual(self.hits("/a"), 1, "the origin saw one request")
        head = self.get(d, "/a", method="HEAD")
        self.assertEqual((head.status, head.body, head.header("Content-Length")), (200, b"", "2"))
        cond = self.get(d, "/a", headers=[("If-None-Match", '"e1"')])
        self.assertEqual((cond.status, cond.body), (304, b""), cond.describe())
        self.assertEqual(cond.header("ETag"), '"e1"')
        self.assertEqual(self.hits("/a"), 1, "HEAD and the conditional GET were answered from the cache")
        from harness import fetch_metrics, metric_sum
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_cache_stores_total") >= 1
                   and metric_sum(fetch_metrics(d.admin), "virex_cache_bytes") > 0
                   and metric_sum(fetch_metrics(d.admin), "virex_cache_objects") == 1, what="store metrics")
        m = fetch_metrics(d.admin)
        self.assertGreaterEqual(metric_sum(m, "virex_cache_requests_total", route="c", result="hit"), 8)
        self.assertEqual(metric_sum(m, "virex_cache_requests_total", route="c", result="miss"), 1)

    def test_never_stored(self):
        self.o.route("/ns", Reply(200, b"x", headers=[("Cache-Control", "no-store")]))
        self.o.route("/ck", Reply(200, b"x", headers=[("Cache-Control", "max-age=60"), ("Set-Cookie", "s=1")]))
        self.o.route("/pv", Reply(200, b"x", headers=[("Cache-Control", "private, max-age=60")]))
        self.o.route("/big", Reply(200, b"y" * 4096, headers=[("Cache-Control", "max-age=60")]))
        d = self.daemon(config(self.o.endpoint, max_object="1KiB"))
        for path in ("/ns", "/ck", "/pv", "/big"):
            for _ in range(3):
                r = self.get(d, path)
                self.assertEqual(r.status, 200, r.describe())
                self.assertNotIn("hit", r.header("Cache-Status", "").split(";")[1])
            self.assertEqual(self.hits(path), 3, f"{path} is never answered from the cache")

    def test_private_scope_route_bypasses_the_cache(self):
        self.o.route("/p", Reply(200, b"me", headers=[("Cache-Control", "public, max-age=60")]))
        d = self.daemon(config(self.o.endpoint, cache_yaml="{edge_ttl: 60s, scope: private}"))
        for _ in range(3):
            r = self.get(d, "/p")
            self.assertIn("fwd=bypass", r.header("Cache-Status", ""))
        self.assertEqual(self.hits("/p"), 3)

    def test_vary_keeps_variants_apart(self):
        self.o.route("/v", Reply(200, lambda req: req.header("Accept-Encoding", "none").encode(),
                                 headers=[("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")]))
        d = self.daemon(config(self.o.endpoint))
        gz = [("Accept-Encoding", "gzip")]
        br = [("Accept-Encoding", "br")]
        self.assertEqual(self.get(d, "/v", headers=gz).body, b"gzip")
        self.assertEqual(self.get(d, "/v", headers=br).body, b"br")
        for _ in range(3):
            self.assertEqual(self.get(d, "/v", headers=gz).body, b"gzip")
            self.assertEqual(self.get(d, "/v", headers=br).body, b"br")
        self.assertEqual(self.hits("/v"), 2, "one origin request per variant")

    def test_edge_ttl_caps_the_origin_lifetime(self):
        self.o.route("/t", Reply(200, b"t", headers=[("Cache-Control", "max-age=3600")]))
        d = self.daemon(config(self.o.endpoint, cache_yaml="{edge_ttl: 1s}"))
        self.assertEqual(self.get(d, "/t").status, 200)
        self.assertRegex(self.get(d, "/t").header("Cache-Status", ""), r"hit; ttl=[01]")
        # Within 1 s (+ the whole-second clock) the entry expires and the next request goes to the origin.
        wait_until(lambda: self.get(d, "/t").status == 200 and self.hits("/t") >= 2, timeout=10,
                   what="the entry to expire after edge_ttl")

    def test_stale_if_error_serves_the_stale_copy_when_the_origin_fails(self):
        # RFC 5861 §4: max-age=1 with stale-if-error=60: once stale, an origin failure is answered with the copy.
        self.o.route("/s", Reply(200, b"old", headers=[("Cache-Control", "max-age=1, stale-if-error=60")]))
        self.o.route("/n", Reply(200, b"n", headers=[("Cache-Control", "max-age=1")]))
        d = self.daemon(config(self.o.endpoint, cache_yaml="{edge_ttl: 60s}"))
        self.assertEqual(self.get(d, "/s").body, b"old")
        self.assertEqual(self.get(d, "/n").body, b"n")
        self.o.stop()

        def stale_served():
            r = self.get(d, "/s")
            return r.status == 200 and "stale-if-error" in r.header("Cache-Status", "")
        wait_until(stale_served, timeout=10, what="the stale copy served for the failing origin")
        r = self.get(d, "/s")
        self.assertEqual((r.status, r.body), (200, b"old"), r.describe())
        self.assertRegex(r.header("Cache-Status", ""), r"hit; ttl=(0|-\d+)")
        # Without stale-if-error the failure is the client's answer once the copy is stale.
        wait_until(lambda: self.get(d, "/n").status == 502, timeout=10, what="/n to fail once stale")

    def test_stale_while_revalidate_refreshes_once_in_the_background(self):
        # RFC 5861 §3: once stale, the copy answers at once while ONE background request refreshes it — even while
        # that refresh hangs at the origin, every client is answered from the stale copy.
        import threading
        from origin import Hold
        self.o.route("/w", Reply(200, b"v1", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=60")]))
        d = self.daemon(config(self.o.endpoint))
        self.assertEqual(self.get(d, "/w").body, b"v1")
        gate = threading.Event()
        self.addCleanup(gate.set)
        self.o.route("/w", Hold(gate, then=Reply(200, b"v2", headers=[("Cache-Control", "max-age=60")])))

        def stale_served():
            r = self.get(d, "/w")
            return "stale-while-revalidate" in r.header("Cache-Status", "")
        wait_until(stale_served, timeout=10, what="the stale copy served while revalidating")
        self.o.wait_in_flight(1)
        for _ in range(10):
            r = self.get(d, "/w")
            self.assertEqual((r.status, r.body), (200, b"v1"), r.describe())
            self.assertRegex(r.header("Cache-Status", ""), r"^virex-edge; hit; ttl=(0|-\d+); detail=stale-while-revalidate",
                             r.describe())
        self.assertEqual(self.hits("/w"), 2, "the first fetch and one refresh")
        gate.set()
        wait_until(lambda: self.get(d, "/w").body == b"v2", timeout=10, what="the refreshed entry")
        r = self.get(d, "/w")
        self.assertRegex(r.header("Cache-Status", ""), r"^virex-edge; hit; ttl=(5\d|60)$", r.describe())
        self.assertEqual(self.hits("/w"), 2, "no second refresh")
        from harness import fetch_metrics, metric_sum
        m = fetch_metrics(d.admin)
        self.assertEqual(metric_sum(m, "virex_cache_refreshes_total", result="updated"), 1)
        self.assertGreaterEqual(metric_sum(m, "virex_cache_requests_total", route="c", result="stale_while_revalidate"), 11)

    def test_background_refresh_keeps_the_entry_on_a_5xx_and_drops_it_on_no_store(self):
        self.o.route("/u", Reply(200, b"v1", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=60")]))
        d = self.daemon(config(self.o.endpoint))
        self.assertEqual(self.get(d, "/u").body, b"v1")
        self.o.route("/u", Reply(500, b"down"))
        from harness import fetch_metrics, metric_sum
        wait_until(lambda: "stale-while-revalidate" in self.get(d, "/u").header("Cache-Status", ""), timeout=10,
                   what="a stale-while-revalidate answer")
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_cache_refreshes_total", result="failed") >= 1,
                   what="the failed refresh")
        r = self.get(d, "/u")
        self.assertEqual((r.status, r.body), (200, b"v1"), "a 5xx leaves the stale entry in place")
        self.o.route("/u", Reply(200, b"v2", headers=[("Cache-Control", "no-store")]))
        def dropped():
            self.get(d, "/u")  # a stale answer starts a refresh when none is running
            return metric_sum(fetch_metrics(d.admin), "virex_cache_refreshes_total", result="uncacheable") >= 1
        wait_until(dropped, what="the refresh that finds no-store")
        r = self.get(d, "/u")
        self.assertEqual(r.body, b"v2", r.describe())
        self.assertIn("fwd=uri-miss", r.header("Cache-Status", ""), "the entry was dropped")

    def test_shutdown_with_a_refresh_hanging_at_the_origin(self):
        # A background refresh waits on an origin that never answers: SIGTERM still ends the daemon (the drain
        # deadline stops the worker, destroying the suspended refresh, which ends its coalescing flight), exit 0
        # and no sanitizer report.
        import threading
        from origin import Hold
        self.o.route("/h", Reply(200, b"v1", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=60")]))
        d = self.daemon(config(self.o.endpoint).replace("drain_timeout: 10s", "drain_timeout: 1s"))
        self.assertEqual(self.get(d, "/h").body, b"v1")
        gate = threading.Event()
        self.addCleanup(gate.set)
        self.o.route("/h", Hold(gate))
        wait_until(lambda: "stale-while-revalidate" in self.get(d, "/h").header("Cache-Status", ""), timeout=10,
                   what="a stale answer starting the refresh")
        self.o.wait_in_flight(1)
        self.assertLess(d.stop(timeout=15), 10, "bounded by drain_timeout, not by the refresh")

    def test_only_a_plain_request_starts_a_refresh(self):
        # A Range, Authorization or Cache-Control of the request's own would shape the origin's answer (a 206, a
        # refusal to store): such requests get the stale copy but start no refresh; a plain one does.
        self.o.route("/p", Reply(200, b"v1", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=60")]))
        d = self.daemon(config(self.o.endpoint))
        self.assertEqual(self.get(d, "/p").body, b"v1")
        self.o.route("/p", Reply(200, b"v2", headers=[("Cache-Control", "max-age=60")]))
        wait_until(lambda: "stale-while-revalidate" in self.get(d, "/p", headers=[("Range", "bytes=0-0")])
                   .header("Cache-Status", ""), timeout=10, what="the stale copy for a Range request")
        for h in (("Range", "bytes=0-0"), ("Cache-Control", "no-store"), ("Authorization", "Bearer x")):
            r = self.get(d, "/p", headers=[h])
            self.assertEqual((r.status, r.body), (200, b"v1"), r.describe())
        from harness import fetch_metrics, metric_sum
        self.assertEqual(metric_sum(fetch_metrics(d.admin), "virex_cache_refreshes_total"), 0)
        self.assertEqual(self.hits("/p"), 1, "no refresh from those requests")
        self.get(d, "/p")
        wait_until(lambda: self.get(d, "/p").body == b"v2", what="the refresh a plain request started")
        self.assertEqual(self.hits("/p"), 2)

    def test_a_304_for_another_representation_is_never_relayed(self):
        # The origin answers the revalidation with a 304 naming a different strong ETag: it did not validate the
        # stored response, and the client (which asked unconditionally) must not get a 304.
        class OtherEtag(Behaviour):
            def handle(self, conn, req):
                if req.header("If-None-Match"):
                    return Reply(304, headers=[("ETag", '"other"'), ("Cache-Control", "max-age=60")]).handle(conn, req)
                return Reply(200, b"v1", headers=[("ETag", '"e1"'), ("Cache-Control", "max-age=1")]).handle(conn, req)
        self.o.route("/x", OtherEtag())
        d = self.daemon(config(self.o.endpoint))
        self.assertEqual(self.get(d, "/x").body, b"v1")
        r = wait_until(lambda: (lambda r: r if r.status != 200 or "fwd=stale" in r.header("Cache-Status", "") else None)(
            self.get(d, "/x")), timeout=10, what="the revalidation")
        self.assertEqual(r.status, 502, r.describe())
        self.assertIn("304 does not match the stored response", r.header("Proxy-Status", ""))

    def test_stale_entry_is_revalidated_with_its_validators(self):
        # RFC 9111 §4.3: a stale entry with an ETag and Last-Modified is revalidated (If-None-Match /
        # If-Modified-Since); the 304 freshens the stored response (its new Cache-Control), the body stays.
        lm = "Wed, 21 Oct 2026 07:28:00 GMT"
        self.o.route("/r", Validating(b"v1", '"e1"', lm, stale="max-age=1", fresh="max-age=60"))
        d = self.daemon(config(self.o.endpoint))
        self.assertEqual(self.get(d, "/r").body, b"v1")

        def revalidated():
            r = self.get(d, "/r")
            return r if "fwd-status=304" in r.header("Cache-Status", "") else None
        r = wait_until(revalidated, timeout=10, what="a revalidation answered 304")
        self.assertEqual((r.status, r.body), (200, b"v1"), r.describe())
        self.assertRegex(r.header("Cache-Status", ""), r"^virex-edge; fwd=stale; fwd-status=304; stored; ttl=(5\d|60)$")
        self.assertEqual(r.header("X-Version"), "304", "fields from the 304 replace the stored ones")
        self.assertEqual(r.header("ETag"), '"e1"')
        last = self.o.requests(path="/r")[-1]
        self.assertEqual((last.header("If-None-Match"), last.header("If-Modified-Since")), ('"e1"', lm))
        n = self.hits("/r")
        for _ in range(3):
            h = self.get(d, "/r")
            self.assertEqual(h.body, b"v1")
            self.assertRegex(h.header("Cache-Status", ""), r"^virex-edge; hit; ttl=(5\d|60)$", h.describe())
        self.assertEqual(self.hits("/r"), n, "fresh again after the 304")
        from harness import fetch_metrics, metric_sum
        self.assertEqual(metric_sum(fetch_metrics(d.admin), "virex_cache_requests_total", route="c",
                                    result="revalidated"), 1)

    def test_background_refresh_revalidates_with_validators(self):
        self.o.route("/sv", Validating(b"body", '"t1"', None, stale="max-age=1, stale-while-revalidate=60",
                                       fresh="max-age=60"))
        d = self.daemon(config(self.o.endpoint))
        self.assertEqual(self.get(d, "/sv").body, b"body")
        from harness import fetch_metrics, metric_sum
        wait_until(lambda: "stale-while-revalidate" in self.get(d, "/sv").header("Cache-Status", ""),
                   timeout=10, what="a stale-while-revalidate answer")
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_cache_refreshes_total", result="not_modified") == 1,
                   what="the background 304")
        r = self.get(d, "/sv")
        self.assertEqual((r.status, r.body), (200, b"body"))
        self.assertRegex(r.header("Cache-Status", ""), r"^virex-edge; hit; ttl=(5\d|60)$", r.describe())
        self.assertEqual(self.o.requests(path="/sv")[-1].header("If-None-Match"), '"t1"')
        self.assertEqual(self.hits("/sv"), 2)

    def test_memory_stays_under_max_bytes_with_a_working_set_ten_times_larger(self):
        # 320 distinct 64 KiB objects (20 MiB) through a 2 MiB cache: the accounted bytes never pass max_bytes,
        # entries are evicted, and the daemon's resident memory does not grow with the working set.
        from harness import fetch_metrics, metric_sum
        from test_proxy import rss_kib
        self.o.route("/m/", Reply(200, b"z" * 65536, headers=[("Cache-Control", "max-age=60")]), prefix=True)
        cfg = config(self.o.endpoint, max_object="1MiB").replace("max_bytes: 64MiB", "max_bytes: 2MiB")
        # Under AddressSanitizer freed blocks sit in its quarantine (256 MiB by default) and would count as growth.
        d = self.daemon(cfg, env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:quarantine_size_mb=1"})
        for i in range(32):
            self.get(d, f"/m/{i}")
        base = rss_kib(d.proc.pid)
        peak = 0
        for rnd in range(2):
            for i in range(320):
                r = self.get(d, f"/m/{i}")
                self.assertEqual((r.status, len(r.body)), (200, 65536))
                if i % 32 == 0:
                    m = fetch_metrics(d.admin)
                    peak = max(peak, metric_sum(m, "virex_cache_bytes"))
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_cache_evictions_total")
                   + metric_sum(fetch_metrics(d.admin), "virex_cache_admission_rejected_total") > 0,
                   what="evictions or admission rejections")
        m = fetch_metrics(d.admin)
        peak = max(peak, metric_sum(m, "virex_cache_bytes"))
        self.assertLessEqual(peak, 2 * 1024 * 1024)
        self.assertGreater(peak, 0)
        growth = rss_kib(d.proc.pid) - base
        self.assertLess(growth, 16 * 1024, f"RSS grew by {growth} KiB while 20 MiB of objects passed through")

    def test_cache_outcome_in_the_access_log(self):
        self.o.route("/l", Reply(200, b"l", headers=[("Cache-Control", "max-age=60")]))
        base = config(self.o.endpoint).replace("observability: {log_level: info}",
                                               "observability: {access_log: {path: $DIR/access.log, format: json}, "
                                               "log_level: info}")
        d = self.daemon(base)
        self.get(d, "/l")
        self.get(d, "/l")
        d.stop()
        import json, os
        with open(os.path.join(d.dir, "access.log")) as f:
            caches = sorted(json.loads(line).get("cache") for line in f if line.strip())
        self.assertEqual(caches, ["edge=hit", "edge=miss"])


class CoalescingTest(DaemonTestCase):
    N = 500

    def test_concurrent_misses_make_one_origin_request(self):
        import threading
        from harness import fetch_metrics, metric_sum
        from origin import Hold
        o = Origin("a")
        o.start()
        self.addCleanup(o.close)
        gate = threading.Event()
        self.addCleanup(gate.set)
        o.route("/cold", Hold(gate, then=Reply(200, b"warm", headers=[("Cache-Control", "max-age=60")])))
        d = self.daemon(config(o.endpoint))
        results = [None] * self.N

        def one(i):
            try:
                results[i] = http_request(d.public, "GET", "/cold", timeout=30)
            except Exception as e:  # reported below
                results[i] = e
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(self.N)]
        for t in threads:
            t.start()
        o.wait_in_flight(1)
        # Every other request has joined the flight (counted as it starts waiting) before the origin answers.
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_cache_requests_total", result="collapsed")
                   >= self.N - 1, timeout=30, what=f"{self.N - 1} requests waiting on the one fetch")
        gate.set()
        for t in threads:
            t.join(30)
        bad = [r for r in results if not hasattr(r, "status") or r.status != 200 or r.body != b"warm"]
        self.assertEqual(bad, [], f"{len(bad)} of {self.N} failed")
        self.assertEqual(len(o.requests(path="/cold")), 1, "one origin request for all of them")
        collapsed = sum(1 for r in results if "collapsed" in r.header("Cache-Status", ""))
        self.assertEqual(collapsed, self.N - 1)


    def test_waiters_give_up_after_the_lock_timeout(self):
        # The leader's origin request hangs: after the 5 s lock timeout the waiter fetches on its own (it is not
        # held for as long as the leader is), and both answers arrive once the origin answers.
        import threading
        import time
        from harness import fetch_metrics, metric_sum
        from origin import Hold
        o = Origin("a")
        o.start()
        self.addCleanup(o.close)
        gate = threading.Event()
        self.addCleanup(gate.set)
        o.route("/hang", Hold(gate, then=Reply(200, b"late", headers=[("Cache-Control", "no-store")])))
        d = self.daemon(config(o.endpoint))
        results = {}
        leader = threading.Thread(target=lambda: results.setdefault("a", http_request(d.public, "GET", "/hang", timeout=30)))
        leader.start()
        o.wait_in_flight(1)
        started = time.monotonic()
        waiter = threading.Thread(target=lambda: results.setdefault("b", http_request(d.public, "GET", "/hang", timeout=30)))
        waiter.start()
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_cache_requests_total", result="collapsed") >= 1,
                   what="the second request waiting on the first")
        o.wait_in_flight(2, timeout=15)   # the waiter gave up and went to the origin itself
        self.assertGreaterEqual(time.monotonic() - started, 4.5, "not before the lock timeout")
        gate.set()
        leader.join(30)
        waiter.join(30)
        self.assertEqual([results[k].status for k in "ab"], [200, 200])
        self.assertEqual(len(o.requests(path="/hang")), 2)


TOKEN = "purge-token-0123456789abcdef"


class PurgeTest(DaemonTestCase):
    def setUp(self):
        self.o = Origin("a")
        self.o.start()
        self.addCleanup(self.o.close)
        for path in ("/p/1", "/p/2", "/q/1"):
            tag = "group-p" if path.startswith("/p/") else "group-q"
            self.o.route(path, Reply(200, path.encode(), headers=[("Cache-Control", "max-age=300"),
                                                                   ("Surrogate-Key", f"all {tag}")]))
        self.d = self.daemon(config(self.o.endpoint) + f"admin: {{token: {TOKEN}}}\n")

    def warm(self):
        for path in ("/p/1", "/p/2", "/q/1"):
            http_request(self.d.public, "GET", path)
            self.assertRegex(http_request(self.d.public, "GET", path).header("Cache-Status", ""), r"; hit")

    def purge(self, body, token=TOKEN, method="POST"):
        headers = [("Content-Type", "application/json")]
        if token:
            headers.append(("Authorization", f"Bearer {token}"))
        return http_request(self.d.admin, method, "/cache/purge", headers=headers,
                            body=body.encode() if isinstance(body, str) else body)

    def origin_count(self, path):
        return len(self.o.requests(path=path))

    def test_needs_the_bearer_token_and_post(self):
        self.warm()
        r = self.purge('{"prefix": "/"}', token=None)
        self.assertEqual(r.status, 401, r.describe())
        self.assertIn("Bearer", r.header("WWW-Authenticate", ""))
        self.assertEqual(self.purge('{"prefix": "/"}', token="wrong-token-0123456789").status, 401)
        self.assertEqual(self.purge("", method="GET").status, 405)
        for bad in ("nope", "[]", '{"prefix": "/", "tag": "x"}', '{"prefix": "no-slash"}', '{"what": 1}', "{}"):
            self.assertEqual(self.purge(bad).status, 400, bad)
        self.assertRegex(http_request(self.d.public, "GET", "/p/1").header("Cache-Status", ""), r"; hit",
                         "nothing was purged by the refused requests")

    def test_prefix_path_and_tag(self):
        self.warm()
        r = self.purge('{"prefix": "/p/"}')
        self.assertEqual((r.status, r.body), (200, b'{"purged":2}\n'), r.describe())
        self.assertRegex(http_request(self.d.public, "GET", "/p/1").header("Cache-Status", ""), r"fwd=uri-miss")
        self.assertRegex(http_request(self.d.public, "GET", "/q/1").header("Cache-Status", ""), r"; hit")
        self.assertEqual(self.purge('{"path": "/q/1", "host": "LOCALHOST"}').body, b'{"purged":1}\n')
        self.assertEqual(self.origin_count("/q/1"), 1)
        http_request(self.d.public, "GET", "/q/1")
        self.assertEqual(self.origin_count("/q/1"), 2, "purged by path: refetched")
        self.warm()
        r = self.purge('{"tag": "group-q"}')
        self.assertEqual(r.body, b'{"purged":1}\n', r.describe())
        self.assertEqual(self.purge('{"tag": "all"}').body, b'{"purged":2}\n', "/p/1 and /p/2 are left")

    def test_tag_templates_take_the_path_captures(self):
        o = Origin("b")
        o.start()
        self.addCleanup(o.close)
        o.route("/v1/customers/", Reply(200, b"orders", headers=[("Cache-Control", "max-age=300")]), prefix=True)
        d = self.daemon(basic_config("""  - name: orders
    match: {path: "/v1/customers/{customer_id:int64}/orders", method: GET}
    upstream: web
    cache: {edge_ttl: 60s, tags: ["customer:{customer_id}", "orders"]}
""", workers=1) + f'upstreams:\n  web: {{endpoints: ["{o.endpoint}"]}}\n' + f"admin: {{token: {TOKEN}}}\n")
        for c in (7, 8, 7, 8):
            self.assertEqual(http_request(d.public, "GET", f"/v1/customers/{c}/orders").status, 200)
        r = http_request(d.admin, "POST", "/cache/purge", headers=[("Authorization", f"Bearer {TOKEN}")],
                         body=b'{"tag": "customer:7"}')
        self.assertEqual((r.status, r.body), (200, b'{"purged":1}\n'), r.describe())
        self.assertRegex(http_request(d.public, "GET", "/v1/customers/8/orders").header("Cache-Status", ""), "; hit")
        self.assertRegex(http_request(d.public, "GET", "/v1/customers/7/orders").header("Cache-Status", ""),
                         "fwd=uri-miss")

    def test_soft_purge_marks_stale(self):
        self.warm()
        self.assertEqual(self.purge('{"tag": "all", "soft": true}').body, b'{"purged":3}\n')
        from harness import fetch_metrics, metric_sum
        m = fetch_metrics(self.d.admin)
        self.assertEqual(metric_sum(m, "virex_cache_purges_total", kind="tag", mode="soft"), 1)
        self.assertEqual(metric_sum(m, "virex_cache_purged_entries_total"), 3)
        before = self.origin_count("/p/2")
        r = http_request(self.d.public, "GET", "/p/2")
        self.assertRegex(r.header("Cache-Status", ""), r"fwd=stale", r.describe())
        self.assertEqual(self.origin_count("/p/2"), before + 1, "a soft-purged entry is not served as fresh")


if __name__ == "__main__":
    unittest.main()
