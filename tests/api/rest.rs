//! The REST gateway: ZITADEL's paths, proto3 JSON shapes checked field by field against
//! contract.json's JSON names, and grpc-gateway error bodies and statuses.
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use crate::helpers::*;

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn machine_key_flow_over_rest() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let (s, user) = app
        .rest("POST", "/users/machine", Some(&t), None, Some(json!({"userName": unique("rest"), "name": "REST", "accessTokenType": "ACCESS_TOKEN_TYPE_BEARER", "unknownField": 1})))
        .await;
    assert_eq!(s, 200, "{user}");
    assert_eq!(keys(&user), ["details", "userId"]);
    let uid = user["userId"].as_str().unwrap().to_owned();
    assert_eq!(user["details"]["sequence"], "1", "uint64 is a string");

    let (s, added) = app
        .rest(
            "POST",
            &format!("/users/{uid}/keys"),
            Some(&t),
            None,
            Some(json!({"type": "KEY_TYPE_JSON", "expirationDate": "2519-04-01T08:45:00.000000Z"})),
        )
        .await;
    assert_eq!(s, 200, "{added}");
    assert_eq!(keys(&added), ["details", "keyDetails", "keyId"]);
    assert_eq!(
        keys(&added["details"]),
        ["creationDate", "resourceOwner", "sequence"]
    );
    assert!(
        added["details"]["creationDate"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let file = KeyFile::parse(
        &STANDARD
            .decode(added["keyDetails"].as_str().unwrap())
            .unwrap(),
    );
    assert_eq!(file.key_id, added["keyId"].as_str().unwrap());
    assert_eq!(
        file.expiration_date.as_deref(),
        Some("2519-04-01T08:45:00Z")
    );
    let key_id = file.key_id.clone();

    let (s, got) = app
        .rest(
            "GET",
            &format!("/users/{uid}/keys/{key_id}"),
            Some(&t),
            None,
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        keys(&got["key"]),
        ["details", "expirationDate", "id", "type"]
    );
    assert_eq!(got["key"]["type"], "KEY_TYPE_JSON");
    assert_eq!(got["key"]["expirationDate"], "2519-04-01T08:45:00Z");
    assert_eq!(
        keys(&got["key"]["details"]),
        ["changeDate", "creationDate", "resourceOwner", "sequence"]
    );

    let (s, list) = app
        .rest(
            "POST",
            &format!("/users/{uid}/keys/_search"),
            Some(&t),
            None,
            Some(json!({"query": {"limit": 10, "asc": true}})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(keys(&list), ["details", "result"]);
    assert_eq!(
        keys(&list["details"]),
        ["processedSequence", "totalResult", "viewTimestamp"]
    );
    assert_eq!(list["details"]["totalResult"], "1");
    assert_eq!(list["result"][0]["id"], key_id.as_str());
    // No body at all is an empty query.
    let (s, _) = app
        .rest(
            "POST",
            &format!("/users/{uid}/keys/_search"),
            Some(&t),
            None,
            None,
        )
        .await;
    assert_eq!(s, 200);

    let (s, removed) = app
        .rest(
            "DELETE",
            &format!("/users/{uid}/keys/{key_id}"),
            Some(&t),
            None,
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        keys(&removed["details"]),
        ["changeDate", "resourceOwner", "sequence"]
    );
    let (s, err) = app
        .rest(
            "GET",
            &format!("/users/{uid}/keys/{key_id}"),
            Some(&t),
            None,
            None,
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(err["code"], 5);
    assert_eq!(
        err["details"][0]["@type"],
        "type.googleapis.com/zitadel.v1.ErrorDetail"
    );
    assert_eq!(err["details"][0]["id"], "QUERY-Dgr3g");
    assert!(err["message"].as_str().unwrap().ends_with("(QUERY-Dgr3g)"));

    let (s, u) = app
        .rest("GET", &format!("/users/{uid}"), Some(&t), None, None)
        .await;
    assert_eq!(s, 200);
    // Proto3 JSON leaves default values out: BEARER (0) is absent.
    assert_eq!(u["user"]["machine"]["name"], "REST");
    assert!(u["user"]["machine"].get("accessTokenType").is_none());
    assert_eq!(u["user"]["state"], "USER_STATE_ACTIVE");
    let (s, org) = app.rest("GET", "/orgs/me", Some(&t), None, None).await;
    assert_eq!(
        (s, org["org"]["id"].as_str()),
        (200, Some(app.org_id.as_str()))
    );
    let (s, _) = app
        .rest("DELETE", &format!("/users/{uid}"), Some(&t), None, None)
        .await;
    assert_eq!(s, 200);
}

/// method, path, with a token?, org header, body, HTTP status, gRPC code, error id if checked.
type ErrorCase = (
    &'static str,
    &'static str,
    bool,
    Option<&'static str>,
    Option<Value>,
    u16,
    i64,
    Option<&'static str>,
);

#[tokio::test]
async fn rest_errors_map_to_http_statuses() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let cases: [ErrorCase; 5] = [
        ("GET", "/orgs/me", false, None, None, 401, 16, None),
        ("GET", "/orgs/me", true, Some("nope"), None, 403, 7, None),
        (
            "POST",
            "/users/nobody/keys",
            true,
            None,
            Some(json!({"type": "KEY_TYPE_JSON"})),
            400,
            9,
            Some("COMMAND-bnipwm1"),
        ),
        (
            "POST",
            "/orgs",
            true,
            None,
            Some(json!({"name": "DEFAULT"})),
            409,
            6,
            None,
        ),
        // An unknown enum name in JSON.
        (
            "POST",
            "/users/x/keys",
            true,
            None,
            Some(json!({"type": "KEY_TYPE_BOGUS"})),
            400,
            3,
            None,
        ),
    ];
    for (method, path, with_token, org, body, status, code, id) in cases {
        let (s, e) = app
            .rest(method, path, with_token.then_some(t.as_str()), org, body)
            .await;
        assert_eq!(
            (s, e["code"].as_i64()),
            (status, Some(code)),
            "{method} {path}: {e}"
        );
        if let Some(id) = id {
            assert_eq!(e["details"][0]["id"], id, "{method} {path}");
        }
    }
    let (s, e) = app.rest("GET", "/projects/1", Some(&t), None, None).await;
    assert_eq!(
        (s, e["details"][0]["id"].as_str()),
        (404, Some("PROJECT-Rd3fs"))
    );
    let (s, e) = app
        .rest("GET", "/no/such/route", Some(&t), None, None)
        .await;
    assert_eq!((s, e["code"].as_i64()), (404, Some(5)));
    let (s, _) = app.rest("GET", "/healthz", None, None, None).await;
    assert_eq!(s, 200);
}
