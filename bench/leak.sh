#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# authgate leak check: a figure you run, not a test (CI does not run it). Starts Redis, the test
# provider and an optimised authgate (build-bench/) on free loopback ports, logs in once, then drives
# N session-cookie check requests (the ext_authz path, --upstream=static://200) with wrk in runs of
# -i seconds, a new set of connections each, and samples authgate's RSS after each run. Prints the
# samples, then the first and last sample after warm-up (the first 10% of the requests), the
# least-squares slope of RSS over requests after warm-up, and whether RSS grew: by more than -t KiB
# (default 512) over the second half of the samples after warm-up (then it exits 1). A leak grows
# for as long as requests come; allocator caches and free lists settle: on a short run (-n 2000000)
# they may not have settled yet.
#   bench/leak.sh [-n REQUESTS] [-c CONNECTIONS] [-i SECONDS] [-t KIB]
set -euo pipefail
cd "$(dirname "$0")/.."
total=10000000
conns=64
interval=10
tolerance=512
while getopts "n:c:i:t:" o; do
    case $o in
    n) total=$OPTARG ;;
    c) conns=$OPTARG ;;
    i) interval=$OPTARG ;;
    t) tolerance=$OPTARG ;;
    *) echo "usage: $0 [-n requests] [-c connections] [-i sample-seconds] [-t tolerance-KiB]" >&2; exit 2 ;;
    esac
done
. bench/common.sh

bench_require wrk redis-server node curl openssl python3
bench_build
bench_start
start_redis
ag_port=$(free_port)
start_provider "$ag_port"
start_authgate "$ag_port"
cookie=$(node bench/login-cookie.mjs "$ag" alice alice-pw)
[ "$(status "$ag/app" -H "Cookie: $cookie")" = 200 ] || { echo "leak: the session does not work" >&2; exit 1; }

echo "leak: $total check requests, wrk -t2 -c$conns in runs of ${interval}s, authgate RSS after each"
printf '%8s %14s %10s %9s\n' seconds requests requests/s "RSS KiB"
samples=$tmp/samples
: >"$samples"
start=$SECONDS
done_reqs=0
printf '%8d %14d %10s %9d\n' 0 0 - "$(rss_kib "$ag_pid")"
while [ "$done_reqs" -lt "$total" ]; do
    out=$(wrk -t2 -c"$conns" -d"${interval}s" -H "Cookie: $cookie" "$ag/app")
    if grep -q "Non-2xx or 3xx" <<<"$out"; then
        echo "leak: non-2xx/3xx answers: $(grep "Non-2xx" <<<"$out")" >&2
        exit 1
    fi
    n=$(awk '$2=="requests" && $3=="in" {print $1}' <<<"$out")
    done_reqs=$((done_reqs + n))
    rss=$(rss_kib "$ag_pid")
    echo "$done_reqs $rss" >>"$samples"
    printf '%8d %14d %10s %9d\n' $((SECONDS - start)) "$done_reqs" "$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$out")" "$rss"
done
# wrk counts 3xx as success: a lost session would have been a run of fast redirects
[ "$(status "$ag/app" -H "Cookie: $cookie")" = 200 ] || { echo "leak: the session was lost during the run" >&2; exit 1; }

awk -v total="$done_reqs" -v tol="$tolerance" '
    # slope(a, b): least-squares KiB per million requests over samples a..b
    function slope(a, b,    j, x, n, sx, sy, sxx, sxy) {
        for (j = a; j <= b; j++) { x = r[j] / 1e6; n++; sx += x; sy += m[j]; sxx += x * x; sxy += x * m[j] }
        return (n > 1 && n * sxx - sx * sx > 0) ? (n * sxy - sx * sy) / (n * sxx - sx * sx) : 0
    }
    { r[NR] = $1; m[NR] = $2 }
    END {
        for (i = 1; i < NR && r[i] < total / 10; i++) ;
        if (i > NR - 2) i = NR > 2 ? NR - 2 : 1 # at least three samples after warm-up
        h = int((i + NR) / 2)
        printf "\nwarm-up: the first %d requests (10%%); after it:\n", total / 10
        printf "  first sample %d KiB at %d requests, last %d KiB at %d requests: %+d KiB\n", m[i], r[i], m[NR], r[NR], m[NR] - m[i]
        printf "  slope %+.1f KiB per million requests (least squares over %d samples)\n", slope(i, NR), NR - i + 1
        printf "  second half (from %d requests): %+d KiB, slope %+.1f KiB per million requests\n", r[h], m[NR] - m[h], slope(h, NR)
        if (m[NR] - m[h] > tol) {
            printf "RSS GREW: still growing in the second half after warm-up, by more than the %d KiB tolerance\n", tol
            exit 1
        }
        printf "no growth: RSS flat in the second half after warm-up (within the %d KiB tolerance)\n", tol
    }' "$samples"
