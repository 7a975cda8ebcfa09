#!/usr/bin/env bash
# Drives the web console embedded in the server (/ui/) with headless Chromium, against a real
# server on a fresh database.
#
#   AK_BIN=target/debug/authn-keys bash tests/clients/console/run.sh
#
# Screenshots go to ${ARTIFACTS_DIR:-target/client-artifacts}/console-*.png.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
: "${AK_BIN:?AK_BIN must name the authn-keys binary}"
AK_BIN=$(realpath "$AK_BIN")

# shellcheck source=../lib/server.sh
source "$here/../lib/server.sh"
# The webhook the console adds delivers to a receiver the test runs on 127.0.0.1.
export AUTHN_KEYS_OUTBOUND_ALLOW_INSECURE=true
ak_start

export ARTIFACTS_DIR="${ARTIFACTS_DIR:-$root/target/client-artifacts}"
mkdir -p "$ARTIFACTS_DIR"
cd "$here"
node run.mjs
