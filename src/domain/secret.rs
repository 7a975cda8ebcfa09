//! Client secrets of BASIC API apps: generated once, handed out once, stored only as an
//! argon2id hash (PHC string). Checking a secret costs the same whether or not the client
//! exists, so timing tells nothing about which client ids are real.
use std::fmt;

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use rand::RngCore;

/// A client secret in clear. `Debug` is redacted; memory is wiped on drop.
pub struct ClientSecret(zeroize::Zeroizing<String>);

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(redacted)")
    }
}

impl ClientSecret {
    /// 64 characters from [A-Za-z0-9] (about 381 bits).
    pub fn generate() -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rngs::OsRng;
        let text = (0..64)
            .map(|_| ALPHABET[(rng.next_u32() % ALPHABET.len() as u32) as usize] as char)
            .collect();
        ClientSecret(zeroize::Zeroizing::new(text))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The argon2id PHC string to store.
    pub fn hash(&self) -> Result<String, argon2::password_hash::Error> {
        let salt = SaltString::generate(&mut OsRng);
        Ok(Argon2::default()
            .hash_password(self.0.as_bytes(), &salt)?
            .to_string())
    }
}

/// A hash of a secret nobody knows, checked when the client does not exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7Nbwq3ppAH9lV79Vz9LHm3aTk7Cft0bTCbxZbDJmGgk";

/// Whether `secret` matches `stored` (a PHC string); with `None`, checks against a dummy
/// hash and returns false, taking the same time.
pub fn verify(secret: &str, stored: Option<&str>) -> bool {
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (DUMMY_HASH, false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(secret.as_bytes(), &parsed)
        .is_ok()
        && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verify_and_redaction() {
        let s = ClientSecret::generate();
        assert_eq!(s.expose().len(), 64);
        let h = s.hash().unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(s.expose(), Some(&h)));
        assert!(!verify("wrong", Some(&h)));
        assert!(!verify(s.expose(), None));
        assert!(!verify(s.expose(), Some("not a hash")));
        assert!(!format!("{s:?}").contains(s.expose()));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
