//! A database outage: with its PostgreSQL stopped, the server stays up, answers fast with
//! UNAVAILABLE / 503 (never holding a request until its timeout), says it is not ready, and
//! serves again as soon as the database is back — without a restart. The test makes, stops
//! and starts a PostgreSQL cluster of its own (never the shared one).
use std::{path::PathBuf, process::Command, time::Duration};

use authn_keys::proto::zitadel::management::v1::*;
use tonic::Code;

use crate::helpers::*;

/// A throwaway PostgreSQL cluster on its own port, run as the `postgres` user.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries are installed (Debian's postgresql package)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("an initdb under /usr/lib/postgresql")
}

fn as_postgres(cmd: &mut Command) {
    let status = cmd.status().unwrap();
    assert!(status.success(), "{cmd:?} failed: {status}");
}

impl Cluster {
    fn create() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        // PostgreSQL refuses to run as root: its folders belong to postgres.
        as_postgres(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()),
        );
        let bin = postgres_bin();
        as_postgres(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bin.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "-D"])
                .arg(&data)
                .stdout(std::process::Stdio::null()),
        );
        let cluster = Cluster {
            bin,
            data,
            port: free_port(),
            _dir: dir,
        };
        cluster.start();
        cluster
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) {
        as_postgres(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(args)
                .stdout(std::process::Stdio::null()),
        );
    }

    fn start(&self) {
        let log = self.data.join("server.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            self.port,
            self.data.display()
        );
        self.pg_ctl(&["-w", "-l", log.to_str().unwrap(), "-o", &options, "start"]);
    }

    fn stop(&self) {
        self.pg_ctl(&["-w", "-m", "immediate", "stop"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[tokio::test]
async fn a_database_outage_fails_fast_and_heals() {
    // Needs PostgreSQL's server binaries: part of the PostgreSQL run.
    if !std::env::var("DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
        return;
    }
    let cluster = Cluster::create();
    let app = TestApp::spawn_on_postgres(&cluster.url(), |_| {}).await;
    let token = app.admin_token().await;
    let mut c = app.grpc().await;
    let list = |c: &mut authn_keys::proto::zitadel::management::v1::management_service_client::ManagementServiceClient<tonic::transport::Channel>| {
        let req = authed(
            &token,
            None,
            ListMachineKeysRequest {
                user_id: app.admin_id.clone(),
                query: None,
            },
        );
        let mut c = c.clone();
        async move { c.list_machine_keys(req).await }
    };
    list(&mut c).await.unwrap();

    cluster.stop();
    // Reads that miss the cache, REST and readiness: each answers, and fast.
    // The first finds its pooled connection dead, the next waits for a new one.
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let err = list(&mut c).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "took {:?}",
            started.elapsed()
        );
    }
    let (status, body) = app
        .rest(
            "POST",
            &format!("/users/{}/keys/_search", app.admin_id),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(status, 503, "{body}");
    let ready = app
        .http
        .get(format!("{}/debug/ready", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let (status, _) = app.rest("GET", "/healthz", None, None, None).await;
    assert_eq!(status, 200, "the process stays up");

    cluster.start();
    let mut healed = false;
    for _ in 0..60 {
        if list(&mut c).await.is_ok() {
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(healed, "the server serves again once the database is back");
    // Writes too, and readiness.
    c.add_machine_key(authed(&token, None, new_key(&app.admin_id)))
        .await
        .unwrap();
    let ready = app
        .http
        .get(format!("{}/debug/ready", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}
