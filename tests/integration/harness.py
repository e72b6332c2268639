# Integration-test harness for virex-edge: starts the real binary from $VIREX_EDGE_BIN with inline YAML in a
# temp dir on free ports, synchronises on sd_notify messages (READY=1 / RELOADING=1 / STOPPING=1) received on
# a unix datagram socket it owns, and offers raw-socket HTTP/1.1 helpers, a curl/wrk runner and a Prometheus
# text parser. Stdlib only (Debian's /usr/bin/python3). Used from the unittest main thread; the raw-socket
# helpers may be used from load threads (one Conn per thread). No sleeps as synchronisation: every wait has a
# deadline and fails the test with the daemon's stderr when it passes.
import json
import os
import re
import select
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

DEFAULT_TIMEOUT = 10.0      # seconds; generous because the ASan build is slower
START_TIMEOUT = 20.0


# --------------------------------------------------------------------------------------------- processes ---

def edge_bin():
    """Path of the daemon under test; a missing or non-executable binary fails the test (never a skip)."""
    path = os.environ.get("VIREX_EDGE_BIN")
    if not path:
        raise AssertionError("VIREX_EDGE_BIN is not set (ctest sets it; run with VIREX_EDGE_BIN=... by hand)")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise AssertionError(f"VIREX_EDGE_BIN={path} is not an executable file")
    return path


def require_tool(name):
    """Absolute path of an external tool; a missing tool is a test FAILURE, never a skip."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if not path:
        raise AssertionError(f"required tool '{name}' is not installed (apt-get install {name})")
    return path


def child_env(extra=None):
    env = dict(os.environ)
    # ASan/UBSan: report everything, keep the default non-zero exit code on a finding.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:strict_string_checks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.pop("NOTIFY_SOCKET", None)
    if extra:
        env.update(extra)
    return env


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ERROR: ThreadSanitizer", "WARNING: ThreadSanitizer")


def sanitizer_findings(text):
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKERS)]


def run_edge(*args, timeout=DEFAULT_TIMEOUT, env=None):
    """Runs `virex-edge ARGS...` to completion; returns CompletedProcess with text stdout/stderr."""
    return subprocess.run([edge_bin(), *args], capture_output=True, text=True, timeout=timeout,
                          env=child_env(env), stdin=subprocess.DEVNULL)


_HANDED_OUT = set()


def free_port():
    """A TCP port that was free a moment ago on 127.0.0.1 (bind to port 0, read it, close) and that this process
    has not handed out before: two binds in a row may get the same port from the kernel, and a daemon's public and
    admin listeners must differ."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise AssertionError("no fresh free port in 1000 tries")


