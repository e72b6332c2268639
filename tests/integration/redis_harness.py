"""A real redis-server for integration tests: started on a free loopback port in a temp dir (redis refuses port 0,
so a port found free is tried and, if another process takes it first, another one — bounded), readiness polled
with PING under a deadline (no sleeps), stopped (or killed, to simulate an outage) and restarted on the same port.
A tiny RESP2 client (stdlib sockets) talks to it. Stdlib only (Debian's /usr/bin/python3)."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import free_port, require_tool

READY_TIMEOUT = 10.0
START_ATTEMPTS = 5


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class RedisError(Exception):
    pass


class Resp:
    """One blocking RESP2 connection (bounded by `timeout` per operation)."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RedisError(f"bad reply line {line!r}")

    def __call__(self, *args):
        self.sock.sendall(encode(*args))
        return self.read()

    def close(self):
        self.sock.close()


class RedisServer:
    """redis-server on 127.0.0.1:<free port>, no persistence, data in a temp dir. Context manager."""

    def __init__(self, extra_args=()):
        self.bin = require_tool("redis-server")
        self.dir = tempfile.mkdtemp(prefix="virex-redis-")
        self.port = None
        self.proc = None
        self.extra_args = list(extra_args)
        self.log_path = os.path.join(self.dir, "redis.log")

    def _spawn(self, port):
        args = [self.bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.dir, "--logfile", self.log_path, "--daemonize", "no", *self.extra_args]
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _wait_ready(self, proc, port, deadline):
        """True once PING answers; False if the process exited (e.g. the port was taken)."""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                c = Resp(port, timeout=1.0)
                try:
                    if c("PING") == "PONG":
                        return True
                finally:
                    c.close()
            except (OSError, RedisError):
                pass
            time.sleep(0.01)   # a poll interval, not synchronisation: readiness is the PING above
        raise AssertionError(f"redis-server on port {port} not ready within {READY_TIMEOUT}s: {self.log()}")

    def start(self, port=None):
        """Starts on `port` (a restart) or on a free one; returns self."""
        attempts = 1 if port else START_ATTEMPTS
        for _ in range(attempts):
            p = port or free_port()
            proc = self._spawn(p)
            if self._wait_ready(proc, p, time.monotonic() + READY_TIMEOUT):
                self.proc, self.port = proc, p
                return self
            proc.wait(timeout=5)
        raise AssertionError(f"redis-server could not start: {self.log()}")

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-4000:]
        except OSError:
            return "(no log)"

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def client(self):
        return Resp(self.port)

    def __call__(self, *args):
        """One command on a fresh connection."""
        c = self.client()
        try:
            return c(*args)
        finally:
            c.close()

    def kill(self):
        """SIGKILL (an outage, not a shutdown); waits for the process to be gone."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def restart(self):
        """Back on the same port after kill() (the data is gone: no persistence)."""
        self.kill()
        return self.start(self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
