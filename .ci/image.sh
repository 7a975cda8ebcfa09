#!/usr/bin/env bash
# What this machine can check of the container setup without a Docker engine:
#  1. docker-compose.yml is valid for a real compose implementation (Debian's docker-compose),
#     and refuses to start without a master key of the user's own;
#  2. the health checks in the Dockerfile and the compose file really pass against a running
#     server (and fail against a path that is not ready);
#  3. the Dockerfile's build stage copies everything the build needs: exactly the paths its
#     COPY lines name are copied to an empty folder, and the server is built there.
# Usage: AK_BIN=<server binary> bash .ci/image.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${AK_BIN:?AK_BIN must name the authn-keys binary}"

if ! command -v docker-compose >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi

echo "--- compose file"
if env -u AUTHN_KEYS_MASTER_KEY docker-compose -f docker-compose.yml config >/dev/null 2>&1; then
    echo "docker-compose.yml starts without AUTHN_KEYS_MASTER_KEY: it must refuse" >&2
    exit 1
fi
config=$(AUTHN_KEYS_MASTER_KEY=0123456789abcdef0123456789abcdef docker-compose -f docker-compose.yml config)
for service in db authn-keys-1 authn-keys-2; do
    grep -q "^  ${service}:" <<<"$config" || { echo "compose has no service $service" >&2; exit 1; }
done
ports=$(grep -c 'published: 808[12]' <<<"$config")
[[ $ports -eq 2 ]] || { echo "the two replicas must publish 8081 and 8082" >&2; exit 1; }
echo "valid; two replicas on 8081 and 8082; refuses to start without AUTHN_KEYS_MASTER_KEY"

echo "--- health checks against a running server"
# shellcheck source=tests/clients/lib/server.sh
source tests/clients/lib/server.sh
ak_start
port=${AK_URL##*:}
checks=$(python3 - <<'PY'
import json, re
compose = open("docker-compose.yml").read()
docker = open("Dockerfile").read().replace("\\\n", " ")
found = [json.loads(m) for m in re.findall(r'test: (\[.*\])', compose)]
found += [json.loads(m) for m in re.findall(r'HEALTHCHECK .*?CMD (\[.*\])', docker)]
for argv in found:
    if argv[:2] == ["CMD", "bash"] or argv[:1] == ["bash"]:
        print(argv[-1])
PY
)
[[ -n "$checks" ]] || { echo "no bash health checks found" >&2; exit 1; }
while IFS= read -r check; do
    local_check=${check//127.0.0.1\/8080/127.0.0.1\/$port}
    bash -c "$local_check" || { echo "health check failed against a ready server: $check" >&2; exit 1; }
    not_ready=${local_check//\/debug\/ready/\/no-such-path}
    if bash -c "$not_ready"; then
        echo "health check passes on a 404: $check" >&2
        exit 1
    fi
    echo "ok: $check"
done <<<"$checks"
ak_stop
trap - EXIT

echo "--- the Dockerfile's build context"
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
# COPY lines of the build stage (not --from): every source path, relative to the repo.
awk '/^FROM /{stage++} stage==1 && /^COPY / && !/--from/ {for (i=2; i<NF; i++) print $i}' Dockerfile |
    while read -r path; do
        mkdir -p "$context/$(dirname "$path")"
        cp -r "$path" "$context/$path"
    done
echo "copied: $(cd "$context" && ls -A | tr '\n' ' ')"
# The same build as the image's, in the debug profile and the repo's target folder, so the
# dependencies built for the tests are reused (a release build would take CI ten more minutes).
repo=$(pwd)
(cd "$context" && CARGO_TARGET_DIR="$repo/target" cargo build --locked --bin authn-keys --quiet)
echo "the build stage's files build the server"
