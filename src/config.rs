//! The one configuration value, from flags and environment (clap). No globals: two apps with
//! different settings can run in one process (the tests do).
use std::{fmt, net::SocketAddr, path::PathBuf};

use clap::Args;

use crate::{
    domain::{
        jwt::Algorithm,
        key_policy::{KeyPolicy, parse_duration},
    },
    service::outbound::OutboundConfig,
};

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

    /// `sqlite://FILE?mode=rwc` (default, created if missing), `postgres://USER@HOST/DB` or
    /// `mysql://USER@HOST/DB` (MySQL 8, MariaDB).
    #[arg(
        long,
        global = true,
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
        global = true,
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

    /// RSA modulus size of generated keys: 2048, 3072 or 4096.
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
        global = true,
        env = "AUTHN_KEYS_ASSERTION_MAX_AGE_SECS",
        default_value_t = 3600
    )]
    pub assertion_max_age_secs: u32,

    /// Lifetime of issued access tokens, in seconds.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_ACCESS_TOKEN_LIFETIME_SECS",
        default_value_t = 43200
    )]
    pub access_token_lifetime_secs: u32,

    /// The `typ` header of JWT access tokens: `JWT`, as ZITADEL signs them (libraries built for
    /// ZITADEL check it), or `at+jwt` (RFC 9068).
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_ACCESS_TOKEN_TYP",
        value_enum,
        default_value_t = AccessTokenTyp::Jwt
    )]
    pub access_token_typ: AccessTokenTyp,

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

    /// How long a token-signing key signs before a new one takes over, in seconds. Retired
    /// keys stay in the JWKS until the last token they signed has expired.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_SIGNING_KEY_ROTATION_SECS",
        default_value_t = 604_800
    )]
    pub signing_key_rotation_secs: u32,

    /// The algorithm of the server's own JWTs (ID tokens, JWT access tokens): `RS256`, as
    /// ZITADEL signs, `ES256` or `EdDSA`. A change makes a new signing key at the next start
    /// (the old one stays published until its tokens have expired); every process sharing a
    /// database must be given the same.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_SIGNING_ALGORITHM",
        value_enum,
        default_value_t = SigningAlgorithm::Rs256
    )]
    pub signing_algorithm: SigningAlgorithm,

    /// Failed token requests / client authentications allowed at once per key id or client id
    /// (0 switches the limit off).
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_AUTH_FAILURE_BURST",
        default_value_t = 20
    )]
    pub auth_failure_burst: u32,

    /// How fast that allowance refills, per minute.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_AUTH_FAILURE_PER_MINUTE",
        default_value_t = 20
    )]
    pub auth_failure_per_minute: u32,

    /// Failed token requests / client authentications allowed at once per source address
    /// (0 switches the limit off).
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_AUTH_FAILURE_ADDRESS_BURST",
        default_value_t = 50
    )]
    pub auth_failure_address_burst: u32,

    /// How fast the per-address allowance refills, per minute.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_AUTH_FAILURE_ADDRESS_PER_MINUTE",
        default_value_t = 120
    )]
    pub auth_failure_address_per_minute: u32,

    /// Invalid bearer tokens allowed at once per source address on the API (0: off); refills
    /// at twice this per minute.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_BEARER_FAILURE_BURST",
        default_value_t = 100
    )]
    pub bearer_failure_burst: u32,

    /// Longest time a request may take, in seconds; then UNAVAILABLE / 503.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_REQUEST_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub request_timeout_secs: u32,

    /// Requests handled at once; more are refused at once with UNAVAILABLE / 503 instead of
    /// queueing without end.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_MAX_CONCURRENT_REQUESTS",
        default_value_t = 512
    )]
    pub max_concurrent_requests: u32,

    /// Concurrent HTTP/2 streams per connection.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_HTTP2_MAX_STREAMS",
        default_value_t = 128
    )]
    pub http2_max_streams: u32,

    /// Largest request body (and gRPC message), in bytes.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_MAX_BODY_BYTES",
        default_value_t = 65_536
    )]
    pub max_body_bytes: u32,

    /// Key generations waiting for a worker beyond which AddMachineKey/AddAppKey answer
    /// UNAVAILABLE (generation runs on one worker per core).
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_KEYGEN_QUEUE",
        default_value_t = 64
    )]
    pub keygen_queue: u32,

    /// Pre-generated key pairs kept ready in memory for AddMachineKey/AddAppKey (0: generate
    /// each key when asked).
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_KEY_POOL_SIZE",
        default_value_t = 32
    )]
    pub key_pool_size: u32,

    /// Threads refilling the pool, at the lowest CPU priority (0: one per core).
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_KEY_POOL_WORKERS",
        default_value_t = 0
    )]
    pub key_pool_workers: u32,

    /// How long a shutdown waits for in-flight requests, in seconds.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_SHUTDOWN_DRAIN_SECS",
        default_value_t = 30
    )]
    pub shutdown_drain_secs: u32,

    /// Origins browsers may call from (gRPC-Web, REST, OAuth): `*` for any (without
    /// credentials), or a comma-separated list such as `https://console.example.com`.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_CORS_ORIGINS",
        default_value = "*"
    )]
    pub cors_origins: String,

    /// Longest time a streaming call (health watch, reflection) may run, in seconds; then it
    /// ends with UNAVAILABLE and the client opens a new one.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_MAX_STREAM_SECS",
        default_value_t = 300
    )]
    pub max_stream_secs: u32,

    /// Comma-separated CIDRs of reverse proxies / load balancers (`10.0.0.0/8,fd00::/8`):
    /// for requests from them, the client address (for the failure rate limits) is taken
    /// from `Forwarded: for=` or `X-Forwarded-For`. Empty: those headers are ignored.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_TRUSTED_PROXIES",
        default_value = ""
    )]
    pub trusted_proxies: String,

    /// The instance's key policy, for orgs without their own (authnkeys.v1 PolicyService):
    /// the longest a key may live (`90d`, `36h`, `3600s`); empty: no limit.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_KEY_MAX_LIFETIME",
        default_value = ""
    )]
    pub key_max_lifetime: String,

    /// The lifetime of a key added without an expiration date; empty: the maximum lifetime
    /// if set, else none (9999-12-31, as ZITADEL).
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_KEY_DEFAULT_LIFETIME",
        default_value = ""
    )]
    pub key_default_lifetime: String,

    /// Unexpired keys a user or app may hold; 0: unlimited.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_KEY_MAX_PER_OWNER",
        default_value_t = 0
    )]
    pub key_max_per_owner: u32,

    /// Comma-separated origins keys may have: `generated`, `uploaded`; empty: both.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_KEY_ALLOWED_ORIGINS",
        default_value = ""
    )]
    pub key_allowed_origins: String,

    /// Comma-separated algorithms keys may use: RS256, PS256, ES256, ES384, EdDSA; empty: all.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_KEY_ALLOWED_ALGORITHMS",
        default_value = ""
    )]
    pub key_allowed_algorithms: String,

    /// Record each key's last use (time, kind, client address), coalesced in memory and
    /// written every 5 s; `false` keeps none.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_KEY_LAST_USE",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub key_last_use: bool,

    /// Let outbound requests (webhook deliveries, trusted issuers' keys) use `http` and reach
    /// loopback, private and link-local addresses. For development and tests only.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_OUTBOUND_ALLOW_INSECURE",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub outbound_allow_insecure: bool,

    /// Where DPoP proofs must carry the server's nonce (RFC 9449 §8–9): `token` (the token
    /// endpoint), `all` (the API too) or `off`.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_DPOP_NONCE",
        value_enum,
        default_value_t = crate::service::dpop::NonceMode::Token
    )]
    pub dpop_nonce: crate::service::dpop::NonceMode,

    /// Windows before a key's expiry in which a `key.expiring` event is recorded (and sent to
    /// webhooks), e.g. `7d,1d`; `off` for none. `key.expired` is recorded either way.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_EXPIRY_NOTICES",
        default_value = "7d,1d"
    )]
    pub expiry_notices: String,

    /// Serve the console (`/ui/`) from this directory instead of the copy built into the
    /// binary (for working on the console).
    #[arg(long, global = true, env = "AUTHN_KEYS_UI_DIR")]
    pub ui_dir: Option<PathBuf>,

    /// Log lines as human-readable text or as one JSON object each.
    #[arg(
        long,
        global = true,
        env = "AUTHN_KEYS_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    /// PEM certificate chain: serve TLS (ALPN h2 and http/1.1) on the same port. Re-read,
    /// with the key, on SIGHUP.
    #[arg(long, global = true, env = "AUTHN_KEYS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the TLS certificate.
    #[arg(long, global = true, env = "AUTHN_KEYS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessTokenTyp {
    #[value(name = "JWT")]
    Jwt,
    #[value(name = "at+jwt")]
    AtJwt,
}

