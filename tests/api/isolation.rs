//! Org isolation: a user of org A can neither see nor touch org B's users and keys, with or
//! without the org header.
use authn_keys::proto::zitadel::management::v1::*;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn other_orgs_objects_are_invisible() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut c = app.grpc().await;
    let org_b = c
        .add_org(authed(&admin, None, AddOrgRequest { name: unique("B") }))
        .await
        .unwrap()
        .into_inner()
        .id;
    let b_user = c
        .add_machine_user(authed(
            &admin,
            Some(&org_b),
            AddMachineUserRequest {
                user_name: unique("b"),
                name: "b".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user_id;
    let b_key = c
        .add_machine_key(authed(
            &admin,
            Some(&org_b),
            AddMachineKeyRequest {
                user_id: b_user.clone(),
                r#type: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .key_id;

    // An ORG_OWNER of org A (the default org).
    let (_, a_key) = app.member_with_key(&admin, 0, "ORG_OWNER").await;
    let a = app.token_for(&a_key).await;

    // Without the header: B's objects answer as if they did not exist.
    assert_err(
        c.get_user_by_id(authed(&a, None, GetUserByIdRequest { id: b_user.clone() }))
            .await,
        Code::NotFound,
        "QUERY-Dfbg2",
    );
    assert_err(
        c.get_machine_key_by_i_ds(authed(
            &a,
            None,
            GetMachineKeyByIDsRequest {
                user_id: b_user.clone(),
                key_id: b_key.clone(),
            },
        ))
        .await,
        Code::NotFound,
        "QUERY-Dgr3g",
    );
    let list = c
        .list_machine_keys(authed(
            &a,
            None,
            ListMachineKeysRequest {
                user_id: b_user.clone(),
                query: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(list.result.is_empty());
    assert_eq!(list.details.unwrap().total_result, 0);
    assert_err(
        c.add_machine_key(authed(
            &a,
            None,
            AddMachineKeyRequest {
                user_id: b_user.clone(),
                r#type: 1,
                ..Default::default()
            },
        ))
        .await,
        Code::FailedPrecondition,
        "COMMAND-bnipwm1",
    );
    assert_err(
        c.remove_machine_key(authed(
            &a,
            None,
            RemoveMachineKeyRequest {
                user_id: b_user.clone(),
                key_id: b_key.clone(),
            },
        ))
        .await,
        Code::NotFound,
        "COMMAND-4m77G",
    );
    assert_err(
        c.remove_user(authed(&a, None, RemoveUserRequest { id: b_user.clone() }))
            .await,
        Code::NotFound,
        "COMMAND-m9od3",
    );
    // With the header: no role there, so denied.
    assert_err(
        c.get_user_by_id(authed(
            &a,
            Some(&org_b),
            GetUserByIdRequest { id: b_user.clone() },
        ))
        .await,
        Code::PermissionDenied,
        "AUTH-5mWD2",
    );
    assert_err(
        c.list_machine_keys(authed(
            &a,
            Some(&org_b),
            ListMachineKeysRequest {
                user_id: b_user.clone(),
                query: None,
            },
        ))
        .await,
        Code::PermissionDenied,
        "AUTH-5mWD2",
    );
    // B's key is untouched.
    let still = c
        .get_machine_key_by_i_ds(authed(
            &admin,
            Some(&org_b),
            GetMachineKeyByIDsRequest {
                user_id: b_user,
                key_id: b_key.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.key.unwrap().id, b_key);
}

#[tokio::test]
async fn other_orgs_projects_apps_and_app_keys_are_invisible() {
    use tonic::Code;
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut c = app.grpc().await;
    let org_b = c
        .add_org(authed(&admin, None, AddOrgRequest { name: unique("B") }))
        .await
        .unwrap()
        .into_inner()
        .id;
    let pid = c
        .add_project(authed(
            &admin,
            Some(&org_b),
            AddProjectRequest {
                name: unique("p"),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let aid = c
        .add_api_app(authed(
            &admin,
            Some(&org_b),
            AddApiAppRequest {
                project_id: pid.clone(),
                name: "a".into(),
                auth_method_type: 1,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .app_id;
    let kid = c
        .add_app_key(authed(
            &admin,
            Some(&org_b),
            AddAppKeyRequest {
                project_id: pid.clone(),
                app_id: aid.clone(),
                r#type: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let (_, a_key) = app.member_with_key(&admin, 0, "ORG_OWNER").await;
    let a = app.token_for(&a_key).await;

    assert_err(
        c.get_project_by_id(authed(&a, None, GetProjectByIdRequest { id: pid.clone() }))
            .await,
        Code::NotFound,
        "PROJECT-Rd3fs",
    );
    assert_err(
        c.get_app_by_id(authed(
            &a,
            None,
            GetAppByIdRequest {
                project_id: pid.clone(),
                app_id: aid.clone(),
            },
        ))
        .await,
        Code::NotFound,
        "APP-ii02Ms",
    );
    assert_err(
        c.add_app_key(authed(
            &a,
            None,
            AddAppKeyRequest {
                project_id: pid.clone(),
                app_id: aid.clone(),
                r#type: 1,
                ..Default::default()
            },
        ))
        .await,
        Code::FailedPrecondition,
        "COMMAND-sak25",
    );
    assert_err(
        c.get_app_key(authed(
            &a,
            None,
            GetAppKeyRequest {
                project_id: pid.clone(),
                app_id: aid.clone(),
                key_id: kid.clone(),
            },
        ))
        .await,
        Code::NotFound,
        "QUERY-S0fQs",
    );
    let list = c
        .list_app_keys(authed(
            &a,
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
    assert!(list.result.is_empty());
    assert_err(
        c.remove_app_key(authed(
            &a,
            None,
            RemoveAppKeyRequest {
                project_id: pid.clone(),
                app_id: aid.clone(),
                key_id: kid.clone(),
            },
        ))
        .await,
        Code::NotFound,
        "COMMAND-D8fi3",
    );
    assert_err(
        c.remove_app(authed(
            &a,
            None,
            RemoveAppRequest {
                project_id: pid.clone(),
                app_id: aid.clone(),
            },
        ))
        .await,
        Code::NotFound,
        "COMMAND-8iw2c",
    );
    assert_err(
        c.remove_project(authed(&a, None, RemoveProjectRequest { id: pid.clone() }))
            .await,
        Code::NotFound,
        "PROJECT-Rd3fs",
    );
    assert_err(
        c.get_project_by_id(authed(
            &a,
            Some(&org_b),
            GetProjectByIdRequest { id: pid.clone() },
        ))
        .await,
        Code::PermissionDenied,
        "AUTH-5mWD2",
    );
    // Untouched for its own org.
    let still = c
        .get_app_key(authed(
            &admin,
            Some(&org_b),
            GetAppKeyRequest {
                project_id: pid,
                app_id: aid,
                key_id: kid.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.key.unwrap().id, kid);
}
