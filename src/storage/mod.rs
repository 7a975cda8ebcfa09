//! Persistence: the only module that imports `sea_orm`. Connecting (SQLite pragmas, pool
//! sizes), migrations, and repo functions that take any connection or transaction and return
//! domain records.
use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, SqlErr};
use sea_orm_migration::MigratorTrait;

use crate::error::Error;

pub mod entity;
pub mod migration;
pub mod repo;

pub use sea_orm::{
    ConnectionTrait, DatabaseConnection as Db, DatabaseTransaction as Tx, TransactionTrait,
};

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// MySQL 8 or MariaDB 10.6 and later.
    Mysql,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
            Backend::Mysql => "MySQL",
        }
    }

    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Some(Backend::Mysql)
        } else {
            None
        }
    }
}

/// Opens the pool. SQLite runs in WAL mode with a busy timeout, so concurrent writers wait
/// for each other instead of failing with SQLITE_BUSY.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, Error> {
    let backend = Backend::of_url(url).ok_or_else(|| {
        Error::invalid_argument(
            "CONFIG-Db001",
            format!(
                "unsupported database URL {:?}: use sqlite://…, postgres://… or mysql://…",
                redact_url(url)
            ),
        )
    })?;
    // sqlx knows MariaDB by the MySQL scheme only.
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_owned(),
    };
    let mut options = ConnectOptions::new(url.clone());
    options
        .sqlx_logging(false)
        // A database that is gone must fail requests fast (UNAVAILABLE), well before the
        // request timeout, instead of holding them while the pool retries.
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5));
    // sqlx pings a pooled connection on every checkout by default: a round trip per query
    // on a server database, a hop to the worker thread on SQLite. A connection in use a
    // moment ago is alive; one idle for a second may have been dropped (a restarted server,
    // a proxy's timeout), so only those are pinged. A local SQLite file is never dropped.
    if backend == Backend::Sqlite {
        options.test_before_acquire(false);
    } else {
        options.test_before_acquire_if_idle_for(Duration::from_secs(1));
    }
    match backend {
        Backend::Sqlite => {
            create_private_sqlite_file(&url);
            // `:memory:` gives every connection its own database: keep those to one.
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            options
                .max_connections(if in_memory { 1 } else { max_connections.max(1) })
                .map_sqlx_sqlite_opts(|o| {
                    o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .busy_timeout(Duration::from_secs(30))
                        .foreign_keys(true)
                        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                });
        }
        Backend::Postgres => {
            options.max_connections(max_connections.max(1));
        }
        Backend::Mysql => {
            options
                .max_connections(max_connections.max(1))
                .map_sqlx_mysql_pool_opts(|pool| {
                    pool.after_connect(|conn, _| Box::pin(mysql_session(conn)))
                });
        }
    }
    Database::connect(options).await.map_err(|e| {
        Error::unavailable(
            "STORE-Conn1",
            format!("cannot open the database {}", redact_url(&url)),
        )
        .with_source(e)
    })
}

