//! `authn-keys [serve]` runs the server; `authn-keys migrate` applies migrations and exits;
//! `admin-key` and `rotate-signing-key` are the operator's break-glass commands.
use clap::{Parser, Subcommand};

use authn_keys::{
    app,
    config::{Config, LogFormat},
    service::bootstrap::KeyExpiry,
    storage,
};

#[derive(Parser)]
#[command(
    name = "authn-keys",
    version,
    about = "Machine-user and API-app keys, ZITADEL Management API v1 compatible"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC, gRPC-Web, REST and OAuth on one port (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Break-glass: write a new key file for an IAM_OWNER machine user, making one if none
    /// is left. Works on the database directly (same configuration as the server); audited.
    AdminKey {
        /// Where to write the JSON key file (mode 0600; never overwritten).
        #[arg(long)]
        out: std::path::PathBuf,
        /// When the key expires: an RFC 3339 time (2027-01-01T00:00:00Z) or a duration from
        /// now such as 7d, 12h or 1d12h (units w, d, h, m, s).
        #[arg(long, default_value = "24h", value_parser = KeyExpiry::parse)]
        expiration: KeyExpiry,
    },
    /// After a compromise: make a new token-signing key that signs at once. Running servers
    /// sign with it and publish it within about a second (they read the key list every
    /// second). Works on the database directly (same configuration as the server: the new
    /// key is of AUTHN_KEYS_SIGNING_ALGORITHM).
    RotateSigningKey {
        /// Also delete every older signing key: tokens they signed stop verifying at
        /// verifiers that check signatures against /oauth/v2/keys (once their cached copy,
        /// at most 60 s old, is refetched). This server's own API and introspection accept
        /// tokens by their records, not their signatures: to end those, remove the machine
        /// keys or users that obtained them. Without this flag the old key stays published
        /// until the tokens it signed have expired, so they keep verifying.
        #[arg(long)]
        drop_old: bool,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match cli.config.log_format {
        // One JSON object a line, the request span's fields (request id, transport, method)
        // included, for log shippers.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => logs.init(),
    }
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => migrate(&cli.config).await,
        Command::Serve => serve(cli.config).await,
        Command::AdminKey { out, expiration } => {
            retry_busy(|| admin_key(&cli.config, &out, expiration)).await
        }
        Command::RotateSigningKey { drop_old } => {
            retry_busy(|| rotate_signing_key(&cli.config, drop_old)).await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error_id = e.id, cause = %e.cause_chain(), "{}", e.message);
            eprintln!("authn-keys: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs an operator's command again when SQLite was busy: a running server's background work
/// (webhook deliveries, expiry notices, last-use flushes) commits now and then, and a
/// command's transaction that read before it wrote then fails at once instead of waiting.
/// Each attempt is one transaction, rolled back when it fails, so trying again is safe; the
/// command keeps trying for up to 30 s (a loaded machine can keep the writer busy for
/// seconds), waiting a little longer each time, up to 1 s.
async fn retry_busy<F, Fut>(mut run: F) -> authn_keys::error::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = authn_keys::error::Result<()>>,
{
    const BUDGET: std::time::Duration = std::time::Duration::from_secs(30);
    let start = std::time::Instant::now();
    let mut attempt: u64 = 0;
    loop {
        match run().await {
            Err(e) if e.id == "STORE-Busy1" && start.elapsed() < BUDGET => {
                attempt += 1;
                let pause = std::time::Duration::from_millis((100 * attempt).min(1000));
                tracing::debug!(attempt, "the database was busy; trying again");
                tokio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}

async fn migrate(config: &Config) -> authn_keys::error::Result<()> {
    let db = storage::connect_migrated(&config.database_url, 1).await?;
    // Closing checkpoints SQLite's WAL into the database file.
    let _ = db.close().await;
    tracing::info!(database = %storage::redact_url(&config.database_url), "migrations applied");
    Ok(())
}

async fn admin_key(
    config: &Config,
    out: &std::path::Path,
    expiration: KeyExpiry,
) -> authn_keys::error::Result<()> {
    let issuer = app::issuer(config, config.listen);
    // One key is needed: no pool.
    let config = Config {
        key_pool_size: 0,
        ..config.clone()
    };
    let svc = app::open_services(&config, issuer).await?;
    let done = svc.break_glass(out, expiration).await?;
    println!(
        "key {} of IAM_OWNER user {}{} written to {}; it expires at {} (keep it safe; it is shown only once; remove it with RemoveMachineKey once it has served)",
        done.key_id,
        done.user_id,
        if done.created_user {
            " (a new admin user: none was left)"
        } else {
            ""
        },
        out.display(),
        done.expires_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    Ok(())
}

/// Opens only what a signing-key rotation needs (not the services, whose start decrypts the
/// current key: this command must also replace a key that fails its checks).
async fn rotate_signing_key(config: &Config, drop_old: bool) -> authn_keys::error::Result<()> {
    use std::sync::Arc;

    use authn_keys::{
        domain::{
            clock::{Clock, SystemClock},
            ids::IdGenerator,
        },
        error::Error,
        service::{keygen::FreshKeys, signing::SigningKeys},
        storage::{Backend, repo},
    };
    let backend = Backend::of_url(&config.database_url).ok_or_else(|| {
        Error::invalid_argument(
            "CONFIG-Db002",
            "AUTHN_KEYS_DATABASE_URL must start with sqlite:, postgres:// or mysql://",
        )
    })?;
    let db = storage::connect_migrated(&config.database_url, 1).await?;
    let holds_encrypted = !repo::list_signing_keys(&db).await?.is_empty();
    let master = app::master_key(config, backend, holds_encrypted)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let node = repo::register_node(&db, storage::db_time(clock.now())).await?;
    let ids = IdGenerator::new(node, clock.clone());
    let source = FreshKeys::new(config.key_bits, 1)?;
    let done = SigningKeys::rotate_now(
        &db,
        &master,
        &source,
        &ids,
        clock.as_ref(),
        config.signing_algorithm.algorithm(),
        drop_old,
    )
    .await;
    let _ = db.close().await;
    let done = done?;
    println!(
        "new signing key {} ({}) signs from now on; running servers use and publish it within about 1 s",
        done.kid, done.algorithm
    );
    if drop_old {
        if done.dropped.is_empty() {
            println!("no older signing key to drop");
        } else {
            println!(
                "dropped signing keys {}: no longer published; tokens they signed stop verifying at verifiers using /oauth/v2/keys (this server's API still honours tokens by their records: remove the machine keys or users to end those)",
                done.dropped.join(", ")
            );
        }
    } else if let Some(previous) = done.previous {
        println!(
            "previous signing key {previous} stays published until the tokens it signed have expired (access token lifetime + 5 min); run with --drop-old to withdraw it at once"
        );
    }
    Ok(())
}

async fn serve(config: Config) -> authn_keys::error::Result<()> {
    let key_file = config.admin_key_file.clone();
    let app = app::App::build(config).await?;
    if app.instance.created {
        // On stderr: stdout carries the log lines, which may be JSON.
        eprintln!(
            "admin key file written to {} (keep it safe; it is shown only once)",
            key_file.display()
        );
    }
    tracing::info!(address = %app.local_addr(), issuer = %app.services.settings.issuer, "serving gRPC, gRPC-Web, REST and OAuth");
    app.run_until(app::shutdown_signal()).await
}
