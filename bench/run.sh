#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# authgate benchmark: a figure, not a test. Starts on loopback, on free ports, Redis, the test OpenID
# provider, an optimised authgate (build-bench/, no sanitizers), nginx `return 200` (the ceiling for
# an HTTP answer on this machine) and the C peer, Apache 2.4 (mpm_event) with Debian's
# mod_auth_openidc; logs in once to each, then runs wrk against:
#   ceiling          nginx return 200
#   check            the Istio ext_authz path (--upstream=static://200) with the session cookie
#   auth             /oauth2/auth (nginx auth_request, Caddy forward_auth) with the session cookie
#   login302         an unauthenticated browser (302 to the provider, --skip-provider-button)
#   bearer1k         bearer JWTs, 1,000 distinct valid tokens in rotation (the verified-token cache
#                    serves most of them)
#   peer-bearer      mod_auth_openidc, AuthType oauth20, the same 1,000 tokens, verified with the
#                    provider's JWKS (OIDCOAuthVerifyJwksUri; version 2.4.12 wants it over https, so
#                    this run's nginx serves the provider over https with a self-signed certificate
#                    for 127.0.0.1, trusted through OIDCCABundlePath), audience and issuer required
#                    with `Require claim`
#   peer-session     mod_auth_openidc, AuthType openid-connect, OIDCSessionType server-cache in this
#                    run's Redis (OIDCCacheType redis), with the cookie of one real login
#   bearer-distinct  bearer JWTs, N distinct tokens in rotation (-n, default 30,000, minted just before
#                    the row: about a minute): so many more than the verified-token cache's 4,096
#                    4-way LRU slots that (nearly) every request verifies an RS256 signature, which
#                    the verify/req column shows measured, not argued (10,000 tokens still hit ~14%)
# and prints requests/s, p50, p99 and the ratio to the ceiling measured in the same run (measured at the
# start and at the end: these machines drift), and for each row the server's CPU time per request
# (utime+stime from /proc/PID/stat around the wrk run, divided by the requests wrk completed), the
# signature verifications per request (bench/verify-count.c, preloaded into authgate, counts its
# EVP_DigestVerify calls: no test-only code in the daemon), the server's RSS halfway through the row
# and, for check and bearer1k, authgate's requests/s over the peer's (x peer). Just before
# bearer-distinct it runs `openssl speed rsa2048` (the libcrypto authgate uses, one core) and prints, for
# that row, authgate's requests per CPU-second over openssl's RSA-2048 verifies per second.
# Each row also gets a latency pass with one connection (wrk -t1 -c1, -l seconds), in a second table.
# wrk counts 3xx as success: after each row with a session cookie the cookie must still answer 2xx,
# or the row is marked INVALID. Last, authgate's RSS with 10,000 idle connections open (-i;
# bench/idle-conns.py: each sends one check request, then idles).
# Everything it starts, it stops.
#   bench/run.sh [-d SECONDS] [-c CONNECTIONS] [-n DISTINCT_TOKENS] [-l C1_SECONDS] [-i IDLE_CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
dur=10
conns=64
ndistinct=30000
c1dur=5
nidle=10000
while getopts "d:c:n:l:i:" o; do
    case $o in
    d) dur=$OPTARG ;;
    c) conns=$OPTARG ;;
    n) ndistinct=$OPTARG ;;
    l) c1dur=$OPTARG ;;
    i) nidle=$OPTARG ;;
    *)
        echo "usage: $0 [-d seconds] [-c connections] [-n distinct-tokens] [-l c1-seconds] [-i idle-connections]" >&2
        exit 2
        ;;
    esac
done
threads=2
. bench/common.sh

bench_require wrk nginx redis-server node curl openssl cc python3
apache=$(command -v apache2 || echo /usr/sbin/apache2)
apache_mods=/usr/lib/apache2/modules
if [ ! -x "$apache" ] || [ ! -f "$apache_mods/mod_auth_openidc.so" ]; then
    echo "bench: apache2 or libapache2-mod-auth-openidc is missing: run tests/deps.sh" >&2
    exit 1
fi

# the idle-connection pass needs an open-files limit above its connections, in authgate and the client
want=$((nidle + 1024))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
    echo "bench: open-files hard limit $hard: idle connections lowered to $((hard - 1024))" >&2
    want=$hard
    nidle=$((hard - 1024))
fi
[ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ] && ulimit -n "$want"

bench_build
bench_start

