//! The server's own token-signing keys. They live in the database so every server process
//! shares them; the private parts are encrypted at rest (AES-256-GCM) with the master key.
use std::{fmt, sync::RwLock};

use aes_gcm::{Aes256Gcm, KeyInit, aead::Aead};
use rand::RngCore;

use super::keys::KeyPairSource;
use crate::{
    domain::{
        clock::Clock,
        ids::IdGenerator,
        keypair::{PrivateKey, PublicKey},
    },
    error::{Error, Result},
    storage::{self, Db, repo},
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

/// The signing keys: the newest one signs, all verify.
pub struct SigningKeys {
    db: Db,
    current: (String, PrivateKey),
    known: RwLock<Vec<Loaded>>,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys")
            .field("current", &self.current.0)
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Loads the newest key, creating one when there is none yet.
    pub async fn load_or_create(
        db: Db,
        master: &MasterKey,
        keys: &dyn KeyPairSource,
        ids: &IdGenerator,
        clock: &dyn Clock,
    ) -> Result<Self> {
        let mut rows = repo::list_signing_keys(&db).await?;
        if rows.is_empty() {
            let key = keys.next_key().await?;
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
                created_at: storage::db_time(clock.now()),
            };
            repo::insert_signing_key(&db, &row).await?;
            rows = repo::list_signing_keys(&db).await?;
        }
        let newest = rows
            .first()
            .ok_or_else(|| Error::internal("SIGN-None1", "no signing key"))?;
        let der = master.decrypt(&newest.private_key_enc)?;
        let private = PrivateKey::from_pkcs8_der(&der).map_err(|e| {
            Error::internal("SIGN-Der02", "a stored signing key is corrupt").with_source(e)
        })?;
        let current = (newest.id.clone(), private);
        let this = SigningKeys {
            db,
            current,
            known: RwLock::new(Vec::new()),
        };
        this.set_known(rows);
        Ok(this)
    }

    fn set_known(&self, rows: Vec<repo::SigningKeyRow>) {
        let loaded = rows
            .into_iter()
            .filter_map(|r| {
                Some(Loaded {
                    id: r.id,
                    public: PublicKey::from_pkix_pem(r.public_key.as_bytes()).ok()?,
                })
            })
            .collect();
        *self.known.write().unwrap_or_else(|p| p.into_inner()) = loaded;
    }

    /// The key that signs new tokens: (kid, key).
    pub fn current(&self) -> (&str, &PrivateKey) {
        (&self.current.0, &self.current.1)
    }

    /// The public key for `kid`; reloads from the database once when it is not known yet
    /// (another process may have created it).
    pub async fn public_key(&self, kid: &str) -> Result<Option<PublicKey>> {
        if let Some(k) = self.find(kid) {
            return Ok(Some(k));
        }
        self.set_known(repo::list_signing_keys(&self.db).await?);
        Ok(self.find(kid))
    }

    fn find(&self, kid: &str) -> Option<PublicKey> {
        self.known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|k| k.id == kid)
            .map(|k| k.public.clone())
    }

    /// All public keys, for the JWKS: (kid, key).
    pub async fn all_public(&self) -> Result<Vec<(String, PublicKey)>> {
        self.set_known(repo::list_signing_keys(&self.db).await?);
        Ok(self
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|k| (k.id.clone(), k.public.clone()))
            .collect())
    }
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
}
