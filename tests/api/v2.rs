//! ZITADEL's v2 key APIs over Connect (as the official SDKs call them), gRPC and REST: the
//! user and application key lifecycles, v2's permission rules and self-service, honest
//! totals, filters and sorting, the field rules, and v1 and v2 as two views of the same keys.
use authn_keys::proto::zitadel::{
    management::v1,
    user::v2::{AddKeyRequest, ListKeysRequest, user_service_client::UserServiceClient},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::*;

const USERS: &str = "zitadel.user.v2.UserService";
const APPS: &str = "zitadel.application.v2.ApplicationService";

/// A Connect JSON call: (HTTP status, body).
async fn call(
    app: &TestApp,
    token: &str,
    path: impl std::fmt::Display,
    body: Value,
) -> (u16, Value) {
    let resp = app
        .http
        .post(format!("{}/{path}", app.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn error_id(body: &Value) -> &str {
    body["details"][0]["debug"]["id"].as_str().unwrap_or("")
}

async fn create_machine(app: &TestApp, token: &str, org: &str, name: &str) -> String {
    let (status, body) = call(
        app,
        token,
        &format!("{USERS}/CreateUser"),
        json!({"organizationId": org, "username": name, "machine": {"name": name, "description": "made over v2"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["creationDate"].as_str().unwrap().ends_with('Z'));
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn user_keys_lifecycle_over_connect() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let user = unique("sdk-bot");
    let user_id = create_machine(&app, &admin, &app.org_id, &user).await;

    // Generated: keyContent is the key file, and it gets tokens.
    let (status, added) = call(
        &app,
        &admin,
        &format!("{USERS}/AddKey"),
        json!({"userId": user_id, "expirationDate": "2031-06-01T12:30:45.123456+00:00"}),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    let file = KeyFile::parse(
        &STANDARD
            .decode(added["keyContent"].as_str().unwrap())
            .unwrap(),
    );
    assert_eq!(file.user_id.as_deref(), Some(user_id.as_str()));
    assert_eq!(file.key_id, added["keyId"].as_str().unwrap());
    let own = app.token_for(&file).await;

    // Uploaded: no keyContent.
    let (pem, _) = rsa_public_pem();
    let (status, uploaded) = call(
        &app,
        &admin,
        &format!("{USERS}/AddKey"),
        json!({"userId": user_id, "expirationDate": "2030-01-01T00:00:00+02:00", "publicKey": STANDARD.encode(&pem)}),
    )
    .await;
    assert_eq!(status, 200, "{uploaded}");
    assert!(uploaded.get("keyContent").is_none());
    let uploaded_id = uploaded["keyId"].as_str().unwrap().to_owned();

    // Filters are ANDed; sorting and paging as asked; totals count matches.
    let list = |body: Value| call(&app, &admin, format!("{USERS}/ListKeys"), body);
    let (_, mine) = list(json!({"filters": [{"userIdFilter": {"id": user_id}}]})).await;
    assert_eq!(
        mine["pagination"],
        json!({"totalResult": "2", "appliedLimit": "100"})
    );
    // Newest first by default.
    assert_eq!(mine["result"][0]["id"], json!(uploaded_id));
    assert_eq!(
        mine["result"][0]["changeDate"],
        mine["result"][0]["creationDate"]
    );
    assert_eq!(mine["result"][0]["organizationId"], json!(app.org_id));
    let (_, by_expiry) = list(json!({
        "pagination": {"offset": "0", "limit": 1, "asc": true},
        "sortingColumn": "KEY_FIELD_NAME_KEY_EXPIRATION_DATE",
        "filters": [{"userIdFilter": {"id": user_id}}]
    }))
    .await;
    assert_eq!(by_expiry["pagination"]["totalResult"], "2");
    assert_eq!(by_expiry["pagination"]["appliedLimit"], "1");
    assert_eq!(by_expiry["result"].as_array().unwrap().len(), 1);
    assert_eq!(by_expiry["result"][0]["id"], json!(uploaded_id));
    assert_eq!(
        by_expiry["result"][0]["expirationDate"],
        "2029-12-31T22:00:00Z"
    );
    let (_, before) = list(json!({"filters": [
        {"userIdFilter": {"id": user_id}},
        {"expirationDateFilter": {"timestamp": "2031-01-01T00:00:00Z", "method": "TIMESTAMP_FILTER_METHOD_BEFORE"}}
    ]}))
    .await;
    assert_eq!(before["pagination"]["totalResult"], "1");
    assert_eq!(before["result"][0]["id"], json!(uploaded_id));
    let (_, after) = list(json!({"filters": [
        {"userIdFilter": {"id": user_id}},
        {"expirationDateFilter": {"timestamp": "2031-01-01T00:00:00Z", "method": "TIMESTAMP_FILTER_METHOD_AFTER"}}
    ]}))
    .await;
    assert_eq!(after["result"][0]["id"], added["keyId"]);
    let (_, by_id) = list(json!({"filters": [{"keyIdFilter": {"id": uploaded_id}}]})).await;
    assert_eq!(by_id["pagination"]["totalResult"], "1");
    let (_, none) = list(json!({"filters": [{"userIdFilter": {"id": "nobody"}}]})).await;
    assert_eq!(none, json!({"pagination": {"appliedLimit": "100"}}));

    // Self-service: the user lists, adds and removes its own keys without any role.
    let (status, self_list) = call(&app, &own, &format!("{USERS}/ListKeys"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        self_list["pagination"]["totalResult"], "2",
        "only its own keys: {self_list}"
    );
    let (status, self_added) = call(
        &app,
        &own,
        &format!("{USERS}/AddKey"),
        json!({"userId": user_id, "expirationDate": "2032-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 200, "{self_added}");
    let (status, _) = call(
        &app,
        &own,
        &format!("{USERS}/RemoveKey"),
        json!({"userId": user_id, "keyId": self_added["keyId"]}),
    )
    .await;
    assert_eq!(status, 200);
    // …but nothing of anyone else's in its org (another org's users answer as unknown ones;
    // see side_channels.rs).
    let (status, body) = call(
        &app,
        &own,
        &format!("{USERS}/AddKey"),
        json!({"userId": app.admin_id, "expirationDate": "2032-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!((status, error_id(&body)), (403, "AUTHZ-HKJD33"), "{body}");

    // RemoveKey is not idempotent; the removed key gets no more tokens.
    let remove = json!({"userId": user_id, "keyId": added["keyId"]});
    let (status, removed) = call(&app, &admin, &format!("{USERS}/RemoveKey"), remove.clone()).await;
    assert_eq!(status, 200);
    assert!(removed["deletionDate"].as_str().unwrap().ends_with('Z'));
    let (status, again) = call(&app, &admin, &format!("{USERS}/RemoveKey"), remove).await;
    assert_eq!((status, error_id(&again)), (404, "COMMAND-4m77G"));
    let (status, _) = app
        .token_request(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &app.assertion(&file, json!({}))),
        ])
        .await;
    assert_eq!(status, 400);
    let (status, unknown) = call(
        &app,
        &admin,
        &format!("{USERS}/RemoveKey"),
        json!({"userId": "no-such-user", "keyId": "1"}),
    )
    .await;
    assert_eq!((status, error_id(&unknown)), (404, "COMMAND-4g3xq"));

    // DeleteUser: the keys go with it; a second time is NOT_FOUND.
    let (status, deleted) = call(
        &app,
        &admin,
        &format!("{USERS}/DeleteUser"),
        json!({"userId": user_id}),
    )
    .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["details"]["resourceOwner"], json!(app.org_id));
    let (status, body) = call(
        &app,
        &admin,
        &format!("{USERS}/DeleteUser"),
        json!({"userId": user_id}),
    )
    .await;
    assert_eq!((status, error_id(&body)), (404, "COMMAND-bd4ir1mblj"));
    let (_, gone) = list(json!({"filters": [{"userIdFilter": {"id": user_id}}]})).await;
    assert!(gone["result"].is_null(), "{gone}");
}

/// A PKIX public key PEM of a new RSA-2048 pair, and the pair.
fn rsa_public_pem() -> (Vec<u8>, rsa::RsaPrivateKey) {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    (pem.into_bytes(), private)
}

#[tokio::test]
async fn field_rules_and_handler_checks_in_upstream_order() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let add = |body: Value| call(&app, &admin, format!("{USERS}/AddKey"), body);

    let (status, body) = add(json!({"userId": app.admin_id})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": "invalid_argument", "message": "invalid AddKeyRequest.ExpirationDate: value is required"})
    );
    let (_, body) = add(json!({"userId": "", "expirationDate": "2030-01-01T00:00:00Z"})).await;
    assert_eq!(
        body["message"],
        "invalid AddKeyRequest.UserId: value length must be between 1 and 200 runes, inclusive"
    );
    // A timestamp without an offset does not decode.
    let (status, body) =
        add(json!({"userId": app.admin_id, "expirationDate": "2030-01-01T00:00:00"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_argument"))
    );
    // Key checks come before the user lookup: a bad key for an unknown user is about the key.
    let (_, body) = add(json!({"userId": "nobody", "expirationDate": "2030-01-01T00:00:00Z", "publicKey": STANDARD.encode("not a key")})).await;
    assert_eq!(error_id(&body), "COMMAND-5F3h1");
    let (_, body) =
        add(json!({"userId": "nobody", "expirationDate": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(error_id(&body), "DOMAIN-dv3t5");
    let (status, body) =
        add(json!({"userId": "nobody", "expirationDate": "2030-01-01T00:00:00Z"})).await;
    assert_eq!(
        (status, body["code"].as_str(), error_id(&body)),
        (400, Some("failed_precondition"), "COMMAND-bnipwm1")
    );

    // ListKeys: an empty oneof, a bad limit, an unknown sorting number.
    let list = |body: Value| call(&app, &admin, format!("{USERS}/ListKeys"), body);
    let (_, body) = list(json!({"filters": [{}]})).await;
    assert_eq!(
        body["message"],
        "invalid KeysSearchFilter.Filter: value is required"
    );
    // ZITADEL's OpenAPI example uses fields that do not exist: dropped, so the oneof is empty.
    let (status, _) =
        list(json!({"filters": [{"andFilter": {"keyIdFilter": {"keyId": "1"}}}]})).await;
    assert_eq!(status, 400);
    let (_, body) = list(json!({"pagination": {"limit": 1001}})).await;
    assert_eq!(error_id(&body), "QUERY-4M0fs");
    // An enum name this server does not know is ignored, as connect-go does.
    let (status, _) = list(json!({"sortingColumn": "KEY_FIELD_NAME_FROM_THE_FUTURE"})).await;
    assert_eq!(status, 200);
    // Over gRPC an unknown number is kept, and refused by the rule.
    let mut grpc = UserServiceClient::new(app.channel().await);
    let err = grpc
        .list_keys(authed(
            &admin,
            None,
            ListKeysRequest {
                sorting_column: Some(99),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "invalid ListKeysRequest.SortingColumn: value must be one of the defined enum values"
    );

    // CreateUser: human users are not kept; ids and names collide as upstream says.
    let create = |body: Value| call(&app, &admin, format!("{USERS}/CreateUser"), body);
    let (_, body) = create(json!({"organizationId": app.org_id})).await;
    assert_eq!(
        body["message"],
        "invalid CreateUserRequest.UserType: value is required"
    );
    let (status, body) = create(json!({"organizationId": app.org_id, "human": {"profile": {"givenName": "A", "familyName": "B"}, "email": {"email": "a@example.com"}}})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (501, Some("unimplemented"))
    );
    let (_, body) = create(json!({"organizationId": app.org_id, "human": {"profile": {"givenName": "A", "familyName": "B"}, "email": {"email": "not-an-email"}}})).await;
    assert_eq!(
        body["message"],
        "invalid SetHumanEmail.Email: value must be a valid email address"
    );
    let chosen = unique("chosen-id");
    let (status, body) =
        create(json!({"organizationId": app.org_id, "userId": chosen, "machine": {"name": "x"}}))
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], json!(chosen));
    let (status, body) = create(json!({"organizationId": app.org_id, "userId": chosen, "username": unique("other"), "machine": {"name": "x"}})).await;
    assert_eq!((status, error_id(&body)), (400, "COMMAND-k2una"));
    // The user name defaulted to the id.
    let (status, body) =
        create(json!({"organizationId": app.org_id, "username": chosen, "machine": {"name": "x"}}))
            .await;
    assert_eq!((status, error_id(&body)), (409, "V3-DKcYh"));
    let (status, body) =
        create(json!({"organizationId": "no-such-org", "machine": {"name": "x"}})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("failed_precondition"))
    );

    // No token: v2's unauthenticated id.
    let resp = app
        .http
        .post(format!("{}/{USERS}/ListKeys", app.base))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_id(&body), "AUTH-7fs1e");
}

#[tokio::test]
async fn listings_show_only_what_the_caller_may_read() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    // Another org, with a machine user and a key.
    let (_, org) = app
        .rest(
            "POST",
            "/orgs",
            Some(&admin),
            None,
            Some(json!({"name": unique("Other")})),
        )
        .await;
    let other = org["id"].as_str().unwrap().to_owned();
    let theirs = create_machine(&app, &admin, &other, &unique("theirs")).await;
    let (status, _) = call(
        &app,
        &admin,
        &format!("{USERS}/AddKey"),
        json!({"userId": theirs, "expirationDate": "2030-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 200);
    // An org admin of the default org only (ORG_OWNER there, no instance role).
    let (viewer, viewer_key) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    let viewer_token = app.token_for(&viewer_key).await;

    let (_, all) = call(&app, &admin, &format!("{USERS}/ListKeys"), json!({})).await;
    let total_all: u64 = all["pagination"]["totalResult"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (_, seen) = call(&app, &viewer_token, &format!("{USERS}/ListKeys"), json!({})).await;
    let total_seen: u64 = seen["pagination"]["totalResult"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        total_seen + 1,
        total_all,
        "the viewer sees all but the other org's key"
    );
    assert!(
        seen["result"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["organizationId"] == json!(app.org_id))
    );
    assert!(
        seen["result"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["userId"] == json!(viewer))
    );
    // Filtering for the foreign key finds nothing, with an honest zero total.
    let (_, foreign) = call(
        &app,
        &viewer_token,
        &format!("{USERS}/ListKeys"),
        json!({"filters": [{"userIdFilter": {"id": theirs}}]}),
    )
    .await;
    assert!(
        foreign["pagination"].get("totalResult").is_none(),
        "{foreign}"
    );
    // A viewer cannot write.
    let (status, body) = call(
        &app,
        &viewer_token,
        &format!("{USERS}/AddKey"),
        json!({"userId": app.admin_id, "expirationDate": "2030-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!((status, error_id(&body)), (403, "AUTHZ-HKJD33"));
    let (status, body) = call(
        &app,
        &viewer_token,
        &format!("{USERS}/CreateUser"),
        json!({"organizationId": app.org_id, "machine": {"name": "x"}}),
    )
    .await;
    assert_eq!((status, error_id(&body)), (403, "AUTHZ-HKJD33"));
    // Nor learn whether an org exists.
    let (status, body) = call(
        &app,
        &viewer_token,
        &format!("{USERS}/CreateUser"),
        json!({"organizationId": "no-such-org", "machine": {"name": "x"}}),
    )
    .await;
    assert_eq!((status, error_id(&body)), (403, "AUTHZ-HKJD33"));
}

#[tokio::test]
async fn v1_and_v2_are_views_of_the_same_keys() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut v1c = app.grpc().await;
    let user = v1c
        .add_machine_user(authed(
            &admin,
            None,
            v1::AddMachineUserRequest {
                user_name: unique("both"),
                name: "both".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user_id;
    // Added through v1, listed and removed through v2 (gRPC).
    let v1_key = v1c
        .add_machine_key(authed(&admin, None, new_key(&user)))
        .await
        .unwrap()
        .into_inner()
        .key_id;
    let mut v2c = UserServiceClient::new(app.channel().await);
    let listed = v2c
        .list_keys(authed(&admin, None, ListKeysRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.result.iter().any(|k| k.id == v1_key));
    // Added through v2 (gRPC), listed and removed through v1.
    let v2_key = v2c
        .add_key(authed(
            &admin,
            None,
            AddKeyRequest {
                user_id: user.clone(),
                expiration_date: Some(
                    chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
                        .unwrap()
                        .to_utc()
                        .into(),
                ),
                public_key: Vec::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .key_id;
    let v1_list = v1c
        .list_machine_keys(authed(
            &admin,
            None,
            v1::ListMachineKeysRequest {
                user_id: user.clone(),
                query: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v1_list.details.unwrap().total_result, 2);
    v1c.remove_machine_key(authed(
        &admin,
        None,
        v1::RemoveMachineKeyRequest {
            user_id: user.clone(),
            key_id: v2_key.clone(),
        },
    ))
    .await
    .unwrap();
    assert_err(
        v2c.remove_key(authed(
            &admin,
            None,
            authn_keys::proto::zitadel::user::v2::RemoveKeyRequest {
                user_id: user.clone(),
                key_id: v2_key.clone(),
            },
        ))
        .await,
        Code::NotFound,
        "COMMAND-4m77G",
    );
    // REST (`/v2/...`) reaches the same method.
    let resp = app
        .http
        .delete(format!("{}/v2/users/{user}/keys/{v1_key}", app.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // One audit trail: both additions and both removals, in order.
    let events = authn_keys::storage::repo::events_of(&app.services.db, &user)
        .await
        .unwrap();
    let sequences: Vec<u64> = events.iter().map(|e| e.1).collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5], "one sequence, no gaps");
    let events: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        events,
        [
            "user.machine.added",
            "user.machine.key.added",
            "user.machine.key.added",
            "user.machine.key.removed",
            "user.machine.key.removed"
        ]
    );
}

#[tokio::test]
async fn application_keys_over_connect() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (project, app_id, client_id, _) = app.project_with_app(&admin, 1).await;
    let (status, created) = call(
        &app,
        &admin,
        &format!("{APPS}/CreateApplicationKey"),
        json!({"applicationId": app_id, "projectId": project, "expirationDate": "2030-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let file = KeyFile::parse(
        &STANDARD
            .decode(created["keyDetails"].as_str().unwrap())
            .unwrap(),
    );
    assert_eq!(file.kind, "application");
    assert_eq!(file.client_id.as_deref(), Some(client_id.as_str()));
    let key_id = created["keyId"].as_str().unwrap().to_owned();

    let (_, got) = call(
        &app,
        &admin,
        &format!("{APPS}/GetApplicationKey"),
        json!({"keyId": key_id}),
    )
    .await;
    assert_eq!(got["expirationDate"], "2030-01-01T00:00:00Z");
    let (_, listed) = call(
        &app,
        &admin,
        &format!("{APPS}/ListApplicationKeys"),
        json!({"filters": [{"projectIdFilter": {"projectId": project}}]}),
    )
    .await;
    assert_eq!(listed["pagination"]["totalResult"], "1");
    assert_eq!(listed["keys"][0]["applicationId"], json!(app_id));
    assert_eq!(listed["keys"][0]["organizationId"], json!(app.org_id));
    // A machine key id is no application key.
    let machine_key = app
        .grpc()
        .await
        .add_machine_key(authed(&admin, None, new_key(&app.admin_id)))
        .await
        .unwrap()
        .into_inner()
        .key_id;
    let (status, body) = call(
        &app,
        &admin,
        &format!("{APPS}/GetApplicationKey"),
        json!({"keyId": machine_key}),
    )
    .await;
    assert_eq!((status, error_id(&body)), (404, "QUERY-Dgr3g"));
    let (_, body) = call(
        &app,
        &admin,
        &format!("{APPS}/CreateApplicationKey"),
        json!({"applicationId": "nope", "projectId": project}),
    )
    .await;
    assert_eq!(error_id(&body), "COMMAND-sak25");
    let (_, basic) = call(
        &app,
        &admin,
        &format!("{APPS}/CreateApplicationKey"),
        json!({"applicationId": app.project_with_app(&admin, 0).await.1, "projectId": project}),
    )
    .await;
    assert_eq!(
        error_id(&basic),
        "COMMAND-sak25",
        "a BASIC app of another project is not in this one"
    );

    let delete = json!({"keyId": key_id, "applicationId": app_id, "projectId": project});
    let (status, _) = call(
        &app,
        &admin,
        &format!("{APPS}/DeleteApplicationKey"),
        delete.clone(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &app,
        &admin,
        &format!("{APPS}/DeleteApplicationKey"),
        delete,
    )
    .await;
    assert_eq!((status, error_id(&body)), (404, "COMMAND-4m77G"));
}

#[tokio::test]
async fn the_grant_ignores_what_the_sdks_add() {
    let app = TestApp::spawn().await;
    let assertion = |app: &TestApp| {
        // As the SDKs sign it: `aud` a string, no jti.
        let sub = app.admin_key.subject();
        let claims =
            json!({"iss": sub, "sub": sub, "aud": app.base, "iat": now(), "exp": now() + 3600});
        sign_jwt(
            "RS256",
            &app.admin_key.key_id,
            &claims,
            &app.admin_key.private_key(),
        )
    };
    for (client_id, basic) in [
        (Some("None"), false),
        (Some("zitadel"), false),
        (None, true),
    ] {
        let a = assertion(&app);
        let mut form = vec![
            ("grant_type", JWT_BEARER),
            ("assertion", a.as_str()),
            ("scope", "openid urn:zitadel:iam:org:project:id:zitadel:aud"),
        ];
        if let Some(c) = client_id {
            form.push(("client_id", c));
        }
        let mut req = app
            .http
            .post(format!("{}/oauth/v2/token", app.base))
            .form(&form);
        if basic {
            req = req.basic_auth("zitadel", Some("zitadel"));
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "client_id {client_id:?}, basic {basic}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["expires_in"].as_i64().unwrap() > 300);
        assert!(body.get("error").is_none());
    }
}
