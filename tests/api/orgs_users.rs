//! Orgs, members, machine users, and the common auth rules.
use authn_keys::proto::zitadel::{management::v1::*, user::v1::user::Type};
use tonic::{Code, Request};

use crate::helpers::*;

#[tokio::test]
async fn machine_users() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let mut c = app.grpc().await;
    let name = unique("builder");
    let added = c
        .add_machine_user(authed(
            &t,
            None,
            AddMachineUserRequest {
                user_name: name.clone(),
                name: "Builder".into(),
                description: "CI".into(),
                access_token_type: 1,
                user_id: Some("my-own-id".into()),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.user_id, "my-own-id");
    assert_eq!(added.details.unwrap().resource_owner, app.org_id);
    let user = c
        .get_user_by_id(authed(
            &t,
            None,
            GetUserByIdRequest {
                id: "my-own-id".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.user_name, name);
    assert_eq!(user.state, 1);
    assert!(user.login_names[0].starts_with(&format!("{name}@")));
    let Some(Type::Machine(m)) = user.r#type else {
        panic!("machine user expected")
    };
    assert_eq!(
        (m.name.as_str(), m.description.as_str(), m.access_token_type),
        ("Builder", "CI", 1)
    );

    let dup = AddMachineUserRequest {
        user_name: name.clone(),
        name: "x".into(),
        ..Default::default()
    };
    assert_err(
        c.add_machine_user(authed(&t, None, dup)).await,
        Code::AlreadyExists,
        "COMMAND-k2ad3",
    );
    let bad_enum = AddMachineUserRequest {
        user_name: unique("e"),
        name: "x".into(),
        access_token_type: 9,
        ..Default::default()
    };
    assert_err(
        c.add_machine_user(authed(&t, None, bad_enum)).await,
        Code::InvalidArgument,
        "VALIDATION-Enum1",
    );
    let empty = AddMachineUserRequest {
        user_name: String::new(),
        name: "x".into(),
        ..Default::default()
    };
    let st = c
        .add_machine_user(authed(&t, None, empty))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("user_name"));
    let long_desc = AddMachineUserRequest {
        user_name: unique("d"),
        name: "x".into(),
        description: "d".repeat(501),
        ..Default::default()
    };
    assert_eq!(
        c.add_machine_user(authed(&t, None, long_desc))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );

    let removed = c
        .remove_user(authed(
            &t,
            None,
            RemoveUserRequest {
                id: "my-own-id".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(removed.details.unwrap().change_date.is_some());
    assert_err(
        c.get_user_by_id(authed(
            &t,
            None,
            GetUserByIdRequest {
                id: "my-own-id".into(),
            },
        ))
        .await,
        Code::NotFound,
        "QUERY-Dfbg2",
    );
    assert_err(
        c.remove_user(authed(
            &t,
            None,
            RemoveUserRequest {
                id: "my-own-id".into(),
            },
        ))
        .await,
        Code::NotFound,
        "COMMAND-m9od3",
    );
}

#[tokio::test]
async fn orgs_and_members() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let mut c = app.grpc().await;
    let me = c
        .get_my_org(authed(&t, None, GetMyOrgRequest {}))
        .await
        .unwrap()
        .into_inner()
        .org
        .unwrap();
    assert_eq!(
        (me.id.as_str(), me.name.as_str(), me.state),
        (app.org_id.as_str(), "DEFAULT", 1)
    );
    let name = unique("Acme Corp");
    let org = c
        .add_org(authed(&t, None, AddOrgRequest { name: name.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(org.details.unwrap().resource_owner, org.id);
    assert_err(
        c.add_org(authed(&t, None, AddOrgRequest { name })).await,
        Code::AlreadyExists,
        "COMMAND-Org01",
    );
    let other = c
        .get_my_org(authed(&t, Some(&org.id), GetMyOrgRequest {}))
        .await
        .unwrap()
        .into_inner()
        .org
        .unwrap();
    assert_eq!(other.id, org.id);
    assert!(other.primary_domain.starts_with("acme-corp-"));

    let uid = c
        .add_machine_user(authed(
            &t,
            None,
            AddMachineUserRequest {
                user_name: unique("m"),
                name: "m".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user_id;
    let add = |roles: Vec<&str>| AddOrgMemberRequest {
        user_id: uid.clone(),
        roles: roles.into_iter().map(String::from).collect(),
    };
    assert_err(
        c.add_org_member(authed(&t, None, add(vec![]))).await,
        Code::InvalidArgument,
        "ORG-4Mlfs",
    );
    assert_err(
        c.add_org_member(authed(&t, None, add(vec!["KING"]))).await,
        Code::InvalidArgument,
        "ORG-Rol01",
    );
    assert_err(
        c.add_org_member(authed(&t, None, add(vec!["IAM_OWNER"])))
            .await,
        Code::InvalidArgument,
        "ORG-Rol01",
    );
    assert_err(
        c.add_org_member(authed(
            &t,
            None,
            AddOrgMemberRequest {
                user_id: "ghost".into(),
                roles: vec!["ORG_OWNER".into()],
            },
        ))
        .await,
        Code::FailedPrecondition,
        "ORG-GoXOn",
    );
    c.add_org_member(authed(&t, None, add(vec!["ORG_USER_MANAGER"])))
        .await
        .unwrap();
    assert_err(
        c.add_org_member(authed(&t, None, add(vec!["ORG_OWNER"])))
            .await,
        Code::AlreadyExists,
        "Org-PtXi1",
    );
    c.remove_org_member(authed(
        &t,
        None,
        RemoveOrgMemberRequest {
            user_id: uid.clone(),
        },
    ))
    .await
    .unwrap();
    assert_err(
        c.remove_org_member(authed(&t, None, RemoveOrgMemberRequest { user_id: uid }))
            .await,
        Code::NotFound,
        "Org-LFjMV",
    );
}

#[tokio::test]
async fn authentication_and_org_header_rules() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    assert_err(
        c.get_my_org(Request::new(GetMyOrgRequest {})).await,
        Code::Unauthenticated,
        "AUTH-7fs1e",
    );
    assert_err(
        c.get_my_org(authed("garbage", None, GetMyOrgRequest {}))
            .await,
        Code::Unauthenticated,
        "AUTH-7fs2e",
    );
    // A token without the API scope.
    let assertion = app.assertion(&app.admin_key, serde_json::json!({}));
    let (_, body) = app
        .token_request(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &assertion),
            ("scope", "openid"),
        ])
        .await;
    let no_scope = body["access_token"].as_str().unwrap();
    assert_err(
        c.get_my_org(authed(no_scope, None, GetMyOrgRequest {}))
            .await,
        Code::Unauthenticated,
        "AUTH-Aud01",
    );
    let t = app.admin_token().await;
    assert_err(
        c.get_my_org(authed(&t, Some("404404"), GetMyOrgRequest {}))
            .await,
        Code::PermissionDenied,
        "AUTH-5mWD2",
    );
    // Healthz needs nothing.
    c.healthz(Request::new(HealthzRequest {})).await.unwrap();
}
