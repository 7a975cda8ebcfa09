//! The token endpoint's refusals: each says what failed, as 400 invalid_grant (ZITADEL: 500).
use serde_json::{Value, json};

use crate::helpers::*;

async fn refused(app: &TestApp, assertion: &str) -> String {
    let (status, body) = app
        .token_request(&[("grant_type", JWT_BEARER), ("assertion", assertion)])
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    body["error_description"].as_str().unwrap().to_owned()
}

fn unsigned(header: Value, claims: Value) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode("sig")
    )
}

#[tokio::test]
async fn bad_assertions_get_precise_errors_and_the_server_keeps_serving() {
    // Many failures from one address and key: the rate limits are tested on their own.
    let app = TestApp::spawn_with(|c| {
        c.auth_failure_burst = 0;
        c.auth_failure_address_burst = 0;
    })
    .await;
    let key = app.admin_key.clone();
    let sub = key.subject();
    let base_claims =
        json!({"iss": sub, "sub": sub, "aud": app.base, "iat": now(), "exp": now() + 60});

    assert!(
        refused(
            &app,
            &unsigned(
                json!({"alg": "none", "kid": key.key_id}),
                base_claims.clone()
            )
        )
        .await
        .contains("alg none")
    );
    assert!(
        refused(
            &app,
            &unsigned(
                json!({"alg": "HS256", "kid": key.key_id}),
                base_claims.clone()
            )
        )
        .await
        .contains("HS256")
    );
    assert!(refused(&app, "not-a-jwt").await.contains("not a valid JWT"));
    assert!(
        refused(
            &app,
            &unsigned(json!({"alg": "RS256"}), base_claims.clone())
        )
        .await
        .contains("kid")
    );
    let wrong_kid = sign_jwt("RS256", "12345", &base_claims, &key.private_key());
    assert!(
        refused(&app, &wrong_kid)
            .await
            .contains("the key id is unknown")
    );
    assert!(
        refused(
            &app,
            &app.assertion(&key, json!({"aud": "https://elsewhere.example"}))
        )
        .await
        .contains("issuer")
    );
    assert!(
        refused(&app, &app.assertion(&key, json!({"exp": now() - 60})))
            .await
            .contains("expired")
    );
    assert!(
        refused(&app, &app.assertion(&key, json!({"iat": now() + 120})))
            .await
            .contains("future")
    );
    assert!(
        refused(&app, &app.assertion(&key, json!({"iat": now() - 7200})))
            .await
            .contains("ago")
    );
    assert!(
        refused(&app, &app.assertion(&key, json!({"sub": "someone-else"})))
            .await
            .contains("differ")
    );
    assert!(
        refused(&app, &app.assertion(&key, json!({"iss": "x", "sub": "x"})))
            .await
            .contains("does not belong")
    );
    // A signature by another key under the admin's kid.
    let other = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    assert!(
        refused(&app, &sign_jwt("RS256", &key.key_id, &base_claims, &other))
            .await
            .contains("signed with another key")
    );

    let (status, body) = app.token_request(&[("grant_type", "password")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, body) = app.token_request(&[("grant_type", JWT_BEARER)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Still serving, and the good assertion works, with PS256 too.
    let good = sign_jwt("PS256", &key.key_id, &base_claims, &key.private_key());
    let (status, body) = app
        .token_request(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &good),
            ("scope", "openid"),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    assert!(
        body["id_token"].as_str().is_some(),
        "openid asks for an id_token"
    );
}

#[tokio::test]
async fn expired_keys_are_refused_at_once() {
    use authn_keys::proto::zitadel::management::v1::*;
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut c = app.grpc().await;
    let uid = c
        .add_machine_user(authed(
            &admin,
            None,
            AddMachineUserRequest {
                user_name: unique("exp"),
                name: "e".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user_id;
    let expires = now() + 3;
    let soon = authn_keys::proto::wkt::Timestamp {
        seconds: expires,
        nanos: 0,
    };
    let added = c
        .add_machine_key(authed(
            &admin,
            None,
            AddMachineKeyRequest {
                user_id: uid,
                r#type: 1,
                expiration_date: Some(soon),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let key = KeyFile::parse(&added.key_details);
    let (status, _) = app
        .token_request(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &app.assertion(&key, json!({}))),
        ])
        .await;
    assert_eq!(status, 200, "the key works until it expires");
    // The server's clock is this machine's: once it has passed the expiry, the very next
    // assertion is refused.
    let expiry = chrono::DateTime::from_timestamp(expires, 0).unwrap();
    while chrono::Utc::now() < expiry {
        let left = (expiry - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(left.min(std::time::Duration::from_millis(100))).await;
    }
    let description = refused(&app, &app.assertion(&key, json!({}))).await;
    assert!(description.contains("expired at"), "{description}");
}

#[tokio::test]
async fn discovery_and_jwks() {
    let app = TestApp::spawn().await;
    let d: Value = app
        .http
        .get(format!("{}/.well-known/openid-configuration", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], app.base.as_str());
    assert_eq!(d["token_endpoint"], format!("{}/oauth/v2/token", app.base));
    assert_eq!(d["jwks_uri"], format!("{}/oauth/v2/keys", app.base));
    assert_eq!(
        d["introspection_endpoint"],
        format!("{}/oauth/v2/introspect", app.base)
    );
    let methods = d["introspection_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(
        methods.contains(&json!("private_key_jwt"))
            && methods.contains(&json!("client_secret_basic"))
    );
    assert!(
        d["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(JWT_BEARER))
    );
    let jwks: Value = app
        .http
        .get(format!("{}/oauth/v2/keys", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let k = &jwks["keys"][0];
    assert_eq!(
        (k["kty"].as_str(), k["alg"].as_str()),
        (Some("RSA"), Some("RS256"))
    );
    assert!(k["kid"].as_str().is_some() && k["n"].as_str().unwrap().len() > 300);
    let ready = app
        .http
        .get(format!("{}/debug/ready", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let live = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
}

#[tokio::test]
async fn grants_racing_a_user_removal_fail_cleanly() {
    use authn_keys::proto::zitadel::management::v1::RemoveUserRequest;
    let app = TestApp::spawn_with(|c| {
        c.auth_failure_burst = 0;
        c.auth_failure_address_burst = 0;
    })
    .await;
    let admin = app.admin_token().await;
    for _ in 0..4 {
        let (user_id, key) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
        let grants: Vec<_> = (0..24)
            .map(|i| {
                let assertion = app.assertion(&key, json!({"jti": unique("race")}));
                let (http, base) = (app.http.clone(), app.base.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(i)).await;
                    let resp = http
                        .post(format!("{base}/oauth/v2/token"))
                        .form(&[
                            ("grant_type", JWT_BEARER),
                            ("assertion", assertion.as_str()),
                            ("scope", &format!("openid {API_SCOPE}")),
                        ])
                        .send()
                        .await
                        .unwrap();
                    let status = resp.status().as_u16();
                    (status, resp.json::<Value>().await.unwrap())
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(8)).await;
        app.grpc()
            .await
            .remove_user(authed(&admin, None, RemoveUserRequest { id: user_id }))
            .await
            .unwrap();
        for grant in grants {
            let (status, body) = grant.await.unwrap();
            match status {
                200 => {
                    // Issued before the removal: revoked with it.
                    let token = body["access_token"].as_str().unwrap();
                    let (status, _) = app.rest("GET", "/orgs/me", Some(token), None, None).await;
                    assert_eq!(status, 401, "a token of a removed user still works");
                }
                400 => assert_eq!(body["error"], "invalid_grant", "{body}"),
                other => panic!("a grant racing the removal answered {other}: {body}"),
            }
        }
    }
}

/// A token granted while its key is being removed must not outlive the key: the grant either
/// fails or its token is revoked with the key, in every round, and no record points at a key
/// that no longer exists.
#[tokio::test]
async fn grants_racing_a_key_removal_leave_no_working_token() {
    use authn_keys::proto::zitadel::management::v1::{
        AddMachineKeyRequest, RemoveMachineKeyRequest,
    };
    use sea_orm::ConnectionTrait;
    // Hundreds of revoked tokens are tried from one address: no failure limits.
    let app = TestApp::spawn_with(|c| {
        c.auth_failure_burst = 0;
        c.auth_failure_address_burst = 0;
        c.bearer_failure_burst = 0;
    })
    .await;
    let admin = app.admin_token().await;
    let (user_id, _) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    let mut issued = 0;
    for _ in 0..6 {
        let file = app
            .grpc()
            .await
            .add_machine_key(authed(
                &admin,
                None,
                AddMachineKeyRequest {
                    user_id: user_id.clone(),
                    r#type: 1,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .key_details;
        let key = KeyFile::parse(&file);
        // Six clients ask for tokens in a loop until the key is gone.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients = racing_grants(&app, &key, 6, &stop, "the removal");
        // Let the grants get going, then remove the key under them.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        app.grpc()
            .await
            .remove_machine_key(authed(
                &admin,
                None,
                RemoveMachineKeyRequest {
                    user_id: user_id.clone(),
                    key_id: key.key_id.clone(),
                },
            ))
            .await
            .unwrap();
        // Grants that were in flight finish; only then is the outcome final.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stop.store(true, std::sync::atomic::Ordering::Release);
        for client in clients {
            for token in client.await.unwrap() {
                issued += 1;
                let (status, body) = app.rest("GET", "/orgs/me", Some(&token), None, None).await;
                assert_eq!(status, 401, "a token of a removed key still works: {body}");
            }
        }
        let orphans = app
            .services
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                app.services.db.get_database_backend(),
                "SELECT COUNT(*) FROM access_tokens t WHERE NOT EXISTS \
                 (SELECT 1 FROM authn_keys k WHERE k.id = t.key_id)",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap();
        assert_eq!(orphans, 0, "token records point at a removed key");
    }
    assert!(
        issued > 0,
        "no grant succeeded before a removal: the race was not exercised"
    );
}

/// Uploaded P-256, P-384 and Ed25519 keys: an assertion their private key signs under the key's
/// algorithm is granted; one signed by another key under their key id is refused like any
/// signature that does not verify.
#[tokio::test]
async fn ec_and_ed25519_keys_grant_tokens_for_their_own_signatures() {
    use authn_keys::{
        domain::{jwt::Algorithm, keypair::KeyPair},
        proto::zitadel::management::v1::AddMachineKeyRequest,
    };
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let mut c = app.grpc().await;
    let sub = app.admin_id.clone();
    let claims = json!({"iss": sub, "sub": sub, "aud": app.base, "iat": now(), "exp": now() + 60});
    for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
        let pair = KeyPair::generate(alg).unwrap();
        let added = c
            .add_machine_key(authed(
                &token,
                None,
                AddMachineKeyRequest {
                    user_id: sub.clone(),
                    r#type: 1,
                    expiration_date: None,
                    public_key: pair.public_key().to_pkix_pem().unwrap().into_bytes(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let file = KeyFile {
            key_id: added.key_id,
            key: pair.private_pem().unwrap().expose().to_owned(),
            ..app.admin_key.clone()
        };
        let (status, body) = app
            .token_request(&[
                ("grant_type", JWT_BEARER),
                ("assertion", &file.sign(alg, &claims)),
            ])
            .await;
        assert_eq!(status, 200, "{alg}: {body}");
        assert_eq!(body["token_type"], "Bearer");

        // The admin's RSA key, under this key's id.
        let foreign = KeyFile {
            key_id: file.key_id.clone(),
            ..app.admin_key.clone()
        };
        assert!(
            refused(&app, &foreign.sign(Algorithm::RS256, &claims))
                .await
                .contains("signed with another key")
        );
    }
}
