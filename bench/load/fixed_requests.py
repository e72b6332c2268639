#!/usr/bin/python3
"""Sends exactly TOTAL keep-alive GET /hit requests over CONNS connections (sequential per connection) to
127.0.0.1:PORT and waits for every answer. Usage: fixed_requests.py PORT TOTAL CONNS"""
import socket, sys, threading
port, total, conns = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
req = b"GET /hit HTTP/1.1\r\nHost: b\r\n\r\n"
def worker(n):
    s = socket.create_connection(("127.0.0.1", port))
    for _ in range(n):
        s.sendall(req)
        got = b""
        while True:
            got += s.recv(65536)
            if b"\r\n\r\n" in got:
                head, _, body = got.partition(b"\r\n\r\n")
                cl = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
                if len(body) >= cl: break
    s.close()
ts = [threading.Thread(target=worker, args=(total // conns,)) for _ in range(conns)]
[t.start() for t in ts]; [t.join() for t in ts]
