//! The server's token-signing keys: JWKS and discovery from memory, keys bound to their rows
//! and checked against their public keys, the operator's rotation command, and break-glass
//! key expiry.
use std::time::{Duration, Instant};

use authn_keys::{
    app::App,
    config::Config,
    domain::keypair::PrivateKey,
    service::signing::{self, MasterKey},
    storage::{entity::signing_key, repo},
};
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::Value;

use crate::helpers::*;

const MASTER_KEY: &str = "test-master-key-0123456789abcdef";

/// GET `path`: (status, Cache-Control, JSON body).
async fn get(app: &TestApp, path: &str) -> (u16, String, Value) {
    let resp = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, cache, resp.json().await.unwrap())
}

/// The kids the JWKS publishes, newest first.
async fn published_kids(app: &TestApp) -> Vec<String> {
    let (status, _, jwks) = get(app, "/oauth/v2/keys").await;
    assert_eq!(status, 200, "{jwks}");
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// The kid of a freshly issued ID token: the key the server signs with now.
async fn signing_kid(app: &TestApp) -> String {
    let (status, body) = app.grant(&app.admin_key, "openid").await;
    assert_eq!(status, 200, "{body}");
    let header = body["id_token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    let header: Value = {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
    };
    header["kid"].as_str().unwrap().to_owned()
}

/// Polls `check` until it yields a value, for at most 20 s (far beyond the 1 s bound, for
/// busy machines).
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the running server has finished a refresh that began after this call.
async fn refreshed(app: &TestApp) {
    // The first read counted may have started earlier; the third began after the second
    // refresh had finished, which itself began after this call.
    let start = app.services.signing.database_reads();
    eventually("three refreshes", || async {
        (app.services.signing.database_reads() >= start + 3).then_some(())
    })
    .await;
}

async fn rows(app: &TestApp) -> Vec<repo::SigningKeyRow> {
    repo::list_signing_keys(&app.services.db).await.unwrap()
}

async fn set_row(app: &TestApp, id: &str, enc: Option<Vec<u8>>, public: Option<String>) {
    let mut row = signing_key::ActiveModel {
        id: Set(id.to_owned()),
        ..Default::default()
    };
    if let Some(enc) = enc {
        row.private_key_enc = Set(enc);
    }
    if let Some(public) = public {
        row.public_key = Set(public);
    }
    signing_key::Entity::update(row)
        .exec(&app.services.db)
        .await
        .unwrap();
}

/// A new row, newer than every other, with the given encrypted private key and public key.
async fn insert_row(app: &TestApp, id: &str, enc: Vec<u8>, public: String) {
    let newest = rows(app).await[0].created_at;
    repo::insert_signing_key(
        &app.services.db,
        &repo::SigningKeyRow {
            id: id.to_owned(),
            algorithm: "RS256".into(),
            public_key: public,
            private_key_enc: enc,
            created_at: newest + chrono::Duration::seconds(1),
        },
    )
    .await
    .unwrap();
}

/// A server start on `app`'s database: where the signing keys are loaded and checked.
async fn start_again(app: &TestApp) -> Result<App, authn_keys::error::Error> {
    let dir = tempfile::tempdir().unwrap();
    App::build(Config::for_tests(
        &app.db_url,
        dir.path().join("admin.json"),
    ))
    .await
}

fn master() -> MasterKey {
    MasterKey::parse(MASTER_KEY).unwrap()
}

/// A key pair made here: (PKCS#8 DER, public PEM).
fn key_pair() -> (Vec<u8>, String) {
    let key = PrivateKey::generate(2048).unwrap();
    let der = key.to_pkcs8_der().unwrap().expose().to_vec();
    (der, key.public_key().to_pkix_pem().unwrap())
}

/// `authn-keys <args>` on `app`'s database.
async fn cli(app: &TestApp, master_key: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_authn-keys"));
    cmd.args(args)
        .env("AUTHN_KEYS_DATABASE_URL", &app.db_url)
        .env("AUTHN_KEYS_MASTER_KEY", master_key)
        .env("AUTHN_KEYS_KEY_POOL_SIZE", "0")
        .env("RUST_LOG", "warn");
    output_of(cmd).await
}

#[tokio::test]
async fn jwks_and_discovery_are_served_from_memory() {
    let app = TestApp::spawn().await;
    let (status, cache, first) = get(&app, "/oauth/v2/keys").await;
    assert_eq!(status, 200);
    assert_eq!(cache, "public, max-age=60");
    let k0 = first["keys"][0]["kid"].as_str().unwrap().to_owned();

    // Requests read memory; only the once-a-second refresh reads the database.
    let reads = app.services.signing.database_reads();
    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(get(&app, "/oauth/v2/keys").await.2, first);
    }
    let secs = started.elapsed().as_secs();
    let extra = app.services.signing.database_reads() - reads;
    assert!(
        extra <= secs + 1,
        "{extra} database reads in {secs} s for 100 JWKS requests"
    );

    // A rotation in this process is published at once.
    app.services.signing.rotate(true).await.unwrap();
    let k1 = app.services.signing.current().kid.clone();
    assert_ne!(k1, k0);
    assert_eq!(published_kids(&app).await, [k1.clone(), k0.clone()]);

    let (status, cache, discovery) = get(&app, "/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(cache, "public, max-age=3600");
    assert_eq!(discovery["issuer"], app.base.as_str());

    // With the database gone, both are still served.
    app.services.db.clone().close().await.unwrap();
    assert_eq!(published_kids(&app).await, [k1, k0]);
    let (status, _, again) = get(&app, "/.well-known/openid-configuration").await;
    assert_eq!((status, again), (200, discovery));
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_is_refused() {
    let app = TestApp::spawn().await;
    app.services.signing.rotate(true).await.unwrap();
    let all = rows(&app).await;
    let [k1, k0] = &all[..] else {
        panic!("two keys")
    };
    assert_eq!(signing_kid(&app).await, k1.id);

    // A running server does not switch to a newer row holding another row's ciphertext, and
    // does not publish it.
    let moved = "9000000000000000001";
    insert_row(
        &app,
        moved,
        k0.private_key_enc.clone(),
        k0.public_key.clone(),
    )
    .await;
    refreshed(&app).await;
    assert_eq!(signing_kid(&app).await, k1.id);
    assert!(!published_kids(&app).await.iter().any(|k| k == moved));
    // A start refuses it.
    let err = start_again(&app).await.err().expect("the start is refused");
    assert_eq!(err.id, "SIGN-Dec01", "{err:?}");
    assert!(err.message.contains(moved), "{}", err.message);

    // The same for the current key's row, its ciphertext replaced by the older key's.
    signing_key::Entity::delete_by_id(moved.to_owned())
        .exec(&app.services.db)
        .await
        .unwrap();
    set_row(&app, &k1.id, Some(k0.private_key_enc.clone()), None).await;
    let err = start_again(&app).await.err().expect("the start is refused");
    assert_eq!(err.id, "SIGN-Dec01", "{err:?}");
    assert!(err.message.contains(&k1.id), "{}", err.message);
}

#[tokio::test]
async fn a_private_key_not_matching_its_public_key_is_refused() {
    let app = TestApp::spawn().await;
    let k0 = rows(&app).await[0].id.clone();

    // A newer row sealed correctly for its id, but whose stored public key is another key's:
    // never used, never published.
    let (der, _) = key_pair();
    let (_, other_public) = key_pair();
    let kid = "9000000000000000002";
    let enc = signing::seal(&master(), kid, &der).unwrap();
    insert_row(&app, kid, enc, other_public.clone()).await;
    refreshed(&app).await;
    assert_eq!(signing_kid(&app).await, k0);
    assert_eq!(published_kids(&app).await, vec![k0.clone()]);
    let err = start_again(&app).await.err().expect("the start is refused");
    assert_eq!(err.id, "SIGN-Mism1", "{err:?}");

    // The same with the current key's own row altered.
    signing_key::Entity::delete_by_id(kid.to_owned())
        .exec(&app.services.db)
        .await
        .unwrap();
    start_again(&app)
        .await
        .expect("starts once the bad row is gone");
    set_row(&app, &k0, None, Some(other_public)).await;
    let err = start_again(&app).await.err().expect("the start is refused");
    assert_eq!(err.id, "SIGN-Mism1", "{err:?}");
}

#[tokio::test]
async fn keys_written_without_associated_data_still_load_and_are_rebound() {
    let app = TestApp::spawn().await;
    // Sealed as earlier versions did: no associated data.
    let (der, public) = key_pair();
    let kid = app.services.ids.next_id();
    let old = master().encrypt(&der, b"").unwrap();
    insert_row(&app, &kid, old.clone(), public).await;

    // The running server picks it up and signs with it.
    eventually("the server signs with the old-style key", || async {
        (signing_kid(&app).await == kid).then_some(())
    })
    .await;
    // And a new start loads it.
    let again = start_again(&app).await.expect("starts");
    assert_eq!(again.services.signing.current().kid, kid);

    // Re-encrypted bound to its id.
    let row = repo::find_signing_key(&app.services.db, &kid)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(row.private_key_enc, old);
    let bound = master()
        .decrypt(&row.private_key_enc, &signing::associated_data(&kid))
        .expect("bound to its id");
    assert_eq!(bound.as_slice(), der.as_slice());
}

#[tokio::test]
async fn rotate_signing_key_command() {
    let app = TestApp::spawn().await;
    let k0 = published_kids(&app).await[0].clone();

    // A master key that opens none of the keys is refused, and nothing is written.
    let wrong = cli(
        &app,
        "another-master-key-0123456789abc",
        &["rotate-signing-key"],
    )
    .await;
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("SIGN-Mkey1"),
        "{wrong:?}"
    );
    assert_eq!(rows(&app).await.len(), 1);

    // Default: the new key signs, the old one stays published.
    let done = cli(&app, MASTER_KEY, &["rotate-signing-key"]).await;
    assert!(done.status.success(), "{done:?}");
    let k1 = rows(&app).await[0].id.clone();
    assert_ne!(k1, k0);
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(said.contains(&k1) && said.contains(&k0), "{said}");
    eventually("the running server signs with the new key", || async {
        (signing_kid(&app).await == k1).then_some(())
    })
    .await;
    assert_eq!(published_kids(&app).await, [k1.clone(), k0.clone()]);

    // --drop-old: only the new key is left, published and signing.
    let done = cli(&app, MASTER_KEY, &["rotate-signing-key", "--drop-old"]).await;
    assert!(done.status.success(), "{done:?}");
    let left: Vec<String> = rows(&app).await.into_iter().map(|r| r.id).collect();
    let [k2] = &left[..] else {
        panic!("only the new key is left: {left:?}")
    };
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(
        said.contains(k2.as_str()) && said.contains(&k1) && said.contains(&k0),
        "{said}"
    );
    eventually("the dropped keys are withdrawn", || async {
        (published_kids(&app).await == [k2.clone()]).then_some(())
    })
    .await;
    eventually("the running server signs with the new key", || async {
        (signing_kid(&app).await == *k2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn break_glass_keys_expire_after_a_day_by_default() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let expiry = async |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec!["admin-key", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let done = cli(&app, MASTER_KEY, &args).await;
        assert!(done.status.success(), "{done:?}");
        let file = KeyFile::parse(&std::fs::read(&out).unwrap());
        let at = chrono::DateTime::parse_from_rfc3339(&file.expiration_date.unwrap())
            .unwrap()
            .to_utc();
        let said = String::from_utf8_lossy(&done.stdout).into_owned();
        assert!(
            said.contains(&at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "the expiry is printed: {said}"
        );
        at - chrono::Utc::now()
    };
    let near = |left: chrono::Duration, want: chrono::Duration| {
        (left - want).abs() < chrono::Duration::minutes(10)
    };
    let left = expiry("default.json", &[]).await;
    assert!(near(left, chrono::Duration::hours(24)), "{left}");
    let left = expiry("week.json", &["--expiration", "7d"]).await;
    assert!(near(left, chrono::Duration::days(7)), "{left}");
    let left = expiry("dated.json", &["--expiration", "2099-01-01T00:00:00Z"]).await;
    assert!(left > chrono::Duration::days(365 * 50), "{left}");

    let bad = dir.path().join("bad.json");
    let refused = cli(
        &app,
        MASTER_KEY,
        &[
            "admin-key",
            "--out",
            bad.to_str().unwrap(),
            "--expiration",
            "soon",
        ],
    )
    .await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("RFC 3339"),
        "{refused:?}"
    );
    assert!(!bad.exists());
}
