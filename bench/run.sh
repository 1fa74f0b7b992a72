#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# authgate benchmark: a figure, not a test. Starts on loopback, on free ports, Redis, the test OpenID
# provider, an optimised authgate (build-bench/, no sanitizers), nginx `return 200` (the ceiling for
# an HTTP answer on this machine) and the C peer, Apache 2.4 (mpm_event) with Debian's
# mod_auth_openidc; for the proxy rows a second nginx, the upstream (`return 200` with a 1 KiB body,
# and a file for the throughput pass), and a second authgate in proxy mode (--upstream=http://, the
# same Redis and cookie secret: the one login's cookie is valid at both); logs in once to each, then
# runs wrk against:
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
#   nginx-direct     the upstream itself: nginx return 200 with a 1 KiB body
#   nginx-proxy      nginx proxy_pass to the upstream (keep-alive upstream connections): a plain hop,
#                    no auth
#   nginx-authreq    our own recipe, conf/nginx-auth-request.conf.example (only its addresses
#                    replaced, plus keep-alive upstream connections as in nginx-proxy): auth_request to
#                    the check authgate's /oauth2/auth, then proxy_pass to the upstream, with the
#                    session cookie
#   ag-proxy         authgate's reverse proxy to the upstream, with the session cookie
#   bearer-distinct  bearer JWTs, N distinct tokens in rotation (-n, default 30,000, minted just before
#                    the row: about a minute): so many more than the verified-token cache's 4,096
#                    4-way LRU slots that (nearly) every request verifies an RS256 signature, which
#                    the verify/req column shows measured, not argued (10,000 tokens still hit ~14%)
# and prints requests/s, p50, p99 and the ratio to the ceiling measured in the same run (measured at the
# start and at the end: these machines drift), and for each row the server's CPU time per request
# (utime+stime from /proc/PID/stat around the wrk run, divided by the requests wrk completed; for the
# proxy rows the proxy's, not the upstream's: nginx-authreq counts nginx and authgate), the
# signature verifications per request (bench/verify-count.c, preloaded into authgate, counts its
# EVP_DigestVerify calls: no test-only code in the daemon), the server's RSS halfway through the row
# and, for check and bearer1k, authgate's requests/s over the peer's (x peer). Just before
# bearer-distinct it runs `openssl speed rsa2048` (the libcrypto authgate uses, one core) and prints, for
# that row, authgate's requests per CPU-second over openssl's RSA-2048 verifies per second.
# Each row also gets a latency pass with one connection (wrk -t1 -c1, -l seconds), in a second table.
# wrk counts 3xx as success: after each row with a session cookie the cookie must still answer 2xx,
# and after each row through the upstream the answer must be 200 with the upstream's 1 KiB body, or
# the row is marked INVALID. Under the table, the targets of issue 12 for authgate's proxy, PASS or
# MISS (figures: a MISS does not fail the run): ag-proxy / nginx-proxy requests/s >= 0.7, ag-proxy /
# nginx-authreq >= 1.0, ag-proxy's p99 <= 3 x nginx-proxy's, ag-proxy's RSS <= 32 MiB.
# Then the passes:
# - authgate's RSS with 10,000 idle connections open (-i; bench/idle-conns.py: each sends one check
#   request, then idles);
# - throughput: one 1 GiB download (-b MiB; a sparse file the upstream nginx sends with sendfile) with
#   curl from the upstream, through nginx proxy_pass and through authgate's proxy with the cookie, in
#   MiB/s; target: authgate >= 0.5 x nginx proxy_pass;
# - WebSocket tunnels: a third authgate (proxy mode, proxy_websockets) in front of an echo upstream
#   (bench/ws-upstream.mjs); bench/ws-idle.mjs opens 10,000 tunnels through it (-w) with the cookie,
#   each gets its 101 and the echo of one message, then idles; authgate's thread count and RSS
#   before and with them open, KiB per tunnel; target: a thread count that does not grow with them.
# -r runs only the rows named (comma-separated; ceiling is both ceiling rows); -p profiles authgate
# during the ag-proxy row (perf record -g) into bench/profile-ag-proxy.txt.
# Everything it starts, it stops.
#   bench/run.sh [-d SECONDS] [-c CONNECTIONS] [-n DISTINCT_TOKENS] [-l C1_SECONDS] [-i IDLE_CONNECTIONS]
#                [-b DOWNLOAD_MIB] [-w WEBSOCKET_TUNNELS] [-r ROW,...] [-p]
#   (-i, -b or -w 0: no such pass)
set -euo pipefail
cd "$(dirname "$0")/.."
dur=10
conns=64
ndistinct=30000
c1dur=5
nidle=10000
bigmib=1024
nws=10000
all_rows=ceiling,check,auth,login302,bearer1k,peer-bearer,peer-session,nginx-direct,nginx-proxy,nginx-authreq,ag-proxy,bearer-distinct
rows=$all_rows
profile=0
usage="usage: $0 [-d seconds] [-c connections] [-n distinct-tokens] [-l c1-seconds] [-i idle-connections]
       [-b download-MiB] [-w websocket-tunnels] [-r row,...] [-p]
rows: $all_rows"
while getopts "d:c:n:l:i:b:w:r:p" o; do
    case $o in
    d) dur=$OPTARG ;;
    c) conns=$OPTARG ;;
    n) ndistinct=$OPTARG ;;
    l) c1dur=$OPTARG ;;
    i) nidle=$OPTARG ;;
    b) bigmib=$OPTARG ;;
    w) nws=$OPTARG ;;
    r) rows=$OPTARG ;;
    p) profile=1 ;;
    *)
        echo "$usage" >&2
        exit 2
        ;;
    esac
