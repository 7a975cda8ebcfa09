# Checks for the README's grpcurl and buf curl blocks (<!-- test: cli NAME --> → check_NAME).
# Each runs right after its block, in a subshell of the reader's shell: it sees the variables
# the README set and the files it made in the current directory. Helpers: readme.sh.
# T_ROOT is the repository root (for the shared token helper).

CLI_ID_RE='^[0-9]{6,20}$'
CLI_ERROR_DETAIL=type.googleapis.com/zitadel.v1.ErrorDetail

# Succeeds when the file names exactly these lines among its lines.
cli_has_lines() {
    local desc=$1 text=$2 line
    shift 2
    for line in "$@"; do
        if grep -qxF -- "$line" <<<"$text"; then t_pass "$desc: $line"; else t_fail "$desc: no line '$line' in: ${text:0:600}"; fi
    done
}

check_grpc_list() {
    t_eq "ADDR is host:port" "$ADDR" "${T_ISSUER#http://}"
    local out
    out=$(t_out)
    cli_has_lines "grpcurl list" "$out" \
        grpc.health.v1.Health \
        grpc.reflection.v1.ServerReflection \
        grpc.reflection.v1alpha.ServerReflection \
        zitadel.application.v2.ApplicationService \
        zitadel.management.v1.ManagementService \
        zitadel.user.v2.UserService
    t_json "grpc.health.v1.Health/Check" "$(sed -n '/^{/,$p' <<<"$out")" .status SERVING
}

check_grpc_describe() {
    cli_has_lines "describe" "$(t_out)" \
        "zitadel.management.v1.ManagementService.AddMachineKey is a method:" \
        "rpc AddMachineKey ( .zitadel.management.v1.AddMachineKeyRequest ) returns ( .zitadel.management.v1.AddMachineKeyResponse );" \
        "zitadel.management.v1.AddMachineKeyRequest is a message:" \
        "  string user_id = 1;" \
        "  .zitadel.authn.v1.KeyType type = 2;" \
        "  .google.protobuf.Timestamp expiration_date = 3;" \
        "  bytes public_key = 4;"
}

check_grpc_add() {
    t_match "GRPC_USER_ID" "$GRPC_USER_ID" "$CLI_ID_RE"
    t_json "AddMachineUser: sequence 1" "$(cat grpc-user.json)" .details.sequence 1
    t_match "GRPC_KEY_ID" "$GRPC_KEY_ID" "$CLI_ID_RE"
    t_json "AddMachineKey: sequence 2" "$(cat grpc-added.json)" .details.sequence 2
    t_json "key file: userId" "$(cat grpc-bot-key.json)" .userId "$GRPC_USER_ID"
    t_json "key file: keyId" "$(cat grpc-bot-key.json)" .keyId "$GRPC_KEY_ID"
    t_json "key file: default expiry" "$(cat grpc-bot-key.json)" .expirationDate 9999-12-31T23:59:59Z
    t_json "the printed key file hides the key" "$(t_out | tail -n1)" .key "…"
    t_ok "the key file gets a token" node "$T_ROOT/tests/clients/lib/token.mjs" grpc-bot-key.json "$ISSUER"
}

check_grpc_read() {
    local docs
    docs=$(t_out | jq -cs .)
    t_json "ListMachineKeys: totalResult" "$docs" '.[0].details.totalResult' 1
    t_json "ListMachineKeys: the key" "$docs" '[.[0].result[].id] | join(",")' "$GRPC_KEY_ID"
    t_json "ListMachineKeys: processedSequence" "$docs" '.[0].details.processedSequence | tonumber > 0' true
    t_json "GetMachineKeyByIDs: the key" "$docs" '.[1].key.id' "$GRPC_KEY_ID"
    t_json "GetMachineKeyByIDs: type" "$docs" '.[1].key.type' KEY_TYPE_JSON
    t_json "GetMachineKeyByIDs: expiry" "$docs" '.[1].key.expirationDate' 9999-12-31T23:59:59Z
    t_json "GetMachineKeyByIDs: no key material" "$docs" '.[1].key | has("keyDetails")' false
}

