//! Migrations on databases made by earlier versions: rows written under the old schema come
//! out of the new one intact and working.
use authn_keys::{
    domain::model::KeyOwner,
    storage::{self, ConnectionTrait, migration::Migrator, repo},
};
use rsa::{
    RsaPrivateKey,
    pkcs1::{EncodeRsaPrivateKey, LineEnding},
    pkcs8::EncodePublicKey,
};
use sea_orm::sea_query::{Alias, Query, SimpleExpr};
use sea_orm_migration::MigratorTrait;
use serde_json::json;

use crate::helpers::*;

/// Migrations up to and including the last one with two key tables.
const BEFORE_ONE_KEY_TABLE: u32 = 6;

async fn insert(db: &impl ConnectionTrait, table: &str, row: Vec<(&str, SimpleExpr)>) {
    let (cols, values): (Vec<_>, Vec<_>) = row.into_iter().unzip();
    let q = Query::insert()
        .into_table(Alias::new(table))
        .columns(cols.into_iter().map(Alias::new))
        .values_panic(values)
        .to_owned();
    db.execute_raw(db.get_database_backend().build(&q))
        .await
        .unwrap_or_else(|e| panic!("insert into {table}: {e}"));
}

fn v(x: impl Into<sea_orm::Value>) -> SimpleExpr {
    SimpleExpr::Value(x.into())
}

