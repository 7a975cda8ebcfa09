//! The key lifecycle of authnkeys.v1 (KeyService, PolicyService): every key type through v1,
//! v2 and the own API, disable/enable with the revocation guarantee of removal, last use,
//! the org key policy on every path that adds a key, and one view of both owners' keys.
use authn_keys::proto::{
    authnkeys::v1::{
        self as own, key_service_client::KeyServiceClient,
        policy_service_client::PolicyServiceClient,
    },
    zitadel::management::v1::{
        AddMachineKeyRequest, AddMachineUserRequest, ListMachineKeysRequest,
    },
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::*;

/// Claims of an assertion by `sub` for this server.
fn claims(app: &TestApp, sub: &str) -> Value {
    json!({"iss": sub, "sub": sub, "aud": [app.services.settings.issuer.clone()], "iat": now(), "exp": now() + 300})
}

async fn keys(app: &TestApp) -> KeyServiceClient<tonic::transport::Channel> {
    KeyServiceClient::new(app.channel().await)
}

async fn policies(app: &TestApp) -> PolicyServiceClient<tonic::transport::Channel> {
    PolicyServiceClient::new(app.channel().await)
}

/// DisableKey over gRPC as `token`.
async fn disable(
    app: &TestApp,
    token: &str,
    key_id: &str,
    reason: &str,
) -> Result<tonic::Response<own::DisableKeyResponse>, tonic::Status> {
    let req = own::DisableKeyRequest {
        key_id: key_id.into(),
        reason: reason.into(),
    };
    keys(app).await.disable_key(authed(token, None, req)).await
}

/// EnableKey over gRPC as `token`.
async fn enable(
    app: &TestApp,
    token: &str,
    key_id: &str,
) -> Result<tonic::Response<own::EnableKeyResponse>, tonic::Status> {
    let req = own::EnableKeyRequest {
        key_id: key_id.into(),
    };
    keys(app).await.enable_key(authed(token, None, req)).await
}

/// A machine user of the default org without keys.
async fn machine_user(app: &TestApp, admin: &str) -> String {
    app.grpc()
        .await
        .add_machine_user(authed(
            admin,
            None,
            AddMachineUserRequest {
                user_name: unique("lifecycle"),
                name: "lifecycle".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user_id
}

async fn grant_with(app: &TestApp, assertion: &str) -> (u16, Value) {
    app.token_request(&[
        ("grant_type", JWT_BEARER),
        ("assertion", assertion),
        ("scope", API_SCOPE),
    ])
    .await
}

fn upload(user_id: &str, pem: &str) -> own::AddKeyRequest {
    own::AddKeyRequest {
        owner: Some(own::add_key_request::Owner::UserId(user_id.into())),
        public_key: pem.as_bytes().to_vec(),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_key_type_signs_assertions_through_every_api() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let user = machine_user(&app, &admin).await;
    for alg in ["ES256", "ES384", "EdDSA"] {
        // The same kind of key through v1 AddMachineKey, v2 AddKey and authnkeys.v1 AddKey.
        let via_v1 = TestKey::new(alg);
        let kid_v1 = app
            .grpc()
            .await
            .add_machine_key(authed(
                &admin,
                None,
                AddMachineKeyRequest {
                    user_id: user.clone(),
                    r#type: 1,
                    public_key: via_v1.public_pem.clone().into_bytes(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .key_id;
        let via_v2 = TestKey::new(alg);
        let (status, body) = app
            .http
            .post(format!("{}/v2/users/{user}/keys", app.base))
            .bearer_auth(&admin)
            .json(&json!({
                "publicKey": STANDARD.encode(&via_v2.public_pem),
                "expirationDate": "2099-01-01T00:00:00Z",
            }))
            .send()
            .await
            .map(|r| (r.status().as_u16(), r))
            .unwrap();
        let body: Value = body.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        let kid_v2 = body["keyId"].as_str().unwrap().to_owned();
        let via_own = TestKey::new(alg);
        let added = keys(&app)
            .await
            .add_key(authed(&admin, None, upload(&user, &via_own.public_pem)))
            .await
            .unwrap()
            .into_inner();
        assert!(added.key_details.is_none(), "an upload has no key file");
        let key = added.key.unwrap();
        assert_eq!(key.algorithm, alg);
        assert_eq!(key.origin, own::KeyOrigin::Uploaded as i32);
        assert_eq!(key.state, own::KeyState::Active as i32);
        assert_eq!(key.thumbprint.len(), 43, "{}", key.thumbprint);
        for (test_key, kid) in [(&via_v1, &kid_v1), (&via_v2, &kid_v2), (&via_own, &key.id)] {
            let (status, body) = grant_with(&app, &test_key.sign(kid, &claims(&app, &user))).await;
            assert_eq!(status, 200, "{alg} key {kid}: {body}");
        }
        // Each key takes its own algorithm only: an RS256 header on an EC key is refused.
        let mut lying = via_own.sign(&key.id, &claims(&app, &user));
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": key.id}).to_string());
        lying = format!("{header}.{}", lying.split_once('.').unwrap().1);
        let (status, body) = grant_with(&app, &lying).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_grant");
    }
}

#[tokio::test]
async fn generated_es256_and_eddsa_keys_come_as_key_files_that_work() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let user = machine_user(&app, &admin).await;
    for alg in ["ES256", "EdDSA", "RS256"] {
        let added = keys(&app)
            .await
            .add_key(authed(
                &admin,
                None,
                own::AddKeyRequest {
                    owner: Some(own::add_key_request::Owner::UserId(user.clone())),
                    algorithm: alg.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let key = added.key.unwrap();
        assert_eq!(key.algorithm, alg);
        assert_eq!(key.origin, own::KeyOrigin::Generated as i32);
        let file: Value = serde_json::from_slice(added.key_details.as_deref().unwrap()).unwrap();
        assert_eq!(file["type"], "serviceaccount");
        assert_eq!(file["keyId"], key.id.as_str());
        assert_eq!(file["userId"], user.as_str());
        let pem = file["key"].as_str().unwrap();
        let claims = claims(&app, &user);
        let assertion = if alg == "RS256" {
            assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{pem}");
            sign_jwt(
                "RS256",
                &key.id,
                &claims,
                &KeyFile::parse(added.key_details.as_deref().unwrap()).private_key(),
            )
        } else {
            // PKCS#8, as JWT libraries load it.
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
            let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let test_key = TestKey::from_pkcs8(
                if alg == "ES256" { "ES256" } else { "EdDSA" },
                STANDARD.decode(der).unwrap(),
            );
            test_key.sign(&key.id, &claims)
        };
        let (status, body) = grant_with(&app, &assertion).await;
        assert_eq!(status, 200, "{alg}: {body}");
    }
}

#[tokio::test]
async fn app_keys_of_every_type_authenticate_clients() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (project_id, app_id, client_id, _) = app.project_with_app(&admin, 1).await;
    let (_, user_key) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    let (_, token_body) = app
        .grant(
            &user_key,
            &format!("urn:zitadel:iam:org:project:id:{project_id}:aud"),
        )
        .await;
    let token = token_body["access_token"].as_str().unwrap().to_owned();
    for alg in ["ES256", "ES384", "EdDSA"] {
        let k = TestKey::new(alg);
        let added = keys(&app)
            .await
            .add_key(authed(
                &admin,
                None,
                own::AddKeyRequest {
                    owner: Some(own::add_key_request::Owner::App(own::AppRef {
                        project_id: project_id.clone(),
                        app_id: app_id.clone(),
                    })),
                    public_key: k.public_pem.clone().into_bytes(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .key
            .unwrap();
        let assertion = k.sign(&added.id, &claims(&app, &client_id));
        let (status, body) = app
            .introspect(
                &[
                    ("token", token.as_str()),
                    ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                    ("client_assertion", assertion.as_str()),
                ],
                None,
            )
            .await;
        assert_eq!(status, 200, "{alg}: {body}");
        assert_eq!(body["active"], true, "{alg}: {body}");
        let seen = keys(&app)
            .await
            .get_key(authed(
                &admin,
                None,
                own::GetKeyRequest { key_id: added.id },
            ))
            .await
            .unwrap()
            .into_inner()
            .key
            .unwrap();
        let used = seen
            .last_used
            .expect("the client assertion is its last use");
        assert_eq!(used.r#use, "client_assertion");
        assert_eq!(used.address, "127.0.0.1");
    }
}

#[tokio::test]
async fn a_disabled_key_ends_its_tokens_and_signs_nothing_until_enabled() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user_id, key) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    let token = app.token_for(&key).await;
    let (status, _) = app.rest("GET", "/orgs/me", Some(&token), None, None).await;
    assert_eq!(status, 200);
    let disabled = disable(&app, &admin, &key.key_id, "rotating after a leak")
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!(disabled.state, own::KeyState::Disabled as i32);
    assert_eq!(
        disabled.disabled_reason.as_deref(),
        Some("rotating after a leak")
    );
    assert!(disabled.disabled_at.is_some());
    // Its token ended before DisableKey answered.
    let (status, body) = app.rest("GET", "/orgs/me", Some(&token), None, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = app.grant(&key, API_SCOPE).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("is disabled"),
        "{body}"
    );
    // A second disable is refused: one state change, one event.
    let again = disable(&app, &admin, &key.key_id, "").await;
    assert_err(again, Code::FailedPrecondition, "KEY-Dis02");
    // v1 still lists it (ZITADEL has no state field).
    let listed = app
        .grpc()
        .await
        .list_machine_keys(authed(
            &admin,
            None,
            ListMachineKeysRequest {
                user_id: user_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.result.iter().any(|k| k.id == key.key_id));
    let enabled = enable(&app, &admin, &key.key_id)
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!(enabled.state, own::KeyState::Active as i32);
    assert!(enabled.disabled_at.is_none() && enabled.disabled_reason.is_none());
    let fresh = app.token_for(&key).await;
    let (status, _) = app.rest("GET", "/orgs/me", Some(&fresh), None, None).await;
    assert_eq!(status, 200);
    // The token from before stays ended.
    let (status, _) = app.rest("GET", "/orgs/me", Some(&token), None, None).await;
    assert_eq!(status, 401);
    let again = enable(&app, &admin, &key.key_id).await;
    assert_err(again, Code::FailedPrecondition, "KEY-Ena01");
    let events = authn_keys::storage::repo::events_of(&app.services.db, &user_id)
        .await
        .unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "user.machine.key.disabled")
            .count(),
        1,
        "{types:?}"
    );
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "user.machine.key.enabled")
            .count(),
        1,
        "{types:?}"
    );
}

#[tokio::test]
async fn grants_racing_a_disable_leave_no_working_token() {
    let app = TestApp::spawn_with(|c| {
        c.auth_failure_burst = 0;
        c.auth_failure_address_burst = 0;
        c.bearer_failure_burst = 0;
    })
    .await;
    let admin = app.admin_token().await;
    let (_, key) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    let mut issued = 0;
    for round in 0..4 {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients = racing_grants(&app, &key, 6, &stop, "the disable");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        disable(&app, &admin, &key.key_id, &format!("round {round}"))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stop.store(true, std::sync::atomic::Ordering::Release);
        for client in clients {
            for token in client.await.unwrap() {
                issued += 1;
                let (status, body) = app.rest("GET", "/orgs/me", Some(&token), None, None).await;
                assert_eq!(status, 401, "a token of a disabled key still works: {body}");
            }
        }
        enable(&app, &admin, &key.key_id).await.unwrap();
    }
    assert!(issued > 0, "the grants never got going before the disable");
}

#[tokio::test]
async fn last_use_shows_at_once_here_and_after_a_flush_elsewhere() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, key) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    let get = |app: &TestApp| {
        let (admin, kid) = (admin.clone(), key.key_id.clone());
        let base = app.base.clone();
        async move {
            let channel = tonic::transport::Endpoint::from_shared(base)
                .unwrap()
                .connect()
                .await
                .unwrap();
            KeyServiceClient::new(channel)
                .get_key(authed(&admin, None, own::GetKeyRequest { key_id: kid }))
                .await
                .unwrap()
                .into_inner()
                .key
                .unwrap()
        }
    };
    assert!(get(&app).await.last_used.is_none(), "never used yet");
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    app.token_for(&key).await;
    let used = get(&app).await.last_used.expect("visible at once here");
    assert_eq!(used.r#use, "jwt_bearer_grant");
    assert_eq!(used.address, "127.0.0.1");
    let at = chrono::DateTime::parse_from_rfc3339(
        serde_json::to_value(used.time.unwrap())
            .unwrap()
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(at >= before, "{at}");
    // Another process on the same database sees it after the flush.
    let other = app.spawn_on_same_database().await;
    let deadline = std::time::Instant::now()
        + authn_keys::service::last_use::FLUSH_EVERY
        + std::time::Duration::from_secs(10);
    loop {
        if get(&other).await.last_used.is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the use never reached the other process"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // ListKeys' unusedSince sees the use of this process at once (a use just now is not
    // "unused since a minute ago").
    app.token_for(&key).await;
    let (status, body) = own_rest(
        &app,
        "POST",
        "/v1/keys/_search",
        &admin,
        Some(json!({"unusedSince": (chrono::Utc::now() - chrono::Duration::seconds(60)).to_rfc3339()})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // proto3 JSON leaves out an empty list.
    let ids: Vec<&str> = body["result"]
        .as_array()
        .map(|r| r.iter().map(|k| k["id"].as_str().unwrap()).collect())
        .unwrap_or_default();
    assert!(!ids.contains(&key.key_id.as_str()), "{body}");
    // The same from one owner's list in memory, with the filter and on a plain page: a key
    // used just now (its use not yet written) is not unused, and its page shows the use.
    let (_, fresh) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    app.token_for(&fresh).await;
    let user_id = fresh.user_id.clone().unwrap();
    let since = (chrono::Utc::now() - chrono::Duration::seconds(60)).to_rfc3339();
    let (status, body) = own_rest(
        &app,
        "POST",
        "/v1/keys/_search",
        &admin,
        Some(json!({"userId": user_id, "unusedSince": since})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // proto3 JSON leaves out an empty list and a zero total: the answer is `{}`.
    assert_eq!(body, json!({}), "{body}");
    let (status, body) = own_rest(
        &app,
        "POST",
        "/v1/keys/_search",
        &admin,
        Some(json!({"userId": user_id})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"][0]["id"], fresh.key_id.as_str(), "{body}");
    assert_eq!(
        body["result"][0]["lastUsed"]["use"], "jwt_bearer_grant",
        "{body}"
    );
}

#[tokio::test]
async fn list_keys_filters_both_owners_with_honest_totals() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let user = machine_user(&app, &admin).await;
    let (project_id, app_id, _, _) = app.project_with_app(&admin, 1).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, body) = own_rest(
            &app,
            "POST",
            "/v1/keys",
            &admin,
            Some(json!({"userId": user, "algorithm": "ES256", "expirationDate": "2030-01-01T00:00:00Z"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["key"]["state"], "KEY_STATE_ACTIVE");
        assert_eq!(body["key"]["origin"], "KEY_ORIGIN_GENERATED");
        assert!(body["keyDetails"].is_string());
        ids.push(body["key"]["id"].as_str().unwrap().to_owned());
    }
    let (status, body) = own_rest(
        &app,
        "POST",
        "/v1/keys",
        &admin,
        Some(json!({"app": {"projectId": project_id, "appId": app_id}, "publicKey": STANDARD.encode(TestKey::new("EdDSA").public_pem)})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["key"]["app"]["appId"], app_id.as_str());
    assert_eq!(body["key"]["algorithm"], "EdDSA");
    let app_key = body["key"]["id"].as_str().unwrap().to_owned();
    let (status, body) = own_rest(
        &app,
        "POST",
        &format!("/v1/keys/{}/_disable", ids[0]),
        &admin,
        Some(json!({"reason": "test"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["key"]["state"], "KEY_STATE_DISABLED");
    let search = |filter: Value| {
        let (app, admin) = (&app, admin.clone());
        async move {
            let (status, body) =
                own_rest(app, "POST", "/v1/keys/_search", &admin, Some(filter)).await;
            assert_eq!(status, 200, "{body}");
            // proto3 JSON leaves out an empty list and a zero total.
            let ids: Vec<String> = body["result"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|k| k["id"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            let total = body["totalResult"]
                .as_str()
                .unwrap_or("0")
                .parse::<u64>()
                .unwrap();
            (total, ids)
        }
    };
    let (total, found) = search(json!({"userId": user})).await;
    assert_eq!((total, found.len()), (3, 3));
    // Newest first by default, oldest first with asc.
    assert_eq!(found[0], ids[2]);
    let (_, found) = search(json!({"userId": user, "asc": true, "limit": 2, "offset": 1})).await;
    assert_eq!(found, vec![ids[1].clone(), ids[2].clone()]);
    let (total, found) = search(json!({"userId": user, "state": "KEY_STATE_DISABLED"})).await;
    assert_eq!((total, found), (1, vec![ids[0].clone()]));
    let (total, _) = search(json!({"userId": user, "state": "KEY_STATE_ACTIVE"})).await;
    assert_eq!(total, 2);
    let (total, found) = search(json!({"projectId": project_id, "appId": app_id})).await;
    assert_eq!((total, found), (1, vec![app_key.clone()]));
    let (total, found) =
        search(json!({"origin": "KEY_ORIGIN_UPLOADED", "projectId": project_id})).await;
    assert_eq!((total, found), (1, vec![app_key.clone()]));
    let (total, _) = search(json!({"userId": user, "expiresBefore": "2031-01-01T00:00:00Z"})).await;
    assert_eq!(total, 3);
    let (total, _) = search(json!({"userId": user, "expiresBefore": "2029-01-01T00:00:00Z"})).await;
    assert_eq!(total, 0);
    // An unused-since date in the future is fine: every never-used key matches.
    let (total, _) = search(json!({"userId": user, "unusedSince": "2100-01-01T00:00:00Z"})).await;
    assert_eq!(total, 3);
    // A misspelt state is refused, not ignored (it would widen the filter).
    let (status, body) = own_rest(
        &app,
        "POST",
        "/v1/keys/_search",
        &admin,
        Some(json!({"state": "KEY_STATE_SLEEPING"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // A user manager reads users' keys only: the app key is not in its view or its total.
    let (_, manager_key) = app.member_with_key(&admin, 0, "ORG_USER_MANAGER").await;
    let manager = app.token_for(&manager_key).await;
    let (status, body) =
        own_rest(&app, "POST", "/v1/keys/_search", &manager, Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["result"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("userId").is_some()),
        "{body}"
    );
    let (status, body) =
        own_rest(&app, "GET", &format!("/v1/keys/{app_key}"), &manager, None).await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn other_orgs_keys_are_not_found_and_bad_input_is_named() {
    use authn_keys::proto::zitadel::management::v1::AddOrgRequest;
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, key) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    // An org owner of another org.
    let other_org = app
        .grpc()
        .await
        .add_org(authed(
            &admin,
            None,
            AddOrgRequest {
                name: unique("other"),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let (status, body) = own_rest(
        &app,
        "GET",
        &format!("/v1/keys/{}", key.key_id),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let req = authed(
        &admin,
        Some(&other_org),
        own::GetKeyRequest {
            key_id: key.key_id.clone(),
        },
    );
    assert_err(
        keys(&app).await.get_key(req).await,
        Code::NotFound,
        "KEY-Nf001",
    );
    let disable_there = authed(
        &admin,
        Some(&other_org),
        own::DisableKeyRequest {
            key_id: key.key_id.clone(),
            reason: String::new(),
        },
    );
    assert_err(
        keys(&app).await.disable_key(disable_there).await,
        Code::NotFound,
        "KEY-Nf001",
    );
    assert_err(
        keys(&app)
            .await
            .get_key(authed(
                &admin,
                None,
                own::GetKeyRequest {
                    key_id: "424242".into(),
                },
            ))
            .await,
        Code::NotFound,
        "KEY-Nf001",
    );
    let user = machine_user(&app, &admin).await;
    for (pem, id) in [
        ("not a key", "COMMAND-5F3h1"),
        (
            "-----BEGIN PUBLIC KEY-----\nMFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAE\n-----END PUBLIC KEY-----\n",
            "COMMAND-5F3h1",
        ),
    ] {
        assert_err(
            keys(&app)
                .await
                .add_key(authed(&admin, None, upload(&user, pem)))
                .await,
            Code::InvalidArgument,
            id,
        );
    }
    let mut unknown_alg = upload(&user, "");
    unknown_alg.algorithm = "HS256".into();
    assert_err(
        keys(&app)
            .await
            .add_key(authed(&admin, None, unknown_alg))
            .await,
        Code::InvalidArgument,
        "KEY-Alg01",
    );
    let mut misfit = upload(&user, &TestKey::new("ES256").public_pem);
    misfit.algorithm = "EdDSA".into();
    assert_err(
        keys(&app).await.add_key(authed(&admin, None, misfit)).await,
        Code::InvalidArgument,
        "KEY-Alg02",
    );
    let no_owner = own::AddKeyRequest::default();
    assert_err(
        keys(&app)
            .await
            .add_key(authed(&admin, None, no_owner))
            .await,
        Code::InvalidArgument,
        "KEY-Own01",
    );
    let long_reason = own::DisableKeyRequest {
        key_id: key.key_id.clone(),
        reason: "x".repeat(501),
    };
    assert_err(
        keys(&app)
            .await
            .disable_key(authed(&admin, None, long_reason))
            .await,
        Code::InvalidArgument,
        "KEY-Rsn01",
    );
}

#[tokio::test]
async fn the_org_key_policy_governs_every_way_of_adding_a_key() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let user = machine_user(&app, &admin).await;
    let (status, body) = own_rest(&app, "GET", "/v1/policies/keys", &admin, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["isDefault"], true);
    let (status, body) = own_rest(
        &app,
        "PUT",
        "/v1/policies/keys",
        &admin,
        Some(json!({"policy": {
            "maxLifetime": "2592000s",
            "defaultLifetime": "604800s",
            "maxKeysPerOwner": 2,
            "allowedOrigins": ["KEY_ORIGIN_GENERATED"],
            "allowedAlgorithms": ["RS256", "ES256"],
        }})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["policy"]["maxKeysPerOwner"], 2);
    let (_, body) = own_rest(&app, "GET", "/v1/policies/keys", &admin, None).await;
    // proto3 JSON leaves out `false`.
    assert_eq!(body.get("isDefault"), None, "{body}");
    assert_eq!(body["policy"]["defaultLifetime"], "604800s");
    // v1 without an expiration date: the default lifetime.
    let mut v1 = app.grpc().await;
    let first = v1
        .add_machine_key(authed(&admin, None, new_key(&user)))
        .await
        .unwrap()
        .into_inner();
    let file: Value = serde_json::from_slice(&first.key_details).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(file["expirationDate"].as_str().unwrap())
        .unwrap()
        .to_utc();
    let week = chrono::Utc::now() + chrono::Duration::days(7);
    assert!((expires - week).num_seconds().abs() < 120, "{expires}");
    // Beyond the maximum lifetime: INVALID_ARGUMENT naming the limit.
    let mut too_long = new_key(&user);
    too_long.expiration_date = Some((chrono::Utc::now() + chrono::Duration::days(31)).into());
    let e = v1
        .add_machine_key(authed(&admin, None, too_long))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(error_id(&e), "POLICY-Life1");
    assert!(e.message().contains("30d"), "{}", e.message());
    // Uploads are not allowed: through v1 and v2 alike.
    let mut uploaded = new_key(&user);
    uploaded.public_key = public_pem().into_bytes();
    assert_err(
        v1.add_machine_key(authed(&admin, None, uploaded)).await,
        Code::FailedPrecondition,
        "POLICY-Orig1",
    );
    let (status, body) = app
        .http
        .post(format!("{}/v2/users/{user}/keys", app.base))
        .bearer_auth(&admin)
        .json(&json!({"publicKey": STANDARD.encode(public_pem()), "expirationDate": (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339()}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    let body: Value = body.json().await.unwrap();
    assert_eq!(status, 400, "{body}");
    // EdDSA is not among the algorithms.
    let (status, body) = own_rest(
        &app,
        "POST",
        "/v1/keys",
        &admin,
        Some(json!({"userId": user, "algorithm": "EdDSA"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("EdDSA"),
        "{body}"
    );
    // The second key is allowed, the third is over the limit.
    let (status, body) = own_rest(
        &app,
        "POST",
        "/v1/keys",
        &admin,
        Some(json!({"userId": user, "algorithm": "ES256"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let e = v1
        .add_machine_key(authed(&admin, None, new_key(&user)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(error_id(&e), "POLICY-Max01");
    assert!(e.message().contains("at most 2"), "{}", e.message());
    // Only owners set policies.
    let (_, manager_key) = app.member_with_key(&admin, 0, "ORG_USER_MANAGER").await;
    let manager = app.token_for(&manager_key).await;
    let (status, body) = own_rest(&app, "GET", "/v1/policies/keys", &manager, None).await;
    assert_eq!(status, 200, "a key manager reads the policy: {body}");
    let set = own::SetKeyPolicyRequest::default();
    assert_err(
        policies(&app)
            .await
            .set_key_policy(authed(&manager, None, set))
            .await,
        Code::PermissionDenied,
        "AUTH-5mWD2",
    );
    // Absurd policies are refused with the field named.
    for (policy, id, field) in [
        (json!({"maxLifetime": "-5s"}), "POLICY-Dur01", "maxLifetime"),
        (
            json!({"maxLifetime": "99999999999s"}),
            "POLICY-Dur01",
            "maxLifetime",
        ),
        // Beyond what a time span can hold: refused, not a dropped connection.
        (
            json!({"defaultLifetime": "9223372036854775807s"}),
            "POLICY-Dur01",
            "defaultLifetime",
        ),
        (
            json!({"maxLifetime": "60s", "defaultLifetime": "120s"}),
            "POLICY-Dur02",
            "defaultLifetime",
        ),
        (
            json!({"allowedAlgorithms": ["none"]}),
            "KEY-Alg01",
            "allowedAlgorithms",
        ),
    ] {
        let (status, body) = own_rest(
            &app,
            "PUT",
            "/v1/policies/keys",
            &admin,
            Some(json!({"policy": policy})),
        )
        .await;
        assert_eq!(status, 400, "{policy}: {body}");
        assert_eq!(body["details"][0]["id"], id, "{body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{policy}: {body}");
    }
    // The limits beside `policy` instead of in it set nothing, and say so.
    let (status, body) = own_rest(
        &app,
        "PUT",
        "/v1/policies/keys",
        &admin,
        Some(json!({"maxLifetime": "90s"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["details"][0]["id"], "POLICY-Req01", "{body}");
    let (status, body) = own_rest(&app, "DELETE", "/v1/policies/keys", &admin, None).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = own_rest(&app, "GET", "/v1/policies/keys", &admin, None).await;
    assert_eq!(body["isDefault"], true);
    // The change is on the audit trail.
    let events = authn_keys::storage::repo::events_of(&app.services.db, &app.org_id)
        .await
        .unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert!(types.contains(&"org.key.policy.set"), "{types:?}");
    assert!(types.contains(&"org.key.policy.reset"), "{types:?}");
}

#[tokio::test]
async fn the_instance_default_policy_comes_from_configuration() {
    let app = TestApp::spawn_with(|c| {
        c.key_max_lifetime = "1d".into();
        c.key_allowed_algorithms = "ES256".into();
    })
    .await;
    let admin = app.admin_token().await;
    let user = machine_user(&app, &admin).await;
    let (_, body) = own_rest(&app, "GET", "/v1/policies/keys", &admin, None).await;
    assert_eq!(body["isDefault"], true);
    assert_eq!(body["policy"]["maxLifetime"], "86400s");
    assert_eq!(body["policy"]["allowedAlgorithms"], json!(["ES256"]));
    // v1 generates RSA keys: refused by this instance's policy.
    assert_err(
        app.grpc()
            .await
            .add_machine_key(authed(&admin, None, new_key(&user)))
            .await,
        Code::FailedPrecondition,
        "POLICY-Alg01",
    );
    let (status, body) = own_rest(
        &app,
        "POST",
        "/v1/keys",
        &admin,
        Some(json!({"userId": user, "algorithm": "ES256"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let expires =
        chrono::DateTime::parse_from_rfc3339(body["key"]["expiresAt"].as_str().unwrap()).unwrap();
    assert!(expires.to_utc() <= chrono::Utc::now() + chrono::Duration::days(1));
}

#[tokio::test]
async fn the_own_api_answers_on_connect_and_grpc_web_and_through_reflection() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let resp = app
        .http
        .post(format!(
            "{}/authnkeys.v1.PolicyService/GetKeyPolicy",
            app.base
        ))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["isDefault"], true, "{body}");
    let resp = app
        .http
        .post(format!("{}/authnkeys.v1.KeyService/GetKey", app.base))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"keyId":"999"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "not_found", "{body}");
}

#[tokio::test]
async fn concurrent_state_changes_apply_one_at_a_time_with_one_event_each() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user_id, key) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    let channel = app.channel().await;
    // Eight disables at once: one wins, the others find it disabled.
    let disables: Vec<_> = (0..8)
        .map(|i| {
            let (mut c, admin, kid) = (
                KeyServiceClient::new(channel.clone()),
                admin.clone(),
                key.key_id.clone(),
            );
            tokio::spawn(async move {
                c.disable_key(authed(
                    &admin,
                    None,
                    own::DisableKeyRequest {
                        key_id: kid,
                        reason: format!("caller {i}"),
                    },
                ))
                .await
            })
        })
        .collect();
    let mut won = 0;
    for d in disables {
        match d.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert_eq!(error_id(&e), "KEY-Dis02", "{e:?}"),
        }
    }
    assert_eq!(won, 1);
    // An enable and a removal racing: whichever order, the key ends removed, and each call
    // that succeeded left exactly one event.
    let (mut a, mut b) = (
        KeyServiceClient::new(channel.clone()),
        KeyServiceClient::new(channel.clone()),
    );
    let enable = authed(
        &admin,
        None,
        own::EnableKeyRequest {
            key_id: key.key_id.clone(),
        },
    );
    let remove = authed(
        &admin,
        None,
        own::RemoveKeyRequest {
            key_id: key.key_id.clone(),
        },
    );
    let (enabled, removed) = tokio::join!(a.enable_key(enable), b.remove_key(remove));
    removed.unwrap();
    if let Err(e) = &enabled {
        assert_eq!(error_id(e), "KEY-Nf001", "{e:?}");
    }
    assert_err(
        a.get_key(authed(
            &admin,
            None,
            own::GetKeyRequest {
                key_id: key.key_id.clone(),
            },
        ))
        .await,
        Code::NotFound,
        "KEY-Nf001",
    );
    let events = authn_keys::storage::repo::events_of(&app.services.db, &user_id)
        .await
        .unwrap();
    let count = |t: &str| events.iter().filter(|e| e.0 == t).count();
    assert_eq!(count("user.machine.key.disabled"), 1);
    assert_eq!(
        count("user.machine.key.enabled"),
        usize::from(enabled.is_ok())
    );
    assert_eq!(count("user.machine.key.removed"), 1);
}