done
IFS=, read -ra asked <<<"$rows"
for r in "${asked[@]}"; do
    [[ ",$all_rows," == *",$r,"* ]] || { echo "bench: no row $r" >&2; echo "$usage" >&2; exit 2; }
done
# want ROW -> whether -r asked for it
want() { [[ ",$rows," == *",$1,"* ]]; }
peer=0
if want peer-bearer || want peer-session; then peer=1; fi
threads=2
. bench/common.sh

bench_require wrk nginx redis-server node curl openssl cc python3
apache=$(command -v apache2 || echo /usr/sbin/apache2)
apache_mods=/usr/lib/apache2/modules
if [ "$peer" = 1 ] && { [ ! -x "$apache" ] || [ ! -f "$apache_mods/mod_auth_openidc.so" ]; }; then
    echo "bench: apache2 or libapache2-mod-auth-openidc is missing: run tests/deps.sh" >&2
    exit 1
fi

# The idle-connection pass needs an open-files limit above its connections, in authgate and the
# client; the tunnel pass twice its tunnels and a little more in authgate (the client's socket and
# the upstream's). With CAP_SYS_RESOURCE the hard limit is raised, else the passes are made to fit.
want_fds=$((nidle + 1024 > 2 * nws + 128 ? nidle + 1024 : 2 * nws + 128))
nws_asked=$nws
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want_fds" ] && ! ulimit -n "$want_fds" 2>/dev/null; then
    hard=$(ulimit -Hn)
    if [ "$nidle" -gt $((hard - 1024)) ]; then
        nidle=$((hard - 1024))
        echo "bench: open-files hard limit $hard: idle connections lowered to $nidle" >&2
    fi
    if [ "$nws" -gt $(((hard - 128) / 2)) ]; then
        nws=$(((hard - 128) / 2))
        echo "bench: open-files hard limit $hard: WebSocket tunnels lowered to $nws" >&2
    fi
    ulimit -n "$hard"
fi

bench_build
bench_start
# nginx's and Apache's children do not run as root: they must reach the files in $tmp they serve
[ "$(id -u)" = 0 ] && chmod 711 "$tmp"

# The verification counter: two little-endian u64 (EVP_DigestVerify calls, calls that answered 1).
cc -shared -fPIC -O2 -o "$tmp/verify-count.so" bench/verify-count.c -ldl
counter=$tmp/verify-count
head -c 16 /dev/zero >"$counter"
verifies() { od -An -t u8 -N16 "$counter" | awk '{print $1, $2}'; }

start_redis
ag_port=$(free_port)
start_provider "$ag_port"
# max_connections: room for the idle connections and a few more; nginx-authreq's nginx is a trusted
# proxy, as conf/nginx-auth-request.conf.example asks
export AG_BENCH_VERIFY_COUNTER=$counter
AG_BENCH_PRELOAD=$tmp/verify-count.so start_authgate "$ag_port" \
    "max_connections = $((nidle + 100 > 10000 ? nidle + 100 : 10000))
reverse_proxy = true
trusted_proxy_ips = [\"127.0.0.1\"]"

# The upstream of the proxy rows, a second nginx (its CPU is not the proxies'): return 200 with a
# 1 KiB body, and /big, a sparse file of -b MiB, sent with sendfile
up=$tmp/upstream
mkdir -p "$up/logs" "$up/html"
head -c 1024 < <(yes 'authgate bench upstream, a 1 KiB body.' | tr -d '\n') >"$tmp/body1k"
[ "$bigmib" -gt 0 ] && truncate -s "${bigmib}M" "$up/html/big"
[ "$(id -u)" = 0 ] && chmod -R a+rX "$up"
up_port=$(free_port)
cat >"$up/nginx.conf" <<NGX
worker_processes 2;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    server {
        listen 127.0.0.1:$up_port;
        location = /big { root $up/html; }
        location / { return 200 "$(<"$tmp/body1k")"; }
    }
}
NGX
nginx -p "$up" -c nginx.conf -g "daemon off; pid $up/nginx.pid; error_log stderr;" 2>"$tmp/upstream.log" &
up_pid=$!
pids+=("$up_pid")
upstream="http://127.0.0.1:$up_port"
wait_http "$upstream/"
mapfile -t up_pids < <(echo "$up_pid"; pgrep -P "$up_pid")

# authgate's reverse proxy to it: a second authgate (the check one keeps static://200)
agp_port=$(free_port)
check_pid=$ag_pid check_url=$ag
AG_BENCH_NAME=authgate-proxy start_authgate "$agp_port" "upstreams = [\"$upstream/\"]"
agp_pid=$ag_pid agp=$ag
ag_pid=$check_pid ag=$check_url

