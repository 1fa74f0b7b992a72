#!/usr/bin/env bash
if [ -z "${BASH_VERSION-}" ]; then exec bash "$0" "$@"; fi
# SPDX-License-Identifier: Apache-2.0
# Rewrite the README's configuration reference in place from the binary's option table:
#   tests/gen-readme-ref.sh BINARY README
# Everything between the lines "<!-- BEGIN CONFIG REFERENCE -->" and "<!-- END CONFIG REFERENCE -->"
# is replaced by the output of `BINARY --print-config-reference`; the rest of the file is kept byte
# for byte. Used by `make update-readme`; tests/integration/test_docs.sh checks the result.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BINARY README" >&2
    exit 2
fi
bin=$1
readme=$2

ref=$(mktemp)
trap 'rm -f "$ref" "$readme.tmp.$$"' EXIT
if ! "$bin" --print-config-reference >"$ref"; then
    echo "$0: $bin --print-config-reference failed; $readme left unchanged" >&2
    exit 1
fi

python3 - "$readme" "$ref" "$readme.tmp.$$" <<'EOF'
import sys
readme, ref, tmp = sys.argv[1:4]
BEGIN, END = b"<!-- BEGIN CONFIG REFERENCE -->", b"<!-- END CONFIG REFERENCE -->"
lines = open(readme, "rb").read().splitlines(keepends=True)
stripped = [l.rstrip(b"\r\n") for l in lines]
if stripped.count(BEGIN) != 1 or stripped.count(END) != 1:
    sys.exit(f"{readme}: need exactly one line {BEGIN.decode()} and one line {END.decode()}")
b, e = stripped.index(BEGIN), stripped.index(END)
if b > e:
    sys.exit(f"{readme}: {END.decode()} comes before {BEGIN.decode()}")
body = open(ref, "rb").read()
if body and not body.endswith(b"\n"):
    body += b"\n"
open(tmp, "wb").write(b"".join(lines[: b + 1]) + body + b"".join(lines[e:]))
EOF
chmod --reference="$readme" "$readme.tmp.$$"
if cmp -s "$readme" "$readme.tmp.$$"; then
    echo "$readme: configuration reference already up to date"
else
    mv "$readme.tmp.$$" "$readme"
    echo "$readme: configuration reference updated"
fi
