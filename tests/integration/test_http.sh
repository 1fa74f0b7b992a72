#!/usr/bin/env bash
if [ -z "${BASH_VERSION-}" ]; then exec bash "$0" "$@"; fi
# SPDX-License-Identifier: Apache-2.0
# The HTTP surface before login exists: /ping, /ready, /robots.txt, 404 under the prefix, 403
# elsewhere, request ids, the request log (and its redaction), JSON logging, size limits and
# keep-alive.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
ag_require curl python3

HEX32='^[0-9a-fA-F]{32}$'

ag_start_default || ag_finish
URL=$AG_URL

# --- standard log format ------------------------------------------------------------------------
LISTEN_LINE=$(grep -m1 'listening on' "$AG_LOG")
assert_match "$LISTEN_LINE" '^\[[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\] \[[A-Za-z0-9_/.-]+\.c:[0-9]+\] ' \
    "standard log line format [YYYY/MM/DD hh:mm:ss] [file.c:N]"
assert_match "$LISTEN_LINE" 'listening on http://127\.0\.0\.1:[0-9]+' "logs 'listening on http://127.0.0.1:PORT'"
assert_ne 0 "${AG_PORT:-0}" "the daemon chose a real port for :0"

# --- own endpoints ----------------------------------------------------------------------------
ag_http "$URL/ping"
assert_eq 200 "$HTTP_CODE" "GET /ping -> 200"
assert_eq OK "$HTTP_BODY" "GET /ping body is OK"
PING_RID=$(ag_header X-Request-Id)
assert_match "$PING_RID" "$HEX32" "a request without an id gets a generated 32-hex X-Request-Id"

ag_http "$URL/ping"
assert_ne "$PING_RID" "$(ag_header X-Request-Id)" "generated request ids differ between requests"

for p in /ping/ /pingx /PING /ping/x /%70ing /./ping //ping '/ping;x'; do
    ag_http --path-as-is "$URL$p"
    assert_eq 403 "$HTTP_CODE" "GET $p is not the ping endpoint (403)"
    assert_ne OK "$HTTP_BODY" "GET $p does not answer OK"
done

# The provider (port 9) and Redis (port 9) of this config are unreachable: not ready, but alive.
ag_http "$URL/ready"
assert_eq 503 "$HTTP_CODE" "GET /ready -> 503 while the provider and Redis cannot be reached"

ag_http "$URL/robots.txt"
assert_eq 200 "$HTTP_CODE" "GET /robots.txt -> 200"
assert_eq $'User-agent: *\nDisallow: /' "$HTTP_BODY" "robots.txt body"

ag_http "$URL/oauth2/nope"
assert_eq 404 "$HTTP_CODE" "GET /oauth2/nope -> 404"
assert_match "$(ag_header X-Request-Id)" "$HEX32" "a 404 carries X-Request-Id"

for p in / /app /some/deep/path '/x?y=1' /oauth2x; do
    ag_http "$URL$p"
    assert_eq 403 "$HTTP_CODE" "GET $p (outside the prefix, no provider yet) -> 403"
    assert_match "$(ag_header X-Request-Id)" "$HEX32" "a 403 for $p carries X-Request-Id"
done

# HEAD: status 200, no body bytes after the headers.
ag_raw 127.0.0.1 "$AG_PORT" $'HEAD /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
RAW=$RAW_RESPONSE
assert_match "$RAW" '^HTTP/1\.[01] 200 ' "HEAD /ping -> 200"
assert_eq "" "${RAW#*$'\r\n\r\n'}" "HEAD /ping sends no body"

# --- request ids -------------------------------------------------------------------------------
ag_http -H 'X-Request-Id: abc-123' "$URL/ping"
assert_eq abc-123 "$(ag_header X-Request-Id)" "a sane X-Request-Id is echoed"