# The verification counter: two little-endian u64 (EVP_DigestVerify calls, calls that answered 1).
cc -shared -fPIC -O2 -o "$tmp/verify-count.so" bench/verify-count.c -ldl
counter=$tmp/verify-count
head -c 16 /dev/zero >"$counter"
verifies() { od -An -t u8 -N16 "$counter" | awk '{print $1, $2}'; }

start_redis
ag_port=$(free_port)
start_provider "$ag_port"
# max_connections: room for the idle connections and a few more
export AG_BENCH_VERIFY_COUNTER=$counter
AG_BENCH_PRELOAD=$tmp/verify-count.so start_authgate "$ag_port" \
    "max_connections = $((nidle + 100 > 10000 ? nidle + 100 : 10000))"

# nginx: the ceiling, and the provider over https for mod_auth_openidc (a self-signed certificate for
# 127.0.0.1; Apache's directory is readable by the user its children run as)
ap=$tmp/apache
mkdir -p "$ap/htdocs/api" "$ap/run" "$tmp/nginx/logs"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$tmp/tls.key" -out "$ap/tls.crt" 2>/dev/null
nginx_port=$(free_port)
tls_port=$(free_port)
cat >"$tmp/nginx/nginx.conf" <<NGX
worker_processes 2;
events { worker_connections 4096; }
http {
    access_log off;
    server { listen 127.0.0.1:$nginx_port; location / { return 200 "OK"; } }
    server {
        listen 127.0.0.1:$tls_port ssl;
        ssl_certificate $ap/tls.crt;
        ssl_certificate_key $tmp/tls.key;
        location / { proxy_pass http://127.0.0.1:$op_port; }
    }
}
NGX
nginx -p "$tmp/nginx" -c nginx.conf -g "daemon off; pid $tmp/nginx/nginx.pid; error_log stderr;" 2>"$tmp/nginx.log" &
nginx_pid=$!
pids+=("$nginx_pid")
ngx="http://127.0.0.1:$nginx_port"
wait_http "$ngx/"
# the ceiling's CPU is nginx's: the master and its workers
mapfile -t nginx_pids < <(echo "$nginx_pid"; pgrep -P "$nginx_pid")

# The C peer: Apache with Debian's mpm_event.conf defaults, two virtual hosts (their cache settings
# differ: bearer tokens with the default shm cache, which holds the JWKS in shared memory; the
# session host with Redis, which then also holds the JWKS and state), the provider's endpoints
# configured statically (2.4.12 wants https ones: through nginx), and no access log, like the others.
pb_port=$(free_port)
ps_port=$(free_port)
pb="http://127.0.0.1:$pb_port"
ps="http://127.0.0.1:$ps_port"
echo OK >"$ap/htdocs/app"
echo OK >"$ap/htdocs/api/items"
user=
if [ "$(id -u)" = 0 ]; then
    # Apache does not run its children as root: as nobody, which must read the certificate and files
    user="User #$(id -u nobody)
Group #$(id -g nobody)"
    chmod 711 "$tmp"
    chmod -R a+rX "$ap"
fi
cat >"$ap/apache2.conf" <<APACHE
ServerRoot "$ap"
ServerName 127.0.0.1
PidFile "$ap/apache2.pid"
DefaultRuntimeDir "$ap/run"
ErrorLog "$ap/error.log"
LogLevel warn
$user
LoadModule mpm_event_module $apache_mods/mod_mpm_event.so
LoadModule authn_core_module $apache_mods/mod_authn_core.so
LoadModule authz_core_module $apache_mods/mod_authz_core.so
LoadModule authz_user_module $apache_mods/mod_authz_user.so
LoadModule auth_openidc_module $apache_mods/mod_auth_openidc.so

StartServers 2
MinSpareThreads 25
MaxSpareThreads 75
ThreadLimit 64
ThreadsPerChild 25
MaxRequestWorkers 150
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
EnableMMAP Off
DocumentRoot "$ap/htdocs"

OIDCCryptoPassphrase "$(openssl rand -hex 24)"
OIDCCABundlePath "$ap/tls.crt"

Listen 127.0.0.1:$pb_port
<VirtualHost 127.0.0.1:$pb_port>
    OIDCOAuthVerifyJwksUri https://127.0.0.1:$tls_port/jwks
    <Location /api>
        AuthType oauth20
        <RequireAll>
            Require claim aud:urn:authgate:api
            Require claim iss:$issuer
        </RequireAll>
    </Location>
</VirtualHost>

Listen 127.0.0.1:$ps_port
<VirtualHost 127.0.0.1:$ps_port>
    OIDCCacheType redis
    OIDCRedisCacheServer 127.0.0.1:$redis_port
    OIDCProviderIssuer $issuer
    OIDCProviderAuthorizationEndpoint https://127.0.0.1:$tls_port/auth
    OIDCProviderTokenEndpoint https://127.0.0.1:$tls_port/token
    OIDCProviderTokenEndpointAuth client_secret_basic
    OIDCProviderJwksUri https://127.0.0.1:$tls_port/jwks
    OIDCClientID apache-peer
    OIDCClientSecret apache-peer-secret
    OIDCRedirectURI $ps/redirect_uri
    OIDCScope "openid email profile groups"
    OIDCSessionType server-cache
    OIDCSessionInactivityTimeout 3600
    # always redirect to the provider (wrk and node's fetch would otherwise get 401)
    OIDCUnAuthAction auth true
    <Location />
        AuthType openid-connect
        Require valid-user
    </Location>
</VirtualHost>
APACHE
"$apache" -f "$ap/apache2.conf" -k start -DFOREGROUND 2>"$tmp/apache.log" &
ap_pid=$!
pids+=("$ap_pid")
wait_http "$pb/api/items" 401
wait_http "$ps/app" 302
curl -sf -o /dev/null -X POST -H 'content-type: application/json' "http://127.0.0.1:$op_port/__admin/clients" \
    -d "{\"client_id\":\"apache-peer\",\"client_secret\":\"apache-peer-secret\",\"grant_types\":[\"authorization_code\"],
         \"response_types\":[\"code\"],\"token_endpoint_auth_method\":\"client_secret_basic\",
         \"redirect_uris\":[\"$ps/redirect_uri\"]}"
peer_cookie=$(NODE_EXTRA_CA_CERTS=$ap/tls.crt node bench/login-cookie.mjs "$ps" alice alice-pw /app mod_auth_openidc_session)
[ "$(status "$ps/app" -H "Cookie: $peer_cookie")" = 200 ] || { echo "bench: the peer's session does not work" >&2; exit 1; }

cookie=$(node bench/login-cookie.mjs "$ag" alice alice-pw)
[ "$(status "$ag/app" -H "Cookie: $cookie")" = 200 ] || { echo "bench: the session does not work" >&2; exit 1; }

node bench/tokens.mjs "$issuer" 1000 >"$tmp/tokens1k"
read -r v0 _ < <(verifies)
[ "$(status "$ag/api/items" -H "Authorization: Bearer $(head -1 "$tmp/tokens1k")")" = 200 ] ||
    { echo "bench: a bearer token is refused" >&2; exit 1; }
read -r v1 _ < <(verifies)
# a new token must have cost one verification, or the counter is not in authgate (LD_PRELOAD lost)
[ $((v1 - v0)) = 1 ] || { echo "bench: a new bearer token made $((v1 - v0)) signature verifications, not 1" >&2; exit 1; }
[ "$(status "$pb/api/items" -H "Authorization: Bearer $(head -1 "$tmp/tokens1k")")" = 200 ] ||
    { echo "bench: the peer refuses a bearer token" >&2; exit 1; }
# both check the audience: a token for another resource is refused by both
other=$(curl -s -u api-client:api-secret -d grant_type=client_credentials -d scope=api:read \
    -d resource=urn:bench:other "$issuer/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
for u in "$ag" "$pb"; do
    [ "$(status "$u/api/items" -H "Authorization: Bearer $other")" = 401 ] ||
        { echo "bench: $u accepts a token for another audience" >&2; exit 1; }
done

hz=$(getconf CLK_TCK)
# cpu_ticks PID... -> utime + stime of those processes (all their threads), in clock ticks
cpu_ticks() {
    local p files=()
    for p in "$@"; do files+=("/proc/$p/stat"); done
    awk '{sub(/^.*\) /, ""); t += $12 + $13} END {print t}' "${files[@]}"
}
# apache_ticks -> the parent's utime + stime + those of its reaped children (cutime, cstime), plus
# the live children's: complete even when the MPM replaces children during a run
apache_ticks() {
    {
        awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$ap_pid/stat"
        for p in $(pgrep -P "$ap_pid"); do
            awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || true
        done
    } | awk '{t += $1} END {print t}'
}
server_ticks() {
    case $1 in
    authgate) cpu_ticks "$ag_pid" ;;
    nginx) cpu_ticks "${nginx_pids[@]}" ;;
    apache) apache_ticks ;;
    esac
}
# server_mib SERVER -> authgate's VmRSS; Apache's PSS summed over its processes (shared pages
# counted once); nothing for nginx
server_mib() {
    case $1 in
    authgate) awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$ag_pid/status" ;;
    apache)
        for p in "$ap_pid" $(pgrep -P "$ap_pid"); do awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true; done |
            awk '{t += $1} END {printf "%.1f", t / 1024}'
        ;;
    *) echo - ;;
    esac
}
# wrk_field OUTPUT WHAT -> requests/s, p50, p99 or the completed requests of a wrk --latency output
wrk_field() {
    case $2 in
    rps) awk '/^Requests\/sec/ {print $2}' <<<"$1" ;;
    p50) awk '$1=="50%" {print $2}' <<<"$1" ;;
    p99) awk '$1=="99%" {print $2}' <<<"$1" ;;
    requests) awk '$2=="requests" && $3=="in" {print $1}' <<<"$1" ;;
    esac
}