# nginx: the ceiling, the provider over https for mod_auth_openidc (a self-signed certificate for
# 127.0.0.1; Apache's directory is readable by the user its children run as), nginx-proxy's plain hop
# and nginx-authreq's recipe (included, its upstream blocks given keep-alive connections like
# nginx-proxy's)
ap=$tmp/apache
mkdir -p "$ap/htdocs/api" "$ap/run" "$tmp/nginx/logs"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$tmp/tls.key" -out "$ap/tls.crt" 2>/dev/null
nginx_port=$(free_port)
tls_port=$(free_port)
proxy_port=$(free_port)
authreq_port=$(free_port)
# render_recipe -> conf/nginx-auth-request.conf.example with authgate's, the app's and the listen
# address replaced (as tests/e2e/frontends.js does), keep-alive upstream connections added
render_recipe() {
    local t from to recipe=conf/nginx-auth-request.conf.example
    t=$(<"$recipe")
    for from in "server 127.0.0.1:4180;" "server 127.0.0.1:8080;" "listen 80;"; do
        case $from in
        *4180*) to="server 127.0.0.1:$ag_port; keepalive 64;" ;;
        *8080*) to="server 127.0.0.1:$up_port; keepalive 64;" ;;
        *) to="listen 127.0.0.1:$authreq_port;" ;;
        esac
        [ "$(grep -cF "$from" "$recipe")" = 1 ] || { echo "bench: $recipe: expected \"$from\" once" >&2; return 1; }
        t=${t/"$from"/"$to"}
    done
    # every proxy_pass (not the commented ones) on HTTP/1.1 without "Connection: close", so the
    # keep-alive connections are used
    sed -E 's|^( +)(proxy_pass http://[a-z]+;)|\1\2 proxy_http_version 1.1; proxy_set_header Connection "";|' <<<"$t"
}
render_recipe >"$tmp/nginx/authreq.conf"
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
    upstream bench_upstream { server 127.0.0.1:$up_port; keepalive 64; }
    server {
        listen 127.0.0.1:$proxy_port;
        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # the throughput pass's download streams through nginx's buffers, not a temporary file
            proxy_max_temp_file_size 0;
        }
    }
    include authreq.conf;
}
NGX
nginx -p "$tmp/nginx" -c nginx.conf -g "daemon off; pid $tmp/nginx/nginx.pid; error_log stderr;" 2>"$tmp/nginx.log" &
nginx_pid=$!
pids+=("$nginx_pid")
ngx="http://127.0.0.1:$nginx_port"
ngx_proxy="http://127.0.0.1:$proxy_port"
ngx_authreq="http://127.0.0.1:$authreq_port"
wait_http "$ngx/"
# the ceiling's CPU is nginx's: the master and its workers
mapfile -t nginx_pids < <(echo "$nginx_pid"; pgrep -P "$nginx_pid")

# The C peer: Apache with Debian's mpm_event.conf defaults, two virtual hosts (their cache settings
# differ: bearer tokens with the default shm cache, which holds the JWKS in shared memory; the
# session host with Redis, which then also holds the JWKS and state), the provider's endpoints
# configured statically (2.4.12 wants https ones: through nginx), and no access log, like the others.
# Only when a peer row is asked for.
start_peer() {
    pb_port=$(free_port)
    ps_port=$(free_port)
    pb="http://127.0.0.1:$pb_port"
    ps="http://127.0.0.1:$ps_port"
    echo OK >"$ap/htdocs/app"
    echo OK >"$ap/htdocs/api/items"
    local user=
    if [ "$(id -u)" = 0 ]; then
        # Apache does not run its children as root: as nobody, which must read the certificate and files
        user="User #$(id -u nobody)
Group #$(id -g nobody)"
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
}
if [ "$peer" = 1 ]; then start_peer; fi

cookie=$(node bench/login-cookie.mjs "$ag" alice alice-pw)
[ "$(status "$ag/app" -H "Cookie: $cookie")" = 200 ] || { echo "bench: the session does not work" >&2; exit 1; }

# answer URL [CURL-ARGS...] -> "STATUS BYTES", the answer's body in $tmp/answer
answer() { curl -s -o "$tmp/answer" -w '%{http_code} %{size_download}' "${@:2}" "$1"; }
# is_upstream_answer URL [CURL-ARGS...] -> true when the answer is 200 with the upstream's 1 KiB body
is_upstream_answer() { [ "$(answer "$@")" = "200 1024" ] && cmp -s "$tmp/answer" "$tmp/body1k"; }
# The proxy rows' paths: the upstream's body through each, with the session where authgate is in the
# path, a redirect to the login without it. The bench's own set-up failing stops the run; authgate's
# proxy failing (what is measured) only marks its row.
is_upstream_answer "$upstream/" || { echo "bench: the upstream does not answer its 1 KiB body" >&2; exit 1; }
is_upstream_answer "$ngx_proxy/" || { echo "bench: nginx proxy_pass does not answer the upstream's body" >&2; exit 1; }
is_upstream_answer "$ngx_authreq/" -H "Cookie: $cookie" ||
    { echo "bench: nginx auth_request with the session does not answer the upstream's body ($(answer "$ngx_authreq/" -H "Cookie: $cookie"))" >&2; exit 1; }
[ "$(status "$ngx_authreq/")" = 302 ] || { echo "bench: nginx auth_request without a session does not send to the login" >&2; exit 1; }
is_upstream_answer "$agp/" -H "Cookie: $cookie" ||
    echo "bench: authgate's proxy with the session does not answer the upstream's body ($(answer "$agp/" -H "Cookie: $cookie"))" >&2
[ "$(status "$agp/")" = 302 ] || echo "bench: authgate's proxy without a session does not send to the login ($(status "$agp/"))" >&2

