//! The server's own token-signing keys. They live in the database so every server process
//! shares them; the private parts are encrypted at rest (AES-256-GCM) with the master key,
//! bound to their row by the key id as associated data.
//!
//! Each process holds the signing key and the JWKS answer in memory. Anonymous JWKS requests
//! never read the database: [`SigningKeys::keep_current`] reads the key list once a second, so
//! a key another process made or dropped is used and published here within about one second
//! (plus one database read).
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
        keypair::{PublicKey, SigningKey},
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
        Published { keys, jwks }
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
        let rows = Self::due_rows(
            &db,
            &master,
            source.as_ref(),
            &ids,
            clock.as_ref(),
            rotation,
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
    /// the rotation period, or when `force`d. Runs under the instance lock, so processes
    /// sharing the database make one key per rotation, not one each.
    async fn due_rows(
        db: &Db,
        master: &MasterKey,
        source: &dyn KeyPairSource,
        ids: &IdGenerator,
        clock: &dyn Clock,
        rotation: Rotation,
        force: bool,
    ) -> Result<Vec<repo::SigningKeyRow>> {
        let now = storage::db_time(clock.now());
        let due = |rows: &[repo::SigningKeyRow]| {
            force
                || rows
                    .first()
                    .is_none_or(|k| k.created_at + rotation.every <= now)
        };
        let rows = repo::list_signing_keys(db).await?;
        if !due(&rows) {
            return Ok(rows);
        }
        // Generate outside the transaction: it takes a while and needs no lock.
        let key = source.next_key().await?;
        let tx = storage::begin(db).await?;
        repo::lock_instance(&tx).await?;
        let rows = repo::list_signing_keys(&tx).await?;
        if force || due(&rows) {
            let row = new_row(master, ids, &key, now)?;
            repo::insert_signing_key(&tx, &row).await?;
            if rows.is_empty() {
                tracing::info!(kid = %row.id, "token signing key created");
            } else {
                tracing::info!(kid = %row.id, "token signing key rotated");
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
            tracing::info!(kid = %signer.kid, "signing with a new key");
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

    /// The operator's rotation (`authn-keys rotate-signing-key`): a new key that is the newest
    /// at once, whatever the rotation period; with `drop_old`, every other key is deleted.
    /// Works without decrypting the current key, so it also replaces one that fails its
    /// checks; but refuses a master key that opens none of the stored keys, as the servers
    /// could not read a key sealed with it.
    pub async fn rotate_now(
        db: &Db,
        master: &MasterKey,
        source: &dyn KeyPairSource,
        ids: &IdGenerator,
        clock: &dyn Clock,
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
        let key = source.next_key().await?;
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
        tracing::warn!(kid = %row.id, dropped = ?dropped, "token signing key rotated by the operator");
        Ok(Rotated {
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
    /// The key that signed before, if any.
    pub previous: Option<String>,
    /// Keys deleted (`drop_old`), newest first.
    pub dropped: Vec<String>,
}

fn new_row(
    master: &MasterKey,
    ids: &IdGenerator,
    key: &crate::domain::keypair::PrivateKey,
    created_at: DateTime<Utc>,
) -> Result<repo::SigningKeyRow> {
    let id = ids.next_id();
    let der = key
        .to_pkcs8_der()
        .map_err(|e| Error::internal("SIGN-Der01", "cannot encode a private key").with_source(e))?;
    Ok(repo::SigningKeyRow {
        algorithm: "RS256".into(),
        public_key: key.public_key().to_pkix_pem().map_err(|e| {
            Error::internal("SIGN-Pem01", "cannot encode a public key").with_source(e)
        })?,
        private_key_enc: seal(master, &id, der.expose())?,
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
}
