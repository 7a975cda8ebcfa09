//! JWK sets (RFC 7517 §5) of outside issuers whose tokens a trust accepts: parsing them into
//! public keys by the rules uploaded keys follow ([`PublicKey::from_jwk`]), and choosing the key
//! a token names.
//!
//! Two ways to parse, for two kinds of author:
//!
//! - [`Jwks::parse`] is strict, for a set an administrator types in: every key must be usable
//!   (a key for encryption, `use` other than `sig`, is left out), so a mistake is reported when
//!   the set is given rather than when a token fails.
//! - [`Jwks::parse_lenient`] is for a set fetched from an issuer, which may publish keys of
//!   kinds or algorithms not taken here beside the ones its tokens use: those are left out. It
//!   still refuses a set with private or secret key material in it (the issuer has leaked it,
//!   and its tokens prove nothing) and a set from which nothing usable remains.
//!
//! Either way a set holds at most [`MAX_KEYS`] keys.
use std::fmt;

use serde_json::Value;

use super::{
    jwt::Algorithm,
    keypair::{PublicKey, PublicKeyError},
    text::shown,
};

/// The most keys a set may hold (entries of its `keys` array, usable or not).
pub const MAX_KEYS: usize = 100;

/// The algorithms keys are taken for, for messages.
const ACCEPTED: &str = "RS256, PS256, ES256, ES384 or EdDSA";

/// A key of a set, as far as it is used: its id, the one algorithm it is restricted to (when
/// its `alg` says so), and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksEntry {
    /// The `kid`; an empty one counts as none.
    pub kid: Option<String>,
    pub alg: Option<Algorithm>,
    pub key: PublicKey,
}

impl JwksEntry {
    /// Whether a token signed under `alg` may verify with this key: the key's kind takes it
    /// and the entry's `alg`, if any, is it.
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.alg.is_none_or(|own| own == alg) && self.key.allows(alg)
    }

    /// The algorithms this entry verifies.
    fn algorithms(&self) -> Vec<Algorithm> {
        let kind = self.key.kind().algorithms();
        kind.iter()
            .copied()
            .filter(|a| self.alg.is_none_or(|own| own == *a))
            .collect()
    }
}

/// A parsed key set: the usable keys, in the set's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<JwksEntry>,
}

/// Where a key sits in its set, for messages: `keys[2] (kid "a1")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAt {
    pub index: usize,
    /// The key's `kid`, escaped for display, when it has a string one.
    pub kid: Option<String>,
}

impl fmt::Display for KeyAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "keys[{}]", self.index)?;
        if let Some(kid) = &self.kid {
            write!(f, " (kid \"{kid}\")")?;
        }
        Ok(())
    }
}

/// Why a key set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("the key set is not JSON: {0}")]
    NotJson(String),
    #[error("the key set is not a JSON object with a keys array")]
    NoKeysArray,
    #[error("the key set has {0} keys; at most {MAX_KEYS} are accepted")]
    TooManyKeys(usize),
    #[error("the key set has no keys")]
    Empty,
    /// Private or secret key material: refused by both parses.
    #[error("{at}: {error}")]
    SecretKey { at: KeyAt, error: PublicKeyError },
    /// A key that cannot be used (the strict parse only).
    #[error("{at}: {problem}")]
    BadKey { at: KeyAt, problem: String },
    /// Two keys with one kid that verify the same algorithm (the strict parse only): which
    /// one a token means would be a guess.
    #[error("two keys have kid \"{kid}\" and both verify {alg}; a kid must name one key")]
    DuplicateKid { kid: String, alg: Algorithm },
    /// Nothing usable remains (the lenient parse).
    #[error(
        "none of the key set's {0} keys can verify signatures here: keys must be signing keys (use sig) for {ACCEPTED}"
    )]
    NoUsableKey(usize),
}

impl JwksError {
    /// Whether the set holds private or secret key material.
    pub fn is_secret(&self) -> bool {
        matches!(self, JwksError::SecretKey { .. })
    }
}

