# Scriptable HTTP/1.1 origin server for the reverse-proxy integration tests: plain sockets and one thread per
# connection (not http.server), so keep-alive, framing and misbehaviour are exactly what the test asks for.
# It counts accepted TCP connections, logs every request it sees, and answers each (method, path) with a
# programmable behaviour. Created and driven from the unittest main thread; its own threads only serve sockets.
# Stdlib only (Debian's /usr/bin/python3).
"""
API summary
-----------
    o = Origin("a").start()          # listens on 127.0.0.1, a free port; o.port, o.endpoint == "127.0.0.1:PORT"
    self.addCleanup(o.close)
    o.route("/path", Reply(...))     # exact path (query ignored); prefix=True for a prefix; method="POST" to
                                     # restrict; the route added last wins. o.default answers everything else
                                     # (Reply(): 200, body "<name>\n", X-Origin: <name>)
    o.set_health(500)                # GET o.health_path ("/health") answers this status (200 at start)
    o.stop(); o.start()              # "down" (listener and every open connection closed) / up on the same port

    o.requests(path=None, method=None)   # [Request] seen so far, health checks excluded (o.health_checks())
    o.connections_accepted               # accepted TCP connections; o.connections = [ConnInfo]
    o.in_flight                          # requests inside their behaviour right now (e.g. held by a gate)
    o.wait_requests(n, path=..), o.wait_in_flight(n), o.wait_connection_closed(conn_id)   # bounded waits
    o.clear()                            # forget requests and connections (counters restart)

Request: method, target, path, version, headers [(name, value)], header(name), body_len, body_sha256,
         body (first 64 KiB), chunked, peer (ip, port), conn_id, seq (1 = first request on its connection),
         complete (whole body read).

Behaviours (o.route(path, B)):
    Reply(status=200, body=None, headers=(), framing="length"|"chunked"|"close", close=False, trailers=())
        body may be bytes, str or a callable(Request) -> bytes; trailers [(name, value)] go in the trailer
        section of a chunked body (RFC 9112 §7.1.2)
    Upload()                          200 + JSON {"size", "sha256", "chunked"} of the request body (drained)
    Stream(size, framing=...)         a body of SIZE bytes generated on the fly (pattern(); pattern_sha256())
    Hold(gate, then=Reply())          nothing is sent until the threading.Event GATE is set (slow first byte);
                                      returns early when the peer closes (recorded on the ConnInfo)
    Partial(total, sent, then="close"|"reset"|"hold", gate=None, framing="length"|"chunked")
                                      head announcing TOTAL bytes, SENT of them, then FIN / RST / wait for GATE
    Drip(size, interval)              head, then one body byte every INTERVAL seconds (pacing, not a sync)
    Reset()                           RST (SO_LINGER 0) right after reading the request, no byte sent
    Close()                           FIN right after reading the request, no byte sent
    Raw(data, close=True)             these exact bytes (malformed responses)
    WebSocketEcho()                   RFC 6455 handshake (101), then every frame echoed; close is echoed

Also: Blackhole() (a port whose SYNs are dropped: connect times out), pattern()/pattern_sha256(),
ws_accept()/ws_frame()/ws_read_frame() (RFC 6455 helpers shared with the tests).
"""
import base64
import functools
import hashlib
import json
import random
import select
import socket
import struct
import threading
import time

WAIT_TIMEOUT = 10.0          # default bound of the wait_* helpers
HOLD_LIMIT = 60.0            # a held behaviour never waits longer than this
BODY_KEEP = 64 * 1024        # bytes of each request body kept in the log
MAX_HEAD = 64 * 1024
RECV = 256 * 1024


# --------------------------------------------------------------------------------------- body pattern ---

_BLOCK = 64 * 1024
_BASE = random.Random(0x5EED).randbytes(_BLOCK)


def _block(k):
    """64 KiB block number K of the pattern: its index, then fixed pseudo-random bytes (position-dependent)."""
    return struct.pack(">Q", k) + _BASE[8:]


