#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The one test command: installs dependencies, builds with sanitizers in build/, runs every unit
# and integration test (make check), runs every fuzz target briefly (make fuzz-run), checks the C
# formatting, and with --distcheck also proves the release tarball builds and passes its tests. Exits
# non-zero if anything failed.
#   tests/run.sh [--distcheck]
set -euo pipefail

distcheck=0
for arg in "$@"; do
    case $arg in
    --distcheck) distcheck=1 ;;
    -h | --help)
        echo "usage: $0 [--distcheck]"
        exit 0
        ;;
    *)
        echo "$0: unknown argument: $arg" >&2
        exit 2
        ;;
    esac
done

cd "$(dirname "$0")/.."
root=$PWD
failed=()

step() { printf '\n==> %s\n' "$*"; }
on_error() { echo "run.sh: FAILED at line $1 (exit $2): $3" >&2; }
trap 'on_error $LINENO $? "$BASH_COMMAND"' ERR

step "dependencies (tests/deps.sh)"
bash tests/deps.sh

step "npm ci (tests/e2e: the OpenID provider and browser drivers of the end-to-end tests)"
(cd tests/e2e && npm ci --no-audit --no-fund)

step "autogen"
./autogen.sh

step "configure (build/, --enable-sanitizers)"
mkdir -p build
cd build
../configure --enable-sanitizers

step "build (make -j2)"
make -j2

step "tests (make -j2 check)"
if make -j2 check; then
    echo "run.sh: make check passed"
else
    failed+=("make check")
    echo "run.sh: make check FAILED; the logs of the failed tests follow" >&2
    while IFS= read -r -d '' log; do
        printf '\n----- %s -----\n' "$log"
        cat "$log"
    done < <(find "$root/build" -name test-suite.log -print0)
fi
cd "$root"

step "the README's demo command (tests/demo-smoke.sh runs tests/demo.sh and logs in)"
if bash tests/demo-smoke.sh 2>&1 | tee build/tests/demo-smoke.log; then
    echo "run.sh: demo smoke test passed"
else
    failed+=("demo smoke test")
fi

# Every fuzz target for a fixed share of about 3 minutes (with the clang build, under 5 on 2 cores): a
# parser that regresses crashes, leaks or breaks its oracle here. A missing clang fails, never skips.
step "fuzz (make fuzz-run FUZZ_BUDGET=180: tests/fuzz/, libFuzzer)"
if (cd build && make fuzz-run FUZZ_BUDGET=180); then
    echo "run.sh: fuzz targets passed"
else
    failed+=("fuzz")
fi

step "format (clang-format --dry-run --Werror over src/, tests/unit/ and tests/fuzz/)"
mapfile -d '' sources < <(find src tests/unit tests/fuzz \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)
if [ ${#sources[@]} -eq 0 ]; then
    echo "run.sh: no C sources found" >&2
    failed+=("format (no sources)")
elif clang-format --dry-run --Werror "${sources[@]}"; then
    echo "run.sh: ${#sources[@]} files correctly formatted"
else
    failed+=("clang-format")
    echo "run.sh: formatting differs; fix with: clang-format -i \$(find src tests/unit tests/fuzz -name '*.[ch]')" >&2
fi

if [ "$distcheck" = 1 ]; then
    step "distcheck (make distcheck in build/)"
    if (cd build && make distcheck); then
        echo "run.sh: make distcheck passed"
    else
        failed+=("make distcheck")
        while IFS= read -r -d '' log; do
            printf '\n----- %s -----\n' "$log"
            cat "$log"
        done < <(find "$root/build" -path '*/_build/*' -name test-suite.log -print0 2>/dev/null)
    fi
fi

# One closing line for the whole run, summed over every test binary's own summary: Check's
# "Checks: N, Failures: F, Errors: E" and the integration scripts' "N passed, M failed".
summary() {
    local p=0 f=0 log line n1 n2 n3
    while IFS= read -r -d '' log; do
        while IFS= read -r line; do
            if [[ $line =~ Checks:\ ([0-9]+),\ Failures:\ ([0-9]+),\ Errors:\ ([0-9]+) ]]; then
                n1=${BASH_REMATCH[1]} n2=${BASH_REMATCH[2]} n3=${BASH_REMATCH[3]}
                p=$((p + n1 - n2 - n3)) f=$((f + n2 + n3))
            elif [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
                p=$((p + BASH_REMATCH[1])) f=$((f + BASH_REMATCH[2]))
            fi
        done <"$log"
    done < <(find "$root/build/tests" -name '*.log' -print0 2>/dev/null)
    echo "$p passed, $f failed"
}
echo
summary

if [ ${#failed[@]} -gt 0 ]; then
    printf '\nrun.sh: FAILED: %s\n' "${failed[*]}" >&2
    exit 1
fi
printf '\nrun.sh: all passed\n'
