# Command line of the real binary: version, check-config (ok / every error as file:line:col: path: reason,
# exit 1), run with a bad config (non-zero exit, no crash), both `run --config` and `--config` forms, and
# readiness through an abstract NOTIFY_SOCKET.
import os
import re
import shutil
import signal
import socket
import tempfile
import unittest

from harness import (HELLO_ROUTE, DaemonTestCase, basic_config, free_port, http_get, run_edge,
                     sanitizer_findings)

GOOD = basic_config(HELLO_ROUTE)


def write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class CliTest(DaemonTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="virex-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def assert_clean_exit(self, cp, what):
        self.assertGreaterEqual(cp.returncode, 0, f"{what}: killed by signal {-cp.returncode}\n{cp.stderr}")
        self.assertEqual(sanitizer_findings(cp.stderr), [], f"{what}: sanitizer report\n{cp.stderr}")

    def test_version(self):
        cp = run_edge("version")
        self.assert_clean_exit(cp, "version")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertRegex(cp.stdout, r"virex-edge", cp.stdout)
        self.assertRegex(cp.stdout, r"\d+\.\d+\.\d+", cp.stdout)

    def test_check_config_ok(self):
        path = write(self.tmp, "ok.yaml", GOOD.replace("$PUBLIC", "18080").replace("$ADMIN", "18081"))
        cp = run_edge("check-config", path)
        self.assert_clean_exit(cp, "check-config")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertIn(f"{path}: ok", cp.stdout + cp.stderr)

    def test_shipped_configs_pass_check_config(self):
        root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
        for name in ("edge.yaml", "local.yaml"):
            path = os.path.join(root, "config", name)
            cp = run_edge("check-config", path)
            self.assertEqual(cp.returncode, 0, f"{name}: {cp.stderr}")
            self.assertIn(f"{path}: ok", cp.stdout)

    def test_check_config_reports_every_error_with_position(self):
        # Line numbers are 1-based; each error below is on a known line.
        text = (
            "node: {name: t, region: r, workers: 2}\n"                          # 1
            "limits:\n"                                                        # 2
            "  max_header_bytes: lots\n"                                       # 3  bad size
            "listeners:\n"                                                     # 4
            "  - {name: public, address: \"127.0.0.1:18080\"}\n"               # 5
            "routes:\n"                                                        # 6
            "  - name: hello\n"                                                # 7
            "    match: {path: /hello}\n"                                      # 8
            "    respond: {status: 200, bogus_key: 1}\n"                       # 9  unknown key
            "observability: {log_level: info, colour: blue}\n"                 # 10 unknown key
        )
        path = write(self.tmp, "bad.yaml", text)
        cp = run_edge("check-config", path)
        self.assert_clean_exit(cp, "check-config")
        self.assertEqual(cp.returncode, 1, f"stdout={cp.stdout!r} stderr={cp.stderr!r}")
        lines = [ln for ln in cp.stderr.splitlines() if ln.strip()]
        pat = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<path>[^:\s]+): (?P<reason>.+)$")
        parsed = [pat.match(ln) for ln in lines]
        errors = [m for m in parsed if m]
        self.assertGreaterEqual(len(errors), 3, f"want >= 3 'file:line:col: path: reason' lines:\n{cp.stderr}")
        for m in errors:
            self.assertEqual(m.group("file"), path, m.group(0))
            self.assertGreaterEqual(int(m.group("col")), 1, m.group(0))

        def find(line, path_re, what):
            for m in errors:
                if int(m.group("line")) == line and re.search(path_re, m.group(0)):
                    return m
            self.fail(f"no error for {what} at line {line} matching {path_re!r}:\n{cp.stderr}")

        m = find(3, r"limits\.max_header_bytes", "limits.max_header_bytes: lots")
        self.assertIn(int(m.group("col")), (3, 21), f"column of the key (3) or of the value (21): {m.group(0)}")
        m = find(9, r"bogus_key", "routes[0].respond.bogus_key (unknown key)")
        self.assertRegex(m.group("path"), r"^routes.*respond", m.group(0))
        self.assertEqual(int(m.group("col")), text.splitlines()[8].index("bogus_key") + 1, m.group(0))
        m = find(10, r"colour", "observability.colour (unknown key)")
        self.assertRegex(m.group("path"), r"^observability", m.group(0))

    def test_check_config_yaml_syntax_error(self):
        path = write(self.tmp, "syntax.yaml", "node: {name: t\nlisteners: [\n")
        cp = run_edge("check-config", path)
        self.assert_clean_exit(cp, "check-config")
        self.assertEqual(cp.returncode, 1, cp.stderr)
        self.assertRegex(cp.stderr, re.escape(path) + r":\d+:\d+: ", cp.stderr)

    def test_check_config_missing_file(self):
        path = os.path.join(self.tmp, "does-not-exist.yaml")
        cp = run_edge("check-config", path)
        self.assert_clean_exit(cp, "check-config")
        self.assertEqual(cp.returncode, 1, cp.stderr)
        self.assertIn(path, cp.stderr)

    def test_run_with_bad_config_exits_nonzero_without_crashing(self):
        path = write(self.tmp, "bad.yaml", GOOD.replace("$PUBLIC", "18080").replace("$ADMIN", "18081")
                     .replace("workers: 2", "workers: many"))
        cp = run_edge("run", "--config", path)
        self.assert_clean_exit(cp, "run")
        self.assertNotEqual(cp.returncode, 0, cp.stderr)
        self.assertRegex(cp.stderr, re.escape(path) + r":1:\d+: node\.workers: ", cp.stderr)

    def test_run_fails_cleanly_when_the_port_is_taken(self):
        # A socket bound without SO_REUSEPORT makes the daemon's bind fail: it must say so and exit non-zero.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            text = GOOD.replace("$PUBLIC", str(port)).replace("$ADMIN", str(free_port()))
            path = write(self.tmp, "taken.yaml", text)
            cp = run_edge("run", "--config", path, timeout=20)
        self.assert_clean_exit(cp, "run")
        self.assertNotEqual(cp.returncode, 0, cp.stderr)
        self.assertIn(str(port), cp.stderr)

    def test_unknown_subcommand_fails(self):
        cp = run_edge("frobnicate")
        self.assert_clean_exit(cp, "frobnicate")
        self.assertNotEqual(cp.returncode, 0)

    def test_run_form_serves_and_stops_with_exit_0(self):
        d = self.daemon(GOOD)
        r = http_get(d.public, "/hello")
        self.assertEqual((r.status, r.body), (200, b"hi\n"), r.describe())
        d.stop()

    def test_bare_config_flag_form(self):
        d = self.daemon(GOOD, argv_style="bare")
        r = http_get(d.public, "/hello")
        self.assertEqual((r.status, r.body), (200, b"hi\n"), r.describe())

    def test_abstract_notify_socket(self):
        d = self.daemon(GOOD, notify_abstract=True)
        self.assertTrue(d.notify.address.startswith("@"))
        r = http_get(d.public, "/hello")
        self.assertEqual(r.status, 200, r.describe())
        d.stop(sig=signal.SIGINT)


if __name__ == "__main__":
    unittest.main()
