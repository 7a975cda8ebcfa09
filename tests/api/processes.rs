//! Two server processes (the real binary, twice) on one PostgreSQL or MySQL database: both started at
//! once on an empty database leave one instance, one admin and one schema; a key added through
//! one is read, used and removed through the other; a token issued by one is accepted, and
//! after revocation refused, by the other; ids minted concurrently by both never collide.
use std::{collections::HashSet, time::Duration};

use serde_json::{Value, json};

use crate::helpers::*;

struct Server {
    child: std::process::Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn rest(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn two_processes_share_one_database() {
    let Some(server) = database_server() else {
        skip("needs PostgreSQL or MySQL (DATABASE_URL unset): SQLite is one process's");
        return;
    };
    let db_url = fresh_database(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let issuer = "http://authn-keys.test";
    // Both at once, on the empty database.
    let mut servers = Vec::new();
    for name in ["a", "b"] {
        let addr = format!("127.0.0.1:{}", free_port());
        let own = dir.path().join(name);
        std::fs::create_dir(&own).unwrap();
        let child = server_process(
            &own,
            &addr,
            &[
                ("AUTHN_KEYS_DATABASE_URL", &db_url),
                ("AUTHN_KEYS_MASTER_KEY", "test-master-key-0123456789abcdef"),
                ("AUTHN_KEYS_EXTERNAL_URL", issuer),
            ],
            std::process::Stdio::null(),
        );
        servers.push((own, addr, child));
    }
    let mut up = Vec::new();
    let http = reqwest::Client::new();
    for (own, addr, child) in servers {
        let base = format!("http://{addr}");
        // The port is bound before the database is opened: wait for answers, not the socket.
        let mut serving = false;
        for _ in 0..300 {
            if http.get(format!("{base}/healthz")).send().await.is_ok() {
                serving = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(serving, "{base} did not start");
        up.push((own, Server { child, base }));
    }
    // One of them made the admin and wrote its key file; the other found the instance.
    let files: Vec<_> = up
        .iter()
        .map(|(own, _)| own.join("admin.json"))
        .filter(|f| f.exists())
        .collect();
    assert_eq!(files.len(), 1, "exactly one admin key file");
    let admin_key = KeyFile::parse(&std::fs::read(&files[0]).unwrap());
    let db = authn_keys::storage::connect(&db_url, 1).await.unwrap();
    use authn_keys::storage::ConnectionTrait;
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    sql,
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        }
    };
    assert_eq!(count("SELECT COUNT(*) FROM instance").await, 1);
    assert_eq!(count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(count("SELECT COUNT(*) FROM instance_members").await, 1);
    let migrations = count("SELECT COUNT(*) FROM seaql_migrations").await;
    assert_eq!(
        count("SELECT COUNT(DISTINCT version) FROM seaql_migrations").await,
        migrations,
        "every migration applied once"
    );

    let (a, b) = (&up[0].1, &up[1].1);
    let token_at = |server: &Server, key: &KeyFile| {
        let sub = key.subject();
        let claims = json!({"iss": sub, "sub": sub, "aud": issuer, "iat": now(), "exp": now() + 300, "jti": unique("jti")});
        let assertion = sign_jwt("RS256", &key.key_id, &claims, &key.private_key());
        let (http, url) = (http.clone(), format!("{}/oauth/v2/token", server.base));
        async move {
            let resp = http
                .post(url)
                .form(&[
                    ("grant_type", JWT_BEARER),
                    ("assertion", assertion.as_str()),
                    ("scope", "openid urn:zitadel:iam:org:project:id:zitadel:aud"),
                ])
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (
                status,
                body["access_token"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let (status, admin_a) = token_at(a, &admin_key).await;
    assert_eq!(status, 200);

    // A key added through A, with a role for its user, is read and used through B.
    let (_, user) = rest(
        &http,
        reqwest::Method::POST,
        format!("{}/management/v1/users/machine", a.base),
        &admin_a,
        Some(json!({"userName": unique("shared"), "name": "shared"})),
    )
    .await;
    let user_id = user["userId"].as_str().unwrap().to_owned();
    let (status, _) = rest(
        &http,
        reqwest::Method::POST,
        format!("{}/management/v1/orgs/me/members", a.base),
        &admin_a,
        Some(json!({"userId": user_id, "roles": ["ORG_USER_VIEWER"]})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, added) = rest(
        &http,
        reqwest::Method::POST,
        format!("{}/management/v1/users/{user_id}/keys", a.base),
        &admin_a,
        Some(json!({"type": "KEY_TYPE_JSON"})),
    )
    .await;
    let key_id = added["keyId"].as_str().unwrap().to_owned();
    let key = KeyFile::parse(
        &base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            added["keyDetails"].as_str().unwrap(),
        )
        .unwrap(),
    );
    let (status, got) = rest(
        &http,
        reqwest::Method::GET,
        format!("{}/management/v1/users/{user_id}/keys/{key_id}", b.base),
        &admin_a,
        None,
    )
    .await;
    assert_eq!(status, 200, "{got}");
    // A token issued by B is accepted by A.
    let (status, user_token) = token_at(b, &key).await;
    assert_eq!(status, 200);
    let (status, _) = rest(
        &http,
        reqwest::Method::GET,
        format!("{}/management/v1/orgs/me", a.base),
        &user_token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    // Removed through B: refused by A (at once or within the 1 s cross-process bound).
    let (status, _) = rest(
        &http,
        reqwest::Method::DELETE,
        format!("{}/management/v1/users/{user_id}/keys/{key_id}", b.base),
        &admin_a,
        None,
    )
    .await;
    assert_eq!(status, 200);
    // Within the documented second; polled for ten, for a busy machine.
    let mut refused = false;
    for _ in 0..100 {
        let (status, _) = rest(
            &http,
            reqwest::Method::GET,
            format!("{}/management/v1/orgs/me", a.base),
            &user_token,
            None,
        )
        .await;
        if status == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the other process refuses the revoked token");
    let (status, _) = token_at(a, &key).await;
    assert_eq!(
        status, 400,
        "the removed key gets no token at the other process"
    );

    // Ids minted by both at the same time never collide.
    let mut calls = Vec::new();
    for i in 0..40 {
        let server = if i % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        let (http, token) = (http.clone(), admin_a.clone());
        calls.push(tokio::spawn(async move {
            let (status, body) = rest(
                &http,
                reqwest::Method::POST,
                format!("{server}/management/v1/users/machine"),
                &token,
                Some(json!({"userName": unique("many"), "name": "many"})),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body["userId"].as_str().unwrap().to_owned()
        }));
    }
    let mut ids = HashSet::new();
    for c in calls {
        assert!(ids.insert(c.await.unwrap()), "an id was minted twice");
    }
    assert_eq!(ids.len(), 40);
}
