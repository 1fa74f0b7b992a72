#!/usr/bin/env bash
if [ -z "${BASH_VERSION-}" ]; then exec bash "$0" "$@"; fi
# SPDX-License-Identifier: Apache-2.0
# Where and how authgate listens: a unix socket, IPv6 loopback, systemd socket activation
# (LISTEN_FDS, fd:3), a bad address, the connection limit and the slowloris guard.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
ag_require curl python3

ag_write_config "$AG_CFG"

# --- unix socket --------------------------------------------------------------------------------
SOCK=$AG_TMP/ag.sock
if ag_start --config "$AG_CFG" --http-address="unix://$SOCK"; then
    assert_eq "unix://$SOCK" "$AG_LISTEN" "logs 'listening on unix://$SOCK'"
    assert_true "the unix socket exists" test -S "$SOCK"
    ag_http --unix-socket "$SOCK" http://localhost/ping
    assert_eq 200 "$HTTP_CODE" "unix socket: GET /ping -> 200"
    assert_eq OK "$HTTP_BODY" "unix socket: body OK"
    ag_stop_clean "unix socket daemon"
fi

# --- IPv6 loopback ----------------------------------------------------------------------------
if ag_py 5 -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
    ag_pass "this machine has IPv6 loopback (::1)"
    if ag_start --config "$AG_CFG" '--http-address=[::1]:0'; then
        assert_match "$AG_LISTEN" '^http://\[::1\]:[0-9]+$' "logs 'listening on http://[::1]:PORT'"
        ag_http -g "http://[::1]:$AG_PORT/ping"
        assert_eq 200 "$HTTP_CODE" "[::1]: GET /ping -> 200"
        assert_eq OK "$HTTP_BODY" "[::1]: body OK"
        ag_stop_clean "IPv6 daemon"
    fi
else
    ag_fail "IPv6 loopback (::1) is required for this test and is not available"
fi

# --- socket activation -----------------------------------------------------------------------------
# The launcher plays systemd: it binds, puts the listening socket on fd 3, sets LISTEN_FDS and
# LISTEN_PID (its own pid, which authgate keeps across exec) and becomes authgate.
cat >"$AG_TMP/activate.py" <<'EOF'
import os, socket, sys
portfile, argv = sys.argv[1], sys.argv[2:]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
s.listen(64)
with open(portfile + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)  # inheritable by default
else:
    os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(argv[0], argv)
EOF
if ag_start_cmd python3 "$AG_TMP/activate.py" "$AG_TMP/activate.port" "$AUTHGATE" --config "$AG_CFG" --http-address=fd:3; then
    assert_eq "fd:3" "$AG_LISTEN" "socket activation: logs 'listening on fd:3'"
    PORT=$(cat "$AG_TMP/activate.port" 2>/dev/null)
    ag_http "http://127.0.0.1:$PORT/ping"
    assert_eq 200 "$HTTP_CODE" "socket activation: GET /ping on the inherited socket -> 200"
    assert_eq OK "$HTTP_BODY" "socket activation: body OK"
    ag_stop_clean "socket-activated daemon"
fi

# --- a bad address ---------------------------------------------------------------------------------
ag_run 10 "$AUTHGATE" --config "$AG_CFG" --http-address=nohost
assert_eq 1 "$RUN_RC" "--http-address=nohost exits 1"
assert_contains "$RUN_ERR" "http_address" "the error for nohost names http_address"

# --- connection limit ------------------------------------------------------------------------------
# Three keep-alive connections each get one answer and stay open; a fourth gets no 200 while
# they are open; once they are closed the daemon serves again.
cat >"$AG_TMP/connlimit.py" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
REQ = b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n"

def read_response(s, timeout):
    """One response (headers + Content-Length body), b'' on close/reset/timeout."""
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            c = s.recv(4096)
            if not c:
                return data
            data += c
        head, _, body = data.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v.strip())
        while len(body) < n:
            c = s.recv(4096)
            if not c:
                break
            body += c
        return head + b"\r\n\r\n" + body
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        return data

