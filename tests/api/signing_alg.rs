//! The algorithm of the server's own signatures (`AUTHN_KEYS_SIGNING_ALGORITHM`): ID tokens
//! and JWT access tokens signed with ES256 or EdDSA verify with the key `/oauth/v2/keys`
//! publishes; a change of algorithm rotates, the JWKS publishes the old key beside the new
//! one, and tokens issued before keep verifying and working; processes given different
//! settings follow the one started last instead of taking turns.
use std::time::{Duration, Instant};

use authn_keys::{
    config::SigningAlgorithm,
    domain::{
        jwt::{Algorithm, UnverifiedJwt},
        keypair::PublicKey,
    },
    storage::repo,
};
use serde_json::{Map, Value, json};

use crate::helpers::*;

const MASTER_KEY: &str = "test-master-key-0123456789abcdef";

async fn get_json(app: &TestApp, path: &str) -> Value {
    let resp = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

/// The published keys, newest first.
async fn jwks(app: &TestApp) -> Vec<Value> {
    get_json(app, "/oauth/v2/keys").await["keys"]
        .as_array()
        .unwrap()
        .clone()
}

fn kids(keys: &[Value]) -> Vec<String> {
    keys.iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// What discovery says ID tokens are signed with.
async fn discovery_algs(app: &TestApp) -> Value {
    get_json(app, "/.well-known/openid-configuration").await["id_token_signing_alg_values_supported"]
        .clone()
}

/// Verifies `token` with the project's own JWS code against the key of `keys` its `kid`
/// names, which must be published for the token's `alg`: (kid, alg, claims).
fn verify(keys: &[Value], token: &str) -> (String, Algorithm, Map<String, Value>) {
    let jwt = UnverifiedJwt::parse(token).unwrap();
    let kid = jwt.kid().unwrap();
    let jwk = keys
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("key {kid} is not published: {keys:?}"));
    assert_eq!(jwk["alg"], jwt.header.alg.as_str(), "{jwk}");
    assert_eq!(jwt.header.typ.as_deref(), Some("JWT"));
    let key = PublicKey::from_jwk(jwk).unwrap();
    jwt.verify(&key, kid)
        .unwrap_or_else(|e| panic!("the token does not verify with key {kid}: {e}"));
    (kid.to_owned(), jwt.algorithm().unwrap(), jwt.claims.clone())
}

/// A published key's members for `alg`: its kind's public members and nothing private.
#[track_caller]
fn assert_jwk(jwk: &Value, alg: Algorithm) {
    assert_eq!(jwk["alg"], alg.as_str(), "{jwk}");
    assert_eq!(jwk["use"], "sig", "{jwk}");
    let mut members: Vec<&str> = jwk
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = match alg {
        Algorithm::RS256 => vec!["kty", "n", "e"],
        Algorithm::ES256 => vec!["kty", "crv", "x", "y"],
        Algorithm::EdDSA => vec!["kty", "crv", "x"],
        other => panic!("the server does not sign {other}"),
    };
    want.extend(["alg", "use", "kid"]);
    members.sort_unstable();
    want.sort_unstable();
    assert_eq!(members, want, "{jwk}");
    match alg {
        Algorithm::RS256 => assert_eq!(jwk["kty"], "RSA"),
        Algorithm::ES256 => assert_eq!((&jwk["kty"], &jwk["crv"]), (&json!("EC"), &json!("P-256"))),
        _ => assert_eq!(
            (&jwk["kty"], &jwk["crv"]),
            (&json!("OKP"), &json!("Ed25519"))
        ),
    }
    assert_eq!(PublicKey::from_jwk(jwk).unwrap().default_algorithm(), alg);
}

/// Whether the management API takes `token`.
async fn works_on_the_api(app: &TestApp, token: &str) -> bool {
    let (status, body) = app.rest("GET", "/orgs/me", Some(token), None, None).await;
    status == 200 && body["org"]["id"] == app.org_id.as_str()
}

/// A token request with `openid`: (access token, ID token).
async fn openid_grant(app: &TestApp, key: &KeyFile) -> (String, String) {
    let (status, body) = app.grant(key, &format!("openid {API_SCOPE}")).await;
    assert_eq!(status, 200, "{body}");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["id_token"].as_str().unwrap().to_owned(),
    )
}

