# The reverse proxy in front of a real nginx origin (Debian nginx-light, /usr/sbin/nginx) started by the test
# in a temp prefix on a free port (`daemon off; master_process off;`, works as root or not): a static file, a
# 404, HEAD and a conditional 304 are relayed, and nginx's access log ($connection, $connection_requests)
# shows that the proxy's requests share kept-alive upstream connections. A missing nginx fails, never skips.
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

from harness import DaemonTestCase, basic_config, build_request, free_port, wait_until

NODE = "t"                 # node.name in harness.basic_config
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/bin/nginx")
INDEX = b"<!doctype html><title>virex</title><p>hello from nginx</p>\n"
BLOB = os.urandom(1024 * 1024 + 17)


def nginx_bin():
    path = shutil.which("nginx") or next((p for p in NGINX_CANDIDATES if os.access(p, os.X_OK)), None)
    if not path:
        raise AssertionError("nginx is not installed (apt-get install nginx-light; scripts/deps.sh test)")
    return path


class Nginx:
    """nginx in the foreground, one process, everything (pid, logs, temp paths) under a temp prefix."""

    LOG_FORMAT = "$connection $connection_requests $request_method $request_uri $status \"$http_via\" " \
                 "\"$http_x_forwarded_for\""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="virex-nginx-")
        self.port = free_port()
        self.www = os.path.join(self.dir, "www")
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        os.makedirs(self.www)
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.dir, sub))
        conf = f"""daemon off;
master_process off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.error_log} info;
events {{ worker_connections 256; }}
http {{
    log_format conn '{self.LOG_FORMAT}';
    access_log {self.access_log} conn;
    client_body_temp_path {self.dir}/client_body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    types {{ text/html html; application/octet-stream bin; }}
    keepalive_timeout 60s;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.www};
        location / {{ }}
    }}
}}
"""
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.proc = None

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen([nginx_bin(), "-p", self.dir, "-c", self.conf, "-e", self.error_log],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited with {self.proc.returncode}: "
                                     f"{self.proc.stderr.read().decode(errors='replace')}\n{self.errors()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(up, 10, interval=0.05, what="nginx to listen")
        return self

    def errors(self):
        try:
            with open(self.error_log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log(self):
        """Access log lines as dicts: connection, requests (on that connection), method, uri, status, via, xff."""
        try:
            with open(self.access_log) as f:
                lines = [ln.rstrip("\n") for ln in f if ln.strip()]
        except FileNotFoundError:
            return []
        out = []
        for ln in lines:
            parts = ln.split('"')           # head "via" "xff"
            head, via, xff = parts[0], parts[1], parts[3]
            conn, nreq, method, uri, status = head.split()[:5]
            out.append({"connection": int(conn), "requests": int(nreq), "method": method, "uri": uri,
                        "status": int(status), "via": via, "xff": xff})
        return out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def config(endpoint, workers=1):
    routes = """  - name: site
    match: {prefix: /site/}
    upstream: nginx
    rewrite: {strip_prefix: /site}
"""
    return (basic_config(routes, workers=workers) +
            'proxy: {trusted_proxies: ["127.0.0.2/32"], via: true}\n'
            "upstreams:\n"
            "  nginx:\n"
            f'    endpoints: ["{endpoint}"]\n'
            "    retries: {attempts: 0}\n")


class NginxOriginTest(DaemonTestCase):
    def setUp(self):
        self.nginx = Nginx()
        with open(os.path.join(self.nginx.www, "index.html"), "wb") as f:
            f.write(INDEX)
        with open(os.path.join(self.nginx.www, "blob.bin"), "wb") as f:
            f.write(BLOB)
        self.nginx.start()
        self.addCleanup(self.nginx.stop)
        self.d = self.daemon(config(self.nginx.endpoint))

    def wait_log(self, n):
        return wait_until(lambda: (lambda log: log if len(log) >= n else None)(self.nginx.log()), 10,
                          what=f"{n} lines in nginx's access log")

    def test_static_file_404_and_keepalive_reuse(self):
        c = self.conn(self.d.public)
        r = c.request("GET", "/site/index.html")
        self.assertEqual((r.status, r.body), (200, INDEX), r.describe())
        self.assertEqual(r.header("Content-Type"), "text/html")
        self.assertIsNotNone(r.header("ETag"))
        self.assertIn(f"1.1 {NODE}", r.header("Via") or "", r.describe())
        r = c.request("GET", "/site/missing.html")
        self.assertEqual(r.status, 404, r.describe())
        self.assertIn(b"404", r.body)
        for i in range(48):
            path = "/site/blob.bin" if i % 4 == 0 else f"/site/index.html?i={i}"
            r = c.request("GET", path)
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(hashlib.sha256(r.body).digest(),
                             hashlib.sha256(BLOB if i % 4 == 0 else INDEX).digest(), path)
        log = self.wait_log(50)
        self.assertEqual([e["uri"] for e in log[:2]], ["/index.html", "/missing.html"], "prefix stripped")
        self.assertEqual([e["status"] for e in log[:2]], [200, 404])
        connections = {e["connection"] for e in log}
        self.assertLessEqual(len(connections), 2, f"50 proxied requests used nginx connections {connections}")
        self.assertGreaterEqual(max(e["requests"] for e in log), 25, "requests share kept-alive connections")
        self.assertTrue(all(f"1.1 {NODE}" in e["via"] for e in log), log[:3])
        self.assertTrue(all(e["xff"] == "127.0.0.1" for e in log), log[:3])

    def test_head_and_conditional_get(self):
        c = self.conn(self.d.public)
        r = c.request("GET", "/site/index.html")
        etag = r.header("ETag")
        self.assertEqual(r.status, 200, r.describe())
        r = c.request("HEAD", "/site/blob.bin")
        self.assertEqual((r.status, r.header("Content-Length"), r.body), (200, str(len(BLOB)), b""), r.describe())
        r = c.request("GET", "/site/index.html", headers=[("If-None-Match", etag)])
        self.assertEqual((r.status, r.body), (304, b""), r.describe())
        # pipelined after the bodiless responses: the client connection is still in sync
        c.send(build_request("HEAD", "/site/index.html") + build_request("GET", "/site/index.html"))
        self.assertEqual(c.read_response("HEAD").status, 200)
        r = c.read_response("GET")
        self.assertEqual((r.status, r.body), (200, INDEX), r.describe())
        log = self.wait_log(5)
        self.assertEqual([e["method"] for e in log], ["GET", "HEAD", "GET", "HEAD", "GET"])
        self.assertEqual(log[2]["status"], 304)
        self.assertLessEqual(len({e["connection"] for e in log}), 2)


if __name__ == "__main__":
    unittest.main()
