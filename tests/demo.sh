#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Run authgate locally in the foreground on http://127.0.0.1:4180 with conf/authgate.demo.cfg and
# a freshly generated cookie secret. Builds first (in build/, reusing an existing build).
# Extra arguments go to authgate, e.g. tests/demo.sh --logging-format=json. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/deps.sh

if [ ! -f build/Makefile ]; then
    echo "demo.sh: configuring build/"
    [ -x configure ] || ./autogen.sh
    mkdir -p build
    (cd build && ../configure)
fi
echo "demo.sh: building"
make -C build -j2 src/authgate

if command -v openssl >/dev/null 2>&1; then
    secret=$(openssl rand -base64 32)
else
    secret=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
fi

cat <<EOF

  authgate demo: open http://127.0.0.1:4180/ping (it answers OK).
  The cookie secret is freshly generated for this run and never written to disk.
  The login demo (Redis, a local OpenID provider and a demo upstream) arrives with the login release.
  Stop with Ctrl-C.

EOF
AUTHGATE_COOKIE_SECRET=$secret exec build/src/authgate --config conf/authgate.demo.cfg "$@"