# run NAME SERVER URL [COOKIE | lua:SCRIPT:TOKENFILE]
#   -> "NAME rps p50 p99 cpu_us_per_request verifies_per_request mib c1_rps c1_p50 c1_p99 flag"
# SERVER (authgate, nginx or apache) is whose CPU time and memory are measured; verifications are
# authgate's only. flag is "ok", or why the row is not valid (no spaces).
run() {
    local name=$1 server=$2 url=$3 hdr=() out out1 rps p50 p99 reqs t0 t1 c0 c1 ok0 ok1 cpu vpr mib flag=ok wpid code
    case "${4:-}" in
    "") ;;
    lua:*)
        IFS=: read -r _ script tokens <<<"$4"
        export AG_TOKENS=$tokens
        hdr=(-s "$script")
        ;;
    *) hdr=(-H "Cookie: $4") ;;
    esac
    AG_WRK_THREADS=$threads wrk -t$threads -c"$conns" -d2s "${hdr[@]}" "$url" >/dev/null 2>&1 # warm-up
    t0=$(server_ticks "$server")
    read -r c0 ok0 < <(verifies)
    AG_WRK_THREADS=$threads wrk -t$threads -c"$conns" -d"${dur}s" --latency "${hdr[@]}" "$url" >"$tmp/wrk.out" &
    wpid=$!
    sleep $((dur / 2))
    mib=$(server_mib "$server") # while it serves the connections
    wait $wpid
    out=$(<"$tmp/wrk.out")
    t1=$(server_ticks "$server")
    read -r c1 ok1 < <(verifies)
    rps=$(wrk_field "$out" rps)
    p50=$(wrk_field "$out" p50)
    p99=$(wrk_field "$out" p99)
    reqs=$(wrk_field "$out" requests)
    if grep -q "Non-2xx or 3xx" <<<"$out"; then
        echo "bench: $name had non-2xx/3xx answers:" >&2
        grep "Non-2xx" <<<"$out" >&2
        flag=non-2xx/3xx-answers
    fi
    grep -q "Socket errors" <<<"$out" && echo "bench: $name: wrk $(grep "Socket errors" <<<"$out" | sed 's/^ *//')" >&2
    [ $((c1 - c0)) = $((ok1 - ok0)) ] || echo "bench: $name: $((c1 - c0 - ok1 + ok0)) signatures did not verify" >&2
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    vpr=-
    [ "$server" = authgate ] && vpr=$(awk -v v=$((c1 - c0)) -v n="$reqs" 'BEGIN {printf "%.3f", v / n}')
    # one connection: the latency of a request on its own
    out1=$(AG_WRK_THREADS=1 wrk -t1 -c1 -d"${c1dur}s" --latency "${hdr[@]}" "$url")
    grep -q "Non-2xx or 3xx" <<<"$out1" && flag=non-2xx/3xx-answers
    # wrk counts 3xx as success: a lost session would look like a fast run
    case "${4:-}" in
    "" | lua:*) ;;
    *)
        code=$(status "$url" -H "Cookie: $4")
        [ "${code:0:1}" = 2 ] || flag="session-lost:-$code-after-the-row"
        ;;
    esac
    echo "$name $rps $p50 $p99 $cpu $vpr $mib $(wrk_field "$out1" rps) $(wrk_field "$out1" p50) $(wrk_field "$out1" p99) $flag"
}

