//! The server's own token-signing keys. They live in the database so every server process
//! shares them; the private parts are encrypted at rest (AES-256-GCM) with the master key,
//! bound to their row by the key id as associated data.
//!
//! Each process holds the signing key and the JWKS answer in memory. Anonymous JWKS requests
//! never read the database: [`SigningKeys::keep_current`] reads the key list once a second, so
//! a key another process made or dropped is used and published here within about one second
//! (plus one database read).
//!
//! New keys are of the configured algorithm (`AUTHN_KEYS_SIGNING_ALGORITHM`): RSA for RS256,
//! P-256 for ES256, Ed25519 for EdDSA. A key's algorithm follows from its kind, which its
//! stored public key tells. A newest key of another algorithm, made before this process
//! started, is rotated away at start (or at the next rotation check) like a key due for
//! rotation; one made after this process started was made by a process started later, or by
//! the operator, and is followed, so processes given different settings during a rolling
//! restart do not take turns making keys.
use std::{
    collections::HashSet,
    fmt,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};

mod crypt;

pub use crypt::{MasterKey, associated_data, seal};
use crypt::{Opened, open, unseal};

use super::keygen::KeyPairSource;
use crate::{
    domain::{
        clock::Clock,
        ids::IdGenerator,
        jwt::Algorithm,
        keypair::{KeyPair, PublicKey, SigningKey},
    },
    error::{Error, Result},
    storage::{self, Db, repo},
};