class NotifyListener:
    """The receiving end of NOTIFY_SOCKET: a unix datagram socket bound to a path (or an abstract name)."""

    def __init__(self, directory, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"virex-edge-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            path = os.path.join(directory, "notify.sock")
            if len(path) >= 100:           # sun_path limit
                path = os.path.join(tempfile.mkdtemp(prefix="vxn"), "n.sock")
            self.sock.bind(path)
            self.address = path
        self.sock.setblocking(False)
        self.messages = []                 # every datagram received, decoded, in order
        self.cursor = 0                    # messages before it were consumed by wait()

    def _drain(self, timeout):
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            self.messages.append(data.decode("utf-8", "replace"))

    def wait(self, want, deadline, alive):
        """Waits for a datagram holding the line `want` (e.g. "READY=1") after the cursor; returns it.
        `alive()` is polled so a dead daemon fails fast. Raises AssertionError at the deadline."""
        while True:
            while self.cursor < len(self.messages):
                msg = self.messages[self.cursor]
                self.cursor += 1
                if want in msg.split("\n"):
                    return msg
            now = time.monotonic()
            if now >= deadline:
                raise AssertionError(f"timed out waiting for {want!r}; notifications so far: {self.messages!r}")
            if not alive():
                self._drain(0.05)           # a last message may be in flight
                if self.cursor < len(self.messages):
                    continue
                raise AssertionError(f"daemon exited while waiting for {want!r}; "
                                     f"notifications so far: {self.messages!r}")
            self._drain(min(0.1, deadline - now))

    def close(self):
        self.sock.close()
        if not self.address.startswith("@"):
            try:
                os.unlink(self.address)
            except FileNotFoundError:
                pass


class Daemon:
    """Runs virex-edge on a YAML config written to a temp dir.

    The YAML is a string.Template: $PUBLIC and $ADMIN are replaced by free ports (attributes .public/.admin),
    $DIR by the temp dir, and any extra keyword by its value. Use as a context manager or call start()/stop().
    """

    def __init__(self, yaml_template, argv_style="run", notify_abstract=False, env=None, argv_prefix=None, **subs):
        self.dir = tempfile.mkdtemp(prefix="virex-it-")
        self.public = free_port()
        self.admin = free_port()
        self.subs = dict(subs)
        self.config_path = os.path.join(self.dir, "edge.yaml")
        self.write_config(yaml_template)
        self.argv_style = argv_style
        self.argv_prefix = list(argv_prefix or [])   # e.g. systemd-socket-activate -l ADDR (execs the daemon)
        self.notify_abstract = notify_abstract
        self.extra_env = env or {}
        self.proc = None
        self.notify = None
        self.returncode = None
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")

    # -- config --
    def render(self, yaml_template, **more):
        subs = {"PUBLIC": self.public, "ADMIN": self.admin, "DIR": self.dir, **self.subs, **more}
        return string.Template(yaml_template).substitute(subs)

    def write_config(self, yaml_template, **more):
        """(Re)writes the config file atomically (a reload must never see half a file)."""
        text = self.render(yaml_template, **more)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        return text

    # -- lifecycle --
    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=START_TIMEOUT, wait_ready=True):
        self.notify = NotifyListener(self.dir, abstract=self.notify_abstract)
        if self.argv_style == "run":
            argv = [edge_bin(), "run", "--config", self.config_path]
        else:
            argv = [edge_bin(), "--config", self.config_path]
        argv = self.argv_prefix + argv
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
                                     env=child_env({"NOTIFY_SOCKET": self.notify.address, **self.extra_env}),
                                     cwd=self.dir)
        if not wait_ready:
            return self
        try:
            self.wait_notify("READY=1", timeout)
        except AssertionError as e:
            self.kill()
            raise AssertionError(f"virex-edge did not become ready: {e}\n--- stderr ---\n{self.stderr()}")
        return self

    def wait_notify(self, want, timeout=DEFAULT_TIMEOUT):
        return self.notify.wait(want, time.monotonic() + timeout, self.alive)

    def send_signal(self, sig):
        assert self.alive(), f"daemon not running (exit {self.proc.poll()}); stderr:\n{self.stderr()}"
        os.kill(self.proc.pid, sig)

    def reload(self, timeout=DEFAULT_TIMEOUT):
        """SIGHUP, then waits for RELOADING=1 and the READY=1 that follows it."""
        self.send_signal(signal.SIGHUP)
        self.wait_notify("RELOADING=1", timeout)
        self.wait_notify("READY=1", timeout)

    def wait_exit(self, timeout=DEFAULT_TIMEOUT):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"daemon did not exit within {timeout}s; stderr:\n{self.stderr()}")
        return self.returncode

    def stop(self, timeout=15.0, sig=signal.SIGTERM):
        """SIGTERM (or SIGINT), waits for STOPPING=1 and the exit; asserts exit code 0 and no sanitizer
        report. Returns the seconds from the signal to the exit."""
        if self.proc is None:
            return 0.0
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon already exited with {self.proc.returncode}; stderr:\n{self.stderr()}")
        t0 = time.monotonic()
        self.send_signal(sig)
        self.wait_notify("STOPPING=1", timeout)
        rc = self.wait_exit(timeout)
        elapsed = time.monotonic() - t0
        self._close_files()
        if rc != 0:
            raise AssertionError(f"daemon exited with {rc} after {sig!r} (want 0); stderr:\n{self.stderr()}")
        self.assert_no_sanitizer_findings()
        return elapsed

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._close_files()

    def _close_files(self):
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f and not f.closed:
                f.close()
        if self.notify:
            self.notify.close()

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stdout(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def assert_no_sanitizer_findings(self):
        found = sanitizer_findings(self.stderr())
        if found:
            raise AssertionError("sanitizer findings in daemon stderr:\n" + self.stderr())

    def dump(self, why="test failed"):
        sys.stderr.write(f"\n===== virex-edge stderr ({why}; dir {self.dir}) =====\n{self.stderr()}"
                         f"===== end of virex-edge stderr =====\n")

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.dump()
            self.kill()
            return False
        try:
            self.stop()
        except AssertionError:
            self.dump("stop failed")
            self.kill()
            raise
        return False

    # -- convenience --
    def metrics(self):
        return fetch_metrics(self.admin)


class DaemonTestCase(unittest.TestCase):
    """Base class: self.daemon(yaml) starts one per test; the cleanup stops it (asserting exit 0 and no
    sanitizer report) and dumps its stderr when the test failed."""

    def daemon(self, yaml_template, start=True, **kw):
        d = Daemon(yaml_template, **kw)
        self.addCleanup(self._finish_daemon, d)
        if start:
            d.start()
        return d

    def _test_failed(self):
        # A cleanup runs in its own test part (outcome.success is reset), so look at what the result recorded.
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None or not hasattr(result, "failures"):
            return True                    # unknown runner: dump rather than hide
        recorded = list(result.failures) + list(result.errors)
        return any(getattr(t, "test_case", t) is self for t, _ in recorded)

    def _finish_daemon(self, d):
        failed = self._test_failed()
        if d.proc is None:
            return
        if failed:
            d.dump()
            d.kill()
            return
        if d.proc.poll() is not None:          # the test already stopped it and checked the exit code
            d._close_files()
            findings = sanitizer_findings(d.stderr())
            if findings:
                d.dump("sanitizer findings")
                raise AssertionError("sanitizer findings in daemon stderr: " + "; ".join(findings))
            shutil.rmtree(d.dir, ignore_errors=True)
            return
        try:
            d.stop()
        except AssertionError:
            d.dump("stop failed")
            d.kill()
            raise
        shutil.rmtree(d.dir, ignore_errors=True)      # kept on failure for inspection

    def conn(self, port, timeout=DEFAULT_TIMEOUT):
        c = Conn(port, timeout=timeout)
        self.addCleanup(c.close)
        return c


# ------------------------------------------------------------------------------------------ raw HTTP/1.1 ---

class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value), order kept
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        vals = self.header_all(name)
        return ", ".join(vals) if vals else default

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def has_token(self, name, token):
        """True when a comma-separated header (Connection, Allow, ...) holds `token` (case-insensitive)."""
        toks = [t.strip().lower() for v in self.header_all(name) for t in v.split(",")]
        return token.lower() in toks

    def __repr__(self):
        return f"<Response {self.status} {self.reason!r} headers={self.headers!r} body={self.body[:200]!r}>"

    def describe(self):
        return (self.raw_head + self.body[:512]).decode("latin-1")