/// Why no key of a set is the one a token needs. The messages speak of "the issuer's key set":
/// that is what every set here is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// No key has the token's kid (escaped for display).
    #[error("no key with kid \"{0}\" in the issuer's key set")]
    UnknownKid(String),
    /// The keys with the token's kid do not verify the token's algorithm.
    #[error(
        "the issuer's key \"{kid}\" is {described} for {takes} only; the token is signed with {alg}"
    )]
    WrongAlgorithm {
        kid: String,
        described: &'static str,
        takes: String,
        alg: Algorithm,
    },
    /// The token has no kid and no key verifies its algorithm.
    #[error("the issuer's key set has no key for {0}")]
    NoKeyFor(Algorithm),
    /// The token has no kid and more than one key verifies its algorithm.
    #[error("a kid is required: the issuer's key set has {count} keys for {alg}")]
    KidRequired { count: usize, alg: Algorithm },
}

impl SelectError {
    /// Whether a newer copy of the set might have the key: the kid, or a key for the
    /// algorithm, is missing (an issuer that rotated its keys). The other refusals would stand.
    pub fn is_missing(&self) -> bool {
        matches!(self, SelectError::UnknownKid(_) | SelectError::NoKeyFor(_))
    }
}

/// The strict and the lenient parse differ only in what a key that cannot be used does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Strict,
    Lenient,
}

impl Jwks {
    /// Parses a key set given by an administrator: every key must be usable (see the module's
    /// documentation); keys for encryption are left out.
    pub fn parse(bytes: &[u8]) -> Result<Jwks, JwksError> {
        Self::parse_with(bytes, Mode::Strict)
    }

    /// Parses a key set fetched from an issuer: keys that cannot be used here are left out,
    /// but private or secret key material anywhere is an error, and so is a set with nothing
    /// usable left.
    pub fn parse_lenient(bytes: &[u8]) -> Result<Jwks, JwksError> {
        Self::parse_with(bytes, Mode::Lenient)
    }

    /// The usable keys, in the set's order.
    pub fn keys(&self) -> &[JwksEntry] {
        &self.keys
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token with `kid` signed under `alg`. With a kid: the first key with that
    /// kid that verifies `alg`. Without one: the only key that verifies `alg`, if there is
    /// exactly one.
    pub fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<&PublicKey, SelectError> {
        match kid.filter(|k| !k.is_empty()) {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|e| e.kid.as_deref() == Some(kid))
                    .peekable();
                let Some(first) = named.peek().cloned() else {
                    return Err(SelectError::UnknownKid(shown(kid).to_string()));
                };
                named
                    .find(|e| e.allows(alg))
                    .map(|e| &e.key)
                    .ok_or_else(|| SelectError::WrongAlgorithm {
                        kid: shown(kid).to_string(),
                        described: first.key.described(),
                        takes: names(&first.algorithms()),
                        alg,
                    })
            }
            None => {
                let mut usable = self.keys.iter().filter(|e| e.allows(alg));
                match (usable.next(), usable.count()) {
                    (None, _) => Err(SelectError::NoKeyFor(alg)),
                    (Some(only), 0) => Ok(&only.key),
                    (Some(_), more) => Err(SelectError::KidRequired {
                        count: more + 1,
                        alg,
                    }),
                }
            }
        }
    }

    fn parse_with(bytes: &[u8], mode: Mode) -> Result<Jwks, JwksError> {
        let set: Value =
            serde_json::from_slice(bytes).map_err(|e| JwksError::NotJson(e.to_string()))?;
        let entries = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NoKeysArray)?;
        if entries.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys(entries.len()));
        }
        if entries.is_empty() {
            return Err(JwksError::Empty);
        }
        let mut keys: Vec<JwksEntry> = Vec::with_capacity(entries.len());
        for (index, jwk) in entries.iter().enumerate() {
            let at = KeyAt {
                index,
                kid: jwk
                    .get("kid")
                    .and_then(Value::as_str)
                    .map(|k| shown(k).to_string()),
            };
            match entry(jwk) {
                Ok(Some(found)) => {
                    if mode == Mode::Strict
                        && let Some(kid) = &found.kid
                        && let Some(alg) = keys
                            .iter()
                            .filter(|e| e.kid.as_ref() == Some(kid))
                            .find_map(|e| found.algorithms().into_iter().find(|a| e.allows(*a)))
                    {
                        return Err(JwksError::DuplicateKid {
                            kid: shown(kid).to_string(),
                            alg,
                        });
                    }
                    keys.push(found);
                }
                Ok(None) => {}
                Err(Refusal::Secret(error)) => return Err(JwksError::SecretKey { at, error }),
                Err(Refusal::Unusable(problem)) => {
                    if mode == Mode::Strict {
                        return Err(JwksError::BadKey { at, problem });
                    }
                }
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey(entries.len()));
        }
        Ok(Jwks { keys })
    }
}

