//! First start: the admin key file is private and is never overwritten; a restart on the same
//! database keeps the instance.
use authn_keys::{app::App, config::Config};

use crate::helpers::*;

#[tokio::test]
async fn admin_key_file_is_private_and_never_overwritten() {
    let app = TestApp::spawn().await;
    let path = app.key_file_path();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let before = std::fs::read(&path).unwrap();
    // A second server on the same database: no new instance, the file untouched.
    let again = App::build(Config::for_tests(&app.db_url, path.clone()))
        .await
        .unwrap();
    assert!(!again.instance.created);
    assert_eq!(again.instance.admin_user_id, app.admin_id);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // The admin's key still works against the first server.
    app.admin_token().await;

    // A fresh database whose key file path is taken refuses to start rather than overwrite.
    let dir = tempfile::tempdir().unwrap();
    let taken = dir.path().join("admin-key.json");
    std::fs::write(&taken, b"precious").unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("other.db").display()
    );
    let err = App::build(Config::for_tests(&url, taken.clone()))
        .await
        .err()
        .expect("refuses to overwrite");
    assert_eq!(err.id, "BOOT-Exist1");
    assert_eq!(std::fs::read(&taken).unwrap(), b"precious");
}

#[tokio::test]
async fn a_database_whose_master_key_file_is_missing_is_refused() {
    if database_server().is_some() {
        skip("SQLite only: PostgreSQL and MySQL always take the master key from the configuration");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let config = || {
        let mut c = Config::for_tests(&url, dir.path().join("admin.json"));
        c.master_key = None;
        c
    };
    // First start: a master key file is made beside the database.
    let app = App::build(config()).await.unwrap();
    drop(app);
    let key_file = dir.path().join("keys.db.masterkey");
    assert!(key_file.exists());
    std::fs::remove_file(&key_file).unwrap();
    // The database now holds signing keys nobody could decrypt with a new key: refused, and
    // nothing is written.
    let err = App::build(config()).await.err().expect("refused");
    assert_eq!(err.id, "CONFIG-Mkey5");
    assert!(!key_file.exists());
}

/// A database the URL names that does not exist yet is created at start (as SQLite's file
/// is), and found by the next start.
#[tokio::test]
async fn a_missing_server_database_is_created() {
    let Some(server) = database_server() else {
        skip("needs a database server (DATABASE_URL unset: SQLite files need no creating)");
        return;
    };
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&format!("/ak_test_created_{}", std::process::id()));
    let dir = tempfile::tempdir().unwrap();
    let first = App::build(Config::for_tests(url.as_str(), dir.path().join("a.json")))
        .await
        .expect("creates the database");
    assert!(first.instance.created);
    drop(first);
    let again = App::build(Config::for_tests(url.as_str(), dir.path().join("b.json")))
        .await
        .unwrap();
    assert!(!again.instance.created);
}

/// A MySQL URL that names no database uses (and creates) `authn_keys`; on a server of its
/// own, so the shared one keeps no such database.
#[tokio::test]
async fn a_mysql_url_without_a_database_uses_authn_keys() {
    use crate::outage::{Mariadb, Outage};
    if !database_server().is_some_and(|url| url.starts_with("mysql")) {
        skip("MySQL/MariaDB only (DATABASE_URL is not mysql://)");
        return;
    }
    let server = Mariadb::create(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = App::build(Config::for_tests(&server.url(), dir.path().join("a.json")))
        .await
        .expect("starts");
    assert!(app.instance.created);
    let named = format!(
        "{}{}",
        server.url(),
        authn_keys::storage::DEFAULT_MYSQL_DATABASE
    );
    let again = App::build(Config::for_tests(&named, dir.path().join("b.json")))
        .await
        .unwrap();
    assert!(!again.instance.created, "the same database");
}
