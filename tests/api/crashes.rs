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
    let token = process_admin_token(&base, &dir.path().join("admin.json")).await;
    let admin = KeyFile::parse(&std::fs::read(dir.path().join("admin.json")).unwrap());
    let user = admin.user_id.clone().unwrap();
    let pem = base64::engine::general_purpose::STANDARD.encode(public_pem());

    // A burst of writes spread over 1.2 s, cut off by SIGKILL part way: once the first few
    // have answered, however fast or slow the database is today. A write is confirmed when
    // its whole answer came back: 200 with the new key's id.
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
            let confirmed = async {
                let resp = reqwest::Client::new()
                    .post(format!("{base}/management/v1/users/{user}/keys"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .ok()?;
                if resp.status() != 200 {
                    return None;
                }
                let answer: Value = resp.json().await.ok()?;
                Some(answer["keyId"].as_str()?.to_owned())
            }
            .await;
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            confirmed
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
    let mut confirmed = HashSet::new();
    for b in burst {
        if let Some(key_id) = b.await.unwrap() {
            confirmed.insert(key_id);
        }
    }
    assert!(
        !confirmed.is_empty() && confirmed.len() < 120,
        "the kill fell inside the burst ({} confirmed)",
        confirmed.len()
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
    // Every write the client saw confirmed survived the kill.
    let lost: Vec<&String> = confirmed.difference(&keys).collect();
    assert!(
        lost.is_empty(),
        "confirmed keys missing after the restart: {lost:?}"
    );
    // The survivors work: the restarted server lists exactly them.
    let token = process_admin_token(&base, &dir.path().join("admin.json")).await;
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
    let listed: HashSet<String> = listed["result"]
        .as_array()
        .unwrap_or_else(|| panic!("a key list: {listed}"))
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, keys, "the server lists the keys the database holds");
    let _ = again.kill();
    let _ = again.wait();
}

/// Whether a failed request got no answer at all: the connection was refused, or closed or
/// reset before the head of a response came (what a server that stops accepting does). Never a
/// timeout, and never an answer cut off part way.
fn unanswered(e: &reqwest::Error) -> bool {
    if e.is_timeout() || e.is_body() || e.is_decode() {
        return false;
    }
    if e.is_connect() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return true;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            )
        {
            return true;
        }
        source = s.source();
    }
    false
}

#[tokio::test]
async fn sigterm_under_load_drains_and_exits_zero() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    let token = process_admin_token(&base, &dir.path().join("admin.json")).await;
    let me: Value = reqwest::Client::new()
        .get(format!("{base}/management/v1/orgs/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org_id = me["org"]["id"].as_str().unwrap().to_owned();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    // Set just before the signal goes: from then on a request may go unanswered.
    let terminating = std::sync::Arc::new(AtomicBool::new(false));
    let served = std::sync::Arc::new(AtomicUsize::new(0));
    // Answers that close their connection: requests under way when shutdown began, finished.
    let drained = std::sync::Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    // Half the clients read (fast), half add generated keys (tens of milliseconds of work
    // each, so some are always under way when the signal comes).
    let admin_id = KeyFile::parse(&std::fs::read(dir.path().join("admin.json")).unwrap())
        .user_id
        .unwrap();
    for client in 0..16 {
        let (base, token, org_id) = (base.clone(), token.clone(), org_id.clone());
        let admin_id = admin_id.clone();
        let (stop, terminating) = (stop.clone(), terminating.clone());
        let (served, drained) = (served.clone(), drained.clone());
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut unanswered_after_signal = 0;
            for _ in 0..2000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let writes = client % 2 == 1;
                let request = if writes {
                    http.post(format!("{base}/management/v1/users/{admin_id}/keys"))
                        .json(&json!({"type": "KEY_TYPE_JSON"}))
                } else {
                    http.get(format!("{base}/management/v1/orgs/me"))
                };
                let sent = request
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await;
                match sent {
                    // An answer that began is a whole 200 with the org or the new key: never
                    // another status, never cut off midway.
                    Ok(r) => {
                        let status = r.status();
                        let closing = r
                            .headers()
                            .get("connection")
                            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                        let body = r.bytes().await;
                        let body = match body {
                            Ok(b) => b,
                            Err(e) => panic!("an answer was cut off midway ({status}): {e:?}"),
                        };
                        assert_eq!(
                            status,
                            200,
                            "an answer under shutdown is a 200, got {status}: {}",
                            String::from_utf8_lossy(&body)
                        );
                        let answer: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
                            panic!(
                                "an incomplete answer ({e}): {}",
                                String::from_utf8_lossy(&body)
                            )
                        });
                        if writes {
                            assert!(answer["keyId"].as_str().is_some(), "{answer}");
                        } else {
                            assert_eq!(answer["org"]["id"], org_id.as_str(), "{answer}");
                        }
                        served.fetch_add(1, Ordering::SeqCst);
                        if closing {
                            assert!(
                                terminating.load(Ordering::SeqCst),
                                "a connection was closed before the signal"
                            );
                            drained.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    // Once shutdown began: refused, or closed before any answer came.
                    Err(e) => {
                        assert!(
                            terminating.load(Ordering::SeqCst),
                            "a request failed before the signal: {e:?}"
                        );
                        assert!(
                            unanswered(&e),
                            "a request under shutdown failed other than unanswered: {e:?}"
                        );
                        unanswered_after_signal += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            unanswered_after_signal
        }));
    }
    // The signal comes once the load is well under way.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while served.load(Ordering::SeqCst) < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "the load did not get going"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let served_before = served.load(Ordering::SeqCst);
    terminating.store(true, Ordering::SeqCst);
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
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    assert!(served_before > 0, "requests were served");
    // The eight writers are nearly always in the middle of a key generation: at least half of
    // them were under way when the signal came, and were answered (a server that stops without
    // draining answers one or none of them).
    let drained = drained.load(Ordering::SeqCst);
    assert!(
        drained >= 4,
        "{drained} requests under way when the signal came were answered"
    );
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
        skip("SQLite only: the database file is the server's own only there");
        return;
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
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let token = process_admin_token(&base, &outer.path().join("admin-key.json")).await;
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
    // Everything holding the database file lets go before the small disk is unmounted.
    db.close().await.unwrap();
    drop(c);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
