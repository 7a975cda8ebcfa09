//! API apps introspect machine users' tokens: client assertions signed with app keys, or
//! HTTP Basic for BASIC apps; the token's audience decides `active`.
use authn_keys::proto::zitadel::management::v1::*;
use serde_json::json;

use crate::helpers::*;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A machine user's access token whose audience includes `project_id` (when given).
async fn user_token(app: &TestApp, admin: &str, project_id: Option<&str>) -> String {
    let (_, key) = app.member_with_key(admin, 0, "ORG_USER_VIEWER").await;
    let mut scope = format!("openid {API_SCOPE}");
    if let Some(p) = project_id {
        scope.push_str(&format!(" urn:zitadel:iam:org:project:id:{p}:aud"));
    }
    let assertion = app.assertion(&key, json!({}));
    let (status, body) = app
        .token_request(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &assertion),
            ("scope", &scope),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn private_key_jwt_app_introspects_a_machine_users_token() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (pid, aid, client_id, _) = app.project_with_app(&admin, 1).await;
    let key = app.app_key(&admin, &pid, &aid).await;
    assert_eq!(key.subject(), client_id);
    let token = user_token(&app, &admin, Some(&pid)).await;

    let assertion = app.assertion(&key, json!({}));
    let form = [
        ("token", token.as_str()),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    let (status, body) = app.introspect(&form, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["iss"], app.base.as_str());
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["aud"].as_array().unwrap().contains(&json!(pid)));
    assert!(body["scope"].as_str().unwrap().contains(API_SCOPE));
    assert!(body["exp"].as_i64().unwrap() > body["iat"].as_i64().unwrap());
    let sub = body["sub"].as_str().unwrap();
    assert_eq!(body["client_id"], sub);

    // A token without the project in its audience, an unknown token: inactive.
    let other = user_token(&app, &admin, None).await;
    let assertion = app.assertion(&key, json!({}));
    for t in [other.as_str(), "no-such-token"] {
        let (status, body) = app
            .introspect(
                &[
                    ("token", t),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", &assertion),
                ],
                None,
            )
            .await;
        assert_eq!((status, &body), (200, &json!({"active": false})));
    }

    // Bad client assertions: 401 invalid_client, with a description.
    let bad = [
        app.assertion(&key, json!({"aud": "https://elsewhere.example"})),
        app.assertion(&key, json!({"exp": now() - 60})),
        app.assertion(&key, json!({"iss": "1", "sub": "1"})),
        sign_jwt(
            "RS256",
            &key.key_id,
            &json!({"iss": client_id, "sub": client_id, "aud": app.base, "iat": now(), "exp": now() + 60}),
            &rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap(),
        ),
        app.assertion(&app.admin_key, json!({})),
    ];
    for a in &bad {
        let (status, body) = app
            .introspect(
                &[
                    ("token", token.as_str()),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", a),
                ],
                None,
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{body}"
        );
        assert!(!body["error_description"].as_str().unwrap().is_empty());
    }
    let (status, body) = app.introspect(&[("token", token.as_str())], None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = app
        .introspect(
            &[
                ("token", token.as_str()),
                ("client_assertion_type", "other"),
                ("client_assertion", &assertion),
            ],
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // The app key at the token endpoint: it authenticates clients, not users.
    let (status, body) = app
        .token_request(&[("grant_type", JWT_BEARER), ("assertion", &assertion)])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("application keys authenticate clients"),
        "{body}"
    );

    // After RemoveAppKey the same assertion is refused at once.
    let mut c = app.grpc().await;
    c.remove_app_key(authed(
        &admin,
        None,
        RemoveAppKeyRequest {
            project_id: pid.clone(),
            app_id: aid.clone(),
            key_id: key.key_id.clone(),
        },
    ))
    .await
    .unwrap();
    let (status, body) = app
        .introspect(
            &[
                ("token", token.as_str()),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("the key id is unknown"),
        "{body}"
    );
}

#[tokio::test]
async fn basic_app_introspects_with_its_secret() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (pid, _aid, client_id, secret) = app.project_with_app(&admin, 0).await;
    let token = user_token(&app, &admin, Some(&pid)).await;
    let (status, body) = app
        .introspect(&[("token", &token)], Some((&client_id, &secret)))
        .await;
    assert_eq!(
        (status, body["active"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (status, body) = app
        .introspect(&[("token", &token)], Some((&client_id, "wrong")))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, _) = app
        .introspect(&[("token", &token)], Some(("404", &secret)))
        .await;
    assert_eq!(status, 401);
    let (status, body) = app.introspect(&[], Some((&client_id, &secret))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // Removing the project removes the app: its secret stops working at once.
    let mut c = app.grpc().await;
    c.remove_project(authed(&admin, None, RemoveProjectRequest { id: pid }))
        .await
        .unwrap();
    let (status, _) = app
        .introspect(&[("token", &token)], Some((&client_id, &secret)))
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn audience_scope_for_an_unknown_project_is_refused() {
    let app = TestApp::spawn().await;
    let assertion = app.assertion(&app.admin_key, json!({}));
    let scope = format!("{API_SCOPE} urn:zitadel:iam:org:project:id:404404:aud");
    let (status, body) = app
        .token_request(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &assertion),
            ("scope", &scope),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "{body}"
    );
}
