//! 200 concurrent clients mixing AddMachineKey, ListMachineKeys, GetMachineKeyByIDs,
//! RemoveMachineKey, token grants and introspection on shared users, for a bounded number of
//! operations: no unexpected error (no "database is locked", no 500), and afterwards the
//! database holds exactly the keys the clients believe exist, each user's audit trail has one
//! event per change with gapless sequences.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use authn_keys::proto::zitadel::management::v1::{
    management_service_client::ManagementServiceClient, *,
};
use serde_json::json;
use tokio::sync::Mutex;

use crate::helpers::*;

const CLIENTS: usize = 200;
const ROUNDS: usize = 4;
const USERS: usize = 8;

#[tokio::test]
async fn two_hundred_clients_leave_a_consistent_database() {
    let app = Arc::new(
        TestApp::spawn_with(|c| {
            // Generated keys come from a pool; the failure limits stay on (nothing fails).
            c.key_pool_size = 16;
            c.key_pool_workers = 2;
            c.keygen_queue = 512;
        })
        .await,
    );
    let admin = app.admin_token().await;
    let mut users = Vec::new();
    for _ in 0..USERS {
        users.push(app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await);
    }
    let users = Arc::new(users);
    let (project, app_id, _, _) = app.project_with_app(&admin, 1).await;
    let app_key = Arc::new(app.app_key(&admin, &project, &app_id).await);
    // One uploaded public key serves many key records.
    let uploaded_pem = public_pem();
    let channels: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(app.channel().await);
        }
        v
    };
    // What the clients believe: key id → user id.
    let believed: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let counts: Arc<Mutex<HashMap<&'static str, usize>>> = Arc::default();

    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (app, users, app_key) = (app.clone(), users.clone(), app_key.clone());
        let (believed, errors, counts) = (believed.clone(), errors.clone(), counts.clone());
        let channel = channels[client % channels.len()].clone();
        let (admin, pem, project) = (admin.clone(), uploaded_pem.clone(), project.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = ManagementServiceClient::new(channel);
            let (user_id, user_key) = &users[client % users.len()];
            let mut mine: Vec<String> = Vec::new();
            let fail = |what: String| {
                let errors = errors.clone();
                async move { errors.lock().await.push(what) }
            };
            // Counted once an operation has run and been answered as it should.
            let ran = |name: &'static str| {
                let counts = counts.clone();
                async move { *counts.lock().await.entry(name).or_default() += 1 }
            };
            for round in 0..ROUNDS {
                let op = (client + round) % 6;
                match op {
                    0 => {
                        let public_key = if client % 4 == 0 {
                            Vec::new()
                        } else {
                            pem.as_bytes().to_vec()
                        };
                        let req = AddMachineKeyRequest {
                            user_id: user_id.clone(),
                            r#type: 1,
                            public_key,
                            ..Default::default()
                        };
                        match c.add_machine_key(authed(&admin, None, req)).await {
                            Ok(r) => {
                                let id = r.into_inner().key_id;
                                believed.lock().await.insert(id.clone(), user_id.clone());
                                mine.push(id);
                                ran("add").await;
                            }
                            Err(e) => fail(format!("add: {e:?}")).await,
                        }
                    }
                    1 => {
                        let req = ListMachineKeysRequest {
                            user_id: user_id.clone(),
                            query: None,
                        };
                        match c.list_machine_keys(authed(&admin, None, req)).await {
                            Ok(r) => {
                                let listed: HashSet<String> =
                                    r.into_inner().result.into_iter().map(|k| k.id).collect();
                                // Read-after-write: this client's own live keys are listed.
                                for id in &mine {
                                    if !listed.contains(id) {
                                        fail(format!("list: own key {id} missing")).await;
                                    }
                                }
                                ran("list").await;
                            }
                            Err(e) => fail(format!("list: {e:?}")).await,
                        }
                    }
                    2 => {
                        let key_id = mine
                            .last()
                            .cloned()
                            .unwrap_or_else(|| user_key.key_id.clone());
                        let req = GetMachineKeyByIDsRequest {
                            user_id: user_id.clone(),
                            key_id,
                        };
                        match c.get_machine_key_by_i_ds(authed(&admin, None, req)).await {
                            Ok(_) => ran("get").await,
                            Err(e) => fail(format!("get: {e:?}")).await,
                        }
                    }
                    3 => {
                        let Some(key_id) = mine.pop() else { continue };
                        let req = RemoveMachineKeyRequest {
                            user_id: user_id.clone(),
                            key_id: key_id.clone(),
                        };
                        match c.remove_machine_key(authed(&admin, None, req)).await {
                            Ok(_) => {
                                believed.lock().await.remove(&key_id);
                                ran("remove").await;
                            }
                            Err(e) => fail(format!("remove: {e:?}")).await,
                        }
                    }
                    4 | 5 => {
                        let (status, body) = app
                            .grant(
                                user_key,
                                &format!("openid urn:zitadel:iam:org:project:id:{project}:aud"),
                            )
                            .await;
                        if status != 200 {
                            fail(format!("grant: {status} {body}")).await;
                            continue;
                        }
                        ran("grant").await;
                        if op == 5 {
                            let token = body["access_token"].as_str().unwrap_or_default();
                            let (status, body) = app.introspect_as(&app_key, token).await;
                            if status != 200 || body["active"] != json!(true) {
                                fail(format!("introspect: {status} {body}")).await;
                            } else {
                                ran("introspect").await;
                            }
                        }
                    }
                    _ => unreachable!(),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let errors = errors.lock().await;
    assert!(
        errors.is_empty(),
        "{} unexpected errors, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    let counts = counts.lock().await;
    for name in ["add", "list", "get", "remove", "grant", "introspect"] {
        assert!(
            counts.get(name).is_some_and(|n| *n > 0),
            "{name} never ran: {counts:?}"
        );
    }

    // The database holds exactly the believed keys (plus each user's first key).
    let believed = believed.lock().await;
    let mut c = app.grpc().await;
    for (user_id, first_key) in users.iter() {
        let listed = c
            .list_machine_keys(authed(
                &admin,
                None,
                ListMachineKeysRequest {
                    user_id: user_id.clone(),
                    query: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let listed: HashSet<String> = listed.result.into_iter().map(|k| k.id).collect();
        let mut expected: HashSet<String> = believed
            .iter()
            .filter(|(_, u)| *u == user_id)
            .map(|(k, _)| k.clone())
            .collect();
        expected.insert(first_key.key_id.clone());
        assert_eq!(listed, expected, "keys of {user_id}");

        // One event per change, gapless sequences: created, member granted, first key, then
        // every add and remove of this run.
        let events = authn_keys::storage::repo::events_of(&app.services.db, user_id)
            .await
            .unwrap();
        let user_events: Vec<u64> = events
            .iter()
            .filter(|e| e.0.starts_with("user."))
            .map(|e| e.1)
            .collect();
        assert_eq!(
            user_events,
            (1..=user_events.len() as u64).collect::<Vec<_>>(),
            "gapless sequences of {user_id}"
        );
        let added = events
            .iter()
            .filter(|e| e.0 == "user.machine.key.added")
            .count();
        let removed = events
            .iter()
            .filter(|e| e.0 == "user.machine.key.removed")
            .count();
        assert_eq!(
            added - removed,
            expected.len(),
            "events of {user_id} match its keys"
        );
    }
}
