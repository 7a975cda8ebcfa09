//! What the hot paths read from memory — access tokens, users, roles, orgs, keys with their
//! parsed public keys, apps — and the one place that invalidates it. Revocation stays exactly
//! as strong as reading the database:
//!
//! - every write that removes or changes something cached names it as a [`Change`] and calls
//!   commits through the unit of work (`write.rs`), which queues a PostgreSQL `NOTIFY` inside the transaction,
//!   commits, and then drops the affected entries here — before the caller gets its answer,
//!   so in the process that removed something it stops working at once;
//! - every process listens for those notices and applies them the same way (milliseconds
//!   after the commit). Entries live a minute (a safety net for writes made around the
//!   service) only while the heartbeat confirms that notices arrive (the rule is in
//!   `cache/notices.rs`); otherwise — no listener, a listener gone silent, always on SQLite and
//!   MySQL, where processes cannot listen — at most one second, which bounds what another
//!   process may still accept;
//! - a read that raced with an invalidation never caches what it read: an epoch counter moves
//!   on every invalidation, and entries are stored only if it has not moved since the read
//!   began.
//!
//! Hand-rolled maps rather than a cache crate: invalidation needs predicates over values (all
//! tokens of a key, all keys of a user) applied synchronously, and the epoch check must happen
//! under the same lock as the insert.
mod notices;

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::{Services, revoke::TOKEN_REVOKED};
use crate::{
    domain::{
        key_policy::KeyPolicy,
        keypair::PublicKey,
        model::{AccessToken, App, AuthnKey, KeyOwner, NewEvent, OwnerKind, User},
        principal::Role,
    },
    error::Result,
    storage::{self, Tx},
};

/// Entry lifetime while the heartbeat confirms that change notices arrive.
const TTL_LISTENING: Duration = Duration::from_secs(60);
/// Entry lifetime otherwise: the bound on how long another process may act on a revoked fact.
const TTL_DEAF: Duration = Duration::from_secs(1);

/// Something a committed write removed or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A machine or app key was added, removed, disabled or enabled: it, the tokens obtained
    /// with it, and the key list of its owner (a user or app id; empty when not known, which
    /// drops every owner's list).
    Key { id: String, owner: String },
    /// A key was added: nothing was obtained with it yet, so only its owner's list and a
    /// remembered absence of its id go (no scan of the tokens).
    KeyAdded { id: String, owner: String },
    /// A user was removed: it, its roles, keys and tokens.
    User(String),
    /// An access token was revoked (by its id).
    Token(String),
    /// A user's own record changed (its token settings): only the user goes; its roles, keys
    /// and tokens stay as they are.
    UserChanged(String),
    /// A user's roles in an org changed (`*`: its instance roles).
    Member { org_id: String, user_id: String },
    /// An app was removed, with its keys.
    App(String),
    /// A project was removed, with its apps and their keys.
    Project(String),
    /// An org's key policy was set or reset.
    Policy(String),
    /// A trust was added or removed: its issuer's trusts, and the tokens obtained with it.
    Trust { id: String, issuer_hash: String },
    /// Anything may have changed.
    All,
}

