#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install every Debian 12 package that building, testing and benchmarking authgate needs.
# Run as root on a fresh machine (CI does); re-runs skip apt when everything is installed.
set -euo pipefail

PACKAGES=(
    # build
    build-essential autoconf automake pkg-config
    libmicrohttpd-dev libcurl4-openssl-dev libjwt-dev libssl-dev libhiredis-dev libjansson-dev
    # unit tests, integration tests, format check
    check curl python3 clang-format ca-certificates
    # fuzz targets (make fuzz): clang 14 and its libFuzzer runtime (libclang_rt.fuzzer), which clang only
    # recommends, so --no-install-recommends would leave it out
    clang libclang-rt-14-dev
    # later integration tests (sessions, reverse proxies) and the benchmark
    redis-server nginx caddy wrk
    # the benchmark's C peer: Apache with mod_auth_openidc
    apache2 libapache2-mod-auth-openidc
    # the end-to-end browser test (headless, driven by the npm package playwright-core)
    chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" != "ii " ]; then
        missing+=("$p")
    fi
done

# Node.js 20 or later runs the end-to-end rig (oidc-provider, playwright-core). This machine image
# ships it; elsewhere Debian's nodejs and npm packages are tried, and a too-old node is an error.
node_ok() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
        [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -ge 20 ]
}
if ! node_ok; then
    missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps.sh: all ${#PACKAGES[@]} packages already installed; node $(node --version)"
    exit 0
fi

echo "deps.sh: missing packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: not root; install them with:" >&2
    echo "  apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "deps.sh: apt-get update"
apt-get update
echo "deps.sh: apt-get install ${PACKAGES[*]}"
apt-get install -y --no-install-recommends "${PACKAGES[@]}"
if ! node_ok; then
    apt-get install -y --no-install-recommends nodejs npm || true
    if ! node_ok; then
        echo "deps.sh: Node.js 20 or later with npm is required for the end-to-end tests (found: $(node --version 2>/dev/null || echo none))" >&2
        exit 1
    fi
fi
# Debian starts services on install; the tests run their own instances on random ports.
for svc in redis-server nginx caddy apache2; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        echo "deps.sh: stopping the system $svc service (tests start their own)"
        systemctl stop "$svc" || true
    fi
done
echo "deps.sh: done"
