//! Encryption at rest: the master key, and the sealing of a signing key's private part to
//! its row (the key id as AES-GCM associated data), checked against its public key on opening.
use std::fmt;

use aes_gcm::{
    Aes256Gcm, KeyInit,
    aead::{Aead, Payload},
};
use rand::RngCore;

use crate::{
    domain::keypair::{PublicKey, SigningKey},
    error::{Error, Result},
    storage::repo,
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

    /// A key of its own for another kind of secret, derived as [`MasterKey::derive`] does.
    pub fn derived(&self, label: &str) -> MasterKey {
        MasterKey(self.derive(label))
    }

    /// nonce (12 bytes) ‖ ciphertext+tag. Empty `aad` is what earlier versions wrote.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let cipher = Aes256Gcm::new((&self.0).into());
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| Error::internal("CRYPT-Enc01", "encryption failed"))?;
        Ok([nonce.as_slice(), &ct].concat())
    }

    pub fn decrypt(&self, data: &[u8], aad: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        if data.len() < 12 + 16 {
            return Err(Error::internal(
                "CRYPT-Dec01",
                "encrypted value is truncated",
            ));
        }
        let (nonce, ct) = data.split_at(12);
        let cipher = Aes256Gcm::new((&self.0).into());
        cipher
            .decrypt(nonce.into(), Payload { msg: ct, aad })
            .map(zeroize::Zeroizing::new)
            .map_err(|_| {
                Error::internal(
                    "CRYPT-Dec02",
                    "cannot decrypt: the master key differs from the one it was encrypted with, or the value was not encrypted for this place",
                )
            })
    }
}

/// The associated data sealing a signing key's private part to its row: a ciphertext copied
/// into another row does not decrypt there.
pub fn associated_data(kid: &str) -> Vec<u8> {
    format!("authn-keys signing_keys.id={kid}").into_bytes()
}

/// Encrypts a signing key's PKCS#8 DER for the row `kid`.
pub fn seal(master: &MasterKey, kid: &str, der: &[u8]) -> Result<Vec<u8>> {
    master.encrypt(der, &associated_data(kid))
}

/// Decrypts row `kid`'s private key: bound to the row, or (`true`) written by a version that
/// bound nothing.
pub(super) fn unseal(
    master: &MasterKey,
    kid: &str,
    sealed: &[u8],
) -> Result<(zeroize::Zeroizing<Vec<u8>>, bool)> {
    if let Ok(der) = master.decrypt(sealed, &associated_data(kid)) {
        return Ok((der, false));
    }
    match master.decrypt(sealed, b"") {
        Ok(der) => Ok((der, true)),
        Err(e) => Err(Error::internal(
            "SIGN-Dec01",
            format!(
                "cannot decrypt signing key {kid}: the master key differs from the one it was encrypted with, or its encrypted value was copied from another key's row"
            ),
        )
        .with_source(e)),
    }
}

/// A stored key, decrypted and checked against its stored public key.
pub(super) struct Opened {
    pub key: SigningKey,
    pub public: PublicKey,
    pub legacy: bool,
}

pub(super) fn open(master: &MasterKey, row: &repo::SigningKeyRow) -> Result<Opened> {
    let (der, legacy) = unseal(master, &row.id, &row.private_key_enc)?;
    let key = SigningKey::from_pkcs8_der(&der).map_err(|e| {
        Error::internal("SIGN-Der02", format!("signing key {} is corrupt", row.id)).with_source(e)
    })?;
    let public = PublicKey::from_pkix_pem(row.public_key.as_bytes()).map_err(|e| {
        Error::internal(
            "SIGN-Pem02",
            format!(
                "the stored public key of signing key {} is not usable",
                row.id
            ),
        )
        .with_source(e)
    })?;
    if !key.matches(&public) {
        return Err(Error::internal(
            "SIGN-Mism1",
            format!(
                "signing key {}: the decrypted private key does not belong to the stored public key (the row was altered); it is neither used nor published. `authn-keys rotate-signing-key --drop-old` replaces it",
                row.id
            ),
        ));
    }
    Ok(Opened {
        key,
        public,
        legacy,
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
        let sealed = a.encrypt(b"secret", b"here").unwrap();
        assert_eq!(a.decrypt(&sealed, b"here").unwrap().as_slice(), b"secret");
        assert_eq!(b.decrypt(&sealed, b"here").unwrap_err().id, "CRYPT-Dec02");
        assert_eq!(a.decrypt(&sealed, b"there").unwrap_err().id, "CRYPT-Dec02");
        assert!(!format!("{a:?}").contains(&text));
    }

    #[test]
    fn sealed_keys_open_in_their_own_row_only_and_old_ones_still_open() {
        let master = MasterKey::parse(&MasterKey::generate_text()).unwrap();
        let sealed = seal(&master, "1", b"der").unwrap();
        let (der, legacy) = unseal(&master, "1", &sealed).unwrap();
        assert_eq!((der.as_slice(), legacy), (&b"der"[..], false));
        assert_eq!(unseal(&master, "2", &sealed).unwrap_err().id, "SIGN-Dec01");
        let old = master.encrypt(b"der", b"").unwrap();
        let (der, legacy) = unseal(&master, "2", &old).unwrap();
        assert_eq!((der.as_slice(), legacy), (&b"der"[..], true));
    }
}
