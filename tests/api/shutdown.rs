//! Shutdown drains: a request in flight when the signal comes still gets its answer, the
//! server then returns cleanly, and new connections are refused.
use std::time::Duration;

use authn_keys::{app::App, config::Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// Reads from `conn` until the end of a response head; returns the head.
async fn read_head(conn: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(30), conn.read(&mut byte))
            .await
            .expect("a response head within 30 s")
            .unwrap();
        assert_eq!(n, 1, "the connection closed inside a head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn in_flight_requests_finish_then_the_server_stops() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let key_path = dir.path().join("admin-key.json");
    let app = App::build(Config::for_tests(&url, key_path.clone()))
        .await
        .unwrap();
    let addr = app.local_addr();
    let base = format!("http://{addr}");
    let admin_id = app.instance.admin_user_id.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    // An admin token, the long way (no TestApp here).
    let key = KeyFile::parse(&std::fs::read(&key_path).unwrap());
    let claims = serde_json::json!({"iss": admin_id, "sub": admin_id, "aud": base, "iat": now(), "exp": now() + 60});
    let assertion = sign_jwt("RS256", &key.key_id, &claims, &key.private_key());
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/oauth/v2/token"))
        .form(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &assertion),
            ("scope", API_SCOPE),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();

    // A REST AddMachineKey whose body is held back until the server asks for it: its
    // `100 Continue` shows the request is in the handler's hands.
    let body = serde_json::json!({"type": "KEY_TYPE_JSON"}).to_string();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /management/v1/users/{admin_id}/keys HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let interim = read_head(&mut conn).await;
    assert!(interim.starts_with("HTTP/1.1 100 "), "{interim}");

    // The signal comes; once the port refuses connections, shutdown is under way.
    stop.send(()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the port still accepts 30 s after the signal"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The request in flight gets its whole answer.
    conn.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut answer))
        .await
        .expect("the in-flight call is answered within 30 s")
        .expect("and not cut off");
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let json = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let added: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert!(added["keyDetails"].as_str().is_some_and(|d| !d.is_empty()));
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops after draining")
        .unwrap()
        .expect("and returns cleanly");
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "no longer listening"
    );
}