/// Why one key of a set is not taken.
enum Refusal {
    /// Private or secret key material.
    Secret(PublicKeyError),
    /// Anything else: said in a sentence.
    Unusable(String),
}

/// One key of a set: `None` when it is not for signatures (`use` other than `sig`, or
/// `key_ops` without `verify`), which is left out by both parses.
fn entry(jwk: &Value) -> Result<Option<JwksEntry>, Refusal> {
    let key = PublicKey::from_jwk(jwk);
    if let Err(e @ (PublicKeyError::JwkPrivate(_) | PublicKeyError::JwkSymmetric)) = key {
        return Err(Refusal::Secret(e));
    }
    match jwk.get("use") {
        None => {}
        Some(Value::String(use_)) if use_ == "sig" => {}
        Some(Value::String(_)) => return Ok(None),
        Some(_) => return Err(Refusal::Unusable("its use is not a string".into())),
    }
    match jwk.get("key_ops") {
        Some(Value::Array(ops)) if !ops.iter().any(|op| op.as_str() == Some("verify")) => {
            return Ok(None);
        }
        None | Some(Value::Array(_)) => {}
        Some(_) => return Err(Refusal::Unusable("its key_ops is not an array".into())),
    }
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) if kid.is_empty() => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(Refusal::Unusable("its kid is not a string".into())),
    };
    let alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => Some(algorithm(name)?),
        Some(_) => return Err(Refusal::Unusable("its alg is not a string".into())),
    };
    let key = key.map_err(|e| Refusal::Unusable(e.to_string()))?;
    if let Some(alg) = alg
        && !key.allows(alg)
    {
        return Err(Refusal::Unusable(format!(
            "its alg is {alg}, but it is {} (for {} only)",
            key.described(),
            names(key.kind().algorithms())
        )));
    }
    Ok(Some(JwksEntry { kid, alg, key }))
}

/// A key's `alg`, if it is one taken here.
fn algorithm(name: &str) -> Result<Algorithm, Refusal> {
    if let Some(alg) = Algorithm::parse(name) {
        return Ok(alg);
    }
    Err(Refusal::Unusable(match name {
        "none" => "its alg is none (unsigned tokens), which no key verifies".into(),
        "HS256" | "HS384" | "HS512" => format!(
            "its alg is {name}, an HMAC (shared-secret) algorithm; only public keys for {ACCEPTED} are accepted"
        ),
        other => format!(
            "its alg {} is not accepted; keys are taken for {ACCEPTED}",
            shown(other)
        ),
    }))
}

