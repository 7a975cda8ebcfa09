#!/usr/bin/env bash
# Events and webhooks (authnkeys.v1.EventService) against a real receiver: a Node HTTP server
# on loopback takes the deliveries, and `standardwebhooks` (the Standard Webhooks reference
# library, pinned in ../package.json) verifies their signatures. Webhooks are added over REST
# and Connect, events made through the REST API, the trail read back over both. A second
# server, started without AUTHN_KEYS_OUTBOUND_ALLOW_INSECURE, shows that private addresses,
# http and localhost are refused when a webhook is added.
#
#   AK_BIN=target/debug/authn-keys bash tests/clients/webhooks/run.sh      (from the repository root)
#
# Needs Node 20+ and `npm ci` done in tests/clients.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${AK_BIN:?AK_BIN must name the authn-keys binary}"
AK_BIN=$(realpath "$AK_BIN")

if [[ ! -d "$here/../node_modules/standardwebhooks" ]]; then
    echo "standardwebhooks is not installed: run 'npm ci' in tests/clients" >&2
    exit 1
fi

# shellcheck source=../lib/server.sh
source "$here/../lib/server.sh"

# The strict server: the outbound rules as deployed.
unset AUTHN_KEYS_OUTBOUND_ALLOW_INSECURE
ak_start
strict_url=$AK_URL
strict_key=$AK_ADMIN_KEY
strict_pid=$AK_PID
strict_dir=$AK_DIR
stop_all() {
    local status=$?
    set +e
    if kill -0 "$strict_pid" 2>/dev/null; then
        kill -TERM "$strict_pid" 2>/dev/null
        wait "$strict_pid" 2>/dev/null
    fi
    rm -rf "$strict_dir"
    (exit "$status") # ak_stop reads the status from $?
    ak_stop
}
trap stop_all EXIT

# The server under test delivers to the receiver on 127.0.0.1 over http.
export AUTHN_KEYS_OUTBOUND_ALLOW_INSECURE=true
if ! ak_start; then
    trap stop_all EXIT
    exit 1
fi
# ak_start set its own trap for this server; stop both.
trap stop_all EXIT

cd "$here"
echo "webhooks: standardwebhooks $(node -p 'require("../node_modules/standardwebhooks/package.json").version') against $AK_URL (strict: $strict_url)"
AK_STRICT_URL="$strict_url" AK_STRICT_ADMIN_KEY="$strict_key" node run.mjs
