//! Keyless machine identity (authnkeys.v1 TrustService): tokens of a local issuer shaped as
//! Kubernetes, GitHub Actions and SPIFFE mint them, exchanged through both grant forms;
//! rotation at the issuer without an admin call; removal ending the tokens; every failed
//! check named; hostile issuers getting nowhere.
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use authn_keys::{
    domain::keypair::PublicKey,
    proto::zitadel::management::v1::{AddMachineUserRequest, AddOrgMemberRequest},
};
use axum::{extract::State, routing::get};
use rsa::{RsaPrivateKey, pkcs8::EncodePublicKey};
use serde_json::{Value, json};

use crate::helpers::*;

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// A signing key of the local issuer.
enum IssuerKey {
    Rsa(Box<RsaPrivateKey>),
    Other(TestKey),
}

impl IssuerKey {
    fn rsa() -> IssuerKey {
        IssuerKey::Rsa(Box::new(
            RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap(),
        ))
    }

    fn jwk(&self, kid: &str) -> Value {
        let pem = match self {
            IssuerKey::Rsa(k) => k
                .to_public_key()
                .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap(),
            IssuerKey::Other(k) => k.public_pem.clone(),
        };
        let mut jwk = PublicKey::from_pkix_pem(pem.as_bytes()).unwrap().jwk();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(match self {
            IssuerKey::Rsa(_) => "RS256",
            IssuerKey::Other(k) => k.alg,
        });
        jwk
    }

    fn sign(&self, kid: &str, claims: &Value) -> String {
        match self {
            IssuerKey::Rsa(k) => sign_jwt("RS256", kid, claims, k),
            IssuerKey::Other(k) => k.sign(kid, claims),
        }
    }
}

/// An OIDC issuer on 127.0.0.1: discovery and a key set it can rotate.
#[derive(Clone)]
struct Issuer {
    url: String,
    jwks: Arc<Mutex<Value>>,
    key_fetches: Arc<AtomicUsize>,
}

async fn discovery(State(i): State<Issuer>) -> axum::Json<Value> {
    axum::Json(json!({"issuer": i.url, "jwks_uri": format!("{}/keys", i.url)}))
}

async fn keys(State(i): State<Issuer>) -> axum::Json<Value> {
    i.key_fetches.fetch_add(1, Ordering::SeqCst);
    axum::Json(i.jwks.lock().unwrap().clone())
}

impl Issuer {
    /// Serves under `path` (`""` or `/gh`), publishing `jwks`.
    async fn start(path: &str, jwks: Value) -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = Issuer {
            url: format!("http://{}{path}", listener.local_addr().unwrap()),
            jwks: Arc::new(Mutex::new(jwks)),
            key_fetches: Arc::default(),
        };
        let routes = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/keys", get(keys))
            .with_state(issuer.clone());
        let app = if path.is_empty() {
            routes
        } else {
            axum::Router::new().nest(path, routes)
        };
        tokio::spawn(async move { axum::serve(listener, app).await });
        issuer
    }

    fn publish(&self, jwks: Value) {
        *self.jwks.lock().unwrap() = jwks;
    }
}

fn insecure(c: &mut authn_keys::config::Config) {
    c.outbound_allow_insecure = true;
}

