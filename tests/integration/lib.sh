# shellcheck shell=bash disable=SC2034 # variables here are set for the test files that source this
# SPDX-License-Identifier: Apache-2.0
# Shared helpers for the integration tests: each test file sources this, runs the real authgate
# binary on loopback ports it chooses itself (:0), drives it with curl and python3, counts
# assertions and ends with exactly one line "N passed, M failed" (exit 1 when M > 0).
# A missing tool (curl, python3) is a failure, never a skip. Everything started here is tracked
# and killed on exit; the temp dir is removed.

if [ -z "${BASH_VERSION-}" ]; then
    echo "lib.sh: must be sourced from bash" >&2
    exit 1
fi

set -u

# ---------------------------------------------------------------------------------------------
# Environment

AG_SRCDIR=${AG_SRCDIR:-$PWD}
if [ -z "${AUTHGATE-}" ]; then
    AUTHGATE=$PWD/src/authgate
    # Standalone run from the repo root after tests/run.sh built into build/.
    if [ ! -x "$AUTHGATE" ] && [ -x "$PWD/build/src/authgate" ]; then
        AUTHGATE=$PWD/build/src/authgate
    fi
fi
export AUTHGATE AG_SRCDIR

# The daemon must see only what a test gives it: drop inherited settings and service-manager
# variables (AUTHGATE itself is the binary path and has no KEY suffix, so it stays).
while IFS= read -r _ag_var; do
    case $_ag_var in
    OAUTH2_PROXY_* | AUTHGATE_*) unset "$_ag_var" ;;
    esac
done < <(compgen -e)
unset _ag_var NOTIFY_SOCKET LISTEN_FDS LISTEN_PID LISTEN_FDNAMES WATCHDOG_USEC WATCHDOG_PID
# curl must talk to loopback directly, never through a proxy from the environment.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

AG_TEST_NAME=$(basename "$0" .sh)
AG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/authgate-$AG_TEST_NAME.XXXXXX") || {
    echo "cannot create a temp dir"
    echo "0 passed, 1 failed"
    exit 1
}

# Values that must never appear in any output of the daemon.
AG_COOKIE_SECRET='AGtestCookieSecretQ7w9e2r4t6y8u0' # 32 bytes (also valid base64 of 24 bytes)
AG_CLIENT_SECRET='AGtestClientSecret-k3Xp9Lm2'
AG_CFG=$AG_TMP/authgate.cfg

AG_PASS=0
AG_FAIL=0
AG_FINISHED=0
AG_PIDS=()        # every background process we started, killed on exit
AG_DAEMON_LOGS=() # stderr of every daemon, scanned for sanitizer reports on exit
AG_NDAEMON=0
AG_PID=
AG_LOG=
AG_OUT=
AG_PORT=
AG_URL=
AG_LISTEN=
AG_EXIT=

# ---------------------------------------------------------------------------------------------
# Counting and assertions. Each prints one "ok -" or "FAIL -" line; failures say what differed.

_ag_show() { # quote a value so control characters are visible, and cap its length
    local v=$1
    if [ "${#v}" -gt 400 ]; then
        v="${v:0:400}...(${#1} bytes)"
    fi
    printf '%q' "$v"
}

ag_pass() {
    AG_PASS=$((AG_PASS + 1))
    echo "ok - $1"
}

ag_fail() {
    AG_FAIL=$((AG_FAIL + 1))
    echo "FAIL - $1"
    shift
    local l
    for l in "$@"; do echo "       $l"; done
}

assert_eq() { # expected actual message
    if [ "$1" == "$2" ]; then ag_pass "$3"; else ag_fail "$3" "expected: $(_ag_show "$1")" "got:      $(_ag_show "$2")"; fi
}

assert_ne() { # unexpected actual message
    if [ "$1" != "$2" ]; then ag_pass "$3"; else ag_fail "$3" "expected anything but: $(_ag_show "$1")"; fi
}

assert_contains() { # haystack needle message
    if [[ "$1" == *"$2"* ]]; then ag_pass "$3"; else ag_fail "$3" "expected to contain: $(_ag_show "$2")" "in: $(_ag_show "$1")"; fi
}

assert_not_contains() { # haystack needle message
    if [[ "$1" != *"$2"* ]]; then ag_pass "$3"; else ag_fail "$3" "must not contain: $(_ag_show "$2")" "in: $(_ag_show "$1")"; fi
}

