#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# authgate benchmark: a figure, not a test. Starts on loopback, on free ports, Redis, the test OpenID
# provider, an optimised authgate (build-bench/, no sanitizers) and nginx `return 200` (the ceiling for
# an HTTP answer on this machine), logs in once, then runs wrk against:
#   ceiling          nginx return 200
#   check            the Istio ext_authz path (--upstream=static://200) with the session cookie
#   auth             /oauth2/auth (nginx auth_request, Caddy forward_auth) with the session cookie
#   login302         an unauthenticated browser (302 to the provider, --skip-provider-button)
#   bearer1k         bearer JWTs, 1,000 distinct valid tokens in rotation (the verified-token cache
#                    serves most of them)
#   bearer-distinct  bearer JWTs, N distinct tokens in rotation (-n, default 30,000, minted just before
#                    the row: about a minute): so many more than the verified-token cache's 4,096
#                    direct-mapped slots that (nearly) every request verifies an RS256 signature, which
#                    the verify/req column shows measured, not argued (10,000 tokens still hit ~14%)
# and prints requests/s, p50, p99 and the ratio to the ceiling measured in the same run (measured at the
# start and at the end: these machines drift), and for each row the server's CPU time per request
# (utime+stime from /proc/PID/stat around the wrk run, divided by the requests wrk completed), the
# signature verifications per request (bench/verify-count.c, preloaded into authgate, counts its
# EVP_DigestVerify calls: no test-only code in the daemon) and authgate's RSS after the row. Just before
# bearer-distinct it runs `openssl speed rsa2048` (the libcrypto authgate uses, one core) and prints, for
# that row, authgate's requests per CPU-second over openssl's RSA-2048 verifies per second.
# Everything it starts, it stops.
#   bench/run.sh [-d SECONDS] [-c CONNECTIONS] [-n DISTINCT_TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dur=10
conns=64
ndistinct=30000
while getopts "d:c:n:" o; do
    case $o in
    d) dur=$OPTARG ;;
    c) conns=$OPTARG ;;
    n) ndistinct=$OPTARG ;;
    *) echo "usage: $0 [-d seconds] [-c connections] [-n distinct-tokens]" >&2; exit 2 ;;
    esac
done
threads=2

for tool in wrk nginx redis-server node curl openssl cc; do
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

# The verification counter: two little-endian u64 (EVP_DigestVerify calls, calls that answered 1).
cc -shared -fPIC -O2 -o "$tmp/verify-count.so" bench/verify-count.c -ldl
counter=$tmp/verify-count
head -c 16 /dev/zero >"$counter"
verifies() { od -An -t u8 -N16 "$counter" | awk '{print $1, $2}'; }

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
# AG_BENCH_WRAP (e.g. "perf record -g -o /tmp/perf.data") runs authgate under a profiler; its CPU and RSS
# are then taken from the authgate process the wrapper starts.
LD_PRELOAD="$tmp/verify-count.so${LD_PRELOAD:+:$LD_PRELOAD}" AG_BENCH_VERIFY_COUNTER=$counter \
    ${AG_BENCH_WRAP:-} build-bench/src/authgate --config "$tmp/authgate.cfg" 2>"$tmp/authgate.log" &
ag_pid=$!
pids+=($ag_pid)
wait_http "http://127.0.0.1:$ag_port/ready"
if [ "$(cat "/proc/$ag_pid/comm")" != authgate ]; then
    ag_pid=$(pgrep -n -x -P "$ag_pid" authgate) || { echo "bench: no authgate process under the wrapper" >&2; exit 1; }
fi

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
nginx_pid=$!
pids+=($nginx_pid)
wait_http "http://127.0.0.1:$nginx_port/"
# the ceiling's CPU is nginx's: the master and its workers
mapfile -t nginx_pids < <(echo "$nginx_pid"; pgrep -P "$nginx_pid")

cookie=$(node bench/login-cookie.mjs "http://127.0.0.1:$ag_port" alice alice-pw)
ag="http://127.0.0.1:$ag_port"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$ag/app")" = 200 ] || { echo "bench: the session does not work" >&2; exit 1; }

node bench/tokens.mjs "$issuer" 1000 >"$tmp/tokens1k"
read -r v0 _ < <(verifies)
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(head -1 "$tmp/tokens1k")" "$ag/api/items")" = 200 ] ||
    { echo "bench: a bearer token is refused" >&2; exit 1; }
read -r v1 _ < <(verifies)
# a new token must have cost one verification, or the counter is not in authgate (LD_PRELOAD lost)
[ $((v1 - v0)) = 1 ] || { echo "bench: a new bearer token made $((v1 - v0)) signature verifications, not 1" >&2; exit 1; }

hz=$(getconf CLK_TCK)
# cpu_ticks PID... -> utime + stime of those processes (all their threads), in clock ticks
cpu_ticks() {
    local p files=()
    for p in "$@"; do files+=("/proc/$p/stat"); done
    awk '{sub(/^.*\) /, ""); t += $12 + $13} END {print t}' "${files[@]}"
}