if want bearer1k || want peer-bearer || want bearer-distinct; then
    node bench/tokens.mjs "$issuer" 1000 >"$tmp/tokens1k"
    read -r v0 _ < <(verifies)
    [ "$(status "$ag/api/items" -H "Authorization: Bearer $(head -1 "$tmp/tokens1k")")" = 200 ] ||
        { echo "bench: a bearer token is refused" >&2; exit 1; }
    read -r v1 _ < <(verifies)
    # a new token must have cost one verification, or the counter is not in authgate (LD_PRELOAD lost)
    [ $((v1 - v0)) = 1 ] || { echo "bench: a new bearer token made $((v1 - v0)) signature verifications, not 1" >&2; exit 1; }
    # both check the audience: a token for another resource is refused by both
    other=$(curl -s -u api-client:api-secret -d grant_type=client_credentials -d scope=api:read \
        -d resource=urn:bench:other "$issuer/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    [ "$(status "$ag/api/items" -H "Authorization: Bearer $other")" = 401 ] ||
        { echo "bench: authgate accepts a token for another audience" >&2; exit 1; }
    if [ "$peer" = 1 ]; then
        [ "$(status "$pb/api/items" -H "Authorization: Bearer $(head -1 "$tmp/tokens1k")")" = 200 ] ||
            { echo "bench: the peer refuses a bearer token" >&2; exit 1; }
        [ "$(status "$pb/api/items" -H "Authorization: Bearer $other")" = 401 ] ||
            { echo "bench: the peer accepts a token for another audience" >&2; exit 1; }
    fi
fi

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
# SERVER: whose CPU time and memory a row measures. nginx is the front nginx (ceiling, proxy_pass,
# auth_request), upstream the upstream nginx, authgate the check authgate, authgate-proxy the proxy.
server_ticks() {
    case $1 in
    authgate) cpu_ticks "$ag_pid" ;;
    authgate-proxy) cpu_ticks "$agp_pid" ;;
    nginx) cpu_ticks "${nginx_pids[@]}" ;;
    nginx+authgate) cpu_ticks "${nginx_pids[@]}" "$ag_pid" ;;
    upstream) cpu_ticks "${up_pids[@]}" ;;
    apache) apache_ticks ;;
    esac
}
# server_alive SERVER -> whether its processes are all still there (the authgates can crash)
server_alive() {
    local p
    case $1 in
    authgate) p=("$ag_pid") ;;
    authgate-proxy) p=("$agp_pid") ;;
    nginx) p=("${nginx_pids[@]}") ;;
    nginx+authgate) p=("${nginx_pids[@]}" "$ag_pid") ;;
    upstream) p=("${up_pids[@]}") ;;
    apache) p=("$ap_pid") ;;
    esac
    kill -0 "${p[@]}" 2>/dev/null
}
# pss_kib PID... -> their PSS summed (shared pages counted once)
pss_kib() {
    local p
    for p in "$@"; do awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true; done | awk '{t += $1} END {print t}'
}
# server_mib SERVER -> authgate's VmRSS; nginx's and Apache's PSS summed over their processes;
# nginx+authgate both
server_mib() {
    local k
    case $1 in
    authgate) k=$(rss_kib "$ag_pid") ;;
    authgate-proxy) k=$(rss_kib "$agp_pid") ;;
    nginx) k=$(pss_kib "${nginx_pids[@]}") ;;
    nginx+authgate) k=$(($(pss_kib "${nginx_pids[@]}") + $(rss_kib "$ag_pid"))) ;;
    upstream) k=$(pss_kib "${up_pids[@]}") ;;
    apache) k=$(pss_kib "$ap_pid" $(pgrep -P "$ap_pid")) ;;
    esac
    awk -v k="$k" 'BEGIN {printf "%.1f", k / 1024}'
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

# -p: perf record -g on authgate's proxy during the ag-proxy row
profile_row=
if [ "$profile" = 1 ]; then
    if ! want ag-proxy; then
        echo "bench: -p profiles the ag-proxy row, which -r leaves out: no profile" >&2
    elif command -v perf >/dev/null && perf record -q -o "$tmp/perf.test" -- true >/dev/null 2>&1; then
        profile_row="ag-proxy"
    else
        echo "bench: perf is missing or cannot record here: no profile" >&2
    fi
fi

