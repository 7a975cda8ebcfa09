#!/usr/bin/env bash
# fastapi-zitadel-auth (pinned in requirements.txt), unchanged, protecting a FastAPI app (driven
# in-process) with access tokens from the real server; then, with the server started with
# AUTHN_KEYS_ACCESS_TOKEN_TYP=at+jwt, the library's refusal of those tokens.
#
#   AK_BIN=target/debug/authn-keys bash tests/clients/fastapi/run.sh      (from the repository root)
#
# The virtual environment is kept in ${XDG_CACHE_HOME:-~/.cache}/authn-keys-ci/fastapi-<version>
# and rebuilt when requirements.txt changes. Needs python3 with venv and pip.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${AK_BIN:?AK_BIN must name the authn-keys binary}"
AK_BIN=$(realpath "$AK_BIN")

requirements="$here/requirements.txt"
version=$(sed -n 's/^fastapi-zitadel-auth==//p' "$requirements")
[[ -n "$version" ]] || { echo "requirements.txt pins no fastapi-zitadel-auth version" >&2; exit 1; }
venv="${XDG_CACHE_HOME:-$HOME/.cache}/authn-keys-ci/fastapi-$version"
want=$(sha256sum "$requirements" | cut -d' ' -f1)

if [[ "$(cat "$venv/.requirements-sha256" 2>/dev/null)" != "$want" ]] ||
    ! "$venv/bin/python" -c 'import fastapi_zitadel_auth, fastapi.testclient' 2>/dev/null; then
    echo "fastapi: installing fastapi-zitadel-auth $version into $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements"
    echo "$want" >"$venv/.requirements-sha256"
fi
installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("fastapi-zitadel-auth"))')
[[ "$installed" == "$version" ]] || { echo "fastapi-zitadel-auth $installed installed, want $version" >&2; exit 1; }

export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

# shellcheck source=../lib/server.sh
source "$here/../lib/server.sh"

# The server's default: access tokens with typ JWT.
unset AUTHN_KEYS_ACCESS_TOKEN_TYP
ak_start
echo "fastapi: fastapi-zitadel-auth $installed against $AK_URL"
"$venv/bin/python" "$here/test_app.py"
ak_stop

# RFC 9068's at+jwt: the library refuses it.
AUTHN_KEYS_ACCESS_TOKEN_TYP=at+jwt ak_start
echo "fastapi: fastapi-zitadel-auth $installed against $AK_URL (AUTHN_KEYS_ACCESS_TOKEN_TYP=at+jwt)"
"$venv/bin/python" "$here/test_app.py" --expect-refused-typ at+jwt