class ConnectionClosed(Exception):
    pass


class Conn:
    """One client TCP connection with a read buffer: send bytes, read whole responses in order (pipelining),
    read until the server closes. Every read has a deadline."""

    def __init__(self, port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT, source=None):
        """SOURCE: a local address to bind before connecting (e.g. "127.0.0.2" to appear as another peer)."""
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False
        self.reset = False
        self.sent = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sent += data
        self.sock.sendall(data)

    def _recv(self, deadline):
        """Reads more bytes into buf; returns False on EOF/reset. Raises AssertionError at the deadline."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out reading from server; have {self.buf[:300]!r}")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"timed out reading from server; have {self.buf[:300]!r}")
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _take_line(self, deadline):
        while b"\r\n" not in self.buf:
            if not self._recv(deadline):
                raise ConnectionClosed(f"connection closed mid-line; have {self.buf[:300]!r}")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _take(self, n, deadline):
        while len(self.buf) < n:
            if not self._recv(deadline):
                raise ConnectionClosed(f"connection closed after {len(self.buf)} of {n} body bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_exact(self, n, timeout=None):
        """Exactly N bytes (buffered first); ConnectionClosed if the server closes before."""
        return self._take(n, time.monotonic() + (timeout or self.timeout))

    def read_head(self, method="GET", timeout=None):
        """Reads one response head only (body empty); the body stays on the connection for iter_body().
        Raises ConnectionClosed when the server closes before a whole head."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            if not self._recv(deadline):
                if not self.buf:
                    raise ConnectionClosed("connection closed with no response" + (" (reset)" if self.reset else ""))
                raise ConnectionClosed(f"connection closed mid-head; have {self.buf[:300]!r}")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        raw_head = head + b"\r\n\r\n"
        lines = head.split(b"\r\n")
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise AssertionError(f"bad status line {lines[0]!r}")
        version, status, reason = m.group(1).decode(), int(m.group(2)), (m.group(3) or b"").decode("latin-1")
        headers = []
        for ln in lines[1:]:
            name, sep, value = ln.partition(b":")
            if not sep:
                raise AssertionError(f"bad header line {ln!r} in {raw_head!r}")
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        return Response(version, status, reason, headers, b"", raw_head)

    def iter_body(self, resp, method="GET", timeout=None):
        """Yields the body of RESP (from read_head) piece by piece as it arrives, holding at most one read in
        memory (for bodies too large to keep). TIMEOUT bounds each read, not the whole body. Raises
        ConnectionClosed when the server closes before the framing says the body is complete."""
        if 100 <= resp.status < 200 or resp.status in (204, 304) or method.upper() == "HEAD":
            return

        def more():
            if not self._recv(time.monotonic() + (timeout or self.timeout)):
                raise ConnectionClosed("connection closed mid-body")

        def pieces(n):                      # N bytes, as they arrive
            while n > 0:
                if not self.buf:
                    more()
                out, self.buf = self.buf[:n], self.buf[n:]
                n -= len(out)
                yield out

        def line():
            while b"\r\n" not in self.buf:
                more()
            ln, _, self.buf = self.buf.partition(b"\r\n")
            return ln

        te = resp.header("Transfer-Encoding")
        if te and "chunked" in te.lower():
            while True:
                size = int(line().split(b";")[0].strip(), 16)
                if size == 0:
                    while line():              # trailers up to the empty line
                        pass
                    return
                yield from pieces(size)
                if b"".join(pieces(2)) != b"\r\n":
                    raise AssertionError("chunk not followed by CRLF")
        elif resp.header("Content-Length") is not None:
            yield from pieces(int(resp.header("Content-Length")))
        else:
            while True:
                if self.buf:
                    out, self.buf = self.buf, b""
                    yield out
                if not self._recv(time.monotonic() + (timeout or self.timeout)):
                    return

    def read_response(self, method="GET", timeout=None):
        """Reads one response (an interim 1xx is returned as such; call again for the final one).
        The body is framed by Content-Length, chunked coding, or the close of the connection.
        Raises ConnectionClosed when the server closes before a whole response."""
        deadline = time.monotonic() + (timeout or self.timeout)
        resp = self.read_head(method, timeout)
        status = resp.status
        if 100 <= status < 200 or status in (204, 304) or method.upper() == "HEAD":
            return resp
        te = resp.header("Transfer-Encoding")
        if te and "chunked" in te.lower():
            body = b""
            while True:
                size_line = self._take_line(deadline)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self._take_line(deadline):     # trailers up to the empty line
                        pass
                    break
                body += self._take(size, deadline)
                if self._take(2, deadline) != b"\r\n":
                    raise AssertionError("chunk not followed by CRLF")
            resp.body = body
        elif resp.header("Content-Length") is not None:
            resp.body = self._take(int(resp.header("Content-Length")), deadline)
        else:
            while self._recv(deadline):
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def read_until_close(self, timeout=None):
        """Returns every byte received until the server closes (EOF or reset); AssertionError at the
        deadline if the server keeps the connection open."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._recv(deadline):
            pass
        out, self.buf = self.buf, b""
        return out

    def request(self, method, target, headers=None, body=None, version="HTTP/1.1", host="localhost"):
        """Sends one request and returns its (final) response."""
        self.send(build_request(method, target, headers, body, version, host))
        resp = self.read_response(method)
        while 100 <= resp.status < 200:
            resp = self.read_response(method)
        return resp


def build_request(method, target, headers=None, body=None, version="HTTP/1.1", host="localhost"):
    lines = [f"{method} {target} {version}"]
    hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if host is not None and not any(k.lower() == "host" for k, _ in hdrs):
        lines.append(f"Host: {host}")
    if body is not None and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hdrs):
        hdrs.append(("Content-Length", str(len(body))))
    lines += [f"{k}: {v}" for k, v in hdrs]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is not None:
        raw += body if isinstance(body, bytes) else body.encode("latin-1")
    return raw


def http_request(port, method, target, headers=None, body=None, host="localhost", timeout=DEFAULT_TIMEOUT):
    """One request on a fresh connection (closed afterwards by the client)."""
    c = Conn(port, timeout=timeout)
    try:
        return c.request(method, target, headers, body, host=host)
    finally:
        c.close()


def http_get(port, target, host="localhost", headers=None, timeout=DEFAULT_TIMEOUT):
    return http_request(port, "GET", target, headers=headers, host=host, timeout=timeout)


def assert_refused(port, timeout=2.0):
    """Asserts that nothing accepts on 127.0.0.1:port."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return
    s.close()
    raise AssertionError(f"127.0.0.1:{port} still accepts connections")


