#!/usr/bin/env bash
# ZITADEL's TypeScript client, @zitadel/client (pinned in ../package.json), against the real
# server: the v2 UserService key RPCs over gRPC, gRPC-Web and Connect.
#
#   AK_BIN=target/debug/authn-keys bash tests/clients/ts-client/run.sh      (from the repository root)
#
# Needs Node 20+ and `npm ci` done in tests/clients.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${AK_BIN:?AK_BIN must name the authn-keys binary}"
AK_BIN=$(realpath "$AK_BIN")

if [[ ! -d "$here/../node_modules/@zitadel/client" ]]; then
    echo "@zitadel/client is not installed: run 'npm ci' in tests/clients" >&2
    exit 1
fi

# shellcheck source=../lib/server.sh
source "$here/../lib/server.sh"
ak_start

cd "$here"
echo "ts-client: @zitadel/client $(node -p 'require("../node_modules/@zitadel/client/package.json").version') against $AK_URL"
node run.mjs
