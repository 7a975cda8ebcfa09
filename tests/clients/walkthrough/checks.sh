# Checks for the README's walk-through blocks (<!-- test: walkthrough NAME --> → check_NAME).
# Each runs right after its block, in a subshell of the reader's shell: it sees the variables
# the README set and the files it made in the current directory. Helpers: readme.sh.

# The claims of a JWT (its middle part, base64url).
jwt_claims() {
    local part
    part=$(cut -d. -f2 <<<"$1" | tr '_-' '/+')
    while (((${#part} % 4) != 0)); do part+='='; done
    base64 -d <<<"$part"
}
jwt_header() {
    local part
    part=$(cut -d. -f1 <<<"$1" | tr '_-' '/+')
    while (((${#part} % 4) != 0)); do part+='='; done
    base64 -d <<<"$part"
}
# An access token for a key file by the JWT-profile grant, with the README's assertion.py.
grant() {
    curl -s -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer -d "scope=$2" \
        --data-urlencode assertion="$(.venv/bin/python assertion.py "$1" "$ISSUER")" \
        "$ISSUER/oauth/v2/token"
}
ID_RE='^[0-9]{6,20}$'

check_setup() {
    t_eq "ISSUER is the server under test" "$ISSUER" "$T_ISSUER"
    t_eq "ADMIN_KEY names the admin's key file" "$(jq -r .type "$ADMIN_KEY")" serviceaccount
    t_eq "the block moved to a scratch directory" "$([[ "$PWD" != "$T_START_DIR" ]] && echo moved)" moved
    t_eq "umask 077: new files are private" "$(umask)" 0077
    t_json "discovery names the issuer" "$(t_out)" .issuer "$ISSUER"
    t_json "discovery names the token endpoint" "$(t_out)" .token_endpoint "$ISSUER/oauth/v2/token"
    t_json "discovery names the introspection endpoint" "$(t_out)" .introspection_endpoint "$ISSUER/oauth/v2/introspect"
}

check_venv() {
    t_ok "the venv has PyJWT and cryptography" .venv/bin/python -c 'import jwt, cryptography'
}

check_assertion_py() {
    local a user key
    t_ok "assertion.py exists" test -s assertion.py
    a=$(.venv/bin/python assertion.py "$ADMIN_KEY" "$ISSUER")
    user=$(jq -r .userId "$ADMIN_KEY")
    key=$(jq -r .keyId "$ADMIN_KEY")
    t_json "assertion header: RS256" "$(jwt_header "$a")" .alg RS256
    t_json "assertion header: kid = keyId" "$(jwt_header "$a")" .kid "$key"
    t_json "assertion: iss = userId" "$(jwt_claims "$a")" .iss "$user"
    t_json "assertion: sub = userId" "$(jwt_claims "$a")" .sub "$user"
    t_json "assertion: aud = issuer" "$(jwt_claims "$a")" .aud "$ISSUER"
    t_json "assertion: exp - iat = 300 s" "$(jwt_claims "$a")" '.exp - .iat' 300
    t_json "assertion: a jti" "$(jwt_claims "$a")" '.jti | length > 0' true
}

check_token() {
    local body
    body=$(cat token.json)
    t_eq "the block printed the token answer" "$(t_out)" "$body"
    t_json "token_type" "$body" .token_type Bearer
    t_json "expires_in (default lifetime)" "$body" .expires_in 43200
    t_json "scope" "$body" .scope "openid urn:zitadel:iam:org:project:id:zitadel:aud"
    t_json "an id_token (openid)" "$body" '.id_token | split(".") | length' 3
    t_json "TOKEN is the access token" "$body" .access_token "$TOKEN"
    t_match "TOKEN is set" "$TOKEN" '^.{20,}$'
    t_json "TOKEN works on the management API" \
        "$(curl -s -H "authorization: Bearer $TOKEN" "$ISSUER/management/v1/orgs/me")" '.org.name' DEFAULT
}

check_machine_user() {
    t_match "USER_ID" "$USER_ID" "$ID_RE"
    t_json "AddMachineUser: sequence 1" "$(t_out)" .details.sequence 1
    t_json "the user exists as ci-bot" \
        "$(curl -s -H "authorization: Bearer $TOKEN" "$ISSUER/management/v1/users/$USER_ID")" \
        '[.user.userName, .user.machine.name, .user.machine.description] | join("|")' "ci-bot|CI bot|deploys"
}

check_generated_key() {
    t_match "KEY_ID" "$KEY_ID" "$ID_RE"
    t_json "AddMachineKey answer names KEY_ID" "$(t_out | head -n1)" .keyId "$KEY_ID"
    t_json "key file: type" "$(cat ci-bot-key.json)" .type serviceaccount
    t_json "key file: keyId = KEY_ID" "$(cat ci-bot-key.json)" .keyId "$KEY_ID"
    t_json "key file: userId = USER_ID" "$(cat ci-bot-key.json)" .userId "$USER_ID"
    t_json "key file: default expiry" "$(cat ci-bot-key.json)" .expirationDate 9999-12-31T23:59:59Z
    t_json "key file: a PKCS#1 private key" "$(cat ci-bot-key.json)" '.key | startswith("-----BEGIN RSA PRIVATE KEY-----\n")' true
    t_json "key file: keys in ZITADEL's order" "$(cat ci-bot-key.json)" 'keys_unsorted | join(",")' type,keyId,key,expirationDate,userId
    t_json "the printed key file hides the key" "$(t_out | tail -n1)" .key "…"
    t_eq "ci-bot-key.json is private (umask)" "$(stat -c %a ci-bot-key.json)" 600
    t_json "the generated key gets a token" "$(grant ci-bot-key.json openid)" .token_type Bearer
}

check_uploaded_key() {
    t_match "UPLOADED_KEY_ID" "$UPLOADED_KEY_ID" "$ID_RE"
    t_eq "a second key" "$([[ "$UPLOADED_KEY_ID" != "$KEY_ID" ]] && echo new)" new
    t_has "public.pem is a SubjectPublicKeyInfo PEM" "$(head -n1 public.pem)" "-----BEGIN PUBLIC KEY-----"
    t_json "no keyDetails for an uploaded key" "$(cat uploaded.json)" 'has("keyDetails")' false
    t_json "its key file names the user" "$(cat ci-bot-uploaded-key.json)" .userId "$USER_ID"
    t_json "its key file names the key" "$(cat ci-bot-uploaded-key.json)" .keyId "$UPLOADED_KEY_ID"
    t_eq "the uploaded key's file gets a token" "$(t_out | tail -n1)" '{"token_type":"Bearer","expires_in":43200}'
    local get
    get=$(curl -s -H "authorization: Bearer $TOKEN" "$ISSUER/management/v1/users/$USER_ID/keys/$UPLOADED_KEY_ID")
    t_json "stored with the given expiry" "$get" .key.expirationDate 2030-01-01T00:00:00Z
    # the text after the block: the new user's tokens work, but it holds no roles yet
    local bot resp
    bot=$(grant ci-bot-key.json "urn:zitadel:iam:org:project:id:zitadel:aud" | jq -r .access_token)
    resp=$(curl -s -w '\n%{http_code}' -H "authorization: Bearer $bot" "$ISSUER/management/v1/users/$USER_ID")
    t_eq "ci-bot without roles: 403" "$(tail -n1 <<<"$resp")" 403
    t_json "ci-bot without roles: AUTH-5mWD2" "$(head -n1 <<<"$resp")" '.details[0].id' AUTH-5mWD2
}

check_list_keys() {
    t_json "totalResult" "$(t_out)" .details.totalResult 2
    t_json "newest first" "$(t_out)" '[.result[].id] | join(",")' "$UPLOADED_KEY_ID,$KEY_ID"
    t_json "expiry dates" "$(t_out)" '[.result[].expirationDate] | join(",")' "2030-01-01T00:00:00Z,9999-12-31T23:59:59Z"
    t_json "no key material listed" "$(t_out)" '[.result[] | has("keyDetails") or has("publicKey")] | any' false
    t_json "asc: true reverses" \
        "$(curl -s -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
            -d '{"query":{"offset":"0","limit":10,"asc":true}}' \
            "$ISSUER/management/v1/users/$USER_ID/keys/_search")" \
        '[.result[].id] | join(",")' "$KEY_ID,$UPLOADED_KEY_ID"
}

check_get_key() {
    t_json "the key" "$(t_out)" .key.id "$UPLOADED_KEY_ID"
    t_json "its type" "$(t_out)" .key.type KEY_TYPE_JSON
    t_json "its expiry" "$(t_out)" .key.expirationDate 2030-01-01T00:00:00Z
    t_json "its owner" "$(t_out)" .key.details.resourceOwner "$(jq -r .details.resourceOwner user.json)"
}

check_remove_key() {
    t_json "RemoveMachineKey: a change date" "$(t_out)" '.details.changeDate | length > 0' true
    t_json "RemoveMachineKey: the user's sequence moved on" "$(t_out)" '.details.sequence | tonumber > 3' true
}

check_removed_key() {
    local out
    out=$(t_out)
    t_json "GET: code 5" "$(sed -n 1p <<<"$out")" .code 5
    t_json "GET: ErrorDetail id" "$(sed -n 1p <<<"$out")" '.details[0].id' QUERY-Dgr3g
    t_json "GET: ErrorDetail type" "$(sed -n 1p <<<"$out")" '.details[0]["@type"]' type.googleapis.com/zitadel.v1.ErrorDetail
    t_json "GET: message" "$(sed -n 1p <<<"$out")" .message "machine key not found (QUERY-Dgr3g)"
    t_eq "GET: HTTP 404" "$(sed -n 2p <<<"$out")" "HTTP 404"
    t_json "token: invalid_grant" "$(sed -n 3p <<<"$out")" .error invalid_grant
    t_json "token: says which key" "$(sed -n 3p <<<"$out")" .error_description \
        "no machine key with key id (kid) $UPLOADED_KEY_ID verifies this assertion: the key id is unknown, the key was removed, or the assertion was signed with another key"
    t_eq "token: HTTP 400" "$(sed -n 4p <<<"$out")" "HTTP 400"
    t_json "the other key still works" "$(grant ci-bot-key.json openid)" .token_type Bearer
}

check_app_key() {
    t_match "PROJECT_ID" "$PROJECT_ID" "$ID_RE"
    t_match "APP_ID" "$APP_ID" "$ID_RE"
    t_json "AddAPIApp: a numeric clientId" "$(cat app.json)" '.clientId | test("^[0-9]+$")' true
    t_json "AddAPIApp PRIVATE_KEY_JWT: no secret" "$(cat app.json)" 'has("clientSecret")' false
    t_json "app key file: type" "$(cat app-key.json)" .type application
    t_json "app key file: keyId = AddAppKey id" "$(cat app-key.json)" .keyId "$(jq -r .id app-key-added.json)"
    t_json "app key file: appId" "$(cat app-key.json)" .appId "$APP_ID"
    t_json "app key file: clientId" "$(cat app-key.json)" .clientId "$(jq -r .clientId app.json)"
    t_json "app key file: keys in ZITADEL's order" "$(cat app-key.json)" 'keys_unsorted | join(",")' type,keyId,key,appId,clientId
    t_json "the printed app key file hides the key" "$(t_out | tail -n1)" .key "…"
    local a
    a=$(.venv/bin/python assertion.py app-key.json "$ISSUER")
    t_json "assertion.py signs as the app's clientId" "$(jwt_claims "$a")" .sub "$(jq -r .clientId app.json)"
    t_json "assertion.py uses the app key's kid" "$(jwt_header "$a")" .kid "$(jq -r .keyId app-key.json)"
}

check_user_token() {
    t_match "USER_TOKEN is set" "$USER_TOKEN" '^.{20,}$'
    t_eq "USER_TOKEN is not the admin's" "$([[ "$USER_TOKEN" != "$TOKEN" ]] && echo other)" other
}

check_introspect() {
    local out
    out=$(t_out)
    t_json "active" "$out" .active true
    t_json "sub is the machine user" "$out" .sub "$USER_ID"
    t_json "aud has the project" "$out" "[.aud[] | select(. == \"$PROJECT_ID\")] | length" 1
    t_json "iss" "$out" .iss "$ISSUER"
    t_json "scope" "$out" .scope "urn:zitadel:iam:org:project:id:$PROJECT_ID:aud"
    t_json "token_type" "$out" .token_type Bearer
    t_json "the user's org" "$out" '.["urn:zitadel:iam:user:resourceowner:id"]' "$(jq -r .details.resourceOwner user.json)"
}

check_basic_app() {
    local out resp
    out=$(t_out)
    t_match "CLIENT_ID" "$CLIENT_ID" '^[0-9]+$'
    t_match "CLIENT_SECRET: 64 characters" "$CLIENT_SECRET" '^[A-Za-z0-9]{64}$'
    t_eq "HTTP Basic: USER_TOKEN active" "$(sed -n 1p <<<"$out")" \
        "{\"active\":true,\"sub\":\"$USER_ID\",\"aud\":[\"$PROJECT_ID\"]}"
    t_eq "HTTP Basic: the admin's TOKEN inactive" "$(sed -n 2p <<<"$out")" '{"active":false}'
    # the claims in the text after the block
    t_eq "an unknown token is inactive" \
        "$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" "$ISSUER/oauth/v2/introspect" -d token=no-such-token)" '{"active":false}'
    resp=$(curl -s -w '\n%{http_code}' -u "$CLIENT_ID:wrong-secret" "$ISSUER/oauth/v2/introspect" -d token="$USER_TOKEN")
    t_eq "a wrong secret: 401" "$(tail -n1 <<<"$resp")" 401
    t_json "a wrong secret: invalid_client" "$(head -n1 <<<"$resp")" .error invalid_client
    t_json "a wrong secret: a description" "$(head -n1 <<<"$resp")" '.error_description | length > 10' true
    resp=$(curl -s -w '\n%{http_code}' "$ISSUER/oauth/v2/introspect" -d token="$USER_TOKEN")
    t_eq "no client authentication: 401" "$(tail -n1 <<<"$resp")" 401
    t_json "no client authentication: invalid_client" "$(head -n1 <<<"$resp")" .error invalid_client
    resp=$(curl -s -w '\n%{http_code}' -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer \
        --data-urlencode assertion="$(.venv/bin/python assertion.py app-key.json "$ISSUER")" "$ISSUER/oauth/v2/token")
    t_eq "an app key at the token endpoint: 400" "$(tail -n1 <<<"$resp")" 400
    t_json "an app key at the token endpoint: invalid_grant" "$(head -n1 <<<"$resp")" .error invalid_grant
    t_has "an app key at the token endpoint: says why" "$(head -n1 <<<"$resp")" "application keys authenticate clients"
}

check_introspect_jwt() {
    local out jwt resp
    out=$(t_out)
    jwt=$(cat introspection.jwt)
    t_eq "the decoded claims" "$out" \
        "{\"iss\":\"$ISSUER\",\"aud\":\"$CLIENT_ID\",\"active\":true,\"sub\":\"$USER_ID\"}"
    t_json "typ: token-introspection+jwt" "$(jwt_header "$jwt")" .typ token-introspection+jwt
    t_json "signed with a key of the JWKS" "$(curl -s "$ISSUER/oauth/v2/keys")" \
        "[.keys[] | select(.kid == \"$(jwt_header "$jwt" | jq -r .kid)\")] | length" 1
    t_json "iat" "$(jwt_claims "$jwt")" '.iat > 0' true
    t_json "the answer as in JSON" "$(jwt_claims "$jwt")" .token_introspection.scope \
        "urn:zitadel:iam:org:project:id:$PROJECT_ID:aud"
    resp=$(curl -s -o /dev/null -w '%{content_type}' -u "$CLIENT_ID:$CLIENT_SECRET" \
        -H 'accept: application/token-introspection+jwt' "$ISSUER/oauth/v2/introspect" -d token="$USER_TOKEN")
    t_eq "its content type" "$resp" application/token-introspection+jwt
    t_json "discovery names the algorithm" "$(curl -s "$ISSUER/.well-known/oauth-authorization-server")" \
        '.introspection_signing_alg_values_supported | join(",")' "$(jwt_header "$jwt" | jq -r .alg)"
}

check_revoke() {
    local out resp
    out=$(t_out)
    t_eq "revoked: 200" "$(sed -n 1p <<<"$out")" 200
    t_eq "then inactive" "$(sed -n 2p <<<"$out")" '{"active":false}'
    # the claims in the text after the block
    t_eq "an unknown token: 200" "$(curl -s -o /dev/null -w '%{http_code}' -u "$CLIENT_ID:$CLIENT_SECRET" \
        "$ISSUER/oauth/v2/revoke" -d token=no-such-token -d token_type_hint=refresh_token)" 200
    resp=$(curl -s -w '\n%{http_code}' "$ISSUER/oauth/v2/revoke" -d token="$USER_TOKEN")
    t_eq "no client authentication: 401" "$(tail -n1 <<<"$resp")" 401
    t_json "no client authentication: invalid_client" "$(head -n1 <<<"$resp")" .error invalid_client
    t_json "discovery names the endpoint" "$(curl -s "$ISSUER/.well-known/openid-configuration")" \
        .revocation_endpoint "$ISSUER/oauth/v2/revoke"
}

check_v2_list_keys() {
    local out
    out=$(t_out)
    t_json "v2 ListKeys: the total, as a string" "$out" .pagination.totalResult 1
    t_json "v2 ListKeys: the default limit" "$out" .pagination.appliedLimit 100
    t_json "v2 ListKeys: the v1 key, listed by v2" "$out" '.result[0].id' "$KEY_ID"
    t_json "v2 ListKeys: its user" "$out" '.result[0].userId' "$USER_ID"
    t_json "v2 ListKeys: never expires" "$out" '.result[0].expirationDate' 9999-12-31T23:59:59Z
    t_json "v2 ListKeys: change date = creation date" "$out" '.result[0].changeDate == .result[0].creationDate' true
}

check_v2_add_key() {
    local file
    t_match "V2_KEY_ID" "$V2_KEY_ID" "$ID_RE"
    file=$(jq -r .keyContent v2-added.json | base64 -d)
    t_json "v2 key file: its key id" "$file" .keyId "$V2_KEY_ID"
    t_json "v2 key file: its user" "$file" .userId "$USER_ID"
    t_json "v2 key file: the expiration asked for" "$file" .expirationDate 2030-01-01T00:00:00Z
    t_json "the printed key file hides the key" "$(t_out)" .key "…"
    # a key added through v2 is one of v1's keys, and gets tokens
    t_json "v1 lists the v2 key" "$(curl -s -H "authorization: Bearer $TOKEN" -d '{}' \
        "$ISSUER/management/v1/users/$USER_ID/keys/_search")" '[.result[].id] | index("'"$V2_KEY_ID"'") != null' true
    jq -r .keyContent v2-added.json | base64 -d > "$T_TMP/v2-key.json"
    t_json "the v2 key file gets a token" "$(grant "$T_TMP/v2-key.json" openid)" .token_type Bearer
}

check_v2_remove_key() {
    local out
    out=$(t_out)
    t_json "v2 RemoveKey: a deletion date" "$(sed -n 1p <<<"$out")" '.deletionDate | endswith("Z")' true
    t_eq "v2 RemoveKey: HTTP 200" "$(sed -n 2p <<<"$out")" "HTTP 200"
    t_json "again: Connect code" "$(sed -n 3p <<<"$out")" .code not_found
    t_json "again: ErrorDetail id" "$(sed -n 3p <<<"$out")" '.details[0].debug.id' COMMAND-4m77G
    t_json "again: ErrorDetail type" "$(sed -n 3p <<<"$out")" '.details[0].type' zitadel.v1.ErrorDetail
    t_json "again: message" "$(sed -n 3p <<<"$out")" .message "Machine key could not be found (COMMAND-4m77G)"
    t_eq "again: HTTP 404" "$(sed -n 4p <<<"$out")" "HTTP 404"
    t_json "the removed key gets no token" "$(grant "$T_TMP/v2-key.json" openid)" .error invalid_grant
}

# One line of python_bot.py's output: "USER_ID KEY_ID ['KEY_ID']" → checks, and prints USER_ID.
python_run_checks() {
    local run=$1 line=$2 user key listed
    read -r user key listed <<<"$line"
    t_match "run $run: the new user's id" "$user" "$ID_RE"
    t_match "run $run: the new key's id" "$key" "$ID_RE"
    t_eq "run $run: ListKeys lists the new key" "$listed" "['$key']"
    t_json "run $run: the key file names the user" "$(cat python-bot-key.json)" .userId "$user"
    t_json "run $run: the key file names the key" "$(cat python-bot-key.json)" .keyId "$key"
    t_eq "run $run: the key file is private (umask)" "$(stat -c %a python-bot-key.json)" 600
    t_json "run $run: a python-bot user in the admin's org" \
        "$(curl -s -H "authorization: Bearer $TOKEN" "$ISSUER/management/v1/users/$user")" \
        '(.user.userName | startswith("python-bot-")) and .user.details.resourceOwner == "'"$ORG_ID"'"' true
    t_json "run $run: the bot removed its own key" \
        "$(curl -s -H "authorization: Bearer $TOKEN" -d '{}' "$ISSUER/management/v1/users/$user/keys/_search")" \
        '(.result // []) | length' 0
    t_json "run $run: the removed key gets no token" "$(grant python-bot-key.json openid)" .error invalid_grant
    PYTHON_RUN_USER=$user
}

check_python_sdk() {
    local first second
    t_eq "ISSUER is exported" "$(printenv ISSUER)" "$ISSUER"
    t_eq "ADMIN_KEY is exported" "$(printenv ADMIN_KEY)" "$ADMIN_KEY"
    t_eq "ORG_ID is exported: the admin's org" "$(printenv ORG_ID)" "$(jq -r .details.resourceOwner user.json)"
    t_ok "the SDK is installed in .venv" .venv/bin/python -c 'import zitadel_client'
    t_ok "the admin's key file is not in the scratch directory" test ! -e admin-key.json
    python_run_checks 1 "$(t_out | tail -n1)"
    first=$PYTHON_RUN_USER
    # The reader runs it again: a new user, not a failure on the first one's name.
    if .venv/bin/python python_bot.py >python-again.out 2>python-again.err; then
        t_pass "a second run exits 0"
    else
        t_fail "a second run failed: $(tail -n 5 python-again.err)"
    fi
    python_run_checks 2 "$(tail -n1 python-again.out)"
    second=$PYTHON_RUN_USER
    t_eq "each run makes its own user" "$([[ "$first" != "$second" ]] && echo different)" different
}
