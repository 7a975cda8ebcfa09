//! authnkeys.v1 EventService: the audit trail under the contract's names, webhooks signed as
//! Standard Webhooks asks, retried with the same id, in order per key, exactly once across
//! processes, surviving SIGKILL; expiry notices once per window; outbound addresses refused.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use authn_keys::proto::{
    authnkeys::v1::{self as own, event_service_client::EventServiceClient},
    zitadel::management::v1::{
        AddMachineKeyRequest, AddMachineUserRequest, RemoveMachineKeyRequest,
    },
};
use axum::{extract::State, http::HeaderMap, routing::post};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::Mac;
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::*;

/// A delivery as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: i64,
    signature: String,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// How the receiver answers the n-th request (0-based); past the end: 204.
#[derive(Clone, Default)]
struct Script {
    statuses: Vec<u16>,
    delay: Option<Duration>,
    /// The size of each answer's body.
    body_bytes: usize,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    /// A receiver on 127.0.0.1; its URL.
    async fn start(script: Script) -> (Receiver, String) {
        let r = Receiver {
            got: Arc::default(),
            script: Arc::new(Mutex::new(script)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what arrived, at most `within`.
    async fn wait(&self, within: Duration, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let all = self.all();
            if done(&all) {
                return all;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver got {:#?}",
                all.iter().map(Received::json).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, Vec<u8>) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let n = {
        let mut got = r.got.lock().unwrap();
        got.push(Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp").parse().unwrap_or(0),
            signature: header("webhook-signature"),
            body: body.to_vec(),
        });
        got.len() - 1
    };
    let (status, delay, size) = {
        let s = r.script.lock().unwrap();
        (
            s.statuses.get(n).copied().unwrap_or(204),
            s.delay,
            s.body_bytes,
        )
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        vec![b'x'; size],
    )
}

/// The Standard Webhooks check a receiver makes, written from the specification.
fn verify(secret: &str, r: &Received) {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", r.id, r.timestamp).as_bytes());
    mac.update(&r.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert!(
        r.signature.split(' ').any(|s| s == expected),
        "signature {} is not {expected}",
        r.signature
    );
    assert!(
        (now() - r.timestamp).abs() < 300,
        "timestamp {}",
        r.timestamp
    );
    assert_eq!(r.json()["data"]["id"], json!(r.id));
}

fn insecure(c: &mut authn_keys::config::Config) {
    c.outbound_allow_insecure = true;
}

async fn add_webhook(app: &TestApp, token: &str, url: &str, types: &[&str]) -> (String, String) {
    let (status, body) = own_rest(
        app,
        "POST",
        "/v1/webhooks",
        token,
        Some(json!({"url": url, "types": types})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{body}");
    (body["webhook"]["id"].as_str().unwrap().to_owned(), secret)
}

async fn machine_user(app: &TestApp, token: &str, org: Option<&str>) -> String {
    app.grpc()
        .await
        .add_machine_user(authed(
            token,
            org,
            AddMachineUserRequest {
                user_name: unique("events"),
                name: "events".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user_id
}

async fn add_key(app: &TestApp, token: &str, user_id: &str, expires: Option<i64>) -> String {
    app.grpc()
        .await
        .add_machine_key(authed(
            token,
            None,
            AddMachineKeyRequest {
                user_id: user_id.into(),
                r#type: 1,
                expiration_date: expires.map(timestamp_at),
                public_key: public_pem().into_bytes(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .key_id
}

fn timestamp_at(secs: i64) -> authn_keys::proto::wkt::Timestamp {
    authn_keys::proto::wkt::Timestamp {
        seconds: secs,
        nanos: 0,
    }
}

async fn events(app: &TestApp, token: &str, filter: Value) -> Value {
    let (status, body) = own_rest(app, "POST", "/v1/events/_search", token, Some(filter)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `totalResult` (proto3 JSON leaves a zero out).
fn total(list: &Value) -> u64 {
    list["totalResult"]
        .as_str()
        .map_or(0, |t| t.parse().unwrap())
}

fn types_of(list: &Value) -> Vec<String> {
    list["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn key_events_reach_a_webhook_signed_in_order_and_show_in_the_trail() {
    let app = TestApp::spawn_with(insecure).await;
    let admin = app.admin_token().await;
    let (receiver, url) = Receiver::start(Script::default()).await;
    let (hook_id, secret) = add_webhook(
        &app,
        &admin,
        &url,
        &["key.added", "key.disabled", "key.enabled", "key.removed"],
    )
    .await;
    let user = machine_user(&app, &admin, None).await;
    let key_id = add_key(&app, &admin, &user, None).await;
    for path in ["_disable", "_enable"] {
        let (s, b) = own_rest(
            &app,
            "POST",
            &format!("/v1/keys/{key_id}/{path}"),
            &admin,
            Some(json!({"reason": "rotation drill"})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    app.grpc()
        .await
        .remove_machine_key(authed(
            &admin,
            None,
            RemoveMachineKeyRequest {
                user_id: user.clone(),
                key_id: key_id.clone(),
            },
        ))
        .await
        .unwrap();
    // Within a second or two; in the order they happened.
    let got = receiver
        .wait(Duration::from_secs(5), |all| all.len() >= 4)
        .await;
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["key.added", "key.disabled", "key.enabled", "key.removed"]
    );
    for r in &got {
        verify(&secret, r);
        let data = &r.json()["data"];
        assert_eq!(data["keyId"], json!(key_id));
        assert_eq!(data["userId"], json!(user));
        assert_eq!(data["orgId"], json!(app.org_id));
        assert_eq!(data["actor"]["userId"], json!(app.admin_id));
    }
    assert_eq!(
        got[1].json()["data"]["data"]["reason"],
        json!("rotation drill")
    );
    // Nothing else was sent: user.added is not among the webhook's types.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.all().len(), 4);

    // The trail: contract names, filters, honest totals, the deliveries.
    let all = events(&app, &admin, json!({"keyId": key_id, "asc": true})).await;
    assert_eq!(
        types_of(&all),
        ["key.added", "key.disabled", "key.enabled", "key.removed"]
    );
    assert_eq!(total(&all), 4);
    let first = &all["result"][0];
    assert_eq!(first["id"], json!(got[0].id));
    assert_eq!(first["deliveries"][0]["webhookId"], json!(hook_id));
    assert_eq!(
        first["deliveries"][0]["state"],
        json!("DELIVERY_STATE_SENT")
    );
    assert_eq!(first["deliveries"][0]["lastStatus"], json!(204));
    let newest = events(&app, &admin, json!({"userId": user, "limit": 1})).await;
    assert_eq!(types_of(&newest), ["key.removed"]);
    assert_eq!(total(&newest), 5, "user.added and the four key events");
    let added = events(
        &app,
        &admin,
        json!({"types": ["key.added", "user.added"], "userId": user}),
    )
    .await;
    assert_eq!(types_of(&added), ["key.added", "user.added"]);
    let future = events(
        &app,
        &admin,
        json!({"keyId": key_id, "since": "2999-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(total(&future), 0);
    let (status, body) = own_rest(
        &app,
        "POST",
        "/v1/events/_search",
        &admin,
        Some(json!({"types": ["key.exploded"]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("key.expiring"),
        "{body}"
    );

    // Webhooks listed with their figures, the secret never again.
    let (status, hooks) = own_rest(
        &app,
        "POST",
        "/v1/webhooks/_search",
        &admin,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{hooks}");
    assert_eq!(hooks["result"][0]["id"], json!(hook_id));
    assert!(!hooks.to_string().contains(&secret[6..]), "{hooks}");
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_the_same_id_and_slow_receivers_stall_no_one() {
    let app = TestApp::spawn_with(insecure).await;
    let admin = app.admin_token().await;
    let (flaky, flaky_url) = Receiver::start(Script {
        statuses: vec![500],
        ..Script::default()
    })
    .await;
    let (slow, slow_url) = Receiver::start(Script {
        delay: Some(Duration::from_secs(30)),
        ..Script::default()
    })
    .await;
    let (huge, huge_url) = Receiver::start(Script {
        // 200: a 204 has no body.
        statuses: vec![200; 10],
        body_bytes: 1 << 20,
        ..Script::default()
    })
    .await;
    let (fast, fast_url) = Receiver::start(Script::default()).await;
    let (_, flaky_secret) = add_webhook(&app, &admin, &flaky_url, &["user.added"]).await;
    let (slow_hook, _) = add_webhook(&app, &admin, &slow_url, &["user.added"]).await;
    add_webhook(&app, &admin, &fast_url, &["user.added"]).await;
    let (huge_id, _) = add_webhook(&app, &admin, &huge_url, &["user.added"]).await;
    let started = std::time::Instant::now();
    let user = machine_user(&app, &admin, None).await;
    // The fast receiver does not wait for the one that hangs.
    fast.wait(Duration::from_secs(3), |all| all.len() == 1)
        .await;
    slow.wait(Duration::from_secs(3), |all| all.len() == 1)
        .await;
    // The flaky one answered 500 first; the retry comes within 10 s, with the same id.
    let got = flaky
        .wait(Duration::from_secs(12), |all| all.len() == 2)
        .await;
    assert!(started.elapsed() < Duration::from_secs(12));
    assert_eq!(got[0].id, got[1].id);
    assert_eq!(got[0].body, got[1].body);
    for r in &got {
        verify(&flaky_secret, r);
    }
    assert_eq!(got[0].json()["data"]["userId"], json!(user));
    let trail = events(
        &app,
        &admin,
        json!({"userId": user, "types": ["user.added"]}),
    )
    .await;
    let deliveries = trail["result"][0]["deliveries"].as_array().unwrap().clone();
    assert_eq!(deliveries.len(), 4, "{trail}");
    let flaky_delivery = deliveries
        .iter()
        .find(|d| d["attempts"] == json!(2))
        .unwrap_or_else(|| panic!("{trail}"));
    assert_eq!(flaky_delivery["state"], json!("DELIVERY_STATE_SENT"));
    // An answer without end (1 MiB) is cut off and counts as a failed attempt: retried.
    huge.wait(Duration::from_secs(10), |all| all.len() >= 2)
        .await;
    let of = |trail: &Value, hook: &str| {
        trail["result"][0]["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["webhookId"] == json!(hook))
            .cloned()
            .unwrap_or_else(|| panic!("{trail}"))
    };
    let trail = events(
        &app,
        &admin,
        json!({"userId": user, "types": ["user.added"]}),
    )
    .await;
    let cut = of(&trail, &huge_id);
    assert!(
        cut["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("cut off"),
        "{cut}"
    );
    assert_ne!(cut["state"], json!("DELIVERY_STATE_SENT"), "{cut}");
    // The hanging receiver's attempt ends at the time limit (10 s) and is retried.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let trail = events(
            &app,
            &admin,
            json!({"userId": user, "types": ["user.added"]}),
        )
        .await;
        let d = of(&trail, &slow_hook);
        if d["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("no answer in time")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("authn_keys_webhook_deliveries_sent_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("authn_keys_webhook_deliveries_pending"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_iam_owners_webhook_hears_every_org_and_an_org_owners_only_its_own() {
    let app = TestApp::spawn_with(insecure).await;
    let admin = app.admin_token().await;
    let (all, all_url) = Receiver::start(Script::default()).await;
    let (_, all_secret) = add_webhook(&app, &admin, &all_url, &["user.added"]).await;
    // The other org's owner adds a webhook of its own.
    let (other_org, owner, owner_token) = app.org_with_owner(&admin, "tenant").await;
    let (theirs, their_url) = Receiver::start(Script::default()).await;
    let (status, body) = own_rest(
        &app,
        "POST",
        "/v1/webhooks",
        &owner_token,
        Some(json!({"url": their_url, "types": ["user.added"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["webhook"]["orgId"], json!(other_org));
    assert_ne!(body["webhook"]["allOrgs"], json!(true));
    let theirs_user = machine_user(&app, &owner_token, None).await;
    let home_user = machine_user(&app, &admin, None).await;
    let got = all.wait(Duration::from_secs(5), |a| a.len() >= 3).await;
    let users: Vec<Value> = got
        .iter()
        .map(|r| r.json()["data"]["userId"].clone())
        .collect();
    for u in [&owner, &theirs_user, &home_user] {
        assert!(users.contains(&json!(u)), "{u} in {users:?}");
    }
    for r in &got {
        verify(&all_secret, r);
    }
    let got = theirs.wait(Duration::from_secs(5), |a| !a.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_all = theirs.all();
    assert_eq!(
        got_all.len(),
        1,
        "only its own org's event: {:?}",
        got.iter().map(Received::json).collect::<Vec<_>>()
    );
    assert_eq!(got_all[0].json()["data"]["userId"], json!(theirs_user));
    assert_eq!(got_all[0].json()["data"]["orgId"], json!(other_org));
}

#[tokio::test]
async fn a_keys_later_events_wait_for_its_failed_earlier_one() {
    let app = TestApp::spawn_with(insecure).await;
    let admin = app.admin_token().await;
    let (receiver, url) = Receiver::start(Script {
        statuses: vec![500],
        ..Script::default()
    })
    .await;
    add_webhook(
        &app,
        &admin,
        &url,
        &["key.added", "key.disabled", "key.enabled"],
    )
    .await;
    let user = machine_user(&app, &admin, None).await;
    let key_id = add_key(&app, &admin, &user, None).await;
    receiver
        .wait(Duration::from_secs(3), |all| !all.is_empty())
        .await;
    for path in ["_disable", "_enable"] {
        let (s, b) = own_rest(
            &app,
            "POST",
            &format!("/v1/keys/{key_id}/{path}"),
            &admin,
            Some(json!({})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    // key.added failed once; the key's later events waited for its retry.
    let got = receiver
        .wait(Duration::from_secs(12), |all| all.len() >= 4)
        .await;
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["key.added", "key.added", "key.disabled", "key.enabled"]
    );
}

#[tokio::test]
async fn webhook_urls_follow_the_outbound_rules_and_bad_input_is_named() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for (url, says) in [
        ("http://example.com/hook", "https"),
        ("https://127.0.0.1/hook", "IP address"),
        ("https://10.1.2.3/hook", "IP address"),
        ("https://169.254.169.254/latest", "IP address"),
        ("https://[::1]/hook", "IP address"),
        ("https://localhost/hook", "localhost"),
        ("not a url", "URL"),
    ] {
        let (status, body) = own_rest(
            &app,
            "POST",
            "/v1/webhooks",
            &admin,
            Some(json!({"url": url})),
        )
        .await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{url}: {body}"
        );
    }
    let (status, body) = own_rest(
        &app,
        "POST",
        "/v1/webhooks",
        &admin,
        Some(json!({"url": "https://hooks.example.com/x", "types": ["key.add"]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // A public https URL is taken (nothing is sent until an event comes).
    let (status, body) = own_rest(
        &app,
        "POST",
        "/v1/webhooks",
        &admin,
        Some(json!({"url": "https://hooks.example.com/x"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let hook_id = body["webhook"]["id"].as_str().unwrap().to_owned();

    // Another org's owner neither sees nor removes it, and sees none of this org's events.
    let (other_org, _, owner_token) = app.org_with_owner(&admin, "other").await;
    let mut client = EventServiceClient::new(app.channel().await);
    let err = client
        .remove_webhook(authed(
            &owner_token,
            None,
            own::RemoveWebhookRequest {
                webhook_id: hook_id.clone(),
            },
        ))
        .await;
    assert_err(err, Code::NotFound, "HOOK-NotF1");
    let theirs = client
        .list_webhooks(authed(&owner_token, None, own::ListWebhooksRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.result.is_empty());
    let trail = client
        .list_events(authed(
            &owner_token,
            None,
            own::ListEventsRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        trail.result.iter().all(|e| e.org_id == other_org),
        "{trail:?}"
    );
    assert!(
        trail.result.iter().any(|e| e.r#type == "member.added"),
        "{trail:?}"
    );
    // A key viewer may not read the trail.
    let (_, viewer_key) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    let viewer = app.token_for(&viewer_key).await;
    let denied = client
        .list_events(authed(&viewer, None, own::ListEventsRequest::default()))
        .await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    // Its owner removes it; twice is NOT_FOUND.
    let removed = client
        .remove_webhook(authed(
            &admin,
            None,
            own::RemoveWebhookRequest {
                webhook_id: hook_id.clone(),
            },
        ))
        .await;
    assert!(removed.is_ok(), "{removed:?}");
    let again = client
        .remove_webhook(authed(
            &admin,
            None,
            own::RemoveWebhookRequest {
                webhook_id: hook_id,
            },
        ))
        .await;
    assert_err(again, Code::NotFound, "HOOK-NotF1");
}

#[tokio::test]
async fn removing_a_webhook_drops_its_pending_deliveries() {
    let app = TestApp::spawn_with(insecure).await;
    let admin = app.admin_token().await;
    let (down, url) = Receiver::start(Script {
        statuses: vec![503; 100],
        ..Script::default()
    })
    .await;
    let (hook_id, _) = add_webhook(&app, &admin, &url, &[]).await;
    machine_user(&app, &admin, None).await;
    down.wait(Duration::from_secs(5), |all| !all.is_empty())
        .await;
    let (_, hooks) = own_rest(
        &app,
        "POST",
        "/v1/webhooks/_search",
        &admin,
        Some(json!({})),
    )
    .await;
    assert_ne!(
        hooks["result"][0]["pendingDeliveries"],
        json!(null),
        "{hooks}"
    );
    let (status, _) = own_rest(
        &app,
        "DELETE",
        &format!("/v1/webhooks/{hook_id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let seen = down.all().len();
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        down.all().len(),
        seen,
        "a removed webhook's retries stopped"
    );
    let trail = events(&app, &admin, json!({"types": ["webhook.removed"]})).await;
    assert_eq!(total(&trail), 1);
}

#[tokio::test]
async fn expiry_notices_come_once_per_window_and_once_expired() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let svc = &app.services;
    let user = machine_user(&app, &admin, None).await;
    let t0 = svc.now();
    let in_3_days = add_key(&app, &admin, &user, Some(t0.timestamp() + 3 * 86_400)).await;
    let in_5_hours = add_key(&app, &admin, &user, Some(t0.timestamp() + 5 * 3600)).await;
    let far = add_key(&app, &admin, &user, Some(t0.timestamp() + 60 * 86_400)).await;
    let run = |at: chrono::DateTime<chrono::Utc>| async move {
        svc.notice_expiring_keys_at("test", at).await.unwrap()
    };
    // The server's own sweep may have been first at t0; either way, nothing comes twice.
    run(t0).await;
    assert_eq!(run(t0).await, 0, "nothing twice");
    assert_eq!(
        run(t0 + chrono::Duration::hours(60)).await,
        2,
        "the 3-day key inside 1d, the 5-hour key expired"
    );
    assert_eq!(run(t0 + chrono::Duration::hours(61)).await, 0);
    assert_eq!(
        run(t0 + chrono::Duration::days(4)).await,
        1,
        "the 3-day key expired"
    );
    assert_eq!(run(t0 + chrono::Duration::days(5)).await, 0);
    assert_eq!(
        notices(&app, &admin, &in_3_days).await,
        ["key.expiring:7d", "key.expiring:1d", "key.expired:-"]
    );
    assert_eq!(
        notices(&app, &admin, &in_5_hours).await,
        ["key.expiring:1d", "key.expired:-"]
    );
    assert!(notices(&app, &admin, &far).await.is_empty());
    let trail = events(&app, &admin, json!({"types": ["key.expired"], "limit": 1})).await;
    assert_eq!(
        trail["result"][0]["actor"]["userId"],
        json!("system:expiry")
    );

    // Another process on the same database gives none of them again.
    let second = app.spawn_on_same_database().await;
    assert_eq!(
        second
            .services
            .notice_expiring_keys_at("second", t0 + chrono::Duration::days(6))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_key_added_inside_a_window_is_noticed_at_once() {
    let app = TestApp::spawn_with(insecure).await;
    let admin = app.admin_token().await;
    let (receiver, url) = Receiver::start(Script::default()).await;
    let (_, secret) = add_webhook(&app, &admin, &url, &["key.expiring"]).await;
    let user = machine_user(&app, &admin, None).await;
    let key_id = add_key(&app, &admin, &user, Some(now() + 2 * 86_400)).await;
    let got = receiver
        .wait(Duration::from_secs(5), |all| !all.is_empty())
        .await;
    verify(&secret, &got[0]);
    let data = &got[0].json()["data"];
    assert_eq!(data["keyId"], json!(key_id));
    assert_eq!(data["data"]["window"], json!("7d"));
    assert_eq!(data["actor"]["userId"], json!("system:expiry"));
}

#[tokio::test]
async fn the_event_and_trust_services_answer_on_grpc_web_and_connect() {
    use authn_keys::proto::authnkeys::v1::trust_service_client::TrustServiceClient;
    use tower::Layer;
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let web = || {
        let http1 =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<tonic_web::GrpcWebCall<tonic::body::Body>>();
        tonic_web::GrpcWebClientLayer::new().layer(http1)
    };
    let mut events = EventServiceClient::with_origin(web(), app.base.parse().unwrap());
    let trail = events
        .list_events(authed(
            &admin,
            None,
            own::ListEventsRequest {
                types: vec!["user.added".into()],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        trail.total_result >= 1,
        "the admin was added at first start"
    );
    assert!(trail.result.iter().all(|e| e.r#type == "user.added"));
    let mut trusts = TrustServiceClient::with_origin(web(), app.base.parse().unwrap());
    let listed = trusts
        .list_trusts(authed(&admin, None, own::ListTrustsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_result, 0);
    let connect = |method: &str, body: &str| {
        app.http
            .post(format!("{}/authnkeys.v1.{method}", app.base))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    let resp = connect("EventService/ListWebhooks", "{}").await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = connect("TrustService/GetTrust", r#"{"trustId":"999"}"#)
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "not_found", "{body}");
}

/// A key's expiry notices in the trail: `type:window`.
async fn notices(app: &TestApp, admin: &str, key: &str) -> Vec<String> {
    let list = events(
        app,
        admin,
        json!({"keyId": key, "types": ["key.expiring", "key.expired"], "asc": true}),
    )
    .await;
    // proto3 JSON leaves an empty list out.
    list["result"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|e| {
                    format!(
                        "{}:{}",
                        e["type"].as_str().unwrap(),
                        e["data"]["window"].as_str().unwrap_or("-")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn two_processes_deliver_each_event_exactly_once() {
    let app = TestApp::spawn_with(insecure).await;
    let second = app.spawn_on_same_database_with(insecure).await;
    let admin = app.admin_token().await;
    let (receiver, url) = Receiver::start(Script::default()).await;
    add_webhook(&app, &admin, &url, &["user.added"]).await;
    let mut users = Vec::new();
    for i in 0..20 {
        let target = if i % 2 == 0 { &app } else { &second };
        users.push(machine_user(target, &admin, None).await);
    }
    let got = receiver
        .wait(Duration::from_secs(15), |all| all.len() >= 20)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got_all = receiver.all();
    assert_eq!(
        got_all.len(),
        20,
        "each event once: {:?}",
        got.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
    let mut ids: Vec<String> = got_all.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
}

#[tokio::test]
async fn a_delivery_due_while_the_server_was_killed_goes_out_after_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // A receiver port that nothing listens on yet: the first attempt fails.
    let hook_port = free_port();
    let env = [
        ("AUTHN_KEYS_OUTBOUND_ALLOW_INSECURE", "true"),
        ("AUTHN_KEYS_MASTER_KEY", "test-master-key-0123456789abcdef"),
    ];
    let mut server = server_process(dir.path(), &addr, &env, std::process::Stdio::null());
    let base = format!("http://{addr}");
    serving(&base, &dir.path().join("admin.json")).await;
    let http = reqwest::Client::new();
    let token = process_admin_token(&base, &dir.path().join("admin.json")).await;
    let hook = http
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(&token)
        .json(
            &json!({"url": format!("http://127.0.0.1:{hook_port}/hook"), "types": ["user.added"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 200);
    let user = http
        .post(format!("{base}/management/v1/users/machine"))
        .bearer_auth(&token)
        .json(&json!({"userName": unique("killed"), "name": "killed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 200);
    let user_id = user.json::<Value>().await.unwrap()["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    // The first attempt fails (connection refused); kill the server before the retry.
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    // The receiver comes up while the server is down; then the server starts again.
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{hook_port}"))
        .await
        .unwrap();
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut server = server_process(dir.path(), &addr, &env, std::process::Stdio::null());
    serving(&base, &dir.path().join("admin.json")).await;
    let got = r.wait(Duration::from_secs(5), |all| !all.is_empty()).await;
    assert_eq!(got[0].json()["data"]["userId"], json!(user_id));
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Waits until a server process answers and its admin key file is written.
async fn serving(base: &str, key_file: &std::path::Path) {
    for _ in 0..300 {
        if key_file.exists() && reqwest::get(format!("{base}/healthz")).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} does not answer");
}