# openssl speed rsa2048, one process: RSA-2048 public-key operations (verify) per second. An RS256
# verification is SHA-256 over the ~0.5 KB signing input (well under a microsecond) plus exactly this
# operation (e = 65537, PKCS#1 v1.5, as the test provider's 2048-bit keys); openssl speed has no
# digest-and-verify test. With -mr it writes "+R2:COUNT:BITS:SECONDS" for the verify pass to stderr
# (OpenSSL 1.1 and 3).
openssl_verify_rate() {
    openssl speed -mr -seconds 3 rsa2048 2>&1 >/dev/null | awk -F: '$1=="+R2" && $4 > 0 {printf "%.0f", $2 / $4}'
}

echo "bench: wrk -t$threads -c$conns -d${dur}s, and -t1 -c1 -d${c1dur}s, on $(nproc) cores (wrk, Redis and the servers share them)"
results=()
results+=("$(run ceiling-start nginx "$ngx/")")
results+=("$(run check authgate "$ag/app" "$cookie")")
results+=("$(run auth authgate "$ag/oauth2/auth" "$cookie")")
results+=("$(run login302 authgate "$ag/app")")
results+=("$(run bearer1k authgate "$ag/api/items" "lua:bench/bearer.lua:$tmp/tokens1k")")
# right after bearer1k: the tokens live 10 minutes
results+=("$(run peer-bearer apache "$pb/api/items" "lua:bench/bearer.lua:$tmp/tokens1k")")
results+=("$(run peer-session apache "$ps/app" "$peer_cookie")")
# minted now, as they live 10 minutes; the test provider makes a few hundred a second
echo "bench: minting $ndistinct access tokens for bearer-distinct"
node bench/tokens.mjs "$issuer" "$ndistinct" >"$tmp/tokens-distinct"
# right before the row it is compared with, with every server idle
ossl=$(openssl_verify_rate)
[ -n "$ossl" ] || { echo "bench: no verify figure from openssl speed rsa2048" >&2; exit 1; }
results+=("$(run bearer-distinct authgate "$ag/api/items" "lua:bench/bearer.lua:$tmp/tokens-distinct")")
results+=("$(run ceiling-end nginx "$ngx/")")
hwm=$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$ag_pid/status")

