#!/usr/bin/env bash
if [ -z "${BASH_VERSION-}" ]; then exec bash "$0" "$@"; fi
# SPDX-License-Identifier: Apache-2.0
# The docs cannot drift from the option table: the README's configuration reference equals
# `authgate --print-config-reference` byte for byte, documents every flag --help lists, and every
# sample in conf/ passes --config-test.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
ag_require python3

README=$AG_SRCDIR/README.md
BEGIN='<!-- BEGIN CONFIG REFERENCE -->'
END='<!-- END CONFIG REFERENCE -->'

# extract_block README OUT: the bytes strictly between the marker lines; fails unless each marker
# is on a line of its own exactly once, BEGIN first.
cat >"$AG_TMP/extract.py" <<'EOF'
import sys
BEGIN, END = b"<!-- BEGIN CONFIG REFERENCE -->", b"<!-- END CONFIG REFERENCE -->"
lines = open(sys.argv[1], "rb").read().splitlines(keepends=True)
stripped = [l.rstrip(b"\r\n") for l in lines]
if stripped.count(BEGIN) != 1 or stripped.count(END) != 1:
    sys.exit(f"need exactly one line {BEGIN.decode()} and one line {END.decode()}, "
             f"found {stripped.count(BEGIN)} and {stripped.count(END)}")
b, e = stripped.index(BEGIN), stripped.index(END)
if b > e:
    sys.exit("END marker before BEGIN marker")
open(sys.argv[2], "wb").write(b"".join(lines[b + 1 : e]))
EOF

# --- the reference block -----------------------------------------------------------------------
ag_run 10 "$AUTHGATE" --print-config-reference
assert_eq 0 "$RUN_RC" "--print-config-reference exits 0"
"$AUTHGATE" --print-config-reference >"$AG_TMP/ref.md" 2>/dev/null
assert_contains "$(cat "$AG_TMP/ref.md")" "cookie_secret" "the reference documents cookie_secret"
assert_contains "$(cat "$AG_TMP/ref.md")" "--cookie-secret" "the reference documents --cookie-secret"
if [ -s "$AG_TMP/ref.md" ] && [ -z "$(tail -c1 "$AG_TMP/ref.md")" ]; then
    ag_pass "the reference ends with a newline"
else
    ag_fail "the reference is empty or does not end with a newline"
fi

if [ ! -f "$README" ]; then
    ag_fail "README.md not found: $README"
else
    if OUT=$(python3 "$AG_TMP/extract.py" "$README" "$AG_TMP/block.md" 2>&1); then
        ag_pass "README.md has one '$BEGIN' ... '$END' block"
        if cmp -s "$AG_TMP/ref.md" "$AG_TMP/block.md"; then
            ag_pass "README.md's configuration reference equals --print-config-reference byte for byte"
        else
            ag_fail "README.md's configuration reference is out of date: run 'make update-readme'" \
                "$(diff -u --label README.md --label 'authgate --print-config-reference' \
                    "$AG_TMP/block.md" "$AG_TMP/ref.md" | head -60)"
        fi
    else
        ag_fail "README.md's reference markers: $OUT"
    fi
fi

# --- every flag --help lists is documented ----------------------------------------------------------
ag_run 10 "$AUTHGATE" --help
assert_eq 0 "$RUN_RC" "--help exits 0"
# The flags are the first word of the indented option lines ("  --flag type   help", "  -h, --help").
mapfile -t FLAGS < <(printf '%s\n' "$RUN_ALL" | grep -oE -- '^[[:space:]]+(-[A-Za-z], )?--[a-z][a-z0-9-]*[a-z0-9]' |
    grep -oE -- '--[a-z][a-z0-9-]*[a-z0-9]$' | sort -u)
if [ "${#FLAGS[@]}" -ge 20 ]; then
    ag_pass "--help lists ${#FLAGS[@]} flags"
else
    ag_fail "--help lists only ${#FLAGS[@]} flags (expected the whole option table)" "${FLAGS[*]}"