ID128=$(printf 'a%.0s' $(seq 128))
ag_http -H "X-Request-Id: $ID128" "$URL/ping"
assert_eq "$ID128" "$(ag_header X-Request-Id)" "a 128-char request id is echoed"
ag_http -H "X-Request-Id: ${ID128}b" "$URL/ping"
assert_match "$(ag_header X-Request-Id)" "$HEX32" "a 129-char request id is replaced"

LONG_ID=$(printf 'a%.0s' $(seq 200))
ag_http -H "X-Request-Id: $LONG_ID" "$URL/ping"
assert_eq 200 "$HTTP_CODE" "a 200-char request id does not break the request"
assert_match "$(ag_header X-Request-Id)" "$HEX32" "a 200-char request id is replaced by a generated one"

ag_http -H 'X-Request-Id: abc def' "$URL/ping"
assert_match "$(ag_header X-Request-Id)" "$HEX32" "a request id with a space is replaced"

ag_raw 127.0.0.1 "$AG_PORT" $'GET /ping HTTP/1.1\r\nHost: t\r\nX-Request-Id: abc\rInjected: yes\r\nConnection: close\r\n\r\n'
RAW=$RAW_RESPONSE
assert_match "$RAW" '^HTTP/1\.[01] [0-9]{3} ' "a request id with a bare CR gets an HTTP response"
assert_no_match "$RAW" $'[Ii]njected' "a request id with a bare CR is never echoed"
if [[ "$RAW" =~ ^HTTP/1\.[01]\ 200 ]]; then
    RID=$(printf '%s' "$RAW" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-request-id" { print $2 }')
    assert_match "$RID" "$HEX32" "a request id with a bare CR is replaced by a generated one"
fi

ag_http "$URL/ping"
assert_eq 200 "$HTTP_CODE" "still serving after hostile request ids"

# --- request log ---------------------------------------------------------------------------------
assert_true "the ping request is logged with method, path and status" \
    ag_wait_log 5 ' GET ' '"/ping"' ' 200 '
assert_true "a 404 is logged with its status" ag_wait_log 5 ' GET ' '"/oauth2/nope"' ' 404 '

ag_http "$URL/ready?code=SECRET1&state=SECRET2"
assert_eq 503 "$HTTP_CODE" "GET /ready with code/state query -> 503 (not ready)"
assert_true "the request with code/state is logged" ag_wait_log 5 ' GET ' '"/ready' ' 503 '
assert_file_not_contains "$AG_LOG" SECRET1 "the code value is redacted from the log"
assert_file_not_contains "$AG_LOG" SECRET2 "the state value is redacted from the log"

# --- size limits -------------------------------------------------------------------------------
head -c 65536 /dev/zero | tr '\0' a >"$AG_TMP/64k"
head -c 65537 /dev/zero | tr '\0' a >"$AG_TMP/64k+1"
ag_http -H 'Expect:' --data-binary @"$AG_TMP/64k" "$URL/ping"
assert_eq 200 "$HTTP_CODE" "POST /ping with a 64 KiB body -> 200"
# The server may answer before it has read the whole body and close: the client can then see a
# reset instead of the answer. Retry a few times; a 2xx is always wrong.
ag_http_expect 3 '^413$' -H 'Expect:' --data-binary @"$AG_TMP/64k+1" "$URL/ping"
assert_eq 413 "$HTTP_CODE" "POST /ping with 64 KiB + 1 -> 413"
# Without a length the bound is only known mid-body: 413 or a closed connection are both a
# refusal; a 2xx never is.
ag_http -H 'Expect:' -H 'Transfer-Encoding: chunked' --data-binary @"$AG_TMP/64k+1" "$URL/ping"
assert_match "$HTTP_CODE" '^(413|000)$' "chunked POST /ping over 64 KiB is refused (413 or closed)"
ag_http "$URL/ping"
assert_eq 200 "$HTTP_CODE" "still serving after oversized bodies"

# --- keep-alive ------------------------------------------------------------------------------------
KA=$(curl -sS --max-time 10 -o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\n' "$URL/ping" "$URL/robots.txt")
assert_eq $'200 1\n200 0' "$KA" "two requests in one curl run share one connection (keep-alive)"

ag_stop_clean "the default daemon"

# --- --silence-ping-logging, --ping-path, --request-id-header, header limit -------------------------------
ag_start_default --silence-ping-logging --ping-path=/healthz --request-id-header=X-Trace --max-header-bytes=4096 || ag_finish
URL=$AG_URL

ag_http "$URL/healthz"
assert_eq 200 "$HTTP_CODE" "--ping-path=/healthz: GET /healthz -> 200"
assert_eq OK "$HTTP_BODY" "--ping-path=/healthz: body OK"
ag_http "$URL/ping"
assert_eq 403 "$HTTP_CODE" "--ping-path=/healthz: /ping is no longer ping"
# /ping is an ordinary path now: its 403 is logged, and serves as the marker that the log has
# caught up with the /healthz request before it.
assert_true "the 403 /ping request is logged" ag_wait_log 5 ' GET ' '"/ping"' ' 403 '
sleep 0.3
assert_file_not_contains "$AG_LOG" '"/healthz"' "--silence-ping-logging: the ping request is not logged"

ag_http -H 'X-Trace: trace-42' "$URL/healthz"
assert_eq trace-42 "$(ag_header X-Trace)" "--request-id-header=X-Trace: echoed"
ag_http "$URL/healthz"
assert_match "$(ag_header X-Trace)" "$HEX32" "--request-id-header=X-Trace: generated when absent"

BIG=$(head -c 10240 /dev/zero | tr '\0' b)
ag_http_expect 3 '^(413|431)$' -H "X-Big: $BIG" "$URL/healthz"
assert_match "$HTTP_CODE" '^(413|431)$' "--max-header-bytes=4096: a 10 KB header -> 413 or 431"
SMALL=$(head -c 1024 /dev/zero | tr '\0' b)
ag_http -H "X-Small: $SMALL" "$URL/healthz"
assert_eq 200 "$HTTP_CODE" "--max-header-bytes=4096: a 1 KB header is fine"
ag_http "$URL/healthz"
assert_eq 200 "$HTTP_CODE" "still serving after an oversized header"

ag_stop_clean "the daemon with --silence-ping-logging"

# --- JSON logging ----------------------------------------------------------------------------------
ag_start_default --logging-format=json || ag_finish
ag_http "$AG_URL/ping"
assert_eq 200 "$HTTP_CODE" "json logging: GET /ping -> 200"
ag_http "$AG_URL/oauth2/nope"
ag_wait_log 5 '/oauth2/nope' >/dev/null
ag_stop_clean "the daemon with --logging-format=json"
cat >"$AG_TMP/jsonlines.py" <<'EOF'
import json, sys
bad, n = 0, 0
for i, line in enumerate(open(sys.argv[1], encoding="utf-8", errors="replace").read().split("\n")[:-1], 1):
    n += 1
    try:
        o = json.loads(line)
        if not isinstance(o, dict) or not {"time", "level", "msg"} <= o.keys():
            raise ValueError("not an object with time, level, msg")
    except ValueError as e:
        bad += 1
        print(f"line {i}: {e}: {line[:200]!r}")
print(f"{n} lines, {bad} bad")
sys.exit(1 if bad or n < 3 else 0)
EOF
OUT=$(ag_py 10 "$AG_TMP/jsonlines.py" "$AG_LOG")
RC=$?
assert_eq 0 "$RC" "--logging-format=json: every stderr line is a JSON object with time, level, msg"
[ "$RC" = 0 ] || echo "$OUT"
assert_file_contains "$AG_LOG" 'listening on http://127.0.0.1:' "json logging: the listen message is there"
assert_file_contains "$AG_LOG" '/oauth2/nope' "json logging: the request is logged"
if [ -n "$(tail -c1 "$AG_LOG")" ]; then ag_fail "json logging: the log ends with a newline"; else ag_pass "json logging: the log ends with a newline"; fi

ag_finish
