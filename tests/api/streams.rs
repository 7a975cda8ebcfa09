//! Streaming calls (health watches, reflection) stay inside the server's limits: each holds a
//! request permit for as long as it streams, ends by itself at the stream bound, and its
//! requests and status messages are bounded like any other call's.
use std::time::Duration;

use prost::Message;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, ServerReflectionResponse,
    server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
    server_reflection_response::MessageResponse,
};

use crate::helpers::*;

/// The status of a plain request that needs a permit (the JWKS).
async fn jwks_status(app: &TestApp) -> u16 {
    app.http
        .get(format!("{}/oauth/v2/keys", app.base))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits (at most 30 s) until a plain request is admitted again.
async fn admitted_again(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = jwks_status(app).await;
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

fn list_services() -> ServerReflectionRequest {
    ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    }
}

/// A reflection stream the client keeps open: its sender, and the answers.
async fn open_reflection(
    app: &TestApp,
) -> (
    tokio::sync::mpsc::Sender<ServerReflectionRequest>,
    tonic::Streaming<ServerReflectionResponse>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(list_services()).await.unwrap();
    let mut answers = ServerReflectionClient::new(app.channel().await)
        .server_reflection_info(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = answers.message().await.unwrap().unwrap();
    assert!(matches!(
        first.message_response,
        Some(MessageResponse::ListServicesResponse(_))
    ));
    (tx, answers)
}

/// The first answer of a reflection call sending `req` alone: its status when it fails.
async fn reflect_once(app: &TestApp, req: ServerReflectionRequest) -> Result<(), tonic::Status> {
    let mut answers = ServerReflectionClient::new(app.channel().await)
        .max_decoding_message_size(8 << 20)
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await?
        .into_inner();
    answers.message().await?;
    Ok(())
}

#[tokio::test]
async fn a_health_watch_holds_a_permit_while_it_is_open() {
    let app = TestApp::spawn_with(|c| c.max_concurrent_requests = 1).await;
    let mut health = HealthClient::new(app.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    assert_eq!(
        jwks_status(&app).await,
        503,
        "the watch holds the only permit"
    );
    // Plain health checks stay exempt.
    health.check(HealthCheckRequest::default()).await.unwrap();
    drop(watch);
    admitted_again(&app).await;
}

#[tokio::test]
async fn a_reflection_stream_holds_a_permit_while_it_is_open() {
    let app = TestApp::spawn_with(|c| c.max_concurrent_requests = 1).await;
    let (tx, mut answers) = open_reflection(&app).await;
    assert_eq!(
        jwks_status(&app).await,
        503,
        "the stream holds the only permit"
    );
    // The client ends its side: the stream ends, and so does its hold.
    drop(tx);
    assert!(answers.message().await.unwrap().is_none());
    admitted_again(&app).await;
}

/// A generous guard against a hang; the bound itself is 1 s.
async fn within<T>(what: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), what)
        .await
        .expect("the stream ended by itself")
}

#[tokio::test]
async fn streams_end_by_themselves_at_the_bound() {
    let app = TestApp::spawn_with(|c| {
        c.max_concurrent_requests = 1;
        c.max_stream_secs = 1;
    })
    .await;
    let mut watch = HealthClient::new(app.channel().await)
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().unwrap();
    let status = within(watch.message()).await.expect_err("an error status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(error_id(&status), "GRPC-Strm1", "{status:?}");
    admitted_again(&app).await;

    let (_tx, mut answers) = open_reflection(&app).await;
    let status = within(answers.message())
        .await
        .expect_err("an error status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(error_id(&status), "GRPC-Strm1", "{status:?}");
    admitted_again(&app).await;
}

fn by_filename(name: String) -> ServerReflectionRequest {
    ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileByFilename(name)),
    }
}

#[tokio::test]
async fn an_oversized_reflection_request_is_resource_exhausted() {
    let app = TestApp::spawn().await;
    let status = reflect_once(&app, by_filename("a".repeat(3 << 20)))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(error_id(&status), "GRPC-Size1", "{status:?}");
    // The stream still serves requests of a proper size.
    reflect_once(&app, list_services()).await.unwrap();
}

/// One gRPC / Connect envelope.
fn envelope(message: &[u8]) -> Vec<u8> {
    let mut f = vec![0];
    f.extend_from_slice(&(message.len() as u32).to_be_bytes());
    f.extend_from_slice(message);
    f
}

#[tokio::test]
async fn oversized_reflection_requests_are_refused_over_grpc_web_and_connect() {
    let app = TestApp::spawn().await;
    let path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
    let body = envelope(&by_filename("a".repeat(3 << 20)).encode_to_vec());
    for content_type in ["application/grpc-web+proto", "application/connect+proto"] {
        let resp = app
            .http
            .post(format!("{}{path}", app.base))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&resp.bytes().await.unwrap()).to_lowercase();
        assert!(
            text.contains("grpc-status:8") || text.contains("resource_exhausted"),
            "{content_type}: {text}"
        );
        assert!(!text.contains("aaaaaaaaaa"), "{content_type}: input echoed");
    }
}

#[tokio::test]
async fn a_reflection_miss_answers_a_short_escaped_message() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 256 * 1024).await;
    let name = format!("evil\nname-{}", "x".repeat(100 * 1024));
    let status = reflect_once(&app, by_filename(name))
        .await
        .expect_err("no such file");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let message = status.message();
    assert!(message.chars().count() <= 256, "{} chars", message.len());
    assert!(!message.contains('\n'), "{message:?}");
    assert!(message.contains("evil\\nname-x"), "{message:?}");
}