# run NAME SERVER URL [COOKIE | lua:SCRIPT:TOKENFILE] [upstream]
#   -> "NAME rps p50 p99 cpu_us_per_request verifies_per_request mib c1_rps c1_p50 c1_p99 flag"
# SERVER (see server_ticks) is whose CPU time and memory are measured; verifications are the check
# authgate's only. "upstream": the answer must be the upstream's 1 KiB body. flag is "ok", or why the
# row is not valid (no spaces).
run() {
    local name=$1 server=$2 url=$3 hdr=() out out1 rps p50 p99 reqs t0 t1 c0 c1 ok0 ok1 cpu vpr mib flag=ok wpid code
    local rps1 p501 p991
    local perf_pid=
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
    if [ "$name" = "$profile_row" ]; then
        # all CPUs, kept to authgate's samples in the report: -p would miss the threads it starts later
        perf record -q -a -g -F 999 -o "$tmp/perf.data" -- sleep "$dur" >"$tmp/perf.log" 2>&1 &
        perf_pid=$!
    fi
    t0=$(server_ticks "$server")
    read -r c0 ok0 < <(verifies)
    AG_WRK_THREADS=$threads wrk -t$threads -c"$conns" -d"${dur}s" --latency "${hdr[@]}" "$url" >"$tmp/wrk.out" &
    wpid=$!
    sleep $((dur / 2))
    mib=$(server_mib "$server" 2>/dev/null) || mib= # while it serves the connections
    wait $wpid
    out=$(<"$tmp/wrk.out")
    t1=$(server_ticks "$server" 2>/dev/null) || t1=
    read -r c1 ok1 < <(verifies)
    if ! server_alive "$server"; then
        echo "bench: $name: the server exited during the row" >&2
        case $server in
        authgate-proxy) tail -5 "$tmp/authgate-proxy.log" >&2 ;;
        *authgate) tail -5 "$tmp/authgate.log" >&2 ;;
        esac
        flag="server-exited"
    fi
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" || echo "bench: perf record failed: $(tail -1 "$tmp/perf.log")" >&2
    fi
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
    cpu=- vpr=-
    if [ -n "$t1" ] && [ "${reqs:-0}" -gt 0 ]; then
        cpu=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
        [ "$server" = authgate ] && vpr=$(awk -v v=$((c1 - c0)) -v n="$reqs" 'BEGIN {printf "%.3f", v / n}')
    fi
    # one connection: the latency of a request on its own
    out1=$(AG_WRK_THREADS=1 wrk -t1 -c1 -d"${c1dur}s" --latency "${hdr[@]}" "$url")
    grep -q "Non-2xx or 3xx" <<<"$out1" && flag=non-2xx/3xx-answers
    # wrk counts 3xx as success: a lost session would look like a fast run, and so would a proxy's
    # error page
    case "${4:-}" in
    "" | lua:*) hdr=() ;;
    *) hdr=(-H "Cookie: $4") ;;
    esac
    if [ "${5:-}" = upstream ]; then
        is_upstream_answer "$url" "${hdr[@]}" || flag="not-the-upstream-body:-$(answer "$url" "${hdr[@]}" | tr ' ' /)-after-the-row"
    elif [ ${#hdr[@]} -gt 0 ]; then
        code=$(status "$url" "${hdr[@]}")
        [ "${code:0:1}" = 2 ] || flag="session-lost:-$code-after-the-row"
    fi
    rps1=$(wrk_field "$out1" rps) p501=$(wrk_field "$out1" p50) p991=$(wrk_field "$out1" p99)
    echo "$name ${rps:--} ${p50:--} ${p99:--} $cpu $vpr ${mib:--} ${rps1:--} ${p501:--} ${p991:--} $flag"
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
want ceiling && results+=("$(run ceiling-start nginx "$ngx/")")
want check && results+=("$(run check authgate "$ag/app" "$cookie")")
want auth && results+=("$(run auth authgate "$ag/oauth2/auth" "$cookie")")
want login302 && results+=("$(run login302 authgate "$ag/app")")
want bearer1k && results+=("$(run bearer1k authgate "$ag/api/items" "lua:bench/bearer.lua:$tmp/tokens1k")")
# right after bearer1k: the tokens live 10 minutes
want peer-bearer && results+=("$(run peer-bearer apache "$pb/api/items" "lua:bench/bearer.lua:$tmp/tokens1k")")
want peer-session && results+=("$(run peer-session apache "$ps/app" "$peer_cookie")")
# the proxy rows one after the other, as they are compared with each other
want nginx-direct && results+=("$(run nginx-direct upstream "$upstream/" "" upstream)")
want nginx-proxy && results+=("$(run nginx-proxy nginx "$ngx_proxy/" "" upstream)")
want nginx-authreq && results+=("$(run nginx-authreq nginx+authgate "$ngx_authreq/" "$cookie" upstream)")
want ag-proxy && results+=("$(run ag-proxy authgate-proxy "$agp/" "$cookie" upstream)")
if want bearer-distinct; then
    # minted now, as they live 10 minutes; the test provider makes a few hundred a second
    echo "bench: minting $ndistinct access tokens for bearer-distinct"
    node bench/tokens.mjs "$issuer" "$ndistinct" >"$tmp/tokens-distinct"
    # right before the row it is compared with, with every server idle
    ossl=$(openssl_verify_rate)
    [ -n "$ossl" ] || { echo "bench: no verify figure from openssl speed rsa2048" >&2; exit 1; }
    results+=("$(run bearer-distinct authgate "$ag/api/items" "lua:bench/bearer.lua:$tmp/tokens-distinct")")
fi
want ceiling && results+=("$(run ceiling-end nginx "$ngx/")")
hwm=$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$ag_pid/status")

# Idle connections: each sends one check request with the session cookie, then stays open
if [ "$nidle" -gt 0 ]; then
    echo "bench: opening $nidle idle connections to authgate"
    read -r idle_open idle_ok idle_still idle_rss idle_new idle_new_ms < <(python3 bench/idle-conns.py 127.0.0.1 "$ag_port" "$nidle" "$ag_pid" /app "$cookie")
    sleep 2
    after_rss=$(rss_kib "$ag_pid")
fi

# Throughput: one download of the -b MiB file from the upstream, through nginx proxy_pass and through
# authgate's proxy (with the session), the file in the page cache first
tput=()
if [ "$bigmib" -gt 0 ]; then
    echo "bench: downloading $bigmib MiB from the upstream, through nginx proxy_pass and through authgate's proxy"
    cat "$up/html/big" >/dev/null
    for t in "nginx-direct $upstream/big" "nginx-proxy $ngx_proxy/big" "ag-proxy $agp/big"; do
        read -r name url <<<"$t"
        hdr=()
        [ "$name" = ag-proxy ] && hdr=(-H "Cookie: $cookie")
        read -r code bytes secs < <(curl -s -o /dev/null --max-time 300 -w '%{http_code} %{size_download} %{time_total}\n' \
            "${hdr[@]}" "$url" || true)
        flag=ok
        [ "$code" = 200 ] && [ "$bytes" = $((bigmib * 1048576)) ] || flag="$code-with-$bytes-bytes"
        tput+=("$name $(awk -v b="$bytes" -v s="$secs" 'BEGIN {printf "%.1f", (s > 0 ? b / s / 1048576 : 0)}') $flag")
    done
fi

# WebSocket tunnels: a third authgate, proxy mode with WebSockets, in front of an echo upstream;
# bench/ws-idle.mjs opens them (each with its 101 and one echo) and holds them idle while authgate's
# threads and RSS are read. The client stops opening after ws_timeout seconds, a handshake takes at
# most 15 more; past that it is stopped, whatever it opened.
ws_timeout=120
ws_state=
if [ "$nws" -gt 0 ]; then
    echo "bench: opening $nws WebSocket tunnels through authgate"
    node bench/ws-upstream.mjs >"$tmp/ws-upstream.out" 2>"$tmp/ws-upstream.err" &
    pids+=("$!")
    for _ in $(seq 1 200); do [ -s "$tmp/ws-upstream.out" ] && break; sleep 0.05; done
    wsup_port=$(head -1 "$tmp/ws-upstream.out")
    wait_http "http://127.0.0.1:$wsup_port/"
    agw_port=$(free_port)
    AG_BENCH_NAME=authgate-ws start_authgate "$agw_port" "upstreams = [\"http://127.0.0.1:$wsup_port/\"]
proxy_websockets = true
max_connections = $((nws + 100 > 10000 ? nws + 100 : 10000))"
    agw_pid=$ag_pid
    ag_pid=$check_pid ag=$check_url
    sleep 1
    ws_threads0=$(threads_of "$agw_pid")
    ws_rss0=$(rss_kib "$agw_pid")
    node bench/ws-idle.mjs "ws://127.0.0.1:$agw_port/" "$nws" "$cookie" "$ws_timeout" >"$tmp/ws-idle.out" 2>"$tmp/ws-idle.err" &
    wsc_pid=$!
    pids+=("$wsc_pid")
    for _ in $(seq 1 $(((ws_timeout + 30) * 10))); do
        [ -s "$tmp/ws-idle.out" ] && break
        kill -0 "$wsc_pid" 2>/dev/null || break
        sleep 0.1
    done
    if read -r ws_tried ws_ok ws_failed ws_why <"$tmp/ws-idle.out"; then
        sleep 1
        ws_state=ok
    else
        echo "bench: the WebSocket client did not report within $((ws_timeout + 30)) s: $(tail -3 "$tmp/ws-idle.err")" >&2
        ws_state=no-report
    fi
    ws_threads1=$(threads_of "$agw_pid" 2>/dev/null) || ws_threads1=
    ws_rss1=$(rss_kib "$agw_pid" 2>/dev/null) || ws_rss1=
    if [ -z "$ws_threads1" ] || [ -z "$ws_rss1" ]; then
        echo "bench: the WebSocket pass's authgate exited: $(tail -3 "$tmp/authgate-ws.log")" >&2
        ws_state=authgate-exited ws_threads1=0 ws_rss1=0
    fi
    kill "$wsc_pid" 2>/dev/null || true
    wait "$wsc_pid" || true
    ws_still=$(sed -n 2p "$tmp/ws-idle.out")
fi

# to_us LATENCY -> microseconds, from wrk's "812.00us", "1.23ms", "1.05s" or "1.00m"
to_us() { awk -v v="$1" 'BEGIN {n = v + 0; if (v == "-") print v; else if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1e3; else if (v ~ /m$/) print n * 6e7; else print n * 1e6}'; }
declare -A rps_of c1p50_of cpu_of p99_of mib_of flag_of
for r in "${results[@]}"; do
    read -r name rps _ p99 cpu _ mib _ p _ flag <<<"$r"
    rps_of[$name]=$rps
    cpu_of[$name]=$cpu
    p99_of[$name]=$(to_us "$p99")
    mib_of[$name]=$mib
    flag_of[$name]=$flag
    c1p50_of[$name]=$(to_us "$p")
done
ceiling='' c1_ceiling_p50=''
if want ceiling; then
    ceiling=$(awk -v a="${rps_of[ceiling-start]}" -v b="${rps_of[ceiling-end]}" 'BEGIN {printf "%.0f", (a + b) / 2}')
    c1_ceiling_p50=$(awk -v a="${c1p50_of[ceiling-start]}" -v b="${c1p50_of[ceiling-end]}" 'BEGIN {printf "%.0f", (a + b) / 2}')
fi

# ratio A B -> A / B (2 decimals), "-" when either is missing
ratio() { awk -v a="${1:--}" -v b="${2:--}" 'BEGIN {if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b}'; }
# int FIGURE -> rounded to an integer; "-" stays
int() { awk -v v="$1" 'BEGIN {if (v == "-") print v; else printf "%.0f", v}'; }
# (the µ takes two bytes: its column is one wider in printf's count)
printf '\n%-16s %11s %9s %9s %9s %12s %10s %8s %9s %7s\n' target requests/s p50 p99 "x ceiling" "CPU µs/req" \
    verify/req "RSS MiB" "x openssl" "x peer"
for r in "${results[@]}"; do
    read -r name rps p50 p99 cpu vpr mib _ _ _ flag <<<"$r"
    xc=- xo=- xp=-
    [ -n "$ceiling" ] && xc=$(ratio "$rps" "$ceiling")
    [ "$name" = bearer-distinct ] && xo=$(awk -v o="$ossl" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.2f", 1e6 / c / o; else print "-"}')
    [ "$name" = check ] && want peer-session && xp=$(awk -v a="$rps" -v b="${rps_of[peer-session]}" 'BEGIN {printf "%.1f", a / b}')
    [ "$name" = bearer1k ] && want peer-bearer && xp=$(awk -v a="$rps" -v b="${rps_of[peer-bearer]}" 'BEGIN {printf "%.1f", a / b}')
    printf '%-16s %11s %9s %9s %9s %11s %10s %8s %9s %7s%s\n' "$name" "$(int "$rps")" "$p50" "$p99" "$xc" "$cpu" "$vpr" \
        "$mib" "$xo" "$xp" "$([ "$flag" = ok ] || echo "  INVALID: ${flag//-/ }")"
done
echo
[ -n "$ceiling" ] && echo "ceiling = mean of nginx return 200 at start and end ($ceiling requests/s); x ceiling = requests/s / ceiling"
if [ "$peer" = 1 ]; then
    echo "x peer = authgate's requests/s over mod_auth_openidc's in this run: check / peer-session (both with the"
    echo "  session in this Redis), bearer1k / peer-bearer (the same 1,000 tokens)"
fi
echo "CPU µs/req = the server's utime+stime in the wrk run / requests (nginx: master+workers; Apache: parent,"
echo "  children, and children that exited during the run); the proxy rows count the proxy, not the upstream"
echo "  (nginx-direct is the upstream's own): nginx-proxy the front nginx, nginx-authreq the front nginx and"
echo "  the check authgate, ag-proxy the proxy authgate"
echo "verify/req = authgate's signature verifications (EVP_DigestVerify calls, bench/verify-count.c) / requests"
echo "RSS MiB = halfway through the row's $conns-connection run: authgate's VmRSS; nginx's and Apache's PSS summed"
echo "  over their processes (nginx-authreq: nginx's PSS and authgate's VmRSS)"
[ -n "$profile_row" ] && echo "-p: perf recorded during the ag-proxy row, whose figures carry its overhead (run without -p for them)"
if want bearer-distinct; then
    awk -v o="$ossl" 'BEGIN {printf "openssl speed rsa2048, this libcrypto, one core: %d verify/s (%.1f µs); x openssl =\n", o, 1e6 / o}'
    echo "  (1e6 / CPU µs/req) / $ossl: authgate's requests per CPU-second over openssl's RSA-2048 verifies per second"
    if want ceiling; then
        awk -v o="$ossl" -v a="${cpu_of[ceiling-start]}" -v b="${cpu_of[ceiling-end]}" -v d="${cpu_of[bearer-distinct]}" 'BEGIN {
            h = (a + b) / 2; v = 1e6 / o
            printf "  a server whose every request costs nginx'"'"'s HTTP answer (%.1f µs) plus one such verify (%.1f µs) reaches\n", h, v
            printf "  x openssl = %.2f; bearer-distinct spends %.1f µs per request beyond that\n", v / (h + v), d - h - v }'
    fi
fi

# target LABEL VALUE OP LIMIT UNIT ROW... -> the figure against its target: PASS, MISS, or INVALID when
# one of the rows it comes from is ("-": not measured)
target() {
    local label=$1 v=$2 op=$3 limit=$4 unit=$5 r verdict
    shift 5
    if [ "$v" = - ]; then
        verdict=-
    else
        verdict=$(awk -v v="$v" -v l="$limit" -v op="$op" 'BEGIN {
            print ((op == ">=" ? v >= l : op == "<" ? v < l : v <= l) ? "PASS" : "MISS") }')
        for r in "$@"; do [ "${flag_of[$r]:-ok}" = ok ] || verdict="INVALID ($r)"; done
    fi
    printf '  %-44s %10s   target %s %s%s   %s\n' "$label" "$v$([ "$v" = - ] || echo "$unit")" "$op" "$limit" "$unit" "$verdict"
}
if want ag-proxy; then
    echo
    echo "authgate's proxy (issue 12), from the rows above:"
    target "ag-proxy / nginx-proxy, requests/s" "$(ratio "${rps_of[ag-proxy]}" "${rps_of[nginx-proxy]:-}")" ">=" 0.7 "" ag-proxy nginx-proxy
    target "ag-proxy / nginx-authreq, requests/s" "$(ratio "${rps_of[ag-proxy]}" "${rps_of[nginx-authreq]:-}")" ">=" 1.0 "" ag-proxy nginx-authreq
    target "ag-proxy p99 / nginx-proxy p99" "$(ratio "${p99_of[ag-proxy]}" "${p99_of[nginx-proxy]:-}")" "<=" 3 "" ag-proxy nginx-proxy
    target "ag-proxy RSS at $conns connections" "${mib_of[ag-proxy]}" "<=" 32 " MiB" ag-proxy
fi
if [ ${#tput[@]} -gt 0 ]; then
    echo
    echo "throughput: one $bigmib MiB download with curl (a sparse file the upstream nginx sends with sendfile):"
    declare -A mibs_of
    for t in "${tput[@]}"; do
        read -r name mibs flag <<<"$t"
        mibs_of[$name]=$mibs
        flag_of[tput-$name]=$flag
        printf '  %-44s %10s MiB/s%s\n' "$name" "$mibs" "$([ "$flag" = ok ] || echo "  INVALID: got ${flag//-/ }")"
    done
    target "ag-proxy / nginx-proxy, MiB/s" "$(ratio "${mibs_of[ag-proxy]}" "${mibs_of[nginx-proxy]}")" ">=" 0.5 "" tput-ag-proxy tput-nginx-proxy
fi
if [ -n "$ws_state" ]; then
    echo
    echo "WebSocket tunnels through authgate (proxy_websockets, bench/ws-idle.mjs, $nws asked for$(
        [ "$nws" = "$nws_asked" ] || echo ", not $nws_asked: open-files hard limit $(ulimit -Hn)")):"
    if [ "$ws_state" = no-report ]; then
        echo "  INVALID: the client did not report within $((ws_timeout + 30)) s"
        ws_ok=0
    else
        echo "  open: $ws_ok (got their 101 and the echo; $ws_failed failed: ${ws_why//,/, }; $((ws_tried - ws_ok - ws_failed)) closed after"
        echo "  their echo; $((nws - ws_tried)) not tried within ${ws_timeout} s); ${ws_still:-?} still open when the client was stopped"
    fi
    if [ "$ws_state" = authgate-exited ]; then
        echo "  INVALID: authgate exited during the pass"
    else
        awk -v t0="$ws_threads0" -v t1="$ws_threads1" -v r0="$ws_rss0" -v r1="$ws_rss1" -v n="$ws_ok" 'BEGIN {
            printf "  authgate threads: %d before, %d with them; RSS %.1f MiB before, %.1f MiB with them", t0, t1, r0 / 1024, r1 / 1024
            if (n > 0) printf ": %.1f KiB per tunnel", (r1 - r0) / n
            printf "\n" }'
        # "a thread count that does not grow with them": fewer than one thread more per 100 tunnels
        per100=-
        [ "$ws_ok" -gt 0 ] && per100=$(awk -v a=$((ws_threads1 - ws_threads0)) -v n="$ws_ok" 'BEGIN {printf "%.2f", a * 100 / n}')
        target "threads added per 100 tunnels" "$per100" "<" 1 ""
    fi
fi

rss64=$(for r in "${results[@]}"; do read -r name _ _ _ _ vpr mib _ <<<"$r"; [ "$vpr" = - ] || echo "$mib"; done | sort -n | tail -1)
echo
awk -v c="$conns" -v m="$rss64" -v h="$hwm" -v n="$nidle" -v o="${idle_open:-}" -v a="${idle_ok:-}" -v s="${idle_still:-}" \
    -v r="${idle_rss:-}" -v f="${after_rss:-}" -v st="${idle_new:-}" -v ms="${idle_new_ms:-}" 'BEGIN {
    printf "authgate memory: "
    if (m != "") printf "RSS serving %d connections up to %.1f MiB ", c, m
    printf "(peak %.1f MiB)", h
    if (n <= 0) { printf "\n"; exit }
    printf "; with %d idle connections\n", n
    printf "  open: %.1f MiB, %.1f KiB per connection over that peak; %.1f MiB after they closed\n", r / 1024, (r - h * 1024) / n, f / 1024
    printf "  (bench/idle-conns.py: %d opened, %d answered 2xx to their one check request, %d still open when\n", o, a, s
    printf "  measured; a new request meanwhile: %s in %s ms)\n", st, ms }'
[ "$peer" = 1 ] &&
    echo "peer: $("$apache" -v | sed -n 's/^Server version: //p'), mod_auth_openidc $(dpkg-query -W -f='${Version}' libapache2-mod-auth-openidc 2>/dev/null || echo '?'), mpm_event"

printf '\nOne connection (wrk -t1 -c1 -d%ss): the latency of a request on its own\n' "$c1dur"
printf '%-16s %11s %9s %9s %14s\n' target requests/s p50 p99 "p50 - ceiling"
for r in "${results[@]}"; do
    read -r name _ _ _ _ _ _ rps p50 p99 _ <<<"$r"
    added=-
    [ -n "$c1_ceiling_p50" ] && [ "${c1p50_of[$name]}" != - ] && added=$(awk -v p="${c1p50_of[$name]}" -v c="$c1_ceiling_p50" 'BEGIN {printf "%+.0f", p - c}')
    printf '%-16s %11s %9s %9s %12s µs\n' "$name" "$(int "$rps")" "$p50" "$p99" "$added"
done
echo
if [ -n "$c1_ceiling_p50" ]; then
    echo "p50 - ceiling = the row's p50 at one connection minus nginx's (mean of start and end, ${c1_ceiling_p50} µs):"
    echo "  the time the server adds to a request"
fi

if [ -n "$profile_row" ]; then
    prof=bench/profile-ag-proxy.txt
    # perf_report ARGS... -> perf report on authgate's samples, its percentages of them
    perf_report() { perf report -i "$tmp/perf.data" --pid "$agp_pid" --percentage relative --stdio "$@" 2>>"$tmp/perf-report.log"; }
    # terse FILE [LINES] -> its first LINES lines (all) without perf's hints and empty lines
    terse() { awk -v n="${2:-999999}" '!/^#?$/ && !/^# To display/ && !/Tip:/ && c++ < n' "$1"; }
    if [ -s "$tmp/perf.data" ] &&
        perf_report --no-children -g none --sort dso --percent-limit 0.5 >"$tmp/perf-dso.txt" &&
        perf_report --no-children -g none --percent-limit 0.5 >"$tmp/perf-flat.txt" &&
        perf_report --no-children >"$tmp/perf.txt"; then
        {
            echo "# authgate's proxy during the ag-proxy row of bench/run.sh (wrk -t$threads -c$conns -d${dur}s, session cookie)"
            echo "# perf record -a -g -F 999 for the row's ${dur} s, authgate's samples (--pid); frame-pointer call"
            echo "# chains: frames of code built without frame pointers show as bare addresses"
            echo
            echo "# by shared object: perf report --no-children -g none --sort dso --percent-limit 0.5"
            terse "$tmp/perf-dso.txt"
            echo
            echo "# flat: perf report --no-children -g none --percent-limit 0.5, first 50 lines"
            terse "$tmp/perf-flat.txt" 50
            echo
            echo "# perf report --stdio --no-children (with call chains), first 60 lines"
            head -60 "$tmp/perf.txt"
        } >"$prof"
        echo "profile of the ag-proxy row: $prof"
    else
        echo "bench: no profile: perf recorded nothing or could not report ($(tail -1 "$tmp/perf-report.log" 2>/dev/null))" >&2
    fi
fi
