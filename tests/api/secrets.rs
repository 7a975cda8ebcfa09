//! Secrets stay out of storage and logs: a full flow runs with every log at TRACE, then the
//! database (SQLite's files, or every PostgreSQL table as text) and the log are searched for
//! each private key, key file, access token, assertion and client secret handed out.
use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use authn_keys::storage::ConnectionTrait;
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::json;

use crate::helpers::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Distinctive pieces of a secret: the whole of it and, for PEM keys, a run from the middle
/// of the base64 body (a stored or logged key would contain it in any encoding of lines).
fn needles(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_owned()];
    if secret.contains("PRIVATE KEY") {
        let body: String = secret.lines().filter(|l| !l.starts_with("-----")).collect();
        out.push(body[body.len() / 2..body.len() / 2 + 48].to_owned());
    }
    out
}

/// Everything the database holds, as bytes to search.
async fn database_contents(app: &TestApp) -> Vec<u8> {
    if let Some(path) = app.db_url.strip_prefix("sqlite://") {
        let file = path.split('?').next().unwrap();
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            if let Ok(bytes) = std::fs::read(format!("{file}{suffix}")) {
                all.extend(bytes);
            }
        }
        assert!(!all.is_empty(), "no SQLite files at {file}");
        return all;
    }
    let db = &app.services.db;
    let backend = db.get_database_backend();
    let query = |sql: String| async move {
        db.query_all_raw(sea_orm::Statement::from_string(backend, sql))
            .await
            .unwrap()
    };
    let mysql = backend == sea_orm::DbBackend::MySql;
    let tables = query(if mysql {
        "SELECT table_name AS table_name FROM information_schema.tables WHERE table_schema = DATABASE()".into()
    } else {
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'".into()
    })
    .await;
    let mut all = Vec::new();
    for row in tables {
        let table: String = row.try_get("", "table_name").unwrap();
        // Each row as one text: PostgreSQL casts a row to text; MySQL joins its columns.
        let select = if mysql {
            let columns: Vec<String> = query(format!(
                "SELECT column_name AS c FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = '{table}'"
            ))
            .await
            .iter()
            .map(|r| format!("`{}`", r.try_get::<String>("", "c").unwrap()))
            .collect();
            format!(
                "SELECT CONCAT_WS('|', {}) AS `row` FROM `{table}`",
                columns.join(", ")
            )
        } else {
            format!("SELECT t::text AS row FROM \"{table}\" t")
        };
        for r in query(select).await {
            // MySQL's join is binary where a column is (the sealed signing keys).
            let bytes = match mysql {
                true => r.try_get::<Vec<u8>>("", "row").unwrap(),
                false => r.try_get::<String>("", "row").unwrap().into_bytes(),
            };
            all.extend(bytes);
            all.push(b'\n');
        }
    }
    assert!(
        String::from_utf8_lossy(&all).contains("user.machine.key.added"),
        "the dump holds the events"
    );
    all
}

/// Runs [`full_flow_at_trace`] in a process of its own: a log subscriber for the whole
/// process (every thread, every callsite) cannot be installed beside the other tests.
#[test]
fn secrets_never_reach_the_database_or_the_log() {
    run_in_own_process("secrets::full_flow_at_trace");
}

#[tokio::test]
#[ignore = "run by secrets_never_reach_the_database_or_the_log in a process of its own"]
async fn full_flow_at_trace() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let app = TestApp::spawn().await;
    let mut secrets: Vec<String> = vec![app.admin_key.key.clone()];

    // The admin's token, through an assertion.
    let assertion = app.assertion(&app.admin_key, json!({"jti": unique("jti")}));
    let (status, body) = app
        .token_request(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &assertion),
            ("scope", &format!("openid {API_SCOPE}")),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let admin = body["access_token"].as_str().unwrap().to_owned();
    secrets.extend([assertion, admin.clone()]);

    // A JWT-token machine user with a generated key (over REST), and its tokens.
    let (_, user) = app
        .rest(
            "POST",
            "/users/machine",
            Some(&admin),
            None,
            Some(json!({"userName": unique("u"), "name": "u", "accessTokenType": "ACCESS_TOKEN_TYPE_JWT"})),
        )
        .await;
    let user_id = user["userId"].as_str().unwrap().to_owned();
    app.rest(
        "POST",
        "/orgs/me/members",
        Some(&admin),
        None,
        Some(json!({"userId": user_id, "roles": ["ORG_USER_VIEWER"]})),
    )
    .await;
    let (_, added) = app
        .rest(
            "POST",
            &format!("/users/{user_id}/keys"),
            Some(&admin),
            None,
            Some(json!({"type": "KEY_TYPE_JSON"})),
        )
        .await;
    let details = added["keyDetails"].as_str().unwrap().to_owned();
    let key = KeyFile::parse(&STANDARD.decode(&details).unwrap());
    secrets.extend([details, key.key.clone()]);
    let (pid, aid, _, _) = app.project_with_app(&admin, 1).await;
    let user_assertion = app.assertion(&key, json!({}));
    let (status, body) = app
        .token_request(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &user_assertion),
            (
                "scope",
                &format!("openid {API_SCOPE} urn:zitadel:iam:org:project:id:{pid}:aud"),
            ),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let jwt_token = body["access_token"].as_str().unwrap().to_owned();
    secrets.extend([
        user_assertion,
        jwt_token.clone(),
        body["id_token"].as_str().unwrap().to_owned(),
    ]);

    // An app key and a BASIC app's secret, both used at introspection.
    let app_key = app.app_key(&admin, &pid, &aid).await;
    secrets.push(app_key.key.clone());
    let client_assertion = app.assertion(&app_key, json!({}));
    let (_, answer) = app
        .introspect(
            &[
                ("token", jwt_token.as_str()),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", client_assertion.as_str()),
            ],
            None,
        )
        .await;
    assert_eq!(answer["active"], true, "{answer}");
    secrets.push(client_assertion);
    let (_, _, client_id, client_secret) = app.project_with_app(&admin, 0).await;
    let (status, _) = app
        .introspect(
            &[("token", admin.as_str())],
            Some((&client_id, &client_secret)),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .introspect(
            &[("token", admin.as_str())],
            Some((&client_id, "a-wrong-secret-guess")),
        )
        .await;
    assert_eq!(status, 401);
    secrets.extend([client_secret, "a-wrong-secret-guess".to_owned()]);
    // A refused grant logs its reason, not the assertion.
    let refused = app.assertion(&key, json!({"exp": now() - 600}));
    assert_eq!(
        app.token_request(&[("grant_type", JWT_BEARER), ("assertion", &refused)])
            .await
            .0,
        400
    );
    secrets.push(refused);

    let stored = database_contents(&app).await;
    let logged = log.0.lock().unwrap().clone();
    assert!(
        String::from_utf8_lossy(&logged).contains("access token issued"),
        "the log was captured"
    );
    // The search finds what is stored: the admin's public key is, in its PEM form.
    let public = {
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        let pem = app
            .admin_key
            .private_key()
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        pem.lines().nth(2).unwrap().to_owned()
    };
    assert!(
        stored.windows(public.len()).any(|w| w == public.as_bytes()),
        "positive control: a stored public key is found"
    );
    for secret in &secrets {
        for needle in needles(secret) {
            let found = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(
                !found(&stored),
                "stored: {}…",
                &needle[..needle.len().min(24)]
            );
            assert!(
                !found(&logged),
                "logged: {}…",
                &needle[..needle.len().min(24)]
            );
        }
    }
}