/// The file a SQLite URL lets SQLite create (`mode=rwc`), if it names one.
fn sqlite_file_to_create(url: &str) -> Option<std::path::PathBuf> {
    use std::str::FromStr;
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    let creates =
        url::form_urlencoded::parse(params.as_bytes()).any(|(k, v)| k == "mode" && v == "rwc");
    if !creates || path.is_empty() || path == ":memory:" {
        return None;
    }
    // sqlx's own reading of the path (percent-decoded), so this is the file it opens.
    let options = sea_orm::sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

/// SQLite would create a missing database file readable by everyone (0644 under the usual
/// umask); it holds token hashes and the encrypted signing keys, so it is created here first,
/// empty and readable by its owner only, as the master key file beside it. SQLite gives its
/// `-wal` and `-shm` files the database file's mode. An existing file is left as it is; when
/// the file cannot be created, opening it reports why.
fn create_private_sqlite_file(url: &str) {
    let Some(path) = sqlite_file_to_create(url) else {
        return;
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = options.open(path);
}

/// Every MySQL session reads committed data, as PostgreSQL's do: InnoDB's default
/// (repeatable read) takes gap locks on the deletes and inserts of concurrent key writes and
/// then deadlocks where PostgreSQL simply waits. Row locks still serialize the writes that
/// must be (a user's sequence, the instance row). A lock wait gives up after 10 s (InnoDB's
/// default is 50), well before the request timeout.
async fn mysql_session(
    conn: &mut sea_orm::sqlx::MySqlConnection,
) -> Result<(), sea_orm::sqlx::Error> {
    use sea_orm::sqlx::Executor;
    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await?;
    // The server's SQL mode, with two changes for our sessions: pattern queries escape with a
    // backslash (`LIKE … ESCAPE '\\'`), which NO_BACKSLASH_ESCAPES would read differently, so
    // that mode goes; and a value that does not fit must be refused, never cut or zeroed
    // quietly, so strict mode is on whatever the server's default.
    conn.execute(
        "SET SESSION sql_mode = CONCAT_WS(',', \
           NULLIF(TRIM(BOTH ',' FROM REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), ',NO_BACKSLASH_ESCAPES,', ',')), ''), \
           'STRICT_ALL_TABLES')",
    )
    .await?;
    conn.execute("SET SESSION innodb_lock_wait_timeout = 10")
        .await?;
    Ok(())
}

/// The database MySQL URLs without one use.
pub const DEFAULT_MYSQL_DATABASE: &str = "authn_keys";

/// The URL to open: a MySQL URL without a database names [`DEFAULT_MYSQL_DATABASE`]; any
/// other URL as it is.
fn database_url(url: &str) -> Result<String, Error> {
    if Backend::of_url(url) != Some(Backend::Mysql) {
        return Ok(url.to_owned());
    }
    let mut parsed = url::Url::parse(url).map_err(|_| {
        Error::invalid_argument(
            "CONFIG-Db003",
            format!("the database URL {} is not a URL", redact_url(url)),
        )
    })?;
    if parsed.path().trim_start_matches('/').is_empty() {
        parsed.set_path(&format!("/{DEFAULT_MYSQL_DATABASE}"));
    }
    Ok(parsed.to_string())
}

/// Whether opening failed because the named database does not exist (MySQL 1049,
/// PostgreSQL 3D000).
fn missing_database(e: &Error) -> bool {
    let cause = e.cause_chain();
    cause.contains("Unknown database")
        || (cause.contains("database \"") && cause.contains("\" does not exist"))
}

/// Opens one connection to the database `url` names, creating the database first when it
/// does not exist yet and the user may (as SQLite's `mode=rwc` creates its file).
async fn connect_creating(url: &str) -> Result<DatabaseConnection, Error> {
    let missing = match connect(url, 1).await {
        Err(e) if missing_database(&e) => e,
        opened => return opened,
    };
    let Ok(mut server) = url::Url::parse(url) else {
        return Err(missing);
    };
    let name = server.path().trim_start_matches('/').to_owned();
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(missing);
    }
    // Created over a connection to the server itself (PostgreSQL: its `postgres` database).
    let mysql = Backend::of_url(url) == Some(Backend::Mysql);
    server.set_path(if mysql { "/" } else { "/postgres" });
    let admin = connect(server.as_str(), 1).await?;
    let create = if mysql {
        format!("CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
    } else {
        format!("CREATE DATABASE \"{name}\"")
    };
    let created = admin.execute_unprepared(&create).await;
    let _ = admin.close().await;
    match created {
        Ok(_) => tracing::info!(database = %name, "created the database"),
        // Another process created it meanwhile (PostgreSQL has no IF NOT EXISTS).
        Err(e) if e.to_string().contains("already exists") => {}
        Err(e) => {
            return Err(Error::unavailable(
                "STORE-Creat",
                format!(
                    "the database {name} does not exist, and creating it failed; create it, or grant the user the right to"
                ),
            )
            .with_source(e));
        }
    }
    connect(url, 1).await
}

/// Opens the pool after applying pending migrations over a connection of their own: schema
/// changes spread over several pooled SQLite connections see stale schemas (a dropped
/// table's index "already exists"). In-memory SQLite has one connection, which is migrated.
/// A MySQL URL without a database uses [`DEFAULT_MYSQL_DATABASE`]; a server database that
/// does not exist yet is created.
pub async fn connect_migrated(
    url: &str,
    max_connections: u32,
) -> Result<DatabaseConnection, Error> {
    let url = &database_url(url)?;
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if in_memory {
        let db = connect(url, 1).await?;
        migrate(&db).await?;
        return Ok(db);
    }
    let once = connect_creating(url).await?;
    migrate(&once).await?;
    let _ = once.close().await;
    connect(url, max_connections).await
}

/// Serializes migrations of processes sharing a PostgreSQL database (an arbitrary constant).
const MIGRATION_LOCK: i64 = 0x6175_7468_6e6b_6579;
/// The same on MySQL, whose named locks belong to the server, not to a database: the lock
/// is named by a hash of the database's name and this (names are at most 64 characters).
const MYSQL_MIGRATION_LOCK: &str = "authn_keys_migrations";

/// Applies all pending migrations. `db` must be a pool of one connection: on PostgreSQL and
/// MySQL the migrations run under a session lock, so that processes started at once on an
/// empty database apply them one after the other (the later ones then find nothing to do).
pub async fn migrate(db: &DatabaseConnection) -> Result<(), Error> {
    let backend = db.get_database_backend();
    let lock = match backend {
        sea_orm::DbBackend::Postgres => Some((
            format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"),
            format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"),
        )),
        sea_orm::DbBackend::MySql => {
            let name = format!("SHA1(CONCAT(DATABASE(), '.{MYSQL_MIGRATION_LOCK}'))");
            Some((
                // Waits up to 10 minutes; 1 means taken, 0 a timeout.
                format!("SELECT GET_LOCK({name}, 600)"),
                format!("SELECT RELEASE_LOCK({name})"),
            ))
        }
        _ => None,
    };
    if let Some((take, _)) = &lock {
        let answer = db
            .query_one_raw(sea_orm::Statement::from_string(backend, take.clone()))
            .await
            .map_err(db_err)?;
        if backend == sea_orm::DbBackend::MySql {
            // 1: taken; 0: timed out; NULL: an error (no database selected, say).
            match answer.map(|row| row.try_get_by_index::<Option<i64>>(0)) {
                Some(Ok(Some(1))) => {}
                Some(Ok(Some(0))) => {
                    return Err(Error::unavailable(
                        "STORE-Migr2",
                        "another process held the migration lock for 10 minutes",
                    ));
                }
                other => {
                    return Err(Error::internal(
                        "STORE-Migr3",
                        format!(
                            "taking the migration lock failed (GET_LOCK answered {other:?}); does the URL name a database?"
                        ),
                    ));
                }
            }
        }
    }
    let applied = migration::Migrator::up(db, None).await.map_err(|e| {
        Error::internal("STORE-Migr1", "applying database migrations failed").with_source(e)
    });
    if let Some((_, release)) = &lock {
        // Ending the session would release it too; unlocking lets a reused pool go on.
        let _ = db.execute_unprepared(release).await;
    }
    applied
}

/// Checks the database answers (for `/debug/ready`).
pub async fn ping(db: &DatabaseConnection) -> Result<(), Error> {
    db.ping().await.map_err(db_err)
}

/// The connection pool's use: (open connections, idle ones, the maximum).
pub fn pool_use(db: &DatabaseConnection) -> (u32, usize, u32) {
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            let p = db.get_postgres_connection_pool();
            (p.size(), p.num_idle(), p.options().get_max_connections())
        }
        sea_orm::DbBackend::MySql => {
            let p = db.get_mysql_connection_pool();
            (p.size(), p.num_idle(), p.options().get_max_connections())
        }
        _ => {
            let p = db.get_sqlite_connection_pool();
            (p.size(), p.num_idle(), p.options().get_max_connections())
        }
    }
}

