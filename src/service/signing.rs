//! The server's own token-signing keys. They live in the database so every server process
//! shares them; the private parts are encrypted at rest (AES-256-GCM) with the master key.
use std::{
    fmt,
    sync::{Arc, RwLock},
};

use aes_gcm::{Aes256Gcm, KeyInit, aead::Aead};
use chrono::{DateTime, Utc};
use rand::RngCore;

use super::keys::KeyPairSource;
use crate::{
    domain::{
        clock::Clock,
        ids::IdGenerator,
        keypair::{PublicKey, SigningKey},
    },
    error::{Error, Result},
    storage::{self, Db, TransactionTrait, repo},
};

/// ZITADEL's masterkey: exactly 32 characters, used as the AES-256 key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(redacted)")
    }
}

impl MasterKey {
    pub fn parse(text: &str) -> Result<Self> {
        let bytes: [u8; 32] = text.as_bytes().try_into().map_err(|_| {
            Error::invalid_argument(
                "CONFIG-Mkey1",
                format!(
                    "the master key must be exactly 32 characters (bytes), got {}",
                    text.len()
                ),
            )
        })?;
        Ok(MasterKey(bytes))
    }

    /// 32 random characters from [A-Za-z0-9].
    pub fn generate_text() -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rngs::OsRng;
        (0..32)
            .map(|_| ALPHABET[(rng.next_u32() % ALPHABET.len() as u32) as usize] as char)
            .collect()
    }

    /// A key for another purpose, derived from the master key (HMAC-SHA-256 over `label`), so
    /// the master key itself is used for one thing only.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// nonce (12 bytes) ‖ ciphertext+tag.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let cipher = Aes256Gcm::new((&self.0).into());
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt((&nonce).into(), plaintext)
            .map_err(|_| Error::internal("CRYPT-Enc01", "encryption failed"))?;
        Ok([nonce.as_slice(), &ct].concat())
    }

    pub fn decrypt(&self, data: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        if data.len() < 12 + 16 {
            return Err(Error::internal(
                "CRYPT-Dec01",
                "encrypted value is truncated",
            ));
        }
        let (nonce, ct) = data.split_at(12);
        let cipher = Aes256Gcm::new((&self.0).into());
        cipher.decrypt(nonce.into(), ct).map(zeroize::Zeroizing::new).map_err(|_| {
            Error::internal(
                "CRYPT-Dec02",
                "cannot decrypt a signing key: the master key differs from the one it was encrypted with",
            )
        })
    }
}

struct Loaded {
    id: String,
    public: PublicKey,
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

/// Slack for processes that have not yet picked up a new key (they look every minute) and
/// for clock differences.
const PUBLISH_MARGIN_SECS: i64 = 300;

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
    known: RwLock<Vec<Loaded>>,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys")
            .field("current", &self.current().kid)
            .finish_non_exhaustive()
    }
}

/// Which of `rows` (newest first) are still published at `now`: the newest, and each older one
/// until a token lifetime (plus margin) after its successor was made.
fn published(rows: &[repo::SigningKeyRow], now: DateTime<Utc>, rotation: Rotation) -> usize {
    let keep = rotation.token_lifetime + chrono::Duration::seconds(PUBLISH_MARGIN_SECS);
    let mut n = usize::from(!rows.is_empty());
    while n < rows.len() && rows[n - 1].created_at + keep > now {
        n += 1;
    }
    n
}

