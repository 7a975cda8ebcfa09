//! The full loop: admin key file → token → machine user → key → the user's own token →
//! denied until granted a role → allowed; the removed key's assertions are refused.
use authn_keys::proto::zitadel::management::v1::*;
use serde_json::json;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn machine_user_signs_in_with_its_key_and_is_authorized_by_roles() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut c = app.grpc().await;
    let user_id = c
        .add_machine_user(authed(
            &admin,
            None,
            AddMachineUserRequest {
                user_name: unique("robot"),
                name: "Robot".into(),
                description: "does things".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user_id;
    let added = c
        .add_machine_key(authed(
            &admin,
            None,
            AddMachineKeyRequest {
                user_id: user_id.clone(),
                r#type: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let key = KeyFile::parse(&added.key_details);

    let robot = app.token_for(&key).await;
    let get = || GetUserByIdRequest {
        id: user_id.clone(),
    };
    assert_err(
        c.get_user_by_id(authed(&robot, None, get())).await,
        Code::PermissionDenied,
        "AUTH-5mWD2",
    );

    c.add_org_member(authed(
        &admin,
        None,
        AddOrgMemberRequest {
            user_id: user_id.clone(),
            roles: vec!["ORG_USER_VIEWER".into()],
        },
    ))
    .await
    .unwrap();
    let user = c
        .get_user_by_id(authed(&robot, None, get()))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.id, user_id);
    // A viewer still cannot write.
    assert_err(
        c.add_machine_key(authed(
            &robot,
            None,
            AddMachineKeyRequest {
                user_id: user_id.clone(),
                r#type: 1,
                ..Default::default()
            },
        ))
        .await,
        Code::PermissionDenied,
        "AUTH-5mWD2",
    );
    // Role taken away: denied again at once.
    c.remove_org_member(authed(
        &admin,
        None,
        RemoveOrgMemberRequest {
            user_id: user_id.clone(),
        },
    ))
    .await
    .unwrap();
    assert_err(
        c.get_user_by_id(authed(&robot, None, get())).await,
        Code::PermissionDenied,
        "AUTH-5mWD2",
    );

    // The key removed: its assertions are refused.
    c.remove_machine_key(authed(
        &admin,
        None,
        RemoveMachineKeyRequest {
            user_id: user_id.clone(),
            key_id: key.key_id.clone(),
        },
    ))
    .await
    .unwrap();
    let assertion = app.assertion(&key, json!({}));
    let (status, body) = app
        .token_request(&[("grant_type", JWT_BEARER), ("assertion", &assertion)])
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("the key id is unknown"),
        "{body}"
    );
}

#[tokio::test]
async fn jwt_access_tokens_verify_with_the_jwks_and_work_on_the_api() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut c = app.grpc().await;
    let (user_id, key) = app.member_with_key(&admin, 1, "ORG_OWNER").await;
    let token = app.token_for(&key).await;
    assert_eq!(token.matches('.').count(), 2, "a JWT");
    // Verify with the published JWKS, independently of the server.
    let (_, claims) = verified_by_jwks(&app, &token).await;
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["iss"], app.base.as_str());
    // And the API takes it.
    let me = c
        .get_my_org(authed(&token, None, GetMyOrgRequest {}))
        .await
        .unwrap()
        .into_inner()
        .org
        .unwrap();
    assert_eq!(me.id, app.org_id);
    // Removing the user ends its tokens at once.
    c.remove_user(authed(&admin, None, RemoveUserRequest { id: user_id }))
        .await
        .unwrap();
    assert_err(
        c.get_my_org(authed(&token, None, GetMyOrgRequest {})).await,
        Code::Unauthenticated,
        "AUTH-7fs2e",
    );
}