check_grpc_remove() {
    t_json "RemoveMachineKey: sequence 3" "$(t_out)" .details.sequence 3
    t_json "RemoveMachineKey: a change date" "$(t_out)" '.details.changeDate | length > 0' true
    local refused
    refused=$(node "$T_ROOT/tests/clients/lib/token.mjs" grpc-bot-key.json "$ISSUER" 2>&1)
    t_has "the removed key gets no token" "$refused" '"error":"invalid_grant"'
}

check_grpc_error() {
    local status
    status=$(t_err)
    t_eq "grpcurl exits 64 + NOT_FOUND" "$(t_out)" "grpcurl exit status 69"
    t_json "status code" "$status" .code 5
    t_json "status message" "$status" .message "machine key not found (QUERY-Dgr3g)"
    t_json "one detail" "$status" '.details | length' 1
    t_json "detail type" "$status" '.details[0]["@type"]' "$CLI_ERROR_DETAIL"
    t_json "ErrorDetail id" "$status" '.details[0].id' QUERY-Dgr3g
    t_json "ErrorDetail message" "$status" '.details[0].message' "machine key not found"
}

check_buf_list() {
    t_eq "buf curl --list-methods | grep MachineKey" "$(t_out)" "zitadel.management.v1.ManagementService/AddMachineKey
zitadel.management.v1.ManagementService/GetMachineKeyByIDs
zitadel.management.v1.ManagementService/ListMachineKeys
zitadel.management.v1.ManagementService/RemoveMachineKey"
}

check_buf_call() {
    t_match "BUF_KEY_ID" "$BUF_KEY_ID" "$CLI_ID_RE"
    t_json "AddMachineKey over gRPC: a key file" "$(jq -r .keyDetails buf-added.json | base64 -d)" .keyId "$BUF_KEY_ID"
    t_json "GetMachineKeyByIDs over gRPC-Web: the key" "$(t_out)" .key.id "$BUF_KEY_ID"
    t_json "GetMachineKeyByIDs over gRPC-Web: type" "$(t_out)" .key.type KEY_TYPE_JSON
}

check_buf_http1() {
    t_ok "grpcurl wrote the descriptor set" test -s management.binpb
    t_json "GetMachineKeyByIDs over gRPC-Web, HTTP/1.1: the key" "$(t_out)" .key.id "$BUF_KEY_ID"
    # the same command again, verbose: it really went over HTTP/1.1 as grpc-web
    local v
    v=$(buf curl -v --schema management.binpb --protocol grpcweb \
        -H "authorization: Bearer $TOKEN" \
        -d '{"userId":"'"$GRPC_USER_ID"'","keyId":"'"$BUF_KEY_ID"'"}' \
        "$ISSUER/zitadel.management.v1.ManagementService/GetMachineKeyByIDs" 2>&1 >/dev/null)
    t_has "the answer came over HTTP/1.1" "$v" "< (#1) HTTP/1.1 200 OK"
    t_has "as application/grpc-web+proto" "$v" "< (#1) Content-Type: application/grpc-web+proto"
}

check_buf_error() {
    local out
    out=$(t_out)
    t_eq "buf exits NOT_FOUND × 8" "$(sed -n 1p <<<"$out")" "buf exit status 40"
    t_json "code" "$(sed -n 2p <<<"$out")" .code not_found
    t_json "message" "$(sed -n 2p <<<"$out")" .message "machine key not found (QUERY-Dgr3g)"
    t_json "detail type" "$(sed -n 2p <<<"$out")" '.details[0].type' zitadel.v1.ErrorDetail
    t_eq "buf convert decodes the ErrorDetail" "$(sed -n 3p <<<"$out")" '{"id":"QUERY-Dgr3g","message":"machine key not found"}'
}

