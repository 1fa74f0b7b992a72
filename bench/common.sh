# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Sourced by bench/run.sh and bench/leak.sh (not run on its own): the optimised build, a temporary
# directory, Redis, the test provider and authgate on free loopback ports, and the clean-up of all
# of it on exit. Expects `set -euo pipefail` and the source tree's root as the working directory.

# bench_require TOOL... -> exits when one is missing
bench_require() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "bench: $tool is missing: run tests/deps.sh" >&2; exit 1; }
    done
    [ -d tests/e2e/node_modules ] || (cd tests/e2e && npm ci --no-audit --no-fund)
}

# bench_build -> build-bench/src/authgate, optimised, no sanitizers
bench_build() {
    echo "bench: building an optimised authgate in build-bench/"
    if [ ! -f build-bench/Makefile ]; then
        [ -x configure ] || ./autogen.sh >/dev/null
        mkdir -p build-bench
        (cd build-bench && ../configure CFLAGS="-O2 -g" >/dev/null)
    fi
    make -s -C build-bench -j2 src/authgate >/dev/null
}

# bench_start -> $tmp (a new directory) and $pids (started processes), both cleaned up on exit
bench_start() {
    tmp=$(mktemp -d)
    pids=()
    trap bench_cleanup EXIT
}
bench_cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_http URL [STATUS] -> returns once URL answers STATUS (200)
wait_http() {
    for _ in $(seq 1 200); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = "${2:-200}" ] && return 0
        sleep 0.05
    done
    echo "bench: $1 did not answer ${2:-200}" >&2
    return 1
}
# status URL [CURL-ARGS...] -> the HTTP status code
status() { curl -s -o /dev/null -w '%{http_code}' "${@:2}" "$1"; }

# start_redis -> $redis_port
start_redis() {
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning \
        >"$tmp/redis.log" 2>&1 &
    pids+=("$!")
}

# start_provider AUTHGATE_PORT -> $issuer, $op_port (its port) (tests/e2e/provider.js, authgate's redirect URI registered)
start_provider() {
    node tests/e2e/provider.js --port 0 --redirect-uri "http://127.0.0.1:$1/oauth2/callback" >"$tmp/op.out" 2>"$tmp/op.err" &
    pids+=("$!")
    for _ in $(seq 1 200); do grep -q '^{' "$tmp/op.out" 2>/dev/null && break; sleep 0.05; done
    # shellcheck disable=SC2034 # op_port is for the caller
    read -r issuer op_port < <(python3 -c 'import json,sys; j=json.loads(open(sys.argv[1]).readline()); print(j["issuer"], j["port"])' "$tmp/op.out")
}

# start_authgate PORT [EXTRA-CONFIG-LINES] -> $ag_pid, $ag (its base URL); $tmp/authgate.log
# The upstream is static://200 (the check) unless the extra lines give `upstreams`. Every authgate of
# a run shares Redis and one cookie secret ($cookie_secret), so one login's session cookie is valid
# at all of them. AG_BENCH_NAME (default authgate) names the configuration and log in $tmp, for a
# second instance (the caller keeps the first one's $ag_pid and $ag). AG_BENCH_PRELOAD: a library to
# preload into authgate; AG_BENCH_WRAP (e.g. "perf record -g -o /tmp/perf.data") runs authgate under
# a profiler: $ag_pid is then the authgate process it starts.
start_authgate() {
    local name=${AG_BENCH_NAME:-authgate} upstreams='upstreams = ["static://200"]'
    [ -n "${cookie_secret:-}" ] || cookie_secret=$(openssl rand -base64 32)
    grep -q '^upstreams *=' <<<"${2:-}" && upstreams=
    cat >"$tmp/$name.cfg" <<CFG
provider = "oidc"
oidc_issuer_url = "$issuer"
client_id = "authgate"
client_secret = "authgate-secret"
cookie_secret = "$cookie_secret"
cookie_secure = false
email_domains = ["*"]
skip_jwt_bearer_tokens = true
oidc_extra_audiences = ["urn:authgate:api"]
scope = "openid email profile groups"
redis_connection_url = "redis://127.0.0.1:$redis_port/0"
http_address = "127.0.0.1:$1"
$upstreams
set_xauthrequest = true
skip_provider_button = true
request_logging = false
workers = ${AG_BENCH_WORKERS:-0}
${2:-}
CFG
    chmod 600 "$tmp/$name.cfg"
    LD_PRELOAD="${AG_BENCH_PRELOAD:-}${AG_BENCH_PRELOAD:+${LD_PRELOAD:+:}}${LD_PRELOAD:-}" \
        ${AG_BENCH_WRAP:-} build-bench/src/authgate --config "$tmp/$name.cfg" 2>"$tmp/$name.log" &
    ag_pid=$!
    pids+=("$ag_pid")
    ag="http://127.0.0.1:$1"
    wait_http "$ag/ready"
    if [ "$(cat "/proc/$ag_pid/comm")" != authgate ]; then
        ag_pid=$(pgrep -n -x -P "$ag_pid" authgate) || { echo "bench: no authgate process under the wrapper" >&2; exit 1; }
    fi
}

# rss_kib PID -> VmRSS in KiB
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# threads_of PID -> its thread count
threads_of() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