impl AccessTokenTyp {
    pub fn header(self) -> &'static str {
        match self {
            AccessTokenTyp::Jwt => "JWT",
            AccessTokenTyp::AtJwt => "at+jwt",
        }
    }
}

/// The algorithms the server signs its own JWTs with (JWS names, case as written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SigningAlgorithm {
    /// RSA (RSASSA-PKCS1-v1_5 with SHA-256), with RSA keys of `--key-bits`.
    #[value(name = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    #[value(name = "ES256")]
    Es256,
    /// Ed25519.
    #[value(name = "EdDSA")]
    EdDsa,
}

impl SigningAlgorithm {
    pub fn algorithm(self) -> Algorithm {
        match self {
            SigningAlgorithm::Rs256 => Algorithm::RS256,
            SigningAlgorithm::Es256 => Algorithm::ES256,
            SigningAlgorithm::EdDsa => Algorithm::EdDSA,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    /// The instance's key policy from the `AUTHN_KEYS_KEY_*` settings, checked as an org's.
    pub fn key_policy(&self) -> Result<KeyPolicy, String> {
        use crate::domain::model::KeyOrigin;
        let lifetime = |name: &str, text: &str| -> Result<_, String> {
            if text.trim().is_empty() {
                return Ok(None);
            }
            parse_duration(text)
                .map(Some)
                .map_err(|e| format!("{name}: {e}"))
        };
        let list = |text: &str| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect()
        };
        let policy = KeyPolicy {
            max_lifetime: lifetime("AUTHN_KEYS_KEY_MAX_LIFETIME", &self.key_max_lifetime)?,
            default_lifetime: lifetime(
                "AUTHN_KEYS_KEY_DEFAULT_LIFETIME",
                &self.key_default_lifetime,
            )?,
            max_keys_per_owner: self.key_max_per_owner,
            allowed_origins: list(&self.key_allowed_origins)
                .iter()
                .map(|o| {
                    KeyOrigin::parse(o).ok_or_else(|| {
                        format!(
                            "AUTHN_KEYS_KEY_ALLOWED_ORIGINS: {o:?} is not generated or uploaded"
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            allowed_algorithms: list(&self.key_allowed_algorithms)
                .iter()
                .map(|a| {
                    Algorithm::parse(a).ok_or_else(|| {
                        format!(
                            "AUTHN_KEYS_KEY_ALLOWED_ALGORITHMS: {a:?} is not one of RS256, PS256, ES256, ES384, EdDSA"
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        policy
            .validate()
            .map_err(|e| format!("the instance key policy: {}", e.message))?;
        Ok(policy)
    }

    /// The limits of outbound requests: `AUTHN_KEYS_OUTBOUND_ALLOW_INSECURE`, the rest fixed.
    pub fn outbound(&self) -> OutboundConfig {
        OutboundConfig {
            allow_insecure: self.outbound_allow_insecure,
            ..OutboundConfig::default()
        }
    }

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
            access_token_typ: AccessTokenTyp::Jwt,
            list_default_limit: 1000,
            list_max_limit: 1000,
            db_max_connections: 5,
            signing_key_rotation_secs: 604_800,
            signing_algorithm: SigningAlgorithm::Rs256,
            auth_failure_burst: 20,
            auth_failure_per_minute: 20,
            auth_failure_address_burst: 50,
            auth_failure_address_per_minute: 120,
            bearer_failure_burst: 100,
            request_timeout_secs: 30,
            max_concurrent_requests: 512,
            http2_max_streams: 128,
            max_body_bytes: 65_536,
            keygen_queue: 64,
            // Tests make a handful of keys each; a pool would only burn CPU at every start.
            key_pool_size: 0,
            key_pool_workers: 1,
            shutdown_drain_secs: 30,
            cors_origins: "*".into(),
            max_stream_secs: 300,
            trusted_proxies: String::new(),
            key_max_lifetime: String::new(),
            key_default_lifetime: String::new(),
            key_max_per_owner: 0,
            key_allowed_origins: String::new(),
            key_allowed_algorithms: String::new(),
            key_last_use: true,
            outbound_allow_insecure: false,
            dpop_nonce: crate::service::dpop::NonceMode::Token,
            expiry_notices: "7d,1d".into(),
            ui_dir: None,
            log_format: LogFormat::Text,
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{Args, Command, FromArgMatches};

    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let matches =
            Config::augment_args(Command::new("authn-keys")).try_get_matches_from(args)?;
        Config::from_arg_matches(&matches)
    }

    #[test]
    fn outbound_requests_are_strict_unless_allowed() {
        let strict = parse(&["authn-keys"]).unwrap().outbound();
        assert_eq!(strict, OutboundConfig::default());
        assert!(!strict.allow_insecure);
        let lax = parse(&["authn-keys", "--outbound-allow-insecure", "true"]).unwrap();
        assert!(lax.outbound().allow_insecure);
        assert!(parse(&["authn-keys", "--outbound-allow-insecure", "maybe"]).is_err());
    }

    #[test]
    fn the_signing_algorithm_is_one_of_three_spelled_as_jws_does() {
        let alg = |args: &[&str]| parse(args).map(|c| c.signing_algorithm.algorithm());
        assert_eq!(alg(&["authn-keys"]).unwrap(), Algorithm::RS256);
        for want in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let got = alg(&["authn-keys", "--signing-algorithm", want.as_str()]).unwrap();
            assert_eq!(got, want);
        }
        for bad in [
            "es256", "EDDSA", "rs256", "PS256", "ES384", "HS256", "none", "",
        ] {
            let err = alg(&["authn-keys", "--signing-algorithm", bad])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("--signing-algorithm")
                    && err.contains("[possible values: RS256, ES256, EdDSA]"),
                "{bad:?}: {err}"
            );
        }
    }
}
