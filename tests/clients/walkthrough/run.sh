#!/usr/bin/env bash
# The README's walk-through, run as a new reader would: every marked block of "Walk-through"
# (<!-- test: walkthrough NAME --> and the gRPC section's <!-- test: cli NAME -->), verbatim,
# top to bottom, in one bash shell with set -euo pipefail, against a fresh server, starting in
# a scratch directory that holds the admin's key file. checks.sh (and ../cli/checks.sh for the
# gRPC blocks) asserts each block's output and the variables it set.
#
#   AK_BIN=target/debug/authn-keys bash tests/clients/walkthrough/run.sh   (from the repository root)
#
# The README's blocks default ISSUER to http://127.0.0.1:8080; here it is the test server's. Needs what the README's "Prerequisites"
# lists (python3 with venv, curl, jq, openssl; pip reaches its registry) plus node and
# `npm ci` done in tests/clients (buf); grpcurl is fetched once (see ../cli/tools.sh).
set -euo pipefail

: "${AK_BIN:?AK_BIN must name the authn-keys binary}"
AK_BIN=$(cd "$(dirname "$AK_BIN")" && pwd)/$(basename "$AK_BIN")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"

source tests/clients/lib/server.sh
source tests/clients/cli/tools.sh
source tests/clients/walkthrough/readme.sh

ak_start
T_TMP="$AK_DIR/walkthrough"
mkdir -p "$T_TMP/start"
t_init
ak_cli_tools "$T_TMP/bin"

# The reader's second terminal: a directory with the admin's key file in it (the README's
# ADMIN_KEY default). The README's `mktemp -d` lands below T_TMP, so it is cleaned up too.
cp -p "$AK_ADMIN_KEY" "$T_TMP/start/admin-key.json"
mkdir -p "$T_TMP/tmp"
export T_ROOT=$ROOT T_ISSUER=$AK_URL ISSUER=$AK_URL TMPDIR="$T_TMP/tmp"

readme_run README.md "$T_TMP/start" "walkthrough cli" \
    tests/clients/walkthrough/checks.sh tests/clients/cli/checks.sh || true

t_summary walkthrough