assert_match() { # string extended-regex message
    if [[ "$1" =~ $2 ]]; then ag_pass "$3"; else ag_fail "$3" "expected to match: $2" "got: $(_ag_show "$1")"; fi
}

assert_no_match() { # string extended-regex message
    if ! [[ "$1" =~ $2 ]]; then ag_pass "$3"; else ag_fail "$3" "must not match: $2" "got: $(_ag_show "$1")"; fi
}

assert_line() { # text exact-line message: some line of text equals exact-line
    if printf '%s\n' "$1" | grep -qxF -- "$2"; then ag_pass "$3"; else ag_fail "$3" "expected a line: $(_ag_show "$2")" "in: $(_ag_show "$1")"; fi
}

assert_line_match() { # text extended-regex message: some line of text matches
    if printf '%s\n' "$1" | grep -qE -- "$2"; then ag_pass "$3"; else ag_fail "$3" "expected a line matching: $2" "in: $(_ag_show "$1")"; fi
}

assert_no_line_match() { # text extended-regex message: no line of text matches
    if ! printf '%s\n' "$1" | grep -qE -- "$2"; then ag_pass "$3"; else ag_fail "$3" "no line may match: $2" "got: $(printf '%s\n' "$1" | grep -E -- "$2" | head -3)"; fi
}

assert_line_prefix() { # text prefix message: some line of text starts with the fixed string prefix
    if printf '%s\n' "$1" | P=$2 awk 'index($0, ENVIRON["P"]) == 1 { f = 1 } END { exit !f }'; then
        ag_pass "$3"
    else
        ag_fail "$3" "expected a line starting with: $(_ag_show "$2")" "in: $(_ag_show "$1")"
    fi
}

assert_true() { # message command...: passes when the command succeeds
    local msg=$1
    shift
    if "$@"; then ag_pass "$msg"; else ag_fail "$msg" "command failed: $*"; fi
}

assert_file_contains() { # file fixed-string message
    if grep -qF -- "$2" "$1" 2>/dev/null; then ag_pass "$3"; else ag_fail "$3" "$1 does not contain $(_ag_show "$2")" "$(ag_tail "$1")"; fi
}

assert_file_not_contains() { # file fixed-string message (a missing file is a failure: nothing to check)
    if [ ! -f "$1" ]; then
        ag_fail "$3" "$1 does not exist"
    elif grep -qF -- "$2" "$1"; then
        ag_fail "$3" "$1 contains $(_ag_show "$2"):" "$(grep -nF -- "$2" "$1" | head -3)"
    else
        ag_pass "$3"
    fi
}

ag_tail() { # last lines of a file, indented, for failure reports
    [ -f "$1" ] && tail -n "${2:-15}" "$1" | sed 's/^/         | /'
}

# Fail right away (and finish) when a tool the test needs is missing: never skip.
ag_require() {
    local t missing=0
    for t in "$@"; do
        if ! command -v "$t" >/dev/null 2>&1; then
            ag_fail "required tool '$t' is not installed (run tests/deps.sh)"
            missing=1
        fi
    done
    if [ ! -x "$AUTHGATE" ]; then
        ag_fail "authgate binary not found or not executable: $AUTHGATE"
        missing=1
    fi
    if [ "$missing" = 1 ]; then ag_finish; fi
}

# Print the summary line once and exit. A file that asserted nothing fails.
ag_finish() {
    _ag_summary
    exit $?
}

_ag_summary() {
    if [ "$AG_FINISHED" = 1 ]; then return $((AG_FAIL > 0)); fi
    _ag_cleanup_processes
    _ag_scan_sanitizers
    if [ $((AG_PASS + AG_FAIL)) -eq 0 ]; then
        ag_fail "no assertion ran"
    fi
    if [ "$AG_FAIL" -gt 0 ]; then _ag_dump_logs; fi
    AG_FINISHED=1
    echo "$AG_PASS passed, $AG_FAIL failed"
    return $((AG_FAIL > 0))
}

_ag_on_exit() {
    local rc=$?
    if [ "$AG_FINISHED" != 1 ]; then
        ag_fail "test script ended before ag_finish (exit status $rc)"
        _ag_summary
        rc=1
    fi
    _ag_cleanup_processes
    rm -rf "$AG_TMP"
    exit "$rc"
}

