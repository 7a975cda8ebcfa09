//! Faults a process survives: SIGKILL in the middle of a write burst leaves no partial state
//! (every key has its event, every added-and-not-removed key its row; the pool's undelivered
//! keys simply gone), SIGTERM under load drains and exits 0, and a full disk under SQLite gives
//! clear errors, writes nothing half, and heals when space is back.
use std::{collections::HashSet, time::Duration};

use authn_keys::{
    app::App,
    config::Config,
    proto::zitadel::management::v1::{management_service_client::ManagementServiceClient, *},
    storage::ConnectionTrait,
};
use base64::Engine;
use serde_json::{Value, json};

use crate::helpers::*;

/// An admin token from a server process's key file (no TestApp for a bare process).
async fn admin_token(base: &str, key_file: &std::path::Path) -> String {
    let key = KeyFile::parse(&std::fs::read(key_file).unwrap());
    let sub = key.subject();
    let claims = json!({"iss": sub, "sub": sub, "aud": base, "iat": now(), "exp": now() + 300});
    let assertion = sign_jwt("RS256", &key.key_id, &claims, &key.private_key());
    let body: Value = reqwest::Client::new()
        .post(format!("{base}/oauth/v2/token"))
        .form(&[
            ("grant_type", JWT_BEARER),
            ("assertion", assertion.as_str()),
            ("scope", API_SCOPE),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn serving(base: &str) {
    for _ in 0..300 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not start");
}

/// The database URL for this run: a fresh PostgreSQL or MySQL database when DATABASE_URL
/// names a server, else a SQLite file in `dir`.
async fn database(dir: &std::path::Path) -> String {
    match database_server() {
        Some(url) => fresh_database(&url).await,
        None => format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display()),
    }
}

#[tokio::test]
async fn sigkill_during_a_write_burst_leaves_no_partial_state() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = database(dir.path()).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let env = [
        ("AUTHN_KEYS_DATABASE_URL", db_url.as_str()),
        ("AUTHN_KEYS_MASTER_KEY", "test-master-key-0123456789abcdef"),
        // Keys waiting in the pool are in memory only: a kill must simply lose them.
        ("AUTHN_KEYS_KEY_POOL_SIZE", "8"),
    ];
    let mut server = server_process(dir.path(), &addr, &env, std::process::Stdio::null());
    serving(&base).await;
    let token = admin_token(&base, &dir.path().join("admin.json")).await;
    let admin = KeyFile::parse(&std::fs::read(dir.path().join("admin.json")).unwrap());
    let user = admin.user_id.clone().unwrap();
    let pem = base64::engine::general_purpose::STANDARD.encode(public_pem());

    // A burst of writes spread over 1.2 s, cut off by SIGKILL part way: once the first few
    // have answered, however fast or slow the database is today.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut burst = Vec::new();
    for i in 0..120 {
        let (base, token, user, pem) = (base.clone(), token.clone(), user.clone(), pem.clone());
        let done = done.clone();
        burst.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 10)).await;
            let body = if i % 3 == 0 {
                json!({"type": "KEY_TYPE_JSON"})
            } else {
                json!({"type": "KEY_TYPE_JSON", "publicKey": pem})
            };
            let answer = reqwest::Client::new()
                .post(format!("{base}/management/v1/users/{user}/keys"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .ok()
                .map(|r| r.status().as_u16());
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            answer
        }));
    }
    let started = std::time::Instant::now();
    while done.load(std::sync::atomic::Ordering::SeqCst) < 5
        && started.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().unwrap();
    let _ = server.wait();
    let mut answered = 0;
    for b in burst {
        if b.await.unwrap() == Some(200) {
            answered += 1;
        }
    }
    assert!(
        answered > 0 && answered < 120,
        "the kill fell inside the burst ({answered} answered)"
    );

    // It starts again on the same database, and the database is whole.
    let mut again = server_process(dir.path(), &addr, &env, std::process::Stdio::null());
    serving(&base).await;
    let db = authn_keys::storage::connect(&db_url, 1).await.unwrap();
    let rows = |sql: &'static str| {
        let db = db.clone();
        async move {
            db.query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .unwrap()
        }
    };
    let keys: HashSet<String> = rows("SELECT id FROM authn_keys")
        .await
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect();
    let mut added = HashSet::new();
    let mut removed = HashSet::new();
    for r in rows("SELECT event_type, payload FROM events").await {
        let kind: String = r.try_get_by_index(0).unwrap();
        let payload: String = r.try_get_by_index(1).unwrap();
        let key_id = serde_json::from_str::<Value>(&payload).unwrap()["keyId"]
            .as_str()
            .map(str::to_owned);
        match (kind.as_str(), key_id) {
            ("user.machine.key.added", Some(k)) => {
                added.insert(k);
            }
            ("user.machine.key.removed", Some(k)) => {
                removed.insert(k);
            }
            _ => {}
        }
    }
    let live: HashSet<String> = added.difference(&removed).cloned().collect();
    assert_eq!(
        keys, live,
        "no key without its event, no event without its key"
    );
    assert!(
        keys.len() > answered,
        "every answered key was kept (plus the admin's)"
    );
    // The survivors work: the restarted server answers for them.
    let token = admin_token(&base, &dir.path().join("admin.json")).await;
    let listed: Value = reqwest::Client::new()
        .post(format!("{base}/management/v1/users/{user}/keys/_search"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["details"]["totalResult"],
        json!(keys.len().to_string())
    );
    let _ = again.kill();
    let _ = again.wait();
}

