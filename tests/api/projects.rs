//! Projects, API apps and app keys over gRPC, gRPC-Web and REST.
use authn_keys::proto::zitadel::{
    app::v1::app::Config,
    management::v1::{management_service_client::ManagementServiceClient, *},
    v1::ListQuery,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::json;
use tonic::Code;
use tower::Layer;

use crate::helpers::*;

const BASIC: i32 = 0;
const PRIVATE_KEY_JWT: i32 = 1;

#[tokio::test]
async fn projects_and_apps() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let mut c = app.grpc().await;
    let name = unique("Shop");
    let added = c
        .add_project(authed(
            &t,
            None,
            AddProjectRequest {
                name: name.clone(),
                project_role_check: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.details.as_ref().unwrap().sequence, 1);
    let pid = added.id;
    let project = c
        .get_project_by_id(authed(&t, None, GetProjectByIdRequest { id: pid.clone() }))
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    assert_eq!(
        (
            project.name.as_str(),
            project.state,
            project.project_role_check
        ),
        (name.as_str(), 1, true)
    );
    let bad_label = AddProjectRequest {
        name: unique("x"),
        private_labeling_setting: 9,
        ..Default::default()
    };
    assert_err(
        c.add_project(authed(&t, None, bad_label)).await,
        Code::InvalidArgument,
        "VALIDATION-Enum1",
    );
    assert_err(
        c.add_project(authed(&t, None, AddProjectRequest::default()))
            .await,
        Code::InvalidArgument,
        "VALIDATION-Len01",
    );

    // BASIC: a secret, once; PRIVATE_KEY_JWT: none.
    let basic = c
        .add_api_app(authed(
            &t,
            None,
            AddApiAppRequest {
                project_id: pid.clone(),
                name: "basic".into(),
                auth_method_type: BASIC,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(basic.client_secret.len(), 64);
    assert!(
        basic.client_id.chars().all(|ch| ch.is_ascii_digit()),
        "numeric client id: {}",
        basic.client_id
    );
    assert_eq!(basic.details.unwrap().sequence, 2);
    let stored =
        authn_keys::storage::repo::find_app_by_client_id(&app.services.db, &basic.client_id)
            .await
            .unwrap()
            .unwrap();
    let hash = stored.secret_hash.unwrap();
    assert!(
        hash.starts_with("hmac-sha256$") && !hash.contains(&basic.client_secret),
        "only a keyed hash is stored"
    );
    let jwt_app = c
        .add_api_app(authed(
            &t,
            None,
            AddApiAppRequest {
                project_id: pid.clone(),
                name: "jwt".into(),
                auth_method_type: PRIVATE_KEY_JWT,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(jwt_app.client_secret.is_empty());
    let got = c
        .get_app_by_id(authed(
            &t,
            None,
            GetAppByIdRequest {
                project_id: pid.clone(),
                app_id: jwt_app.app_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .app
        .unwrap();
    let Some(Config::ApiConfig(cfg)) = got.config else {
        panic!("API app config expected")
    };
    assert_eq!(
        (cfg.client_id.as_str(), cfg.auth_method_type),
        (jwt_app.client_id.as_str(), PRIVATE_KEY_JWT)
    );

    let orphan = AddApiAppRequest {
        project_id: "404".into(),
        name: "x".into(),
        auth_method_type: BASIC,
    };
    assert_err(
        c.add_api_app(authed(&t, None, orphan)).await,
        Code::FailedPrecondition,
        "PROJECT-3M9sd",
    );
    let bad_method = AddApiAppRequest {
        project_id: pid.clone(),
        name: "x".into(),
        auth_method_type: 7,
    };
    assert_err(
        c.add_api_app(authed(&t, None, bad_method)).await,
        Code::InvalidArgument,
        "VALIDATION-Enum1",
    );
    assert_err(
        c.get_app_by_id(authed(
            &t,
            None,
            GetAppByIdRequest {
                project_id: pid.clone(),
                app_id: "404".into(),
            },
        ))
        .await,
        Code::NotFound,
        "APP-ii02Ms",
    );

    c.remove_app(authed(
        &t,
        None,
        RemoveAppRequest {
            project_id: pid.clone(),
            app_id: basic.app_id.clone(),
        },
    ))
    .await
    .unwrap();
    assert_err(
        c.remove_app(authed(
            &t,
            None,
            RemoveAppRequest {
                project_id: pid.clone(),
                app_id: basic.app_id,
            },
        ))
        .await,
        Code::NotFound,
        "COMMAND-8iw2c",
    );
    let removed = c
        .remove_project(authed(&t, None, RemoveProjectRequest { id: pid.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert!(removed.details.unwrap().change_date.is_some());
    assert_err(
        c.get_project_by_id(authed(&t, None, GetProjectByIdRequest { id: pid.clone() }))
            .await,
        Code::NotFound,
        "PROJECT-Rd3fs",
    );
    assert_err(
        c.remove_project(authed(&t, None, RemoveProjectRequest { id: pid.clone() }))
            .await,
        Code::NotFound,
        "PROJECT-Rd3fs",
    );
    // The removed project's apps went with it.
    assert!(
        authn_keys::storage::repo::find_app(&app.services.db, &jwt_app.app_id)
            .await
            .unwrap()
            .is_none()
    );
    let events = authn_keys::storage::repo::events_of(&app.services.db, &pid)
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "project.added",
            "project.application.added",
            "project.application.added",
            "project.application.removed",
            "project.removed"
        ]
    );
    assert!(
        events.iter().all(|e| !e.3.contains("$argon2")),
        "no secrets in events"
    );
}

#[tokio::test]
async fn app_keys() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let mut c = app.grpc().await;
    let (pid, aid, client_id, _) = app.project_with_app(&t, PRIVATE_KEY_JWT).await;
    let add = |app_id: &str| AddAppKeyRequest {
        project_id: pid.clone(),
        app_id: app_id.into(),
        r#type: 1,
        ..Default::default()
    };

    let added = c
        .add_app_key(authed(&t, None, add(&aid)))
        .await
        .unwrap()
        .into_inner();
    let text = std::str::from_utf8(&added.key_details).unwrap();
    assert!(
        text.starts_with(&format!(
            r#"{{"type":"application","keyId":"{}","key":"-----BEGIN RSA PRIVATE KEY-----\n"#,
            added.id
        )),
        "{text}"
    );
    assert!(
        text.ends_with(&format!(r#"","appId":"{aid}","clientId":"{client_id}"}}"#)),
        "{text}"
    );
    let d = added.details.unwrap();
    assert!(d.creation_date.is_some());
    assert_eq!(d.sequence, 3, "project added 1, app added 2, key added 3");

    // A sibling app in the same project, with its own key: never listed for the first app.
    let sibling = c
        .add_api_app(authed(
            &t,
            None,
            AddApiAppRequest {
                project_id: pid.clone(),
                name: "sibling".into(),
                auth_method_type: PRIVATE_KEY_JWT,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .app_id;
    let sibling_key = c
        .add_app_key(authed(&t, None, add(&sibling)))
        .await
        .unwrap()
        .into_inner()
        .id;
    let second = c
        .add_app_key(authed(&t, None, add(&aid)))
        .await
        .unwrap()
        .into_inner()
        .id;
    let list = |query| ListAppKeysRequest {
        query,
        app_id: aid.clone(),
        project_id: pid.clone(),
    };
    let listed = c
        .list_app_keys(authed(&t, None, list(None)))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<String> = listed.result.iter().map(|k| k.id.clone()).collect();
    assert_eq!(
        ids,
        [second.clone(), added.id.clone()],
        "this app's keys, newest first"
    );
    assert!(!ids.contains(&sibling_key));
    assert_eq!(listed.details.unwrap().total_result, 2);
    let asc = c
        .list_app_keys(authed(
            &t,
            None,
            list(Some(ListQuery {
                asc: true,
                limit: 1,
                offset: 0,
            })),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(asc.result[0].id, added.id);
    assert_eq!(asc.details.unwrap().total_result, 2);
    assert_err(
        c.list_app_keys(authed(
            &t,
            None,
            list(Some(ListQuery {
                limit: 5000,
                ..Default::default()
            })),
        ))
        .await,
        Code::InvalidArgument,
        "QUERY-4M9fs",
    );
    // The sibling's key is not reachable through the first app.
    assert_err(
        c.get_app_key(authed(
            &t,
            None,
            GetAppKeyRequest {
                project_id: pid.clone(),
                app_id: aid.clone(),
                key_id: sibling_key,
            },
        ))
        .await,
        Code::NotFound,
        "QUERY-S0fQs",
    );
    let got = c
        .get_app_key(authed(
            &t,
            None,
            GetAppKeyRequest {
                project_id: pid.clone(),
                app_id: aid.clone(),
                key_id: added.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!((got.id.as_str(), got.r#type), (added.id.as_str(), 1));

    // Errors: unknown app, BASIC app, past expiration (checked after the app checks).
    assert_err(
        c.add_app_key(authed(&t, None, add("404"))).await,
        Code::FailedPrecondition,
        "COMMAND-sak25",
    );
    let (bpid, basic_app, _, _) = app.project_with_app(&t, BASIC).await;
    let past = Some(authn_keys::proto::wkt::Timestamp {
        seconds: now() - 10,
        nanos: 0,
    });
    let to_basic = AddAppKeyRequest {
        project_id: bpid.clone(),
        app_id: basic_app.clone(),
        r#type: 1,
        expiration_date: past,
    };
    assert_err(
        c.add_app_key(authed(&t, None, to_basic)).await,
        Code::FailedPrecondition,
        "COMMAND-Dff54",
    );
    let wrong_project = AddAppKeyRequest {
        project_id: bpid,
        ..add(&aid)
    };
    assert_err(
        c.add_app_key(authed(&t, None, wrong_project)).await,
        Code::FailedPrecondition,
        "COMMAND-sak25",
    );
    assert_err(
        c.add_app_key(authed(
            &t,
            None,
            AddAppKeyRequest {
                expiration_date: past,
                ..add(&aid)
            },
        ))
        .await,
        Code::InvalidArgument,
        "DOMAIN-dv3t5",
    );
    assert_eq!(
        c.add_app_key(authed(
            &t,
            None,
            AddAppKeyRequest {
                r#type: 0,
                ..add(&aid)
            }
        ))
        .await
        .unwrap_err()
        .code(),
        Code::InvalidArgument
    );

    c.remove_app_key(authed(
        &t,
        None,
        RemoveAppKeyRequest {
            project_id: pid.clone(),
            app_id: aid.clone(),
            key_id: added.id.clone(),
        },
    ))
    .await
    .unwrap();
    assert_err(
        c.remove_app_key(authed(
            &t,
            None,
            RemoveAppKeyRequest {
                project_id: pid.clone(),
                app_id: aid.clone(),
                key_id: added.id.clone(),
            },
        ))
        .await,
        Code::NotFound,
        "COMMAND-D8fi3",
    );
    assert_err(
        c.get_app_key(authed(
            &t,
            None,
            GetAppKeyRequest {
                project_id: pid.clone(),
                app_id: aid.clone(),
                key_id: added.id,
            },
        ))
        .await,
        Code::NotFound,
        "QUERY-S0fQs",
    );
    // Removing the app removes its keys.
    c.remove_app(authed(
        &t,
        None,
        RemoveAppRequest {
            project_id: pid.clone(),
            app_id: aid.clone(),
        },
    ))
    .await
    .unwrap();
    assert!(
        authn_keys::storage::repo::find_key(&app.services.db, &second)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn app_keys_over_rest_and_grpc_web() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let (s, p) = app
        .rest(
            "POST",
            "/projects",
            Some(&t),
            None,
            Some(json!({"name": unique("rest-project")})),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    let pid = p["id"].as_str().unwrap().to_owned();
    let (s, a) = app
        .rest(
            "POST",
            &format!("/projects/{pid}/apps/api"),
            Some(&t),
            None,
            Some(json!({"name": "api", "authMethodType": "API_AUTH_METHOD_TYPE_PRIVATE_KEY_JWT"})),
        )
        .await;
    assert_eq!(s, 200, "{a}");
    let mut fields: Vec<&String> = a.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        ["appId", "clientId", "details"],
        "no clientSecret for PRIVATE_KEY_JWT"
    );
    let aid = a["appId"].as_str().unwrap().to_owned();
    let (s, k) = app
        .rest(
            "POST",
            &format!("/projects/{pid}/apps/{aid}/keys"),
            Some(&t),
            None,
            Some(json!({"type": "KEY_TYPE_JSON", "expirationDate": "2519-04-01T08:45:00.000000Z"})),
        )
        .await;
    assert_eq!(s, 200, "{k}");
    assert_eq!(
        k.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["details", "id", "keyDetails"]
    );
    let file = KeyFile::parse(&STANDARD.decode(k["keyDetails"].as_str().unwrap()).unwrap());
    assert_eq!(
        (file.kind.as_str(), file.app_id.as_deref()),
        ("application", Some(aid.as_str()))
    );
    let kid = k["id"].as_str().unwrap();
    let (s, got) = app
        .rest(
            "GET",
            &format!("/projects/{pid}/apps/{aid}/keys/{kid}"),
            Some(&t),
            None,
            None,
        )
        .await;
    assert_eq!(
        (s, got["key"]["type"].as_str()),
        (200, Some("KEY_TYPE_JSON"))
    );
    assert_eq!(got["key"]["expirationDate"], "2519-04-01T08:45:00Z");
    let (s, list) = app
        .rest(
            "POST",
            &format!("/projects/{pid}/apps/{aid}/keys/_search"),
            Some(&t),
            None,
            Some(json!({"query": {"asc": true}})),
        )
        .await;
    assert_eq!(
        (s, list["details"]["totalResult"].as_str()),
        (200, Some("1"))
    );
    let (s, app_json) = app
        .rest(
            "GET",
            &format!("/projects/{pid}/apps/{aid}"),
            Some(&t),
            None,
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        app_json["app"]["apiConfig"]["authMethodType"],
        "API_AUTH_METHOD_TYPE_PRIVATE_KEY_JWT"
    );
    let (s, e) = app
        .rest(
            "POST",
            &format!("/projects/{pid}/apps/404/keys"),
            Some(&t),
            None,
            Some(json!({"type": "KEY_TYPE_JSON"})),
        )
        .await;
    assert_eq!(
        (s, e["details"][0]["id"].as_str()),
        (400, Some("COMMAND-sak25"))
    );
    let (s, _) = app
        .rest(
            "DELETE",
            &format!("/projects/{pid}/apps/{aid}/keys/{kid}"),
            Some(&t),
            None,
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, e) = app
        .rest(
            "GET",
            &format!("/projects/{pid}/apps/{aid}/keys/{kid}"),
            Some(&t),
            None,
            None,
        )
        .await;
    assert_eq!(
        (s, e["details"][0]["id"].as_str()),
        (404, Some("QUERY-S0fQs"))
    );

    // The same family over gRPC-Web.
    let http1 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<tonic_web::GrpcWebCall<tonic::body::Body>>();
    let mut web = ManagementServiceClient::with_origin(
        tonic_web::GrpcWebClientLayer::new().layer(http1),
        app.base.parse().unwrap(),
    );
    let added = web
        .add_app_key(authed(
            &t,
            None,
            AddAppKeyRequest {
                project_id: pid.clone(),
                app_id: aid.clone(),
                r#type: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let listed = web
        .list_app_keys(authed(
            &t,
            None,
            ListAppKeysRequest {
                query: None,
                app_id: aid.clone(),
                project_id: pid.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .result
            .iter()
            .map(|k| k.id.clone())
            .collect::<Vec<_>>(),
        [added.id]
    );
    let (s, _) = app
        .rest("DELETE", &format!("/projects/{pid}"), Some(&t), None, None)
        .await;
    assert_eq!(s, 200);
}
