//! Bad input gets a clear error, never a panic or a 500, and the server keeps serving.
use authn_keys::proto::zitadel::management::v1::*;
use serde_json::json;
use tonic::Code;

use crate::helpers::*;

/// Raw gRPC over HTTP/2 with arbitrary bytes as the message.
async fn raw_grpc(app: &TestApp, method: &str, message: &[u8], token: &str) -> tonic::Status {
    use tonic::codegen::http;
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(format!(
        "{}/zitadel.management.v1.ManagementService/{method}",
        app.base
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("authorization", format!("Bearer {token}"))
    .body(http_body_util::Full::new(bytes::Bytes::from(frame)))
    .unwrap();
    let resp = client.request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    use http_body_util::BodyExt;
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    tonic::Status::from_header_map(&trailers)
        .or_else(|| tonic::Status::from_header_map(&parts.headers))
        .expect("a grpc-status")
}

#[tokio::test]
async fn malformed_protobuf_oversized_ids_and_unknown_enums() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    // Field 1 declared as a 100-byte string, but only 3 bytes follow.
    let status = raw_grpc(&app, "GetUserByID", &[0x0a, 100, b'a', b'b', b'c'], &t).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(error_id(&status), "GRPC-Dec01");
    let status = raw_grpc(&app, "NoSuchMethod", &[], &t).await;
    assert_eq!(status.code(), Code::Unimplemented);

    let mut c = app.grpc().await;
    let long = "9".repeat(201);
    let st = c
        .get_user_by_id(authed(&t, None, GetUserByIdRequest { id: long.clone() }))
        .await
        .unwrap_err();
    assert_eq!(
        (st.code(), error_id(&st).as_str()),
        (Code::InvalidArgument, "VALIDATION-Len01")
    );
    let st = c
        .get_machine_key_by_i_ds(authed(
            &t,
            None,
            GetMachineKeyByIDsRequest {
                user_id: "u".into(),
                key_id: long,
            },
        ))
        .await
        .unwrap_err();
    assert!(st.message().contains("key_id"), "{st:?}");
    let st = c
        .add_machine_key(authed(
            &t,
            None,
            AddMachineKeyRequest {
                user_id: app.admin_id.clone(),
                r#type: 42,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (st.code(), error_id(&st).as_str()),
        (Code::InvalidArgument, "VALIDATION-Enum1")
    );

    // Malformed JSON over REST.
    let resp = app
        .http
        .post(format!("{}/management/v1/users/machine", app.base))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{\"userName\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["details"][0]["id"], "REST-Json1");
    let (s, body) = app
        .rest(
            "POST",
            "/users/machine",
            Some(&t),
            None,
            Some(json!({"userName": 5})),
        )
        .await;
    assert_eq!(s, 400);
    // A value of the wrong kind is named by where it sits in the body.
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("the request body is not valid JSON for this method: userName: "),
        "{body}"
    );
    for (path, json, field) in [
        (
            "/v1/policies/keys",
            json!({"policy": {"maxLifetime": "90d"}}),
            "policy.maxLifetime: ",
        ),
        (
            "/v1/keys",
            json!({"userId": app.admin_id, "publicKey": "-----BEGIN PUBLIC KEY-----"}),
            "publicKey: ",
        ),
        (
            "/v1/keys",
            json!({"userId": app.admin_id, "expirationDate": "tomorrow"}),
            "expirationDate: ",
        ),
    ] {
        let method = if path == "/v1/policies/keys" {
            "PUT"
        } else {
            "POST"
        };
        let resp = app
            .http
            .request(method.parse().unwrap(), format!("{}{path}", app.base))
            .bearer_auth(&t)
            .json(&json)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{json}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["details"][0]["id"], "REST-Json1", "{body}");
        assert!(
            body["message"].as_str().unwrap_or_default().contains(field),
            "{body}"
        );
    }

    // Still serving.
    c.healthz(tonic::Request::new(HealthzRequest {}))
        .await
        .unwrap();
}
