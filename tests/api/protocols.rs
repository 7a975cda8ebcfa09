//! One classification of each request's protocol, shared by the metrics, the limits, the
//! Connect gateway and the router: every route family is labelled as what it is in
//! `/metrics`, a request the server sheds is refused in its own protocol with `Retry-After`,
//! and empty REST lists answer as ZITADEL's gateway does.
use std::time::Duration;

use authn_keys::proto::zitadel::management::v1::*;
use base64::{Engine, engine::general_purpose::STANDARD};
use prost::Message;
use serde_json::{Value, json};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::*;

const M: &str = "/zitadel.management.v1.ManagementService";

/// A length-prefixed message: gRPC's frame, gRPC-Web's data frame, Connect's envelope.
fn envelope(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut f = vec![flag];
    f.extend_from_slice(&(message.len() as u32).to_be_bytes());
    f.extend_from_slice(message);
    f
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends one request; `read_body: false` stops after the head (for answers that stream).
async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    read_body: bool,
) -> Answer {
    let mut req = app
        .http
        .request(method.parse().unwrap(), format!("{}{path}", app.base))
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = if read_body {
        resp.bytes().await.unwrap().to_vec()
    } else {
        Vec::new()
    };
    Answer {
        status,
        headers,
        body,
    }
}

