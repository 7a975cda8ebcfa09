//! The Connect protocol (unary) on the same port, for every service: JSON and binary codecs,
//! gzip both ways, Connect-Timeout-Ms, the error shape with the ErrorDetail, 415 / 405 / 501,
//! and the doubled leading slash some SDKs send.
use std::io::{Read, Write};

use authn_keys::proto::zitadel::{management::v1::*, v1::ErrorDetail};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use prost::Message;
use serde_json::{Value, json};

use crate::helpers::*;

const M: &str = "zitadel.management.v1.ManagementService";

struct Answer {
    status: u16,
    content_type: String,
    encoding: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

async fn post(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> Answer {
    let mut req = app.http.post(format!("{}{path}", app.base)).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Answer {
        status: resp.status().as_u16(),
        content_type: header("content-type").unwrap_or_default(),
        encoding: header("content-encoding"),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

#[tokio::test]
async fn json_and_binary_calls() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let bearer = format!("Bearer {t}");
    let auth = ("authorization", bearer.as_str());

    // JSON, as ZITADEL's SDKs send it: no Connect-Protocol-Version, no charset.
    let org = post(
        &app,
        &format!("/{M}/GetMyOrg"),
        &[auth, ("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(org.status, 200);
    assert_eq!(org.content_type, "application/json");
    assert_eq!(org.json()["org"]["id"], json!(app.org_id));

    // With the protocol header and a charset, and unknown fields ignored.
    let user = post(
        &app,
        &format!("/{M}/AddMachineUser"),
        &[
            auth,
            ("content-type", "application/json; charset=utf-8"),
            ("connect-protocol-version", "1"),
        ],
        json!({"userName": unique("connect"), "name": "via connect", "somethingNew": 1})
            .to_string(),
    )
    .await;
    assert_eq!(user.status, 200, "{:?}", user.json());
    let user_id = user.json()["userId"].as_str().unwrap().to_owned();

    // Binary: the bare message both ways.
    let req = AddMachineKeyRequest {
        user_id: user_id.clone(),
        r#type: 1,
        ..Default::default()
    };
    let added = post(
        &app,
        &format!("/{M}/AddMachineKey"),
        &[auth, ("content-type", "application/proto")],
        req.encode_to_vec(),
    )
    .await;
    assert_eq!(added.status, 200);
    assert_eq!(added.content_type, "application/proto");
    let added = AddMachineKeyResponse::decode(added.body.as_slice()).unwrap();
    let file = KeyFile::parse(&added.key_details);
    assert_eq!(file.user_id.as_deref(), Some(user_id.as_str()));

    // The key works, and is listed over JSON with uint64 as strings.
    app.token_for(&file).await;
    let listed = post(
        &app,
        &format!("/{M}/ListMachineKeys"),
        &[auth, ("content-type", "application/json")],
        json!({"userId": user_id, "query": {"limit": 10}}).to_string(),
    )
    .await
    .json();
    assert_eq!(listed["details"]["totalResult"], "1");
    assert_eq!(listed["result"][0]["id"], json!(added.key_id));

    // A doubled leading slash (an SDK host ending in `/`) is the same path.
    let twice = post(
        &app,
        &format!("//{M}/GetMyOrg"),
        &[auth, ("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(twice.status, 200);

    // Health too.
    let health = post(
        &app,
        "/grpc.health.v1.Health/Check",
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(health.json(), json!({"status": "SERVING"}));
}

#[tokio::test]
async fn errors_in_connect_shape() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let bearer = format!("Bearer {t}");
    let json_auth = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];

    let missing = post(
        &app,
        &format!("/{M}/GetMachineKeyByIDs"),
        &json_auth,
        json!({"userId": app.admin_id, "keyId": "404"}).to_string(),
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.content_type, "application/json");
    let body = missing.json();
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["message"], "machine key not found (QUERY-Dgr3g)");
    assert_eq!(body["details"][0]["type"], "zitadel.v1.ErrorDetail");
    assert_eq!(body["details"][0]["debug"]["id"], "QUERY-Dgr3g");
    let value = body["details"][0]["value"].as_str().unwrap();
    assert!(!value.ends_with('='), "unpadded base64");
    let detail = ErrorDetail::decode(STANDARD_NO_PAD.decode(value).unwrap().as_slice()).unwrap();
    assert_eq!(detail.id, "QUERY-Dgr3g");

    // Errors are JSON for binary requests too; codes map to Connect's HTTP statuses.
    let unauthenticated = post(
        &app,
        &format!("/{M}/GetMyOrg"),
        &[("content-type", "application/proto")],
        Vec::new(),
    )
    .await;
    assert_eq!(unauthenticated.status, 401);
    assert_eq!(unauthenticated.content_type, "application/json");
    assert_eq!(unauthenticated.json()["code"], "unauthenticated");
    let precondition = post(
        &app,
        &format!("/{M}/AddMachineKey"),
        &json_auth,
        json!({"userId": "no-such-user", "type": "KEY_TYPE_JSON"}).to_string(),
    )
    .await;
    assert_eq!(precondition.json()["code"], "failed_precondition");
    assert_eq!(precondition.status, 400);

    // Decode errors: invalid_argument, no details.
    for bad in ["{not json", "", "{\"userId\": 5}"] {
        let answer = post(&app, &format!("/{M}/ListMachineKeys"), &json_auth, bad).await;
        assert_eq!(answer.status, 400, "{bad:?}");
        let body = answer.json();
        assert_eq!(body["code"], "invalid_argument", "{bad:?}");
        assert!(body.get("details").is_none(), "{body}");
    }

    // Unknown methods of served services and unknown services: 501 unimplemented.
    for path in [
        format!("/{M}/NoSuchMethod"),
        "/zitadel.app.v2beta.AppService/CreateApplication".to_owned(),
        "/zitadel.user.v2.UserService/SetPhone".to_owned(),
    ] {
        let answer = post(&app, &path, &json_auth, "{}").await;
        assert_eq!(answer.status, 501, "{path}");
        assert_eq!(answer.json()["code"], "unimplemented", "{path}");
    }

    // A content type no protocol serves: 415, also over HTTP/2; GET: 405 with Allow.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let unsupported = h2
        .post(format!("{}/{M}/GetMyOrg", app.base))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsupported.status(), 415);
    assert!(unsupported.headers().get("grpc-status").is_none());
    // gRPC-Web with a JSON codec is not served: 415, not a bare 400.
    let grpc_web_json = app
        .http
        .post(format!("{}/{M}/GetMyOrg", app.base))
        .header("content-type", "application/grpc-web+json")
        .body(vec![0u8, 0, 0, 0, 2, b'{', b'}'])
        .send()
        .await
        .unwrap();
    assert_eq!(grpc_web_json.status(), 415);
    assert_eq!(grpc_web_json.headers()["grpc-status"], "12");
    let get = app
        .http
        .get(format!("{}/{M}/GetMyOrg", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
}

#[tokio::test]
async fn gzip_and_timeouts() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let bearer = format!("Bearer {t}");
    let auth = ("authorization", bearer.as_str());
    let json_type = ("content-type", "application/json");

    // A gzipped request; the answer is gzipped when asked for (and large enough).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json!({"userId": app.admin_id}).to_string().as_bytes())
        .unwrap();
    let compressed = gz.finish().unwrap();
    for _ in 0..6 {
        app.grpc()
            .await
            .add_machine_key(authed(&t, None, new_key(&app.admin_id)))
            .await
            .unwrap();
    }
    let answer = post(
        &app,
        &format!("/{M}/ListMachineKeys"),
        &[
            auth,
            json_type,
            ("content-encoding", "gzip"),
            ("accept-encoding", "gzip"),
        ],
        compressed.clone(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.encoding.as_deref(), Some("gzip"));
    let mut plain = String::new();
    flate2::read::GzDecoder::new(answer.body.as_slice())
        .read_to_string(&mut plain)
        .unwrap();
    let listed: Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(listed["details"]["totalResult"], "7");

    // `Accept-Encoding: identity` (the Python SDK) gets it plain.
    let answer = post(
        &app,
        &format!("/{M}/ListMachineKeys"),
        &[
            auth,
            json_type,
            ("content-encoding", "gzip"),
            ("accept-encoding", "identity"),
        ],
        compressed,
    )
    .await;
    assert_eq!(answer.encoding, None);
    assert_eq!(answer.json()["details"]["totalResult"], "7");

    // Unsupported encodings are refused, naming what is supported.
    let answer = post(
        &app,
        &format!("/{M}/GetMyOrg"),
        &[auth, json_type, ("content-encoding", "br")],
        "{}",
    )
    .await;
    assert_eq!(answer.status, 501);
    assert!(answer.json()["message"].as_str().unwrap().contains("gzip"));

    // A deadline the call cannot meet (key generation takes longer than 1 ms).
    let answer = post(
        &app,
        &format!("/{M}/AddMachineKey"),
        &[auth, json_type, ("connect-timeout-ms", "1")],
        json!({"userId": app.admin_id, "type": "KEY_TYPE_JSON"}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 504);
    assert_eq!(answer.json()["code"], "deadline_exceeded");
    let answer = post(
        &app,
        &format!("/{M}/GetMyOrg"),
        &[auth, json_type, ("connect-timeout-ms", "12345678901")],
        "{}",
    )
    .await;
    assert_eq!(answer.status, 400);
    let answer = post(
        &app,
        &format!("/{M}/GetMyOrg"),
        &[auth, json_type, ("connect-timeout-ms", "60000")],
        "{}",
    )
    .await;
    assert_eq!(answer.status, 200);
}