def pattern(size, piece=4 * _BLOCK):
    """Yields SIZE bytes of a deterministic, position-dependent pattern in pieces of up to PIECE bytes
    (PIECE a multiple of 64 KiB). The content does not depend on PIECE."""
    assert piece % _BLOCK == 0
    off = 0
    while off < size:
        n = min(piece, size - off)
        k0 = off // _BLOCK
        data = b"".join(_block(k0 + i) for i in range((n + _BLOCK - 1) // _BLOCK))[:n]
        yield data
        off += n


@functools.lru_cache(maxsize=8)
def pattern_sha256(size):
    h = hashlib.sha256()
    for piece in pattern(size):
        h.update(piece)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ websocket ---

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    if isinstance(key, str):
        key = key.encode("latin-1")
    return base64.b64encode(hashlib.sha1(key.strip() + WS_GUID).digest()).decode()


def ws_frame(opcode, payload, mask=True, fin=True):
    """One frame (RFC 6455 §5.2); clients mask (a random key), servers do not."""
    if isinstance(payload, str):
        payload = payload.encode()
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = random.randbytes(4)
    return head + key + _ws_mask(payload, key)


def _ws_mask(payload, key):
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big") if n else b""


def ws_read_frame(read_exact):
    """Reads one frame with READ_EXACT(n) -> bytes; returns (fin, opcode, masked, payload unmasked)."""
    b0, b1 = read_exact(2)
    fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", read_exact(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", read_exact(8))[0]
    key = read_exact(4) if masked else None
    payload = read_exact(n) if n else b""
    if masked:
        payload = _ws_mask(payload, key)
    return fin, opcode, masked, payload


# ---------------------------------------------------------------------------------------------- records ---

class Request:
    def __init__(self, method, target, version, headers, peer, conn_id, seq, raw_head):
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.version = version
        self.headers = headers              # [(name, value)], order and case as received
        self.peer = peer                    # (ip, port) of the client (the proxy)
        self.conn_id = conn_id
        self.seq = seq
        self.raw_head = raw_head
        self.body = b""                     # first BODY_KEEP bytes
        self.body_len = 0
        self.body_sha256 = hashlib.sha256(b"").hexdigest()
        self.chunked = False
        self.complete = False               # the whole body was read
        self.health = False
        self.received_at = time.monotonic()

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def header(self, name, default=None):
        vals = self.header_all(name)
        return ", ".join(vals) if vals else default

    def has(self, name):
        return bool(self.header_all(name))

    def __repr__(self):
        return f"<Request {self.method} {self.target} conn={self.conn_id}#{self.seq} body={self.body_len}>"


class ConnInfo:
    def __init__(self, conn_id, peer):
        self.id = conn_id
        self.peer = peer
        self.requests = 0
        self.closed = False
        self.closed_by_peer = False         # the peer closed first (EOF or reset seen by the origin)
        self.accepted_at = time.monotonic()


class _Closed(Exception):
    pass


# ------------------------------------------------------------------------------------------- behaviours ---

class Behaviour:
    def handle(self, conn, req):
        """Answers REQ on CONN (an _Conn). Returns True to keep the connection open for the next request."""
        raise NotImplementedError


def _head(status, headers, reason=None):
    reasons = {100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 204: "No Content",
               304: "Not Modified", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
               502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
    lines = [f"HTTP/1.1 {status} {reason or reasons.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _wants_close(req):
    conn = [t.strip().lower() for v in req.header_all("Connection") for t in v.split(",")]
    if req.version == "HTTP/1.0":
        return "keep-alive" not in conn
    return "close" in conn


class Reply(Behaviour):
    def __init__(self, status=200, body=None, headers=(), framing="length", close=False, reason=None, trailers=()):
        assert framing in ("length", "chunked", "close")
        assert not trailers or framing == "chunked"
        self.status, self.body, self.headers = status, body, list(headers)
        self.framing, self.close, self.reason = framing, close, reason
        self.trailers = list(trailers)

    def make_body(self, conn, req):
        body = self.body
        if callable(body):
            body = body(req)
        if body is None:
            body = f"{conn.origin.name}\n"
        return body.encode("latin-1") if isinstance(body, str) else body

    def handle(self, conn, req):
        body = self.make_body(conn, req)
        close = self.close or self.framing == "close" or _wants_close(req)
        headers = [("X-Origin", conn.origin.name)] + self.headers
        no_body = req.method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200
        if self.framing == "length" and self.status not in (204, 304):
            headers.append(("Content-Length", str(len(body))))
        elif self.framing == "chunked" and not no_body:
            headers.append(("Transfer-Encoding", "chunked"))
        if close and self.framing != "close":
            headers.append(("Connection", "close"))
        out = _head(self.status, headers, self.reason)
        if not no_body:
            if self.framing == "chunked":
                out += (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n"
                out += b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in self.trailers) + b"\r\n"
            else:
                out += body
        conn.send(out)
        return not close


class Upload(Reply):
    """Drains the request body (the server always reads it) and answers its size and sha256 as JSON."""

    def __init__(self, status=200):
        super().__init__(status, body=lambda r: json.dumps({"size": r.body_len, "sha256": r.body_sha256,
                                                           "chunked": r.chunked}).encode(),
                         headers=[("Content-Type", "application/json")])


class Stream(Behaviour):
    def __init__(self, size, framing="length", status=200, headers=()):
        assert framing in ("length", "chunked", "close")
        self.size, self.framing, self.status, self.headers = size, framing, status, list(headers)

    def handle(self, conn, req):
        headers = [("X-Origin", conn.origin.name), ("Content-Type", "application/octet-stream")] + self.headers
        close = self.framing == "close" or _wants_close(req)
        if self.framing == "length":
            headers.append(("Content-Length", str(self.size)))
        elif self.framing == "chunked":
            headers.append(("Transfer-Encoding", "chunked"))
        if close and self.framing != "close":
            headers.append(("Connection", "close"))
        conn.send(_head(self.status, headers))
        if req.method != "HEAD":
            for piece in pattern(self.size):
                conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if self.framing == "chunked" else piece)
            if self.framing == "chunked":
                conn.send(b"0\r\n\r\n")
        return not close


class Hold(Behaviour):
    """Sends nothing until GATE (a threading.Event) is set, then behaves like THEN. If the peer closes the
    connection meanwhile, the hold ends and the connection is closed (ConnInfo.closed_by_peer)."""

    def __init__(self, gate, then=None):
        self.gate, self.then = gate, then or Reply()

    def handle(self, conn, req):
        if not conn.hold(self.gate):
            return False
        return self.then.handle(conn, req)


class Partial(Behaviour):
    """A response announcing TOTAL body bytes of which only SENT are written, then: "close" (FIN), "reset"
    (RST) or "hold" (wait for GATE, then FIN)."""

    def __init__(self, total, sent, then="close", gate=None, framing="length", status=200):
        assert then in ("close", "reset", "hold") and (then != "hold" or gate is not None) and sent < total
        self.total, self.sent, self.then, self.gate = total, sent, then, gate
        self.framing, self.status = framing, status

    def handle(self, conn, req):
        headers = [("X-Origin", conn.origin.name)]
        headers.append(("Content-Length", str(self.total)) if self.framing == "length"
                       else ("Transfer-Encoding", "chunked"))
        body = next(pattern(self.total))[:self.sent] if self.sent else b""
        out = _head(self.status, headers)
        if self.framing == "chunked":
            out += f"{self.total:x}\r\n".encode() + body      # a chunk announcing TOTAL, cut after SENT
        else:
            out += body
        conn.send(out)
        if self.then == "reset":
            conn.reset()
        elif self.then == "hold":
            conn.hold(self.gate)
        return False


class Drip(Behaviour):
    """Head (Content-Length SIZE), then one body byte every INTERVAL seconds. The interval paces the origin;
    nothing in a test synchronises on it."""

    def __init__(self, size, interval):
        self.size, self.interval = size, interval

    def handle(self, conn, req):
        conn.send(_head(200, [("X-Origin", conn.origin.name), ("Content-Length", str(self.size))]))
        for _ in range(self.size):
            if conn.origin._down.wait(self.interval):
                return False
            conn.send(b"d")
        return not _wants_close(req)


class Reset(Behaviour):
    def handle(self, conn, req):
        conn.reset()
        return False


class Close(Behaviour):
    def handle(self, conn, req):
        return False


class Raw(Behaviour):
    def __init__(self, data, close=True):
        self.data = data.encode("latin-1") if isinstance(data, str) else data
        self.close = close

    def handle(self, conn, req):
        conn.send(self.data)
        return not self.close


class WebSocketEcho(Behaviour):
    """RFC 6455 server: 101 with Sec-WebSocket-Accept, then echoes each frame's payload with the same opcode
    (unmasked); ping → pong; a close frame is echoed and the connection closed."""

    def handle(self, conn, req):
        key = req.header("Sec-WebSocket-Key")
        if not key or (req.header("Upgrade") or "").lower() != "websocket":
            return Reply(400, body="not a websocket handshake\n", close=True).handle(conn, req)
        conn.send(_head(101, [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                              ("Sec-WebSocket-Accept", ws_accept(key)), ("X-Origin", conn.origin.name)]))
        while True:
            try:
                fin, opcode, masked, payload = ws_read_frame(conn.read_exact)
            except _Closed:
                return False
            conn.origin._ws_frames_add(opcode, payload, masked)
            if opcode == 0x8:
                conn.send(ws_frame(0x8, payload, mask=False))
                return False
            conn.send(ws_frame(0xA if opcode == 0x9 else opcode, payload, mask=False, fin=fin))


# ------------------------------------------------------------------------------------------ connections ---

class _Conn:
    """One accepted connection, served by its own thread."""

    def __init__(self, origin, sock, info):
        self.origin, self.sock, self.info = origin, sock, info
        self.buf = bytearray()
        self.eof = False

    # -- reading --
    def _fill(self):
        try:
            data = self.sock.recv(RECV)
        except (ConnectionResetError, socket.timeout, OSError):
            data = b""
        if not data:
            self.eof = True
            raise _Closed()
        self.buf += data

    def read_line(self, limit=MAX_HEAD):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _read_into(self, n, req, h):
        """Reads N body bytes into the request's hash and kept prefix without holding them all."""
        while n > 0:
            if not self.buf:
                self._fill()
            take = min(n, len(self.buf))
            piece = bytes(self.buf[:take])
            del self.buf[:take]
            h.update(piece)
            if len(req.body) < BODY_KEEP:
                req.body += piece[:BODY_KEEP - len(req.body)]
            req.body_len += take
            n -= take

    def read_head(self):
        """Returns the raw head (up to the blank line) or None on a clean EOF before any byte."""
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return head
            if len(self.buf) > MAX_HEAD:
                raise ValueError("head too large")
            try:
                self._fill()
            except _Closed:
                if self.buf:
                    raise
                return None

    # -- writing --
    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            if not self.origin._down.is_set():
                self.info.closed_by_peer = True
            raise _Closed()

    def reset(self):
        """Closes with RST: SO_LINGER {on, 0}."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def peer_closed(self):
        try:
            r, _, _ = select.select([self.sock], [], [], 0)
            if not r:
                return False
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def hold(self, gate):
        """Waits (bounded by HOLD_LIMIT) until GATE is set; False if the peer closed or the origin went down."""
        deadline = time.monotonic() + HOLD_LIMIT
        while not gate.wait(0.02):
            if self.origin._down.is_set() or time.monotonic() > deadline:
                return False
            if self.peer_closed():
                self.info.closed_by_peer = True
                return False
        return True

    # -- serving --
    def serve(self):
        try:
            while True:
                head = self.read_head()
                if head is None:
                    self.info.closed_by_peer = True
                    return
                req = self._parse(head)
                if req is None:
                    self.send(_head(400, [("Content-Length", "0"), ("Connection", "close")]))
                    return
                self.origin._add_request(req)
                self._read_body(req)
                self.origin._notify()
                behaviour = self.origin._lookup(req)
                self.origin._in_flight(+1)
                try:
                    keep = behaviour.handle(self, req)
                finally:
                    self.origin._in_flight(-1)
                if not keep:
                    return
        except _Closed:
            if self.eof:
                self.info.closed_by_peer = True
        except ValueError as e:
            self.origin._errors.append(f"conn {self.info.id}: {e}")
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self.origin._conn_closed(self)

    def _parse(self, head):
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self.origin._errors.append(f"bad request line {lines[0]!r}")
            return None
        headers = []
        for ln in lines[1:]:
            name, sep, value = ln.partition(b":")
            if not sep or not name or name != name.strip():
                self.origin._errors.append(f"bad header line {ln!r}")
                return None
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        self.info.requests += 1
        return Request(parts[0], parts[1], parts[2], headers, self.info.peer, self.info.id, self.info.requests,
                       head)

    def _read_body(self, req):
        h = hashlib.sha256()
        if (req.header("Expect") or "").lower() == "100-continue" and (
                req.has("Transfer-Encoding") or req.header("Content-Length", "0") != "0"):
            self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        te = [t.strip().lower() for v in req.header_all("Transfer-Encoding") for t in v.split(",")]
        if te:
            if te[-1] != "chunked":
                raise ValueError(f"unsupported Transfer-Encoding {te}")
            req.chunked = True
            while True:
                size = int(self.read_line().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.read_line():              # trailers
                        pass
                    break
                self._read_into(size, req, h)
                if self.read_exact(2) != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
        elif req.has("Content-Length"):
            self._read_into(int(req.header_all("Content-Length")[0]), req, h)
        req.body_sha256 = h.hexdigest()
        req.complete = True


# ---------------------------------------------------------------------------------------------- origin ---

class Origin:
    def __init__(self, name="origin", host="127.0.0.1", health_path="/health"):
        self.name, self.host, self.health_path = name, host, health_path
        self.port = None
        self.default = Reply()
        self.health_status = 200
        self._routes = []                   # (method, path, prefix, behaviour); last added wins
        self._cv = threading.Condition()
        self._requests = []
        self._connections = []
        self._open = {}                     # conn id -> socket
        self._threads = []
        self._in_flight_n = 0
        self._next_conn_id = 0
        self._errors = []                   # protocol errors the origin saw (bad request lines ...)
        self.ws_frames = []                 # (opcode, payload, masked) received by WebSocketEcho
        self._listener = None
        self._accept_thread = None
        self._down = threading.Event()

    # -- lifecycle --
    @property
    def endpoint(self):
        return f"{self.host}:{self.port}"

    def start(self):
        """Listens (again) on the origin's port; a free one the first time. Returns self."""
        assert self._listener is None, "already started"
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port or 0))
        s.listen(128)
        self.port = s.getsockname()[1]
        self._down.clear()
        self._listener = s
        self._accept_thread = threading.Thread(target=self._accept_loop, args=(s,), daemon=True,
                                               name=f"origin-{self.name}-accept")
        self._accept_thread.start()
        return self

    def stop(self):
        """Origin down: stops accepting (connects are refused) and closes every open connection."""
        with self._cv:
            s, self._listener = self._listener, None
            socks = list(self._open.values())
            threads = list(self._threads)
        if s is None:
            return
        self._down.set()
        try:
            s.shutdown(socket.SHUT_RDWR)         # wakes the accept() blocked in the accept thread
        except OSError:
            pass
        s.close()
        for c in socks:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accept_thread.join(5)
        for t in threads:
            t.join(5)

    close = stop

    def _accept_loop(self, listener):
        while True:
            try:
                sock, peer = listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(HOLD_LIMIT)
            with self._cv:
                if self._listener is not listener:
                    sock.close()
                    return
                self._next_conn_id += 1
                info = ConnInfo(self._next_conn_id, peer)
                self._connections.append(info)
                self._open[info.id] = sock
                t = threading.Thread(target=_Conn(self, sock, info).serve, daemon=True,
                                     name=f"origin-{self.name}-conn{info.id}")
                self._threads.append(t)
                self._cv.notify_all()
            t.start()

    # -- scripting --
    def route(self, path, behaviour, method=None, prefix=False):
        with self._cv:
            self._routes.append((method.upper() if method else None, path, prefix, behaviour))
        return self

    def set_health(self, status):
        self.health_status = status

    def _lookup(self, req):
        if req.method == "GET" and req.path == self.health_path:
            return Reply(self.health_status, body=f"{self.name} health {self.health_status}\n")
        with self._cv:
            for method, path, prefix, b in reversed(self._routes):
                if method and method != req.method:
                    continue
                if req.path == path or (prefix and req.path.startswith(path)):
                    return b
        return self.default

    # -- bookkeeping (connection threads) --
    def _add_request(self, req):
        req.health = req.method == "GET" and req.path == self.health_path
        with self._cv:
            self._requests.append(req)
            self._cv.notify_all()

    def _notify(self):
        with self._cv:
            self._cv.notify_all()

    def _in_flight(self, d):
        with self._cv:
            self._in_flight_n += d
            self._cv.notify_all()

    def _conn_closed(self, conn):
        with self._cv:
            conn.info.closed = True
            self._open.pop(conn.info.id, None)
            self._cv.notify_all()

    def _ws_frames_add(self, opcode, payload, masked):
        with self._cv:
            self.ws_frames.append((opcode, payload, masked))

    # -- observations (test thread) --
    def requests(self, path=None, method=None, health=False):
        """Requests seen (in arrival order); health checks only when HEALTH is True."""
        with self._cv:
            return [r for r in self._requests if r.health == health and (path is None or r.path == path)
                    and (method is None or r.method == method)]

    def health_checks(self):
        return self.requests(health=True)

    @property
    def connections(self):
        with self._cv:
            return list(self._connections)

    @property
    def connections_accepted(self):
        with self._cv:
            return len(self._connections)

    @property
    def open_connections(self):
        with self._cv:
            return len(self._open)

    @property
    def in_flight(self):
        with self._cv:
            return self._in_flight_n

    @property
    def errors(self):
        return list(self._errors)

    def clear(self):
        with self._cv:
            self._requests.clear()
            self._connections = []
            self._errors.clear()
            self.ws_frames.clear()

    def wait_for(self, predicate, timeout=WAIT_TIMEOUT, what="condition"):
        """Bounded wait, woken by the origin's own events; AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                v = predicate()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"origin {self.name}: timed out after {timeout}s waiting for {what}")
                self._cv.wait(left)

    def wait_requests(self, n, path=None, method=None, timeout=WAIT_TIMEOUT, complete=False):
        def enough():
            rs = [r for r in self._requests if not r.health and (path is None or r.path == path)
                  and (method is None or r.method == method) and (r.complete or not complete)]
            return rs if len(rs) >= n else None
        return self.wait_for(enough, timeout, f"{n} requests" + (f" to {path}" if path else ""))

    def wait_in_flight(self, n, timeout=WAIT_TIMEOUT):
        return self.wait_for(lambda: self._in_flight_n >= n, timeout, f"{n} requests in flight")

    def wait_health_checks(self, n, timeout=WAIT_TIMEOUT):
        return self.wait_for(lambda: sum(r.health for r in self._requests) >= n, timeout, f"{n} health checks")

    def wait_connection_closed(self, conn_id, timeout=WAIT_TIMEOUT):
        def closed():
            c = [c for c in self._connections if c.id == conn_id]
            return c and c[0].closed
        return self.wait_for(closed, timeout, f"connection {conn_id} to close")


class Blackhole:
    """A listening port whose accept queue is full (backlog 0 plus one connection that is never accepted):
    further SYNs are dropped, so a connect to it times out instead of being refused."""

    def __init__(self, host="127.0.0.1"):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(0)
        self.host, self.port = host, self.listener.getsockname()[1]
        self.fillers = []
        s = socket.create_connection((host, self.port), timeout=2)
        self.fillers.append(s)
        probe = socket.socket()
        probe.settimeout(0.3)
        try:                                  # the queue is full when one more connect does not complete
            probe.connect((host, self.port))
            self.fillers.append(probe)
            raise AssertionError("Blackhole: the accept queue did not fill; SYNs are not being dropped")
        except (socket.timeout, TimeoutError):
            probe.close()

    @property
    def endpoint(self):
        return f"{self.host}:{self.port}"

    def close(self):
        for s in self.fillers:
            s.close()
        self.listener.close()
