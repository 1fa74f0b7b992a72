#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# authgate benchmark: a figure, not a test. Starts on loopback, on free ports, Redis, the test OpenID
# provider, an optimised authgate (build-bench/, no sanitizers) and nginx `return 200` (the ceiling for
# an HTTP answer on this machine), logs in once, then runs wrk against:
#   ceiling   nginx return 200
#   check     the Istio ext_authz path (--upstream=static://200) with the session cookie
#   auth      /oauth2/auth (nginx auth_request, Caddy forward_auth) with the session cookie
#   login302  an unauthenticated browser (302 to the provider, --skip-provider-button)
#   bearer1k  bearer JWTs, 1,000 distinct valid tokens in rotation (the verified-token cache serves them)
#   bearer10k bearer JWTs, 10,000 distinct tokens in rotation: more than the cache holds, so nearly every
#             request verifies an RS256 signature
# and prints requests/s, p50, p99 and the ratio to the ceiling measured in the same run (measured at the
# start and at the end: these machines drift). Everything it starts, it stops.
#   bench/run.sh [-d SECONDS] [-c CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dur=10
conns=64
while getopts "d:c:" o; do
    case $o in
    d) dur=$OPTARG ;;
    c) conns=$OPTARG ;;
    *) echo "usage: $0 [-d seconds] [-c connections]" >&2; exit 2 ;;
    esac
done

for tool in wrk nginx redis-server node curl; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing: run tests/deps.sh" >&2; exit 1; }
done
[ -d tests/e2e/node_modules ] || (cd tests/e2e && npm ci --no-audit --no-fund)

echo "bench: building an optimised authgate in build-bench/"
if [ ! -f build-bench/Makefile ]; then
    [ -x configure ] || ./autogen.sh >/dev/null
    mkdir -p build-bench
    (cd build-bench && ../configure CFLAGS="-O2 -g" >/dev/null)
fi
make -s -C build-bench -j2 src/authgate >/dev/null

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
    for _ in $(seq 1 200); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = "${2:-200}" ] && return 0
        sleep 0.05
    done
    echo "bench: $1 did not answer ${2:-200}" >&2
    return 1
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >"$tmp/redis.log" 2>&1 &
pids+=($!)

ag_port=$(free_port)
node tests/e2e/provider.js --port 0 --redirect-uri "http://127.0.0.1:$ag_port/oauth2/callback" >"$tmp/op.out" 2>"$tmp/op.err" &
pids+=($!)
for _ in $(seq 1 200); do grep -q '^{' "$tmp/op.out" 2>/dev/null && break; sleep 0.05; done
issuer=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["issuer"])' "$tmp/op.out")

cat >"$tmp/authgate.cfg" <<CFG
provider = "oidc"
oidc_issuer_url = "$issuer"
client_id = "authgate"
client_secret = "authgate-secret"
cookie_secret = "$(openssl rand -base64 32)"
cookie_secure = false
email_domains = ["*"]
skip_jwt_bearer_tokens = true
oidc_extra_audiences = ["urn:authgate:api"]
scope = "openid email profile groups"
redis_connection_url = "redis://127.0.0.1:$redis_port/0"
http_address = "127.0.0.1:$ag_port"
upstreams = ["static://200"]
set_xauthrequest = true
skip_provider_button = true
request_logging = false
workers = ${AG_BENCH_WORKERS:-0}
CFG
# AG_BENCH_WRAP (e.g. "perf record -g -o /tmp/perf.data") runs authgate under a profiler; RSS is then not its own.
${AG_BENCH_WRAP:-} build-bench/src/authgate --config "$tmp/authgate.cfg" 2>"$tmp/authgate.log" &
ag_pid=$!
pids+=($ag_pid)
wait_http "http://127.0.0.1:$ag_port/ready"

nginx_port=$(free_port)
mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<NGX
worker_processes 2;
events { worker_connections 4096; }
http {
    access_log off;
    server { listen 127.0.0.1:$nginx_port; location / { return 200 "OK"; } }
}
NGX
nginx -p "$tmp/nginx" -c nginx.conf -g "daemon off; pid $tmp/nginx/nginx.pid; error_log stderr;" 2>"$tmp/nginx.log" &
pids+=($!)
wait_http "http://127.0.0.1:$nginx_port/"

cookie=$(node bench/login-cookie.mjs "http://127.0.0.1:$ag_port" alice alice-pw)
ag="http://127.0.0.1:$ag_port"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$ag/app")" = 200 ] || { echo "bench: the session does not work" >&2; exit 1; }

node bench/tokens.mjs "$issuer" 1000 >"$tmp/tokens1k"
node bench/tokens.mjs "$issuer" 10000 >"$tmp/tokens10k"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(head -1 "$tmp/tokens1k")" "$ag/api/items")" = 200 ] ||
    { echo "bench: a bearer token is refused" >&2; exit 1; }

# run NAME URL [COOKIE | lua:SCRIPT:TOKENFILE] -> prints "NAME rps p50 p99" (latencies in ms)
run() {
    local name=$1 url=$2 hdr=() out rps p50 p99
    case "${3:-}" in
    "") ;;
    lua:*)
        IFS=: read -r _ script tokens <<<"$3"
        export AG_TOKENS=$tokens
        hdr=(-s "$script")
        ;;
    *) hdr=(-H "Cookie: $3") ;;
    esac
    wrk -t2 -c"$conns" -d2s "${hdr[@]}" "$url" >/dev/null 2>&1 # warm-up
    out=$(wrk -t2 -c"$conns" -d"${dur}s" --latency "${hdr[@]}" "$url")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    if grep -q "Non-2xx or 3xx" <<<"$out"; then
        echo "bench: $name had non-2xx/3xx answers:" >&2
        grep "Non-2xx" <<<"$out" >&2
    fi
    echo "$name $rps $p50 $p99"
}

echo "bench: wrk -t2 -c$conns -d${dur}s on $(nproc) cores (wrk, Redis and the servers share them)"
results=()
results+=("$(run ceiling-start "http://127.0.0.1:$nginx_port/")")
results+=("$(run check "$ag/app" "$cookie")")
results+=("$(run auth "$ag/oauth2/auth" "$cookie")")
results+=("$(run login302 "$ag/app")")
results+=("$(run bearer1k "$ag/api/items" "lua:bench/bearer.lua:$tmp/tokens1k")")
results+=("$(run bearer10k "$ag/api/items" "lua:bench/bearer.lua:$tmp/tokens10k")")
results+=("$(run ceiling-end "http://127.0.0.1:$nginx_port/")")
# a lost session would look like a fast run (wrk counts 3xx as success): check it still answers 200
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$ag/app")" = 200 ] || { echo "bench: the session was lost during the run" >&2; exit 1; }
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$ag_pid/status")

ceiling=$(printf '%s\n' "${results[@]}" | awk '$1 ~ /^ceiling/ {s += $2; n++} END {printf "%.0f", s / n}')
printf '\n%-14s %12s %10s %10s %14s\n' target requests/s p50 p99 "x ceiling"
for r in "${results[@]}"; do
    read -r name rps p50 p99 <<<"$r"
    printf '%-14s %12.0f %10s %10s %14.2f\n' "$name" "$rps" "$p50" "$p99" "$(awk -v a="$rps" -v b="$ceiling" 'BEGIN {print a / b}')"
done
echo
echo "ceiling = mean of nginx return 200 at start and end ($ceiling requests/s); authgate RSS after the run: $((rss_kb / 1024)) MiB"
