//! The second trust round: token audiences that cannot name another tenant's project, tokens
//! that do not outlive their key, `nbf`, request values escaped in descriptions, and rate limits
//! that strangers cannot turn against valid callers.
use authn_keys::proto::zitadel::management::v1::*;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::*;

fn claims_of(jwt: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// A JWT user of the default org with a key: (user id, key file).
async fn jwt_user(app: &TestApp, admin: &str, user_id: Option<&str>) -> (String, KeyFile) {
    let mut c = app.grpc().await;
    let user_id = c
        .add_machine_user(authed(
            admin,
            None,
            AddMachineUserRequest {
                user_name: unique("jwt"),
                name: "jwt".into(),
                access_token_type: 1,
                user_id: user_id.map(String::from),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user_id;
    let file = c
        .add_machine_key(authed(admin, None, new_key(&user_id)))
        .await
        .unwrap()
        .into_inner()
        .key_details;
    (user_id, KeyFile::parse(&file))
}

#[tokio::test]
async fn audiences_name_only_the_projects_asked_for_and_chosen_ids_cannot_pose_as_one() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut c = app.grpc().await;
    // Tenant A's project.
    let project_a = c
        .add_project(authed(
            &admin,
            None,
            AddProjectRequest {
                name: unique("a"),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    // Tenant B's owner cannot take A's project id (or any id of digits) as a user id.
    let org_b = c
        .add_org(authed(&admin, None, AddOrgRequest { name: unique("B") }))
        .await
        .unwrap()
        .into_inner()
        .id;
    for taken in [project_a.as_str(), "4242"] {
        let err = c
            .add_machine_user(authed(
                &admin,
                Some(&org_b),
                AddMachineUserRequest {
                    user_name: unique("mimic"),
                    name: "mimic".into(),
                    user_id: Some(taken.into()),
                    ..Default::default()
                },
            ))
            .await
            .expect_err("an id of digits is reserved");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(error_id(&err), "VALIDATION-Id002");
    }
    // Over v2 (Connect) too.
    let resp = app
        .http
        .post(format!("{}/zitadel.user.v2.UserService/CreateUser", app.base))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(
            json!({"organizationId": org_b, "userId": project_a, "username": unique("m"), "machine": {"name": "m"}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["details"][0]["debug"]["id"], "VALIDATION-Id002",
        "{body}"
    );

    // The subject is never an audience; projects asked for are; ID tokens are for the client.
    let (user_id, key) = jwt_user(&app, &admin, Some("svc-audience")).await;
    let (status, body) = app.grant(&key, "openid").await;
    assert_eq!(status, 200, "{body}");
    let access = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(access["sub"], user_id.as_str());
    assert!(access.get("aud").is_none(), "{access}");
    let id = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], json!([user_id]), "{id}");
    let scope = format!("openid urn:zitadel:iam:org:project:id:{project_a}:aud");
    let (status, body) = app.grant(&key, &scope).await;
    assert_eq!(status, 200, "{body}");
    let access = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], json!([project_a]), "{access}");
    let id = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(
        id["aud"],
        json!([user_id]),
        "ID tokens never carry project audiences: {id}"
    );
}

#[tokio::test]
async fn a_token_ends_no_later_than_its_key() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user_id, _) = jwt_user(&app, &admin, None).await;
    let expiry = chrono::Utc::now() + chrono::Duration::minutes(10);
    let mut request = new_key(&user_id);
    request.expiration_date = Some(expiry.into());
    let file = app
        .grpc()
        .await
        .add_machine_key(authed(&admin, None, request))
        .await
        .unwrap()
        .into_inner()
        .key_details;
    let key = KeyFile::parse(&file);
    let (status, body) = app.grant(&key, API_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!((590..=600).contains(&expires_in), "{body}");
    let access = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(access["exp"], expiry.timestamp(), "{access}");
    let (_, introspected) = app
        .introspect(&[("token", body["access_token"].as_str().unwrap())], None)
        .await;
    // (No client authentication: refused; the record's expiry is checked above via the JWT.)
    assert_eq!(introspected["error"], "invalid_client", "{introspected}");
}

#[tokio::test]
async fn assertions_not_yet_valid_are_refused_and_request_values_are_escaped() {
    let app = TestApp::spawn().await;
    let key = app.admin_key.clone();
    let early = app.assertion(&key, json!({"nbf": now() + 600}));
    let (status, body) = app
        .token_request(&[("grant_type", JWT_BEARER), ("assertion", &early)])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not valid before"),
        "{body}"
    );
    // Within the clock skew, and in the past: fine.
    for nbf in [now() + 3, now() - 60] {
        let ok = app.assertion(&key, json!({"nbf": nbf}));
        let (status, body) = app
            .token_request(&[("grant_type", JWT_BEARER), ("assertion", &ok)])
            .await;
        assert_eq!(status, 200, "{body}");
    }

    // A key id with a newline (and a lot of it) comes back escaped and cut.
    let forged_kid = format!(
        "k1\nINFO access token issued user_id=admin{}",
        "x".repeat(5000)
    );
    let forged = sign_jwt(
        "RS256",
        &forged_kid,
        &json!({"iss": "u", "sub": "u", "aud": app.base, "iat": now(), "exp": now() + 60}),
        &key.private_key(),
    );
    let (status, body) = app
        .token_request(&[("grant_type", JWT_BEARER), ("assertion", &forged)])
        .await;
    assert_eq!(status, 400, "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(!description.contains('\n'), "{description}");
    assert!(description.contains("k1\\nINFO"), "{description}");
    assert!(description.len() < 400, "{description}");
    let (status, body) = app
        .introspect(
            &[
                ("token", "t"),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", &forged),
            ],
            None,
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        !body["error_description"].as_str().unwrap().contains('\n'),
        "{body}"
    );
}

#[tokio::test]
async fn strangers_failures_do_not_lock_out_valid_callers() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, key) = app.member_with_key(&admin, 0, "ORG_OWNER").await;
    let mut c = app.grpc().await;

    // Invalid bearer tokens from this address until its budget (100 at once) is spent: the
    // failures are refused 429, the valid admin token still works (REST and gRPC).
    let mut codes = Vec::new();
    for _ in 0..300 {
        codes.push(app.rest("GET", "/orgs/me", Some("x"), None, None).await.0);
        if codes.last() == Some(&429) {
            break;
        }
    }
    assert_eq!(
        codes.last(),
        Some(&429),
        "the address's failures are limited"
    );
    assert!(codes.len() > 100, "{} failures allowed", codes.len());
    assert_eq!(
        app.rest("GET", "/orgs/me", Some(&admin), None, None)
            .await
            .0,
        200
    );
    c.get_my_org(authed(&admin, None, GetMyOrgRequest {}))
        .await
        .expect("a valid token is not refused");

    // 60 garbage assertions with unknown key ids, then garbage under the victim's own key id:
    // the address's and the key's budgets are spent, the victim's valid grant still works.
    let mut codes = Vec::new();
    for i in 0..60 {
        let garbage = sign_jwt(
            "RS256",
            &format!("unknown-{i}"),
            &json!({"iss": "u", "sub": "u", "aud": app.base, "iat": now(), "exp": now() + 60}),
            &key.private_key(),
        );
        codes.push(
            app.token_request(&[("grant_type", JWT_BEARER), ("assertion", &garbage)])
                .await
                .0,
        );
    }
    assert!(codes.contains(&429), "{codes:?}");
    let expired = app.assertion(&key, json!({"exp": now() - 600}));
    let garbage_until_limited = || async {
        // The buckets refill as time passes: send until a failure is refused.
        for _ in 0..40 {
            let (status, _) = app
                .token_request(&[("grant_type", JWT_BEARER), ("assertion", &expired)])
                .await;
            if status == 429 {
                return true;
            }
        }
        false
    };
    assert!(
        garbage_until_limited().await,
        "failures under the key id are limited"
    );
    let (status, body) = app.grant(&key, API_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    // Its garbage is still limited.
    assert!(garbage_until_limited().await);
}
