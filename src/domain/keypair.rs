//! RSA key pairs: generating them, the PEM forms the API hands out and accepts, and the
//! checks on uploaded public keys. Private keys live only in [`PrivateKey`], whose `Debug`
//! prints nothing secret and whose PEM form is zeroized when dropped.
use std::fmt;

use rsa::{
    RsaPrivateKey, RsaPublicKey,
    pkcs1::EncodeRsaPrivateKey,
    pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding},
    traits::PublicKeyParts,
};

/// The smallest RSA modulus accepted, for uploaded keys and configured key sizes.
pub const MIN_RSA_BITS: usize = 2048;

/// The largest RSA modulus accepted for uploaded keys.
pub const MAX_RSA_BITS: usize = 4096;

/// The largest RSA public exponent accepted for uploaded keys (2^33 - 1, the bound ring
/// verifies with).
const MAX_RSA_EXPONENT: u64 = (1 << 33) - 1;

/// A generated RSA private key.
#[derive(Clone)]
pub struct PrivateKey(RsaPrivateKey);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(RSA-{}, redacted)", self.0.n().bits())
    }
}

impl PrivateKey {
    /// Generates a fresh key with aws-lc (BoringSSL's generator: about 65 ms for RSA-2048 here,
    /// against 175 ms for the `rsa` crate's). CPU-bound: call it off the async runtime.
    pub fn generate(bits: usize) -> Result<Self, KeyGenError> {
        use aws_lc_rs::{encoding::AsDer, rsa::KeySize};
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            8192 => KeySize::Rsa8192,
            other => return Err(KeyGenError(format!("unsupported key size {other}"))),
        };
        let pair =
            aws_lc_rs::rsa::KeyPair::generate(size).map_err(|e| KeyGenError(e.to_string()))?;
        let der = pair.as_der().map_err(|e| KeyGenError(e.to_string()))?;
        let key =
            RsaPrivateKey::from_pkcs8_der(der.as_ref()).map_err(|e| KeyGenError(e.to_string()))?;
        Ok(PrivateKey(key))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_rsa(self.0.to_public_key())
    }

    /// PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`), as ZITADEL's key files carry it.
    pub fn to_pkcs1_pem(&self) -> Result<zeroize_string::Secret, rsa::pkcs1::Error> {
        Ok(zeroize_string::Secret(self.0.to_pkcs1_pem(LineEnding::LF)?))
    }

    /// PKCS#8 DER, for encrypting at rest.
    pub fn to_pkcs8_der(&self) -> Result<zeroize_string::SecretBytes, rsa::pkcs8::Error> {
        Ok(zeroize_string::SecretBytes(self.0.to_pkcs8_der()?))
    }

    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, rsa::pkcs8::Error> {
        RsaPrivateKey::from_pkcs8_der(der).map(PrivateKey)
    }

    pub fn rsa(&self) -> &RsaPrivateKey {
        &self.0
    }
}

/// A key that signs our own tokens. Signing runs in ring's constant-time RSA, never in the
/// `rsa` crate (whose private-key operations leak timing: RUSTSEC-2023-0071).
pub struct SigningKey {
    pair: ring::signature::RsaKeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey(RSA-{}, redacted)",
            self.pair.public().modulus_len() * 8
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the private key cannot be used for signing: {0}")]
pub struct SigningKeyError(String);

impl SigningKey {
    /// From PKCS#8 DER (as stored, encrypted, for the server's signing keys).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, SigningKeyError> {
        ring::signature::RsaKeyPair::from_pkcs8(der)
            .map(|pair| SigningKey { pair })
            .map_err(|e| SigningKeyError(e.to_string()))
    }

    pub fn from_private(key: &PrivateKey) -> Result<Self, SigningKeyError> {
        let der = key
            .to_pkcs8_der()
            .map_err(|e| SigningKeyError(e.to_string()))?;
        Self::from_pkcs8_der(der.expose())
    }

