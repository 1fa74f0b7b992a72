#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Keeps the README's first command true: runs tests/demo.sh as a user would (on a free port instead of
# 4180), logs in as alice through the demo app, checks that bob is refused, and stops the demo.
# Ends with one "N passed, M failed" line. Run by tests/run.sh after make check.
set -uo pipefail
cd "$(dirname "$0")/.."
pass=0
fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
bad() { echo "FAIL - $1"; fail=$((fail + 1)); }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
DEMO_PORT=$port setsid bash tests/demo.sh >"$log" 2>&1 </dev/null &
demo=$!
trap 'kill -TERM -- -$demo 2>/dev/null; wait $demo 2>/dev/null; rm -f "$log"' EXIT

for _ in $(seq 1 1200); do
    grep -q "authgate demo is running" "$log" && break
    kill -0 $demo 2>/dev/null || break
    sleep 0.25
done
if grep -q "authgate demo is running" "$log"; then
    ok "tests/demo.sh starts and prints the URL and the test login"
    grep -q "Open      http://127.0.0.1:$port/" "$log" && ok "it prints the URL to open" || bad "it prints the URL to open"
    grep -q "alice / alice-pw" "$log" && ok "it prints the test login" || bad "it prints the test login"
    out=$(cd tests/e2e && node --input-type=module -e "
import { login, CookieJar } from './login.js';
const alice = await login('http://127.0.0.1:$port/', { jar: new CookieJar(), username: 'alice', password: 'alice-pw' });
console.log('alice', alice.response.status, alice.body.includes('alice@example.com') && alice.body.includes('admins,devs'));
const bob = await login('http://127.0.0.1:$port/', { jar: new CookieJar(), username: 'bob', password: 'bob-pw' });
console.log('bob', bob.response.status, bob.body.includes('alice@example.com') || bob.body.includes('bob@other.org'));
" 2>&1)
    grep -q "^alice 200 true$" <<<"$out" && ok "alice logs in and the demo app shows her email and groups" ||
        bad "alice logs in and the demo app shows her email and groups: $out"
    grep -q "^bob 403 false$" <<<"$out" && ok "bob (other.org) is refused with 403 and never sees the app" ||
        bad "bob (other.org) is refused with 403: $out"
else
    bad "tests/demo.sh starts and prints the URL and the test login"
    tail -30 "$log"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