_ag_cleanup_processes() {
    local p
    for p in "${AG_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    for p in "${AG_PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    AG_PIDS=()
}

_ag_scan_sanitizers() {
    local f
    for f in "${AG_DAEMON_LOGS[@]}"; do
        if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)' "$f" 2>/dev/null; then
            ag_fail "sanitizer report in $(basename "$f")" "$(grep -m5 -E 'ERROR:|runtime error:|SUMMARY:' "$f")"
        fi
    done
}

_ag_dump_logs() {
    local f
    for f in "${AG_DAEMON_LOGS[@]}"; do
        [ -s "$f" ] || continue
        echo "--- last lines of $(basename "$f") ---"
        tail -n 40 "$f"
    done
}

trap _ag_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ag_track() { AG_PIDS+=("$1"); }

ag_untrack() {
    local p keep=()
    for p in "${AG_PIDS[@]}"; do
        if [ "$p" != "$1" ]; then keep+=("$p"); fi
    done
    AG_PIDS=("${keep[@]}")
}

# ---------------------------------------------------------------------------------------------
# Time and processes

ag_now_ms() {
    local t=$EPOCHREALTIME
    echo $((${t/./} / 1000))
}

# True while pid is a live process (not a zombie waiting to be reaped).
ag_alive() {
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "${st%% *}" != Z ]
}

# ag_wait_exit PID SECONDS: wait for a child of this shell to exit, at most SECONDS.
# On exit sets AG_EXIT to its status and returns 0; on timeout kills it, sets AG_EXIT=timeout
# and returns 1.
ag_wait_exit() {
    local pid=$1 deadline
    deadline=$(($(ag_now_ms) + $2 * 1000))
    while ag_alive "$pid"; do
        if [ "$(ag_now_ms)" -ge "$deadline" ]; then
            kill -KILL "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            ag_untrack "$pid"
            AG_EXIT=timeout
            return 1
        fi
        sleep 0.05
    done
    wait "$pid" 2>/dev/null
    AG_EXIT=$?
    ag_untrack "$pid"
    return 0
}

# ag_wait_for SECONDS command...: retry the command every 50 ms until it succeeds or time is up.
ag_wait_for() {
    local deadline
    deadline=$(($(ag_now_ms) + $1 * 1000))
    shift
    until "$@"; do
        if [ "$(ag_now_ms)" -ge "$deadline" ]; then return 1; fi
        sleep 0.05
    done
}

# ag_run SECONDS command...: run to completion (bounded). Sets RUN_RC (124 on timeout),
# RUN_OUT (stdout), RUN_ERR (stderr), RUN_ALL (both). Everything is also appended to
# $AG_TMP/all-output so a test can check that a secret never appeared anywhere.
ag_run() {
    local t=$1
    shift
    timeout -k 2 "$t" "$@" >"$AG_TMP/run.out" 2>"$AG_TMP/run.err" </dev/null
    RUN_RC=$?
    RUN_OUT=$(cat "$AG_TMP/run.out")
    RUN_ERR=$(cat "$AG_TMP/run.err")
    RUN_ALL=$RUN_OUT$'\n'$RUN_ERR
    cat "$AG_TMP/run.out" "$AG_TMP/run.err" >>"$AG_TMP/all-output"
    if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$AG_TMP/run.err"; then
        ag_fail "sanitizer report from: $*" "$(grep -m5 -E 'ERROR:|runtime error:|SUMMARY:' "$AG_TMP/run.err")"
    fi
}

# ---------------------------------------------------------------------------------------------
# Configuration

# ag_write_config FILE [EXTRA-LINE...]: the minimal valid config (no http_address: tests pass
# --http-address), then each extra line.
ag_write_config() {
    local f=$1 l
    shift
    {
        echo "# authgate integration test config"
        echo 'provider = "oidc"'
        echo 'oidc_issuer_url = "http://127.0.0.1:9/"'
        echo 'client_id = "authgate-test"'
        echo "client_secret = \"$AG_CLIENT_SECRET\""
        echo "cookie_secret = \"$AG_COOKIE_SECRET\""
        echo 'email_domains = ["*"]'
        echo 'redis_connection_url = "redis://127.0.0.1:9/0"'
        for l in "$@"; do echo "$l"; done
    } >"$f"
}

# Line number of the first line of FILE starting with KEY.
ag_line_of() {
    grep -n -m1 -E "^$2[[:space:]]*=" "$1" | cut -d: -f1
}