# Idle connections: each sends one check request with the session cookie, then stays open
echo "bench: opening $nidle idle connections to authgate"
read -r idle_open idle_ok idle_still idle_rss idle_new idle_new_ms < <(python3 bench/idle-conns.py 127.0.0.1 "$ag_port" "$nidle" "$ag_pid" /app "$cookie")
sleep 2
after_rss=$(rss_kib "$ag_pid")

# to_us LATENCY -> microseconds, from wrk's "812.00us", "1.23ms", "1.05s" or "1.00m"
to_us() { awk -v v="$1" 'BEGIN {n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1e3; else if (v ~ /m$/) print n * 6e7; else print n * 1e6}'; }
declare -A rps_of c1p50_of cpu_of
for r in "${results[@]}"; do
    read -r name rps _ _ cpu _ _ _ p _ <<<"$r"
    rps_of[$name]=$rps
    cpu_of[$name]=$cpu
    c1p50_of[$name]=$(to_us "$p")
done
ceiling=$(awk -v a="${rps_of[ceiling-start]}" -v b="${rps_of[ceiling-end]}" 'BEGIN {printf "%.0f", (a + b) / 2}')
c1_ceiling_p50=$(awk -v a="${c1p50_of[ceiling-start]}" -v b="${c1p50_of[ceiling-end]}" 'BEGIN {printf "%.0f", (a + b) / 2}')

# (the µ takes two bytes: its column is one wider in printf's count)
printf '\n%-16s %11s %9s %9s %9s %12s %10s %8s %9s %7s\n' target requests/s p50 p99 "x ceiling" "CPU µs/req" \
    verify/req "RSS MiB" "x openssl" "x peer"
