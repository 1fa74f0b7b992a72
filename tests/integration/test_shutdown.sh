#!/usr/bin/env bash
if [ -z "${BASH_VERSION-}" ]; then exec bash "$0" "$@"; fi
# SPDX-License-Identifier: Apache-2.0
# Graceful shutdown: on SIGTERM (and SIGINT) authgate stops accepting, lets in-flight requests
# finish, logs that it is draining and exits 0; --shutdown-timeout bounds the wait.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
ag_require curl python3

ag_write_config "$AG_CFG"
head -c 8000 /dev/zero | tr '\0' u >"$AG_TMP/8k"
head -c 40000 /dev/zero | tr '\0' u >"$AG_TMP/40k"

# slow_upload FILE SECONDS: POST FILE to /ping at 2 KB/s in the background; sets UPLOAD_PID.
# Its status code goes to $AG_TMP/upload.code, the body to $AG_TMP/upload.body.
slow_upload() {
    rm -f "$AG_TMP/upload.code" "$AG_TMP/upload.body"
    curl -sS --max-time "$2" --limit-rate 2k -H 'Expect:' --data-binary @"$1" \
        -o "$AG_TMP/upload.body" -w '%{http_code}' "$AG_URL/ping" >"$AG_TMP/upload.code" 2>"$AG_TMP/upload.err" &
    UPLOAD_PID=$!
    ag_track "$UPLOAD_PID"
}

# drain_case SIGNAL: an 8000-byte upload at 2 KB/s (~4 s) is in flight when SIGNAL arrives.
drain_case() {
    local sig=$1 t0 elapsed
    ag_start_default --shutdown-timeout=30s || return
    slow_upload "$AG_TMP/8k" 20
    sleep 1
    assert_true "SIG$sig: the upload is still running when the signal is sent" ag_alive "$UPLOAD_PID"
    t0=$(ag_now_ms)
    kill "-$sig" "$AG_PID"
    if ag_wait_exit "$UPLOAD_PID" 15; then
        assert_eq 0 "$AG_EXIT" "SIG$sig: the in-flight upload's curl succeeds"
    else
        ag_fail "SIG$sig: the in-flight upload did not finish within 15 s"
    fi
    assert_eq 200 "$(cat "$AG_TMP/upload.code" 2>/dev/null)" "SIG$sig: the in-flight POST /ping gets 200"
    assert_eq OK "$(cat "$AG_TMP/upload.body" 2>/dev/null)" "SIG$sig: the in-flight POST /ping gets OK"
    if ag_wait_exit "$AG_PID" 10; then
        assert_eq 0 "$AG_EXIT" "SIG$sig: the daemon exits 0"
    else
        ag_fail "SIG$sig: the daemon did not exit within 10 s of the upload finishing"
    fi
    elapsed=$(($(ag_now_ms) - t0))
    if [ "$elapsed" -ge 1500 ]; then
        ag_pass "SIG$sig: the daemon waited for the upload (${elapsed} ms)"
    else
        ag_fail "SIG$sig: the daemon exited after ${elapsed} ms, before the upload (~3 s left) could finish"
    fi
    AG_PID=
    assert_true "SIG$sig: the daemon logs that it is draining" grep -qi 'drain' "$AG_LOG"
}

drain_case TERM
drain_case INT

# --- --shutdown-timeout bounds the drain -----------------------------------------------------------------
if ag_start_default --shutdown-timeout=1s; then
    slow_upload "$AG_TMP/40k" 30
    sleep 1
    assert_true "shutdown-timeout: the 20 s upload is running" ag_alive "$UPLOAD_PID"
    T0=$(ag_now_ms)
    kill -TERM "$AG_PID"
    if ag_wait_exit "$AG_PID" 10; then
        ELAPSED=$(($(ag_now_ms) - T0))
        assert_eq 0 "$AG_EXIT" "--shutdown-timeout=1s: the daemon exits 0"
        if [ "$ELAPSED" -le 3000 ]; then
            ag_pass "--shutdown-timeout=1s: exits within 3 s (${ELAPSED} ms)"
        else
            ag_fail "--shutdown-timeout=1s: took ${ELAPSED} ms to exit"
        fi
    else
        ag_fail "--shutdown-timeout=1s: the daemon still runs 10 s after SIGTERM"
    fi
    AG_PID=
    assert_true "shutdown-timeout: the daemon logs that it is draining" grep -qi 'drain' "$AG_LOG"
    kill -KILL "$UPLOAD_PID" 2>/dev/null
    ag_wait_exit "$UPLOAD_PID" 5
    assert_ne 200 "$(cat "$AG_TMP/upload.code" 2>/dev/null)" "shutdown-timeout: the cut-off upload did not get a 200"
fi

# --- an idle daemon stops at once --------------------------------------------------------------------
if ag_start_default; then
    T0=$(ag_now_ms)
    ag_stop TERM 10
    ELAPSED=$(($(ag_now_ms) - T0))
    assert_eq 0 "$AG_EXIT" "an idle daemon exits 0 on SIGTERM"
    if [ "$ELAPSED" -le 2000 ]; then ag_pass "an idle daemon exits within 2 s (${ELAPSED} ms)"; else ag_fail "an idle daemon took ${ELAPSED} ms to exit"; fi
fi

ag_finish
