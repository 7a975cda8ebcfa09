//! The composition root: config → database (migrated) → services → router → listener, and
//! serving until a shutdown signal, draining in-flight requests.
use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::extract::ConnectInfo;
use hyper::{Request, body::Incoming};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::net::TcpListener;
use tower::Service;

use crate::{
    api::{self, RouterSettings, client_addr::TrustedProxies, cors::CorsOrigins, tls::Tls},
    config::Config,
    domain::{
        clock::{Clock, SystemClock},
        events::NoticeWindows,
        ids::IdGenerator,
        list::ListLimits,
        secret::SecretHasher,
    },
    error::{Error, Result},
    service::{
        Services, Settings,
        bootstrap::Instance,
        events::EventHub,
        issuer_keys::IssuerKeys,
        keygen::{FreshKeys, KeyPairSource, KeyPool},
        last_use::LastUses,
        outbound::Outbound,
        signing::{MasterKey, Rotation, SigningKeys},
        throttle::{Limit, Throttle},
        tokens::{ReplayGuard, TokenRecords},
    },
    storage::{self, Backend, repo},
};

pub struct App {
    listener: TcpListener,
    router: axum::Router,
    addr: SocketAddr,
    http2_max_streams: u32,
    drain: Duration,
    tls: Option<Tls>,
    pub services: Services,
    pub instance: Instance,
}

/// The issuer: the external URL, or `http(s)://<listen address>`, without a trailing slash.
pub fn issuer(config: &Config, addr: SocketAddr) -> String {
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    config
        .external_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"))
        .trim_end_matches('/')
        .to_owned()
}

