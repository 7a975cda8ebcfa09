//! Every lookup, listing and delete on a request path is served by an index, on SQLite,
//! PostgreSQL and MySQL: the plans are read from the database itself. On PostgreSQL sequential
//! scans are switched off for the check, so a statement no index can serve still shows one.
use authn_keys::storage::ConnectionTrait;
use sea_orm::{DbBackend, Statement};

use crate::helpers::*;

/// The statements of the repo functions on request paths, as they reach the database.
const STATEMENTS: &[&str] = &[
    "SELECT * FROM authn_keys WHERE id = '1'",
    "SELECT * FROM authn_keys WHERE org_id = 'o' AND user_id = 'u' ORDER BY created_at DESC, id DESC LIMIT 10 OFFSET 20",
    "SELECT * FROM authn_keys WHERE org_id = 'o' AND user_id = 'u' ORDER BY created_at ASC, id ASC LIMIT 10",
    "SELECT COUNT(*) FROM authn_keys WHERE org_id = 'o' AND user_id = 'u'",
    "DELETE FROM authn_keys WHERE user_id = 'u'",
    "SELECT * FROM authn_keys WHERE org_id = 'o' AND app_id = 'a' AND project_id = 'p' ORDER BY created_at DESC, id DESC LIMIT 10",
    "SELECT COUNT(*) FROM authn_keys WHERE org_id = 'o' AND app_id = 'a' AND project_id = 'p'",
    "DELETE FROM authn_keys WHERE app_id = 'a'",
    "DELETE FROM authn_keys WHERE project_id = 'p'",
    "SELECT * FROM access_tokens WHERE id = 't'",
    "DELETE FROM access_tokens WHERE key_id = 'k' AND user_id = 'u'",
    "DELETE FROM access_tokens WHERE user_id = 'u'",
    "DELETE FROM access_tokens WHERE expires_at < '2020-01-01 00:00:00'",
    "SELECT * FROM used_assertions WHERE id = 'x'",
    "DELETE FROM used_assertions WHERE expires_at < '2020-01-01 00:00:00'",
    "SELECT * FROM users WHERE id = 'u'",
    "SELECT COUNT(*) FROM users WHERE org_id = 'o' AND user_name = 'n'",
    "SELECT * FROM org_members WHERE org_id = 'o' AND user_id = 'u'",
    "DELETE FROM org_members WHERE user_id = 'u'",
    "SELECT * FROM instance_members WHERE user_id = 'u'",
    "SELECT * FROM orgs WHERE id = 'o'",
    "SELECT * FROM projects WHERE id = 'p'",
    "SELECT * FROM apps WHERE id = 'a'",
    "SELECT * FROM apps WHERE client_id = 'c'",
    "DELETE FROM apps WHERE project_id = 'p'",
    "SELECT MAX(position) FROM events",
    "SELECT MAX(position) FROM events WHERE org_id = 'o'",
];

#[tokio::test]
async fn request_paths_are_served_by_indexes() {
    let app = TestApp::spawn().await;
    let db = &app.services.db;
    let backend = db.get_database_backend();
    for sql in STATEMENTS {
        let plan: Vec<String> = match backend {
            DbBackend::Sqlite => db
                .query_all_raw(Statement::from_string(
                    backend,
                    format!("EXPLAIN QUERY PLAN {sql}"),
                ))
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String>("", "detail").unwrap())
                .collect(),
            DbBackend::MySql => db
                .query_all_raw(Statement::from_string(backend, format!("EXPLAIN {sql}")))
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    let text = |c: &str| {
                        r.try_get::<Option<String>>("", c)
                            .unwrap()
                            .unwrap_or_default()
                    };
                    // A full scan is type ALL (rows) or index (a whole index).
                    let access = match text("type").as_str() {
                        "ALL" | "index" => format!("SCAN {}", text("table")),
                        other => other.to_owned(),
                    };
                    format!("{access} key={} {}", text("key"), text("Extra"))
                })
                .collect(),
            _ => {
                use authn_keys::storage::TransactionTrait;
                let tx = db.begin().await.unwrap();
                tx.execute_unprepared("SET LOCAL enable_seqscan = off")
                    .await
                    .unwrap();
                let rows = tx
                    .query_all_raw(Statement::from_string(backend, format!("EXPLAIN {sql}")))
                    .await
                    .unwrap();
                rows.iter()
                    .map(|r| r.try_get::<String>("", "QUERY PLAN").unwrap())
                    .collect()
            }
        };
        let text = plan.join(" | ");
        let full_scan = plan.iter().any(|step| {
            let step = step.trim_start_matches([' ', '-', '>']);
            (step.starts_with("SCAN ") && !step.starts_with("SCAN CONSTANT"))
                || step.contains("Seq Scan")
        });
        assert!(!full_scan, "{sql}\n  plan: {text}");
        assert!(
            !text.contains("TEMP B-TREE FOR ORDER BY")
                && !text.contains("Sort ")
                && !text.contains("Using filesort"),
            "the order comes from the index: {sql}\n  plan: {text}"
        );
    }
}
