//! The composition root: config → database (migrated) → services → router → listener, and
//! serving until a shutdown signal, draining in-flight requests.
use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc};

use tokio::net::TcpListener;

use crate::{
    api,
    config::Config,
    domain::{clock::SystemClock, ids::IdGenerator, list::ListLimits},
    error::{Error, Result},
    service::{
        Services, Settings,
        bootstrap::Instance,
        keys::FreshKeys,
        signing::{MasterKey, SigningKeys},
    },
    storage::{self, Backend, repo},
};

pub struct App {
    listener: TcpListener,
    router: axum::Router,
    addr: SocketAddr,
    pub services: Services,
    pub instance: Instance,
}

impl App {
    /// Binds the listener first (so `local_addr` is known before serving), then opens and
    /// migrates the database and builds everything else.
    pub async fn build(config: Config) -> Result<App> {
        let backend = Backend::of_url(&config.database_url).ok_or_else(|| {
            Error::invalid_argument(
                "CONFIG-Db002",
                "AUTHN_KEYS_DATABASE_URL must start with sqlite: or postgres://",
            )
        })?;
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            Error::unavailable("BOOT-Bind1", format!("cannot listen on {}", config.listen))
                .with_source(e)
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::internal("BOOT-Addr1", "no local address").with_source(e))?;
        let issuer = config
            .external_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_owned();
        let domain = url::Url::parse(&issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .ok_or_else(|| {
                Error::invalid_argument(
                    "CONFIG-Url01",
                    format!("external URL {issuer:?} is not a URL with a host"),
                )
            })?;

        let master = master_key(&config, backend)?;
        let db = storage::connect(&config.database_url, config.db_max_connections).await?;
        storage::migrate(&db).await?;
        let clock = Arc::new(SystemClock);
        let node = repo::register_node(&db, storage::db_time(chrono::Utc::now())).await?;
        let ids = Arc::new(IdGenerator::new(node, clock.clone()));
        let keys = Arc::new(FreshKeys::new(config.key_bits)?);
        let signing =
            SigningKeys::load_or_create(db.clone(), &master, keys.as_ref(), &ids, clock.as_ref())
                .await?;
        let services = Services {
            db,
            clock,
            ids,
            keys,
            signing: Arc::new(signing),
            settings: Arc::new(Settings {
                issuer,
                domain,
                clock_skew: chrono::Duration::seconds(config.clock_skew_secs.into()),
                assertion_max_age: chrono::Duration::seconds(config.assertion_max_age_secs.into()),
                access_token_lifetime: chrono::Duration::seconds(
                    config.access_token_lifetime_secs.max(1).into(),
                ),
                list_limits: ListLimits {
                    default_limit: config
                        .list_default_limit
                        .clamp(1, config.list_max_limit.max(1)),
                    max_limit: config.list_max_limit.max(1),
                },
            }),
        };
        let instance = services
            .bootstrap(&config.default_org, &config.admin_key_file)
            .await?;
        if instance.created {
            tracing::info!(
                admin_user_id = %instance.admin_user_id,
                org_id = %instance.default_org_id,
                key_file = %config.admin_key_file.display(),
                "first start: created the default org and the admin machine user; its key file was written"
            );
        }
        let router = api::router(services.clone()).await?;
        Ok(App {
            listener,
            router,
            addr,
            services,
            instance,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves HTTP/1.1 and h2c on the one listener until `shutdown` resolves, then lets
    /// in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let svc = self.services.clone();
        let purge = tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                every.tick().await;
                match svc.purge_expired_tokens().await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "expired access tokens purged"),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(cause = %e.cause_chain(), "purging expired tokens failed")
                    }
                }
            }
        });
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        purge.abort();
        served.map_err(|e| {
            Error::internal("BOOT-Serv1", "the server stopped with an error").with_source(e)
        })
    }
}

/// The configured master key; on SQLite without one, a generated key kept beside the database.
fn master_key(config: &Config, backend: Backend) -> Result<MasterKey> {
    if let Some(text) = &config.master_key {
        return MasterKey::parse(text);
    }
    match (backend, sqlite_file(&config.database_url)) {
        (Backend::Postgres, _) => Err(Error::invalid_argument(
            "CONFIG-Mkey2",
            "AUTHN_KEYS_MASTER_KEY (32 characters) is required with PostgreSQL: every server process must share it",
        )),
        (Backend::Sqlite, None) => {
            tracing::warn!(
                "no AUTHN_KEYS_MASTER_KEY: using a random one for this in-memory database"
            );
            MasterKey::parse(&MasterKey::generate_text())
        }
        (Backend::Sqlite, Some(db_file)) => {
            let path = PathBuf::from(format!("{}.masterkey", db_file.display()));
            match std::fs::read_to_string(&path) {
                Ok(text) => MasterKey::parse(text.trim()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let text = MasterKey::generate_text();
                    write_private(&path, text.as_bytes())?;
                    tracing::warn!(
                        path = %path.display(),
                        "no AUTHN_KEYS_MASTER_KEY: generated one and stored it beside the database; keep it with the database, or set the variable"
                    );
                    MasterKey::parse(&text)
                }
                Err(e) => Err(Error::internal(
                    "CONFIG-Mkey3",
                    format!("cannot read {}", path.display()),
                )
                .with_source(e)),
            }
        }
    }
}

/// The file behind a `sqlite:` URL, if it names one.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        None
    } else {
        Some(PathBuf::from(path))
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| {
            Error::internal("CONFIG-Mkey4", format!("cannot write {}", path.display()))
                .with_source(e)
        })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_file("sqlite://authn-keys.db?mode=rwc"),
            Some(PathBuf::from("authn-keys.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/a.db"),
            Some(PathBuf::from("/var/lib/a.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
    }
}
