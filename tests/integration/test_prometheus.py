"""A real Prometheus server (Debian's `prometheus`) scrapes the daemon's admin listener with the project's
recording rules loaded: the target is up, and request rates and the recorded p99 are non-zero."""
import json
import os
import shutil
import subprocess
import time
import unittest
import urllib.parse
import urllib.request

from harness import DaemonTestCase, basic_config, free_port, http_get, require_tool, wait_until
from test_signals import hello

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class PrometheusScrapeTest(DaemonTestCase):
    def test_real_prometheus_scrapes_and_records(self):
        prom = require_tool("prometheus")
        d = self.daemon(basic_config(hello("v1")))
        port = free_port()
        work = os.path.join(d.dir, "prometheus")
        os.makedirs(work)
        shutil.copy(os.path.join(ROOT, "deploy", "prometheus", "virex-edge.rules.yml"), work)
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write(f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [virex-edge.rules.yml]
scrape_configs:
  - job_name: virex-edge
    static_configs: [{{targets: ["127.0.0.1:{d.admin}"]}}]
""")
        log = open(os.path.join(work, "prometheus.log"), "wb")
        p = subprocess.Popen([prom, f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/data",
                              f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL, cwd=work)

        def stop():
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
            log.close()
        self.addCleanup(stop)

        def query(expr):
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    body = json.load(r)
            except OSError:
                return None
            results = body.get("data", {}).get("result", [])
            return float(results[0]["value"][1]) if results else None

        def traffic_then(expr):
            for _ in range(5):
                self.assertEqual(http_get(d.public, "/hello").status, 200)
            v = query(expr)
            return v if v else None

        try:
            wait_until(lambda: query('up{job="virex-edge"}') == 1.0, 30, interval=0.25,
                       what="Prometheus to scrape the admin listener")
            rate = wait_until(lambda: traffic_then('route:virex_http_requests:rate5m{route="hello"}'), 30,
                              interval=0.25, what="a non-zero recorded request rate")
            self.assertGreater(rate, 0)
            p99 = wait_until(lambda: traffic_then('route:virex_http_request_duration_seconds:p99_5m{route="hello"}'),
                             30, interval=0.25, what="a recorded p99")
            self.assertGreater(p99, 0)
        except AssertionError:
            with open(os.path.join(work, "prometheus.log"), "rb") as f:
                print(f.read().decode("utf-8", "replace")[-4000:])
            raise
        d.stop()


if __name__ == "__main__":
    unittest.main()