impl Change {
    /// What the write that recorded `event` changed in the caches, if anything. Keys added are
    /// changes too: their id may have been asked for, and remembered as absent, before. An
    /// event that should name its object but does not invalidates everything.
    pub(crate) fn caused_by(event: &NewEvent) -> Option<Change> {
        let field = |name: &str| event.payload.get(name).and_then(|v| v.as_str());
        let named = |name: &str, change: fn(String) -> Change| {
            Some(field(name).map_or(Change::All, |id| change(id.to_owned())))
        };
        match event.event_type {
            "user.machine.key.added"
            | "user.machine.key.removed"
            | "user.machine.key.disabled"
            | "user.machine.key.enabled"
            | "project.application.key.added"
            | "project.application.key.removed"
            | "project.application.key.disabled"
            | "project.application.key.enabled" => {
                let owner = if event.aggregate_type == "user" {
                    Some(event.aggregate_id.as_str())
                } else {
                    field("appId")
                };
                Some(match (field("keyId"), owner) {
                    (Some(id), Some(owner)) => {
                        let (id, owner) = (id.to_owned(), owner.to_owned());
                        if event.event_type.ends_with(".added") {
                            Change::KeyAdded { id, owner }
                        } else {
                            Change::Key { id, owner }
                        }
                    }
                    _ => Change::All,
                })
            }
            "user.removed" => Some(Change::User(event.aggregate_id.clone())),
            TOKEN_REVOKED => named("tokenId", Change::Token),
            "user.machine.token.settings.changed" => {
                Some(Change::UserChanged(event.aggregate_id.clone()))
            }
            "project.application.removed" => named("appId", Change::App),
            "project.removed" => Some(Change::Project(event.aggregate_id.clone())),
            "org.key.policy.set" | "org.key.policy.reset" => {
                Some(Change::Policy(event.org_id.clone()))
            }
            "user.machine.trust.added" | "user.machine.trust.removed" => {
                Some(match (field("trustId"), field("issuer")) {
                    (Some(id), Some(issuer)) => Change::Trust {
                        id: id.to_owned(),
                        issuer_hash: crate::domain::trust::issuer_hash(issuer),
                    },
                    _ => Change::All,
                })
            }
            "org.member.added" | "org.member.changed" | "org.member.removed" => Some(
                field("userId").map_or(Change::All, |user_id| Change::Member {
                    org_id: event.org_id.clone(),
                    user_id: user_id.to_owned(),
                }),
            ),
            "instance.member.added" | "instance.member.removed" => Some(Change::Member {
                org_id: "*".into(),
                user_id: event.aggregate_id.clone(),
            }),
            _ => None,
        }
    }

    fn encode(&self) -> String {
        match self {
            Change::Key { id, owner } => format!("key {id} {owner}"),
            Change::KeyAdded { id, owner } => format!("keyadded {id} {owner}"),
            Change::User(id) => format!("user {id}"),
            Change::Token(id) => format!("token {id}"),
            Change::UserChanged(id) => format!("userchanged {id}"),
            Change::Member { org_id, user_id } => format!("member {org_id} {user_id}"),
            Change::App(id) => format!("app {id}"),
            Change::Project(id) => format!("project {id}"),
            Change::Policy(org) => format!("policy {org}"),
            Change::Trust { id, issuer_hash } => format!("trust {id} {issuer_hash}"),
            Change::All => "all".into(),
        }
    }

    /// A notice that cannot be read invalidates everything.
    fn decode(text: &str) -> Change {
        let mut words = text.split(' ');
        let (kind, a, b) = (words.next(), words.next(), words.next());
        if words.next().is_some() {
            return Change::All;
        }
        match (kind, a, b) {
            // Without an owner (as older versions announce it): every owner's list goes.
            (Some("key"), Some(id), owner) => Change::Key {
                id: id.into(),
                owner: owner.unwrap_or_default().into(),
            },
            (Some("keyadded"), Some(id), Some(owner)) => Change::KeyAdded {
                id: id.into(),
                owner: owner.into(),
            },
            (Some("user"), Some(id), None) => Change::User(id.into()),
            (Some("token"), Some(id), None) => Change::Token(id.into()),
            (Some("userchanged"), Some(id), None) => Change::UserChanged(id.into()),
            (Some("member"), Some(org), Some(user)) => Change::Member {
                org_id: org.into(),
                user_id: user.into(),
            },
            (Some("app"), Some(id), None) => Change::App(id.into()),
            (Some("project"), Some(id), None) => Change::Project(id.into()),
            (Some("policy"), Some(org), None) => Change::Policy(org.into()),
            (Some("trust"), Some(id), Some(issuer_hash)) => Change::Trust {
                id: id.into(),
                issuer_hash: issuer_hash.into(),
            },
            _ => Change::All,
        }
    }
}

/// A key as the token and introspection endpoints need it: record and parsed public key.
#[derive(Debug, Clone)]
pub struct CachedKey {
    pub key: AuthnKey,
    pub public: PublicKey,
}

