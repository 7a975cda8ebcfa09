#!/usr/bin/env bash
# ZITADEL's Node SDK (@zitadel/node, pinned in ../package.json) against the real server: the
# admin's key file as a service account, then the v1 Management API's machine-key RPCs over gRPC.
#
#   AK_BIN=target/debug/authn-keys bash tests/clients/node-sdk/run.sh      (from the repository root)
#
# Needs Node 20+ and `npm ci` done in tests/clients.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${AK_BIN:?AK_BIN must name the authn-keys binary}"
AK_BIN=$(realpath "$AK_BIN")

if [[ ! -d "$here/../node_modules/@zitadel/node" ]]; then
    echo "@zitadel/node is not installed: run 'npm ci' in tests/clients" >&2
    exit 1
fi

# shellcheck source=../lib/server.sh
source "$here/../lib/server.sh"
ak_start

cd "$here"
node run.mjs
