//! `authn-keys [serve]` runs the server; `authn-keys migrate` applies migrations and exits.
use clap::{Parser, Subcommand};

use authn_keys::{
    app,
    config::{Config, LogFormat},
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
        /// When the key expires (RFC 3339); default: never.
        #[arg(long)]
        expiration: Option<chrono::DateTime<chrono::Utc>>,
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
        Command::AdminKey { out, expiration } => admin_key(&cli.config, &out, expiration).await,
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
    expiration: Option<chrono::DateTime<chrono::Utc>>,
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
        "key {} of IAM_OWNER user {}{} written to {} (keep it safe; it is shown only once)",
        done.key_id,
        done.user_id,
        if done.created_user {
            " (a new admin user: none was left)"
        } else {
            ""
        },
        out.display()
    );
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
