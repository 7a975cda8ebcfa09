//! The one configuration value, from flags and environment (clap). No globals: two apps with
//! different settings can run in one process (the tests do).
use std::{fmt, net::SocketAddr, path::PathBuf};

use clap::Args;

#[derive(Args, Clone)]
pub struct Config {
    /// Address to listen on; gRPC, gRPC-Web, REST and OAuth share it.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// `sqlite://FILE?mode=rwc` (default, created if missing) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "AUTHN_KEYS_DATABASE_URL",
        default_value = "sqlite://authn-keys.db?mode=rwc"
    )]
    pub database_url: String,

    /// The issuer and base of every URL handed out; default `http://<listen address>`.
    #[arg(long, global = true, env = "AUTHN_KEYS_EXTERNAL_URL")]
    pub external_url: Option<String>,

    /// Where the first start writes the admin's JSON key file (mode 0600, never overwritten).
    #[arg(
        long,
        env = "AUTHN_KEYS_ADMIN_KEY_FILE",
        default_value = "admin-key.json"
    )]
    pub admin_key_file: PathBuf,

    /// Exactly 32 characters; encrypts token signing keys at rest. Required on PostgreSQL; on
    /// SQLite one is generated into `<database>.masterkey` when absent.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_MASTER_KEY",
        hide_env_values = true
    )]
    pub master_key: Option<String>,

    /// Name of the org created at first start.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_DEFAULT_ORG",
        default_value = "DEFAULT"
    )]
    pub default_org: String,

    /// RSA modulus size of generated keys.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_KEY_BITS",
        default_value_t = 2048
    )]
    pub key_bits: usize,

    /// Tolerated clock difference for assertion iat/exp, in seconds.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_CLOCK_SKEW_SECS",
        default_value_t = 5
    )]
    pub clock_skew_secs: u32,

    /// How old an assertion's iat may be, in seconds.
    #[arg(
        long,
        env = "AUTHN_KEYS_ASSERTION_MAX_AGE_SECS",
        default_value_t = 3600
    )]
    pub assertion_max_age_secs: u32,

    /// Lifetime of issued access tokens, in seconds.
    #[arg(
        long,
        env = "AUTHN_KEYS_ACCESS_TOKEN_LIFETIME_SECS",
        default_value_t = 43200
    )]
    pub access_token_lifetime_secs: u32,

    /// Page size of list calls that give no limit.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_LIST_DEFAULT_LIMIT",
        default_value_t = 1000
    )]
    pub list_default_limit: u32,

    /// Largest page size a list call may ask for.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_LIST_MAX_LIMIT",
        default_value_t = 1000
    )]
    pub list_max_limit: u32,

    /// Database pool size.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_DB_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub db_max_connections: u32,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field(
                "database_url",
                &crate::storage::redact_url(&self.database_url),
            )
            .field("external_url", &self.external_url)
            .field("admin_key_file", &self.admin_key_file)
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Settings for a test server: port 0 on loopback, the given database, a fixed master key.
    pub fn for_tests(database_url: &str, admin_key_file: PathBuf) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.to_owned(),
            external_url: None,
            admin_key_file,
            master_key: Some("test-master-key-0123456789abcdef".into()),
            default_org: "DEFAULT".into(),
            key_bits: 2048,
            clock_skew_secs: 5,
            assertion_max_age_secs: 3600,
            access_token_lifetime_secs: 43200,
            list_default_limit: 1000,
            list_max_limit: 1000,
            db_max_connections: 5,
        }
    }
}