/// A machine user of the default org that may read the org's users (ORG_USER_VIEWER).
async fn workload_user(app: &TestApp, admin: &str) -> String {
    let mut c = app.grpc().await;
    let id = c
        .add_machine_user(authed(
            admin,
            None,
            AddMachineUserRequest {
                user_name: unique("workload"),
                name: "workload".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user_id;
    c.add_org_member(authed(
        admin,
        None,
        AddOrgMemberRequest {
            user_id: id.clone(),
            roles: vec!["ORG_USER_VIEWER".into()],
        },
    ))
    .await
    .unwrap();
    id
}

async fn add_trust(app: &TestApp, admin: &str, body: Value) -> (u16, Value) {
    own_rest(app, "POST", "/v1/trusts", admin, Some(body)).await
}

async fn exchange(app: &TestApp, token: &str) -> (u16, Value) {
    app.token_request(&[
        ("grant_type", EXCHANGE),
        ("subject_token", token),
        ("subject_token_type", JWT_TYPE),
        ("scope", API_SCOPE),
    ])
    .await
}

async fn jwt_bearer(app: &TestApp, token: &str) -> (u16, Value) {
    app.token_request(&[
        ("grant_type", JWT_BEARER),
        ("assertion", token),
        ("scope", API_SCOPE),
    ])
    .await
}

/// The access token works on the API as its user.
async fn works_on_the_api(app: &TestApp, access_token: &str, user: &str) {
    let (status, body) = app
        .rest(
            "GET",
            &format!("/users/{user}"),
            Some(access_token),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["id"], json!(user), "{body}");
}

fn description(body: &Value) -> String {
    body["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_kubernetes_service_account_token_gets_an_access_token_both_ways_and_rotation_needs_no_admin()
 {
    let app = TestApp::spawn_with(insecure).await;
    let admin = app.admin_token().await;
    let user = workload_user(&app, &admin).await;
    let k1 = IssuerKey::rsa();
    let issuer = Issuer::start("", json!({"keys": [k1.jwk("k1")]})).await;
    let subject = "system:serviceaccount:prod:deployer";
    let (status, body) = add_trust(
        &app,
        &admin,
        json!({"issuer": issuer.url, "userId": user, "subject": subject, "audience": "authn-keys"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let trust_id = body["trust"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["trust"]["subject"], json!(subject));

    // A projected service-account token, as the kubelet writes it.
    let sa_token = |key: &IssuerKey, kid: &str| {
        key.sign(
            kid,
            &json!({
                "iss": issuer.url, "sub": subject, "aud": ["authn-keys"],
                "exp": now() + 600, "iat": now(), "nbf": now(), "jti": unique("jti"),
                "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "deployer", "uid": "5f1c"}}
            }),
        )
    };
    let token = sa_token(&k1, "k1");
    let (status, body) = jwt_bearer(&app, &token).await;
    assert_eq!(status, 200, "{body}");
    works_on_the_api(&app, body["access_token"].as_str().unwrap(), &user).await;
    // The same token again: its jti was spent.
    let (status, body) = jwt_bearer(&app, &token).await;
    assert_eq!(status, 400, "{body}");
    assert!(description(&body).contains("already exchanged"), "{body}");

    // RFC 8693, answered with issued_token_type.
    let (status, body) = exchange(&app, &sa_token(&k1, "k1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["issued_token_type"],
        json!("urn:ietf:params:oauth:token-type:access_token")
    );
    let exchanged = body["access_token"].as_str().unwrap().to_owned();
    works_on_the_api(&app, &exchanged, &user).await;
    let fetches = issuer.key_fetches.load(Ordering::SeqCst);
    assert_eq!(fetches, 1, "the issuer's keys are cached");

    // The cluster rotates its signing key: the next token's new kid is fetched, no admin call.
    let k2 = IssuerKey::rsa();
    issuer.publish(json!({"keys": [k1.jwk("k1"), k2.jwk("k2")]}));
    let (status, body) = exchange(&app, &sa_token(&k2, "k2")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(issuer.key_fetches.load(Ordering::SeqCst), 2);

    // Wrong audience, another service account, an expired token: each says which check.
    let other = k1.sign(
        "k1",
        &json!({"iss": issuer.url, "sub": subject, "aud": "kubernetes", "exp": now() + 600}),
    );
    let (status, body) = exchange(&app, &other).await;
    assert_eq!(status, 400);
    assert!(description(&body).contains("aud"), "{body}");
    let stranger = k1.sign(
        "k1",
        &json!({"iss": issuer.url, "sub": "system:serviceaccount:prod:intruder", "aud": "authn-keys", "exp": now() + 600}),
    );
    let (_, body) = exchange(&app, &stranger).await;
    assert!(description(&body).contains("sub"), "{body}");
    let expired = k1.sign(
        "k1",
        &json!({"iss": issuer.url, "sub": subject, "aud": "authn-keys", "exp": now() - 600}),
    );
    let (_, body) = exchange(&app, &expired).await;
    assert!(description(&body).contains("expired"), "{body}");
    let forged = IssuerKey::rsa().sign(
        "k1",
        &json!({"iss": issuer.url, "sub": subject, "aud": "authn-keys", "exp": now() + 600}),
    );
    let (_, body) = exchange(&app, &forged).await;
    assert!(description(&body).contains("not signed"), "{body}");

    // Removing the trust ends the tokens obtained with it, at once.
    let (status, body) = own_rest(
        &app,
        "DELETE",
        &format!("/v1/trusts/{trust_id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .rest(
            "GET",
            &format!("/users/{user}"),
            Some(&exchanged),
            None,
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, body) = exchange(&app, &sa_token(&k1, "k1")).await;
    assert_eq!(status, 400);
    assert!(description(&body).contains("trusts issuer"), "{body}");
    // The trail has both.
    let (_, trail) = own_rest(
        &app,
        "POST",
        "/v1/events/_search",
        &admin,
        Some(json!({"userId": user, "types": ["trust.added", "trust.removed"]})),
    )
    .await;
    assert_eq!(trail["totalResult"], json!("2"), "{trail}");
}

#[tokio::test]
async fn a_github_actions_token_is_held_to_its_repository_claim() {
    let app = TestApp::spawn_with(insecure).await;
    let admin = app.admin_token().await;
    let user = workload_user(&app, &admin).await;
    let key = IssuerKey::Other(TestKey::new("ES256"));
    let issuer = Issuer::start("/gh", json!({"keys": [key.jwk("gh1")]})).await;
    let (status, body) = add_trust(
        &app,
        &admin,
        json!({
            "issuer": issuer.url, "userId": user,
            "subject": "repo:acme/deploy*", "audience": "https://github.com/acme",
            "claims": {"repository": "acme/deploy"},
            "maxTokenLifetime": "600s", "capAtTokenExpiry": true
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let gh_token = |repository: &str, exp: i64| {
        key.sign(
            "gh1",
            &json!({
                "iss": issuer.url, "sub": format!("repo:{repository}:ref:refs/heads/main"),
                "aud": "https://github.com/acme", "repository": repository,
                "ref": "refs/heads/main", "workflow": "deploy", "exp": exp,
                "iat": now(), "nbf": now(), "jti": unique("gh")
            }),
        )
    };
    // Both grant forms.
    let (status, body) = jwt_bearer(&app, &gh_token("acme/deploy", now() + 300)).await;
    assert_eq!(status, 200, "{body}");
    works_on_the_api(&app, body["access_token"].as_str().unwrap(), &user).await;
    let (status, body) = exchange(&app, &gh_token("acme/deploy", now() + 300)).await;
    assert_eq!(status, 200, "{body}");
    // Capped at the outside token's expiry (300 s) under the trust's 600 s.
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!((290..=300).contains(&expires_in), "{body}");
    works_on_the_api(&app, body["access_token"].as_str().unwrap(), &user).await;
    // Another repository's token whose sub matches the prefix: the claim rule holds it off.
    let evil = key.sign(
        "gh1",
        &json!({"iss": issuer.url, "sub": "repo:acme/deploy-fork:ref:refs/heads/main",
                "aud": "https://github.com/acme", "repository": "acme/deploy-fork", "exp": now() + 300}),
    );
    let (status, body) = exchange(&app, &evil).await;
    assert_eq!(status, 400, "{body}");
    assert!(description(&body).contains("repository"), "{body}");

    // Removing the user ends its tokens and its trusts with it.
    let (status, body) = exchange(&app, &gh_token("acme/deploy", now() + 300)).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let (status, body) = app
        .rest(
            "DELETE",
            &format!("/users/{user}"),
            Some(&admin),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .rest("GET", &format!("/users/{user}"), Some(&access), None, None)
        .await;
    assert_eq!(status, 401);
    let (status, body) = exchange(&app, &gh_token("acme/deploy", now() + 300)).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_spiffe_jwt_svid_is_verified_with_an_inline_bundle() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let user = workload_user(&app, &admin).await;
    let key = IssuerKey::Other(TestKey::new("EdDSA"));
    let (status, body) = add_trust(
        &app,
        &admin,
        json!({
            "issuer": "https://spire.example.org", "userId": user,
            "subject": "spiffe://example.org/ns/prod/sa/billing", "audience": "authn-keys",
            "jwks": {"keys": [key.jwk("spire-1")]}
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A JWT-SVID carries no jti: it may be exchanged again until it expires.
    let svid = key.sign(
        "spire-1",
        &json!({"iss": "https://spire.example.org", "sub": "spiffe://example.org/ns/prod/sa/billing",
                "aud": ["authn-keys"], "exp": now() + 300, "iat": now()}),
    );
    for _ in 0..2 {
        let (status, body) = jwt_bearer(&app, &svid).await;
        assert_eq!(status, 200, "{body}");
        works_on_the_api(&app, body["access_token"].as_str().unwrap(), &user).await;
    }
}

#[tokio::test]
async fn bad_trusts_are_refused_with_the_reason() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let user = workload_user(&app, &admin).await;
    let key = IssuerKey::Other(TestKey::new("ES256"));
    let mut private = key.jwk("p");
    private["d"] = json!("c2VjcmV0");
    let base = json!({"issuer": "https://issuer.example.com", "userId": user, "subject": "svc", "audience": "authn-keys", "jwks": {"keys": [key.jwk("k")]}});
    let with = |field: &str, value: Value| {
        let mut b = base.clone();
        b[field] = value;
        b
    };
    for (body, status, says) in [
        (with("issuer", json!("not a url")), 400, "not a URL"),
        (with("subject", json!("svc:*:prod")), 400, "`*`"),
        (with("subject", json!("*")), 400, "every token"),
        (with("audience", json!("")), 400, "audience"),
        (with("jwks", json!({"keys": [private]})), 400, "private"),
        (with("jwks", json!({"keys": "none"})), 400, "jwks"),
        (with("userId", json!("no-such-user")), 404, "not found"),
        (with("claims", json!({"sub": "x"})), 400, "not as a claim"),
        // Keys fetched from an issuer that is not https (no insecure setting here).
        (
            json!({"issuer": "http://issuer.example.com", "userId": user, "subject": "svc", "audience": "a"}),
            400,
            "https",
        ),
    ] {
        let (got, answer) = add_trust(&app, &admin, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{body}: {answer}"
        );
    }
    let (status, body) = add_trust(&app, &admin, base.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = add_trust(&app, &admin, base.clone()).await;
    assert_eq!(status, 409, "a duplicate: {body}");
    // Listed and read back; another org sees none of it.
    let (status, list) = own_rest(
        &app,
        "POST",
        "/v1/trusts/_search",
        &admin,
        Some(json!({"userId": user})),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["totalResult"], json!("1"), "{list}");
    let (status, _) = own_rest(&app, "GET", "/v1/trusts/123456", &admin, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn hostile_issuers_get_nowhere() {
    let app = TestApp::spawn_with(insecure).await;
    let admin = app.admin_token().await;
    let user = workload_user(&app, &admin).await;
    // An issuer whose key set is enormous, then one that redirects to another address.
    let key = IssuerKey::Other(TestKey::new("ES256"));
    let many: Vec<Value> = (0..10_000).map(|i| key.jwk(&format!("k{i}"))).collect();
    let huge = Issuer::start("", json!({"keys": many})).await;
    let (status, body) = add_trust(
        &app,
        &admin,
        json!({"issuer": huge.url, "userId": user, "subject": "svc", "audience": "authn-keys"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = key.sign(
        "k1",
        &json!({"iss": huge.url, "sub": "svc", "aud": "authn-keys", "exp": now() + 300}),
    );
    let started = std::time::Instant::now();
    let (status, body) = exchange(&app, &token).await;
    assert_eq!(status, 400, "{body}");
    assert!(description(&body).contains("not signed"), "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // alg none is never taken.
    let none = format!(
        "{}.{}.",
        base64_url(&json!({"alg": "none", "kid": "k1"})),
        base64_url(
            &json!({"iss": huge.url, "sub": "svc", "aud": "authn-keys", "exp": now() + 300})
        )
    );
    let (status, body) = exchange(&app, &none).await;
    assert_eq!(status, 400, "{body}");
    assert!(description(&body).contains("alg none"), "{body}");
}

fn base64_url(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}
