//! DPoP (RFC 9449): tokens bound to the client's key at the token endpoint, accepted on the
//! API only with a fresh proof of that key, on REST, gRPC and Connect.
use authn_keys::{
    domain::dpop::token_hash, proto::zitadel::management::v1::GetMyOrgRequest,
    service::dpop::NonceMode,
};
use serde_json::{Value, json};
use tonic::metadata::MetadataValue;

use crate::helpers::*;

const GET_MY_ORG: &str = "/zitadel.management.v1.ManagementService/GetMyOrg";

/// Calls REST `GET /management/v1/orgs/me` with `authorization` and DPoP headers: (status,
/// WWW-Authenticate, DPoP-Nonce, body).
async fn my_org(
    app: &TestApp,
    authorization: &str,
    proofs: &[String],
) -> (u16, String, Option<String>, Value) {
    let mut req = app
        .http
        .get(format!("{}/management/v1/orgs/me", app.base))
        .header("authorization", authorization);
    for p in proofs {
        req = req.header("DPoP", p);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (challenge, nonce) = (
        header("www-authenticate").unwrap_or_default(),
        header("dpop-nonce"),
    );
    (status, challenge, nonce, resp.json().await.unwrap())
}

fn rest_url(app: &TestApp) -> String {
    format!("{}/management/v1/orgs/me", app.services.settings.issuer)
}

#[tokio::test]
async fn a_bound_token_works_only_with_fresh_proofs_of_its_key() {
    let app = TestApp::spawn().await;
    let key = TestKey::new("ES256");
    let (token, _) = app.dpop_token_for(&app.admin_key, &key).await;
    let url = rest_url(&app);
    let ath = json!({"ath": token_hash(&token)});
    let dpop = format!("DPoP {token}");

    let proof = key.dpop_proof("GET", &url, ath.clone());
    let (status, _, _, body) = my_org(&app, &dpop, std::slice::from_ref(&proof)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["org"]["id"], app.org_id);

    // The same proof again: a replay.
    let (status, challenge, _, body) = my_org(&app, &dpop, &[proof]).await;
    assert_eq!(status, 401);
    assert!(
        challenge.starts_with("DPoP error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("already used"),
        "{body}"
    );

    // As a bearer token, with or without a proof.
    let fresh = || key.dpop_proof("GET", &url, ath.clone());
    let (status, challenge, _, body) = my_org(&app, &format!("Bearer {token}"), &[fresh()]).await;
    assert_eq!(status, 401);
    assert!(
        challenge.starts_with("DPoP error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("bound to a key"),
        "{body}"
    );

    // Refusals, each saying why.
    let thief = TestKey::new("ES256");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "needs a DPoP proof"),
        (
            vec![thief.dpop_proof("GET", &url, ath.clone())],
            "another key",
        ),
        (
            vec![key.dpop_proof("POST", &url, ath.clone())],
            "htm is POST",
        ),
        (
            vec![key.dpop_proof("GET", &format!("{url}x"), ath.clone())],
            "but the request is for",
        ),
        (
            vec![key.dpop_proof("GET", &format!("{url}?a=b"), ath.clone())],
            "query or fragment",
        ),
        (vec![key.dpop_proof("GET", &url, json!({}))], "no ath"),
        (
            vec![key.dpop_proof("GET", &url, json!({"ath": token_hash("other")}))],
            "not the hash",
        ),
        (
            vec![key.dpop_proof(
                "GET",
                &url,
                json!({"ath": token_hash(&token), "iat": now() - 3600}),
            )],
            "proofs are accepted for 300s",
        ),
        (vec![fresh(), fresh()], "more than one DPoP header"),
        (vec!["not.a.proof".into()], "not a valid JWT"),
    ];
    for (proofs, says) in cases {
        let (status, challenge, _, body) = my_org(&app, &dpop, &proofs).await;
        assert_eq!(status, 401, "{says}: {body}");
        assert!(
            challenge.contains("error=\"invalid_dpop_proof\""),
            "{says}: {challenge}"
        );
        assert!(
            challenge.contains("algs=\"ES256 EdDSA Ed25519 RS256 PS256\""),
            "{challenge}"
        );
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(says), "{says}: {message}");
        assert!(message.ends_with("(AUTH-Dpop01)"), "{message}");
    }

    // An unbound token sent as DPoP is refused; as Bearer it works.
    let plain = app.admin_token().await;
    let (status, challenge, _, _) = my_org(
        &app,
        &format!("DPoP {plain}"),
        &[key.dpop_proof("GET", &url, json!({"ath": token_hash(&plain)}))],
    )
    .await;
    assert_eq!(status, 401);
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert_eq!(my_org(&app, &format!("Bearer {plain}"), &[]).await.0, 200);

    // Still good with a fresh proof after all that.
    assert_eq!(my_org(&app, &dpop, &[fresh()]).await.0, 200);
}