    /// Whether `public` is this key's public half (same modulus and exponent).
    pub fn matches(&self, public: &PublicKey) -> bool {
        let mine: ring::rsa::PublicKeyComponents<Vec<u8>> = self.pair.public().into();
        let (n, e) = public.n_e();
        mine.n == n && mine.e == e
    }

    /// RSASSA-PKCS1-v1_5 (`pss` false) or RSASSA-PSS, both with SHA-256, over `message`.
    pub fn sign(&self, pss: bool, message: &[u8]) -> Result<Vec<u8>, SigningKeyError> {
        let encoding: &'static dyn ring::signature::RsaEncoding = if pss {
            &ring::signature::RSA_PSS_SHA256
        } else {
            &ring::signature::RSA_PKCS1_SHA256
        };
        let mut signature = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(
                encoding,
                &ring::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|e| SigningKeyError(e.to_string()))?;
        Ok(signature)
    }
}

/// Why a key could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RSA key generation failed: {0}")]
pub struct KeyGenError(String);

/// Holders for secret encodings that wipe themselves when dropped.
pub mod zeroize_string {
    use std::fmt;

    pub struct Secret(pub(super) zeroize::Zeroizing<String>);
    impl Secret {
        pub fn expose(&self) -> &str {
            &self.0
        }
    }
    impl fmt::Debug for Secret {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Secret(redacted)")
        }
    }

    pub struct SecretBytes(pub(super) rsa::pkcs8::SecretDocument);
    impl SecretBytes {
        pub fn expose(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }
    impl fmt::Debug for SecretBytes {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("SecretBytes(redacted)")
        }
    }
}

/// An RSA public key, the only key material that is ever stored for machine and app keys.
/// Keeps its modulus and exponent as big-endian bytes, the form ring verifies with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: RsaPublicKey,
    n: Vec<u8>,
    e: Vec<u8>,
}

/// Why an uploaded public key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    #[error("the public key is not a PEM-encoded PKIX (SubjectPublicKeyInfo) key")]
    NotPem,
    #[error("the public key is not an RSA key; only RSA keys can sign RS256/PS256 assertions")]
    NotRsa,
    #[error("the RSA public key has {0} bits; at least {MIN_RSA_BITS} are required")]
    TooSmall(usize),
    #[error("the RSA public key has {0} bits; at most {MAX_RSA_BITS} are accepted")]
    TooLarge(usize),
    #[error("the RSA public key's modulus is even; an RSA modulus is a product of two odd primes")]
    EvenModulus,
    #[error(
        "the RSA public key's exponent must be odd, greater than 1 and less than 2^33 (65537 is usual)"
    )]
    BadExponent,
}

/// A public key no one holds: when an assertion names a key id we do not have, its signature
/// is checked against this one, so a refusal costs one RSA-2048 verification whether or not the
/// key id exists (no timing tells which key ids exist).
pub fn decoy() -> &'static PublicKey {
    static DECOY: std::sync::OnceLock<PublicKey> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        PublicKey::from_pkix_pem(DECOY_PEM.as_bytes()).expect("the decoy key is a valid SPKI PEM")
    })
}

/// Made once with `openssl genrsa 2048 | openssl rsa -pubout`; the private half was discarded.
const DECOY_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA6+e3A73sFDnjbEPrH65a\n\
EdidP6N8YbnT0MxY9ZvI/DxaUG6ev2N200ZgUaIrRsA6Hg45SiUwZeM46g7aI0Fj\n\
CXVC2vohh+0riL7oyl27aNvS0P+bHi4KirVjWDxzbvekorfUc0F4+WNBBvvfvsi6\n\
B7IeHzZwvYlPM1JpODEx1pHe5yPwyb1MsJsxD589NqgvgpVgGIqeMCraWPmkL79t\n\
OfUnZ7f0euo88ohkeT/KcIvCPvRFNtZUk+VvDK5El94l7K+PfpyXxGIxx9ZTTNeO\n\
T/V3/0e9Jjv9gbH1/OtW0O9xjbngyksWUuUkM1xblePKBZvAAkMOIhpOEYVwyuWv\n\
jwIDAQAB\n\
-----END PUBLIC KEY-----\n";

