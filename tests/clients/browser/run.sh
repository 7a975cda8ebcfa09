#!/usr/bin/env bash
# End-to-end gRPC-Web and Connect from a browser on another origin: headless Chromium loads a
# page (bundled here with esbuild) from a second origin and drives the machine-key API with
# connect-web and Google's grpc-web (v1, gRPC-Web) and with connect-web's Connect transport (v2
# UserService, JSON and binary); the same page from a third origin, not in
# AUTHN_KEYS_CORS_ORIGINS, must be blocked.
#
#   AK_BIN=target/debug/authn-keys bash tests/clients/browser/run.sh
#
# Needs `npm install` in tests/clients and a Chromium (see ../lib/browser.mjs; CHROMIUM overrides).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIENTS=$(cd "$HERE/.." && pwd)
: "${AK_BIN:?AK_BIN must name the authn-keys binary}"

WORK=$(mktemp -d)
SERVE_PID=

cleanup() {
    local status=$?
    set +e # errexit would end the trap at `(exit 1)` below, before the server is stopped
    [[ -n "$SERVE_PID" ]] && kill -TERM "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
    rm -rf "$WORK"
    if declare -F ak_stop >/dev/null; then
        (exit "$status")
        ak_stop
    fi
    return "$status"
}
trap cleanup EXIT

# 1. the page: index.html plus the bundle of page.js and the client libraries
mkdir -p "$WORK/page"
cp "$HERE/index.html" "$WORK/page/"
"$CLIENTS/node_modules/.bin/esbuild" "$HERE/page.js" \
    --bundle --format=esm --platform=browser --target=es2022 \
    --log-level=warning --outfile="$WORK/page/page.js"

# 2. two static origins for it: the first will be allowed, the second not
node "$HERE/serve.mjs" "$WORK/page" >"$WORK/origins" &
SERVE_PID=$!
for _ in $(seq 1 100); do
    [[ -s "$WORK/origins" ]] && break
    kill -0 "$SERVE_PID" 2>/dev/null || { echo "static server exited" >&2; exit 1; }
    sleep 0.1
done
read -r PAGE_ORIGIN OTHER_ORIGIN <"$WORK/origins"
[[ -n "${OTHER_ORIGIN:-}" ]] || { echo "static server gave no origins" >&2; exit 1; }

# 3. the server, allowing only the page's origin
# shellcheck source=../lib/server.sh
source "$CLIENTS/lib/server.sh"
export AUTHN_KEYS_CORS_ORIGINS="$PAGE_ORIGIN"
started=0
ak_start || started=$?
trap cleanup EXIT # ak_start installed its own; ours stops the static server too, then calls it
[[ $started -eq 0 ]] || exit "$started"

# 4. the browser
cd "$HERE"
AK_PAGE_ORIGIN="$PAGE_ORIGIN" AK_OTHER_ORIGIN="$OTHER_ORIGIN" node run.mjs
