# A raw HTTP/2 frame client for the HTTP/2 tests (Debian's python3-hpack for header blocks): writes any frame
# sequence — including the ones a well-behaved client library refuses to produce (floods, CONTINUATION chains,
# resets) — and reads the server's frames back. Used from the unittest thread; every read has a deadline.
import socket
import struct
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, ENHANCE_YOUR_CALM = 0x0, 0x1, 0xb
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_INITIAL_WINDOW_SIZE = 0x1, 0x3, 0x4


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream_id) + payload


def settings(**values):
    ids = {"header_table_size": SETTINGS_HEADER_TABLE_SIZE, "max_concurrent_streams": SETTINGS_MAX_CONCURRENT_STREAMS,
           "initial_window_size": SETTINGS_INITIAL_WINDOW_SIZE}
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in values.items()))


class Frame:
    def __init__(self, ftype, flags, stream_id, payload):
        self.type, self.flags, self.stream_id, self.payload = ftype, flags, stream_id, payload

    def goaway_error(self):
        return struct.unpack(">I", self.payload[4:8])[0]

    def goaway_last_stream(self):
        return struct.unpack(">I", self.payload[0:4])[0] & 0x7FFFFFFF

    def __repr__(self):
        return f"Frame(type={self.type}, flags={self.flags:#x}, stream={self.stream_id}, len={len(self.payload)})"


class RawH2:
    def __init__(self, port, host="127.0.0.1", initial=b"", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 65536
        self.buf = b""
        self.closed = False
        self.frames = []
        self.send(PREFACE + (initial or frame(SETTINGS, 0, 0)))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        """Sends bytes; False when the server has already closed (a flood may outrun its GOAWAY)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def header_block(self, path, method="GET", extra=(), authority="localhost"):
        return self.encoder.encode([(":method", method), (":scheme", "http"), (":authority", authority),
                                    (":path", path), *extra])

    def request(self, stream_id, path, method="GET", end_stream=True, extra=()):
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        return frame(HEADERS, flags, stream_id, self.header_block(path, method, extra))

    def read_frame(self, deadline):
        """The next frame, or None at EOF. Raises AssertionError at the deadline."""
        while True:
            if len(self.buf) >= 9:
                n = struct.unpack(">I", b"\0" + self.buf[:3])[0]
                if len(self.buf) >= 9 + n:
                    f = Frame(self.buf[3], self.buf[4], struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF,
                              self.buf[9:9 + n])
                    self.buf = self.buf[9 + n:]
                    if f.type == HEADERS:  # every block, in order: the HPACK decoder's table must follow
                        f.headers = dict((k.decode() if isinstance(k, bytes) else k,
                                          v.decode() if isinstance(v, bytes) else v)
                                         for k, v in self.decoder.decode(f.payload))
                    self.frames.append(f)
                    if f.type == SETTINGS and not f.flags & ACK:
                        self.send(frame(SETTINGS, ACK, 0))
                    return f
            if self.closed:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no frame from the server in time; frames so far: {self.frames[-10:]}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
            self.buf += data

    def until_goaway(self, timeout=10.0):
        """Reads until GOAWAY and then EOF; returns (GOAWAY frame or None, closed)."""
        deadline = time.monotonic() + timeout
        goaway = None
        while True:
            f = self.read_frame(deadline)
            if f is None:
                return goaway, True
            if f.type == GOAWAY and goaway is None:
                goaway = f

    def response(self, stream_id, timeout=10.0, window_update=True):
        """(headers dict, body bytes) of one stream; sends WINDOW_UPDATEs as DATA arrives."""
        deadline = time.monotonic() + timeout
        headers, body = None, b""
        while True:
            f = self.read_frame(deadline)
            if f is None:
                raise AssertionError(f"connection closed before stream {stream_id} ended")
            if f.stream_id != stream_id:
                continue
            if f.type == HEADERS:
                headers = f.headers
            elif f.type == DATA:
                body += f.payload
                if window_update and f.payload:
                    inc = struct.pack(">I", len(f.payload))
                    self.send(frame(WINDOW_UPDATE, 0, 0, inc) + frame(WINDOW_UPDATE, 0, stream_id, inc))
            elif f.type == RST_STREAM:
                raise AssertionError(f"stream {stream_id} reset: {struct.unpack('>I', f.payload)[0]}")
            if f.flags & END_STREAM and f.type in (HEADERS, DATA):
                return headers, body