#[tokio::test]
async fn keys_of_both_owners_move_into_one_table_and_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let url = match database_server() {
        Some(server) => fresh_database(&server).await,
        None => format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display()),
    };
    let db = storage::connect(&url, 1).await.unwrap();
    Migrator::up(&db, Some(BEFORE_ONE_KEY_TABLE)).await.unwrap();

    // An org with a machine user and a PRIVATE_KEY_JWT app, each with a key, and a token
    // obtained with the user's key — as the two-table schema held them.
    let now = storage::db_time(chrono::Utc::now()).fixed_offset();
    let later = now + chrono::Duration::days(30);
    let (org, user, project, app_id, client_id) = ("71", "ops-bot", "72", "73", "74");
    let (user_key_id, app_key_id) = ("81", "82");
    let pair = || RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let (user_private, app_private) = (pair(), pair());
    let pem = |k: &RsaPrivateKey| k.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
    insert(
        &db,
        "orgs",
        vec![
            ("id", v(org)),
            ("name", v("old-org")),
            ("primary_domain", v("old-org.localhost")),
            ("sequence", v(1i64)),
            ("created_at", v(now)),
            ("changed_at", v(now)),
        ],
    )
    .await;
    insert(
        &db,
        "users",
        vec![
            ("id", v(user)),
            ("org_id", v(org)),
            ("user_name", v("ops-bot")),
            ("name", v("Ops bot")),
            ("description", v("")),
            ("access_token_type", v(0i32)),
            ("sequence", v(2i64)),
            ("created_at", v(now)),
            ("changed_at", v(now)),
        ],
    )
    .await;
    insert(
        &db,
        "projects",
        vec![
            ("id", v(project)),
            ("org_id", v(org)),
            ("name", v("old-project")),
            ("project_role_assertion", v(false)),
            ("project_role_check", v(false)),
            ("has_project_check", v(false)),
            ("private_labeling_setting", v(0i32)),
            ("sequence", v(2i64)),
            ("created_at", v(now)),
            ("changed_at", v(now)),
        ],
    )
    .await;
    insert(
        &db,
        "apps",
        vec![
            ("id", v(app_id)),
            ("project_id", v(project)),
            ("org_id", v(org)),
            ("name", v("old-api")),
            ("client_id", v(client_id)),
            ("auth_method", v(1i32)),
            ("secret_hash", v(Option::<String>::None)),
            ("sequence", v(2i64)),
            ("created_at", v(now)),
            ("changed_at", v(now)),
        ],
    )
    .await;
    insert(
        &db,
        "machine_keys",
        vec![
            ("id", v(user_key_id)),
            ("user_id", v(user)),
            ("org_id", v(org)),
            ("key_type", v(1i32)),
            ("public_key", v(pem(&user_private))),
            ("expires_at", v(later)),
            ("sequence", v(2i64)),
            ("created_at", v(now)),
        ],
    )
    .await;
    insert(
        &db,
        "app_keys",
        vec![
            ("id", v(app_key_id)),
            ("app_id", v(app_id)),
            ("project_id", v(project)),
            ("org_id", v(org)),
            ("key_type", v(1i32)),
            ("public_key", v(pem(&app_private))),
            ("expires_at", v(later)),
            ("sequence", v(2i64)),
            ("created_at", v(now)),
        ],
    )
    .await;
    // Opaque tokens have always been `<record id>.<secret>`.
    let old_token = "91.an-opaque-token-issued-before-the-upgrade";
    let old_token_hash = authn_keys::service::tokens::hash_token(old_token);
    insert(
        &db,
        "access_tokens",
        vec![
            ("id", v("91")),
            ("token_hash", v(old_token_hash.as_str())),
            ("user_id", v(user)),
            ("org_id", v(org)),
            ("key_id", v(user_key_id)),
            ("scopes", v(json!(["openid", API_SCOPE]).to_string())),
            ("audience", v(json!([project]).to_string())),
            ("projects", v(json!([project]).to_string())),
            ("expires_at", v(later)),
            ("created_at", v(now)),
        ],
    )
    .await;
    // The event that recorded the user key's addition, as the two-table schema held it.
    insert(
        &db,
        "events",
        vec![
            ("created_at", v(now)),
            ("org_id", v(org)),
            ("aggregate_type", v("user")),
            ("aggregate_id", v(user)),
            ("aggregate_sequence", v(3i64)),
            ("event_type", v("user.machine.key.added")),
            ("actor", v("old-admin")),
            (
                "payload",
                v(json!({"keyId": user_key_id, "uploaded": true}).to_string()),
            ),
        ],
    )
    .await;

    Migrator::up(&db, None).await.unwrap();

    // Each key moved with its owner and every fact.
    let moved = repo::find_key(&db, user_key_id).await.unwrap().unwrap();
    assert_eq!(moved.owner, KeyOwner::user(user));
    assert_eq!(
        (moved.org_id.as_str(), moved.sequence, moved.key_type),
        (org, 2, 1)
    );
    assert_eq!(moved.public_key, pem(&user_private));
    assert_eq!(
        (moved.expires_at, moved.created_at),
        (later.to_utc(), now.to_utc())
    );
    let moved_app = repo::find_key(&db, app_key_id).await.unwrap().unwrap();
    assert_eq!(moved_app.owner, KeyOwner::app(project, app_id));
    assert_eq!(moved_app.public_key, pem(&app_private));
    let kept = repo::find_access_token(&db, "91").await.unwrap();
    assert_eq!(
        kept.map(|t| t.token_hash),
        Some(old_token_hash),
        "the token issued before the upgrade is still on record"
    );
    for old in ["machine_keys", "app_keys"] {
        let gone = db
            .execute_unprepared(&format!("SELECT COUNT(*) FROM {old}"))
            .await;
        assert!(gone.is_err(), "{old} is dropped");
    }
    drop(db);

    // The server on the migrated database: the user's key gets a token for the project, the
    // app's key introspects it, and removing the key ends the token from before the upgrade.
    let app = TestApp::spawn_on_url(url, dir).await;
    let key_file = |id: &str, private: &RsaPrivateKey, owner: serde_json::Value| {
        let mut file = json!({
            "type": "serviceaccount",
            "keyId": id,
            "key": private.to_pkcs1_pem(LineEnding::LF).unwrap().to_string(),
        });
        for (k, v) in owner.as_object().unwrap() {
            file[k] = v.clone();
        }
        KeyFile::parse(file.to_string().as_bytes())
    };
    let user_file = key_file(user_key_id, &user_private, json!({"userId": user}));
    let app_file = key_file(
        app_key_id,
        &app_private,
        json!({"appId": app_id, "clientId": client_id}),
    );
    let (status, body) = app
        .grant(
            &user_file,
            &format!("openid urn:zitadel:iam:org:project:id:{project}:aud"),
        )
        .await;
    assert_eq!(status, 200, "a moved user key grants: {body}");
    let token = body["access_token"].as_str().unwrap();
    let (status, body) = app.introspect_as(&app_file, token).await;
    assert_eq!(status, 200, "a moved app key authenticates: {body}");
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["sub"], user, "{body}");

    assert!(
        app.services
            .verify_access_token(old_token)
            .await
            .unwrap()
            .is_some()
    );
    let admin = app.admin_token().await;
    // The old event reads under the contract's name, searchable by its key; it counts as
    // dispatched (no webhook existed when it happened).
    let (status, trail) = own_rest(
        &app,
        "POST",
        "/v1/events/_search",
        &admin,
        Some(json!({"keyId": user_key_id})),
    )
    .await;
    assert_eq!(status, 200, "{trail}");
    assert_eq!(trail["result"][0]["type"], "key.added", "{trail}");
    assert_eq!(trail["result"][0]["userId"], user, "{trail}");
    assert_eq!(
        trail["result"][0]["actor"]["userId"], "old-admin",
        "{trail}"
    );
    assert!(
        repo::undispatched_events(&app.services.db, 10)
            .await
            .unwrap()
            .iter()
            .all(|e| e.actor != "old-admin")
    );
    let (status, body) = app
        .rest(
            "DELETE",
            &format!("/users/{user}/keys/{user_key_id}"),
            Some(&admin),
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for token in [old_token, token] {
        assert!(
            app.services
                .verify_access_token(token)
                .await
                .unwrap()
                .is_none(),
            "the key's tokens ended with it"
        );
    }
    let (_, body) = app.introspect_as(&app_file, token).await;
    assert_eq!(body["active"], false, "{body}");
}