async fn metrics(app: &TestApp) -> String {
    let resp = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// The value of the first sample whose line starts with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn requests(transport: &str, method: &str) -> String {
    format!(r#"authn_keys_requests_total{{transport="{transport}",method="{method}","#)
}

#[tokio::test]
async fn every_route_family_is_labelled_as_what_it_is() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let bearer = format!("Bearer {t}");
    let auth = ("authorization", bearer.as_str());
    let get_my_org = format!("{M}/GetMyOrg");
    let no_message = envelope(0, &GetMyOrgRequest {}.encode_to_vec());

    // gRPC.
    app.grpc()
        .await
        .get_my_org(authed(&t, None, GetMyOrgRequest {}))
        .await
        .unwrap();
    // gRPC-Web, binary and text, over HTTP/1.1.
    let web = send(
        &app,
        "POST",
        &get_my_org,
        &[auth, ("content-type", "application/grpc-web+proto")],
        no_message.clone(),
        true,
    )
    .await;
    assert_eq!(web.status, 200);
    assert!(
        web.header("content-type")
            .unwrap()
            .starts_with("application/grpc-web"),
        "{:?}",
        web.headers
    );
    let text = send(
        &app,
        "POST",
        &format!("{M}/Healthz"),
        &[
            ("content-type", "application/grpc-web-text"),
            ("accept", "application/grpc-web-text"),
        ],
        STANDARD.encode(envelope(0, &[])).into_bytes(),
        true,
    )
    .await;
    assert_eq!(
        text.header("content-type"),
        Some("application/grpc-web-text+proto")
    );
    // Connect: unary JSON and binary, and a stream (read no further than its head).
    let json_call = send(
        &app,
        "POST",
        &get_my_org,
        &[auth, ("content-type", "application/json")],
        b"{}".to_vec(),
        true,
    )
    .await;
    assert_eq!(json_call.status, 200, "{:?}", json_call.json());
    let proto_call = send(
        &app,
        "POST",
        &format!("{M}/Healthz"),
        &[("content-type", "application/proto")],
        Vec::new(),
        true,
    )
    .await;
    assert_eq!(proto_call.status, 200);
    let watch = send(
        &app,
        "POST",
        "/grpc.health.v1.Health/Watch",
        &[("content-type", "application/connect+proto")],
        envelope(0, &HealthCheckRequest::default().encode_to_vec()),
        false,
    )
    .await;
    assert_eq!(
        watch.header("content-type"),
        Some("application/connect+proto")
    );
    // REST: v1 and v2.
    let (status, _) = app.rest("GET", "/orgs/me", Some(&t), None, None).await;
    assert_eq!(status, 200);
    let v2 = send(
        &app,
        "POST",
        "/v2/users/keys/search",
        &[auth, ("content-type", "application/json")],
        b"{}".to_vec(),
        true,
    )
    .await;
    assert_eq!(v2.status, 200, "{:?}", v2.json());
    // OAuth and OpenID Connect (the token came from the token endpoint).
    for path in ["/.well-known/openid-configuration", "/oauth/v2/keys"] {
        assert_eq!(
            send(&app, "GET", path, &[], Vec::new(), true).await.status,
            200
        );
    }
    // The console, plain HTTP and a path that is not served.
    send(&app, "GET", "/ui/", &[], Vec::new(), true).await;
    for path in ["/healthz", "/no/such/path"] {
        send(&app, "GET", path, &[], Vec::new(), true).await;
    }

    let text = metrics(&app).await;
    for (transport, method, code, count) in [
        ("grpc", get_my_org.as_str(), "Ok", 1.0),
        ("grpc-web", get_my_org.as_str(), "Ok", 1.0),
        ("grpc-web", &format!("{M}/Healthz"), "Ok", 1.0),
        ("connect", get_my_org.as_str(), "200", 1.0),
        ("connect", &format!("{M}/Healthz"), "200", 1.0),
        ("connect", "/grpc.health.v1.Health/Watch", "200", 1.0),
        ("rest", "GET /management/v1/orgs/me", "200", 1.0),
        ("rest", "POST /v2/users/keys/search", "200", 1.0),
        ("oauth", "POST /oauth/v2/token", "200", 1.0),
        ("oauth", "GET /.well-known/openid-configuration", "200", 1.0),
        ("oauth", "GET /oauth/v2/keys", "200", 1.0),
        ("http", "GET /healthz", "200", 1.0),
        ("http", "unmatched", "404", 1.0),
    ] {
        let line = format!("{}code=\"{code}\"}}", requests(transport, method));
        assert_eq!(sample(&text, &line), Some(count), "{line} in\n{text}");
    }
    assert!(
        sample(&text, &requests("console", "GET /ui/")).is_some(),
        "{text}"
    );
    // Nothing of the API is counted as plain HTTP.
    for line in text.lines().filter(|l| l.contains(r#"transport="http""#)) {
        assert!(
            !line.contains("/v2/") && !line.contains("/management/") && !line.contains("/oauth/"),
            "{line}"
        );
    }
    // Only the token endpoint's outcome is an OAuth outcome.
    assert_eq!(
        sample(
            &text,
            r#"authn_keys_oauth_requests_total{endpoint="token",outcome="ok"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

/// Waits (at most 30 s) until a request that needs a permit is admitted again.
async fn admitted_again(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = send(app, "GET", "/oauth/v2/keys", &[], Vec::new(), true)
            .await
            .status;
        if status == 200 {
            return;
        }
        assert_eq!(status, 503, "only shedding may refuse the JWKS");
        assert!(
            tokio::time::Instant::now() < deadline,
            "requests are still shed 30 s after the stream closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_shed_request_is_refused_in_its_own_protocol() {
    let app = TestApp::spawn_with(|c| c.max_concurrent_requests = 1).await;
    let t = app.admin_token().await;
    let bearer = format!("Bearer {t}");
    let auth = ("authorization", bearer.as_str());
    let get_my_org = format!("{M}/GetMyOrg");
    // An open health watch holds the only permit.
    let mut watch = HealthClient::new(app.channel().await)
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().unwrap();

    // gRPC: UNAVAILABLE with the error id and retry-after.
    let err = app
        .grpc()
        .await
        .get_my_org(authed(&t, None, GetMyOrgRequest {}))
        .await
        .expect_err("shed");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(error_id(&err), "SERVER-Busy1");
    assert_eq!(err.metadata().get("retry-after").unwrap(), "1");
    // gRPC-Web: the status in the head, as gRPC-Web clients read it.
    let web = send(
        &app,
        "POST",
        &get_my_org,
        &[auth, ("content-type", "application/grpc-web+proto")],
        envelope(0, &[]),
        true,
    )
    .await;
    assert_eq!(web.header("grpc-status"), Some("14"), "{:?}", web.headers);
    assert_eq!(web.header("retry-after"), Some("1"));
    // Connect unary: its error JSON with the detail.
    let unary = send(
        &app,
        "POST",
        &get_my_org,
        &[auth, ("content-type", "application/json")],
        b"{}".to_vec(),
        true,
    )
    .await;
    assert_eq!(unary.status, 503);
    assert_eq!(unary.header("retry-after"), Some("1"));
    let body = unary.json();
    assert_eq!(body["code"], "unavailable", "{body}");
    assert_eq!(body["details"][0]["debug"]["id"], "SERVER-Busy1", "{body}");
    // A Connect stream: HTTP 200 and the error in the end-of-stream envelope.
    let stream = send(
        &app,
        "POST",
        "/grpc.health.v1.Health/Watch",
        &[("content-type", "application/connect+proto")],
        envelope(0, &HealthCheckRequest::default().encode_to_vec()),
        true,
    )
    .await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        stream.header("content-type"),
        Some("application/connect+proto")
    );
    assert_eq!(stream.header("retry-after"), Some("1"));
    assert_eq!(stream.body[0], 0x02, "an end-of-stream envelope");
    let end: Value = serde_json::from_slice(&stream.body[5..]).unwrap();
    assert_eq!(end["error"]["code"], "unavailable", "{end}");
    assert_eq!(end["error"]["details"][0]["debug"]["id"], "SERVER-Busy1");
    // REST, v1 and v2: the REST error body.
    for (method, path) in [
        ("GET", "/management/v1/orgs/me"),
        ("POST", "/v2/users/keys/search"),
    ] {
        let rest = send(
            &app,
            method,
            path,
            &[auth, ("content-type", "application/json")],
            b"{}".to_vec(),
            true,
        )
        .await;
        assert_eq!(rest.status, 503, "{path}");
        assert_eq!(rest.header("retry-after"), Some("1"), "{path}");
        let body = rest.json();
        assert_eq!(body["code"], 14, "{path}: {body}");
        assert_eq!(body["details"][0]["id"], "SERVER-Busy1", "{path}: {body}");
    }
    // OAuth and OpenID Connect: RFC 6749's error JSON.
    for (method, path) in [
        ("POST", "/oauth/v2/token"),
        ("GET", "/.well-known/openid-configuration"),
    ] {
        let oauth = send(&app, method, path, &[], Vec::new(), true).await;
        assert_eq!(oauth.status, 503, "{path}");
        assert_eq!(oauth.header("retry-after"), Some("1"), "{path}");
        assert_eq!(oauth.json()["error"], "temporarily_unavailable", "{path}");
    }
    // Liveness is exempt.
    assert_eq!(
        send(&app, "GET", "/healthz", &[], Vec::new(), true)
            .await
            .status,
        200
    );

    drop(watch);
    admitted_again(&app).await;
    let text = metrics(&app).await;
    for (transport, method, code) in [
        ("grpc", get_my_org.as_str(), "Unavailable"),
        ("grpc-web", get_my_org.as_str(), "Unavailable"),
        ("connect", get_my_org.as_str(), "503"),
        ("connect", "/grpc.health.v1.Health/Watch", "200"),
        ("rest", "GET /management/v1/orgs/me", "503"),
        ("rest", "POST /v2/users/keys/search", "503"),
        ("oauth", "POST /oauth/v2/token", "503"),
        ("oauth", "GET /.well-known/openid-configuration", "503"),
    ] {
        let line = format!("{}code=\"{code}\"}}", requests(transport, method));
        assert_eq!(sample(&text, &line), Some(1.0), "{line} in\n{text}");
    }
    // The refused grant is a token outcome; the refused discovery is none.
    assert_eq!(
        sample(
            &text,
            r#"authn_keys_oauth_requests_total{endpoint="token",outcome="temporarily_unavailable"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

/// ZITADEL's REST gateway marshals with protojson's defaults (no `EmitUnpopulated`): an empty
/// list answers without `result`, and a zero total without `totalResult`, as unpopulated
/// fields are left out of every answer ("we do not serialise the default values",
/// zitadel/zitadel#6114). So do v1 and v2 REST here, and Connect (protobuf's JSON mapping).
#[tokio::test]
async fn empty_rest_lists_answer_as_zitadel_does() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let (status, user) = app
        .rest(
            "POST",
            "/users/machine",
            Some(&t),
            None,
            Some(json!({"userName": unique("nokeys"), "name": "no keys"})),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    let user_id = user["userId"].as_str().unwrap();

    let (status, v1) = app
        .rest(
            "POST",
            &format!("/users/{user_id}/keys/_search"),
            Some(&t),
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{v1}");
    assert_eq!(keys(&v1), ["details"], "{v1}");
    assert_eq!(
        keys(&v1["details"]),
        ["processedSequence", "viewTimestamp"],
        "{v1}"
    );

    let v2 = send(
        &app,
        "POST",
        "/v2/users/keys/search",
        &[
            ("authorization", &format!("Bearer {t}")),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(&json!({"filters": [{"userIdFilter": {"id": user_id}}]})).unwrap(),
        true,
    )
    .await;
    assert_eq!(v2.status, 200);
    assert_eq!(v2.json(), json!({"pagination": {"appliedLimit": "100"}}));

    // The same list with one key has both.
    let (status, _) = app
        .rest(
            "POST",
            &format!("/users/{user_id}/keys"),
            Some(&t),
            None,
            Some(json!({"type": "KEY_TYPE_JSON"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, v1) = app
        .rest(
            "POST",
            &format!("/users/{user_id}/keys/_search"),
            Some(&t),
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(keys(&v1), ["details", "result"], "{v1}");
    assert_eq!(v1["details"]["totalResult"], "1", "{v1}");
}