struct Map<K, V> {
    inner: RwLock<HashMap<K, (V, Instant)>>,
    /// Entries at most; beyond, expired entries are swept and new ones not cached (memory
    /// stays bounded whatever is stored or asked for).
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> Map<K, V> {
    fn new(capacity: usize) -> Self {
        Map {
            inner: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    fn get(&self, k: &K, ttl: Duration) -> Option<V> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.get(k)
            .filter(|(_, at)| at.elapsed() < ttl)
            .map(|(v, _)| v.clone())
    }

    /// Stores `v` unless an invalidation happened since `epoch` was read.
    fn put(&self, k: K, v: V, epoch: u64, current: &AtomicU64, ttl: Duration) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if current.load(Ordering::Acquire) != epoch {
            return;
        }
        if map.len() >= self.capacity {
            map.retain(|_, (_, at)| at.elapsed() < ttl);
            if map.len() >= self.capacity {
                return;
            }
        }
        map.insert(k, (v, Instant::now()));
    }

    fn remove(&self, k: &K) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(k);
    }

    fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, (v, _)| keep(k, v));
    }

    fn clear(&self) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Drops the entries stored `age` ago or earlier.
    fn expire(&self, age: Duration) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (_, at)| at.elapsed() < age);
    }

    fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

pub struct Caches {
    epoch: AtomicU64,
    /// The origin of `confirmed_until`.
    start: Instant,
    /// Until when (µs after `start`, plus one) the long lifetime applies; 0: not confirmed.
    /// Read on every lookup, hence one atomic rather than a lock.
    confirmed_until: AtomicU64,
    tokens: Map<String, AccessToken>,
    users: Map<String, User>,
    roles: Map<(String, String), Vec<Role>>,
    orgs: Map<String, ()>,
    keys: Map<String, CachedKey>,
    /// Each owner's keys in its org, oldest first, as v1's key listings and authnkeys.v1
    /// ListKeys of one owner page them (`None`: too many to keep, read pages from the
    /// database). Read-after-write holds: every key write names its owner in its change.
    owner_keys: Map<OwnerListKey, OwnerList>,
    /// Key ids found in neither table (with the kind asked for): an unknown key id costs no
    /// more than a known one, so answer times tell nothing about which ids exist. Adding a
    /// key names it as a [`Change::Key`], which drops its entry here.
    absent_keys: Map<String, ()>,
    apps: Map<String, App>,
    /// Orgs' own key policies (`None`: the org has none; the instance default applies).
    policies: Map<String, Option<KeyPolicy>>,
    /// The trusts of each issuer (by its hash; empty: none), read at every exchange.
    trusts: Map<String, std::sync::Arc<Vec<super::trusts::TrustEntry>>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("tokens", &self.tokens.len())
            .field("keys", &self.keys.len())
            .field("listening", &self.listening())
            .finish_non_exhaustive()
    }
}

impl Default for Caches {
    fn default() -> Self {
        Caches {
            epoch: AtomicU64::new(0),
            start: Instant::now(),
            confirmed_until: AtomicU64::new(0),
            // About 0.5 KiB a token, 1 KiB a key with its parsed public key: together well
            // under 100 MiB when full.
            tokens: Map::new(100_000),
            users: Map::new(20_000),
            roles: Map::new(20_000),
            orgs: Map::new(10_000),
            keys: Map::new(20_000),
            owner_keys: Map::new(5_000),
            absent_keys: Map::new(20_000),
            apps: Map::new(10_000),
            policies: Map::new(10_000),
            trusts: Map::new(10_000),
        }
    }
}

impl Caches {
    fn ttl(&self) -> Duration {
        if self.listening() {
            TTL_LISTENING
        } else {
            TTL_DEAF
        }
    }