/// Polls `check` for at most 20 s (the bound is about 1 s; busy machines are slower).
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server configured with `setting`: discovery names it, the JWKS publishes one key of its
/// kind, and ID tokens and JWT access tokens are signed with it and verify with that key.
async fn signs_with(setting: SigningAlgorithm) {
    let alg = setting.algorithm();
    let app = TestApp::spawn_with(|c| c.signing_algorithm = setting).await;
    assert_eq!(discovery_algs(&app).await, json!([alg.as_str()]));
    let keys = jwks(&app).await;
    let [jwk] = &keys[..] else {
        panic!("one key: {keys:?}")
    };
    assert_jwk(jwk, alg);
    let kid = app.services.signing.current().kid.clone();
    assert_eq!(jwk["kid"], kid.as_str());
    let rows = repo::list_signing_keys(&app.services.db).await.unwrap();
    assert_eq!(rows[0].algorithm, alg.as_str());

    // The admin's token is opaque; its ID token is signed.
    let (admin, id_token) = openid_grant(&app, &app.admin_key).await;
    assert_eq!(admin.matches('.').count(), 1, "an opaque token");
    let (signed_by, signed_with, claims) = verify(&keys, &id_token);
    assert_eq!((signed_by.as_str(), signed_with), (kid.as_str(), alg));
    assert_eq!(claims["sub"], app.admin_id.as_str());
    assert_eq!(claims["iss"], app.services.settings.issuer.as_str());
    assert_eq!(claims["aud"], json!([app.admin_id]));
    assert!(works_on_the_api(&app, &admin).await);

    // A user whose access tokens are JWTs: both tokens signed, the access token taken by the
    // API, the ID token not.
    let (user_id, key) = app.member_with_key(&admin, 1, "ORG_OWNER").await;
    let (access, id_token) = openid_grant(&app, &key).await;
    for token in [&access, &id_token] {
        let (signed_by, signed_with, claims) = verify(&keys, token);
        assert_eq!((signed_by.as_str(), signed_with), (kid.as_str(), alg));
        assert_eq!(claims["sub"], user_id.as_str());
    }
    assert!(works_on_the_api(&app, &access).await);
    assert!(!works_on_the_api(&app, &id_token).await);
    // A tampered token does not verify.
    let (header, rest) = access.split_once('.').unwrap();
    let (_, signature) = rest.rsplit_once('.').unwrap();
    let forged = {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let claims = json!({"sub": app.admin_id, "iss": app.services.settings.issuer});
        format!(
            "{header}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    };
    let jwt = UnverifiedJwt::parse(&forged).unwrap();
    assert!(
        jwt.verify(&PublicKey::from_jwk(jwk).unwrap(), &kid)
            .is_err()
    );

    // A restart with the same setting keeps the key.
    let app = app.restart_with(|c| c.signing_algorithm = setting).await;
    assert_eq!(kids(&jwks(&app).await), [kid]);
}

#[tokio::test]
async fn es256_signs_id_tokens_and_jwt_access_tokens() {
    signs_with(SigningAlgorithm::Es256).await;
}

#[tokio::test]
async fn eddsa_signs_id_tokens_and_jwt_access_tokens() {
    signs_with(SigningAlgorithm::EdDsa).await;
}

#[tokio::test]
async fn rs256_is_the_default() {
    let app = TestApp::spawn().await;
    assert_eq!(discovery_algs(&app).await, json!(["RS256"]));
    let keys = jwks(&app).await;
    assert_jwk(&keys[0], Algorithm::RS256);
    let (_, id_token) = openid_grant(&app, &app.admin_key).await;
    assert_eq!(verify(&keys, &id_token).1, Algorithm::RS256);
}

#[tokio::test]
async fn a_change_of_algorithm_rotates_and_tokens_issued_before_keep_verifying_and_working() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let before = jwks(&app).await;
    let [k0] = &kids(&before)[..] else {
        panic!("one key: {before:?}")
    };
    let k0 = k0.clone();
    assert_jwk(&before[0], Algorithm::RS256);
    let (_, key) = app.member_with_key(&admin, 1, "ORG_OWNER").await;
    let (old_access, old_id) = openid_grant(&app, &key).await;
    for token in [&old_access, &old_id] {
        assert_eq!(verify(&before, token).1, Algorithm::RS256);
    }

    // The same database, restarted with ES256: a new key signs, the old one stays published.
    let app = app
        .restart_with(|c| c.signing_algorithm = SigningAlgorithm::Es256)
        .await;
    // The configured algorithm first, then the old key's: its tokens are still alive.
    assert_eq!(discovery_algs(&app).await, json!(["ES256", "RS256"]));
    let after = jwks(&app).await;
    let ids = kids(&after);
    let [k1, old] = &ids[..] else {
        panic!("the new key and the old one: {after:?}")
    };
    let k1 = k1.clone();
    assert_ne!(k1, k0);
    assert_eq!(old, &k0);
    assert_jwk(&after[0], Algorithm::ES256);
    assert_eq!(after[1], before[0]);
    // Tokens issued before verify with the new key set and still work on the API.
    for token in [&old_access, &old_id] {
        assert_eq!(verify(&after, token), verify(&before, token));
    }
    assert!(works_on_the_api(&app, &old_access).await);
    assert!(works_on_the_api(&app, &admin).await);
    // New tokens are ES256, by the new key.
    let (access, id_token) = openid_grant(&app, &key).await;
    for token in [&access, &id_token] {
        let (kid, alg, _) = verify(&after, token);
        assert_eq!((kid.as_str(), alg), (k1.as_str(), Algorithm::ES256));
    }
    assert!(works_on_the_api(&app, &access).await);

    // Restarted with the same setting: no new key.
    let app = app
        .restart_with(|c| c.signing_algorithm = SigningAlgorithm::Es256)
        .await;
    assert_eq!(kids(&jwks(&app).await), [k1.clone(), k0.clone()]);

    // Then EdDSA: a third key; all three published while their tokens may live.
    let app = app
        .restart_with(|c| c.signing_algorithm = SigningAlgorithm::EdDsa)
        .await;
    assert_eq!(
        discovery_algs(&app).await,
        json!(["EdDSA", "ES256", "RS256"])
    );
    let third = jwks(&app).await;
    let ids = kids(&third);
    assert_eq!(ids.len(), 3, "{third:?}");
    assert_eq!(ids[1..], [k1.clone(), k0]);
    assert_jwk(&third[0], Algorithm::EdDSA);
    for token in [&old_access, &access] {
        verify(&third, token);
        assert!(works_on_the_api(&app, token).await);
    }
    let (_, id_token) = openid_grant(&app, &key).await;
    let (kid, alg, _) = verify(&third, &id_token);
    assert_eq!((kid.as_str(), alg), (ids[0].as_str(), Algorithm::EdDSA));
}

/// `authn-keys <args>` on `app`'s database with `env`.
async fn cli(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_authn-keys"));
    cmd.args(args)
        .env("AUTHN_KEYS_DATABASE_URL", &app.db_url)
        .env("AUTHN_KEYS_MASTER_KEY", MASTER_KEY)
        .env("AUTHN_KEYS_KEY_POOL_SIZE", "0")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    output_of(cmd).await
}

#[tokio::test]
async fn processes_with_different_algorithms_follow_the_one_started_last_instead_of_taking_turns() {
    let first = TestApp::spawn().await;
    let k0 = first.services.signing.current().kid.clone();
    let count = || async {
        repo::list_signing_keys(&first.services.db)
            .await
            .unwrap()
            .len()
    };

    // A process started later with ES256 (a rolling restart, half done) rotates at its start.
    let second = first
        .spawn_on_same_database_with(|c| c.signing_algorithm = SigningAlgorithm::Es256)
        .await;
    let k1 = second.services.signing.current().kid.clone();
    assert_ne!(k1, k0);
    assert_eq!(
        second.services.signing.current().key.algorithm(),
        Algorithm::ES256
    );
    // The first process signs with it within about a second; neither one's rotation check
    // (once a minute) makes another key.
    eventually("the first process signs with the new key", || async {
        first.services.signing.current().kid == k1
    })
    .await;
    first.services.signing.rotate(false).await.unwrap();
    second.services.signing.rotate(false).await.unwrap();
    assert_eq!(count().await, 2);
    let (_, id_token) = openid_grant(&first, &first.admin_key).await;
    let (kid, alg, _) = verify(&jwks(&first).await, &id_token);
    assert_eq!((kid, alg), (k1.clone(), Algorithm::ES256));

    // The operator's rotation makes a key of the algorithm it is given, which both follow.
    let done = cli(
        &first,
        &["rotate-signing-key"],
        &[("AUTHN_KEYS_SIGNING_ALGORITHM", "EdDSA")],
    )
    .await;
    assert!(done.status.success(), "{done:?}");
    let rows = repo::list_signing_keys(&first.services.db).await.unwrap();
    let k2 = rows[0].id.clone();
    assert_eq!(rows[0].algorithm, "EdDSA");
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(said.contains(&k2) && said.contains("EdDSA"), "{said}");
    for app in [&first, &second] {
        eventually("both processes sign with the operator's key", || async {
            app.services.signing.current().kid == k2
        })
        .await;
        app.services.signing.rotate(false).await.unwrap();
        let (_, id_token) = openid_grant(app, &app.admin_key).await;
        let (kid, alg, _) = verify(&jwks(app).await, &id_token);
        assert_eq!((kid, alg), (k2.clone(), Algorithm::EdDSA));
    }
    assert_eq!(count().await, 3);

    // A value not spelled as JWS spells it is refused before anything happens.
    for bad in ["es256", "PS256", "HS256"] {
        let refused = cli(
            &first,
            &["rotate-signing-key"],
            &[("AUTHN_KEYS_SIGNING_ALGORITHM", bad)],
        )
        .await;
        assert!(!refused.status.success());
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(
            said.contains(&format!("invalid value '{bad}'"))
                && said.contains("[possible values: RS256, ES256, EdDSA]"),
            "{said}"
        );
    }
    assert_eq!(count().await, 3);
}