#[tokio::test]
async fn grpc_and_connect_calls_carry_the_proof_in_metadata() {
    let app = TestApp::spawn().await;
    let key = TestKey::new("EdDSA");
    let (token, _) = app.dpop_token_for(&app.admin_key, &key).await;
    let htu = format!("{}{GET_MY_ORG}", app.services.settings.issuer);
    let ath = json!({"ath": token_hash(&token)});

    let call = |proof: Option<String>| {
        let mut req = tonic::Request::new(GetMyOrgRequest {});
        let md = req.metadata_mut();
        md.insert(
            "authorization",
            MetadataValue::try_from(format!("DPoP {token}")).unwrap(),
        );
        if let Some(p) = proof {
            md.insert("dpop", MetadataValue::try_from(p).unwrap());
        }
        req
    };
    let mut grpc = app.grpc().await;
    let org = grpc
        .get_my_org(call(Some(key.dpop_proof("POST", &htu, ath.clone()))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(org.org.unwrap().id, app.org_id);
    // A proof for another method, and none.
    let other = format!(
        "{}/zitadel.management.v1.ManagementService/ListOrgMembers",
        app.services.settings.issuer
    );
    for proof in [Some(key.dpop_proof("POST", &other, ath.clone())), None] {
        let err = grpc.get_my_org(call(proof)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert_eq!(error_id(&err), "AUTH-Dpop01");
        let challenge = err
            .metadata()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            challenge.starts_with("DPoP error=\"invalid_dpop_proof\""),
            "{challenge}"
        );
    }

    // Connect: the same htu (the method path), the proof in the `dpop` header.
    let connect = |proof: String| {
        app.http
            .post(format!("{}{GET_MY_ORG}", app.base))
            .header("content-type", "application/json")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .body("{}")
            .send()
    };
    let resp = connect(key.dpop_proof("POST", &htu, ath.clone()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = connect(key.dpop_proof("GET", &htu, ath.clone()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_dpop_proof")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "unauthenticated", "{body}");
}

/// Token requests with bad proofs: `invalid_dpop_proof`, 400, never a token.
#[tokio::test]
async fn the_token_endpoint_refuses_bad_proofs() {
    let app = TestApp::spawn_with(|c| c.dpop_nonce = NonceMode::Off).await;
    let key = TestKey::new("ES256");
    let url = format!("{}/oauth/v2/token", app.services.settings.issuer);
    let request = |proofs: Vec<String>| {
        let mut req = app.http.post(format!("{}/oauth/v2/token", app.base));
        for p in proofs {
            req = req.header("DPoP", p);
        }
        req.form(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &app.assertion(&app.admin_key, json!({}))),
            ("scope", API_SCOPE),
        ])
        .send()
    };
    // Without nonces, one request: a bound token, and the JWK thumbprint it is bound to.
    let good = key.dpop_proof("POST", &url, json!({}));
    let resp = request(vec![good.clone()]).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("dpop-nonce").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");

    let mut private = key.jwk();
    private["d"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let claims = json!({"jti": unique("p"), "htm": "POST", "htu": url, "iat": now()});
    let unsigned = |alg: &str| {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let h = json!({"typ": "dpop+jwt", "alg": alg, "jwk": key.jwk()});
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![good], "already used"),
        (
            vec![key.sign_with_header(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
                &claims,
            )],
            "jwk is not accepted",
        ),
        (vec![unsigned("none")], "never none or HMAC"),
        (vec![unsigned("HS256")], "never none or HMAC"),
        (
            vec![key.dpop_proof("POST", &url, json!({"iat": now() + 3600}))],
            "in the future",
        ),
        (
            // (The proofs are made before the first request: by the time this one is
            // checked, a second or more may have passed.)
            vec![key.dpop_proof("POST", &url, json!({"iat": now() - 3600}))],
            "s ago; proofs are accepted for 300s",
        ),
        (
            vec![key.dpop_proof("POST", &format!("{url}?x=1"), json!({}))],
            "query or fragment",
        ),
        (
            vec![key.dpop_proof("POST", &format!("{url}#f"), json!({}))],
            "query or fragment",
        ),
        (vec![key.dpop_proof("GET", &url, json!({}))], "htm is GET"),
        (
            vec![key.sign_with_header(
                &json!({"typ": "JWT", "alg": "ES256", "jwk": key.jwk()}),
                &claims,
            )],
            "typ must be dpop+jwt",
        ),
        (vec!["garbage".into()], "not a valid JWT"),
        (
            vec![
                key.dpop_proof("POST", &url, json!({})),
                key.dpop_proof("POST", &url, json!({})),
            ],
            "more than one",
        ),
    ];
    for (proofs, says) in cases {
        let resp = request(proofs).await.unwrap();
        assert_eq!(resp.status(), 400, "{says}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_dpop_proof", "{says}: {body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(says), "{says}: {description}");
    }
}

/// Nonces: a stale or foreign nonce is answered with a current one; `all` asks for it on the
/// API too; a second process accepts the first one's nonces and refuses its spent proofs.
#[tokio::test]
async fn nonces_and_replays_hold_across_processes() {
    let app = TestApp::spawn_with(|c| c.dpop_nonce = NonceMode::All).await;
    let twin = app.spawn_on_same_database().await;
    let key = TestKey::new("ES256");
    let (token, nonce) = app.dpop_token_for(&app.admin_key, &key).await;

    let token_url = format!("{}/oauth/v2/token", app.services.settings.issuer);
    let stale = key.dpop_proof(
        "POST",
        &token_url,
        json!({"nonce": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
    );
    let resp = twin
        .http
        .post(format!("{}/oauth/v2/token", twin.base))
        .header("DPoP", stale)
        .form(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &twin.assertion(&app.admin_key, json!({}))),
            ("scope", API_SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("dpop-nonce").is_some());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not current")
    );

    // On the API in `all` mode: without a nonce, 401 use_dpop_nonce and the nonce to use.
    let url = rest_url(&app);
    let ath = token_hash(&token);
    let dpop = format!("DPoP {token}");
    let (status, challenge, offered, _) = my_org(
        &app,
        &dpop,
        &[key.dpop_proof("GET", &url, json!({"ath": ath}))],
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        challenge.starts_with("DPoP error=\"use_dpop_nonce\""),
        "{challenge}"
    );
    let offered = offered.expect("a DPoP-Nonce header");
    assert_eq!(offered, nonce, "one nonce per period, in every process");

    // The twin accepts the proof with the nonce; the first process then refuses its replay.
    let proof = key.dpop_proof("GET", &url, json!({"ath": ath, "nonce": offered}));
    let twin_dpop = format!("DPoP {token}");
    let (status, _, _, body) = my_org(&twin, &twin_dpop, std::slice::from_ref(&proof)).await;
    assert_eq!(status, 200, "{body}");
    let (status, challenge, _, body) = my_org(&app, &dpop, &[proof]).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
    assert!(body["message"].as_str().unwrap().contains("already used"));

    // The v2 API keeps the challenge and the nonce under its own error id.
    let url = format!("{}/v2/users/keys/search", app.services.settings.issuer);
    let resp = app
        .http
        .post(format!("{}/v2/users/keys/search", app.base))
        .header("authorization", &dpop)
        .header("DPoP", key.dpop_proof("POST", &url, json!({"ath": ath})))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let challenge = header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("DPoP error=\"use_dpop_nonce\""),
        "{challenge}"
    );
    assert_eq!(header("dpop-nonce").as_deref(), Some(nonce.as_str()));
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().ends_with("(AUTH-7fs1e)"),
        "{body}"
    );
}

/// Every 401 of the APIs names the schemes it takes (RFC 6750 §3, RFC 9449 §7.1), on v1 and
/// v2 alike: `invalid_token` under the scheme the token came with, both schemes when none came.
#[tokio::test]
async fn every_refusal_of_a_token_carries_a_challenge() {
    let app = TestApp::spawn().await;
    let key = TestKey::new("ES256");
    let (token, _) = app.dpop_token_for(&app.admin_key, &key).await;
    let plain = app.admin_token().await;
    let url = rest_url(&app);
    // Revoke both, so that each is a token that no longer works.
    for t in [&token, &plain] {
        let assertion = app.assertion(&app.admin_key, json!({}));
        let resp = app
            .http
            .post(format!("{}/oauth/v2/revoke", app.base))
            .form(&[
                ("token", t.as_str()),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let proof = key.dpop_proof("GET", &url, json!({"ath": token_hash(&token)}));
    let cases = [
        (
            format!("DPoP {token}"),
            vec![proof],
            "DPoP error=\"invalid_token\"",
        ),
        (
            format!("Bearer {plain}"),
            vec![],
            "Bearer error=\"invalid_token\"",
        ),
        ("Basic abc".to_owned(), vec![], "Bearer, DPoP algs=\""),
    ];
    for (authorization, proofs, starts) in cases {
        let (status, challenge, _, body) = my_org(&app, &authorization, &proofs).await;
        assert_eq!(status, 401, "{authorization}: {body}");
        assert!(
            challenge.starts_with(starts),
            "{authorization}: {challenge}"
        );
        assert!(
            challenge.contains("algs=\"ES256 EdDSA Ed25519"),
            "{challenge}"
        );
    }
    // No authorization header at all, on v2.
    let resp = app
        .http
        .post(format!("{}/v2/users/keys/search", app.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer, DPoP algs="), "{challenge}");
}

/// JWT access tokens carry the binding as `cnf.jkt` (RFC 9449 §6.1).
#[tokio::test]
async fn jwt_access_tokens_carry_the_thumbprint() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, key_file) = app.member_with_key(&admin, 1, "ORG_OWNER").await;
    let key = TestKey::new("EdDSA");
    let (token, _) = app.dpop_token_for(&key_file, &key).await;
    let claims = token.split('.').nth(1).expect("a JWT access token");
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint());
    let url = rest_url(&app);
    let proof = key.dpop_proof("GET", &url, json!({"ath": token_hash(&token)}));
    assert_eq!(
        my_org(&app, &format!("DPoP {token}"), &[proof]).await.0,
        200
    );
    // Introspection says the token is DPoP-bound, and to which key (RFC 9449 §6.2); a plain
    // token stays Bearer without cnf.
    let (pid, aid, _, _) = app.project_with_app(&admin, 1).await;
    let app_key = app.app_key(&admin, &pid, &aid).await;
    let scope = format!("{API_SCOPE} urn:zitadel:iam:org:project:id:{pid}:aud");
    let (bound, _) = app.dpop_token_with_scope(&key_file, &key, &scope).await;
    let (status, answer) = app.introspect_as(&app_key, &bound).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["token_type"], "DPoP");
    assert_eq!(answer["cnf"]["jkt"], key.thumbprint());
    let (_, plain_answer) = app.grant(&key_file, &scope).await;
    let plain_token = plain_answer["access_token"].as_str().unwrap();
    let (_, answer) = app.introspect_as(&app_key, plain_token).await;
    assert_eq!(
        (answer["active"].as_bool(), answer["token_type"].as_str()),
        (Some(true), Some("Bearer"))
    );
    assert!(answer.get("cnf").is_none(), "{answer}");
    // A plain JWT access token has no cnf.
    let plain = app.token_for(&key_file).await;
    let claims = plain.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    assert!(claims.get("cnf").is_none());
}