/// Opens and migrates the database and builds the services on it (no listener, no
/// bootstrap): what the server and the operator commands share.
pub async fn open_services(config: &Config, issuer: String) -> Result<Services> {
    let backend = Backend::of_url(&config.database_url).ok_or_else(|| {
        Error::invalid_argument(
            "CONFIG-Db002",
            "AUTHN_KEYS_DATABASE_URL must start with sqlite:, postgres:// or mysql://",
        )
    })?;
    let domain = url::Url::parse(&issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .ok_or_else(|| {
            Error::invalid_argument(
                "CONFIG-Url01",
                format!("external URL {issuer:?} is not a URL with a host"),
            )
        })?;
    if config.signing_key_rotation_secs < 60 {
        return Err(Error::invalid_argument(
            "CONFIG-Rot01",
            "AUTHN_KEYS_SIGNING_KEY_ROTATION_SECS must be at least 60",
        ));
    }
    let key_policy = config
        .key_policy()
        .map_err(|e| Error::invalid_argument("CONFIG-Pol01", e))?;
    let keygen: Arc<dyn KeyPairSource> = if config.key_pool_size > 0 {
        Arc::new(KeyPool::start(
            config.key_bits,
            config.key_pool_size as usize,
            config.key_pool_workers as usize,
            config.keygen_queue as usize,
        )?)
    } else {
        Arc::new(FreshKeys::new(
            config.key_bits,
            config.keygen_queue as usize,
        )?)
    };
    let db = storage::connect_migrated(&config.database_url, config.db_max_connections).await?;
    // Signing keys on record are encrypted with the master key: a missing key file then is an
    // error, not a reason to make a new key.
    let holds_encrypted = !repo::list_signing_keys(&db).await?.is_empty();
    let master = master_key(config, backend, holds_encrypted)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let node = repo::register_node(&db, storage::db_time(chrono::Utc::now())).await?;
    let ids = Arc::new(IdGenerator::new(node, clock.clone()));
    let access_token_lifetime =
        chrono::Duration::seconds(config.access_token_lifetime_secs.max(1).into());
    let signing = SigningKeys::load(
        db.clone(),
        master.clone(),
        keygen.clone(),
        ids.clone(),
        clock.clone(),
        Rotation {
            every: chrono::Duration::seconds(config.signing_key_rotation_secs.into()),
            token_lifetime: access_token_lifetime,
            algorithm: config.signing_algorithm.algorithm(),
        },
    )
    .await?;
    let limit = |burst, per_minute| Limit { burst, per_minute };
    let db_for_records = db.clone();
    let outbound = Outbound::new(config.outbound())?;
    let clock_for_keys = clock.clone();
    Ok(Services {
        db,
        clock,
        ids,
        keygen,
        signing: Arc::new(signing),
        settings: Arc::new(Settings {
            issuer,
            domain,
            clock_skew: chrono::Duration::seconds(config.clock_skew_secs.into()),
            assertion_max_age: chrono::Duration::seconds(config.assertion_max_age_secs.into()),
            access_token_lifetime,
            access_token_typ: config.access_token_typ.header(),
            list_limits: ListLimits {
                default_limit: config
                    .list_default_limit
                    .clamp(1, config.list_max_limit.max(1)),
                max_limit: config.list_max_limit.max(1),
            },
            key_policy,
        }),
        secrets: Arc::new(SecretHasher::new(
            master.derive("authn-keys client secrets v1"),
        )),
        throttle: Arc::new(Throttle::new(
            limit(config.auth_failure_burst, config.auth_failure_per_minute),
            limit(
                config.auth_failure_address_burst,
                config.auth_failure_address_per_minute,
            ),
        )),
        bearer_throttle: Arc::new(Throttle::new(
            Limit::OFF,
            limit(
                config.bearer_failure_burst,
                config.bearer_failure_burst.saturating_mul(2),
            ),
        )),
        legacy_hash_slots: Arc::new(tokio::sync::Semaphore::new(2)),
        caches: Arc::default(),
        token_records: TokenRecords::start(db_for_records.clone()),
        replays: ReplayGuard::start(db_for_records),
        last_uses: Arc::new(LastUses::new(config.key_last_use)),
        issuer_keys: Arc::new(IssuerKeys::new(outbound.clone(), clock_for_keys)),
        dpop: Arc::new(crate::service::dpop::Dpop::new(&master, config.dpop_nonce)),
        outbound,
        events: Arc::new(EventHub::new(
            &master,
            NoticeWindows::parse(&config.expiry_notices).map_err(|e| {
                Error::invalid_argument("CONFIG-Notc1", format!("AUTHN_KEYS_EXPIRY_NOTICES: {e}"))
            })?,
        )),
    })
}

impl App {
    /// Binds the listener first (so `local_addr` is known before serving), then opens and
    /// migrates the database and builds everything else.
    pub async fn build(config: Config) -> Result<App> {
        let cors_origins = CorsOrigins::parse(&config.cors_origins)?;
        let trusted_proxies = TrustedProxies::parse(&config.trusted_proxies)?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(Tls::load(cert, key)?),
            (None, None) => None,
            _ => {
                return Err(Error::invalid_argument(
                    "CONFIG-Tls01",
                    "AUTHN_KEYS_TLS_CERT and AUTHN_KEYS_TLS_KEY go together: set both or neither",
                ));
            }
        };
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            Error::unavailable("BOOT-Bind1", format!("cannot listen on {}", config.listen))
                .with_source(e)
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::internal("BOOT-Addr1", "no local address").with_source(e))?;
        if config.external_url.is_none() && addr.ip().is_unspecified() {
            tracing::warn!(
                issuer = %issuer(&config, addr),
                "listening on a wildcard address without AUTHN_KEYS_EXTERNAL_URL: the issuer, and so every assertion's audience, is that wildcard address; set AUTHN_KEYS_EXTERNAL_URL to the URL clients use (required whenever clients do not reach the server at its listen address, and for several processes behind one name)"
            );
        }
        let services = open_services(&config, issuer(&config, addr)).await?;
        let instance = services
            .bootstrap(&config.default_org, &config.admin_key_file)
            .await
            .map_err(|e| explain_taken_key_file(e, &config))?;
        if instance.created {
            tracing::info!(
                admin_user_id = %instance.admin_user_id,
                org_id = %instance.default_org_id,
                key_file = %config.admin_key_file.display(),
                "first start: created the default org and the admin machine user; its key file was written"
            );
        }
        let router = api::router(
            services.clone(),
            RouterSettings {
                max_in_flight: config.max_concurrent_requests.max(1) as usize,
                timeout: Duration::from_secs(config.request_timeout_secs.max(1).into()),
                max_body_bytes: config.max_body_bytes.max(1024) as usize,
                cors_origins,
                ui_dir: config.ui_dir.clone(),
                max_stream: Duration::from_secs(config.max_stream_secs.max(1).into()),
                trusted_proxies,
            },
        )
        .await?;
        Ok(App {
            listener,
            router,
            addr,
            http2_max_streams: config.http2_max_streams.max(1),
            drain: Duration::from_secs(config.shutdown_drain_secs.into()),
            tls,
            services,
            instance,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves HTTP/1.1 and h2c on the one listener until `shutdown` resolves, then lets
    /// in-flight requests finish (for at most the drain time).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let mut background = spawn_background(self.services.clone());
        if let Some(tls) = &self.tls {
            background.push(tls.clone().reload_on_sighup());
        }
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.http2_max_streams)
            .keep_alive_interval(Duration::from_secs(60));
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, keep serving.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let router = self.router.clone();
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().call(req)
            });
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let tls = self
                .tls
                .as_ref()
                .map(|t| tokio_rustls::TlsAcceptor::from(t.config()));
            tokio::spawn(async move {
                let served = match tls {
                    None => {
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                    Some(acceptor) => {
                        // The handshake gets the same bound as reading request headers.
                        let handshake =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                        let stream = match handshake.await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(peer = %peer, "TLS handshake timed out");
                                return;
                            }
                        };
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                };
                if let Err(e) = served {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        let drained = tokio::time::timeout(self.drain, graceful.shutdown()).await;
        for task in background {
            task.abort();
        }
        // What was seen since the last flush is kept: a graceful stop loses no last use.
        if let Err(e) = self.services.flush_last_uses().await {
            tracing::warn!(cause = %e.cause_chain(), "writing keys' last use at shutdown failed");
        }
        match drained {
            Ok(()) => tracing::info!("all connections drained"),
            Err(_) => tracing::warn!(
                drain_secs = self.drain.as_secs(),
                "connections still open after the drain time; stopping anyway"
            ),
        }
        // Closing the pool lets SQLite checkpoint its WAL into the database file, so a copy
        // of the stopped database is complete.
        if let Err(e) = self.services.db.clone().close().await {
            tracing::warn!(error = %e, "closing the database pool failed");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The server's housekeeping: hourly purge of expired tokens and assertion ids, the signing
/// keys' refresh every second and rotation check every minute, the change-notice listener,
/// the last-use flusher, and the webhook dispatcher with the expiry notices.
fn spawn_background(svc: Services) -> Vec<tokio::task::JoinHandle<()>> {
    let purge = {
        let svc = svc.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                every.tick().await;
                match svc.purge_expired_tokens().await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "expired tokens purged"),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(cause = %e.cause_chain(), "purging expired tokens failed")
                    }
                }
            }
        })
    };
    let rotate = tokio::spawn({
        let svc = svc.clone();
        async move { svc.signing.keep_current().await }
    });
    let listen = {
        let svc = svc.clone();
        tokio::spawn(async move { svc.listen_for_changes().await })
    };
    let last_uses = {
        let svc = svc.clone();
        tokio::spawn(async move { svc.keep_flushing_last_uses().await })
    };
    let dispatch = tokio::spawn(async move { svc.keep_dispatching().await });
    vec![purge, rotate, listen, last_uses, dispatch]
}