def wait_until(predicate, timeout=DEFAULT_TIMEOUT, interval=0.02, what="condition"):
    """Bounded wait for something with no notification of its own (e.g. a gauge falling back, a file
    appearing). Returns the predicate's last truthy value; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ----------------------------------------------------------------------------------------- curl and wrk ---

def run_curl(*args, timeout=DEFAULT_TIMEOUT):
    """Runs curl with -sS plus ARGS; returns CompletedProcess (text). Missing curl fails the test."""
    return subprocess.run([require_tool("curl"), "-sS", "--max-time", str(int(timeout)), *args],
                          capture_output=True, timeout=timeout + 5, stdin=subprocess.DEVNULL)


def run_wrk(url, threads=1, conns=16, secs=2, extra=(), timeout=None):
    """Runs wrk and returns (parsed dict, raw output). Missing wrk fails the test."""
    cp = subprocess.run([require_tool("wrk"), f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency",
                         *extra, url], capture_output=True, text=True, timeout=timeout or secs + 30,
                        stdin=subprocess.DEVNULL)
    out = cp.stdout + cp.stderr
    if cp.returncode != 0:
        raise AssertionError(f"wrk exited {cp.returncode}:\n{out}")
    return parse_wrk(out), out


def parse_wrk(out):
    r = {"requests": None, "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0},
         "non2xx": 0, "rps": None}
    m = re.search(r"(\d+) requests in ", out)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    return r


# ---------------------------------------------------------------------------------------------- metrics ---

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def _unescape(v):
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "\\": "\\", '"': '"'}.get(m.group(1), m.group(0)), v)


def parse_metrics(text):
    """Prometheus text format → list of (name, {label: value}, float). Raises on a malformed line."""
    samples = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise AssertionError(f"malformed metrics line: {line!r}")
        name, _, labels_text, value = m.group(1), m.group(2), m.group(3), m.group(4)
        labels = {}
        if labels_text:
            pos = 0
            while pos < len(labels_text):
                lm = _LABEL.match(labels_text, pos)
                if not lm:
                    raise AssertionError(f"malformed labels in metrics line: {line!r}")
                labels[lm.group(1)] = _unescape(lm.group(2))
                pos = lm.end()
        samples.append((name, labels, float(value)))
    return samples


def metric_sum(samples_or_text, name, **labels):
    """Sum of every series of `name` whose labels include LABELS (0 when none)."""
    samples = parse_metrics(samples_or_text) if isinstance(samples_or_text, str) else samples_or_text
    return sum(v for n, ls, v in samples if n == name and all(ls.get(k) == str(w) for k, w in labels.items()))


def metric_series(samples_or_text, name):
    samples = parse_metrics(samples_or_text) if isinstance(samples_or_text, str) else samples_or_text
    return [(ls, v) for n, ls, v in samples if n == name]


def fetch_metrics_text(admin_port):
    r = http_get(admin_port, "/metrics")
    if r.status != 200:
        raise AssertionError(f"GET /metrics on the admin listener: {r.describe()}")
    return r.body.decode("utf-8")


def fetch_metrics(admin_port):
    return parse_metrics(fetch_metrics_text(admin_port))


def wait_metric(admin_port, name, expected, timeout=5.0, **labels):
    """Counters are bumped once the response is written, possibly just after the client saw it: wait (bounded)
    until the sum reaches `expected`, then return the value so the caller can assert equality."""
    deadline = time.monotonic() + timeout
    while True:
        v = metric_sum(fetch_metrics(admin_port), name, **labels)
        if v >= expected or time.monotonic() >= deadline:
            return v
        time.sleep(0.02)


# -------------------------------------------------------------------------------------------- load loop ---

class LoadLoop:
    """Background keep-alive request loops (one thread per connection) recording every request with its
    timings, for reload/drain tests. A connection closed by the server is replaced by a new one."""

    def __init__(self, port, target="/hello", conns=4, host="localhost"):
        self.port, self.target, self.conns, self.host = port, target, conns, host
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.records = []      # dicts: sent_at, done_at, status, body, error, conn_reused
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(conns)]
        self.counter_started = threading.Event()

    def start(self, min_requests=20, timeout=DEFAULT_TIMEOUT):
        for t in self.threads:
            t.start()
        wait_until(lambda: len(self.records) >= min_requests, timeout, what=f"{min_requests} load requests")
        return self

    def _record(self, **kw):
        with self.lock:
            self.records.append(kw)

    def _run(self):
        req = build_request("GET", self.target, host=self.host)
        c = None
        while not self.stop_flag.is_set():
            reused = c is not None
            try:
                if c is None:
                    c = Conn(self.port, timeout=DEFAULT_TIMEOUT)
            except OSError as e:
                self._record(sent_at=None, done_at=time.monotonic(), status=None, body=None,
                             error=f"connect: {e!r}", conn_reused=False)
                c = None
                if self.stop_flag.wait(0.01):
                    break
                continue
            sent_at = None
            try:
                # The time before the write: taken after it, a thread switch in between could date a request
                # sent before some event (a reload's READY=1) after it.
                t0 = time.monotonic()
                c.send(req)
                sent_at = t0
                r = c.read_response("GET")
                self._record(sent_at=sent_at, done_at=time.monotonic(), status=r.status, body=r.body,
                             error=None, conn_reused=reused)
                if r.has_token("Connection", "close"):
                    c.read_until_close(5)
                    c.close()
                    c = None
            except (OSError, ConnectionClosed, AssertionError) as e:
                self._record(sent_at=sent_at, done_at=time.monotonic(), status=None, body=None,
                             error=repr(e), conn_reused=reused)
                c.close()
                c = None
        if c is not None:
            c.close()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(DEFAULT_TIMEOUT + 5)
        return list(self.records)


# ----------------------------------------------------------------------------------------------- configs ---

BASE_LIMITS = ("{max_header_bytes: 16KiB, max_uri_bytes: 8KiB, max_body_bytes: 1MiB, header_timeout: 10s, "
               "idle_timeout: 60s, drain_timeout: 10s}")


def basic_config(routes_yaml, workers=2, limits=BASE_LIMITS, access_log=None, extra_listeners=""):
    """A config with the `public` and `admin` listeners on $PUBLIC/$ADMIN and the given routes section."""
    obs = (f"observability: {{access_log: {{path: {access_log[0]}, format: {access_log[1]}}}, log_level: info}}"
           if access_log else "observability: {log_level: info}")
    return f"""node: {{name: t, region: r, workers: {workers}}}
limits: {limits}
listeners:
  - {{name: public, address: "127.0.0.1:$PUBLIC"}}
  - {{name: admin, address: "127.0.0.1:$ADMIN", admin: true}}
{extra_listeners}routes:
{routes_yaml}
{obs}
"""


HELLO_ROUTE = """  - name: hello
    match: {host: "*", path: /hello, method: [GET, HEAD]}
    respond: {status: 200, headers: {Content-Type: text/plain}, body: "hi\\n"}
"""


def json_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
