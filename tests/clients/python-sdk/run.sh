#!/usr/bin/env bash
# ZITADEL's official Python SDK (zitadel-client, pinned in requirements.txt) against the real
# server: Connect JSON to zitadel.user.v2.UserService, authenticated with JSON key files.
#
#   AK_BIN=target/debug/authn-keys bash tests/clients/python-sdk/run.sh      (from the repository root)
#
# The virtual environment is kept in ${XDG_CACHE_HOME:-~/.cache}/authn-keys-ci/python-sdk-<version>
# and rebuilt when requirements.txt changes. Needs python3 with venv and pip.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${AK_BIN:?AK_BIN must name the authn-keys binary}"
AK_BIN=$(realpath "$AK_BIN")

requirements="$here/requirements.txt"
version=$(sed -n 's/^zitadel-client==//p' "$requirements")
[[ -n "$version" ]] || { echo "requirements.txt pins no zitadel-client version" >&2; exit 1; }
venv="${XDG_CACHE_HOME:-$HOME/.cache}/authn-keys-ci/python-sdk-$version"
want=$(sha256sum "$requirements" | cut -d' ' -f1)

if [[ "$(cat "$venv/.requirements-sha256" 2>/dev/null)" != "$want" ]] ||
    ! "$venv/bin/python" -c 'import zitadel_client, cryptography' 2>/dev/null; then
    echo "python-sdk: installing zitadel-client $version into $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements"
    echo "$want" >"$venv/.requirements-sha256"
fi
installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("zitadel-client"))')
[[ "$installed" == "$version" ]] || { echo "zitadel-client $installed installed, want $version" >&2; exit 1; }

# shellcheck source=../lib/server.sh
source "$here/../lib/server.sh"
ak_start

export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
echo "python-sdk: zitadel-client $installed against $AK_URL"
"$venv/bin/python" "$here/test_sdk.py"
