#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Run every fuzz target that `make fuzz` built for a fixed time each, one after the other, and fail when
# any of them crashes, leaks, times out or breaks its oracle. New inputs that reach new code go to a work
# corpus (kept between runs); the committed seeds in tests/fuzz/corpus/<name>/ are only read. A failing
# input is saved as <work>/crash-<name>-*, and the command that replays it is printed.
#   tests/fuzz/run.sh [--seconds N | --budget N] [--bin DIR] [--corpus DIR] [--work DIR] [name...]
# --budget N shares about N seconds of wall time among the targets (at least 5 s each). `make fuzz-run
# FUZZ_SECONDS=N` (or FUZZ_BUDGET=N) calls it with the build tree's directories.
set -euo pipefail

seconds=10
budget=
bin=tests/fuzz-bin
corpus=$(dirname "$0")/corpus
work=
names=()
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --corpus) corpus=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    -h | --help)
        sed -n '3,10p' "$0"
        exit 0
        ;;
    -*)
        echo "run.sh: unknown option $1" >&2
        exit 2
        ;;
    *) names+=("$1"); shift ;;
    esac
done
work=${work:-$bin/work}
for n in "$seconds" ${budget:+"$budget"}; do
    if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then
        echo "run.sh: --seconds and --budget need a whole number of seconds, got '$n'" >&2
        exit 2
    fi
done
if [ ${#names[@]} -eq 0 ]; then
    for f in "$bin"/fuzz_*; do
        [ -x "$f" ] && [ -f "$f" ] && names+=("${f##*/fuzz_}")
    done
fi
if [ ${#names[@]} -eq 0 ]; then
    echo "run.sh: no fuzz targets in $bin (run make fuzz first)" >&2
    exit 1
fi

# about 2 s of each target's wall time go to starting it and reading its corpus
if [ -n "$budget" ]; then
    seconds=$((budget / ${#names[@]} - 2))
    [ "$seconds" -lt 5 ] && seconds=5
fi

mkdir -p "$work"
summary=$work/summary.txt
total_start=$SECONDS
: >"$summary"
failed=()
printf '%-10s %8s %12s %10s %8s %6s  %s\n' target seconds executions exec/s corpus cov result | tee -a "$summary"
for name in "${names[@]}"; do
    exe=$bin/fuzz_$name
    if [ ! -x "$exe" ]; then
        echo "run.sh: $exe is missing" >&2
        failed+=("$name (missing)")
        continue
    fi
    mkdir -p "$work/$name"
    seeds=()
    [ -d "$corpus/$name" ] && seeds+=("$corpus/$name")
    log=$work/$name.log
    start=$SECONDS
    touch "$work/.start-$name"
    rc=0
    # stdin from /dev/null: a config file under test may name /dev/stdin as a secret file
    "$exe" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -use_value_profile=1 -print_final_stats=1 \
        -artifact_prefix="$work/crash-$name-" "$work/$name" "${seeds[@]}" </dev/null >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
    files=$(find "$work/$name" -type f | wc -l)
    took=$((SECONDS - start))
    result=ok
    if [ "$rc" -ne 0 ]; then
        result="FAILED (exit $rc)"
        failed+=("$name")
    fi
    printf '%-10s %8s %12s %10s %8s %6s  %s\n' "$name" "$took" "${execs:-?}" \
        "$(( ${execs:-0} / (took > 0 ? took : 1) ))" "$files" "${cov:-?}" "$result" | tee -a "$summary"
    if [ "$rc" -ne 0 ]; then
        echo "----- $log (last 60 lines) -----" >&2
        tail -n 60 "$log" >&2
        find "$work" -maxdepth 1 -name "crash-$name-*" -newer "$work/.start-$name" |
            while IFS= read -r a; do echo "run.sh: replay with: $exe $a" >&2; done
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "run.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "run.sh: ${#names[@]} targets passed (${seconds}s each, $((SECONDS - total_start))s in all); summary in $summary"