/// A URL with its password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Maps a database error to the service error: unique violations to AlreadyExists (callers
/// that know which constraint re-label it), lost connections to Unavailable, the rest to
/// Internal with the cause kept for the log.
/// Begins a transaction.
pub async fn begin(db: &Db) -> Result<Tx, Error> {
    db.begin().await.map_err(db_err)
}

/// Commits a transaction.
pub async fn commit(tx: Tx) -> Result<(), Error> {
    tx.commit().await.map_err(db_err)
}

pub(crate) fn db_err(e: DbErr) -> Error {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            return Error::already_exists("STORE-Uniq1", "the object already exists")
                .with_source(e);
        }
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
            return Error::failed_precondition("STORE-Fk001", "a referenced object does not exist")
                .with_source(e);
        }
        _ => {}
    }
    let text = e.to_string();
    // SQLite's writer lock; InnoDB's lock waits that time out or deadlock (1205, 1213).
    let busy = text.contains("database is locked")
        || text.contains("Lock wait timeout exceeded")
        || text.contains("Deadlock found");
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
            Error::unavailable("STORE-Unav1", "the database is not reachable").with_source(e)
        }
        _ if text.contains("database or disk is full")
            || text.contains("No space left on device")
            // MySQL's "The table '…' is full" (1114) and "Disk full" (1021).
            || (text.contains("The table '") && text.contains("is full"))
            || text.contains("Disk full") =>
        {
            Error::unavailable(
                "STORE-Full1",
                "the database's disk is full; nothing was written",
            )
            .with_source(e)
        }
        _ if unreachable(&text) => {
            Error::unavailable("STORE-Unav2", "the database connection was lost").with_source(e)
        }
        _ if busy => {
            Error::unavailable("STORE-Busy1", "the database is busy; try again").with_source(e)
        }
        _ => Error::internal("STORE-Int01", "a database operation failed").with_source(e),
    }
}

/// Whether a database error says the server went away (network, shutdown, restart) rather
/// than that the statement failed. sea-orm hands sqlx's errors over as text.
fn unreachable(text: &str) -> bool {
    const SIGNS: [&str; 12] = [
        "error communicating with database",
        "pool timed out",
        "closed pool",
        "connection refused",
        "connection reset",
        "broken pipe",
        // PostgreSQL shutting down or restarting (57P01, 57P02, 57P03).
        "terminating connection due to administrator command",
        "the database system is",
        // MySQL shutting down, or the connection dropped or killed (1053, 2006, 2013, 1927).
        "server shutdown in progress",
        "server has gone away",
        "lost connection",
        "connection was killed",
    ];
    let lower = text.to_ascii_lowercase();
    SIGNS.iter().any(|s| lower.contains(s))
}

