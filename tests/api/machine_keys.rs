//! AddMachineKey, GetMachineKeyByIDs, ListMachineKeys, RemoveMachineKey over gRPC.
use authn_keys::proto::zitadel::{management::v1::*, v1::ListQuery};
use tonic::Code;

use crate::helpers::*;

async fn setup() -> (TestApp, String, String) {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let mut c = app.grpc().await;
    let user_id = c
        .add_machine_user(authed(
            &token,
            None,
            AddMachineUserRequest {
                user_name: unique("svc"),
                name: "Service".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user_id;
    (app, token, user_id)
}

#[tokio::test]
async fn add_get_list_remove() {
    let (app, token, user_id) = setup().await;
    let mut c = app.grpc().await;
    let added = c
        .add_machine_key(authed(&token, None, new_key(&user_id)))
        .await
        .unwrap()
        .into_inner();
    let file = KeyFile::parse(&added.key_details);
    assert_eq!(file.kind, "serviceaccount");
    assert_eq!(file.key_id, added.key_id);
    assert_eq!(file.user_id.as_deref(), Some(user_id.as_str()));
    assert_eq!(
        file.expiration_date.as_deref(),
        Some("9999-12-31T23:59:59Z")
    );
    assert!(file.key.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    let text = std::str::from_utf8(&added.key_details).unwrap();
    assert!(
        text.starts_with(r#"{"type":"serviceaccount","keyId":""#),
        "{text}"
    );
    let d = added.details.unwrap();
    assert_eq!(d.resource_owner, app.org_id);
    assert!(d.creation_date.is_some() && d.change_date.is_none());
    assert_eq!(d.sequence, 2, "user added = 1, key added = 2");

    let got = c
        .get_machine_key_by_i_ds(authed(
            &token,
            None,
            GetMachineKeyByIDsRequest {
                user_id: user_id.clone(),
                key_id: added.key_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!(got.id, added.key_id);
    assert_eq!(got.r#type, 1);
    assert_eq!(got.expiration_date.unwrap().seconds, 253_402_300_799);
    let gd = got.details.unwrap();
    assert!(gd.creation_date.is_some() && gd.change_date.is_some());
    assert_eq!(gd.sequence, 2);

    // Read-after-write: listed at once.
    let listed = c
        .list_machine_keys(authed(
            &token,
            None,
            ListMachineKeysRequest {
                user_id: user_id.clone(),
                query: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.result.len(), 1);
    assert_eq!(listed.details.as_ref().unwrap().total_result, 1);
    assert!(listed.details.unwrap().processed_sequence > 0);

    let removed = c
        .remove_machine_key(authed(
            &token,
            None,
            RemoveMachineKeyRequest {
                user_id: user_id.clone(),
                key_id: added.key_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .details
        .unwrap();
    assert_eq!(removed.sequence, 3);
    assert!(removed.change_date.is_some() && removed.creation_date.is_none());
    assert_err(
        c.get_machine_key_by_i_ds(authed(
            &token,
            None,
            GetMachineKeyByIDsRequest {
                user_id: user_id.clone(),
                key_id: added.key_id.clone(),
            },
        ))
        .await,
        Code::NotFound,
        "QUERY-Dgr3g",
    );
    assert_err(
        c.remove_machine_key(authed(
            &token,
            None,
            RemoveMachineKeyRequest {
                user_id: user_id.clone(),
                key_id: added.key_id,
            },
        ))
        .await,
        Code::NotFound,
        "COMMAND-4m77G",
    );
    // Every change left an audit event for the user, none with key material.
    let events = authn_keys::storage::repo::events_of(&app.services.db, &user_id)
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "user.machine.added",
            "user.machine.key.added",
            "user.machine.key.removed"
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e.2 == app.admin_id && !e.3.contains("PRIVATE KEY"))
    );
}

#[tokio::test]
async fn add_errors() {
    let (app, token, user_id) = setup().await;
    let mut c = app.grpc().await;
    assert_err(
        c.add_machine_key(authed(&token, None, new_key("no-such-user")))
            .await,
        Code::FailedPrecondition,
        "COMMAND-bnipwm1",
    );
    let past = AddMachineKeyRequest {
        expiration_date: Some(authn_keys::proto::wkt::Timestamp {
            seconds: now() - 60,
            nanos: 0,
        }),
        ..new_key(&user_id)
    };
    assert_err(
        c.add_machine_key(authed(&token, None, past)).await,
        Code::InvalidArgument,
        "DOMAIN-dv3t5",
    );
    let unspecified = AddMachineKeyRequest {
        r#type: 0,
        ..new_key(&user_id)
    };
    let status = c
        .add_machine_key(authed(&token, None, unspecified))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("type"));
    for bad in [
        b"not a key".to_vec(),
        P521_KEY.as_bytes().to_vec(),
        small_rsa_pem().into_bytes(),
    ] {
        let req = AddMachineKeyRequest {
            public_key: bad,
            ..new_key(&user_id)
        };
        assert_err(
            c.add_machine_key(authed(&token, None, req)).await,
            Code::InvalidArgument,
            "COMMAND-5F3h1",
        );
    }
    // Nothing was half-written.
    let listed = c
        .list_machine_keys(authed(
            &token,
            None,
            ListMachineKeysRequest {
                user_id: user_id.clone(),
                query: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.details.unwrap().total_result, 0);
}

/// An EC key on a curve not taken (P-256, P-384 are).
const P521_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQB/FUuou+EgwkQ/pIZpHDfDBlDAEX0\n9IRpz/kwD/EUX8MFfkARa96pEcd0DZTfMel90MuNAbK7Vv9qIKFstdpGmpgBJr2t\n5C/orOzk9ndkWfPdua/rCchihKs0s2lkV1xICvGyZjsMbTQmSp+5Hqz1+5y4GsSt\n16V5MXLT3xGMrmx+6PI=\n-----END PUBLIC KEY-----\n";

fn small_rsa_pem() -> String {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let k = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
    k.to_public_key().to_public_key_pem(LineEnding::LF).unwrap()
}

#[tokio::test]
async fn uploaded_public_key_is_stored_and_usable() {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let (app, token, user_id) = setup().await;
    let mut c = app.grpc().await;
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let added = c
        .add_machine_key(authed(
            &token,
            None,
            AddMachineKeyRequest {
                public_key: pem.into_bytes(),
                ..new_key(&user_id)
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        added.key_details.is_empty(),
        "no key file for uploaded keys"
    );
    let claims = serde_json::json!({"iss": user_id, "sub": user_id, "aud": app.base, "iat": now(), "exp": now() + 60});
    let assertion = sign_jwt("PS256", &added.key_id, &claims, &private);
    let (status, body) = app
        .token_request(&[("grant_type", JWT_BEARER), ("assertion", &assertion)])
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn list_order_paging_totals_and_limits() {
    let (app, token, user_id) = setup().await;
    let mut c = app.grpc().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        // Uploaded keys: no key generation needed to fill a list.
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        let k = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let pem = k.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
        let r = c
            .add_machine_key(authed(
                &token,
                None,
                AddMachineKeyRequest {
                    public_key: pem.into_bytes(),
                    ..new_key(&user_id)
                },
            ))
            .await
            .unwrap();
        ids.push(r.into_inner().key_id);
    }
    let list = |query: Option<ListQuery>| ListMachineKeysRequest {
        user_id: user_id.clone(),
        query,
    };
    let all = c
        .list_machine_keys(authed(&token, None, list(None)))
        .await
        .unwrap()
        .into_inner();
    let got: Vec<String> = all.result.iter().map(|k| k.id.clone()).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(got, newest_first, "descending by default");
    let asc = c
        .list_machine_keys(authed(
            &token,
            None,
            list(Some(ListQuery {
                asc: true,
                ..Default::default()
            })),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        asc.result.iter().map(|k| k.id.clone()).collect::<Vec<_>>(),
        ids
    );
    let page = c
        .list_machine_keys(authed(
            &token,
            None,
            list(Some(ListQuery {
                offset: 1,
                limit: 1,
                asc: true,
            })),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.result.len(), 1);
    assert_eq!(page.result[0].id, ids[1]);
    assert_eq!(
        page.details.as_ref().unwrap().total_result,
        3,
        "total ignores offset/limit"
    );
    let past_end = c
        .list_machine_keys(authed(
            &token,
            None,
            list(Some(ListQuery {
                offset: 10,
                limit: 5,
                asc: false,
            })),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(past_end.result.is_empty());
    assert_eq!(past_end.details.unwrap().total_result, 3);
    let status = c
        .list_machine_keys(authed(
            &token,
            None,
            list(Some(ListQuery {
                limit: 1001,
                ..Default::default()
            })),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(error_id(&status), "QUERY-4M9fs");
    // Unknown user: an empty list, not an error.
    let none = c
        .list_machine_keys(authed(
            &token,
            None,
            ListMachineKeysRequest {
                user_id: "nobody".into(),
                query: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(none.result.is_empty());
    // processed_sequence moves with new events.
    let before = all.details.unwrap().processed_sequence;
    c.add_machine_user(authed(
        &token,
        None,
        AddMachineUserRequest {
            user_name: unique("x"),
            name: "x".into(),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    let after = c
        .list_machine_keys(authed(&token, None, list(None)))
        .await
        .unwrap()
        .into_inner();
    assert!(after.details.unwrap().processed_sequence > before);
}

#[tokio::test]
async fn keys_come_from_the_pool_and_each_is_handed_out_once() {
    let app = TestApp::spawn_with(|c| {
        c.key_pool_size = 3;
        c.key_pool_workers = 1;
    })
    .await;
    let admin = app.admin_token().await;
    let (user, _) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    let mut c = app.grpc().await;
    let mut public_keys = std::collections::HashSet::new();
    // More than the pool holds: the rest wait for the generator.
    for _ in 0..5 {
        let added = c
            .add_machine_key(authed(&admin, None, new_key(&user)))
            .await
            .unwrap()
            .into_inner();
        let file = KeyFile::parse(&added.key_details);
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        let public = file
            .private_key()
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        assert!(
            public_keys.insert(public),
            "a pooled key was handed out twice"
        );
        // And it works.
        app.token_for(&file).await;
    }
}

#[tokio::test]
async fn expirations_beyond_year_9999_are_refused() {
    use authn_keys::proto::{
        wkt::Timestamp,
        zitadel::user::v2::{AddKeyRequest, user_service_client::UserServiceClient},
    };
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let beyond = Some(Timestamp {
        seconds: 253_402_300_800, // 10000-01-01T00:00:00Z
        nanos: 0,
    });
    let v1 = app
        .grpc()
        .await
        .add_machine_key(authed(
            &t,
            None,
            AddMachineKeyRequest {
                user_id: app.admin_id.clone(),
                r#type: 1,
                expiration_date: beyond,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(v1.code(), tonic::Code::InvalidArgument, "{v1:?}");
    let v2 = UserServiceClient::new(app.channel().await)
        .add_key(authed(
            &t,
            None,
            AddKeyRequest {
                user_id: app.admin_id.clone(),
                expiration_date: beyond,
                public_key: Vec::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(v2.code(), tonic::Code::InvalidArgument, "{v2:?}");
}
