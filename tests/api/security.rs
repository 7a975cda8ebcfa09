//! The attacks of the trust review, each reproduced over real sockets: privilege escalation
//! through a lower role, cross-tenant audiences, tokens outliving their key or user, replayed
//! assertions, unthrottled failures, private answers without `no-store`.
use authn_keys::proto::zitadel::management::v1::*;
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::*;

/// A new org with a PRIVATE_KEY_JWT API app and one app key: (org, project, app key).
async fn org_with_app(app: &TestApp, admin: &str) -> (String, String, KeyFile) {
    let mut c = app.grpc().await;
    let org = c
        .add_org(authed(
            admin,
            None,
            AddOrgRequest {
                name: unique("org"),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let project = c
        .add_project(authed(
            admin,
            Some(&org),
            AddProjectRequest {
                name: unique("p"),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let app_id = c
        .add_api_app(authed(
            admin,
            Some(&org),
            AddApiAppRequest {
                project_id: project.clone(),
                name: unique("api"),
                auth_method_type: 1,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .app_id;
    let key = c
        .add_app_key(authed(
            admin,
            Some(&org),
            AddAppKeyRequest {
                project_id: project.clone(),
                app_id,
                r#type: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .key_details;
    (org, project, KeyFile::parse(&key))
}

#[tokio::test]
async fn a_user_manager_cannot_take_over_or_remove_the_admin() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, manager_key) = app.member_with_key(&admin, 0, "ORG_USER_MANAGER").await;
    let manager = app.token_for(&manager_key).await;
    let admin_id = app.admin_id.clone();

    // The reported path, over REST: a key file for the IAM_OWNER.
    let (status, body) = app
        .rest(
            "POST",
            &format!("/users/{admin_id}/keys"),
            Some(&manager),
            None,
            Some(json!({"type": "KEY_TYPE_JSON"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["details"][0]["id"], "AUTH-Priv01", "{body}");
    assert!(body["message"].as_str().unwrap().contains("IAM_OWNER"));
    // ... or deleting the admin, or its key, over gRPC.
    let mut c = app.grpc().await;
    assert_err(
        c.remove_user(authed(
            &manager,
            None,
            RemoveUserRequest {
                id: admin_id.clone(),
            },
        ))
        .await,
        Code::PermissionDenied,
        "AUTH-Priv01",
    );
    assert_err(
        c.remove_machine_key(authed(
            &manager,
            None,
            RemoveMachineKeyRequest {
                user_id: admin_id.clone(),
                key_id: app.admin_key.key_id.clone(),
            },
        ))
        .await,
        Code::PermissionDenied,
        "AUTH-Priv01",
    );
    // An ORG_OWNER is not an IAM_OWNER either, nor may it strip the admin's membership.
    let (_, owner_key) = app.member_with_key(&admin, 0, "ORG_OWNER").await;
    let owner = app.token_for(&owner_key).await;
    assert_err(
        c.add_machine_key(authed(&owner, None, new_key(&admin_id)))
            .await,
        Code::PermissionDenied,
        "AUTH-Priv01",
    );
    assert_err(
        c.remove_org_member(authed(
            &owner,
            None,
            RemoveOrgMemberRequest {
                user_id: admin_id.clone(),
            },
        ))
        .await,
        Code::PermissionDenied,
        "AUTH-Priv01",
    );
    // A manager may not touch an ORG_OWNER, but may manage users whose roles it holds.
    let (owner_id, _) = app.member_with_key(&admin, 0, "ORG_OWNER").await;
    assert_err(
        c.remove_user(authed(&manager, None, RemoveUserRequest { id: owner_id }))
            .await,
        Code::PermissionDenied,
        "AUTH-Priv01",
    );
    let (peer_id, _) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    let added = c
        .add_machine_key(authed(&manager, None, new_key(&peer_id)))
        .await
        .expect("a manager manages a viewer")
        .into_inner();
    assert!(!added.key_details.is_empty());
    c.remove_user(authed(&manager, None, RemoveUserRequest { id: peer_id }))
        .await
        .expect("and may remove it");
    // The admin still works.
    app.admin_token().await;
}

#[tokio::test]
async fn the_last_iam_owner_cannot_be_removed_and_break_glass_recovers() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut c = app.grpc().await;
    assert_err(
        c.remove_user(authed(
            &admin,
            None,
            RemoveUserRequest {
                id: app.admin_id.clone(),
            },
        ))
        .await,
        Code::FailedPrecondition,
        "COMMAND-IamLst",
    );

    // Break-glass through the real CLI, on the same database, while the server runs.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("glass.json");
    let run = |out: &std::path::Path| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_authn-keys"));
        cmd.arg("admin-key")
            .arg("--out")
            .arg(out)
            .env("AUTHN_KEYS_DATABASE_URL", &app.db_url)
            .env("AUTHN_KEYS_MASTER_KEY", "test-master-key-0123456789abcdef")
            .env("RUST_LOG", "warn");
        output_of(cmd)
    };
    let done = run(&out).await;
    assert!(done.status.success(), "{done:?}");
    let glass = KeyFile::parse(&std::fs::read(&out).unwrap());
    assert_eq!(glass.user_id.as_deref(), Some(app.admin_id.as_str()));
    // Never overwritten.
    assert!(!run(&out).await.status.success());
    let glass_token = app.token_for(&glass).await;
    c.add_org(authed(
        &glass_token,
        None,
        AddOrgRequest {
            name: unique("glass"),
        },
    ))
    .await
    .expect("the break-glass key holds IAM_OWNER");

    // With no IAM_OWNER left at all (say, the row was lost), it makes a new admin.
    use authn_keys::storage::ConnectionTrait;
    app.services
        .db
        .execute_unprepared("DELETE FROM instance_members")
        .await
        .unwrap();
    let out2 = dir.path().join("glass2.json");
    assert!(run(&out2).await.status.success());
    let fresh = KeyFile::parse(&std::fs::read(&out2).unwrap());
    let fresh_id = fresh.user_id.clone().unwrap();
    assert_ne!(fresh_id, app.admin_id);
    let fresh_token = app.token_for(&fresh).await;
    c.add_org(authed(
        &fresh_token,
        None,
        AddOrgRequest {
            name: unique("fresh"),
        },
    ))
    .await
    .expect("the new admin holds IAM_OWNER");
    // Audited, with the break-glass actor.
    let events = authn_keys::storage::repo::events_of(&app.services.db, &fresh_id)
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "user.machine.added",
            "instance.member.added",
            "user.machine.key.added"
        ]
    );
    assert!(events.iter().all(|e| e.2 == "system:break-glass"));
}

#[tokio::test]
async fn tokens_name_only_projects_of_the_users_own_org() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, b_project, b_app_key) = org_with_app(&app, &admin).await;
    let (_, a_key) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;

    // A foreign project and an unknown one are refused alike.
    let (status, foreign) = app.grant(&a_key, &project_scope(&b_project)).await;
    assert_eq!(
        (status, foreign["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, unknown) = app.grant(&a_key, &project_scope("424242")).await;
    assert_eq!(
        (status, unknown["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    assert_eq!(
        foreign["error_description"]
            .as_str()
            .unwrap()
            .replace(&b_project, "ID"),
        unknown["error_description"]
            .as_str()
            .unwrap()
            .replace("424242", "ID")
    );

    // A user cannot choose the foreign project's id as its own (ids of digits are the
    // server's), so no token of ours can name that project as its subject.
    let mut c = app.grpc().await;
    assert_err(
        c.add_machine_user(authed(
            &admin,
            None,
            AddMachineUserRequest {
                user_name: unique("lookalike"),
                name: "x".into(),
                user_id: Some(b_project.clone()),
                ..Default::default()
            },
        ))
        .await,
        Code::InvalidArgument,
        "VALIDATION-Id002",
    );

    // Custom ids are restricted to a safe character set.
    assert_err(
        c.add_machine_user(authed(
            &admin,
            None,
            AddMachineUserRequest {
                user_name: unique("odd"),
                name: "x".into(),
                user_id: Some("a b/../c".into()),
                ..Default::default()
            },
        ))
        .await,
        Code::InvalidArgument,
        "VALIDATION-Id001",
    );

    // Within one org it works, and the answer names the user's org.
    let (pid, aid, _, _) = app.project_with_app(&admin, 1).await;
    let a_app_key = app.app_key(&admin, &pid, &aid).await;
    let (status, body) = app.grant(&a_key, &project_scope(&pid)).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (_, answer) = app.introspect_as(&a_app_key, &token).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(
        answer["urn:zitadel:iam:user:resourceowner:id"],
        app.org_id.as_str()
    );
    // ... and only for that project's apps.
    let (_, answer) = app.introspect_as(&b_app_key, &token).await;
    assert_eq!(answer, json!({"active": false}));
}

#[tokio::test]
async fn the_token_endpoint_reveals_nothing_about_keys_the_caller_cannot_use() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, _, b_app_key) = org_with_app(&app, &admin).await;
    let (a_user, a_key) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    // Assertions under other objects' key ids, signed with the caller's own key.
    let claims =
        json!({"iss": a_user, "sub": a_user, "aud": app.base, "iat": now(), "exp": now() + 60});
    let description = |kid: &str| {
        let jwt = sign_jwt("RS256", kid, &claims, &a_key.private_key());
        let app = &app;
        let kid = kid.to_owned();
        async move {
            let (status, body) = app
                .token_request(&[("grant_type", JWT_BEARER), ("assertion", &jwt)])
                .await;
            assert_eq!(status, 400, "{body}");
            body["error_description"]
                .as_str()
                .unwrap()
                .replace(&kid, "KID")
        }
    };
    let unknown = description("999999").await;
    assert_eq!(description(&app.admin_key.key_id).await, unknown);
    assert_eq!(description(&b_app_key.key_id).await, unknown);
}

#[tokio::test]
async fn removing_a_key_or_user_ends_its_tokens_on_every_process() {
    let app = TestApp::spawn().await;
    let twin = app.spawn_on_same_database().await;
    let admin = app.admin_token().await;
    let (pid, aid, _, _) = app.project_with_app(&admin, 1).await;
    let app_key = app.app_key(&admin, &pid, &aid).await;
    let mut c = app.grpc().await;
    let mut twin_c = twin.grpc().await;
    if app.db_url.starts_with("postgres") {
        // On PostgreSQL revocations travel as notices; both processes must be listening.
        for server in [&app, &twin] {
            within(OTHER_PROCESS_BOUND, || async {
                server.services.caches.listening()
            })
            .await;
        }
    }

    for token_type in [0, 1] {
        let (user, key) = app
            .member_with_key(&admin, token_type, "ORG_USER_VIEWER")
            .await;
        let (_, body) = app.grant(&key, &project_scope(&pid)).await;
        let token = body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(token.matches('.').count() == 2, token_type == 1);
        // Both processes have seen (and cached) the token.
        for server in [&app, &twin] {
            let (_, answer) = server.introspect_as(&app_key, &token).await;
            assert_eq!(answer["active"], true, "{answer}");
        }
        let get = |t: &str| authed(t, None, GetUserByIdRequest { id: user.clone() });
        twin_c.get_user_by_id(get(&token)).await.unwrap();
        c.get_user_by_id(get(&token)).await.unwrap();

        // The key goes through one process: there the token ends at once ...
        c.remove_machine_key(authed(
            &admin,
            None,
            RemoveMachineKeyRequest {
                user_id: user.clone(),
                key_id: key.key_id.clone(),
            },
        ))
        .await
        .unwrap();
        assert!(inactive(&app, &app_key, &token).await, "type {token_type}");
        assert_err(
            c.get_user_by_id(get(&token)).await,
            Code::Unauthenticated,
            "AUTH-7fs2e",
        );
        // ... and in the other process within the documented bound.
        within(OTHER_PROCESS_BOUND, || inactive(&twin, &app_key, &token)).await;
        within(OTHER_PROCESS_BOUND, || {
            let mut twin_c = twin_c.clone();
            let req = get(&token);
            async move {
                twin_c
                    .get_user_by_id(req)
                    .await
                    .is_err_and(|s| s.code() == Code::Unauthenticated)
            }
        })
        .await;

        // A second key's token ends when the user goes (the reported JWT case included), here
        // removed through the other process.
        let key2 = c
            .add_machine_key(authed(&admin, None, new_key(&user)))
            .await
            .unwrap()
            .into_inner()
            .key_details;
        let (_, body) = app
            .grant(&KeyFile::parse(&key2), &project_scope(&pid))
            .await;
        let token = body["access_token"].as_str().unwrap().to_owned();
        assert!(!inactive(&app, &app_key, &token).await);
        twin_c
            .remove_user(authed(&admin, None, RemoveUserRequest { id: user.clone() }))
            .await
            .unwrap();
        assert!(inactive(&twin, &app_key, &token).await, "type {token_type}");
        within(OTHER_PROCESS_BOUND, || inactive(&app, &app_key, &token)).await;
    }
}

#[tokio::test]
async fn removing_a_membership_ends_its_permissions_on_every_process() {
    let app = TestApp::spawn().await;
    let twin = app.spawn_on_same_database().await;
    let admin = app.admin_token().await;
    let (user, key) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    let token = app.token_for(&key).await;
    let me = || authed(&token, None, GetMyOrgRequest {});
    let (mut c, mut twin_c) = (app.grpc().await, twin.grpc().await);
    c.get_my_org(me()).await.unwrap();
    twin_c.get_my_org(me()).await.unwrap();
    c.remove_org_member(authed(
        &admin,
        None,
        RemoveOrgMemberRequest {
            user_id: user.clone(),
        },
    ))
    .await
    .unwrap();
    assert_err(
        c.get_my_org(me()).await,
        Code::PermissionDenied,
        "AUTH-5mWD2",
    );
    within(OTHER_PROCESS_BOUND, || {
        let mut twin_c = twin_c.clone();
        let req = me();
        async move {
            twin_c
                .get_my_org(req)
                .await
                .is_err_and(|s| s.code() == Code::PermissionDenied)
        }
    })
    .await;
    // A new grant is visible at once where it was made.
    c.add_org_member(authed(
        &admin,
        None,
        AddOrgMemberRequest {
            user_id: user,
            roles: vec!["ORG_USER_VIEWER".into()],
        },
    ))
    .await
    .unwrap();
    c.get_my_org(me()).await.unwrap();
}

#[tokio::test]
async fn id_tokens_are_not_access_tokens() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (pid, aid, _, _) = app.project_with_app(&admin, 1).await;
    let app_key = app.app_key(&admin, &pid, &aid).await;
    let (_, key) = app.member_with_key(&admin, 1, "ORG_OWNER").await;
    let (_, body) = app
        .grant(&key, &format!("openid {}", project_scope(&pid)))
        .await;
    let id_token = body["id_token"].as_str().unwrap();
    assert_err(
        app.grpc()
            .await
            .get_my_org(authed(id_token, None, GetMyOrgRequest {}))
            .await,
        Code::Unauthenticated,
        "AUTH-7fs2e",
    );
    let (_, answer) = app.introspect_as(&app_key, id_token).await;
    assert_eq!(answer, json!({"active": false}));
    // The access token of the same answer works.
    let (_, answer) = app
        .introspect_as(&app_key, body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(answer["active"], true);
}

/// A token names its record (the id before the dot of an opaque token, the `jti` of a JWT),
/// but only the whole token matches the record: another secret under a real id, or a JWT
/// rewritten around a real `jti`, is no token at all.
#[tokio::test]
async fn a_record_id_without_its_token_opens_nothing() {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (pid, aid, _, _) = app.project_with_app(&admin, 1).await;
    let app_key = app.app_key(&admin, &pid, &aid).await;
    let refused = |token: String| {
        let app = &app;
        let app_key = &app_key;
        async move {
            assert_err(
                app.grpc()
                    .await
                    .get_my_org(authed(&token, None, GetMyOrgRequest {}))
                    .await,
                Code::Unauthenticated,
                "AUTH-7fs2e",
            );
            let (_, answer) = app.introspect_as(app_key, &token).await;
            assert_eq!(answer, json!({"active": false}), "{token}");
        }
    };

    let (_, opaque_key) = app.member_with_key(&admin, 0, "ORG_OWNER").await;
    let scope = project_scope(&pid);
    let token_of = |body: Value| body["access_token"].as_str().unwrap().to_owned();
    let opaque = token_of(app.grant(&opaque_key, &scope).await.1);
    let (id, secret) = opaque.split_once('.').unwrap();
    let other_secret = URL_SAFE_NO_PAD.encode([7u8; 32]);
    refused(format!("{id}.{other_secret}")).await;
    refused(format!("{opaque}A")).await;
    refused(format!("{id}0.{secret}")).await;

    let (_, jwt_key) = app.member_with_key(&admin, 1, "ORG_OWNER").await;
    let jwt = token_of(app.grant(&jwt_key, &scope).await.1);
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["scope"] = json!(format!(
        "{} urn:zitadel:iam:org:project:id:zitadel:aud",
        claims["scope"].as_str().unwrap()
    ));
    let rewritten = URL_SAFE_NO_PAD.encode(claims.to_string());
    refused(format!("{}.{rewritten}.{}", parts[0], parts[2])).await;

    // The real ones work, before and after.
    for token in [&opaque, &jwt] {
        app.grpc()
            .await
            .get_my_org(authed(token, None, GetMyOrgRequest {}))
            .await
            .unwrap();
        let (_, answer) = app.introspect_as(&app_key, token).await;
        assert_eq!(answer["active"], true);
    }
}

#[tokio::test]
async fn an_assertion_with_a_jti_is_accepted_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let key = app.admin_key.clone();
    let with_jti = app.assertion(&key, json!({"jti": unique("jti")}));
    let form = [("grant_type", JWT_BEARER), ("assertion", with_jti.as_str())];
    assert_eq!(app.token_request(&form).await.0, 200);
    let (status, body) = app.token_request(&form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    // Without jti (as ZITADEL's SDKs send them), the same assertion may be used again.
    let plain = app.assertion(&key, json!({}));
    let form = [("grant_type", JWT_BEARER), ("assertion", plain.as_str())];
    assert_eq!(app.token_request(&form).await.0, 200);
    assert_eq!(app.token_request(&form).await.0, 200);

    // Client assertions too.
    let (pid, aid, _, _) = app.project_with_app(&admin, 1).await;
    let app_key = app.app_key(&admin, &pid, &aid).await;
    let client = app.assertion(&app_key, json!({"jti": unique("jti")}));
    let form = [
        ("token", admin.as_str()),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", client.as_str()),
    ];
    assert_eq!(app.introspect(&form, None).await.0, 200);
    let (status, body) = app.introspect(&form, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

#[tokio::test]
async fn failed_attempts_are_rate_limited() {
    let app = TestApp::spawn_with(|c| c.bearer_failure_burst = 5).await;
    let key = app.admin_key.clone();
    // Expired assertions under one key id: refused until the key's bucket is empty.
    let expired = app.assertion(&key, json!({"exp": now() - 600}));
    let mut statuses = Vec::new();
    let mut limited: Option<reqwest::Response> = None;
    for _ in 0..25 {
        let resp = app
            .http
            .post(format!("{}/oauth/v2/token", app.base))
            .form(&[("grant_type", JWT_BEARER), ("assertion", expired.as_str())])
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
    }
    assert_eq!(statuses[..20], [400; 20], "{statuses:?}");
    let limited = limited.expect("the 21st failure is refused");
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=4).contains(&retry), "{retry}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("retry after")
    );
    // A good assertion under that key id is not refused: failures are limited, not the key.
    assert_eq!(app.grant(&key, API_SCOPE).await.0, 200);

    // Junk without a key id: the source address runs dry (50 at once; 21 are spent above).
    let mut codes = Vec::new();
    for _ in 0..40 {
        codes.push(
            app.token_request(&[("grant_type", JWT_BEARER), ("assertion", "x.y.z")])
                .await
                .0,
        );
    }
    assert!(codes.contains(&429), "{codes:?}");

    // Invalid bearer tokens on the API: RESOURCE_EXHAUSTED over gRPC, 429 over REST.
    let mut c = app.grpc().await;
    let mut last = None;
    for _ in 0..6 {
        last = Some(
            c.get_my_org(authed("forged-token", None, GetMyOrgRequest {}))
                .await,
        );
    }
    let status = last.unwrap().expect_err("refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(error_id(&status), "AUTH-Rate01");
    assert!(status.metadata().get("retry-after").is_some());
    let (status, body) = app
        .rest("GET", "/orgs/me", Some("forged-token"), None, None)
        .await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test]
async fn basic_secrets_are_keyed_hashes_and_old_argon2_hashes_upgrade() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, _, client_id, secret) = app.project_with_app(&admin, 0).await;
    let stored = |app: &TestApp| {
        let db = app.services.db.clone();
        let client_id = client_id.clone();
        async move {
            authn_keys::storage::repo::find_app_by_client_id(&db, &client_id)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let app_row = stored(&app).await;
    assert!(
        app_row
            .secret_hash
            .as_deref()
            .unwrap()
            .starts_with("hmac-sha256$")
    );
    let form = [("token", admin.as_str())];
    assert_eq!(
        app.introspect(&form, Some((&client_id, &secret))).await.0,
        200
    );
    assert_eq!(
        app.introspect(&form, Some((&client_id, "wrong"))).await.0,
        401
    );

    // A hash written by an earlier version (argon2id) still verifies, once, then is replaced.
    use argon2::{PasswordHasher, password_hash::SaltString};
    let phc = argon2::Argon2::default()
        .hash_password(
            secret.as_bytes(),
            &SaltString::encode_b64(b"saltsaltsaltsalt").unwrap(),
        )
        .unwrap()
        .to_string();
    authn_keys::storage::repo::set_app_secret_hash(&app.services.db, &app_row.id, &phc)
        .await
        .unwrap();
    assert_eq!(
        app.introspect(&form, Some((&client_id, "wrong"))).await.0,
        401
    );
    assert!(
        stored(&app)
            .await
            .secret_hash
            .unwrap()
            .starts_with("$argon2")
    );
    assert_eq!(
        app.introspect(&form, Some((&client_id, &secret))).await.0,
        200
    );
    assert!(
        stored(&app)
            .await
            .secret_hash
            .unwrap()
            .starts_with("hmac-sha256$")
    );
    assert_eq!(
        app.introspect(&form, Some((&client_id, &secret))).await.0,
        200
    );
}

#[tokio::test]
async fn private_answers_are_not_cached_and_requests_are_bounded() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 4096).await;
    let admin = app.admin_token().await;
    let (user, _) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    let resp = app
        .http
        .post(format!("{}/management/v1/users/{user}/keys", app.base))
        .bearer_auth(&admin)
        .json(&json!({"type": "KEY_TYPE_JSON"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let resp = app
        .http
        .post(format!("{}/management/v1/projects", app.base))
        .bearer_auth(&admin)
        .json(&json!({"name": unique("p")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");

    // Bodies over the limit: a clear 413 on REST, RESOURCE_EXHAUSTED on gRPC.
    let big = "A".repeat(8192);
    let (status, body) = app
        .rest(
            "POST",
            &format!("/users/{user}/keys"),
            Some(&admin),
            None,
            Some(json!({"type": "KEY_TYPE_JSON", "publicKey": big})),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["details"][0]["id"], "REST-Body1", "{body}");
    let err = app
        .grpc()
        .await
        .add_machine_key(authed(
            &admin,
            None,
            AddMachineKeyRequest {
                user_id: user.clone(),
                r#type: 1,
                public_key: big.into_bytes(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(error_id(&err), "GRPC-Size1");

    // Too many scopes.
    let scopes = (0..40)
        .map(|i| format!("s{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let (status, body) = app.grant(&app.admin_key, &scopes).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
}

#[tokio::test]
async fn requests_over_the_concurrency_cap_are_shed() {
    let app = TestApp::spawn_with(|c| c.max_concurrent_requests = 1).await;
    let admin = app.admin_token().await;
    let (user, _) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    // Key generations take a while: several at once exceed a cap of one.
    let path = format!("/users/{user}/keys");
    let call = || {
        app.rest(
            "POST",
            &path,
            Some(&admin),
            None,
            Some(json!({"type": "KEY_TYPE_JSON"})),
        )
    };
    let (a, b, c, d) = tokio::join!(call(), call(), call(), call());
    let answers = [a, b, c, d];
    let shed: Vec<&(u16, Value)> = answers.iter().filter(|(s, _)| *s == 503).collect();
    assert!(!shed.is_empty(), "{answers:?}");
    assert!(answers.iter().any(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(shed[0].1["details"][0]["id"], "SERVER-Busy1");
    // Health checks are exempt.
    let health = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn access_token_typ_follows_the_setting() {
    let app = TestApp::spawn_with(|c| {
        c.access_token_typ = authn_keys::config::AccessTokenTyp::AtJwt;
    })
    .await;
    let admin = app.admin_token().await;
    let (_, key) = app.member_with_key(&admin, 1, "ORG_OWNER").await;
    let (status, body) = app.grant(&key, "openid").await;
    assert_eq!(status, 200, "{body}");
    let typ = |jwt: &str| -> Value {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jwt.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        header["typ"].clone()
    };
    assert_eq!(typ(body["access_token"].as_str().unwrap()), "at+jwt");
    // ID tokens stay `JWT`.
    assert_eq!(typ(body["id_token"].as_str().unwrap()), "JWT");
}

#[tokio::test]
async fn signing_keys_rotate_and_retired_keys_keep_verifying() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, key) = app.member_with_key(&admin, 1, "ORG_OWNER").await;
    let first = app.token_for(&key).await;
    let kid = |jwt: &str| {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jwt.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        // ZITADEL's `typ`, which libraries built for ZITADEL insist on.
        assert_eq!(header["typ"], "JWT");
        header["kid"].as_str().unwrap().to_owned()
    };
    app.services.signing.rotate(true).await.unwrap();
    let second = app.token_for(&key).await;
    assert_ne!(kid(&first), kid(&second));
    let jwks: Value = app
        .http
        .get(format!("{}/oauth/v2/keys", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [kid(&second), kid(&first)]);
    let mut c = app.grpc().await;
    for t in [&first, &second] {
        c.get_my_org(authed(t, None, GetMyOrgRequest {}))
            .await
            .expect("tokens of the retired and the current key both verify");
    }
    // Another process picks up the new key at its next check.
    let twin = app.spawn_on_same_database().await;
    twin.grpc()
        .await
        .get_my_org(authed(&first, None, GetMyOrgRequest {}))
        .await
        .unwrap();
}

/// Peak resident memory of this process so far (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Runs [`wrong_client_secrets_peak_memory`] in a process of its own: peak memory is the
/// whole process's, and tests running beside it would add theirs.
#[test]
fn wrong_client_secrets_cost_no_memory() {
    run_in_own_process("security::wrong_client_secrets_peak_memory");
}

#[tokio::test]
#[ignore = "run by wrong_client_secrets_cost_no_memory in a process of its own"]
async fn wrong_client_secrets_peak_memory() {
    // Rate limits off: this is about what one attempt costs, not how many are let through.
    let app = TestApp::spawn_with(|c| {
        c.auth_failure_burst = 0;
        c.auth_failure_address_burst = 0;
    })
    .await;
    let admin = app.admin_token().await;
    let (_, _, client_id, _) = app.project_with_app(&admin, 0).await;
    let before = peak_rss_kib();
    // The reported flood: 96 anonymous clients at once, each with a wrong secret (argon2id
    // took ~19 MiB per attempt, 1.8 GiB for these).
    let attempts = (0..96).map(|i| {
        let req = app
            .http
            .post(format!("{}/oauth/v2/introspect", app.base))
            .basic_auth(&client_id, Some(format!("guess-{i}")))
            .form(&[("token", "x")]);
        tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
    });
    let mut statuses = Vec::new();
    for a in attempts.collect::<Vec<_>>() {
        statuses.push(a.await.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let grown_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    assert!(grown_mib < 256, "peak memory grew by {grown_mib} MiB");
}

/// Spent ids are written in batches: of many grants racing with one assertion (a jti), through
/// two servers on one database, exactly one is accepted; racing grants with distinct jtis, in
/// the same batches, are all accepted.
#[tokio::test]
async fn a_jti_raced_through_two_servers_is_accepted_exactly_once() {
    let app = TestApp::spawn().await;
    let twin = app.spawn_on_same_database().await;
    let key = app.admin_key.clone();
    let grant = |server: &TestApp, assertion: String| {
        let (http, url) = (
            server.http.clone(),
            format!("{}/oauth/v2/token", server.base),
        );
        async move {
            let resp = http
                .post(url)
                .form(&[("grant_type", JWT_BEARER), ("assertion", &assertion)])
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (status, body)
        }
    };
    for round in 0..3 {
        let replayed = app.assertion(&key, json!({"jti": unique("raced")}));
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..24 {
            let server = if i % 2 == 0 { &app } else { &twin };
            calls.spawn(grant(server, replayed.clone()));
            calls.spawn(grant(
                server,
                app.assertion(&key, json!({"jti": unique("distinct")})),
            ));
        }
        let answers = calls.join_all().await;
        let accepted = answers.iter().filter(|(s, _)| *s == 200).count();
        let replays: Vec<_> = answers.iter().filter(|(s, _)| *s != 200).collect();
        assert_eq!(accepted, 24 + 1, "round {round}: {replays:?}");
        // Refused as a replay, or, once the key's failures pass their budget, told to back
        // off (a valid assertion is never refused so: the distinct ones all passed).
        for (status, body) in replays {
            let text = body["error_description"].as_str().unwrap_or_default();
            assert!(
                (*status == 400 && text.contains("already used"))
                    || (*status == 429 && body["error"] == "temporarily_unavailable"),
                "{status} {body}"
            );
        }
    }
}