    fn micros_since_start(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.start).as_micros()).unwrap_or(u64::MAX)
    }

    /// Lets entries live the long lifetime until `until`.
    fn confirm_until(&self, until: Instant) {
        // Shifted by one: 0 means unconfirmed.
        let at = self.micros_since_start(until).saturating_add(1);
        self.confirmed_until.store(at, Ordering::Release);
    }

    /// Back to the short lifetime at once.
    fn unconfirm(&self) {
        self.confirmed_until.store(0, Ordering::Release);
    }

    /// Drops what the short lifetime no longer covers (when confirmation lapsed).
    fn expire_to_short_lifetime(&self) {
        self.tokens.expire(TTL_DEAF);
        self.users.expire(TTL_DEAF);
        self.roles.expire(TTL_DEAF);
        self.orgs.expire(TTL_DEAF);
        self.keys.expire(TTL_DEAF);
        self.owner_keys.expire(TTL_DEAF);
        self.absent_keys.expire(TTL_DEAF);
        self.apps.expire(TTL_DEAF);
        self.policies.expire(TTL_DEAF);
        self.trusts.expire(TTL_DEAF);
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Whether change notices from other processes are confirmed to arrive (by a recent
    /// heartbeat), so that entries live the long lifetime.
    pub fn listening(&self) -> bool {
        let now = self.micros_since_start(Instant::now()).saturating_add(1);
        now < self.confirmed_until.load(Ordering::Acquire)
    }

    /// Drops what `change` makes stale. The epoch moves first, so a read that began before
    /// cannot store what it read.
    pub fn apply(&self, change: &Change) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        match change {
            Change::Key { id, owner } => {
                self.keys.retain(|k, _| k != id);
                self.absent_keys.retain(|k, _| k != id);
                self.tokens.retain(|_, t| t.key_id != *id);
                self.owner_keys.retain(|(_, o, _), list| {
                    !owner.is_empty()
                        && o.id() != owner
                        && list
                            .as_ref()
                            .is_none_or(|l| l.keys.iter().all(|k| k.id != *id))
                });
            }
            Change::KeyAdded { id, owner } => {
                self.absent_keys.retain(|k, _| k != id);
                self.owner_keys.retain(|(_, o, _), _| o.id() != owner);
            }
            Change::User(id) => {
                self.owner_keys
                    .retain(|(_, o, _), _| *o != KeyOwner::user(id.as_str()));
                self.users.retain(|k, _| k != id);
                self.roles.retain(|(_, u), _| u != id);
                self.keys
                    .retain(|_, k| k.key.owner != KeyOwner::user(id.as_str()));
                self.tokens.retain(|_, t| t.user_id != *id);
                self.trusts
                    .retain(|_, list| list.iter().all(|t| t.model.user_id != *id));
            }
            Change::Token(id) => self.tokens.remove(id),
            Change::UserChanged(id) => self.users.retain(|k, _| k != id),
            Change::Member { org_id, user_id } => {
                self.roles
                    .retain(|(o, u), _| u != user_id || (org_id != "*" && o != org_id));
            }
            Change::App(id) => {
                self.owner_keys
                    .retain(|(_, o, _), _| o.kind() == OwnerKind::User || o.id() != id);
                self.apps.retain(|k, _| k != id);
                self.keys
                    .retain(|_, k| k.key.owner.kind() == OwnerKind::User || k.key.owner_id() != id);
            }
            Change::Project(id) => {
                self.owner_keys
                    .retain(|(_, o, _), _| o.project_id() != Some(id.as_str()));
                self.apps.retain(|_, a| a.project_id != *id);
                self.keys
                    .retain(|_, k| k.key.owner.project_id() != Some(id.as_str()));
            }
            Change::Policy(org) => self.policies.retain(|k, _| k != org),
            Change::Trust { id, issuer_hash } => {
                self.trusts.retain(|k, _| k != issuer_hash);
                self.tokens.retain(|_, t| t.key_id != *id);
            }
            Change::All => self.clear(),
        }
    }

    /// Drops the owner lists of `org_id`, and those reflecting every org's events: their
    /// processed sequence moved.
    pub(crate) fn forget_owner_lists_of(&self, org_id: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.owner_keys
            .retain(|(org, _, all_orgs), _| org != org_id && !*all_orgs);
    }

    /// Drops the owner lists holding any of `keys` (their last use was just written: a list
    /// read before would show the previous one once the pending use is gone).
    pub(crate) fn forget_owner_lists_with(&self, keys: &std::collections::HashSet<&str>) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.owner_keys.retain(|_, list| {
            list.as_ref()
                .is_none_or(|l| l.keys.iter().all(|k| !keys.contains(k.id.as_str())))
        });
    }

    fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.tokens.clear();
        self.users.clear();
        self.roles.clear();
        self.orgs.clear();
        self.keys.clear();
        self.owner_keys.clear();
        self.absent_keys.clear();
        self.apps.clear();
        self.policies.clear();
        self.trusts.clear();
    }
}