# run NAME SERVER URL [COOKIE | lua:SCRIPT:TOKENFILE]
#   -> "NAME rps p50 p99 cpu_us_per_request verifies_per_request rss_mib" (latencies as wrk prints them)
# SERVER is authgate or nginx: whose CPU time is measured; verifications and RSS are authgate's only.
run() {
    local name=$1 server=$2 url=$3 hdr=() srv out rps p50 p99 reqs t0 t1 c0 c1 ok0 ok1 cpu vpr rss
    case "${4:-}" in
    "") ;;
    lua:*)
        IFS=: read -r _ script tokens <<<"$4"
        export AG_TOKENS=$tokens AG_WRK_THREADS=$threads
        hdr=(-s "$script")
        ;;
    *) hdr=(-H "Cookie: $4") ;;
    esac
    if [ "$server" = nginx ]; then srv=("${nginx_pids[@]}"); else srv=("$ag_pid"); fi
    wrk -t$threads -c"$conns" -d2s "${hdr[@]}" "$url" >/dev/null 2>&1 # warm-up
    t0=$(cpu_ticks "${srv[@]}")
    read -r c0 ok0 < <(verifies)
    out=$(wrk -t$threads -c"$conns" -d"${dur}s" --latency "${hdr[@]}" "$url")
    t1=$(cpu_ticks "${srv[@]}")
    read -r c1 ok1 < <(verifies)
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    reqs=$(awk '$2=="requests" && $3=="in" {print $1}' <<<"$out")
    if grep -q "Non-2xx or 3xx" <<<"$out"; then
        echo "bench: $name had non-2xx/3xx answers:" >&2
        grep "Non-2xx" <<<"$out" >&2
    fi
    [ $((c1 - c0)) = $((ok1 - ok0)) ] || echo "bench: $name: $((c1 - c0 - ok1 + ok0)) signatures did not verify" >&2
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    vpr=- rss=-
    if [ "$server" = authgate ]; then
        vpr=$(awk -v v=$((c1 - c0)) -v n="$reqs" 'BEGIN {printf "%.3f", v / n}')
        rss=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$ag_pid/status")
    fi
    echo "$name $rps $p50 $p99 $cpu $vpr $rss"
}

# openssl speed rsa2048, one process: RSA-2048 public-key operations (verify) per second. An RS256
# verification is SHA-256 over the ~0.5 KB signing input (well under a microsecond) plus exactly this
# operation (e = 65537, PKCS#1 v1.5, as the test provider's 2048-bit keys); openssl speed has no
# digest-and-verify test. With -mr it writes "+R2:COUNT:BITS:SECONDS" for the verify pass to stderr
# (OpenSSL 1.1 and 3).
openssl_verify_rate() {
    openssl speed -mr -seconds 3 rsa2048 2>&1 >/dev/null | awk -F: '$1=="+R2" && $4 > 0 {printf "%.0f", $2 / $4}'
}

echo "bench: wrk -t$threads -c$conns -d${dur}s on $(nproc) cores (wrk, Redis and the servers share them)"
results=()
results+=("$(run ceiling-start nginx "http://127.0.0.1:$nginx_port/")")
results+=("$(run check authgate "$ag/app" "$cookie")")
results+=("$(run auth authgate "$ag/oauth2/auth" "$cookie")")
results+=("$(run login302 authgate "$ag/app")")
results+=("$(run bearer1k authgate "$ag/api/items" "lua:bench/bearer.lua:$tmp/tokens1k")")
# minted now, as they live 10 minutes; the test provider makes a few hundred a second
echo "bench: minting $ndistinct access tokens for bearer-distinct"
node bench/tokens.mjs "$issuer" "$ndistinct" >"$tmp/tokens-distinct"
# right before the row it is compared with, with every server idle
ossl=$(openssl_verify_rate)
[ -n "$ossl" ] || { echo "bench: no verify figure from openssl speed rsa2048" >&2; exit 1; }
results+=("$(run bearer-distinct authgate "$ag/api/items" "lua:bench/bearer.lua:$tmp/tokens-distinct")")
results+=("$(run ceiling-end nginx "http://127.0.0.1:$nginx_port/")")
# a lost session would look like a fast run (wrk counts 3xx as success): check it still answers 200
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$ag/app")" = 200 ] || { echo "bench: the session was lost during the run" >&2; exit 1; }
hwm=$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$ag_pid/status")

ceiling=$(printf '%s\n' "${results[@]}" | awk '$1 ~ /^ceiling/ {s += $2; n++} END {printf "%.0f", s / n}')
# (the µ takes two bytes: its column is one wider in printf's count)
printf '\n%-16s %11s %9s %9s %9s %12s %10s %8s %9s\n' target requests/s p50 p99 "x ceiling" "CPU µs/req" \
    verify/req "RSS MiB" "x openssl"
for r in "${results[@]}"; do
    read -r name rps p50 p99 cpu vpr rss <<<"$r"
    xo=-
    [ "$name" = bearer-distinct ] && xo=$(awk -v o="$ossl" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.2f", 1e6 / c / o; else print "-"}')
    printf '%-16s %11.0f %9s %9s %9.2f %11s %10s %8s %9s\n' "$name" "$rps" "$p50" "$p99" \
        "$(awk -v a="$rps" -v b="$ceiling" 'BEGIN {print a / b}')" "$cpu" "$vpr" "$rss" "$xo"
done
echo
echo "ceiling = mean of nginx return 200 at start and end ($ceiling requests/s); authgate peak RSS $hwm MiB"
echo "CPU µs/req = the server's utime+stime in the wrk run (nginx master+workers on the ceiling rows) / requests"
echo "verify/req = authgate's signature verifications (EVP_DigestVerify calls, bench/verify-count.c) / requests"
awk -v o="$ossl" 'BEGIN {printf "openssl speed rsa2048, this libcrypto, one core: %d verify/s (%.1f µs); x openssl =\n", o, 1e6 / o}'
echo "  (1e6 / CPU µs/req) / $ossl: authgate's requests per CPU-second over openssl's RSA-2048 verifies per second"
