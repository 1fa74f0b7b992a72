#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The login demo, in the foreground: Redis, the local test OpenID provider, authgate (conf/authgate.demo.cfg
# with a fresh cookie secret) and a demo app behind nginx auth_request on http://127.0.0.1:4180/, all on
# loopback. Prints the URL to open and the test logins. Extra arguments go to authgate
# (e.g. --logging-format=json). Stop with Ctrl-C: everything it started is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
front_port=${DEMO_PORT:-4180}

bash tests/deps.sh
[ -d tests/e2e/node_modules ] || (cd tests/e2e && npm ci --no-audit --no-fund)

if [ ! -f build-release/Makefile ]; then
    echo "demo.sh: configuring build-release/"
    [ -x configure ] || ./autogen.sh
    mkdir -p build-release
    (cd build-release && ../configure CFLAGS="-O2 -g" >/dev/null)
fi
echo "demo.sh: building"
make -s -C build-release -j2 src/authgate

tmp=$(mktemp -d)
pids=()
cleanup() {
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
    echo "demo.sh: stopped"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # URL CODE WHAT
    for _ in $(seq 1 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    echo "demo.sh: $3 did not come up; its log:" >&2
    cat "$tmp"/*.log >&2 || true
    exit 1
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >"$tmp/redis.log" 2>&1 &
pids+=($!)

node tests/e2e/provider.js --port 0 --redirect-uri "http://127.0.0.1:$front_port/oauth2/callback" \
    >"$tmp/provider.out" 2>"$tmp/provider.log" &
pids+=($!)
for _ in $(seq 1 300); do grep -q '^{' "$tmp/provider.out" 2>/dev/null && break; sleep 0.1; done
issuer=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["issuer"])' "$tmp/provider.out")

ag_port=$(free_port)
AUTHGATE_COOKIE_SECRET=$(openssl rand -base64 32) \
    AUTHGATE_OIDC_ISSUER_URL=$issuer \
    AUTHGATE_REDIS_CONNECTION_URL="redis://127.0.0.1:$redis_port/0" \
    AUTHGATE_HTTP_ADDRESS="127.0.0.1:$ag_port" \
    build-release/src/authgate --config conf/authgate.demo.cfg "$@" 2>&1 | tee "$tmp/authgate.log" &
pids+=($!)
wait_for "http://127.0.0.1:$ag_port/ready" 200 "authgate"

# The demo app: nginx asks authgate about every request (auth_request) and shows who you are.
mkdir -p "$tmp/nginx/logs"
app_port=$(free_port)
sed -e "s/@FRONT_PORT@/$front_port/g" -e "s/@AUTHGATE_PORT@/$ag_port/g" -e "s/@APP_PORT@/$app_port/g" \
    conf/nginx-demo.conf >"$tmp/nginx/nginx.conf"
nginx -p "$tmp/nginx" -c nginx.conf -g "daemon off; pid $tmp/nginx/nginx.pid; error_log $tmp/nginx.log;" &
pids+=($!)
wait_for "http://127.0.0.1:$front_port/oauth2/sign_in" 403 "nginx" # authgate's sign-in page, through nginx

cat <<EOF

  authgate demo is running.

    Open      http://127.0.0.1:$front_port/
    Log in    alice / alice-pw     (bob / bob-pw is refused: other.org is not an allowed email domain)

  nginx on 127.0.0.1:$front_port -> authgate on 127.0.0.1:$ag_port (sessions in Redis on port $redis_port),
  OpenID provider at $issuer. Stop with Ctrl-C.

EOF
wait