/// The database's time precision: PostgreSQL keeps microseconds, so every stored time is cut
/// to microseconds first and both backends read back what was written.
pub fn db_time(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::{DurationRound, TimeDelta};
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// The PostgreSQL channel on which processes sharing a database tell each other what a
/// committed write changed (cache invalidation).
pub const CHANGES_CHANNEL: &str = "authn_keys_changes";

/// Queues a change notice inside the writing transaction: PostgreSQL delivers it to every
/// listening process when (and only if) the transaction commits. Nothing on SQLite and MySQL,
/// whose processes cannot listen; they bound staleness by time instead.
pub async fn notify(db: &impl ConnectionTrait, payload: &str) -> Result<(), Error> {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANGES_CHANNEL.into(), payload.into()],
    ))
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Whether the pool was closed (the server is stopping).
pub fn is_closed(db: &DatabaseConnection) -> bool {
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => db.get_postgres_connection_pool().is_closed(),
        sea_orm::DbBackend::Sqlite => db.get_sqlite_connection_pool().is_closed(),
        sea_orm::DbBackend::MySql => db.get_mysql_connection_pool().is_closed(),
        _ => false,
    }
}

/// What a listener hears next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Message(String),
    /// The connection was lost: notices from then on are missing until a new listener is
    /// connected.
    Gap,
}

/// Receives the change notices of other processes (PostgreSQL only), over a connection of its
/// own outside the pool: a listener that is given up on (its server froze, a NAT dropped the
/// connection) is closed, never handed back to serve requests, and takes no pool slot.
pub struct ChangeListener {
    listener: sea_orm::sqlx::postgres::PgListener,
    /// The service pool: closing it ends the wait.
    pool: sea_orm::sqlx::PgPool,
}

impl ChangeListener {
    /// `None` on SQLite and MySQL. Callers bound the wait: connecting opens a connection and
    /// runs `LISTEN`, each of which may hang on a server that stopped answering.
    pub async fn connect(db: &DatabaseConnection) -> Result<Option<Self>, Error> {
        use sea_orm::sqlx::{Executor, postgres::PgPoolOptions};
        if db.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(None);
        }
        let unavailable = |e: sea_orm::sqlx::Error| {
            Error::unavailable("STORE-Lstn1", "cannot listen for change notices").with_source(e)
        };
        let pool = db.get_postgres_connection_pool().clone();
        let own = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(None)
            .max_lifetime(None)
            // sqlx 0.9 has no client-side TCP keepalive, so a dead server is noticed by the
            // heartbeat (see `service::cache`). Server-side keepalive at least lets the server
            // end a listener whose client vanished, instead of holding back the notice queue
            // for it. Not fatal if refused.
            .after_connect(|conn, _| {
                Box::pin(async move {
                    let _ = conn
                        .execute(
                            "SELECT set_config('tcp_keepalives_idle', '30', false), \
                             set_config('tcp_keepalives_interval', '10', false), \
                             set_config('tcp_keepalives_count', '3', false)",
                        )
                        .await;
                    Ok(())
                })
            })
            // A released listener connection is closed, not pinged: a ping on a frozen server
            // would wait forever.
            .after_release(|_, _| Box::pin(async { Ok(false) }))
            .connect_lazy_with((*pool.connect_options()).clone());
        let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(&own)
            .await
            .map_err(unavailable)?;
        // A lost connection is reported (`Notice::Gap`) and the caller connects anew, clearing
        // what it cached once the new `LISTEN` is in place.
        listener.eager_reconnect(false);
        listener.ignore_pool_close_event(true);
        listener
            .listen(CHANGES_CHANNEL)
            .await
            .map_err(unavailable)?;
        Ok(Some(ChangeListener { listener, pool }))
    }

    /// The next notice. Waits as long as the server is silent: callers bound it. Cancelling
    /// it loses nothing (sqlx reads whole messages only).
    pub async fn next(&mut self) -> Result<Notice, Error> {
        let mut closing = self.pool.close_event();
        match closing.do_until(self.listener.try_recv()).await {
            Ok(Ok(Some(n))) => Ok(Notice::Message(n.payload().to_owned())),
            Ok(Ok(None)) => Ok(Notice::Gap),
            Ok(Err(e)) | Err(e) => Err(Error::unavailable(
                "STORE-Lstn2",
                "listening for change notices failed",
            )
            .with_source(e)),
        }
    }
}
