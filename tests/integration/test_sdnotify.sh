#!/usr/bin/env bash
if [ -z "${BASH_VERSION-}" ]; then exec bash "$0" "$@"; fi
# SPDX-License-Identifier: Apache-2.0
# sd_notify(3) protocol as systemd's Type=notify expects it: READY=1 once the daemon listens,
# STOPPING=1 when it begins to shut down; NOTIFY_SOCKET may be a path or an abstract name (@name).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
ag_require curl python3

ag_write_config "$AG_CFG"

# The receiver binds the datagram socket, signals that it is bound, and writes each datagram as
# one JSON list of its newline-separated assignments, until STOPPING=1 or its time is up.
cat >"$AG_TMP/notify.py" <<'EOF'
import json, socket, sys, time
addr, out, ready, limit = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
open(ready, "w").close()
deadline = time.monotonic() + limit
with open(out, "a", buffering=1) as f:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        fields = d.decode("utf-8", "replace").split("\n")
        f.write(json.dumps(fields) + "\n")
        if "STOPPING=1" in fields:
            break
EOF

# notify_case NOTIFY_SOCKET-VALUE LABEL
notify_case() {
    local ns=$1 label=$2 out=$AG_TMP/notify-$2.out ready=$AG_TMP/notify-$2.ready rpid
    : >"$out"
    python3 "$AG_TMP/notify.py" "$ns" "$out" "$ready" 25 &
    rpid=$!
    ag_track "$rpid"
    if ! ag_wait_for 5 test -e "$ready"; then
        ag_fail "$label: the notify receiver did not bind $ns"
        return
    fi
    NOTIFY_SOCKET=$ns ag_start_default || return
    if ag_wait_for 5 grep -qF '"READY=1"' "$out"; then
        ag_pass "$label: READY=1 received"
    else
        ag_fail "$label: no READY=1 within 5 s of listening" "datagrams: $(cat "$out")"
    fi
    assert_contains "$(head -n1 "$out")" '"READY=1"' "$label: the first datagram carries READY=1"
    ag_http "$AG_URL/ping"
    assert_eq 200 "$HTTP_CODE" "$label: /ping answers once READY=1 was sent"
    assert_file_not_contains "$out" '"STOPPING=1"' "$label: no STOPPING=1 while running"
    kill -TERM "$AG_PID"
    if ag_wait_for 5 grep -qF '"STOPPING=1"' "$out"; then
        ag_pass "$label: STOPPING=1 received after SIGTERM"
    else
        ag_fail "$label: no STOPPING=1 within 5 s of SIGTERM" "datagrams: $(cat "$out")"
    fi
    if ag_wait_exit "$AG_PID" 10; then
        assert_eq 0 "$AG_EXIT" "$label: the daemon exits 0"
    else
        ag_fail "$label: the daemon did not exit within 10 s of SIGTERM"
    fi
    AG_PID=
    kill "$rpid" 2>/dev/null
    ag_wait_exit "$rpid" 5
}

notify_case "$AG_TMP/notify.sock" path
notify_case "@authgate-test-$$-$RANDOM" abstract

# Without NOTIFY_SOCKET the daemon runs normally (sd_notify is a no-op).
if ag_start_default; then
    ag_http "$AG_URL/ping"
    assert_eq 200 "$HTTP_CODE" "without NOTIFY_SOCKET: /ping -> 200"
    ag_stop_clean "daemon without NOTIFY_SOCKET"
fi

ag_finish
