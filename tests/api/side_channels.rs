//! What one tenant may learn about another through answers that are not the objects
//! themselves: the event position listings report, and how v2 refuses an id of another org.
use authn_keys::proto::zitadel::{
    application::v2::{
        CreateApplicationKeyRequest, GetApplicationKeyRequest,
        application_service_client::ApplicationServiceClient,
    },
    management::v1::*,
    user::v2::{DeleteUserRequest, user_service_client::UserServiceClient},
};
use serde_json::{Value, json};
use tonic::Status;

use crate::helpers::*;

const USERS: &str = "zitadel.user.v2.UserService";
const APPS: &str = "zitadel.application.v2.ApplicationService";
/// An id no object has.
const NOBODY: &str = "999999999999999999";

/// Org B with its own ORG_OWNER: (org id, owner's access token, owner's user id).
async fn org_with_owner(app: &TestApp, admin: &str) -> (String, String, String) {
    let mut c = app.grpc().await;
    let org = c
        .add_org(authed(admin, None, AddOrgRequest { name: unique("B") }))
        .await
        .unwrap()
        .into_inner()
        .id;
    let owner = c
        .add_machine_user(authed(
            admin,
            Some(&org),
            AddMachineUserRequest {
                user_name: unique("owner-b"),
                name: "owner".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user_id;
    c.add_org_member(authed(
        admin,
        Some(&org),
        AddOrgMemberRequest {
            user_id: owner.clone(),
            roles: vec!["ORG_OWNER".into()],
        },
    ))
    .await
    .unwrap();
    let key = c
        .add_machine_key(authed(admin, Some(&org), new_key(&owner)))
        .await
        .unwrap()
        .into_inner()
        .key_details;
    let token = app.token_for(&KeyFile::parse(&key)).await;
    (org, token, owner)
}

/// The `processedSequence` of ListMachineKeys and ListUsers for `token` in `org`.
async fn positions(app: &TestApp, token: &str, org: &str, user_id: &str) -> (u64, u64) {
    let mut c = app.grpc().await;
    let keys = c
        .list_machine_keys(authed(
            token,
            Some(org),
            ListMachineKeysRequest {
                user_id: user_id.into(),
                query: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let users = c
        .list_users(authed(token, Some(org), ListUsersRequest::default()))
        .await
        .unwrap()
        .into_inner();
    (
        keys.details.unwrap().processed_sequence,
        users.details.unwrap().processed_sequence,
    )
}

#[tokio::test]
async fn processed_sequence_moves_only_with_the_callers_orgs() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (org_b, owner_b, user_b) = org_with_owner(&app, &admin).await;
    let mut c = app.grpc().await;
    let a_user = c
        .add_machine_user(authed(
            &admin,
            None,
            AddMachineUserRequest {
                user_name: unique("a"),
                name: "a".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user_id;

    let b_before = positions(&app, &owner_b, &org_b, &user_b).await;
    let admin_before = positions(&app, &admin, &app.org_id, &a_user).await;
    assert!(b_before.0 > 0 && b_before.0 == b_before.1, "{b_before:?}");

    // A write in org A: B's owner sees no change, the instance admin does.
    c.add_machine_key(authed(&admin, None, new_key(&a_user)))
        .await
        .unwrap();
    let b_after_a = positions(&app, &owner_b, &org_b, &user_b).await;
    assert_eq!(
        b_after_a, b_before,
        "org A's write shows in org B's listings"
    );
    let admin_after_a = positions(&app, &admin, &app.org_id, &a_user).await;
    assert!(admin_after_a.0 > admin_before.0, "{admin_after_a:?}");
    assert!(admin_after_a.1 > admin_before.1, "{admin_after_a:?}");

    // A write in org B: B's owner sees it, and so does the admin listing org A.
    c.add_machine_key(authed(&owner_b, Some(&org_b), new_key(&user_b)))
        .await
        .unwrap();
    let b_after_b = positions(&app, &owner_b, &org_b, &user_b).await;
    assert!(b_after_b.0 > b_before.0, "{b_after_b:?}");
    assert!(b_after_b.1 > b_before.1, "{b_after_b:?}");
    let admin_after_b = positions(&app, &admin, &app.org_id, &a_user).await;
    assert!(admin_after_b.0 > admin_after_a.0, "{admin_after_b:?}");
    assert_eq!(admin_after_b.0, b_after_b.0, "the newest event is B's");

    // A caller of several orgs (v2's listings): the newest of theirs, none of the others'.
    use authn_keys::{
        domain::list::{KeyOrder, Page, Visible},
        storage::repo,
    };
    let page = Page {
        offset: 0,
        limit: 1,
        asc: false,
    };
    let seen = |orgs: &[&str]| Visible::Some {
        orgs: orgs.iter().map(|o| o.to_string()).collect(),
        own_user: None,
    };
    let newest = async |orgs: &[&str]| {
        repo::search_keys(
            &app.services.db,
            authn_keys::domain::model::OwnerKind::User,
            &seen(orgs),
            &[],
            KeyOrder::Id,
            page,
        )
        .await
        .unwrap()
        .latest_position
    };
    assert_eq!(newest(&[&app.org_id, &org_b]).await, b_after_b.0);
    assert_eq!(newest(&[&app.org_id, "no-such-org"]).await, admin_after_a.0);
    assert_eq!(newest(&["no-such-org", "nor-this"]).await, 0);
    assert_eq!(newest(&[]).await, 0);
}

/// A Connect JSON call: (HTTP status, body).
async fn connect(app: &TestApp, token: &str, path: String, body: Value) -> (u16, Value) {
    let resp = app
        .http
        .post(format!("{}/{path}", app.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// A gRPC refusal as the caller sees it: code, error id and message.
fn refusal<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, Status>,
) -> (tonic::Code, String, String) {
    let status = r.expect_err("the call should fail");
    (
        status.code(),
        error_id(&status),
        status.message().to_owned(),
    )
}

#[tokio::test]
async fn v2_answers_for_another_orgs_objects_as_for_missing_ones() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut c = app.grpc().await;
    // Org B's user, project, PRIVATE_KEY_JWT app and app key.
    let (org_b, _, user_b) = org_with_owner(&app, &admin).await;
    let project_b = c
        .add_project(authed(
            &admin,
            Some(&org_b),
            AddProjectRequest {
                name: unique("project-b"),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let app_b = c
        .add_api_app(authed(
            &admin,
            Some(&org_b),
            AddApiAppRequest {
                project_id: project_b.clone(),
                name: unique("api-b"),
                auth_method_type: 1,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .app_id;
    let app_key_b = c
        .add_app_key(authed(
            &admin,
            Some(&org_b),
            AddAppKeyRequest {
                project_id: project_b.clone(),
                app_id: app_b.clone(),
                r#type: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    // The caller: an ORG_OWNER of org A, with no role in B.
    let (_, key) = app.member_with_key(&admin, 0, "ORG_OWNER").await;
    let a = app.token_for(&key).await;

    // Each case: the request on B's object, and the same request on a missing one. Messages
    // that name the ids the caller sent are compared with those ids masked.
    let cases = [
        (
            format!("{USERS}/DeleteUser"),
            json!({"userId": user_b}),
            json!({"userId": NOBODY}),
        ),
        (
            format!("{USERS}/AddKey"),
            json!({"userId": user_b, "expirationDate": "2040-01-01T00:00:00Z"}),
            json!({"userId": NOBODY, "expirationDate": "2040-01-01T00:00:00Z"}),
        ),
        (
            format!("{USERS}/RemoveKey"),
            json!({"userId": user_b, "keyId": NOBODY}),
            json!({"userId": NOBODY, "keyId": NOBODY}),
        ),
        (
            format!("{APPS}/GetApplicationKey"),
            json!({"keyId": app_key_b}),
            json!({"keyId": NOBODY}),
        ),
        (
            format!("{APPS}/CreateApplicationKey"),
            json!({"projectId": project_b, "applicationId": app_b}),
            json!({"projectId": NOBODY, "applicationId": app_b}),
        ),
        (
            format!("{APPS}/DeleteApplicationKey"),
            json!({"projectId": project_b, "applicationId": app_b, "keyId": app_key_b}),
            json!({"projectId": project_b, "applicationId": app_b, "keyId": NOBODY}),
        ),
    ];
    let masked = |mut body: Value| {
        // `value` is the binary ErrorDetail that `debug` shows decoded.
        if let Some(details) = body["details"].as_array_mut() {
            for d in details {
                d.as_object_mut().unwrap().remove("value");
            }
        }
        let mut text = body.to_string();
        for id in [&project_b, &user_b] {
            text = text.replace(id.as_str(), "<id>");
        }
        text.replace(NOBODY, "<id>")
    };
    for (path, theirs, missing) in cases {
        let (status, body) = connect(&app, &a, path.clone(), theirs).await;
        let (status_missing, body_missing) = connect(&app, &a, path.clone(), missing).await;
        assert!(status >= 400, "{path}: {body}");
        assert_eq!(
            (status, masked(body)),
            (status_missing, masked(body_missing)),
            "{path}: another org's object answers unlike a missing one"
        );
    }
    // B's key is still there.
    let (status, _) = connect(
        &app,
        &admin,
        format!("{APPS}/GetApplicationKey"),
        json!({"keyId": app_key_b}),
    )
    .await;
    assert_eq!(status, 200);

    // The same over gRPC, for the three RPCs the review named.
    let mut users = UserServiceClient::new(app.channel().await);
    let mut apps = ApplicationServiceClient::new(app.channel().await);
    let delete = |id: &str| authed(&a, None, DeleteUserRequest { user_id: id.into() });
    assert_eq!(
        refusal(users.delete_user(delete(&user_b)).await),
        refusal(users.delete_user(delete(NOBODY)).await)
    );
    let get = |id: &str| authed(&a, None, GetApplicationKeyRequest { key_id: id.into() });
    let theirs = refusal(apps.get_application_key(get(&app_key_b)).await);
    assert_eq!(theirs.0, tonic::Code::NotFound);
    assert_eq!(theirs, refusal(apps.get_application_key(get(NOBODY)).await));
    let create = |project: &str| {
        authed(
            &a,
            None,
            CreateApplicationKeyRequest {
                application_id: app_b.clone(),
                project_id: project.into(),
                expiration_date: None,
            },
        )
    };
    let (code, id, message) = refusal(apps.create_application_key(create(&project_b)).await);
    let missing = refusal(apps.create_application_key(create(NOBODY)).await);
    assert_eq!((code, id, message.replace(&project_b, NOBODY)), missing);
}