/// "RS256 or PS256".
fn names(algs: &[Algorithm]) -> String {
    algs.iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::keypair::{KeyPair, PrivateKey};

    fn key(alg: Algorithm) -> PublicKey {
        KeyPair::generate(alg).unwrap().public_key()
    }

    /// `key`'s JWK with these members added.
    fn jwk(key: &PublicKey, members: Value) -> Value {
        let mut jwk = key.jwk();
        for (name, value) in members.as_object().unwrap() {
            jwk[name] = value.clone();
        }
        jwk
    }

    fn set(keys: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({ "keys": keys })).unwrap()
    }

    /// Both parses of the same bytes.
    fn both(bytes: &[u8]) -> [Result<Jwks, JwksError>; 2] {
        [Jwks::parse(bytes), Jwks::parse_lenient(bytes)]
    }

    #[test]
    fn a_set_of_every_kind_parses_and_selects_by_kid() {
        let rsa = PrivateKey::generate(2048).unwrap().public_key();
        let (p256, p384, ed) = (
            key(Algorithm::ES256),
            key(Algorithm::ES384),
            key(Algorithm::EdDSA),
        );
        let bytes = set(vec![
            jwk(&rsa, json!({"kid": "rsa", "alg": "RS256", "use": "sig"})),
            jwk(&p256, json!({"kid": "p256"})),
            jwk(&p384, json!({"kid": "p384", "key_ops": ["verify"]})),
            jwk(&ed, json!({"kid": "ed", "alg": "EdDSA"})),
            // For encryption: left out by both parses.
            jwk(&key(Algorithm::ES256), json!({"kid": "enc", "use": "enc"})),
            jwk(
                &key(Algorithm::ES256),
                json!({"kid": "wrap", "key_ops": ["wrapKey"]}),
            ),
        ]);
        for jwks in both(&bytes) {
            let jwks = jwks.unwrap();
            assert_eq!(jwks.len(), 4);
            assert_eq!(
                jwks.keys()[0],
                JwksEntry {
                    kid: Some("rsa".into()),
                    alg: Some(Algorithm::RS256),
                    key: rsa.clone()
                }
            );
            assert_eq!(jwks.keys()[1].alg, None);
            assert_eq!(jwks.select(Some("rsa"), Algorithm::RS256), Ok(&rsa));
            assert_eq!(jwks.select(Some("p256"), Algorithm::ES256), Ok(&p256));
            assert_eq!(jwks.select(Some("p384"), Algorithm::ES384), Ok(&p384));
            assert_eq!(jwks.select(Some("ed"), Algorithm::EdDSA), Ok(&ed));

            // A kid that is not there; one that is there for another algorithm.
            let err = jwks.select(Some("enc"), Algorithm::ES256).unwrap_err();
            assert_eq!(err, SelectError::UnknownKid("enc".into()));
            assert_eq!(
                err.to_string(),
                "no key with kid \"enc\" in the issuer's key set"
            );
            assert!(err.is_missing());
            let err = jwks.select(Some("p256"), Algorithm::RS256).unwrap_err();
            assert_eq!(
                err.to_string(),
                "the issuer's key \"p256\" is a P-256 key for ES256 only; the token is signed with RS256"
            );
            assert!(!err.is_missing());
            // The RSA key's alg restricts it to RS256, though RSA keys verify PS256 too.
            let err = jwks.select(Some("rsa"), Algorithm::PS256).unwrap_err();
            assert_eq!(
                err.to_string(),
                "the issuer's key \"rsa\" is an RSA key for RS256 only; the token is signed with PS256"
            );

            // Without a kid: the one key for the algorithm.
            assert_eq!(jwks.select(None, Algorithm::ES384), Ok(&p384));
            assert_eq!(jwks.select(Some(""), Algorithm::EdDSA), Ok(&ed));
            assert_eq!(jwks.select(None, Algorithm::RS256), Ok(&rsa));
            assert_eq!(
                jwks.select(None, Algorithm::PS256),
                Err(SelectError::NoKeyFor(Algorithm::PS256))
            );
        }
    }

    #[test]
    fn without_a_kid_more_than_one_key_is_ambiguous() {
        let (a, b) = (key(Algorithm::ES256), key(Algorithm::ES256));
        let ed = key(Algorithm::EdDSA);
        let jwks = Jwks::parse(&set(vec![
            jwk(&a, json!({"kid": "a"})),
            jwk(&b, json!({"kid": "b"})),
            jwk(&ed, json!({})),
        ]))
        .unwrap();
        let err = jwks.select(None, Algorithm::ES256).unwrap_err();
        assert_eq!(
            err,
            SelectError::KidRequired {
                count: 2,
                alg: Algorithm::ES256
            }
        );
        assert_eq!(
            err.to_string(),
            "a kid is required: the issuer's key set has 2 keys for ES256"
        );
        assert!(!err.is_missing());
        assert_eq!(jwks.select(Some("b"), Algorithm::ES256), Ok(&b));
        // A key without a kid is found without one, and never by a kid.
        assert_eq!(jwks.select(None, Algorithm::EdDSA), Ok(&ed));
        assert_eq!(
            jwks.select(Some("ed"), Algorithm::EdDSA),
            Err(SelectError::UnknownKid("ed".into()))
        );
        let err = Jwks::parse(&set(vec![jwk(&a, json!({}))]))
            .unwrap()
            .select(None, Algorithm::EdDSA)
            .unwrap_err();
        assert_eq!(err.to_string(), "the issuer's key set has no key for EdDSA");
        assert!(err.is_missing());
    }

    #[test]
    fn private_and_secret_keys_are_refused_by_both_parses() {
        use rsa::traits::{PrivateKeyParts, PublicKeyParts};
        let b64 = |n: &rsa::BigUint| {
            use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
            URL_SAFE_NO_PAD.encode(n.to_bytes_be())
        };
        let good = key(Algorithm::ES256);
        let private = PrivateKey::generate(2048).unwrap();
        let rsa = private.rsa();
        // The private JWK as a library exports it, published by mistake.
        let leaked = json!({
            "kty": "RSA", "kid": "leaked", "use": "sig", "alg": "RS256",
            "n": b64(rsa.n()), "e": b64(rsa.e()), "d": b64(rsa.d()),
            "p": b64(&rsa.primes()[0]), "q": b64(&rsa.primes()[1]),
            "dp": b64(rsa.dp().unwrap()), "dq": b64(rsa.dq().unwrap()),
        });
        for jwks in both(&set(vec![jwk(&good, json!({"kid": "ok"})), leaked.clone()])) {
            let err = jwks.unwrap_err();
            assert!(err.is_secret());
            assert_eq!(
                err,
                JwksError::SecretKey {
                    at: KeyAt {
                        index: 1,
                        kid: Some("leaked".into())
                    },
                    error: PublicKeyError::JwkPrivate("d")
                }
            );
            assert_eq!(
                err.to_string(),
                "keys[1] (kid \"leaked\"): the JWK holds private key material (its d member); a key set may hold public keys only"
            );
        }
        // Even marked for encryption, a private key in the set is a leak.
        let mut enc = leaked;
        enc["use"] = "enc".into();
        for jwks in both(&set(vec![jwk(&good, json!({})), enc])) {
            assert!(jwks.unwrap_err().is_secret());
        }
        // A symmetric key: its secret is out in the open.
        let oct =
            json!({"kty": "oct", "kid": "hmac", "alg": "HS256", "k": "GawgguFyGrWKav7AX4VKUg"});
        for jwks in both(&set(vec![jwk(&good, json!({})), oct])) {
            let err = jwks.unwrap_err();
            assert!(err.is_secret(), "{err}");
            assert!(err.to_string().contains("kty oct"), "{err}");
        }
    }

    #[test]
    fn a_set_holds_at_most_a_hundred_keys() {
        let ed = key(Algorithm::EdDSA);
        let keys = |n: usize| -> Vec<Value> {
            (0..n)
                .map(|i| jwk(&ed, json!({ "kid": format!("k{i}") })))
                .collect()
        };
        for jwks in both(&set(keys(MAX_KEYS))) {
            assert_eq!(jwks.unwrap().len(), MAX_KEYS);
        }
        for jwks in both(&set(keys(101))) {
            let err = jwks.unwrap_err();
            assert_eq!(err, JwksError::TooManyKeys(101));
            assert_eq!(
                err.to_string(),
                "the key set has 101 keys; at most 100 are accepted"
            );
        }
        // Counted before anything is parsed: 10,000 entries of anything.
        let many = format!("{{\"keys\":[{}{{}}]}}", "{},".repeat(9_999));
        for jwks in both(many.as_bytes()) {
            assert_eq!(jwks.unwrap_err(), JwksError::TooManyKeys(10_000));
        }
    }

    #[test]
    fn algorithms_a_key_cannot_take_are_errors_given_and_skipped_fetched() {
        let rsa = PrivateKey::generate(2048).unwrap().public_key();
        let good = key(Algorithm::EdDSA);
        let cases = [
            (
                jwk(&rsa, json!({"kid": "n", "alg": "none"})),
                "keys[0] (kid \"n\"): its alg is none (unsigned tokens), which no key verifies",
            ),
            (
                jwk(&rsa, json!({"kid": "h", "alg": "HS256"})),
                "keys[0] (kid \"h\"): its alg is HS256, an HMAC (shared-secret) algorithm; only public keys for RS256, PS256, ES256, ES384 or EdDSA are accepted",
            ),
            (
                jwk(&rsa, json!({"kid": "r", "alg": "RS512"})),
                "keys[0] (kid \"r\"): its alg RS512 is not accepted; keys are taken for RS256, PS256, ES256, ES384 or EdDSA",
            ),
            (
                jwk(&rsa, json!({"kid": "m", "alg": "ES256"})),
                "keys[0] (kid \"m\"): its alg is ES256, but it is an RSA key (for RS256 or PS256 only)",
            ),
            (
                jwk(&rsa, json!({"kid": "x", "alg": 256})),
                "keys[0] (kid \"x\"): its alg is not a string",
            ),
            (
                json!({"kty": "EC", "crv": "P-521", "kid": "c", "x": "AA", "y": "AA"}),
                "keys[0] (kid \"c\"): the EC public key is on curve P-521 (secp521r1); only P-256 and P-384 are accepted",
            ),
            (
                json!({"kty": "DSA", "kid": "d"}),
                "keys[0] (kid \"d\"): the JWK's key type (kty) DSA is not supported; only RSA, EC (P-256, P-384) and OKP (Ed25519) keys are accepted",
            ),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "x": "not base64!"}),
                "keys[0]: the JWK's x member is not base64url",
            ),
            (json!("RSA"), "keys[0]: the JWK is not a JSON object"),
            (
                jwk(&good, json!({"kid": 7})),
                "keys[0]: its kid is not a string",
            ),
            (
                jwk(&good, json!({"use": ["sig"]})),
                "keys[0]: its use is not a string",
            ),
            (
                jwk(&good, json!({"key_ops": "verify"})),
                "keys[0]: its key_ops is not an array",
            ),
            (
                jwk(&good, json!({"kid": "bad\nline", "alg": "HS256"})),
                "keys[0] (kid \"bad\\nline\"): its alg is HS256, an HMAC (shared-secret) algorithm; only public keys for RS256, PS256, ES256, ES384 or EdDSA are accepted",
            ),
        ];
        for (bad, message) in cases {
            let bytes = set(vec![bad.clone(), jwk(&good, json!({"kid": "good"}))]);
            let err = Jwks::parse(&bytes).unwrap_err();
            assert!(matches!(err, JwksError::BadKey { .. }), "{err:?}");
            assert_eq!(err.to_string(), message);
            // Fetched: left out, the good key stays.
            let jwks = Jwks::parse_lenient(&bytes).unwrap();
            assert_eq!(jwks.len(), 1, "{bad}");
            assert_eq!(jwks.select(Some("good"), Algorithm::EdDSA), Ok(&good));
            // With nothing else, nothing usable remains.
            let err = Jwks::parse_lenient(&set(vec![bad.clone(), bad])).unwrap_err();
            assert_eq!(err, JwksError::NoUsableKey(2));
        }
        assert_eq!(
            JwksError::NoUsableKey(3).to_string(),
            "none of the key set's 3 keys can verify signatures here: keys must be signing keys (use sig) for RS256, PS256, ES256, ES384 or EdDSA"
        );
        // A set of encryption keys only has nothing usable, strict or not.
        let enc = set(vec![jwk(&good, json!({"use": "enc"}))]);
        for jwks in both(&enc) {
            assert_eq!(jwks.unwrap_err(), JwksError::NoUsableKey(1));
        }
    }

    #[test]
    fn sets_out_of_shape_are_refused() {
        for (bytes, expected) in [
            (&b"{\"keys\":"[..], "the key set is not JSON: "),
            (b"\xff\xfe", "the key set is not JSON: "),
            (b"{}", "the key set is not a JSON object with a keys array"),
            (
                b"{\"keys\":{}}",
                "the key set is not a JSON object with a keys array",
            ),
            (b"[]", "the key set is not a JSON object with a keys array"),
            (b"{\"keys\":[]}", "the key set has no keys"),
        ] {
            for jwks in both(bytes) {
                let err = jwks.unwrap_err().to_string();
                assert!(err.starts_with(expected), "{err}");
            }
        }
    }

    #[test]
    fn a_kid_names_one_key_per_algorithm() {
        let (a, b) = (key(Algorithm::ES256), key(Algorithm::ES256));
        let ed = key(Algorithm::EdDSA);
        let duplicate = set(vec![
            jwk(&a, json!({"kid": "same"})),
            jwk(&b, json!({"kid": "same"})),
        ]);
        let err = Jwks::parse(&duplicate).unwrap_err();
        assert_eq!(
            err.to_string(),
            "two keys have kid \"same\" and both verify ES256; a kid must name one key"
        );
        // Fetched, the first one is taken.
        let jwks = Jwks::parse_lenient(&duplicate).unwrap();
        assert_eq!(jwks.select(Some("same"), Algorithm::ES256), Ok(&a));
        // One kid over keys of different algorithms is allowed (RFC 7517 §4.5).
        let mixed = Jwks::parse(&set(vec![
            jwk(&a, json!({"kid": "same"})),
            jwk(&ed, json!({"kid": "same"})),
        ]))
        .unwrap();
        assert_eq!(mixed.select(Some("same"), Algorithm::EdDSA), Ok(&ed));
        assert_eq!(mixed.select(Some("same"), Algorithm::ES256), Ok(&a));
        // An empty kid is no kid.
        let jwks = Jwks::parse(&set(vec![jwk(&a, json!({"kid": ""}))])).unwrap();
        assert_eq!(jwks.keys()[0].kid, None);
    }
}