impl PublicKey {
    /// Parses an uploaded key: PEM of a PKIX RSA public key whose modulus has 2048 to 4096 bits
    /// and is odd, and whose exponent is odd, greater than 1 and less than 2^33.
    pub fn from_pkix_pem(pem: &[u8]) -> Result<Self, PublicKeyError> {
        let text = std::str::from_utf8(pem).map_err(|_| PublicKeyError::NotPem)?;
        let text = text.trim();
        if !text.starts_with("-----BEGIN PUBLIC KEY-----") {
            return Err(PublicKeyError::NotPem);
        }
        let key = match RsaPublicKey::from_public_key_pem(text) {
            Ok(key) => key,
            // A well-formed SPKI of another algorithm fails on its OID; anything else is not PEM.
            Err(rsa::pkcs8::spki::Error::OidUnknown { .. }) => return Err(PublicKeyError::NotRsa),
            Err(_) => {
                // A well-formed RSA key whose numbers the rsa crate refuses (a modulus past its
                // size limit, an exponent out of range): say which rule they break.
                if let Some((n, e)) = rsa_numbers(text) {
                    check_rsa_numbers(&n, &e)?;
                }
                return Err(if is_other_algorithm_spki(text) {
                    PublicKeyError::NotRsa
                } else {
                    PublicKeyError::NotPem
                });
            }
        };
        let key = PublicKey::from_rsa(key);
        check_rsa_numbers(&key.n, &key.e)?;
        Ok(key)
    }

    fn from_rsa(key: RsaPublicKey) -> Self {
        PublicKey {
            n: key.n().to_bytes_be(),
            e: key.e().to_bytes_be(),
            key,
        }
    }

    pub fn to_pkix_pem(&self) -> Result<String, rsa::pkcs8::spki::Error> {
        self.key.to_public_key_pem(LineEnding::LF)
    }

    /// The modulus and exponent, big-endian, for a JWK.
    pub fn n_e(&self) -> (&[u8], &[u8]) {
        (&self.n, &self.e)
    }

    /// Whether `signature` is a valid RSASSA-PKCS1-v1_5 (`pss` false) or RSASSA-PSS signature
    /// with SHA-256 over `message` (ring; moduli of 2048 to 8192 bits).
    pub fn verify(&self, pss: bool, message: &[u8], signature: &[u8]) -> bool {
        let params: &ring::signature::RsaParameters = if pss {
            &ring::signature::RSA_PSS_2048_8192_SHA256
        } else {
            &ring::signature::RSA_PKCS1_2048_8192_SHA256
        };
        ring::signature::RsaPublicKeyComponents {
            n: &self.n,
            e: &self.e,
        }
        .verify(params, message, signature)
        .is_ok()
    }
}

/// The rule for an uploaded RSA public key, on its modulus `n` and exponent `e` (big-endian):
/// a modulus of [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits that is odd (an even one has the
/// factor 2 and is no RSA modulus), and an odd exponent greater than 1 (1 makes a signature
/// equal to its message; an even one has no inverse) and below 2^33.
fn check_rsa_numbers(n: &[u8], e: &[u8]) -> Result<(), PublicKeyError> {
    let bits = bit_length(n);
    if bits < MIN_RSA_BITS {
        return Err(PublicKeyError::TooSmall(bits));
    }
    if bits > MAX_RSA_BITS {
        return Err(PublicKeyError::TooLarge(bits));
    }
    if n.last().is_none_or(|b| b & 1 == 0) {
        return Err(PublicKeyError::EvenModulus);
    }
    let exponent = strip_zeros(e);
    let exponent = match exponent.len() {
        0..=8 => exponent.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b)),
        _ => return Err(PublicKeyError::BadExponent),
    };
    if exponent <= 1 || exponent % 2 == 0 || exponent > MAX_RSA_EXPONENT {
        return Err(PublicKeyError::BadExponent);
    }
    Ok(())
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// The number of bits of a big-endian unsigned integer.
fn bit_length(bytes: &[u8]) -> usize {
    match strip_zeros(bytes) {
        [] => 0,
        [first, rest @ ..] => rest.len() * 8 + (8 - first.leading_zeros() as usize),
    }
}

