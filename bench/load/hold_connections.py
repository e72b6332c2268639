#!/usr/bin/python3
"""Opens N keep-alive connections to 127.0.0.1:PORT, sends one GET on each and reads the answer, then holds
them all open and prints the server's RSS growth per connection (from /proc/PID/status) before closing.
Usage: hold_connections.py PORT PID [N=10000] [PATH=/hit]"""
import os, socket, sys, time

def rss_kib(pid):
    total = 0
    for p in [pid] + [int(c) for c in os.popen(f"pgrep -P {pid}").read().split()]:
        with open(f"/proc/{p}/status") as f:
            total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return total

def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    path = sys.argv[4] if len(sys.argv) > 4 else "/hit"
    before = rss_kib(pid)
    socks = []
    req = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(req)
        socks.append(s)
    for s in socks:  # read each answer (headers + 1 KiB body fit one recv on loopback, mostly)
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(65536)
    time.sleep(0.5)  # let the server settle after the last answer; a measurement pause, not a synchronisation
    after = rss_kib(pid)
    print(f"connections={n} rss_before={before}KiB rss_after={after}KiB per_connection={(after - before) * 1024 / n:.0f}B")
    for s in socks:
        s.close()

main()
