//! A machine user's token settings (authnkeys.v1 MachineUserService): reading and setting
//! `dpopBoundAccessTokens` on every transport, who may, and what the token endpoint makes of
//! it — in the process that set it at once, in another on the same database within the
//! caches' bound.
use std::time::{Duration, Instant};

use authn_keys::{
    proto::{
        authnkeys::v1::{self as own, machine_user_service_client::MachineUserServiceClient},
        zitadel::management::v1::*,
    },
    storage,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::helpers::*;

const REFUSED_WITHOUT_PROOF: &str =
    "takes DPoP-bound tokens only (dpop_bound_access_tokens): send a DPoP proof";

/// A token request for `key` with the API scope and no DPoP proof: (status, body).
async fn plain_grant(app: &TestApp, key: &KeyFile) -> (u16, Value) {
    app.grant(key, API_SCOPE).await
}

fn settings_path(user: &str) -> String {
    format!("/v1/users/{user}/token_settings")
}

/// `dpopBoundAccessTokens` of a settings answer (proto3 JSON leaves out `false`).
fn bound(body: &Value) -> bool {
    body["settings"]["dpopBoundAccessTokens"]
        .as_bool()
        .unwrap_or(false)
}

async fn set_rest(app: &TestApp, token: &str, user: &str, on: bool) -> (u16, Value) {
    own_rest(
        app,
        "PUT",
        &settings_path(user),
        token,
        Some(json!({"dpopBoundAccessTokens": on})),
    )
    .await
}

/// A new machine user of the default org with a key; `jwt`: its access tokens are JWTs.
async fn user_with_key(app: &TestApp, admin: &str, jwt: bool) -> (String, KeyFile) {
    let mut c = app.grpc().await;
    let user = c
        .add_machine_user(authed(
            admin,
            None,
            AddMachineUserRequest {
                user_name: unique("dpop"),
                name: "dpop".into(),
                access_token_type: i32::from(jwt),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user_id;
    let file = c
        .add_machine_key(authed(admin, None, new_key(&user)))
        .await
        .unwrap()
        .into_inner()
        .key_details;
    (user, KeyFile::parse(&file))
}

/// The `user.changed` events of `user`, oldest first: their `dpopBoundAccessTokens`.
async fn changes(app: &TestApp, admin: &str, user: &str) -> Vec<bool> {
    let (status, body) = own_rest(
        app,
        "POST",
        "/v1/events/_search",
        admin,
        Some(json!({"types": ["user.changed"], "userId": user, "asc": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["result"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|e| {
                    assert_eq!(e["actor"]["userId"], json!(app.admin_id), "{e}");
                    e["data"]["dpopBoundAccessTokens"].as_bool().unwrap()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn token_settings_are_read_and_set_on_every_transport_and_audited() {
    use tower::Layer;
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user, _) = user_with_key(&app, &admin, false).await;

    // REST: off at first; on; the answer says when.
    let (status, body) = own_rest(&app, "GET", &settings_path(&user), &admin, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["userId"], json!(user));
    assert!(!bound(&body), "{body}");
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let (status, body) = set_rest(&app, &admin, &user, true).await;
    assert_eq!(status, 200, "{body}");
    assert!(bound(&body), "{body}");
    let changed_at = chrono::DateTime::parse_from_rfc3339(body["changedAt"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("{body}: {e}"));
    assert!(changed_at >= before, "{body}");
    let (_, body) = own_rest(&app, "GET", &settings_path(&user), &admin, None).await;
    assert!(bound(&body), "{body}");

    // gRPC: reads what REST set, turns it off.
    let mut grpc = MachineUserServiceClient::new(app.channel().await);
    let got = grpc
        .get_token_settings(authed(
            &admin,
            None,
            own::GetTokenSettingsRequest {
                user_id: user.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.settings,
        Some(own::TokenSettings {
            user_id: user.clone(),
            dpop_bound_access_tokens: true
        })
    );
    let set = grpc
        .set_token_settings(authed(
            &admin,
            None,
            own::SetTokenSettingsRequest {
                user_id: user.clone(),
                dpop_bound_access_tokens: false,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!set.settings.unwrap().dpop_bound_access_tokens);
    assert!(set.changed_at.is_some());

    // Connect: on again, and read back.
    let connect = |method: &str, body: Value| {
        app.http
            .post(format!(
                "{}/authnkeys.v1.MachineUserService/{method}",
                app.base
            ))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let resp = connect(
        "SetTokenSettings",
        json!({"userId": user, "dpopBoundAccessTokens": true}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(bound(&body), "{body}");
    let resp = connect("GetTokenSettings", json!({"userId": user}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(bound(&body), "{body}");

    // gRPC-Web reads it too.
    let http1 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<tonic_web::GrpcWebCall<tonic::body::Body>>();
    let mut web = MachineUserServiceClient::with_origin(
        tonic_web::GrpcWebClientLayer::new().layer(http1),
        app.base.parse().unwrap(),
    );
    let got = web
        .get_token_settings(authed(
            &admin,
            None,
            own::GetTokenSettingsRequest {
                user_id: user.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(got.settings.unwrap().dpop_bound_access_tokens);

    // Setting what is already set changes nothing and records nothing.
    let (status, body) = set_rest(&app, &admin, &user, true).await;
    assert_eq!(status, 200, "{body}");
    assert!(bound(&body), "{body}");
    assert_eq!(changes(&app, &admin, &user).await, [true, false, true]);

    // An unknown user, and no user id.
    let (status, body) = own_rest(&app, "GET", &settings_path("404404"), &admin, None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["details"][0]["id"], "USER-Tok01", "{body}");
    let err = grpc
        .set_token_settings(authed(
            &admin,
            None,
            own::SetTokenSettingsRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}

#[tokio::test]
async fn another_orgs_user_is_not_found_and_only_writers_inside_the_boundary_may_set() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user, _) = user_with_key(&app, &admin, false).await;

    // The owner of another org sees no user of this one: as an unknown id, on read and write.
    let (_, _, other_owner) = app.org_with_owner(&admin, "other").await;
    let (status, body) = own_rest(&app, "GET", &settings_path(&user), &other_owner, None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["details"][0]["id"], "USER-Tok01", "{body}");
    let (status, body) = set_rest(&app, &other_owner, &user, true).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["details"][0]["id"], "USER-Tok01", "{body}");

    // A viewer reads, but may not set.
    let (_, viewer_key) = app.member_with_key(&admin, 0, "ORG_OWNER_VIEWER").await;
    let viewer = app.token_for(&viewer_key).await;
    let (status, body) = own_rest(&app, "GET", &settings_path(&user), &viewer, None).await;
    assert_eq!(status, 200, "{body}");
    let mut grpc = MachineUserServiceClient::new(app.channel().await);
    let denied = grpc
        .set_token_settings(authed(
            &viewer,
            None,
            own::SetTokenSettingsRequest {
                user_id: user.clone(),
                dpop_bound_access_tokens: true,
            },
        ))
        .await;
    assert_err(denied, Code::PermissionDenied, "AUTH-5mWD2");
    let (status, body) = set_rest(&app, &viewer, &user, true).await;
    assert_eq!(status, 403, "{body}");

    // A user manager sets an ordinary user's, but not the IAM_OWNER's.
    let (_, manager_key) = app.member_with_key(&admin, 0, "ORG_USER_MANAGER").await;
    let manager = app.token_for(&manager_key).await;
    let (status, body) = set_rest(&app, &manager, &app.admin_id, true).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["details"][0]["id"], "AUTH-Priv01", "{body}");
    let (status, body) = set_rest(&app, &manager, &user, true).await;
    assert_eq!(status, 200, "{body}");
    // Nothing was written for the refused callers.
    let (_, body) = own_rest(&app, "GET", &settings_path(&app.admin_id), &admin, None).await;
    assert!(!bound(&body), "{body}");
    assert_eq!(
        changes(&app, &admin, &app.admin_id).await,
        Vec::<bool>::new()
    );
}

#[tokio::test]
async fn a_bound_user_gets_tokens_only_with_a_proof_and_keeps_the_ones_it_has() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    // A JWT user holding user.read, so its tokens show their binding and can call the API.
    let (user, key) = app.member_with_key(&admin, 1, "ORG_OWNER_VIEWER").await;
    // A token before: the user is in this process's cache now.
    let bearer = app.token_for(&key).await;

    let (status, body) = set_rest(&app, &admin, &user, true).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = plain_grant(&app, &key).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request", "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains(REFUSED_WITHOUT_PROOF), "{description}");
    assert!(description.contains(&user), "{description}");

    // The token obtained before still works: the setting binds new tokens, revokes none.
    let (status, body) = own_rest(&app, "GET", &settings_path(&user), &bearer, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(bound(&body), "{body}");

    // With a proof: a DPoP token bound to the proof's key, which works with proofs of it.
    let client = TestKey::new("ES256");
    let (token, _) = app.dpop_token_for(&key, &client).await;
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["cnf"]["jkt"], json!(client.thumbprint()), "{claims}");
    let path = settings_path(&user);
    let htu = format!("{}{path}", app.services.settings.issuer);
    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
    let resp = app
        .http
        .get(format!("{}{path}", app.base))
        .header("authorization", format!("DPoP {token}"))
        .header("DPoP", client.dpop_proof("GET", &htu, json!({"ath": ath})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Off again: a plain request works once more, at once.
    let (status, body) = set_rest(&app, &admin, &user, false).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = plain_grant(&app, &key).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
}

/// Polls `check` every 20 ms until it holds or `within` passed; whether it held.
async fn within<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn another_process_follows_the_setting_within_the_cache_bound() {
    let app = TestApp::spawn().await;
    let twin = app.spawn_on_same_database().await;
    let admin = app.admin_token().await;
    let (user, key) = user_with_key(&app, &admin, false).await;
    let listens = database_server()
        .is_some_and(|u| storage::Backend::of_url(&u) == Some(storage::Backend::Postgres));
    if listens {
        // While notices are confirmed, a cached user lives a minute: only the notice can
        // make the twin follow within the bound below.
        assert!(
            within(Duration::from_secs(30), || async {
                twin.services.caches.listening()
            })
            .await,
            "the twin never confirmed its notices"
        );
    }
    // The twin has read (and cached) the user.
    let (status, body) = plain_grant(&twin, &key).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = set_rest(&app, &admin, &user, true).await;
    assert_eq!(status, 200, "{body}");
    let refused = within(Duration::from_secs(10), || async {
        let (status, body) = plain_grant(&twin, &key).await;
        status == 400 && body["error"] == "invalid_request"
    })
    .await;
    assert!(
        refused,
        "the twin kept issuing plain tokens to a bound user"
    );
    // The first process has read (and cached) the user as bound.
    let (status, body) = plain_grant(&app, &key).await;
    assert_eq!(status, 400, "{body}");

    // And back, set through the twin.
    let (status, body) = set_rest(&twin, &admin, &user, false).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = plain_grant(&twin, &key).await;
    assert_eq!(status, 200, "at once in the process that set it: {body}");
    let accepted = within(Duration::from_secs(10), || async {
        plain_grant(&app, &key).await.0 == 200
    })
    .await;
    assert!(accepted, "the first process kept refusing plain tokens");
}
