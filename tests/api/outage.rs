//! A database outage: with its PostgreSQL or MariaDB stopped, the server stays up, answers
//! fast with UNAVAILABLE / 503 (never holding a request until its timeout), says it is not
//! ready, and serves again as soon as the database is back — without a restart. The test
//! makes, stops and starts a database server of its own (never the shared one).
use std::{path::PathBuf, process::Command, sync::Mutex, time::Duration};

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

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap();
    assert!(status.success(), "{cmd:?} failed: {status}");
}

impl Cluster {
    fn create() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        // PostgreSQL refuses to run as root: its folders belong to postgres.
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path()));
        let bin = postgres_bin();
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "-D"])
            .arg(&data)
            .stdout(std::process::Stdio::null()));
        let cluster = Cluster {
            bin,
            data,
            port: free_port(),
            _dir: dir,
        };
        cluster.start();
        cluster
    }
}

/// A database server the test may stop and start.
pub trait Outage {
    fn url(&self) -> String;
    fn start(&self);
    /// Stops at once, as a crash or a power cut would.
    fn stop(&self);
}

impl Outage for Cluster {
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
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

impl Cluster {
    fn pg_ctl(&self, args: &[&str]) {
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .stdout(std::process::Stdio::null()));
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

/// A throwaway MariaDB server on its own port and data folder. Without grant tables root may
/// connect without a password, so no system tables need installing.
pub struct Mariadb {
    data: PathBuf,
    port: u16,
    /// Server options beyond the ones every test server gets.
    options: Vec<String>,
    child: Mutex<Option<std::process::Child>>,
    _dir: tempfile::TempDir,
}

impl Mariadb {
    pub fn create(options: &[&str]) -> Mariadb {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        run(Command::new("chown")
            .args(["-R", "mysql:mysql"])
            .arg(dir.path()));
        let server = Mariadb {
            data,
            port: free_port(),
            options: options.iter().map(|o| o.to_string()).collect(),
            child: Mutex::new(None),
            _dir: dir,
        };
        server.start();
        server
    }
}

impl Outage for Mariadb {
    fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/", self.port)
    }

    fn start(&self) {
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data.display()))
            .arg(format!("--socket={}", self.data.join("sock").display()))
            .arg(format!(
                "--log-error={}",
                self.data.join("server.log").display()
            ))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--user=mysql",
                "--skip-grant-tables",
                "--innodb-buffer-pool-size=16M",
                "--innodb-log-file-size=8M",
            ])
            .args(&self.options)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("MariaDB's server binary is installed (Debian's mariadb-server)");
        *self.child.lock().unwrap() = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        for _ in 0..300 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("MariaDB did not listen on {addr} within 30 s");
    }

    fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn a_database_outage_fails_fast_and_heals() {
    // Needs the database's server binaries: part of the PostgreSQL and MariaDB runs.
    let server: Box<dyn Outage> = match database_server() {
        Some(url) if url.starts_with("postgres") => Box::new(Cluster::create()),
        Some(_) => Box::new(Mariadb::create(&[])),
        None => {
            skip("needs PostgreSQL or MariaDB (DATABASE_URL unset): it stops a server of its own");
            return;
        }
    };
    let app = TestApp::spawn_on_database(Some(&server.url()), |_| {}).await;
    let token = app.admin_token().await;
    let mut c = app.grpc().await;
    // ListUsers reads the database on every call (an owner's key list may come from memory).
    let list = |c: &mut authn_keys::proto::zitadel::management::v1::management_service_client::ManagementServiceClient<tonic::transport::Channel>| {
        let req = authed(&token, None, ListUsersRequest::default());
        let mut c = c.clone();
        async move { c.list_users(req).await }
    };
    list(&mut c).await.unwrap();

    server.stop();
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

    server.start();
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