impl SigningKeys {
    /// Loads the signing keys, making the first one (or the next one, when the newest is due
    /// for rotation).
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
        let current = Arc::new(decrypt_newest(&master, &rows)?);
        let this = SigningKeys {
            db,
            master,
            source,
            ids,
            clock,
            rotation,
            current: RwLock::new(current),
            known: RwLock::new(Vec::new()),
        };
        this.set_known(&rows);
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
        let tx = db.begin().await.map_err(storage::db_err)?;
        repo::lock_instance(&tx).await?;
        let rows = repo::list_signing_keys(&tx).await?;
        let fresh_enough = !force && !due(&rows);
        if !fresh_enough {
            let row = repo::SigningKeyRow {
                id: ids.next_id(),
                algorithm: "RS256".into(),
                public_key: key.public_key().to_pkix_pem().map_err(|e| {
                    Error::internal("SIGN-Pem01", "cannot encode a public key").with_source(e)
                })?,
                private_key_enc: master.encrypt(
                    key.to_pkcs8_der()
                        .map_err(|e| {
                            Error::internal("SIGN-Der01", "cannot encode a private key")
                                .with_source(e)
                        })?
                        .expose(),
                )?,
                created_at: now,
            };
            repo::insert_signing_key(&tx, &row).await?;
            tracing::info!(kid = %row.id, "token signing key rotated");
        }
        tx.commit().await.map_err(storage::db_err)?;
        repo::list_signing_keys(db).await
    }

    /// Makes a new signing key when the current one is due (or at once, when `force`d), and
    /// picks up keys other processes made. Called every minute by the server.
    pub async fn rotate(&self, force: bool) -> Result<()> {
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
        if rows.first().map(|r| &r.id) != Some(&self.current().kid) {
            let signer = Arc::new(decrypt_newest(&self.master, &rows)?);
            *self.current.write().unwrap_or_else(|p| p.into_inner()) = signer;
        }
        self.set_known(&rows);
        Ok(())
    }

    fn set_known(&self, rows: &[repo::SigningKeyRow]) {
        let now = self.clock.now();
        let n = published(rows, now, self.rotation);
        let loaded = rows[..n]
            .iter()
            .filter_map(|r| {
                Some(Loaded {
                    id: r.id.clone(),
                    public: PublicKey::from_pkix_pem(r.public_key.as_bytes()).ok()?,
                })
            })
            .collect();
        *self.known.write().unwrap_or_else(|p| p.into_inner()) = loaded;
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> Arc<Signer> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The published public keys, for the JWKS: (kid, key), newest first.
    pub async fn all_public(&self) -> Result<Vec<(String, PublicKey)>> {
        self.set_known(&repo::list_signing_keys(&self.db).await?);
        Ok(self
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|k| (k.id.clone(), k.public.clone()))
            .collect())
    }
}

fn decrypt_newest(master: &MasterKey, rows: &[repo::SigningKeyRow]) -> Result<Signer> {
    let newest = rows
        .first()
        .ok_or_else(|| Error::internal("SIGN-None1", "no signing key"))?;
    let der = master.decrypt(&newest.private_key_enc)?;
    let key = SigningKey::from_pkcs8_der(&der).map_err(|e| {
        Error::internal("SIGN-Der02", "a stored signing key is corrupt").with_source(e)
    })?;
    Ok(Signer {
        kid: newest.id.clone(),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_round_trip_and_mismatch() {
        assert!(MasterKey::parse("short").is_err());
        let text = MasterKey::generate_text();
        assert_eq!(text.len(), 32);
        let a = MasterKey::parse(&text).unwrap();
        let b = MasterKey::parse(&MasterKey::generate_text()).unwrap();
        let sealed = a.encrypt(b"secret").unwrap();
        assert_eq!(a.decrypt(&sealed).unwrap().as_slice(), b"secret");
        assert_eq!(b.decrypt(&sealed).unwrap_err().id, "CRYPT-Dec02");
        assert!(!format!("{a:?}").contains(&text));
    }

    #[test]
    fn retired_keys_stay_published_for_a_token_lifetime() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let row = |id: &str, age_hours: i64| repo::SigningKeyRow {
            id: id.into(),
            algorithm: "RS256".into(),
            public_key: String::new(),
            private_key_enc: Vec::new(),
            created_at: t0 - chrono::Duration::hours(age_hours),
        };
        let rotation = Rotation {
            every: chrono::Duration::hours(24),
            token_lifetime: chrono::Duration::hours(12),
        };
        // c (newest, 1 h old) took over from b 1 h ago: b may still have live tokens.
        // b took over from a 25 h ago: a's last token expired 13 h ago.
        let rows = [row("c", 1), row("b", 25), row("a", 49)];
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