# ---------------------------------------------------------------------------------------------
# The daemon

# ag_start_cmd COMMAND...: start a daemon (the command execs authgate in the same process), wait
# for its "listening on" line and parse where. Sets AG_PID, AG_LOG (stderr), AG_OUT (stdout),
# AG_LISTEN (what follows "listening on "), AG_PORT and AG_URL (empty for unix: and fd:).
# Signals start at their defaults as under a service manager (a non-interactive bash would make
# background jobs ignore SIGINT). Returns 1 (after recording a failure) when it does not come up.
# Set AG_START_TIMEOUT to change the 15 s limit.
ag_start_cmd() {
    AG_NDAEMON=$((AG_NDAEMON + 1))
    AG_LOG=$AG_TMP/daemon$AG_NDAEMON.log
    AG_OUT=$AG_TMP/daemon$AG_NDAEMON.out
    AG_DAEMON_LOGS+=("$AG_LOG")
    : >"$AG_LOG"
    env --default-signal=INT,QUIT,TERM,HUP "$@" >"$AG_OUT" 2>"$AG_LOG" </dev/null &
    AG_PID=$!
    ag_track "$AG_PID"
    AG_LISTEN=
    AG_PORT=
    AG_URL=
    local deadline line
    deadline=$(($(ag_now_ms) + ${AG_START_TIMEOUT:-15} * 1000))
    while :; do
        line=$(grep -m1 -o 'listening on [^ "]*' "$AG_LOG" 2>/dev/null)
        if [ -n "$line" ]; then break; fi
        if ! ag_alive "$AG_PID"; then
            wait "$AG_PID"
            AG_EXIT=$?
            ag_untrack "$AG_PID"
            ag_fail "daemon exited (status $AG_EXIT) before listening: $*" "$(ag_tail "$AG_LOG")"
            return 1
        fi
        if [ "$(ag_now_ms)" -ge "$deadline" ]; then
            ag_fail "daemon did not log 'listening on' within ${AG_START_TIMEOUT:-15}s: $*" "$(ag_tail "$AG_LOG")"
            ag_stop_kill
            return 1
        fi
        sleep 0.05
    done
    AG_LISTEN=${line#listening on }
    if [[ "$AG_LISTEN" =~ ^http://(\[[0-9a-fA-F:.]+\]|[^:/]+):([0-9]+) ]]; then
        AG_PORT=${BASH_REMATCH[2]}
        AG_URL="http://${BASH_REMATCH[1]}:$AG_PORT"
    fi
    return 0
}

# ag_start ARGS...: start $AUTHGATE with exactly these arguments.
ag_start() { ag_start_cmd "$AUTHGATE" "$@"; }

# shellcheck disable=SC2120 # the arguments are optional
# ag_start_default [ARGS...]: the test config ($AG_CFG, written if missing) on 127.0.0.1:0.
ag_start_default() {
    [ -f "$AG_CFG" ] || ag_write_config "$AG_CFG"
    ag_start --config "$AG_CFG" --http-address=127.0.0.1:0 "$@"
}

# ag_stop [SIGNAL] [SECONDS]: signal the current daemon (default TERM) and wait for it, at most
# SECONDS (default 10), then SIGKILL. Sets AG_EXIT (its status, or "timeout"). Returns 0 when it
# exited by itself.
ag_stop() {
    local sig=${1:-TERM} t=${2:-10}
    [ -n "$AG_PID" ] || return 1
    kill "-$sig" "$AG_PID" 2>/dev/null
    ag_wait_exit "$AG_PID" "$t"
    local rc=$?
    AG_PID=
    return $rc
}

ag_stop_kill() {
    [ -n "$AG_PID" ] || return 0
    kill -KILL "$AG_PID" 2>/dev/null
    wait "$AG_PID" 2>/dev/null
    ag_untrack "$AG_PID"
    AG_PID=
}

# ag_stop_clean MESSAGE: stop with SIGTERM and assert it exited 0 within 10 s.
ag_stop_clean() {
    ag_stop TERM 10
    assert_eq 0 "$AG_EXIT" "${1:-daemon} exits 0 on SIGTERM"
}

# Wait (bounded) until the current daemon's log has a line containing every given fixed string.
ag_wait_log() { # seconds string...
    local t=$1
    shift
    ag_wait_for "$t" _ag_log_has "$AG_LOG" "$@"
}

_ag_log_has() { # file string...: some line contains every string
    local f=$1
    shift
    awk -v n="$#" '
        BEGIN { for (i = 1; i <= n; i++) want[i] = ARGV[i + 1]; ARGC = 2 }
        { ok = 1; for (i = 1; i <= n; i++) if (index($0, want[i]) == 0) { ok = 0; break }
          if (ok) { found = 1; exit } }
        END { exit found ? 0 : 1 }' "$f" "$@"
}

# ---------------------------------------------------------------------------------------------
# HTTP

# ag_http [CURL-ARGS...] URL: one request (bounded by 10 s, AG_CURL_TIMEOUT to change). Sets
# HTTP_CODE ("000" when there was no response), HTTP_BODY (trailing newlines stripped),
# HTTP_HEADERS (of the last response, CR removed), and HTTP_BODY_FILE.
ag_http() {
    HTTP_BODY_FILE=$AG_TMP/http.body
    : >"$HTTP_BODY_FILE"
    : >"$AG_TMP/http.headers"
    HTTP_CODE=$(curl -sS --max-time "${AG_CURL_TIMEOUT:-10}" -o "$HTTP_BODY_FILE" \
        -D "$AG_TMP/http.headers" -w '%{http_code}' "$@" 2>"$AG_TMP/http.err")
    [ -n "$HTTP_CODE" ] || HTTP_CODE=000
    HTTP_BODY=$(cat "$HTTP_BODY_FILE")
    # Keep only the last header block (a 100 Continue comes first).
    HTTP_HEADERS=$(tr -d '\r' <"$AG_TMP/http.headers" | awk '/^HTTP\//{b=""} {b=b $0 "\n"} END{printf "%s", b}')
    cat "$AG_TMP/http.headers" "$HTTP_BODY_FILE" >>"$AG_TMP/all-output" 2>/dev/null
}

# ag_http_expect TRIES CODE-REGEX [CURL-ARGS...] URL: ag_http until HTTP_CODE matches, at most
# TRIES times, for answers that race a connection reset (the server answering early and closing
# while the client still sends). A 2xx ends the retries at once: that is never a lost race.
ag_http_expect() {
    local n=$1 re=$2 i
    shift 2
    for ((i = 1; i <= n; i++)); do
        ag_http "$@"
        if [[ "$HTTP_CODE" =~ $re ]] || [[ "$HTTP_CODE" == 2* ]]; then return 0; fi
        echo "# try $i: got $HTTP_CODE ($(head -c 200 "$AG_TMP/http.err"))"
    done
    return 1
}

# Value of a response header from the last ag_http (case-insensitive name; last one wins).
ag_header() {
    printf '%s\n' "$HTTP_HEADERS" | awk -v n="$1" '
        { i = index($0, ":"); if (i > 0 && tolower(substr($0, 1, i - 1)) == tolower(n)) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v); found = 1 } }
        END { if (found) print v }'
}

# True when GET $AG_URL/ping answers 200 within 2 s (for ag_wait_for).
ag_ping_ok() {
    [ "$(curl -sS --max-time 2 -o /dev/null -w '%{http_code}' "$AG_URL/ping" 2>/dev/null)" = 200 ]
}

# ag_raw HOST PORT REQUEST: send REQUEST bytes (latin-1) over one TCP connection and read until
# the server closes (5 s at most). Sets RAW_RESPONSE to every byte received, exactly.
ag_raw() {
    if [ ! -f "$AG_TMP/raw.py" ]; then
        cat >"$AG_TMP/raw.py" <<'EOF'
import socket, sys, time
host, port, req = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode("latin-1")
s = socket.create_connection((host, port), timeout=5)
s.sendall(req)
data = b""
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    try:
        chunk = s.recv(65536)
    except (socket.timeout, ConnectionResetError):
        break
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode("latin-1") + "|END")
EOF
    fi
    RAW_RESPONSE=$(timeout -k 2 10 python3 "$AG_TMP/raw.py" "$@")
    RAW_RESPONSE=${RAW_RESPONSE%|END}
}

# Python helper: run a python3 snippet file with a timeout. ag_py SECONDS SCRIPT ARGS...
ag_py() {
    local t=$1
    shift
    timeout -k 2 "$t" python3 "$@"
}
