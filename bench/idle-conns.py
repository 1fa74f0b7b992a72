#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Memory with many idle clients: open N connections to HOST:PORT, send one keep-alive request on each
# (GET PATH, with a Cookie header when given) and read its answer, then leave them all open and idle;
# after a settling second, read the server's RSS (VmRSS of PID), count how many are still open, time
# one new request on a fresh connection (is the server still serving?), and close them all.
# Prints one line: opened answered_2xx still_open rss_kib new_request_status new_request_ms
#   usage: idle-conns.py HOST PORT N PID [PATH [COOKIE]]
# Needs an open-files limit above N (bench/run.sh raises it).
import selectors
import socket
import sys
import time

host, port, n, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
path = sys.argv[5] if len(sys.argv) > 5 else "/ping"
cookie = sys.argv[6] if len(sys.argv) > 6 else ""
request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
if cookie:
    request += f"Cookie: {cookie}\r\n"
request = (request + "\r\n").encode()


def complete(buf):
    """(done, status) for the bytes of one HTTP/1.1 answer read so far."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False, 0
    head = buf[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return len(buf) - end - 4 >= length, status


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


socks, answered = [], 0
BATCH = 250  # connections opened, asked and answered at a time: well inside the listen backlog
for first in range(0, n, BATCH):
    sel = selectors.DefaultSelector()
    pending = {}
    for _ in range(first, min(n, first + BATCH)):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(request)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        pending[s] = b""
        socks.append(s)
    deadline = time.monotonic() + 10
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            buf = pending[s] + data
            done, status = complete(buf)
            if not data or done:
                sel.unregister(s)
                del pending[s]
                answered += done and 200 <= status < 300
            else:
                pending[s] = buf
    sel.close()

time.sleep(1)
rss = rss_kib()
# a socket that reads as ready now was closed by the server (or got unasked-for bytes)
sel = selectors.DefaultSelector()
for s in socks:
    sel.register(s, selectors.EVENT_READ)
closed = len(sel.select(timeout=0.2))
sel.close()

t0 = time.monotonic()
try:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(request)
        buf = b""
        while True:
            data = s.recv(65536)
            buf += data
            done, new_status = complete(buf)
            if done or not data:
                break
except OSError:
    new_status = 0
new_ms = (time.monotonic() - t0) * 1000

for s in socks:
    s.close()
print(len(socks), answered, len(socks) - closed, rss, new_status, f"{new_ms:.1f}")
