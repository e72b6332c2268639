"""TLS on a listener (`tls:`), tested with real clients against certificates the test makes with `openssl req`:
curl over TLS 1.2 and 1.3, SNI choosing the certificate (exact, wildcard, default), ALPN, session resumption by
ticket and by session cache (`openssl s_client -sess_out/-sess_in` says "Reused"), min_version, OCSP stapling,
certificates replaced by SIGHUP while an open TLS connection keeps working, and config errors naming the file."""
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

from harness import (DaemonTestCase, HELLO_ROUTE, fetch_metrics, metric_sum, require_tool, run_curl, run_edge,
                     wait_until)

OPENSSL = None


def openssl(*args, stdin=b"", timeout=20):
    return subprocess.run([OPENSSL, *args], input=stdin, capture_output=True, timeout=timeout)


def make_cert(directory, name, san, key_type="rsa"):
    """A self-signed certificate NAME.crt/NAME.key for subject CN=NAME with subjectAltName SAN."""
    crt, key = os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")
    key_args = ["-newkey", "rsa:2048"] if key_type == "rsa" else ["-newkey", "ec", "-pkeyopt",
                                                                    "ec_paramgen_curve:P-256"]
    r = openssl("req", "-x509", *key_args, "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                "-subj", "/CN=" + name, "-addext", "subjectAltName=" + san)
    assert r.returncode == 0, r.stderr.decode()
    return crt, key


def tls_config(certs, extra_tls="", workers=2, protocols=""):
    certificates = ", ".join(f"{{cert: {c}, key: {k}}}" for c, k in certs)
    return f"""node: {{name: t, region: r, workers: {workers}}}
listeners:
  - {{name: public, address: "127.0.0.1:$PUBLIC", {protocols}tls: {{certificates: [{certificates}]{extra_tls}}}}}
  - {{name: admin, address: "127.0.0.1:$ADMIN", admin: true}}
routes:
{HELLO_ROUTE}
observability: {{log_level: info}}
"""


REQUEST = b"GET /hello HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"


class TlsTest(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        global OPENSSL
        OPENSSL = require_tool("openssl")
        cls.dir = tempfile.mkdtemp(prefix="virex-tls-")
        cls.a = make_cert(cls.dir, "a.test", "DNS:a.test")
        cls.b = make_cert(cls.dir, "b.test", "DNS:b.test,DNS:*.b.test", key_type="ec")
        cls.c = make_cert(cls.dir, "c.test", "DNS:a.test")   # replaces a.test on reload

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def s_client(self, port, *args, stdin=REQUEST):
        # -ign_eof waits for the server to close after the request; without a request, quit at stdin's end.
        wait = ["-ign_eof"] if stdin else []
        return openssl("s_client", "-connect", f"127.0.0.1:{port}", *wait, *args, stdin=stdin).stdout.decode(
            "utf-8", "replace")

    def subject(self, port, servername=None):
        args = ["-servername", servername] if servername else ["-noservername"]
        out = self.s_client(port, *args)
        for line in out.splitlines():
            if line.startswith("subject="):
                return line.split("CN", 1)[1].strip(" =")
        self.fail(f"no certificate subject in s_client output:\n{out}")

    def test_curl_over_tls_1_2_and_1_3(self):
        d = self.daemon(tls_config([self.a, self.b]))
        for version in (["--tlsv1.2", "--tls-max", "1.2"], ["--tlsv1.3"]):
            r = run_curl("-v", "--cacert", self.a[0], "--resolve", f"a.test:{d.public}:127.0.0.1", *version,
                         f"https://a.test:{d.public}/hello")
            err = r.stderr.decode()
            self.assertEqual(r.returncode, 0, err)
            self.assertEqual(r.stdout, b"hi\n")
            self.assertIn("ALPN: server accepted http/1.1", err)
            self.assertIn("TLSv1.3" if version[0] == "--tlsv1.3" else "TLSv1.2", err)
        m = fetch_metrics(d.admin)
        self.assertGreaterEqual(metric_sum(m, "virex_tls_handshakes_total", listener="public", result="full"), 2)
        self.assertEqual(metric_sum(m, "virex_http_connections_by_protocol_total", listener="public",
                                    protocol="http1", tls="TLSv1.2"), 1)
        # Plain HTTP on the TLS port is a failed handshake, counted; the listener keeps serving.
        with socket.create_connection(("127.0.0.1", d.public), timeout=5) as s:
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
            s.recv(100)
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_tls_handshakes_total", result="failed") >= 1,
                   what="failed handshake counted")
        r = run_curl("--cacert", self.a[0], "--resolve", f"a.test:{d.public}:127.0.0.1", f"https://a.test:{d.public}/hello")
        self.assertEqual(r.stdout, b"hi\n", r.stderr)

    def test_sni_picks_the_certificate(self):
        d = self.daemon(tls_config([self.a, self.b]))
        self.assertEqual(self.subject(d.public, "a.test"), "a.test")
        self.assertEqual(self.subject(d.public, "b.test"), "b.test")
        self.assertEqual(self.subject(d.public, "B.Test"), "b.test", "host names are case-insensitive")
        self.assertEqual(self.subject(d.public, "www.b.test"), "b.test", "wildcard *.b.test")
        self.assertEqual(self.subject(d.public, "x.y.b.test"), "a.test", "a wildcard covers one label only")
        self.assertEqual(self.subject(d.public, "unknown.example"), "a.test", "no match: the first certificate")
        self.assertEqual(self.subject(d.public), "a.test", "no SNI: the first certificate")
        # curl verifies the chosen certificate against the name it asked for.
        r = run_curl("--cacert", self.b[0], "--resolve", f"www.b.test:{d.public}:127.0.0.1",
                     f"https://www.b.test:{d.public}/hello")
        self.assertEqual((r.returncode, r.stdout), (0, b"hi\n"), r.stderr)

    def test_alpn(self):
        d = self.daemon(tls_config([self.a]))
        out = self.s_client(d.public, "-alpn", "h2,http/1.1")
        self.assertIn("ALPN protocol: http/1.1", out)  # the default protocols leave h2 out
        out = self.s_client(d.public, "-alpn", "spdy/3")
        self.assertNotIn("HTTP/1.1 200", out, "no common protocol: the handshake fails (RFC 7301 no_application_protocol)")
        out = self.s_client(d.public)
        self.assertIn("No ALPN negotiated", out)
        self.assertIn("HTTP/1.1 200 OK", out, "a client without ALPN gets HTTP/1.1")

    def test_alpn_h2_when_listed(self):
        d = self.daemon(tls_config([self.a], protocols="protocols: [http1, h2], "))
        self.assertIn("ALPN protocol: h2", self.s_client(d.public, "-alpn", "h2,http/1.1", stdin=b""))
        self.assertIn("ALPN protocol: http/1.1", self.s_client(d.public, "-alpn", "http/1.1"))
        # h2 only: an HTTP/1.1-only client has no common protocol.
        d2 = self.daemon(tls_config([self.a], protocols="protocols: [h2], "))
        self.assertIn("ALPN protocol: h2", self.s_client(d2.public, "-alpn", "h2,http/1.1", stdin=b""))
        self.assertNotIn("ALPN protocol", self.s_client(d2.public, "-alpn", "http/1.1"))

    def test_session_resumption_by_ticket_and_by_cache(self):
        d = self.daemon(tls_config([self.a]))
        sess = os.path.join(self.dir, f"sess-{d.public}.pem")
        for version in ("-tls1_2", "-tls1_3"):
            for tickets in ([], ["-no_ticket"]):
                first = self.s_client(d.public, version, *tickets, "-sess_out", sess)
                self.assertIn("HTTP/1.1 200 OK", first)
                self.assertRegex(first, r"(?m)^New,")
                again = self.s_client(d.public, version, *tickets, "-sess_in", sess)
                self.assertRegex(again, r"(?m)^Reused,", f"{version} {tickets}: not resumed:\n{again}")
                self.assertIn("HTTP/1.1 200 OK", again)
        m = fetch_metrics(d.admin)
        self.assertEqual(metric_sum(m, "virex_tls_handshakes_total", listener="public", result="resumed"), 4)

    def test_tickets_off_still_resume_from_the_cache(self):
        d = self.daemon(tls_config([self.a], extra_tls=", session_tickets: false"))
        sess = os.path.join(self.dir, f"sess-{d.public}.pem")
        first = self.s_client(d.public, "-tls1_2", "-sess_out", sess)
        self.assertNotIn("TLS session ticket:", first, "no ticket issued")
        again = self.s_client(d.public, "-tls1_2", "-sess_in", sess)
        self.assertRegex(again, r"(?m)^Reused,")

    def test_min_version_1_3(self):
        d = self.daemon(tls_config([self.a], extra_tls=', min_version: "1.3"'))
        self.assertNotIn("HTTP/1.1 200", self.s_client(d.public, "-tls1_2"))
        self.assertIn("HTTP/1.1 200", self.s_client(d.public, "-tls1_3"))

    def test_ocsp_staple(self):
        ca_crt, ca_key = make_cert(self.dir, "ca", "DNS:ca")
        key = os.path.join(self.dir, "s.key")
        csr = os.path.join(self.dir, "s.csr")
        crt = os.path.join(self.dir, "s.crt")
        self.assertEqual(openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                                 "-subj", "/CN=s.test").returncode, 0)
        self.assertEqual(openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
                                 "-out", crt, "-days", "2").returncode, 0)
        serial = openssl("x509", "-in", crt, "-noout", "-serial").stdout.decode().strip().split("=")[1]
        index = os.path.join(self.dir, "index.txt")
        with open(index, "w") as f:
            f.write(f"V\t301231235959Z\t\t{serial}\tunknown\t/CN=s.test\n")
        req, resp = os.path.join(self.dir, "req.der"), os.path.join(self.dir, "resp.der")
        self.assertEqual(openssl("ocsp", "-issuer", ca_crt, "-cert", crt, "-reqout", req, "-no_nonce").returncode, 0)
        r = openssl("ocsp", "-index", index, "-rsigner", ca_crt, "-rkey", ca_key, "-CA", ca_crt, "-reqin", req,
                    "-respout", resp, "-ndays", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        d = self.daemon(tls_config([(crt, key)], extra_tls=f", ocsp_staple: {resp}"))
        out = self.s_client(d.public, "-status")
        self.assertIn("OCSP Response Status: successful", out)
        self.assertIn("Cert Status: good", out)
        # A file that is not an OCSP response is a config error naming it.
        bad = self.write(self.dir, "notocsp.der", b"garbage")
        cfg = self.write_config(tls_config([(crt, key)], extra_tls=f", ocsp_staple: {bad}"))
        r = run_edge("check-config", cfg)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"edge\.yaml:\d+:\d+: listeners\[0\]\.tls\.ocsp_staple: .*notocsp\.der: not a DER OCSP")

    def test_sighup_replaces_certificates_without_dropping_connections(self):
        d = self.daemon(tls_config([self.a]))
        ctx = ssl.create_default_context(cafile=self.a[0])
        raw = socket.create_connection(("127.0.0.1", d.public), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="a.test")
        self.addCleanup(s.close)
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertIn(b"200 OK", s.recv(4096))
        d.write_config(tls_config([self.c]))
        d.reload()
        # The open connection keeps its session and is still served.
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertIn(b"200 OK", s.recv(4096))
        # New connections get the new certificate.
        self.assertEqual(self.subject(d.public, "a.test"), "c.test")
        # A reload with a missing file is refused and the running certificates stay.
        d.write_config(tls_config([(os.path.join(self.dir, "missing.crt"), self.c[1])]))
        d.reload()
        wait_until(lambda: metric_sum(fetch_metrics(d.admin), "virex_config_reloads_total", result="failed") == 1,
                   what="failed reload counted")
        self.assertIn("missing.crt", d.stderr())
        self.assertEqual(self.subject(d.public, "a.test"), "c.test")

    # -- config errors --
    def write(self, directory, name, data):
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def write_config(self, text):
        directory = tempfile.mkdtemp(prefix="virex-tlscfg-")
        self.addCleanup(shutil.rmtree, directory, True)
        return self.write(directory, "edge.yaml", text.replace("$PUBLIC", "18443").replace("$ADMIN", "19901").encode())

    def test_config_errors_name_the_file(self):
        missing = os.path.join(self.dir, "nope.crt")
        cfg = self.write_config(tls_config([(missing, self.a[1])]))
        r = run_edge("check-config", cfg)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"edge\.yaml:3:\d+: listeners\[0\]\.tls\.certificates\[0\]\.cert: cannot read "
                                   r".*nope\.crt: No such file")
        # A key that belongs to another certificate.
        cfg = self.write_config(tls_config([self.a, (self.b[0], self.a[1])]))
        r = run_edge("check-config", cfg)
        self.assertRegex(r.stderr, r"listeners\[0\]\.tls\.certificates\[1\]\.key: .*a\.test\.key: does not match the "
                                   r"certificate in .*b\.test\.crt")
        # Not PEM at all.
        junk = self.write(self.dir, "junk.crt", b"not a certificate\n")
        cfg = self.write_config(tls_config([(junk, self.a[1])]))
        r = run_edge("check-config", cfg)
        self.assertRegex(r.stderr, r"certificates\[0\]\.cert: .*junk\.crt: no PEM certificate in it")
        cfg = self.write_config(tls_config([(self.a[0], junk)]))
        r = run_edge("check-config", cfg)
        self.assertRegex(r.stderr, r"certificates\[0\]\.key: .*junk\.crt: no unencrypted PEM private key in it")
        # Shapes: no certificates, bad version, h2c with tls, h2 without tls.
        for tls, why in (("{certificates: []}", r"tls\.certificates: at least one certificate is required"),
                         ("{min_version: '1.2'}", r"tls\.certificates: is required"),
                         (f"{{certificates: [{{cert: {self.a[0]}}}]}}", r"certificates\[0\]\.key: is required"),
                         (f"{{certificates: [{{cert: {self.a[0]}, key: {self.a[1]}}}], min_version: '1.1'}}",
                          r"tls\.min_version: expected one of: 1\.2, 1\.3")):
            cfg = self.write_config(f"""listeners:
  - {{name: p, address: "127.0.0.1:1", tls: {tls}}}
routes: [{{match: {{prefix: /}}, respond: {{body: x}}}}]
""")
            r = run_edge("check-config", cfg)
            self.assertEqual(r.returncode, 1, tls)
            self.assertRegex(r.stderr, why)
        cfg = self.write_config(tls_config([self.a], protocols="protocols: [http1, h2c], "))
        self.assertRegex(run_edge("check-config", cfg).stderr, r"protocols: h2c is cleartext HTTP/2")
        cfg = self.write_config("""listeners:
  - {name: p, address: "127.0.0.1:1", protocols: [http1, h2]}
routes: [{match: {prefix: /}, respond: {body: x}}]
""")
        self.assertRegex(run_edge("check-config", cfg).stderr, r"protocols: h2 is HTTP/2 over TLS and needs tls:")


if __name__ == "__main__":
    unittest.main()