def served(r):
    return r.startswith(b"HTTP/1.1 200") or r.startswith(b"HTTP/1.0 200")

def closed_by_server(s):
    s.settimeout(2)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True

ok = True
# Three idle keep-alive connections: a fourth connection is served and the oldest idle one, waiting
# for its next request head, is the one closed to make room.
idle = []
for i in range(3):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(REQ)
    r = read_response(s, 5)
    if not served(r):
        print(f"idle connection {i + 1}: expected 200, got {r[:60]!r}")
        ok = False
    idle.append(s)
    time.sleep(0.05)
time.sleep(0.3)
s4 = socket.create_connection(("127.0.0.1", port), timeout=3)
s4.sendall(REQ)
r = read_response(s4, 3)
s4.close()
if not served(r):
    print(f"4th connection not served while 3 idle ones were open: {r[:60]!r}")
    ok = False
if not closed_by_server(idle[0]):
    print("the oldest idle connection was not closed to make room")
    ok = False
for s in idle[1:]:
    s.sendall(REQ)
    if not served(read_response(s, 3)):
        print("a younger idle connection was closed")
        ok = False
for s in idle:
    s.close()
time.sleep(0.3)

# Three connections with a request being served (a body still coming): none may be cut, so a fourth
# connection is refused while they stay.
busy = []
for i in range(3):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
    busy.append(s)
    time.sleep(0.05)
time.sleep(0.3)
try:
    s4 = socket.create_connection(("127.0.0.1", port), timeout=3)
    s4.sendall(REQ)
    r = read_response(s4, 3)
    s4.close()
except (OSError, socket.timeout) as e:
    r = b""
if served(r):
    print(f"4th connection was served while 3 requests were in progress: {r[:60]!r}")
    ok = False
for s in busy:
    if closed_by_server(s):
        print("a connection with a request in progress was cut")
        ok = False
    s.close()
sys.exit(0 if ok else 1)
EOF
if ag_start --config "$AG_CFG" --http-address=127.0.0.1:0 --max-connections=3 --connection-timeout=30s; then
    OUT=$(ag_py 20 "$AG_TMP/connlimit.py" "$AG_PORT" 2>&1)
    RC=$?
    printf '# %s\n' "$OUT"
    assert_eq 0 "$RC" "--max-connections=3: a fourth connection closes the oldest idle one; refused while 3 requests are served"
    assert_true "--max-connections=3: /ping works again once the idle connections close" ag_wait_for 5 ag_ping_ok
    ag_stop_clean "connection-limited daemon"
fi

# --- slowloris guard ------------------------------------------------------------------------------
cat >"$AG_TMP/slow.py" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"GET /ping HTTP/1.1\r\nHost: t")  # never finished
t0 = time.monotonic()
s.settimeout(0.5)
got = b""
while time.monotonic() - t0 < 6:
    try:
        c = s.recv(4096)
    except socket.timeout:
        continue
    except ConnectionResetError:
        c = b""
    if not c:
        el = time.monotonic() - t0
        print(f"closed by the server after {el:.1f}s; got {got[:60]!r}")
        sys.exit(0 if el <= 5.0 and not got.startswith(b"HTTP/1.1 200") else 1)
    got += c
print(f"still open after 6s; got {got[:60]!r}")
sys.exit(1)
EOF
if ag_start --config "$AG_CFG" --http-address=127.0.0.1:0 --connection-timeout=2s; then
    OUT=$(ag_py 15 "$AG_TMP/slow.py" "$AG_PORT" 2>&1)
    RC=$?
    echo "# $OUT"
    assert_eq 0 "$RC" "--connection-timeout=2s: a stalled partial request is closed within 5 s"
    ag_http "$AG_URL/ping"
    assert_eq 200 "$HTTP_CODE" "still serving after the stalled connection"
    ag_stop_clean "daemon with --connection-timeout=2s"
fi

ag_finish