/// The configured master key; on SQLite without one, a generated key kept beside the database.
pub fn master_key(config: &Config, backend: Backend, holds_encrypted: bool) -> Result<MasterKey> {
    if let Some(text) = &config.master_key {
        return MasterKey::parse(text);
    }
    match (backend, sqlite_file(&config.database_url)) {
        (Backend::Postgres | Backend::Mysql, _) => Err(Error::invalid_argument(
            "CONFIG-Mkey2",
            "AUTHN_KEYS_MASTER_KEY (32 characters) is required with PostgreSQL and MySQL: every server process must share it",
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
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && holds_encrypted => {
                    Err(Error::failed_precondition(
                        "CONFIG-Mkey5",
                        format!(
                            "the database {} holds encrypted signing keys but its master key file {} is missing; restore that file or set AUTHN_KEYS_MASTER_KEY (a new key could not read them)",
                            db_file.display(),
                            path.display()
                        ),
                    ))
                }
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

/// An in-memory database is empty at every start, so every start is a first start and writes
/// a new admin key file; a file left by an earlier start is in the way (it is never
/// overwritten: another server may still run with it). Says so, and what to do.
fn explain_taken_key_file(e: Error, config: &Config) -> Error {
    let in_memory = Backend::of_url(&config.database_url) == Some(Backend::Sqlite)
        && sqlite_file(&config.database_url).is_none();
    if e.id != "BOOT-Exist1" || !in_memory {
        return e;
    }
    Error::failed_precondition(
        "BOOT-Exist1",
        format!(
            "the admin key file {} already exists and is never overwritten. The database is in memory ({}): every start begins empty and makes a new admin, so that file holds the key of an earlier start's admin, gone with its database unless that server still runs. Delete the file, or give each start its own AUTHN_KEYS_ADMIN_KEY_FILE (--admin-key-file)",
            config.admin_key_file.display(),
            config.database_url
        ),
    )
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
