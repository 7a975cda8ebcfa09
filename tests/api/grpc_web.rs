//! gRPC-Web over HTTP/1.1: the typed client through tonic-web's client layer (binary), and
//! hand-framed requests for the text mode and for truncated frames.
use authn_keys::proto::zitadel::management::v1::{
    management_service_client::ManagementServiceClient, *,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use prost::Message;
use tonic::Code;
use tower::Layer;

use crate::helpers::*;

fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![flag];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Splits a gRPC-Web body into (data messages, trailer text).
fn unframe(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let (mut data, mut trailers) = (Vec::new(), String::new());
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = body[5..5 + len].to_vec();
        if body[0] & 0x80 != 0 {
            trailers = String::from_utf8(payload).unwrap();
        } else {
            data.push(payload);
        }
        body = &body[5 + len..];
    }
    (data, trailers)
}

/// grpc-web-text bodies are base64 chunks, each padded on its own.
fn decode_chunks(text: &str) -> Vec<u8> {
    let (mut out, mut chunk) = (Vec::new(), String::new());
    for quantum in text.as_bytes().chunks(4) {
        chunk.push_str(std::str::from_utf8(quantum).unwrap());
        if quantum.contains(&b'=') {
            out.extend(STANDARD.decode(&chunk).unwrap());
            chunk.clear();
        }
    }
    out.extend(STANDARD.decode(&chunk).unwrap());
    out
}

#[tokio::test]
async fn typed_client_over_grpc_web_binary() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let http1 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<tonic_web::GrpcWebCall<tonic::body::Body>>();
    let mut c = ManagementServiceClient::with_origin(
        tonic_web::GrpcWebClientLayer::new().layer(http1),
        app.base.parse().unwrap(),
    );
    let uid = c
        .add_machine_user(authed(
            &t,
            None,
            AddMachineUserRequest {
                user_name: unique("web"),
                name: "web".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user_id;
    let added = c
        .add_machine_key(authed(
            &t,
            None,
            AddMachineKeyRequest {
                user_id: uid.clone(),
                r#type: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let file = KeyFile::parse(&added.key_details);
    assert_eq!(file.user_id.as_deref(), Some(uid.as_str()));
    let list = c
        .list_machine_keys(authed(
            &t,
            None,
            ListMachineKeysRequest {
                user_id: uid.clone(),
                query: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.result[0].id, added.key_id);
    let st = c
        .get_machine_key_by_i_ds(authed(
            &t,
            None,
            GetMachineKeyByIDsRequest {
                user_id: uid,
                key_id: "1".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (st.code(), error_id(&st).as_str()),
        (Code::NotFound, "QUERY-Dgr3g")
    );
}

#[tokio::test]
async fn text_mode_cors_and_truncated_frames() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let url = format!(
        "{}/zitadel.management.v1.ManagementService/GetMyOrg",
        app.base
    );
    let body = STANDARD.encode(frame(0, &GetMyOrgRequest {}.encode_to_vec()));
    let resp = app
        .http
        .post(&url)
        .header("content-type", "application/grpc-web-text")
        .header("accept", "application/grpc-web-text")
        .header("x-grpc-web", "1")
        .header("origin", "http://console.example")
        .bearer_auth(&t)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/grpc-web-text")
    );
    // Any origin by default, without credentials.
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let raw = decode_chunks(resp.text().await.unwrap().trim());
    let (data, trailers) = unframe(&raw);
    let org = GetMyOrgResponse::decode(data[0].as_slice())
        .unwrap()
        .org
        .unwrap();
    assert_eq!(org.id, app.org_id);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");

    // Browser preflight.
    let pre = app
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://console.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,authorization",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 200);

    // A frame that promises 100 bytes and brings 3.
    let mut truncated = vec![0u8, 0, 0, 0, 100];
    truncated.extend_from_slice(b"abc");
    let resp = app
        .http
        .post(format!(
            "{}/zitadel.management.v1.ManagementService/GetUserByID",
            app.base
        ))
        .header("content-type", "application/grpc-web+proto")
        .bearer_auth(&t)
        .body(truncated)
        .send()
        .await
        .unwrap();
    let status_header = resp
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    let (_, trailers) = unframe(&resp.bytes().await.unwrap());
    let code = status_header.unwrap_or_else(|| {
        trailers
            .lines()
            .find_map(|l| l.strip_prefix("grpc-status:"))
            .unwrap_or("")
            .trim()
            .to_owned()
    });
    assert_eq!(
        code,
        (Code::InvalidArgument as i32).to_string(),
        "{trailers}"
    );

    // Still serving.
    let ok = app
        .http
        .post(&url)
        .header("content-type", "application/grpc-web+proto")
        .bearer_auth(&t)
        .body(frame(0, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
