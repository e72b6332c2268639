"""deploy/: the Grafana dashboard is valid JSON whose every query parses as PromQL (checked by promtool, with
the dashboard's template variables filled in) and names only metrics and recorded series that exist."""
import json
import os
import re
import subprocess
import tempfile
import unittest

from harness import require_tool

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class GrafanaDashboardTest(unittest.TestCase):
    def test_every_query_parses_and_names_known_series(self):
        promtool = require_tool("promtool")
        with open(os.path.join(ROOT, "deploy", "grafana", "virex-edge.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]  # rows have none
        self.assertGreater(len(exprs), 10)
        with open(os.path.join(ROOT, "deploy", "prometheus", "virex-edge.rules.yml")) as f:
            recorded = set(re.findall(r"record: (\S+)", f.read()))
        known_prefixes = ("virex_",)
        with tempfile.TemporaryDirectory() as d:
            rules = os.path.join(d, "dashboard.rules.yml")
            with open(rules, "w") as f:
                f.write("groups:\n  - name: dashboard\n    rules:\n")
                for i, e in enumerate(exprs):
                    f.write(f"      - record: dashboard:q{i}\n        expr: {json.dumps(e.replace('$job', '.*'))}\n")
            cp = subprocess.run([promtool, "check", "rules", rules], capture_output=True, text=True)
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        for e in exprs:
            for name in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", e):
                self.assertTrue(name in recorded or name.startswith(known_prefixes), f"unknown series {name} in {e}")


if __name__ == "__main__":
    unittest.main()
