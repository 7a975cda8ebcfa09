//! Use cases. Each makes its permission check (through [`auth`]) and its writes through one
//! unit of work ([`write`]: transaction, audit events, cache invalidation); none sees tonic, axum,
//! generated proto types or database transactions.
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::{
    domain::{
        clock::Clock,
        ids::IdGenerator,
        list::{ListLimits, Visible},
        model::Listed,
        principal::Role,
        secret::SecretHasher,
    },
    error::Result,
    storage::{self, Db, repo},
};

pub mod auth;
pub mod authn_keys;
pub mod batch;
pub mod bootstrap;
pub mod cache;
pub mod dispatch;
pub mod dpop;
pub mod events;
pub mod introspect;
pub mod issuer_keys;
pub mod key_lifecycle;
pub mod key_policy;
pub mod keygen;
pub mod last_use;
pub mod listings;
pub mod orgs;
pub mod outbound;
pub mod projects;
pub mod revoke;
pub mod signing;
pub mod throttle;
pub mod tokens;
pub mod trusts;
pub mod users;
mod write;

pub use auth::Ctx;

/// Settings the services need, taken from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer: external URL without a trailing slash.
    pub issuer: String,
    /// Domain used for org primary domains and login names.
    pub domain: String,
    pub clock_skew: chrono::Duration,
    pub assertion_max_age: chrono::Duration,
    pub access_token_lifetime: chrono::Duration,
    /// The `typ` header of JWT access tokens.
    pub access_token_typ: &'static str,
    pub list_limits: ListLimits,
    /// The key policy of orgs that have none of their own.
    pub key_policy: crate::domain::key_policy::KeyPolicy,
}

/// Everything the use cases share. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<IdGenerator>,
    pub keygen: Arc<dyn keygen::KeyPairSource>,
    pub signing: Arc<signing::SigningKeys>,
    pub settings: Arc<Settings>,
    /// Client secrets' keyed hash (key derived from the master key).
    pub secrets: Arc<SecretHasher>,
    /// Failed token requests and client authentications, per credential and address.
    pub throttle: Arc<throttle::Throttle>,
    /// Invalid bearer tokens on the API, per address.
    pub bearer_throttle: Arc<throttle::Throttle>,
    /// Bounds the slow argon2id checks of secrets hashed by earlier versions.
    pub legacy_hash_slots: Arc<tokio::sync::Semaphore>,
    /// The hot paths' in-memory reads and their invalidation.
    pub caches: Arc<cache::Caches>,
    /// Writes token records in batches.
    pub token_records: tokens::TokenRecords,
    /// Spends one-time ids (`jti`s) in batches.
    pub replays: tokens::ReplayGuard,
    /// Keys' last use, coalesced in memory and flushed in batches.
    pub last_uses: Arc<last_use::LastUses>,
    /// Webhook secrets, the dispatcher's wake-up and figures.
    pub events: Arc<events::EventHub>,
    /// The one client for requests to addresses from users or configuration.
    pub outbound: outbound::Outbound,
    /// Outside issuers' signing keys (trusts), fetched and cached.
    pub issuer_keys: Arc<issuer_keys::IssuerKeys>,
    /// DPoP's server nonces.
    pub dpop: Arc<dpop::Dpop>,
}

impl Services {
    /// "Now", at the precision the database keeps.
    pub fn now(&self) -> DateTime<Utc> {
        storage::db_time(self.clock.now())
    }

    /// Whose events a listing's processed sequence reflects: every org's for an instance
    /// role, the context org's otherwise, so no tenant sees another's writes in it.
    pub(crate) fn event_scope(ctx: &Ctx) -> Visible {
        if ctx.roles.contains(&Role::IamOwner) {
            Visible::All
        } else {
            Visible::Some {
                orgs: vec![ctx.org_id.clone()],
                own_user: None,
            }
        }
    }

    /// A list answer: the page as read (one statement, one snapshot) and when it was read.
    pub(crate) fn listed<T>(&self, page: repo::PageOf<T>) -> Listed<T> {
        Listed {
            total: page.total,
            processed_sequence: page.latest_position,
            view_timestamp: self.now(),
            items: page.items,
        }
    }

    pub async fn ready(&self) -> Result<()> {
        storage::ping(&self.db).await
    }

    /// Removes access tokens and remembered assertion ids that expired more than a day ago.
    pub async fn purge_expired_tokens(&self) -> Result<u64> {
        repo::purge_expired_tokens(&self.db, self.now() - chrono::Duration::days(1)).await
    }
}