/// (org, owner, whether the reader sees every org's events): the last decides the listing's
/// processed sequence.
type OwnerListKey = (String, KeyOwner, bool);

/// An owner's keys, oldest first, and the newest event position the read reflected.
#[derive(Debug)]
pub struct OwnerKeys {
    pub keys: Vec<AuthnKey>,
    pub latest_position: u64,
}

type OwnerList = Option<Arc<OwnerKeys>>;

/// Owners with more keys than this are paged by the database.
pub const OWNER_LIST_MAX: u64 = 1_000;
/// Owner lists live at most this long even while notices arrive, so that the last use
/// other processes flushed shows within a minute.
const OWNER_LIST_TTL: Duration = Duration::from_secs(30);

impl Services {
    /// Queues `changes` for the other processes in `tx` (see [`super::write`]).
    pub(crate) async fn announce(tx: &Tx, changes: &[Change]) -> Result<()> {
        for c in changes {
            storage::notify(tx, &c.encode()).await?;
        }
        Ok(())
    }

    /// Forgets here what committed `changes` changed.
    pub(crate) fn forget(&self, changes: &[Change]) {
        for c in changes {
            self.caches.apply(c);
        }
    }

    /// An access token's record by id, from memory when possible.
    pub(crate) async fn token_record(&self, id: &str) -> Result<Option<AccessToken>> {
        let c = &self.caches;
        if let Some(t) = c.tokens.get(&id.to_owned(), c.ttl()) {
            return Ok(Some(t));
        }
        let epoch = c.epoch();
        let Some(stored) = storage::repo::find_access_token(&self.db, id).await? else {
            return Ok(None);
        };
        c.tokens
            .put(id.to_owned(), stored.clone(), epoch, &c.epoch, c.ttl());
        Ok(Some(stored))
    }

    pub(crate) async fn cached_user(&self, id: &str) -> Result<Option<User>> {
        let c = &self.caches;
        if let Some(u) = c.users.get(&id.to_owned(), c.ttl()) {
            return Ok(Some(u));
        }
        let epoch = c.epoch();
        let user = storage::repo::find_user(&self.db, id).await?;
        if let Some(u) = &user {
            c.users
                .put(id.to_owned(), u.clone(), epoch, &c.epoch, c.ttl());
        }
        Ok(user)
    }

    /// Whether the org exists (only existence is cached: orgs are never removed).
    pub(crate) async fn org_exists(&self, id: &str) -> Result<bool> {
        let c = &self.caches;
        if c.orgs.get(&id.to_owned(), c.ttl()).is_some() {
            return Ok(true);
        }
        let epoch = c.epoch();
        let exists = storage::repo::find_org(&self.db, id).await?.is_some();
        if exists {
            c.orgs.put(id.to_owned(), (), epoch, &c.epoch, c.ttl());
        }
        Ok(exists)
    }

    /// A user's instance roles and its roles in `org_id`, from memory when possible.
    pub(crate) async fn cached_roles(&self, org_id: &str, user_id: &str) -> Result<Vec<Role>> {
        let c = &self.caches;
        let k = (org_id.to_owned(), user_id.to_owned());
        if let Some(r) = c.roles.get(&k, c.ttl()) {
            return Ok(r);
        }
        let epoch = c.epoch();
        let roles = self.roles_of(&self.db, org_id, user_id).await?;
        c.roles.put(k, roles.clone(), epoch, &c.epoch, c.ttl());
        Ok(roles)
    }

    /// A key by id, whoever owns it, with its parsed public key; that there is none is
    /// remembered too. A stored key that does not parse is an internal error, not a missing
    /// key.
    pub(crate) async fn cached_key(&self, kid: &str) -> Result<Option<CachedKey>> {
        let c = &self.caches;
        if let Some(k) = c.keys.get(&kid.to_owned(), c.ttl()) {
            return Ok(Some(k));
        }
        if c.absent_keys.get(&kid.to_owned(), c.ttl()).is_some() {
            return Ok(None);
        }
        let epoch = c.epoch();
        let Some(key) = storage::repo::find_key(&self.db, kid).await? else {
            c.absent_keys
                .put(kid.to_owned(), (), epoch, &c.epoch, c.ttl());
            return Ok(None);
        };
        let public = PublicKey::from_pkix_pem(key.public_key.as_bytes()).map_err(|e| {
            crate::error::Error::internal("KEY-Stor1", "a stored key is unreadable").with_source(e)
        })?;
        let cached = CachedKey { key, public };
        c.keys
            .put(kid.to_owned(), cached.clone(), epoch, &c.epoch, c.ttl());
        Ok(Some(cached))
    }

