#!/usr/bin/env bash
# `openid-client` (v6, pinned in ../package.json) as a real OAuth client of the server: it
# reads the discovery documents (OpenID and RFC 8414), gets tokens by the JWT-profile grant
# (RFC 7523) and checks their ID tokens, binds tokens to ES256 and EdDSA keys with DPoP
# (RFC 9449) and calls the REST API with them, revokes tokens (RFC 7009) and introspects them
# as an API app, plain and as signed JWTs (RFC 9701). `jose` (pinned too) verifies what the
# server signs on its own. A second server signs with ES256 (AUTHN_KEYS_SIGNING_ALGORITHM):
# openid-client takes its ID tokens and jose verifies its JWT access tokens by its JWKS.
#
#   AK_BIN=target/debug/authn-keys bash tests/clients/openid-client/run.sh   (from the repository root)
#
# Needs Node 20+ and `npm ci` done in tests/clients.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${AK_BIN:?AK_BIN must name the authn-keys binary}"
AK_BIN=$(realpath "$AK_BIN")

for package in openid-client jose; do
    if [[ ! -d "$here/../node_modules/$package" ]]; then
        echo "$package is not installed: run 'npm ci' in tests/clients" >&2
        exit 1
    fi
done

# shellcheck source=../lib/server.sh
source "$here/../lib/server.sh"

# The server that signs with ES256.
export AUTHN_KEYS_SIGNING_ALGORITHM=ES256
ak_start
es_url=$AK_URL
es_key=$AK_ADMIN_KEY
es_pid=$AK_PID
es_dir=$AK_DIR
stop_all() {
    local status=$?
    set +e
    if kill -0 "$es_pid" 2>/dev/null; then
        kill -TERM "$es_pid" 2>/dev/null
        wait "$es_pid" 2>/dev/null
    fi
    if [[ $status -ne 0 && -f "$es_dir/server.log" ]]; then
        echo "--- ES256 server log (last 40 lines) ---" >&2
        tail -n 40 "$es_dir/server.log" >&2
    fi
    rm -rf "$es_dir"
    (exit "$status") # ak_stop reads the status from $?
    ak_stop
}
trap stop_all EXIT

# The server under test, with the default signing algorithm (RS256).
unset AUTHN_KEYS_SIGNING_ALGORITHM
if ! ak_start; then
    trap stop_all EXIT
    exit 1
fi
# ak_start set its own trap for this server; stop both.
trap stop_all EXIT

cd "$here"
echo "openid-client: openid-client $(node -p 'require("../node_modules/openid-client/package.json").version'), jose $(node -p 'require("../node_modules/jose/package.json").version') against $AK_URL (ES256: $es_url)"
AK_ES256_URL="$es_url" AK_ES256_ADMIN_KEY="$es_key" node run.mjs
