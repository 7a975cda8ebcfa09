//! What operators see: Prometheus figures at /metrics, a request id on every answer (and in
//! the logs), JSON log lines, and a readiness check that fails when the database is gone.
use std::time::Duration;

use authn_keys::proto::zitadel::management::v1::*;
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::*;

async fn metrics(app: &TestApp) -> String {
    let resp = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    resp.text().await.unwrap()
}

/// The value of the sample whose name and labels start as given.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_outcomes_and_state() {
    let app = TestApp::spawn_with(|c| {
        c.auth_failure_burst = 1;
        c.auth_failure_per_minute = 1;
    })
    .await;
    let t = app.admin_token().await;
    let mut c = app.grpc().await;
    c.get_my_org(authed(&t, None, GetMyOrgRequest {}))
        .await
        .unwrap();
    c.add_machine_key(authed(&t, None, new_key(&app.admin_id)))
        .await
        .unwrap();
    assert_err(
        c.get_machine_key_by_i_ds(authed(
            &t,
            None,
            GetMachineKeyByIDsRequest {
                user_id: app.admin_id.clone(),
                key_id: "404".into(),
            },
        ))
        .await,
        Code::NotFound,
        "QUERY-Dgr3g",
    );
    let (status, _) = app
        .rest(
            "POST",
            &format!("/users/{}/keys/_search", app.admin_id),
            Some(&t),
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200);
    // Two refused grants for one key id: the second empties its bucket.
    let wrong = app.assertion(&app.admin_key, json!({"aud": ["https://elsewhere"]}));
    for _ in 0..3 {
        app.token_request(&[("grant_type", JWT_BEARER), ("assertion", &wrong)])
            .await;
    }

    let text = metrics(&app).await;
    let m = "/zitadel.management.v1.ManagementService";
    for (line, at_least) in [
        (
            format!(r#"authn_keys_requests_total{{transport="grpc",method="{m}/GetMyOrg",code="Ok"}}"#),
            1.0,
        ),
        (
            format!(
                r#"authn_keys_requests_total{{transport="grpc",method="{m}/GetMachineKeyByIDs",code="NotFound"}}"#
            ),
            1.0,
        ),
        (
            r#"authn_keys_requests_total{transport="rest",method="POST /management/v1/users/{user_id}/keys/_search",code="200"}"#.to_owned(),
            1.0,
        ),
        (
            r#"authn_keys_oauth_requests_total{endpoint="token",outcome="ok"}"#.to_owned(),
            1.0,
        ),
        (
            r#"authn_keys_oauth_requests_total{endpoint="token",outcome="invalid_grant"}"#.to_owned(),
            1.0,
        ),
        (
            r#"authn_keys_oauth_requests_total{endpoint="token",outcome="temporarily_unavailable"}"#.to_owned(),
            1.0,
        ),
        (
            format!(
                r#"authn_keys_request_duration_seconds_count{{transport="grpc",method="{m}/AddMachineKey"}}"#
            ),
            1.0,
        ),
        ("authn_keys_key_generations_total".to_owned(), 1.0),
        ("authn_keys_rate_limited_total".to_owned(), 1.0),
        ("authn_keys_db_connections_max".to_owned(), 5.0),
    ] {
        let v = sample(&text, &line).unwrap_or_else(|| panic!("no {line} in\n{text}"));
        assert!(v >= at_least, "{line} = {v}");
    }
    assert_eq!(
        sample(
            &text,
            r#"authn_keys_oauth_requests_total{endpoint="token",outcome="ok"}"#
        ),
        Some(1.0)
    );

    // Unknown methods and paths share one label, whatever a client sends.
    let mut raw = tonic::client::Grpc::new(app.channel().await);
    raw.ready().await.unwrap();
    let _ = raw
        .unary::<GetMyOrgRequest, GetMyOrgResponse, _>(
            tonic::Request::new(GetMyOrgRequest {}),
            http::uri::PathAndQuery::from_static(
                "/zitadel.management.v1.ManagementService/Nope123",
            ),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    app.http
        .get(format!("{}/no/such/path/8271", app.base))
        .send()
        .await
        .unwrap();
    let text = metrics(&app).await;
    assert!(
        !text.contains("Nope123") && !text.contains("8271"),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"authn_keys_requests_total{transport="grpc",method="unmatched",code="Unimplemented"}"#
        )
        .is_some(),
        "{text}"
    );
}

#[tokio::test]
async fn every_answer_has_a_request_id() {
    let app = TestApp::spawn().await;
    let sent = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(sent.headers()["x-request-id"], "trace-abc-123");
    let made = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "bad id\twith <junk>")
        .send()
        .await
        .unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    // gRPC answers carry it too, errors included.
    let mut c = app.grpc().await;
    let err = c
        .get_my_org(tonic::Request::new(GetMyOrgRequest {}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.metadata().get("x-request-id").unwrap().len(), 32);
}

#[tokio::test]
async fn not_ready_without_a_database() {
    let app = TestApp::spawn().await;
    let ready = |app: &TestApp| {
        let url = format!("{}/debug/ready", app.base);
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(ready(&app).await, 200);
    app.services.db.clone().close().await.unwrap();
    // Answered, not hung until the request timeout (30 s): a generous deadline well short of it.
    let answer = tokio::time::timeout(Duration::from_secs(20), ready(&app))
        .await
        .expect("readiness answers without a database");
    assert_eq!(answer, 503);
    let (status, _) = app.rest("GET", "/healthz", None, None, None).await;
    assert_eq!(status, 200, "liveness stays up");
}

#[tokio::test]
async fn json_logs_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let server = server_process(
        dir.path(),
        &addr,
        &[("AUTHN_KEYS_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
        std::process::Stdio::piped(),
    );
    wait_for_listener(&addr).await;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/oauth/v2/token"))
        .header("x-request-id", "json-log-req-7")
        .form(&[("grant_type", JWT_BEARER), ("assertion", "not.a.jwt")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || server.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
    let refused = lines
        .iter()
        .find(|l| l["fields"]["message"] == "oauth request refused")
        .unwrap_or_else(|| panic!("no refusal logged in {text}"));
    assert_eq!(refused["span"]["request_id"], "json-log-req-7");
    assert_eq!(refused["span"]["transport"], "oauth");
    assert!(!text.contains("not.a.jwt"), "the assertion is never logged");
}

#[tokio::test]
async fn a_wildcard_listen_address_without_an_external_url_is_warned_about() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = server_process(
        dir.path(),
        &format!("0.0.0.0:{port}"),
        &[("AUTHN_KEYS_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
        std::process::Stdio::piped(),
    );
    let stdout = server.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.contains("serving gRPC");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    });
    let lines = tokio::time::timeout(Duration::from_secs(20), lines)
        .await
        .expect("the server logs that it serves")
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let warning = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("wildcard")
        })
        .unwrap_or_else(|| panic!("no warning in {lines:?}"));
    assert_eq!(
        warning["fields"]["issuer"],
        format!("http://0.0.0.0:{port}"),
        "{warning}"
    );
}