#[tokio::test]
async fn sigterm_under_load_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let server = server_process(
        dir.path(),
        &addr,
        &[("AUTHN_KEYS_SHUTDOWN_DRAIN_SECS", "10")],
        std::process::Stdio::null(),
    );
    serving(&base).await;
    let token = admin_token(&base, &dir.path().join("admin.json")).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..16 {
        let (base, token, stop) = (base.clone(), token.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut ok, mut refused) = (0, 0);
            for _ in 0..400 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                match http
                    .get(format!("{base}/management/v1/orgs/me"))
                    .bearer_auth(&token)
                    .send()
                    .await
                {
                    Ok(r) => {
                        assert!(
                            r.status() == 200 || r.status() == 503,
                            "an answer under shutdown is 200 or 503, got {}",
                            r.status()
                        );
                        let _ = r.bytes().await;
                        ok += 1;
                    }
                    // After the listener closed: the connection is refused, never reset midway.
                    Err(e) => {
                        assert!(e.is_connect() || e.is_request(), "{e:?}");
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (ok, refused)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || server.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "within the drain bound"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = 0;
    for l in load {
        answered += l.await.unwrap().0;
    }
    assert!(answered > 0);
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "no longer listening"
    );
}

/// A tmpfs of `size` mounted at `dir`, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> SmallDisk {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a small tmpfs needs root (tests run as root here and in CI)"
        );
        SmallDisk(dir.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_gives_clear_errors_and_no_corruption() {
    if database_server().is_some() {
        return; // SQLite's case: the database file is the server's own.
    }
    let outer = tempfile::tempdir().unwrap();
    let disk = outer.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let _mounted = SmallDisk::mount(&disk, "4m");
    let url = format!("sqlite://{}?mode=rwc", disk.join("db.sqlite").display());
    let mut config = Config::for_tests(&url, outer.path().join("admin-key.json"));
    config.master_key = None;
    let app = App::build(config).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let admin_id = app.instance.admin_user_id.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let token = admin_token(&base, &outer.path().join("admin-key.json")).await;
    let pem = public_pem().into_bytes();
    let mut c = ManagementServiceClient::connect(base.clone())
        .await
        .unwrap();
    let add = |c: &mut ManagementServiceClient<tonic::transport::Channel>| {
        let req = authed(
            &token,
            None,
            AddMachineKeyRequest {
                user_id: admin_id.clone(),
                r#type: 1,
                public_key: pem.clone(),
                ..Default::default()
            },
        );
        let mut c = c.clone();
        async move { c.add_machine_key(req).await }
    };
    // Fill the disk, leaving little room.
    let filler = disk.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() && f.flush().is_ok() {}
        let _ = f.sync_all();
    }
    let mut kept = Vec::new();
    let mut refusal = None;
    for _ in 0..2000 {
        match add(&mut c).await {
            Ok(r) => kept.push(r.into_inner().key_id),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let refusal = refusal.expect("the disk filled up");
    assert_eq!(refusal.code(), tonic::Code::Unavailable, "{refusal:?}");
    assert_eq!(error_id(&refusal), "STORE-Full1");
    let (status, _) = {
        let resp = reqwest::get(format!("{base}/healthz")).await.unwrap();
        (resp.status().as_u16(), ())
    };
    assert_eq!(status, 200, "the server stays up");

    // Space again: writes succeed, and the database is whole with exactly the kept keys.
    std::fs::remove_file(&filler).unwrap();
    let after = add(&mut c)
        .await
        .expect("writes succeed once there is room");
    kept.push(after.into_inner().key_id);
    let listed = c
        .list_machine_keys(authed(
            &token,
            None,
            ListMachineKeysRequest {
                user_id: admin_id.clone(),
                query: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let listed: HashSet<String> = listed.result.into_iter().map(|k| k.id).collect();
    for k in &kept {
        assert!(listed.contains(k), "kept key {k} is listed");
    }
    assert_eq!(
        listed.len(),
        kept.len() + 1,
        "nothing half-written (plus the admin's key)"
    );
    let db = authn_keys::storage::connect(&url, 1).await.unwrap();
    let check = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "PRAGMA integrity_check",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(check.try_get_by_index::<String>(0).unwrap(), "ok");
    let _ = stop.send(());
}