/// The modulus and exponent of a PEM SubjectPublicKeyInfo of an RSA key, read without the
/// rsa crate's own range checks; None when it is no such thing.
fn rsa_numbers(pem: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    use rsa::pkcs8::der::Decode;
    let (label, doc) = rsa::pkcs8::der::Document::from_pem(pem).ok()?;
    if label != "PUBLIC KEY" {
        return None;
    }
    let spki = rsa::pkcs8::SubjectPublicKeyInfoRef::from_der(doc.as_bytes()).ok()?;
    if spki.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
        return None;
    }
    let numbers = rsa::pkcs1::RsaPublicKey::from_der(spki.subject_public_key.as_bytes()?).ok()?;
    Some((
        numbers.modulus.as_bytes().to_vec(),
        numbers.public_exponent.as_bytes().to_vec(),
    ))
}

/// True when `pem` decodes as a SubjectPublicKeyInfo whose algorithm is not RSA.
fn is_other_algorithm_spki(pem: &str) -> bool {
    use rsa::pkcs8::der::{Decode, asn1::AnyRef};
    let Ok((_, doc)) = rsa::pkcs8::der::Document::from_pem(pem) else {
        return false;
    };
    match rsa::pkcs8::spki::SubjectPublicKeyInfo::<
        AnyRef<'_>,
        rsa::pkcs8::der::asn1::BitStringRef<'_>,
    >::from_der(doc.as_bytes())
    {
        Ok(spki) => spki.algorithm.oid != rsa::pkcs1::ALGORITHM_OID,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_and_hides_itself() {
        let key = PrivateKey::generate(2048).unwrap();
        let pem = key.to_pkcs1_pem().unwrap();
        assert!(
            pem.expose()
                .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
        );
        let debug = format!("{key:?} {pem:?}");
        assert!(!debug.contains("BEGIN"), "{debug}");
        let public = key.public_key().to_pkix_pem().unwrap();
        assert_eq!(
            PublicKey::from_pkix_pem(public.as_bytes()).unwrap(),
            key.public_key()
        );
        let der = key.to_pkcs8_der().unwrap();
        assert_eq!(
            PrivateKey::from_pkcs8_der(der.expose())
                .unwrap()
                .public_key(),
            key.public_key()
        );
    }

    #[test]
    fn a_signing_key_matches_its_own_public_key_only() {
        let a = PrivateKey::generate(2048).unwrap();
        let b = PrivateKey::generate(2048).unwrap();
        let signer = SigningKey::from_private(&a).unwrap();
        assert!(signer.matches(&a.public_key()));
        assert!(!signer.matches(&b.public_key()));
    }

    #[test]
    fn uploaded_keys_are_checked() {
        assert_eq!(
            PublicKey::from_pkix_pem(b"hello"),
            Err(PublicKeyError::NotPem)
        );
        assert_eq!(
            PublicKey::from_pkix_pem(&[0xff, 0xfe]),
            Err(PublicKeyError::NotPem)
        );
        // An EC P-256 key in PKIX PEM.
        let ec = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqF2QiCwGfQKz8YRXcZ7SlQ0KLerX\nlW44RXn4J7APS3O93ybHmoOC4Y09UGahSVDqcC4WHqo6CF41MuV+YKjbPg==\n-----END PUBLIC KEY-----\n";
        let ed25519 = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAdvKgi/bgyechCFwe5h8pbh8w2dkY5xdFstOXUTxPwcU=\n-----END PUBLIC KEY-----\n";
        assert_eq!(
            PublicKey::from_pkix_pem(ed25519.as_bytes()),
            Err(PublicKeyError::NotRsa)
        );
        assert_eq!(
            PublicKey::from_pkix_pem(ec.as_bytes()),
            Err(PublicKeyError::NotRsa)
        );
        let small = RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap();
        let pem = small
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        assert_eq!(
            PublicKey::from_pkix_pem(pem.as_bytes()),
            Err(PublicKeyError::TooSmall(1024))
        );
    }

    /// A PEM SubjectPublicKeyInfo of an RSA key with modulus `n` and exponent `e`.
    fn spki_pem(n: &[u8], e: &[u8]) -> String {
        use rsa::pkcs8::der::{
            Encode,
            asn1::{AnyRef, BitStringRef, UintRef},
        };
        let numbers = rsa::pkcs1::RsaPublicKey {
            modulus: UintRef::new(n).unwrap(),
            public_exponent: UintRef::new(e).unwrap(),
        }
        .to_der()
        .unwrap();
        let spki = rsa::pkcs8::SubjectPublicKeyInfoRef {
            algorithm: rsa::pkcs8::AlgorithmIdentifierRef {
                oid: rsa::pkcs1::ALGORITHM_OID,
                parameters: Some(AnyRef::NULL),
            },
            subject_public_key: BitStringRef::from_bytes(&numbers).unwrap(),
        };
        rsa::pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &spki.to_der().unwrap())
            .unwrap()
    }

    /// An odd number of `bits` bits (not a real modulus; the rule does not factor).
    fn odd_number(bits: usize) -> Vec<u8> {
        let mut n = vec![0xa5u8; bits.div_ceil(8)];
        n[0] = 1u8 << ((bits - 1) % 8);
        *n.last_mut().unwrap() |= 1;
        n
    }

    #[test]
    fn uploaded_rsa_numbers_follow_the_rule() {
        let parse = |n: &[u8], e: &[u8]| PublicKey::from_pkix_pem(spki_pem(n, e).as_bytes());
        let real = PrivateKey::generate(2048).unwrap().public_key();
        let (n, _) = real.n_e();
        let f4 = [1u8, 0, 1];
        assert_eq!(parse(n, &f4), Ok(real.clone()));
        assert!(parse(n, &[3]).is_ok(), "the smallest odd exponent");
        assert!(parse(n, &[1, 0xff, 0xff, 0xff, 0xff]).is_ok(), "2^33 - 1");
        for bits in [2048, 3072, 4096] {
            assert!(parse(&odd_number(bits), &f4).is_ok(), "{bits} bits");
        }

        // The exponent: 1, even, and past 2^33 - 1 (2^33 + 1, 2^64 + 1) are refused.
        for e in [
            &[1u8][..],
            &[2],
            &[1, 0, 2],
            &[2, 0, 0, 0, 1],
            &[1, 0, 0, 0, 0, 0, 0, 0, 1],
            &[1, 0, 0, 0, 0, 0, 0, 0, 0],
        ] {
            assert_eq!(parse(n, e), Err(PublicKeyError::BadExponent), "e = {e:?}");
        }
        // The modulus: even, too small, too large.
        let mut even = n.to_vec();
        *even.last_mut().unwrap() &= 0xfe;
        assert_eq!(parse(&even, &f4), Err(PublicKeyError::EvenModulus));
        assert_eq!(
            parse(&odd_number(2047), &f4),
            Err(PublicKeyError::TooSmall(2047))
        );
        for bits in [4097, 8200] {
            assert_eq!(
                parse(&odd_number(bits), &f4),
                Err(PublicKeyError::TooLarge(bits))
            );
        }
    }
}
