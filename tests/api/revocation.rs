//! Token revocation (RFC 7009) at `/oauth/v2/revoke`: the token's user with its own key's
//! assertion, an API app for tokens asked for its project; the token ends here at once and in
//! other processes within the bound of a removal; anyone else changes nothing. Also JWT
//! introspection answers (RFC 9701) and the discovery documents that announce both.
use authn_keys::proto::zitadel::management::v1::*;
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::*;

const TOKEN_INTROSPECTION_JWT: &str = "application/token-introspection+jwt";

/// POSTs to the revocation endpoint: (HTTP status, WWW-Authenticate, body).
async fn revoke(
    app: &TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Option<String>, String) {
    let mut req = app
        .http
        .post(format!("{}/oauth/v2/revoke", app.base))
        .form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, challenge, resp.text().await.unwrap())
}

/// Revokes `token` authenticating with an assertion of `key` (a machine user's own key, or an
/// app key), with more form fields from `extra`; the HTTP status.
async fn revoke_with_key(app: &TestApp, key: &KeyFile, token: &str, extra: &[(&str, &str)]) -> u16 {
    let assertion = app.assertion(key, json!({}));
    let mut form = vec![
        ("token", token),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    form.extend_from_slice(extra);
    let (status, _, body) = revoke(app, &form, None).await;
    if status == 200 {
        assert_eq!(body, "", "RFC 7009 answers 200 with no content");
    }
    status
}

/// A machine user of the default org (ORG_USER_VIEWER, so it may read users) with a key,
/// and a token of it for the API and `project_id`: (user id, key, token).
async fn user_with_token(
    app: &TestApp,
    admin: &str,
    token_type: i32,
    project_id: &str,
) -> (String, KeyFile, String) {
    let (user, key) = app
        .member_with_key(admin, token_type, "ORG_USER_VIEWER")
        .await;
    let (status, body) = app.grant(&key, &project_scope(project_id)).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    (user, key, token)
}

/// Whether the management API takes `token` on `server` (a user read the role allows).
async fn api_accepts(server: &TestApp, token: &str, user: &str) -> bool {
    let req = authed(
        token,
        None,
        GetUserByIdRequest {
            id: user.to_owned(),
        },
    );
    match server.grpc().await.get_user_by_id(req).await {
        Ok(_) => true,
        Err(status) => {
            assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
            assert_eq!(error_id(&status), "AUTH-7fs2e");
            false
        }
    }
}

#[tokio::test]
async fn the_owner_revokes_its_token_and_it_ends() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (pid, aid, _, _) = app.project_with_app(&admin, 1).await;
    let app_key = app.app_key(&admin, &pid, &aid).await;
    for token_type in [0, 1] {
        let (user, key, token) = user_with_token(&app, &admin, token_type, &pid).await;
        let (_, other_token) = app.grant(&key, &project_scope(&pid)).await;
        let other_token = other_token["access_token"].as_str().unwrap().to_owned();
        assert!(api_accepts(&app, &token, &user).await);
        assert!(!inactive(&app, &app_key, &token).await);

        // The user authenticates with its own key (client id = its user id, as sent here).
        let status = revoke_with_key(&app, &key, &token, &[("client_id", &user)]).await;
        assert_eq!(status, 200, "type {token_type}");
        assert!(!api_accepts(&app, &token, &user).await, "type {token_type}");
        assert!(inactive(&app, &app_key, &token).await, "type {token_type}");
        // Only that token: the user's other one still works.
        assert!(api_accepts(&app, &other_token, &user).await);
        // Revoking it again changes nothing and still answers 200.
        assert_eq!(revoke_with_key(&app, &key, &token, &[]).await, 200);
    }

    // Each revocation is on the trail as `token.revoked`, naming the token, its user and who
    // revoked it; never the token.
    let (status, body) = own_rest(
        &app,
        "POST",
        "/v1/events/_search",
        &admin,
        Some(json!({"types": ["token.revoked"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let events = body["result"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{body}");
    for e in events {
        assert_eq!(e["type"], "token.revoked");
        assert_eq!(e["actor"]["userId"], e["userId"], "{e}");
        assert!(e["data"]["tokenId"].as_str().is_some_and(|t| !t.is_empty()));
        assert_eq!(e["orgId"], app.org_id.as_str());
    }
}

#[tokio::test]
async fn a_revocation_ends_the_token_in_another_process_within_the_bound() {
    let app = TestApp::spawn().await;
    let twin = app.spawn_on_same_database().await;
    let admin = app.admin_token().await;
    let (pid, aid, _, _) = app.project_with_app(&admin, 1).await;
    let app_key = app.app_key(&admin, &pid, &aid).await;
    if app.db_url.starts_with("postgres") {
        // On PostgreSQL revocations travel as notices; both processes must be listening.
        for server in [&app, &twin] {
            within(OTHER_PROCESS_BOUND, || async {
                server.services.caches.listening()
            })
            .await;
        }
    }
    for token_type in [0, 1] {
        let (user, key, token) = user_with_token(&app, &admin, token_type, &pid).await;
        // Both processes have seen (and cached) the token.
        for server in [&app, &twin] {
            assert!(api_accepts(server, &token, &user).await);
            assert!(!inactive(server, &app_key, &token).await);
        }
        // Revoked through one process: there at once ...
        assert_eq!(revoke_with_key(&app, &key, &token, &[]).await, 200);
        assert!(!api_accepts(&app, &token, &user).await);
        // ... and in the other within the bound a removal has.
        within(OTHER_PROCESS_BOUND, || inactive(&twin, &app_key, &token)).await;
        within(OTHER_PROCESS_BOUND, || async {
            !api_accepts(&twin, &token, &user).await
        })
        .await;
    }
}

#[tokio::test]
async fn an_api_app_revokes_the_tokens_of_its_project() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (pid, aid, _, _) = app.project_with_app(&admin, 1).await;
    let app_key = app.app_key(&admin, &pid, &aid).await;
    let (basic_pid, _, client_id, secret) = app.project_with_app(&admin, 0).await;

    // With its client assertion.
    let (user, _, token) = user_with_token(&app, &admin, 0, &pid).await;
    assert_eq!(revoke_with_key(&app, &app_key, &token, &[]).await, 200);
    assert!(inactive(&app, &app_key, &token).await);
    assert!(!api_accepts(&app, &token, &user).await);

    // With HTTP Basic (a BASIC app), for a token of its own project.
    let (user, _, token) = user_with_token(&app, &admin, 1, &basic_pid).await;
    let (status, _, body) = revoke(&app, &[("token", &token)], Some((&client_id, &secret))).await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(!api_accepts(&app, &token, &user).await);

    // The event names the app that revoked.
    let (_, body) = own_rest(
        &app,
        "POST",
        "/v1/events/_search",
        &admin,
        Some(json!({"types": ["token.revoked"], "asc": true})),
    )
    .await;
    assert_eq!(body["result"][0]["actor"]["userId"], format!("app:{aid}"));
}

#[tokio::test]
async fn revoking_a_token_the_client_does_not_hold_changes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (pid, aid, _, _) = app.project_with_app(&admin, 1).await;
    let app_key = app.app_key(&admin, &pid, &aid).await;
    let (user, _, token) = user_with_token(&app, &admin, 0, &pid).await;

    // Another user of the same org, with its own key.
    let (_, stranger_key, _) = user_with_token(&app, &admin, 0, &pid).await;
    assert_eq!(revoke_with_key(&app, &stranger_key, &token, &[]).await, 200);
    // An app of another project (PRIVATE_KEY_JWT and BASIC).
    let (other_pid, other_aid, _, _) = app.project_with_app(&admin, 1).await;
    let other_key = app.app_key(&admin, &other_pid, &other_aid).await;
    assert_eq!(revoke_with_key(&app, &other_key, &token, &[]).await, 200);
    let (_, _, other_basic, basic_secret) = app.project_with_app(&admin, 0).await;
    let (status, _, _) = revoke(
        &app,
        &[("token", &token)],
        Some((&other_basic, &basic_secret)),
    )
    .await;
    assert_eq!(status, 200);
    // An app of another org's project.
    let (org, _, org_owner_token) = app.org_with_owner(&admin, "elsewhere").await;
    let mut c = app.grpc().await;
    let foreign_pid = c
        .add_project(authed(
            &org_owner_token,
            Some(&org),
            AddProjectRequest {
                name: unique("foreign"),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let foreign_app = c
        .add_api_app(authed(
            &org_owner_token,
            Some(&org),
            AddApiAppRequest {
                project_id: foreign_pid.clone(),
                name: unique("foreign-api"),
                auth_method_type: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (status, _, _) = revoke(
        &app,
        &[("token", &token)],
        Some((&foreign_app.client_id, &foreign_app.client_secret)),
    )
    .await;
    assert_eq!(status, 200);

    // The token still works, and nothing is on the trail.
    assert!(api_accepts(&app, &token, &user).await);
    assert!(!inactive(&app, &app_key, &token).await);
    let (status, body) = own_rest(
        &app,
        "POST",
        "/v1/events/_search",
        &admin,
        Some(json!({"types": ["token.revoked"]})),
    )
    .await;
    // (proto3 JSON leaves out an empty list and a zero count)
    assert_eq!(status, 200, "{body}");
    assert!(body.get("result").is_none(), "{body}");
}

#[tokio::test]
async fn bad_requests_answer_as_rfc_7009_says() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (pid, aid, client_id, _) = app.project_with_app(&admin, 1).await;
    let app_key = app.app_key(&admin, &pid, &aid).await;
    let (user, key, token) = user_with_token(&app, &admin, 0, &pid).await;

    let refused = |(status, challenge, body): (u16, Option<String>, String)| {
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{body}"
        );
        assert!(challenge.is_some(), "401 names a scheme");
        assert!(!body["error_description"].as_str().unwrap().is_empty());
        body["error_description"].as_str().unwrap().to_owned()
    };
    // No client authentication.
    refused(revoke(&app, &[("token", &token)], None).await);
    // A wrong secret, an unknown client.
    refused(revoke(&app, &[("token", &token)], Some((&client_id, "wrong"))).await);
    refused(revoke(&app, &[("token", &token)], Some(("404", "wrong"))).await);
    // Assertions that fail: expired, for another audience, of another user, replayed.
    for bad in [
        app.assertion(&key, json!({"exp": now() - 60})),
        app.assertion(&key, json!({"aud": "https://elsewhere.example"})),
        app.assertion(&key, json!({"iss": app.admin_id, "sub": app.admin_id})),
        "not-a-jwt".to_owned(),
    ] {
        refused(
            revoke(
                &app,
                &[
                    ("token", &token),
                    ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                    ("client_assertion", &bad),
                ],
                None,
            )
            .await,
        );
    }
    let once = app.assertion(&key, json!({"jti": unique("jti")}));
    let form = [
        ("token", "unknown"),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", once.as_str()),
    ];
    assert_eq!(revoke(&app, &form, None).await.0, 200);
    let description = refused(revoke(&app, &form, None).await);
    assert!(description.contains("already used"), "{description}");
    // A client_id naming another client than the one that authenticated.
    let description = refused(
        revoke(
            &app,
            &[
                ("token", token.as_str()),
                ("client_id", client_id.as_str()),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", &app.assertion(&key, json!({}))),
            ],
            None,
        )
        .await,
    );
    assert!(description.contains("client_id"), "{description}");
    // None of that touched the token.
    assert!(api_accepts(&app, &token, &user).await);

    // Authenticated, but no token: invalid_request.
    let assertion = app.assertion(&app_key, json!({}));
    let (status, _, body) = revoke(
        &app,
        &[
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ],
        None,
    )
    .await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // A malformed or unknown token: 200, nothing to do.
    for t in ["x", "not.a.jwt", &"a".repeat(10_000), "%00"] {
        assert_eq!(
            revoke_with_key(&app, &app_key, t, &[]).await,
            200,
            "{t:.20}"
        );
    }
    // Any token_type_hint, known or not, is only a hint: the token is revoked.
    for hint in ["refresh_token", "something_else"] {
        let (_, _, token) = user_with_token(&app, &admin, 0, &pid).await;
        assert_eq!(
            revoke_with_key(&app, &app_key, &token, &[("token_type_hint", hint)]).await,
            200
        );
        assert!(inactive(&app, &app_key, &token).await, "{hint}");
    }
    // Not a form.
    let resp = app
        .http
        .post(format!("{}/oauth/v2/revoke", app.base))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// POSTs an introspection with `accept`: (status, Content-Type, body).
async fn introspect_accepting(
    app: &TestApp,
    app_key: &KeyFile,
    token: &str,
    accept: Option<&str>,
) -> (u16, String, String) {
    let assertion = app.assertion(app_key, json!({}));
    let mut req = app
        .http
        .post(format!("{}/oauth/v2/introspect", app.base))
        .form(&[
            ("token", token),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ]);
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, resp.text().await.unwrap())
}

#[tokio::test]
async fn introspection_answers_a_signed_jwt_when_asked() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (pid, aid, client_id, _) = app.project_with_app(&admin, 1).await;
    let app_key = app.app_key(&admin, &pid, &aid).await;
    let (user, _, token) = user_with_token(&app, &admin, 0, &pid).await;

    let (status, content_type, jwt) =
        introspect_accepting(&app, &app_key, &token, Some(TOKEN_INTROSPECTION_JWT)).await;
    assert_eq!(status, 200, "{jwt}");
    assert_eq!(content_type, TOKEN_INTROSPECTION_JWT);
    let (header, claims) = verified_by_jwks(&app, &jwt).await;
    assert_eq!(header["typ"], "token-introspection+jwt");
    assert_eq!(claims["iss"], app.base.as_str());
    assert_eq!(claims["aud"], client_id.as_str());
    assert!(
        (claims["iat"].as_i64().unwrap() - now()).abs() < 60,
        "{claims}"
    );
    let answer = &claims["token_introspection"];
    assert_eq!(answer["active"], true, "{claims}");
    assert_eq!(answer["sub"], user.as_str());
    assert!(answer["aud"].as_array().unwrap().contains(&json!(pid)));
    // The same answer as JSON, the default: without Accept, with JSON asked for, or with the
    // JWT refused (q=0).
    for accept in [
        None,
        Some("application/json"),
        Some("*/*"),
        Some("application/token-introspection+jwt;q=0, application/json"),
    ] {
        let (status, content_type, body) =
            introspect_accepting(&app, &app_key, &token, accept).await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("application/json"), "{accept:?}");
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(&json, answer, "{accept:?}");
    }
    // A list that names it among others.
    let (_, content_type, _) = introspect_accepting(
        &app,
        &app_key,
        &token,
        Some("application/json;q=0.5, Application/Token-Introspection+JWT"),
    )
    .await;
    assert_eq!(content_type, TOKEN_INTROSPECTION_JWT);

    // An inactive token: a JWT holding {"active": false}.
    let (_, _, jwt) =
        introspect_accepting(&app, &app_key, "unknown", Some(TOKEN_INTROSPECTION_JWT)).await;
    let (_, claims) = verified_by_jwks(&app, &jwt).await;
    assert_eq!(claims["token_introspection"], json!({"active": false}));
    assert_eq!(claims["aud"], client_id.as_str());
    // Errors stay RFC 6749 JSON.
    let resp = app
        .http
        .post(format!("{}/oauth/v2/introspect", app.base))
        .header("accept", TOKEN_INTROSPECTION_JWT)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn discovery_announces_what_is_served_on_both_well_known_paths() {
    let app = TestApp::spawn().await;
    let get = |path: &'static str| {
        let (http, base) = (app.http.clone(), app.base.clone());
        async move {
            let resp = http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            resp.json::<Value>().await.unwrap()
        }
    };
    let oidc = get("/.well-known/openid-configuration").await;
    let oauth = get("/.well-known/oauth-authorization-server").await;
    assert_eq!(oidc, oauth);
    let d = oidc;
    let base = app.base.as_str();
    assert_eq!(d["issuer"], base);
    assert_eq!(d["revocation_endpoint"], format!("{base}/oauth/v2/revoke"));
    assert_eq!(
        d["introspection_endpoint"],
        format!("{base}/oauth/v2/introspect")
    );
    assert_eq!(
        d["grant_types_supported"],
        json!([
            JWT_BEARER,
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    let client_auth = json!(["private_key_jwt", "client_secret_basic"]);
    // RFC 9864's Ed25519 is read as EdDSA, and said so.
    let key_algs = json!(["RS256", "PS256", "ES256", "ES384", "EdDSA", "Ed25519"]);
    for endpoint in ["introspection", "revocation"] {
        assert_eq!(
            d[format!("{endpoint}_endpoint_auth_methods_supported")],
            client_auth
        );
        assert_eq!(
            d[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")],
            key_algs
        );
    }
    assert_eq!(d["token_endpoint_auth_methods_supported"], json!(["none"]));
    assert_eq!(
        d["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "Ed25519", "RS256", "PS256"])
    );
    assert!(
        d.get("request_object_signing_alg_values_supported")
            .is_none()
    );

    // The signing algorithms announced are the ones the server signs with.
    let (status, body) = app
        .grant(&app.admin_key, &format!("openid {API_SCOPE}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let (header, _) = verified_by_jwks(&app, body["id_token"].as_str().unwrap()).await;
    assert_eq!(
        d["id_token_signing_alg_values_supported"],
        json!([header["alg"]])
    );
    assert_eq!(
        d["introspection_signing_alg_values_supported"],
        json!([header["alg"]])
    );

    // Every algorithm announced for client assertions works: an app key of each kind
    // authenticates a revocation.
    let admin = body["access_token"].as_str().unwrap().to_owned();
    let (pid, aid, client_id, _) = app.project_with_app(&admin, 1).await;
    for alg in ["ES256", "ES384", "EdDSA"] {
        let key = TestKey::new(alg);
        let (status, added) = own_rest(
            &app,
            "POST",
            "/v1/keys",
            &admin,
            Some(json!({
                "app": {"projectId": pid, "appId": aid},
                "publicKey": STANDARD.encode(&key.public_pem),
            })),
        )
        .await;
        assert_eq!(status, 200, "{added}");
        let kid = added["key"]["id"].as_str().unwrap();
        let assertion = key.sign(
            kid,
            &json!({"iss": client_id, "sub": client_id, "aud": base, "iat": now(), "exp": now() + 60}),
        );
        let (status, _, body) = revoke(
            &app,
            &[
                ("token", "unknown"),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
            None,
        )
        .await;
        assert_eq!(status, 200, "{alg}: {body}");
    }
}