/// Opens the row that is to sign, re-encrypting it bound to its id when an earlier version
/// wrote it without. Done here rather than at the next rotation: the signing key is the only
/// one ever decrypted again, and this binds it as soon as a process of this version starts,
/// instead of up to a rotation period later. Retired rows keep their old form; they are only
/// ever checked, and the public-key check refuses such a ciphertext in any other row.
async fn open_signer(db: &Db, master: &MasterKey, row: &repo::SigningKeyRow) -> Result<Opened> {
    let opened = open(master, row)?;
    if opened.legacy {
        let der = unseal(master, &row.id, &row.private_key_enc)?.0;
        let sealed = seal(master, &row.id, &der)?;
        match repo::reseal_signing_key(db, &row.id, &row.private_key_enc, &sealed).await {
            Ok(true) => {
                tracing::info!(kid = %row.id, "signing key re-encrypted, bound to its id")
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(
                kid = %row.id,
                cause = %e.cause_chain(),
                "cannot re-encrypt a signing key written by an earlier version; it still signs, and the next start tries again"
            ),
        }
    }
    Ok(opened)
}

/// The key that signs new tokens.
pub struct Signer {
    pub kid: String,
    pub key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// How signing keys rotate.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    /// A key signs for this long; then a new one is made.
    pub every: chrono::Duration,
    /// The longest lifetime of a token we sign: a retired key stays published this long
    /// after its successor took over.
    pub token_lifetime: chrono::Duration,
    /// The algorithm new keys sign with: RS256, ES256 or EdDSA.
    pub algorithm: Algorithm,
}

/// Slack for processes that have not yet picked up a new key and for clock differences.
const PUBLISH_MARGIN_SECS: i64 = 300;

/// How often each process reads the key list: the bound on how long another process's
/// rotation (or `rotate-signing-key`) takes to be used for signing and published here.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The rotation check (which may make a key, under the instance lock) runs every this many
/// refreshes: once a minute.
const ROTATION_CHECK_EVERY: u32 = 60;

/// The published keys and the JWKS answer built from them.
pub struct Published {
    keys: Vec<(String, PublicKey)>,
    jwks: Arc<[u8]>,
    algorithms: Vec<Algorithm>,
}

impl Published {
    fn build(keys: Vec<(String, PublicKey)>) -> Self {
        let jwks: Vec<_> = keys
            .iter()
            .map(|(kid, key)| {
                let mut jwk = key.jwk();
                jwk["use"] = "sig".into();
                jwk["alg"] = key.default_algorithm().as_str().into();
                jwk["kid"] = kid.as_str().into();
                jwk
            })
            .collect();
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": jwks }))
            .unwrap_or_else(|_| unreachable!("a JSON value serializes"))
            .into();
        let mut algorithms: Vec<Algorithm> = Vec::new();
        for (_, key) in &keys {
            let alg = key.default_algorithm();
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        Published {
            keys,
            jwks,
            algorithms,
        }
    }

    /// The algorithms the published keys sign with, newest key's first: what tokens still
    /// alive may carry, whatever the configuration says now.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// (kid, key), newest first.
    pub fn keys(&self) -> &[(String, PublicKey)] {
        &self.keys
    }

    /// `{"keys":[…]}`, serialized once per change.
    pub fn jwks_json(&self) -> Arc<[u8]> {
        self.jwks.clone()
    }
}

/// The signing keys: the newest one signs; it and the retired ones whose tokens may still be
/// alive verify and are published in the JWKS.
pub struct SigningKeys {
    db: Db,
    master: MasterKey,
    source: Arc<dyn KeyPairSource>,
    ids: Arc<IdGenerator>,
    clock: Arc<dyn Clock>,
    rotation: Rotation,
    /// When this process loaded the keys: a newest key of another algorithm made before then
    /// is replaced, one made since is followed.
    since: DateTime<Utc>,
    current: RwLock<Arc<Signer>>,
    published: RwLock<Arc<Published>>,
    /// Serializes refreshes and rotations, so a slower, older read never replaces a newer
    /// answer; holds the kids whose rows failed their check (each logged once).
    update: tokio::sync::Mutex<HashSet<String>>,
    reads: AtomicU64,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys")
            .field("current", &self.current().kid)
            .finish_non_exhaustive()
    }
}

fn public_of(r: &repo::SigningKeyRow) -> repo::SigningKeyPublic {
    repo::SigningKeyPublic {
        id: r.id.clone(),
        public_key: r.public_key.clone(),
        created_at: r.created_at,
    }
}

/// How many of `rows` (newest first, by creation time) are still published at `now`: the
/// newest, and each older one until a token lifetime (plus margin) after its successor was
/// made.
fn published(created: &[DateTime<Utc>], now: DateTime<Utc>, rotation: Rotation) -> usize {
    let keep = rotation.token_lifetime + chrono::Duration::seconds(PUBLISH_MARGIN_SECS);
    let mut n = usize::from(!created.is_empty());
    while n < created.len() && created[n - 1] + keep > now {
        n += 1;
    }
    n
}

impl SigningKeys {
    /// Loads the signing keys, making the first one (or the next one, when the newest is due
    /// for rotation). Refuses to start when the newest key fails its checks.
    pub async fn load(
        db: Db,
        master: MasterKey,
        source: Arc<dyn KeyPairSource>,
        ids: Arc<IdGenerator>,
        clock: Arc<dyn Clock>,
        rotation: Rotation,
    ) -> Result<Self> {
        let since = storage::db_time(clock.now());
        let rows = Self::due_rows(
            &db,
            &master,
            source.as_ref(),
            &ids,
            clock.as_ref(),
            rotation,
            since,
            false,
        )
        .await?;
        let newest = rows
            .first()
            .ok_or_else(|| Error::internal("SIGN-None1", "no signing key"))?;
        let opened = open_signer(&db, &master, newest).await?;
        let this = SigningKeys {
            db,
            master,
            source,
            ids,
            clock,
            rotation,
            since,
            current: RwLock::new(Arc::new(Signer {
                kid: newest.id.clone(),
                key: opened.key,
            })),
            published: RwLock::new(Arc::new(Published::build(Vec::new()))),
            update: tokio::sync::Mutex::new(HashSet::new()),
            reads: AtomicU64::new(1),
        };
        let publics: Vec<_> = rows.iter().map(public_of).collect();
        let mut refused = this.update.lock().await;
        this.publish(&publics, &rows, &mut refused).await;
        drop(refused);
        Ok(this)
    }

    /// The key rows, after making a new key when there is none, when the newest is older than
    /// the rotation period, when it signs another algorithm than the configured one and was
    /// made before `since`, or when `force`d. Runs under the instance lock, so processes
    /// sharing the database make one key per rotation, not one each.
    #[allow(clippy::too_many_arguments)]
    async fn due_rows(
        db: &Db,
        master: &MasterKey,
        source: &dyn KeyPairSource,
        ids: &IdGenerator,
        clock: &dyn Clock,
        rotation: Rotation,
        since: DateTime<Utc>,
        force: bool,
    ) -> Result<Vec<repo::SigningKeyRow>> {
        let now = storage::db_time(clock.now());
        let due = |rows: &[repo::SigningKeyRow]| force || due(rows, now, since, rotation);
        let rows = repo::list_signing_keys(db).await?;
        if !due(&rows) {
            return Ok(rows);
        }
        // Generate outside the transaction: it may take a while and needs no lock.
        let key = make_key(source, rotation.algorithm).await?;
        let tx = storage::begin(db).await?;
        repo::lock_instance(&tx).await?;
        let rows = repo::list_signing_keys(&tx).await?;
        if force || due(&rows) {
            let row = new_row(master, ids, &key, now)?;
            repo::insert_signing_key(&tx, &row).await?;
            match rows.first() {
                None => {
                    tracing::info!(kid = %row.id, algorithm = %row.algorithm, "token signing key created")
                }
                Some(old) if other_algorithm(old, rotation.algorithm) => tracing::info!(
                    kid = %row.id,
                    algorithm = %row.algorithm,
                    previous = %old.id,
                    "token signing key rotated to the configured algorithm (AUTHN_KEYS_SIGNING_ALGORITHM); the previous key stays published until its tokens have expired"
                ),
                Some(_) => {
                    tracing::info!(kid = %row.id, algorithm = %row.algorithm, "token signing key rotated")
                }
            }
        }
        storage::commit(tx).await?;
        repo::list_signing_keys(db).await
    }

    /// Makes a new signing key when the current one is due (or at once, when `force`d), and
    /// picks up keys other processes made.
    pub async fn rotate(&self, force: bool) -> Result<()> {
        let mut refused = self.update.lock().await;
        let rows = Self::due_rows(
            &self.db,
            &self.master,
            self.source.as_ref(),
            &self.ids,
            self.clock.as_ref(),
            self.rotation,
            self.since,
            force,
        )
        .await?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        let publics: Vec<_> = rows.iter().map(public_of).collect();
        self.adopt(&publics, &rows, &mut refused).await
    }

    /// Reads the key list (public parts only) and follows it: a new newest key signs from now
    /// on, a dropped one is no longer published, a retired one leaves the JWKS once its tokens
    /// have expired.
    pub async fn refresh(&self) -> Result<()> {
        let mut refused = self.update.lock().await;
        let rows = repo::list_signing_key_publics(&self.db).await?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.adopt(&rows, &[], &mut refused).await
    }

    /// Runs for the life of the server: [`Self::refresh`] every [`REFRESH_EVERY`], the
    /// rotation check every minute. Failures are logged once until they change or clear.
    pub async fn keep_current(&self) {
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut n: u32 = 0;
        let mut failing: Option<String> = None;
        loop {
            tick.tick().await;
            n = n.wrapping_add(1);
            let result = if n.is_multiple_of(ROTATION_CHECK_EVERY) {
                self.rotate(false).await
            } else {
                self.refresh().await
            };
            match result {
                Ok(()) => {
                    if failing.take().is_some() {
                        tracing::info!("signing keys read from the database again");
                    }
                }
                Err(e) => {
                    if storage::is_closed(&self.db) {
                        return;
                    }
                    let what = format!("{} {}", e.id, e.message);
                    if failing.as_ref() != Some(&what) {
                        tracing::warn!(error_id = e.id, cause = %e.cause_chain(), "{}; serving the signing keys known so far", e.message);
                        failing = Some(what);
                    }
                }
            }
        }
    }

    /// Follows `rows` (newest first); `full` may carry some rows' encrypted parts already read.
    /// A newest key that fails its checks is logged once and never used; this process keeps
    /// signing with the key it has. A new key is published before it signs, so no verifier
    /// that fetches the JWKS after seeing a token misses the token's key.
    async fn adopt(
        &self,
        rows: &[repo::SigningKeyPublic],
        full: &[repo::SigningKeyRow],
        refused: &mut HashSet<String>,
    ) -> Result<()> {
        let mut next = None;
        if let Some(newest) = rows.first()
            && newest.id != self.current().kid
            && !refused.contains(&newest.id)
        {
            let row = match full.iter().find(|r| r.id == newest.id) {
                Some(row) => Some(row.clone()),
                None => repo::find_signing_key(&self.db, &newest.id).await?,
            };
            // None: dropped since the list was read; the next refresh sees what is left.
            if let Some(row) = row {
                match open_signer(&self.db, &self.master, &row).await {
                    Ok(opened) => {
                        next = Some(Signer {
                            kid: row.id.clone(),
                            key: opened.key,
                        })
                    }
                    Err(e) => {
                        tracing::error!(kid = %row.id, error_id = e.id, cause = %e.cause_chain(), "{}; still signing with key {}", e.message, self.current().kid);
                        refused.insert(row.id);
                    }
                }
            }
        }
        self.publish(rows, full, refused).await;
        if let Some(signer) = next {
            tracing::info!(kid = %signer.kid, algorithm = %signer.key.algorithm(), "signing with a new key");
            *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(signer);
        }
        Ok(())
    }

    /// Publishes the keys of `rows` still in their publishing window, each once its private
    /// part has been decrypted and checked against its public key: someone who can write the
    /// table but lacks the master key cannot get a key of theirs published. The answer is
    /// rebuilt only when the set changes.
    async fn publish(
        &self,
        rows: &[repo::SigningKeyPublic],
        full: &[repo::SigningKeyRow],
        refused: &mut HashSet<String>,
    ) {
        let created: Vec<_> = rows.iter().map(|r| r.created_at).collect();
        let n = published(&created, self.clock.now(), self.rotation);
        let wanted: Vec<&str> = rows[..n]
            .iter()
            .map(|r| r.id.as_str())
            .filter(|id| !refused.contains(*id))
            .collect();
        let before = self.published();
        if before
            .keys
            .iter()
            .map(|(k, _)| k.as_str())
            .eq(wanted.iter().copied())
        {
            return;
        }
        let mut keys = Vec::with_capacity(wanted.len());
        for kid in wanted {
            if let Some((_, key)) = before.keys.iter().find(|(k, _)| k == kid) {
                keys.push((kid.to_owned(), key.clone()));
                continue;
            }
            let row = match full.iter().find(|r| r.id == kid) {
                Some(row) => Some(row.clone()),
                None => match repo::find_signing_key(&self.db, kid).await {
                    Ok(row) => row,
                    Err(e) => {
                        // Not refused: the next refresh tries again.
                        tracing::warn!(kid = %kid, cause = %e.cause_chain(), "cannot read a signing key to publish it");
                        None
                    }
                },
            };
            let Some(row) = row else { continue };
            match open(&self.master, &row) {
                Ok(opened) => keys.push((row.id, opened.public)),
                Err(e) => {
                    tracing::error!(kid = %kid, error_id = e.id, cause = %e.cause_chain(), "{}", e.message);
                    refused.insert(kid.to_owned());
                }
            }
        }
        *self.published.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Published::build(keys));
    }

    /// The configured algorithm (`AUTHN_KEYS_SIGNING_ALGORITHM`): what new keys sign with,
    /// and what discovery names.
    pub fn algorithm(&self) -> Algorithm {
        self.rotation.algorithm
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> Arc<Signer> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The published public keys and the JWKS answer, from memory.
    pub fn published(&self) -> Arc<Published> {
        self.published
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How often this process has read the signing keys from the database (for tests and
    /// metrics: JWKS requests add nothing to it).
    pub fn database_reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The operator's rotation (`authn-keys rotate-signing-key`): a new key of `algorithm` that
    /// is the newest at once, whatever the rotation period; with `drop_old`, every other key
    /// is deleted.
    /// Works without decrypting the current key, so it also replaces one that fails its
    /// checks; but refuses a master key that opens none of the stored keys, as the servers
    /// could not read a key sealed with it.
    pub async fn rotate_now(
        db: &Db,
        master: &MasterKey,
        source: &dyn KeyPairSource,
        ids: &IdGenerator,
        clock: &dyn Clock,
        algorithm: Algorithm,
        drop_old: bool,
    ) -> Result<Rotated> {
        let rows = repo::list_signing_keys(db).await?;
        if !rows.is_empty()
            && !rows
                .iter()
                .any(|r| unseal(master, &r.id, &r.private_key_enc).is_ok())
        {
            return Err(Error::failed_precondition(
                "SIGN-Mkey1",
                "the master key decrypts none of the stored signing keys: check AUTHN_KEYS_MASTER_KEY (the servers could not read a key encrypted with this one)",
            ));
        }
        let key = make_key(source, algorithm).await?;
        let tx = storage::begin(db).await?;
        repo::lock_instance(&tx).await?;
        let rows = repo::list_signing_keys(&tx).await?;
        // Newer than the newest even when this machine's clock is behind the servers'.
        let now = storage::db_time(clock.now());
        let at = rows.first().map_or(now, |r| {
            now.max(r.created_at + chrono::Duration::seconds(1))
        });
        let row = new_row(master, ids, &key, at)?;
        repo::insert_signing_key(&tx, &row).await?;
        let dropped = if drop_old {
            repo::delete_signing_keys_except(&tx, &row.id).await?
        } else {
            Vec::new()
        };
        storage::commit(tx).await?;
        tracing::warn!(kid = %row.id, algorithm = %row.algorithm, dropped = ?dropped, "token signing key rotated by the operator");
        Ok(Rotated {
            algorithm: key.algorithm(),
            kid: row.id,
            previous: rows.first().map(|r| r.id.clone()),
            dropped,
        })
    }
}

/// What [`SigningKeys::rotate_now`] did.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The new key, signing now.
    pub kid: String,
    /// What it signs with.
    pub algorithm: Algorithm,
    /// The key that signed before, if any.
    pub previous: Option<String>,
    /// Keys deleted (`drop_old`), newest first.
    pub dropped: Vec<String>,
}

/// Whether a new key is due at `now` after `rows` (newest first): when there is none, when
/// the newest is a rotation period old, or when it signs another algorithm than the
/// configured one and was made before `since` (when this process started).
fn due(
    rows: &[repo::SigningKeyRow],
    now: DateTime<Utc>,
    since: DateTime<Utc>,
    rotation: Rotation,
) -> bool {
    rows.first().is_none_or(|k| {
        k.created_at + rotation.every <= now
            || (k.created_at < since && other_algorithm(k, rotation.algorithm))
    })
}

/// Whether `row`'s key signs another algorithm than `algorithm` (by the kind of its stored
/// public key; a key whose public key does not parse is left to the checks that open it).
fn other_algorithm(row: &repo::SigningKeyRow, algorithm: Algorithm) -> bool {
    PublicKey::from_pkix_pem(row.public_key.as_bytes())
        .is_ok_and(|key| key.default_algorithm() != algorithm)
}

/// A new signing key for `algorithm`: RSA from `source` (the key pool, or a worker thread),
/// P-256 or Ed25519 made at once (microseconds).
async fn make_key(source: &dyn KeyPairSource, algorithm: Algorithm) -> Result<KeyPair> {
    match algorithm {
        Algorithm::RS256 | Algorithm::PS256 => Ok(KeyPair::Rsa(source.next_key().await?)),
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA => KeyPair::generate(algorithm)
            .map_err(|e| Error::internal("KEY-Gen02", "key generation failed").with_source(e)),
    }
}

fn new_row(
    master: &MasterKey,
    ids: &IdGenerator,
    key: &KeyPair,
    created_at: DateTime<Utc>,
) -> Result<repo::SigningKeyRow> {
    let id = ids.next_id();
    let der = key
        .to_pkcs8_der()
        .map_err(|e| Error::internal("SIGN-Der01", "cannot encode a private key").with_source(e))?;
    Ok(repo::SigningKeyRow {
        algorithm: key.algorithm().as_str().into(),
        public_key: key.public_key().to_pkix_pem().map_err(|e| {
            Error::internal("SIGN-Pem01", "cannot encode a public key").with_source(e)
        })?,
        private_key_enc: seal(master, &id, &der)?,
        id,
        created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_keys_stay_published_for_a_token_lifetime() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let age = |hours: i64| t0 - chrono::Duration::hours(hours);
        let rotation = Rotation {
            every: chrono::Duration::hours(24),
            token_lifetime: chrono::Duration::hours(12),
            algorithm: Algorithm::RS256,
        };
        // c (newest, 1 h old) took over from b 1 h ago: b may still have live tokens.
        // b took over from a 25 h ago: a's last token expired 13 h ago.
        let rows = [age(1), age(25), age(49)];
        assert_eq!(published(&rows, t0, rotation), 2);
        assert_eq!(published(&rows[..1], t0, rotation), 1);
        assert_eq!(published(&[], t0, rotation), 0);
        // 12 h after c took over (plus the margin), b is gone too.
        assert_eq!(
            published(&rows, t0 + chrono::Duration::hours(12), rotation),
            1
        );
    }

    #[test]
    fn a_key_of_another_algorithm_made_before_the_start_is_due() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let hours = chrono::Duration::hours;
        let row = |alg: Algorithm, created_at: DateTime<Utc>| {
            let pair = match alg {
                Algorithm::RS256 => {
                    KeyPair::from(crate::domain::keypair::PrivateKey::generate(2048).unwrap())
                }
                other => KeyPair::generate(other).unwrap(),
            };
            repo::SigningKeyRow {
                id: "1".into(),
                algorithm: alg.as_str().into(),
                public_key: pair.public_key().to_pkix_pem().unwrap(),
                private_key_enc: Vec::new(),
                created_at,
            }
        };
        let rotation = |algorithm| Rotation {
            every: hours(24),
            token_lifetime: hours(12),
            algorithm,
        };
        // Started at t0; the newest key was made an hour before.
        let (now, since) = (t0 + hours(1), t0);
        let rs256 = [row(Algorithm::RS256, t0 - hours(1))];
        let es256 = [row(Algorithm::ES256, t0 - hours(1))];
        let eddsa = [row(Algorithm::EdDSA, t0 - hours(1))];
        assert!(!due(&rs256, now, since, rotation(Algorithm::RS256)));
        assert!(due(&rs256, now, since, rotation(Algorithm::ES256)));
        assert!(due(&rs256, now, since, rotation(Algorithm::EdDSA)));
        assert!(!due(&es256, now, since, rotation(Algorithm::ES256)));
        assert!(due(&es256, now, since, rotation(Algorithm::RS256)));
        assert!(!due(&eddsa, now, since, rotation(Algorithm::EdDSA)));
        assert!(due(&eddsa, now, since, rotation(Algorithm::ES256)));
        // A key of another algorithm made since the start (by a process started later, or the
        // operator) is followed until its rotation period is over.
        let later = [row(Algorithm::ES256, t0 + hours(1))];
        assert!(!due(
            &later,
            t0 + hours(2),
            since,
            rotation(Algorithm::RS256)
        ));
        assert!(due(
            &later,
            t0 + hours(25),
            since,
            rotation(Algorithm::RS256)
        ));
        // No key at all, and a key of the configured algorithm a rotation period old.
        assert!(due(&[], now, since, rotation(Algorithm::EdDSA)));
        assert!(due(
            &eddsa,
            t0 + hours(23),
            since,
            rotation(Algorithm::EdDSA)
        ));
        // A stored public key that does not parse is left to the checks that open it.
        let mut broken = row(Algorithm::RS256, t0 - hours(1));
        broken.public_key = "not a key".into();
        assert!(!due(&[broken], now, since, rotation(Algorithm::ES256)));
    }
}
