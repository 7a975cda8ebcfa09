//! A change-notice connection that dies silently (PostgreSQL): its server process is frozen,
//! as a NAT dropping an idle connection would leave it. The other process must still refuse a
//! removed key's token within the bound, replace the listener, and recover.
use std::time::{Duration, Instant};

use authn_keys::{
    proto::zitadel::management::v1::*,
    storage::{self, ConnectionTrait},
};
use tonic::Code;

use crate::helpers::*;

/// The bar: another process refuses a removed key's token within this, whatever became of its
/// notice connection. The design answers within about 3 s (a listener silent for 2 s leaves
/// entries living 1 s); the bar leaves a busy machine room and stays well short of the minute
/// a stale entry lives while notices are trusted.
const BOUND: Duration = Duration::from_secs(20);
/// How long polls wait at most: past the minute a stale cache entry could live, so that a
/// failure reports how long it really took.
const PATIENCE: Duration = Duration::from_secs(90);

/// Polls `check` until it holds, for at most `PATIENCE`; how long it took, if it did.
async fn polled<F, Fut>(mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Stops a PostgreSQL server process until dropped (also when the test fails).
struct Frozen(i32);

impl Frozen {
    fn new(pid: i32) -> Frozen {
        assert!(signal(pid, "-STOP"), "could not stop backend {pid}");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

fn signal(pid: i32, sig: &str) -> bool {
    std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// The server processes of this database that run `LISTEN`, and all of its server processes.
async fn backends(db: &storage::Db) -> (Vec<i32>, Vec<i32>) {
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT pid, query ILIKE 'LISTEN%' FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid",
        ))
        .await
        .unwrap();
    let (mut listening, mut all) = (Vec::new(), Vec::new());
    for row in rows {
        let pid: i32 = row.try_get_by_index(0).unwrap();
        if row.try_get_by_index::<Option<bool>>(1).unwrap() == Some(true) {
            listening.push(pid);
        }
        all.push(pid);
    }
    (listening, all)
}

async fn confirmed(app: &TestApp) {
    let took = polled(|| async { app.services.caches.listening() }).await;
    assert!(took.is_some(), "{} never confirmed its notices", app.base);
}

/// A new key for `user`, added through `app`: (key id, token obtained with it).
async fn key_and_token(app: &TestApp, admin: &str, user: &str) -> (String, String) {
    let file = app
        .grpc()
        .await
        .add_machine_key(authed(admin, None, new_key(user)))
        .await
        .unwrap()
        .into_inner()
        .key_details;
    let key = KeyFile::parse(&file);
    let token = app.token_for(&key).await;
    (key.key_id, token)
}

async fn remove_key(app: &TestApp, admin: &str, user: &str, key_id: &str) {
    let remove = RemoveMachineKeyRequest {
        user_id: user.into(),
        key_id: key_id.into(),
    };
    app.grpc()
        .await
        .remove_machine_key(authed(admin, None, remove))
        .await
        .unwrap();
}

/// Whether `app` answers GetUserByID with `token` (`false`: refused as unauthenticated).
async fn accepted(app: &TestApp, token: &str, user: &str) -> bool {
    let get = GetUserByIdRequest { id: user.into() };
    match app
        .grpc()
        .await
        .get_user_by_id(authed(token, None, get))
        .await
    {
        Ok(_) => true,
        Err(s) if s.code() == Code::Unauthenticated => false,
        Err(s) => panic!("unexpected answer: {s:?}"),
    }
}

/// How long `app` keeps accepting `token` (`PATIENCE` when it never stops).
async fn time_to_refusal(app: &TestApp, token: &str, user: &str) -> Duration {
    polled(|| async { !accepted(app, token, user).await })
        .await
        .unwrap_or(PATIENCE)
}

#[tokio::test]
async fn a_frozen_notice_connection_does_not_stretch_revocation() {
    let Some(server) = database_server()
        .filter(|u| storage::Backend::of_url(u) == Some(storage::Backend::Postgres))
    else {
        skip("change notices exist on PostgreSQL only");
        return;
    };
    let b = TestApp::spawn_on_database(Some(&server), |_| {}).await;
    let probe = storage::connect(&b.db_url, 1).await.unwrap();
    confirmed(&b).await;
    // B's listener is the only one on this database until A starts.
    let (listening, _) = backends(&probe).await;
    assert_eq!(listening.len(), 1, "{listening:?}");
    let b_listener = listening[0];
    let a = b.spawn_on_same_database().await;
    confirmed(&a).await;

    let admin = a.admin_token().await;
    let (user, _) = a.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    let (key_id, token) = key_and_token(&a, &admin, &user).await;
    // B caches the token, its key, the user and the roles.
    assert!(accepted(&b, &token, &user).await);
    assert!(b.services.caches.listening());

    let frozen = Frozen::new(b_listener);
    remove_key(&a, &admin, &user, &key_id).await;
    assert!(!accepted(&a, &token, &user).await);
    let took = time_to_refusal(&b, &token, &user).await;
    eprintln!("refused by B {took:?} after the removal, its listener frozen");
    assert!(
        took < BOUND,
        "B accepted the removed key's token for {took:?} with its notice connection frozen"
    );

    // Still frozen: B gives that listener up and confirms its notices over a new one.
    let replaced = polled(|| async {
        let (listening, _) = backends(&probe).await;
        listening.len() == 3 && b.services.caches.listening()
    })
    .await;
    assert!(replaced.is_some(), "B never replaced its frozen listener");
    let (key_id, token) = key_and_token(&a, &admin, &user).await;
    assert!(accepted(&b, &token, &user).await);
    assert!(b.services.caches.listening(), "entries live a minute now");
    remove_key(&a, &admin, &user, &key_id).await;
    let took = time_to_refusal(&b, &token, &user).await;
    eprintln!("refused by B {took:?} after the removal, on its new listener");
    assert!(
        took < BOUND,
        "after recovering, B accepted a removed key's token for {took:?}"
    );

    // Woken up, the old server process goes away: B closed that connection rather than
    // keeping it for requests.
    drop(frozen);
    let gone = polled(|| async { !backends(&probe).await.1.contains(&b_listener) }).await;
    assert!(gone.is_some(), "the frozen listener's connection was kept");
    let metrics = b
        .http
        .get(format!("{}/metrics", b.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "authn_keys_change_notices_confirmed 1"),
        "{metrics}"
    );
}