check_buf_connect_list() {
    t_eq "buf curl --list-methods (Connect reflection) | grep v2" "$(t_out)" "zitadel.application.v2.ApplicationService/CreateApplicationKey
zitadel.application.v2.ApplicationService/DeleteApplicationKey
zitadel.application.v2.ApplicationService/GetApplicationKey
zitadel.application.v2.ApplicationService/ListApplicationKeys
zitadel.user.v2.UserService/AddKey
zitadel.user.v2.UserService/CreateUser
zitadel.user.v2.UserService/DeleteUser
zitadel.user.v2.UserService/ListKeys
zitadel.user.v2.UserService/RemoveKey"
}

check_buf_connect_call() {
    t_match "ORG_ID" "$ORG_ID" "$CLI_ID_RE"
    t_json "GetMyOrg over Connect: the admin's org" "$(cat my-org.json)" .org.name DEFAULT
    t_json "GetMyOrg over Connect: the org owns itself" "$(cat my-org.json)" .org.details.resourceOwner "$ORG_ID"
    local out
    out=$(t_out)
    t_json "ListKeys over Connect: totalResult" "$out" .pagination.totalResult 1
    t_json "ListKeys over Connect: appliedLimit defaults to 100" "$out" .pagination.appliedLimit 100
    t_json "ListKeys over Connect: the key buf added over v1" "$out" '[.result[].id] | join(",")' "$BUF_KEY_ID"
    t_json "ListKeys over Connect: its user" "$out" '.result[0].userId' "$GRPC_USER_ID"
    t_json "ListKeys over Connect: its organization" "$out" '.result[0].organizationId' "$ORG_ID"
    t_json "ListKeys over Connect: the v1 key's expiry" "$(cat v2-keys.json)" '.result[0].expirationDate' 9999-12-31T23:59:59Z
}

check_buf_connect_error() {
    local out err decoded
    out=$(t_out)
    err=$(sed -n 2p <<<"$out")
    t_eq "buf exits NOT_FOUND × 8" "$(sed -n 1p <<<"$out")" "buf exit status 40"
    t_json "code" "$err" .code not_found
    t_json "message" "$err" .message "Machine key could not be found (COMMAND-4m77G)"
    t_json "one detail" "$err" '.details | length' 1
    t_json "detail type" "$err" '.details[0].type' zitadel.v1.ErrorDetail
    t_json "debug: ErrorDetail id" "$err" '.details[0].debug.id' COMMAND-4m77G
    # the binary value, decoded with the descriptor set from "buf-http1", is what debug says
    decoded=$(jq -r '.details[0].value + "==" | .[:length - length % 4]' connect-error.json | base64 -d |
        buf convert management.binpb --type zitadel.v1.ErrorDetail --from -#format=binpb 2>&1)
    t_json "value: ErrorDetail id" "$decoded" .id COMMAND-4m77G
    t_eq "value and debug are the same ErrorDetail" "$(jq -cS . <<<"$decoded" 2>&1)" "$(jq -cS '.details[0].debug' connect-error.json)"
}

check_own_api() {
    local out
    out=$(t_out)
    cli_has_lines "grpcurl list | grep authnkeys" "$out" authnkeys.v1.KeyService authnkeys.v1.PolicyService
    t_match "OWN_KEY_ID" "$OWN_KEY_ID" "$CLI_ID_RE"
    t_json "AddKey over gRPC: the algorithm" "$(cat own-added.json)" .key.algorithm ES256
    t_json "AddKey over gRPC: the key file's key id" "$(jq -r .keyDetails own-added.json | base64 -d)" .keyId "$OWN_KEY_ID"
    t_eq "DisableKey over Connect" "$(tail -n1 <<<"$out")" '{"algorithm":"ES256","origin":"KEY_ORIGIN_GENERATED","state":"KEY_STATE_DISABLED","disabledReason":"rotated"}'
}
