//! Client secrets of BASIC API apps: generated once (64 random alphanumerics, ~381 bits),
//! handed out once, stored only as a keyed hash: HMAC-SHA-256 under a key derived from the
//! master key. A generated secret has far too much entropy to guess, so a slow password hash
//! buys nothing but lets anonymous callers spend the server's memory and CPU (argon2id took
//! ~19 MiB per attempt); the keyed hash costs microseconds and a stolen database alone does
//! not let anyone test guesses. Comparison is constant-time. Hashes written by earlier
//! versions (argon2id PHC strings) still verify and are replaced on first successful use.
use std::fmt;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The prefix of stored keyed hashes; the rest is lowercase hex.
const HMAC_PREFIX: &str = "hmac-sha256$";

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
}

/// What checking a secret found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match,
    /// It matched an old argon2id hash: store [`SecretHasher::hash`] in its place.
    MatchNeedsUpgrade,
    Mismatch,
}

/// Hashes and checks client secrets with HMAC-SHA-256 under a 32-byte key.
#[derive(Clone)]
pub struct SecretHasher {
    key: zeroize::Zeroizing<[u8; 32]>,
}

impl fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHasher(redacted)")
    }
}

impl SecretHasher {
    pub fn new(key: [u8; 32]) -> Self {
        SecretHasher {
            key: zeroize::Zeroizing::new(key),
        }
    }

    fn mac(&self, secret: &str) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(secret.as_bytes());
        mac
    }

    /// The string to store for `secret`.
    pub fn hash(&self, secret: &str) -> String {
        let tag = self.mac(secret).finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("{HMAC_PREFIX}{hex}")
    }

    /// Whether `secret` matches `stored`. With `None` (no such client) the same keyed hash is
    /// computed and compared against nothing, so unknown client ids cost the same.
    pub fn verify(&self, secret: &str, stored: Option<&str>) -> Verdict {
        let expected = match stored {
            Some(h) if h.starts_with("$argon2") => return verify_argon2(secret, h),
            Some(h) => h.strip_prefix(HMAC_PREFIX).and_then(from_hex),
            None => None,
        };
        let real = expected.is_some();
        let expected = expected.unwrap_or_else(|| vec![0u8; 32]);
        let ok = self.mac(secret).verify_slice(&expected).is_ok();
        if ok && real {
            Verdict::Match
        } else {
            Verdict::Mismatch
        }
    }

    /// Whether a stored hash must be checked with argon2id (slow; the caller bounds how many
    /// such checks run at once).
    pub fn is_legacy(stored: &str) -> bool {
        stored.starts_with("$argon2")
    }
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn verify_argon2(secret: &str, phc: &str) -> Verdict {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return Verdict::Mismatch;
    };
    if Argon2::default()
        .verify_password(secret.as_bytes(), &parsed)
        .is_ok()
    {
        Verdict::MatchNeedsUpgrade
    } else {
        Verdict::Mismatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHasher, password_hash::SaltString};

    #[test]
    fn keyed_hash_verify_and_redaction() {
        let hasher = SecretHasher::new([7; 32]);
        let s = ClientSecret::generate();
        assert_eq!(s.expose().len(), 64);
        let h = hasher.hash(s.expose());
        assert!(h.starts_with(HMAC_PREFIX) && h.len() == HMAC_PREFIX.len() + 64);
        assert!(!h.contains(s.expose()));
        assert_eq!(hasher.verify(s.expose(), Some(&h)), Verdict::Match);
        assert_eq!(hasher.verify("wrong", Some(&h)), Verdict::Mismatch);
        assert_eq!(hasher.verify(s.expose(), None), Verdict::Mismatch);
        assert_eq!(
            hasher.verify(s.expose(), Some("hmac-sha256$zz")),
            Verdict::Mismatch
        );
        // Another master key, another hash: the database alone does not check guesses.
        let other = SecretHasher::new([8; 32]);
        assert_eq!(other.verify(s.expose(), Some(&h)), Verdict::Mismatch);
        assert!(!format!("{s:?} {hasher:?}").contains(s.expose()));
    }

    #[test]
    fn old_argon2_hashes_verify_and_ask_for_an_upgrade() {
        let hasher = SecretHasher::new([7; 32]);
        let s = ClientSecret::generate();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = Argon2::default()
            .hash_password(s.expose().as_bytes(), &salt)
            .unwrap()
            .to_string();
        assert!(SecretHasher::is_legacy(&phc));
        assert_eq!(
            hasher.verify(s.expose(), Some(&phc)),
            Verdict::MatchNeedsUpgrade
        );
        assert_eq!(hasher.verify("nope", Some(&phc)), Verdict::Mismatch);
    }
}