    /// All of an owner's keys in `org_id`, oldest first, from memory when possible; `None`
    /// when it has more than [`OWNER_LIST_MAX`] (page them from the database).
    pub(crate) async fn owner_keys(
        &self,
        org_id: &str,
        owner: &KeyOwner,
        seen: &crate::domain::list::Visible,
    ) -> Result<OwnerList> {
        let c = &self.caches;
        let ttl = c.ttl().min(OWNER_LIST_TTL);
        let k = (
            org_id.to_owned(),
            owner.clone(),
            *seen == crate::domain::list::Visible::All,
        );
        if let Some(list) = c.owner_keys.get(&k, ttl) {
            return Ok(list);
        }
        let epoch = c.epoch();
        let page = crate::domain::list::Page {
            offset: 0,
            limit: OWNER_LIST_MAX + 1,
            asc: true,
        };
        let read = storage::repo::list_keys(&self.db, org_id, owner, page, seen).await?;
        let list = (read.total <= OWNER_LIST_MAX).then(|| {
            Arc::new(OwnerKeys {
                keys: read.items,
                latest_position: read.latest_position,
            })
        });
        c.owner_keys.put(k, list.clone(), epoch, &c.epoch, ttl);
        Ok(list)
    }

    /// The key policy that applies in `org_id` (its own or the instance default), from memory
    /// when possible.
    /// The trusts of an issuer, from memory when possible.
    pub(crate) async fn cached_trusts(
        &self,
        issuer: &str,
    ) -> Result<std::sync::Arc<Vec<super::trusts::TrustEntry>>> {
        let c = &self.caches;
        let hash = crate::domain::trust::issuer_hash(issuer);
        if let Some(t) = c.trusts.get(&hash, c.ttl()) {
            return Ok(t);
        }
        let epoch = c.epoch();
        let found = std::sync::Arc::new(
            storage::repo::trusts_of_issuer(&self.db, &hash)
                .await?
                .into_iter()
                .filter_map(super::trusts::TrustEntry::of)
                .collect::<Vec<_>>(),
        );
        c.trusts.put(hash, found.clone(), epoch, &c.epoch, c.ttl());
        Ok(found)
    }

    pub(crate) async fn cached_key_policy(&self, org_id: &str) -> Result<KeyPolicy> {
        let c = &self.caches;
        let own = match c.policies.get(&org_id.to_owned(), c.ttl()) {
            Some(own) => own,
            None => {
                let epoch = c.epoch();
                let own = storage::repo::find_key_policy(&self.db, org_id).await?;
                c.policies
                    .put(org_id.to_owned(), own.clone(), epoch, &c.epoch, c.ttl());
                own
            }
        };
        Ok(own.unwrap_or_else(|| self.settings.key_policy.clone()))
    }

