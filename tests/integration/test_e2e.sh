#!/usr/bin/env bash
if [ -z "${BASH_VERSION-}" ]; then exec bash "$0" "$@"; fi
# SPDX-License-Identifier: Apache-2.0
# The Node.js end-to-end suites in tests/e2e (node:test): runs `npm test` there and turns the
# runner's own totals into the one "N passed, M failed" line (skipped, todo and cancelled tests
# count as failed: nothing may be skipped). Uses tests/e2e/node_modules when tests/run.sh has
# installed it (npm ci there) after the last change of package-lock.json; otherwise runs a copy
# under the build tree, tests/e2e-run, with its own npm ci.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
ag_require node npm redis-server

if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
    ag_fail "node $(node --version) is too old: the e2e rig needs Node.js 20 or later"
    ag_finish
fi

export NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
# playwright-core never downloads browsers by itself; make sure nothing else tries either.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

src=$AG_SRCDIR/tests/e2e
dir=$src
if [ ! -f "$src/node_modules/.package-lock.json" ] ||
    [ "$src/package-lock.json" -nt "$src/node_modules/.package-lock.json" ]; then
    # Not installed by tests/run.sh (or installed before package-lock.json last changed, so a new
    # dependency would be missing): install into a copy in the build tree, so that make check
    # never writes into the source tree (read-only under make distcheck). npm ci runs again only
    # when package-lock.json changed.
    dir=${AG_BUILDDIR:-$PWD}/tests/e2e-run
    mkdir -p "$dir"
    rm -f "$dir"/*.js "$dir"/package.json "$dir"/package-lock.json
    cp "$src"/package.json "$src"/package-lock.json "$src"/*.js "$dir"/
    chmod u+w "$dir"/*
    if ! cmp -s "$dir/package-lock.json" "$dir/.installed-lock"; then
        echo "# npm ci in $dir"
        if ! (cd "$dir" && timeout 300 npm ci) >"$AG_TMP/npm-ci.log" 2>&1; then
            ag_fail "npm ci in $dir failed" "$(ag_tail "$AG_TMP/npm-ci.log" 20)"
            ag_finish
        fi
        cp "$dir/package-lock.json" "$dir/.installed-lock"
    fi
fi

# The rig bounds each wait itself; this only stops a runaway run.
(cd "$dir" && timeout -k 10 900 npm test) 2>&1 | tee "$AG_TMP/e2e.out"
rc=${PIPESTATUS[0]}

# The spec reporter ends with lines like "ℹ pass 14" (one per counter).
total() { sed -n "s/^ℹ $1 \([0-9][0-9]*\)\$/\1/p" "$AG_TMP/e2e.out" | tail -n 1; }
pass=$(total pass)
fail=$(total fail)
if [ -z "$pass" ] || [ -z "$fail" ]; then
    ag_fail "npm test printed no totals (exit status $rc)"
    ag_finish
fi
bad=$fail
for what in cancelled skipped todo; do
    n=$(total "$what")
    bad=$((bad + ${n:-0}))
done
AG_PASS=$((AG_PASS + pass))
AG_FAIL=$((AG_FAIL + bad))
if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
    ag_fail "npm test exited with status $rc although no test failed"
fi
ag_finish
