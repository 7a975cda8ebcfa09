#!/usr/bin/env bash
# The v2 .proto files against contract-v2.json, beyond what the reflection test compares:
# imports, go_package, options, comments with the REST and validate rules (see check.py).
#
#   bash tests/clients/v2-protos/run.sh      (from anywhere; AK_BIN is not needed)
#
# Python's protobuf package goes into a virtual environment kept in
# ${XDG_CACHE_HOME:-~/.cache}/authn-keys-ci/v2-protos-<version>.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=7.36.2
venv="${XDG_CACHE_HOME:-$HOME/.cache}/authn-keys-ci/v2-protos-$version"
if ! "$venv/bin/python" -c 'import google.protobuf' 2>/dev/null; then
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input "protobuf==$version"
fi
if "$venv/bin/python" "$here/check.py"; then
    echo "v2-protos: 1 passed, 0 failed"
else
    echo "v2-protos: 0 passed, 1 failed"
    exit 1
fi