fi
MISSING=()
for f in "${FLAGS[@]}"; do
    case $f in
    --help | --version | --config | --config-test | --print-config-reference)
        # Actions, not options: documented in the README, outside the generated table.
        grep -qE -- "$f([^a-z0-9-]|\$)" "$README" 2>/dev/null || MISSING+=("$f (anywhere in README.md)")
        ;;
    *)
        grep -qE -- "$f([^a-z0-9-]|\$)" "$AG_TMP/block.md" 2>/dev/null || MISSING+=("$f")
        ;;
    esac
done
assert_eq "" "${MISSING[*]}" "every flag --help lists is documented in README.md's reference"

# --- the samples pass --config-test ------------------------------------------------------------------
printf '%s' "$AG_CLIENT_SECRET" >"$AG_TMP/client-secret"
N=0
for f in "$AG_SRCDIR"/conf/*.cfg*; do
    [ -f "$f" ] || continue
    N=$((N + 1))
    case $(basename "$f") in
    authgate.demo.cfg)
        # As tests/demo.sh runs it: the cookie secret comes from the environment.
        AUTHGATE_COOKIE_SECRET=$AG_COOKIE_SECRET ag_run 10 "$AUTHGATE" --config-test --config "$f"
        ;;
    *)
        # Samples point at secret files of a real host; override them as the systemd unit does.
        AUTHGATE_COOKIE_SECRET=$AG_COOKIE_SECRET AUTHGATE_CLIENT_SECRET_FILE=$AG_TMP/client-secret \
            ag_run 10 "$AUTHGATE" --config-test --config "$f"
        ;;
    esac
    assert_eq 0 "$RUN_RC" "conf/$(basename "$f") passes --config-test"
    [ "$RUN_RC" = 0 ] || printf '# %s\n' "$RUN_ALL" | head -20
done
assert_true "conf/ holds authgate.cfg.example" test -f "$AG_SRCDIR/conf/authgate.cfg.example"
assert_true "conf/ holds authgate.demo.cfg" test -f "$AG_SRCDIR/conf/authgate.demo.cfg"
assert_true "at least two samples were checked ($N)" test "$N" -ge 2
assert_file_not_contains "$AG_TMP/all-output" "$AG_COOKIE_SECRET" "no output shows the cookie secret"
assert_file_not_contains "$AG_TMP/all-output" "$AG_CLIENT_SECRET" "no output shows the client secret"

# --- tests/gen-readme-ref.sh rewrites only the block ---------------------------------------------------
GEN=$AG_SRCDIR/tests/gen-readme-ref.sh
if [ ! -f "$GEN" ]; then
    ag_fail "tests/gen-readme-ref.sh is missing (is it in EXTRA_DIST?)"
else
    printf '# Title\n\nbefore\n%s\nstale line\n%s\nafter\n' "$BEGIN" "$END" >"$AG_TMP/README.test.md"
    ag_run 20 bash "$GEN" "$AUTHGATE" "$AG_TMP/README.test.md"
    assert_eq 0 "$RUN_RC" "gen-readme-ref.sh exits 0"
    python3 "$AG_TMP/extract.py" "$AG_TMP/README.test.md" "$AG_TMP/block.test.md"
    assert_true "gen-readme-ref.sh writes the reference into the block" cmp -s "$AG_TMP/ref.md" "$AG_TMP/block.test.md"
    {
        printf '# Title\n\nbefore\n%s\n' "$BEGIN"
        cat "$AG_TMP/ref.md"
        printf '%s\nafter\n' "$END"
    } >"$AG_TMP/README.expected.md"
    assert_true "gen-readme-ref.sh keeps the rest of the file byte for byte" cmp -s "$AG_TMP/README.expected.md" "$AG_TMP/README.test.md"
    ag_run 20 bash "$GEN" "$AUTHGATE" "$AG_TMP/README.test.md"
    assert_contains "$RUN_OUT" "up to date" "gen-readme-ref.sh is idempotent"
fi

ag_finish