    pub(crate) async fn cached_app(&self, id: &str) -> Result<Option<App>> {
        let c = &self.caches;
        if let Some(a) = c.apps.get(&id.to_owned(), c.ttl()) {
            return Ok(Some(a));
        }
        let epoch = c.epoch();
        let app = storage::repo::find_app(&self.db, id).await?;
        if let Some(a) = &app {
            c.apps
                .put(id.to_owned(), a.clone(), epoch, &c.epoch, c.ttl());
        }
        Ok(app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_garbage_invalidates_everything() {
        for c in [
            Change::Key {
                id: "1".into(),
                owner: "u".into(),
            },
            Change::Key {
                id: "1".into(),
                owner: String::new(),
            },
            Change::KeyAdded {
                id: "1".into(),
                owner: "u".into(),
            },
            Change::User("2".into()),
            Change::Token("7".into()),
            Change::UserChanged("2".into()),
            Change::Member {
                org_id: "*".into(),
                user_id: "3".into(),
            },
            Change::App("4".into()),
            Change::Project("5".into()),
            Change::Policy("6".into()),
            Change::All,
        ] {
            assert_eq!(Change::decode(&c.encode()), c);
        }
        assert_eq!(Change::decode("key"), Change::All);
        assert_eq!(Change::decode("nonsense 1 2 3"), Change::All);
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_cached() {
        let c = Caches::default();
        let before = c.epoch();
        c.apply(&Change::User("u".into()));
        c.orgs.put("o".into(), (), before, &c.epoch, TTL_DEAF);
        assert!(c.orgs.get(&"o".to_owned(), TTL_DEAF).is_none());
        c.orgs.put("o".into(), (), c.epoch(), &c.epoch, TTL_DEAF);
        assert!(c.orgs.get(&"o".to_owned(), TTL_DEAF).is_some());
    }

    #[test]
    fn a_changed_user_drops_only_its_record() {
        let c = Caches::default();
        let user = |id: &str| User {
            id: id.into(),
            org_id: "o".into(),
            user_name: id.into(),
            name: id.into(),
            description: String::new(),
            access_token_type: crate::domain::model::AccessTokenType::Bearer,
            dpop_bound: false,
            sequence: 1,
            created_at: chrono::Utc::now(),
            changed_at: chrono::Utc::now(),
        };
        for id in ["u", "v"] {
            c.users
                .put(id.into(), user(id), c.epoch(), &c.epoch, TTL_DEAF);
        }
        c.roles.put(
            ("o".into(), "u".into()),
            vec![Role::OrgOwner],
            c.epoch(),
            &c.epoch,
            TTL_DEAF,
        );
        let event = NewEvent {
            org_id: "o".into(),
            aggregate_type: "user",
            aggregate_id: "u".into(),
            aggregate_sequence: 2,
            event_type: "user.machine.token.settings.changed",
            actor: "a".into(),
            payload: serde_json::json!({"dpopBoundAccessTokens": true}),
            created_at: chrono::Utc::now(),
        };
        let change = Change::caused_by(&event).unwrap();
        assert_eq!(change, Change::UserChanged("u".into()));
        c.apply(&change);
        assert!(c.users.get(&"u".to_owned(), TTL_DEAF).is_none());
        assert!(c.users.get(&"v".to_owned(), TTL_DEAF).is_some());
        assert_eq!(c.roles.len(), 1, "the user's roles stay");
    }

    #[test]
    fn a_revoked_token_goes_and_no_other() {
        let c = Caches::default();
        let token = |id: &str| AccessToken {
            id: id.into(),
            token_hash: format!("hash-{id}"),
            user_id: "u".into(),
            org_id: "o".into(),
            key_id: "k".into(),
            via_trust: false,
            scopes: vec![],
            audience: vec![],
            projects: vec![],
            expires_at: chrono::Utc::now(),
            created_at: chrono::Utc::now(),
            dpop_jkt: None,
        };
        for id in ["1", "2"] {
            c.tokens
                .put(id.to_owned(), token(id), c.epoch(), &c.epoch, TTL_DEAF);
        }
        let event = NewEvent {
            org_id: "o".into(),
            aggregate_type: "user",
            aggregate_id: "u".into(),
            aggregate_sequence: 2,
            event_type: TOKEN_REVOKED,
            actor: "u".into(),
            payload: serde_json::json!({"tokenId": "1"}),
            created_at: chrono::Utc::now(),
        };
        let change = Change::caused_by(&event).unwrap();
        assert_eq!(change, Change::Token("1".into()));
        c.apply(&change);
        assert!(c.tokens.get(&"1".to_owned(), TTL_DEAF).is_none());
        assert!(c.tokens.get(&"2".to_owned(), TTL_DEAF).is_some());
    }

    #[test]
    fn member_changes_drop_the_right_roles() {
        let c = Caches::default();
        for (o, u) in [("a", "x"), ("b", "x"), ("a", "y")] {
            c.roles
                .put((o.into(), u.into()), vec![], c.epoch(), &c.epoch, TTL_DEAF);
        }
        c.apply(&Change::Member {
            org_id: "a".into(),
            user_id: "x".into(),
        });
        assert_eq!(c.roles.len(), 2);
        c.apply(&Change::Member {
            org_id: "*".into(),
            user_id: "x".into(),
        });
        assert_eq!(c.roles.len(), 1);
    }
}