for r in "${results[@]}"; do
    read -r name rps p50 p99 cpu vpr mib _ _ _ flag <<<"$r"
    xo=- xp=-
    [ "$name" = bearer-distinct ] && xo=$(awk -v o="$ossl" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.2f", 1e6 / c / o; else print "-"}')
    [ "$name" = check ] && xp=$(awk -v a="$rps" -v b="${rps_of[peer-session]}" 'BEGIN {printf "%.1f", a / b}')
    [ "$name" = bearer1k ] && xp=$(awk -v a="$rps" -v b="${rps_of[peer-bearer]}" 'BEGIN {printf "%.1f", a / b}')
    printf '%-16s %11.0f %9s %9s %9.2f %11s %10s %8s %9s %7s%s\n' "$name" "$rps" "$p50" "$p99" \
        "$(awk -v a="$rps" -v b="$ceiling" 'BEGIN {print a / b}')" "$cpu" "$vpr" "$mib" "$xo" "$xp" \
        "$([ "$flag" = ok ] || echo "  INVALID: ${flag//-/ }")"
done
echo
echo "ceiling = mean of nginx return 200 at start and end ($ceiling requests/s); x ceiling = requests/s / ceiling"
echo "x peer = authgate's requests/s over mod_auth_openidc's in this run: check / peer-session (both with the"
echo "  session in this Redis), bearer1k / peer-bearer (the same 1,000 tokens)"
echo "CPU µs/req = the server's utime+stime in the wrk run / requests (nginx: master+workers; Apache: parent,"
echo "  children, and children that exited during the run)"
echo "verify/req = authgate's signature verifications (EVP_DigestVerify calls, bench/verify-count.c) / requests"
echo "RSS MiB = halfway through the row's $conns-connection run: authgate's VmRSS; Apache's PSS summed over its processes"
awk -v o="$ossl" 'BEGIN {printf "openssl speed rsa2048, this libcrypto, one core: %d verify/s (%.1f µs); x openssl =\n", o, 1e6 / o}'
echo "  (1e6 / CPU µs/req) / $ossl: authgate's requests per CPU-second over openssl's RSA-2048 verifies per second"
awk -v o="$ossl" -v a="${cpu_of[ceiling-start]}" -v b="${cpu_of[ceiling-end]}" -v d="${cpu_of[bearer-distinct]}" 'BEGIN {
    h = (a + b) / 2; v = 1e6 / o
    printf "  a server whose every request costs nginx'"'"'s HTTP answer (%.1f µs) plus one such verify (%.1f µs) reaches\n", h, v
    printf "  x openssl = %.2f; bearer-distinct spends %.1f µs per request beyond that\n", v / (h + v), d - h - v }'
rss64=$(for r in "${results[@]}"; do read -r name _ _ _ _ vpr mib _ <<<"$r"; [ "$vpr" = - ] || echo "$mib"; done | sort -n | tail -1)
awk -v c="$conns" -v m="$rss64" -v h="$hwm" -v n="$nidle" -v o="$idle_open" -v a="$idle_ok" -v s="$idle_still" -v r="$idle_rss" \
    -v f="$after_rss" -v st="$idle_new" -v ms="$idle_new_ms" 'BEGIN {
    printf "authgate memory: RSS serving %d connections up to %.1f MiB (peak %.1f MiB); with %d idle connections\n", c, m, h, n
    printf "  open: %.1f MiB, %.1f KiB per connection over that peak; %.1f MiB after they closed\n", r / 1024, (r - h * 1024) / (n > 0 ? n : 1), f / 1024
    printf "  (bench/idle-conns.py: %d opened, %d answered 2xx to their one check request, %d still open when\n", o, a, s
    printf "  measured; a new request meanwhile: %s in %s ms)\n", st, ms }'
echo "peer: $("$apache" -v | sed -n 's/^Server version: //p'), mod_auth_openidc $(dpkg-query -W -f='${Version}' libapache2-mod-auth-openidc 2>/dev/null || echo '?'), mpm_event"

printf '\nOne connection (wrk -t1 -c1 -d%ss): the latency of a request on its own\n' "$c1dur"
printf '%-16s %11s %9s %9s %14s\n' target requests/s p50 p99 "p50 - ceiling"
for r in "${results[@]}"; do
    read -r name _ _ _ _ _ _ rps p50 p99 _ <<<"$r"
    printf '%-16s %11.0f %9s %9s %12s µs\n' "$name" "$rps" "$p50" "$p99" \
        "$(awk -v p="${c1p50_of[$name]}" -v c="$c1_ceiling_p50" 'BEGIN {printf "%+.0f", p - c}')"
done
echo
echo "p50 - ceiling = the row's p50 at one connection minus nginx's (mean of start and end, ${c1_ceiling_p50} µs):"
echo "  the time the server adds to a request"
