//! Compact JWS (RFC 7515) for the JWT-profile grant (RFC 7523): parsing untrusted tokens,
//! verifying RS256/PS256/ES256/ES384/EdDSA signatures, checking the time and audience rules,
//! and signing our own tokens (RS256, ES256 or EdDSA, by the signing key's kind). Every
//! refusal says which check failed.
use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    keypair::{self, ClientSigningKey, PublicKey, SigningKey},
    text::shown,
};

/// The JWS algorithms assertions may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    PS256,
    ES256,
    ES384,
    EdDSA,
}

/// The accepted algorithms, for messages.
const ACCEPTED: &str = "RS256, PS256, ES256, ES384 or EdDSA";

impl Algorithm {
    pub const ALL: [Algorithm; 5] = [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The algorithm named exactly `name` (JWS names are case-sensitive).
    pub fn parse(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// The names under which `algs` are accepted, for discovery and challenges: each one's own,
/// and RFC 9864's `Ed25519` beside `EdDSA` (both are read as EdDSA).
pub fn accepted_names(algs: &[Algorithm]) -> Vec<&'static str> {
    let mut names = Vec::with_capacity(algs.len() + 1);
    for a in algs {
        names.push(a.as_str());
        if *a == Algorithm::EdDSA {
            names.push("Ed25519");
        }
    }
    names
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the assertion is not a valid JWT: {0}")]
    Malformed(String),
    #[error("{0}")]
    Algorithm(String),
    #[error("the JWT header has no kid (key id)")]
    NoKid,
    #[error("the signature does not verify with key {0}")]
    Signature(String),
    #[error("{0}")]
    Claims(String),
    #[error("{0}")]
    Key(String),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    /// The media type (RFC 7515 §4.1.9).
    #[serde(default)]
    pub typ: Option<String>,
    /// A public key carried in the header (RFC 7515 §4.1.3): DPoP proofs name their key so.
    #[serde(default)]
    pub jwk: Option<Value>,
    /// Extensions the recipient must understand (RFC 7515 §4.1.11); none is, so a JWT that
    /// names any is refused at parsing.
    #[serde(default)]
    pub crit: Option<Value>,
}

/// A JWT whose signature has not been checked yet.
#[derive(Debug, Clone)]
pub struct UnverifiedJwt {
    pub header: Header,
    pub claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed(format!("the {what} is not base64url")))
}

impl UnverifiedJwt {
    pub fn parse(token: &str) -> Result<Self, JwtError> {
        let token = token.trim();
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed(
                "expected three dot-separated parts".into(),
            ));
        };
        let header: Header = serde_json::from_slice(&b64(h, "header")?).map_err(|e| {
            JwtError::Malformed(format!("the header is not a JSON object with alg: {e}"))
        })?;
        if let Some(crit) = &header.crit {
            return Err(JwtError::Malformed(format!(
                "the header's crit {} names extensions that are not understood here (RFC 7515 §4.1.11)",
                crate::domain::text::shown(&crit.to_string())
            )));
        }
        let claims: Map<String, Value> = serde_json::from_slice(&b64(c, "payload")?)
            .map_err(|_| JwtError::Malformed("the payload is not a JSON object".into()))?;
        let signature = b64(s, "signature")?;
        Ok(UnverifiedJwt {
            header,
            claims,
            signing_input: format!("{h}.{c}"),
            signature,
        })
    }

    /// The algorithm, if it is one we accept.
    pub fn algorithm(&self) -> Result<Algorithm, JwtError> {
        match self.header.alg.as_str() {
            "none" | "" => Err(JwtError::Algorithm(format!(
                "unsigned JWTs (alg none) are not accepted; sign with {ACCEPTED}"
            ))),
            // RFC 9864's fully-specified name for EdDSA over Ed25519 (openid-client's default).
            "Ed25519" => Ok(Algorithm::EdDSA),
            other => Algorithm::parse(other).ok_or_else(|| {
                JwtError::Algorithm(format!(
                    "algorithm {} is not accepted; sign with {ACCEPTED}",
                    shown(other)
                ))
            }),
        }
    }

    pub fn kid(&self) -> Result<&str, JwtError> {
        match self.header.kid.as_deref() {
            Some(k) if !k.is_empty() => Ok(k),
            _ => Err(JwtError::NoKid),
        }
    }

    /// Checks the signature with `key` (named `key_id` in messages) under the header's
    /// algorithm, which must be one the key takes.
    pub fn verify(&self, key: &PublicKey, key_id: &str) -> Result<(), JwtError> {
        let alg = self.algorithm()?;
        let message = self.signing_input.as_bytes();
        if !key.allows(alg) {
            // The refusal costs a verification under `alg` all the same, as an unknown key id
            // does (against a decoy): its timing does not tell a key id of another kind from
            // one that does not exist.
            let _ = keypair::decoy_for(alg).verify(alg, message, &self.signature);
            let takes: Vec<&str> = key.kind().algorithms().iter().map(|a| a.as_str()).collect();
            return Err(JwtError::Algorithm(format!(
                "key {} is {} and verifies {} only; this assertion says {alg}",
                shown(key_id),
                key.described(),
                takes.join(" or ")
            )));
        }
        if key.verify(alg, message, &self.signature) {
            Ok(())
        } else {
            Err(JwtError::Signature(shown(key_id).to_string()))
        }
    }

    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A NumericDate claim (seconds, fractions allowed).
    pub fn time_claim(&self, name: &str) -> Result<Option<i64>, JwtError> {
        match self.claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| Some(f.floor() as i64))
                .ok_or_else(|| JwtError::Claims(format!("the {name} claim is not a number"))),
        }
    }

    /// `aud` as a list (a single string is a list of one).
    pub fn audience(&self) -> Vec<String> {
        match self.claims.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The time rules for assertions.
#[derive(Debug, Clone, Copy)]
pub struct TimeRules {
    pub now: DateTime<Utc>,
    /// Tolerated clock difference, both ways.
    pub skew: chrono::Duration,
    /// How old `iat` may be.
    pub max_age: chrono::Duration,
}

fn show(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| t.to_string())
}

/// The checked claims of a JWT-profile assertion (user grant or client assertion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// `iss` = `sub`: the user id, or the client id of an app.
    pub subject: String,
    /// When the assertion stops being acceptable: its `exp`, or earlier when its `iat` grows
    /// older than the max age. What a replay check must remember, so at most the max age
    /// (plus skew) from now, whatever `exp` says.
    pub expires_at: i64,
}

/// The endpoints (under `/oauth/v2/`) whose URL an assertion's `aud` may name instead of the
/// issuer.
const ASSERTION_ENDPOINTS: [&str; 3] = ["token", "introspect", "revoke"];

/// RFC 7523 §3 rules: iss and sub present and equal, aud contains `issuer`, exp in the future,
/// iat present and neither in the future nor too old, nbf (when present) not in the future (all
/// with skew).
pub fn check_assertion(
    jwt: &UnverifiedJwt,
    issuer: &str,
    rules: TimeRules,
) -> Result<Assertion, JwtError> {
    let iss = jwt
        .str_claim("iss")
        .ok_or_else(|| JwtError::Claims("the assertion has no iss claim".into()))?;
    let sub = jwt
        .str_claim("sub")
        .ok_or_else(|| JwtError::Claims("the assertion has no sub claim".into()))?;
    if iss != sub {
        return Err(JwtError::Claims(format!(
            "iss ({}) and sub ({}) differ; both must name the key's owner",
            shown(iss),
            shown(sub)
        )));
    }
    let aud = jwt.audience();
    let issuer_trimmed = issuer.trim_end_matches('/');
    // The issuer, or (RFC 7523 §3) the URL of one of its endpoints that take assertions:
    // clients name either.
    let names_this_server = |a: &str| {
        let a = a.trim_end_matches('/');
        a == issuer_trimmed
            || a.strip_prefix(issuer_trimmed)
                .and_then(|rest| rest.strip_prefix("/oauth/v2/"))
                .is_some_and(|endpoint| ASSERTION_ENDPOINTS.contains(&endpoint))
    };
    if !aud.iter().any(|a| names_this_server(a)) {
        let aud: Vec<_> = aud.iter().take(10).map(|a| shown(a)).collect();
        return Err(JwtError::Claims(format!(
            "aud {aud:?} does not contain the issuer {issuer} (or its token endpoint's URL)"
        )));
    }
    let now = rules.now.timestamp();
    let skew = rules.skew.num_seconds();
    let exp = jwt
        .time_claim("exp")?
        .ok_or_else(|| JwtError::Claims("the assertion has no exp claim".into()))?;
    if exp.saturating_add(skew) <= now {
        return Err(JwtError::Claims(format!(
            "the assertion expired at {}",
            show(exp)
        )));
    }
    let iat = jwt
        .time_claim("iat")?
        .ok_or_else(|| JwtError::Claims("the assertion has no iat claim".into()))?;
    if iat > now.saturating_add(skew) {
        return Err(JwtError::Claims(format!(
            "the assertion's iat {} is in the future (allowed clock skew {skew}s)",
            show(iat)
        )));
    }
    if let Some(nbf) = jwt.time_claim("nbf")?
        && nbf > now.saturating_add(skew)
    {
        return Err(JwtError::Claims(format!(
            "the assertion is not valid before {} (nbf; allowed clock skew {skew}s)",
            show(nbf)
        )));
    }
    let max_age = rules.max_age.num_seconds();
    if iat.saturating_add(max_age).saturating_add(skew) < now {
        return Err(JwtError::Claims(format!(
            "the assertion was issued at {}, more than {}s ago",
            show(iat),
            max_age
        )));
    }
    Ok(Assertion {
        subject: sub.to_string(),
        expires_at: exp.min(iat.saturating_add(max_age)),
    })
}

#[derive(Serialize)]
struct SignHeader<'a> {
    alg: &'static str,
    typ: &'a str,
    kid: &'a str,
}

#[derive(Debug, thiserror::Error)]
#[error("could not sign the JWT: {0}")]
pub struct SignError(String);

/// Signs `claims` with `key` under `alg`, which the key must take (its own
/// [`SigningKey::algorithm`], or PS256 for an RSA key), key id `kid` and header `typ`.
pub fn sign(
    alg: Algorithm,
    typ: &str,
    kid: &str,
    claims: &impl Serialize,
    key: &SigningKey,
) -> Result<String, SignError> {
    let header = serde_json::to_vec(&SignHeader {
        alg: alg.as_str(),
        typ,
        kid,
    })
    .map_err(|e| SignError(e.to_string()))?;
    let payload = serde_json::to_vec(claims).map_err(|e| SignError(e.to_string()))?;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = key
        .sign(alg, input.as_bytes())
        .map_err(|e| SignError(e.to_string()))?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// Signs `claims` as a client does, with the private key of a key file (its PEM: PKCS#1 RSA,
/// or PKCS#8 RSA, P-256, P-384 or Ed25519) under `alg`, key id `kid` and header `typ`: a
/// compact JWS, ECDSA signatures in the fixed-length r || s form. For tests and the load
/// generator; the server itself signs with [`sign`].
pub fn sign_with_pem(
    alg: Algorithm,
    typ: &str,
    kid: &str,
    claims: &Value,
    private_pem: &str,
) -> Result<String, JwtError> {
    let key = ClientSigningKey::from_pem(private_pem).map_err(|e| JwtError::Key(e.to_string()))?;
    sign_with_key(alg, typ, kid, claims, &key)
}

/// [`sign_with_pem`] with a key already read, for signing many assertions.
pub fn sign_with_key(
    alg: Algorithm,
    typ: &str,
    kid: &str,
    claims: &Value,
    key: &ClientSigningKey,
) -> Result<String, JwtError> {
    let header = serde_json::to_vec(&SignHeader {
        alg: alg.as_str(),
        typ,
        kid,
    })
    .map_err(|e| JwtError::Key(e.to_string()))?;
    let payload = serde_json::to_vec(claims).map_err(|e| JwtError::Key(e.to_string()))?;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = key
        .sign(alg, input.as_bytes())
        .map_err(|e| JwtError::Key(e.to_string()))?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::OnceLock;

    use crate::domain::keypair::{KeyPair, PrivateKey};

    fn private() -> &'static PrivateKey {
        static KEY: OnceLock<PrivateKey> = OnceLock::new();
        KEY.get_or_init(|| PrivateKey::generate(2048).unwrap())
    }

    fn key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::from_pair(&KeyPair::from(private().clone())).unwrap())
    }

    /// A key pair for `alg` (one per kind, made once) and its private PEM.
    fn pair(alg: Algorithm) -> (&'static PublicKey, &'static str) {
        static PAIRS: OnceLock<Vec<(Algorithm, PublicKey, String)>> = OnceLock::new();
        let pairs = PAIRS.get_or_init(|| {
            let rsa = KeyPair::from(private().clone());
            let ec256 = KeyPair::generate(Algorithm::ES256).unwrap();
            let ec384 = KeyPair::generate(Algorithm::ES384).unwrap();
            let ed = KeyPair::generate(Algorithm::EdDSA).unwrap();
            Algorithm::ALL
                .into_iter()
                .map(|alg| {
                    let pair = match alg {
                        Algorithm::RS256 | Algorithm::PS256 => &rsa,
                        Algorithm::ES256 => &ec256,
                        Algorithm::ES384 => &ec384,
                        Algorithm::EdDSA => &ed,
                    };
                    let pem = pair.private_pem().unwrap().expose().to_string();
                    (alg, pair.public_key(), pem)
                })
                .collect()
        });
        let (_, public, pem) = pairs.iter().find(|(a, ..)| *a == alg).unwrap();
        (public, pem)
    }

    /// `token` with its header's alg changed, payload and signature kept.
    fn with_alg(token: &str, alg: &str) -> String {
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[0]).unwrap()).unwrap();
        header["alg"] = alg.into();
        parts[0] = URL_SAFE_NO_PAD.encode(header.to_string());
        parts.join(".")
    }

    fn rules(now: i64) -> TimeRules {
        TimeRules {
            now: DateTime::from_timestamp(now, 0).unwrap(),
            skew: chrono::Duration::seconds(5),
            max_age: chrono::Duration::hours(1),
        }
    }

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "http://127.0.0.1:8080";

    fn claims(over: Value) -> Value {
        let mut base =
            json!({"iss": "u1", "sub": "u1", "aud": [ISSUER], "iat": NOW, "exp": NOW + 60});
        for (k, v) in over.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    }

    fn check(c: Value) -> Result<Assertion, JwtError> {
        let token = sign(Algorithm::RS256, "JWT", "k1", &c, key()).unwrap();
        let jwt = UnverifiedJwt::parse(&token).unwrap();
        jwt.verify(&private().public_key(), "k1")?;
        check_assertion(&jwt, ISSUER, rules(NOW))
    }

    #[test]
    fn rs256_and_ps256_sign_and_verify() {
        for alg in [Algorithm::RS256, Algorithm::PS256] {
            let token = sign(alg, "JWT", "k1", &claims(json!({})), key()).unwrap();
            let jwt = UnverifiedJwt::parse(&token).unwrap();
            assert_eq!(jwt.algorithm().unwrap(), alg);
            assert_eq!(jwt.kid().unwrap(), "k1");
            jwt.verify(&private().public_key(), "k1").unwrap();
        }
    }

    #[test]
    fn our_ec_and_ed25519_keys_sign_their_algorithm_only() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA] {
            let pair = KeyPair::generate(alg).unwrap();
            let key = SigningKey::from_pair(&pair).unwrap();
            let token = sign(alg, "at+jwt", "k2", &claims(json!({})), &key).unwrap();
            let jwt = UnverifiedJwt::parse(&token).unwrap();
            assert_eq!(jwt.algorithm().unwrap(), alg);
            assert_eq!(jwt.header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(jwt.kid().unwrap(), "k2");
            jwt.verify(&pair.public_key(), "k2").unwrap();
            check_assertion(&jwt, ISSUER, rules(NOW)).unwrap();
            // Another key of the same kind does not verify it.
            let other = KeyPair::generate(alg).unwrap().public_key();
            assert_eq!(
                jwt.verify(&other, "k2"),
                Err(JwtError::Signature("k2".into()))
            );
            // Nor does the key sign under another algorithm.
            for other in Algorithm::ALL.into_iter().filter(|a| *a != alg) {
                assert!(
                    sign(other, "JWT", "k2", &claims(json!({})), &key).is_err(),
                    "{alg} key signs {other}"
                );
            }
        }
    }

    #[test]
    fn tampered_or_foreign_signatures_fail() {
        let token = sign(Algorithm::RS256, "JWT", "k1", &claims(json!({})), key()).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(json!({"sub": "admin"}))).unwrap());
        parts[1] = &forged;
        let jwt = UnverifiedJwt::parse(&parts.join(".")).unwrap();
        assert_eq!(
            jwt.verify(&private().public_key(), "k1"),
            Err(JwtError::Signature("k1".into()))
        );
    }

    #[test]
    fn claim_rules_name_the_failed_check() {
        assert_eq!(check(claims(json!({}))).unwrap().subject, "u1");
        assert_eq!(
            check(claims(json!({"aud": ISSUER}))).unwrap().expires_at,
            NOW + 60
        );
        let err = |c| check(c).unwrap_err().to_string();
        assert!(err(claims(json!({"sub": "u2"}))).contains("differ"));
        assert!(
            err(claims(json!({"aud": "https://elsewhere"})))
                .contains("does not contain the issuer")
        );
        // The URL of an endpoint that takes assertions names this server too; others do not.
        for endpoint in ["token", "introspect", "revoke"] {
            let aud = format!("{ISSUER}/oauth/v2/{endpoint}");
            assert!(check(claims(json!({ "aud": aud }))).is_ok(), "{aud}");
        }
        for aud in [
            format!("{ISSUER}/oauth/v2/keys"),
            format!("{ISSUER}.evil/oauth/v2/token"),
            format!("{ISSUER}/oauth/v2/token/x"),
        ] {
            assert!(
                err(claims(json!({ "aud": aud }))).contains("does not contain"),
                "{aud}"
            );
        }
        assert!(err(claims(json!({"exp": NOW - 6}))).contains("expired"));
        assert!(
            check(claims(json!({"exp": NOW - 4}))).is_ok(),
            "within skew"
        );
        assert!(err(claims(json!({"iat": NOW + 6}))).contains("in the future"));
        assert!(err(claims(json!({"nbf": NOW + 6}))).contains("not valid before"));
        assert!(
            check(claims(json!({"nbf": NOW + 4}))).is_ok(),
            "nbf within skew"
        );
        assert!(check(claims(json!({"nbf": NOW - 600}))).is_ok());
        assert!(err(claims(json!({"nbf": "soon"}))).contains("nbf claim is not a number"));
        // Values from the assertion are escaped and bounded in the description.
        let forged = err(claims(
            json!({"sub": "u2\nINFO forged", "iss": "x".repeat(5000)}),
        ));
        assert!(
            !forged.contains('\n') && forged.contains("u2\\nINFO forged"),
            "{forged}"
        );
        assert!(forged.len() < 400, "{forged}");
        assert!(err(claims(json!({"iat": NOW - 3700}))).contains("ago"));
        assert!(err(claims(json!({"exp": null}))).contains("no exp"));
        assert!(err(claims(json!({"iat": "yesterday"}))).contains("not a number"));
        // An exp past i64 (or chrono's range) is far in the future, not an overflow; what
        // must be remembered of the assertion ends with its max age.
        for exp in [json!(1e300), json!(u64::MAX), json!(8_210_266_876_799i64)] {
            assert_eq!(
                check(claims(json!({"exp": exp}))).unwrap().expires_at,
                NOW + 3600
            );
        }
        assert!(err(claims(json!({"exp": -1e300}))).contains("expired"));
        assert!(err(claims(json!({"iat": -1e300}))).contains("ago"));
    }

    #[test]
    fn algorithm_names_are_exact() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.as_str()), Some(alg));
            assert_eq!(alg.to_string(), alg.as_str());
        }
        for name in [
            "es256", "EDDSA", "Ed25519", "ES512", "RS384", "HS256", "none", "", " RS256",
        ] {
            assert_eq!(Algorithm::parse(name), None, "{name:?}");
        }
    }

    #[test]
    fn every_algorithm_signs_and_verifies_and_tampering_fails() {
        for alg in Algorithm::ALL {
            let (public, pem) = pair(alg);
            let token = sign_with_pem(alg, "JWT", "k1", &claims(json!({})), pem).unwrap();
            let jwt = UnverifiedJwt::parse(&token).unwrap();
            assert_eq!(jwt.algorithm().unwrap(), alg);
            assert_eq!(jwt.header.typ.as_deref(), Some("JWT"));
            jwt.verify(public, "k1").unwrap();
            assert_eq!(
                check_assertion(&jwt, ISSUER, rules(NOW)).unwrap().subject,
                "u1"
            );

            // The claims changed under the signature.
            let mut parts: Vec<&str> = token.split('.').collect();
            let forged = URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&claims(json!({"sub": "admin"}))).unwrap());
            parts[1] = &forged;
            let jwt = UnverifiedJwt::parse(&parts.join(".")).unwrap();
            assert_eq!(
                jwt.verify(public, "k1"),
                Err(JwtError::Signature("k1".into())),
                "{alg}"
            );
            // One bit of the signature flipped; the signature cut short.
            let mut signature = URL_SAFE_NO_PAD
                .decode(token.rsplit('.').next().unwrap())
                .unwrap();
            signature[5] ^= 0x10;
            let input = token.rsplit_once('.').unwrap().0;
            for bad in [&signature[..], &signature[..signature.len() - 1]] {
                let jwt = UnverifiedJwt::parse(&format!("{input}.{}", URL_SAFE_NO_PAD.encode(bad)))
                    .unwrap();
                assert_eq!(
                    jwt.verify(public, "k1"),
                    Err(JwtError::Signature("k1".into())),
                    "{alg}"
                );
            }
            // Another key of the same kind.
            let other = match alg {
                Algorithm::RS256 | Algorithm::PS256 => {
                    PrivateKey::generate(2048).unwrap().public_key()
                }
                _ => KeyPair::generate(alg).unwrap().public_key(),
            };
            assert!(
                UnverifiedJwt::parse(&token)
                    .unwrap()
                    .verify(&other, "k1")
                    .is_err()
            );
        }
    }

    #[test]
    fn a_key_verifies_its_own_algorithms_only() {
        let token = sign_with_pem(
            Algorithm::ES256,
            "JWT",
            "k1",
            &claims(json!({})),
            pair(Algorithm::ES256).1,
        )
        .unwrap();
        let p256 = pair(Algorithm::ES256).0;
        for alg in Algorithm::ALL
            .into_iter()
            .filter(|a| *a != Algorithm::ES256)
        {
            let jwt = UnverifiedJwt::parse(&with_alg(&token, alg.as_str())).unwrap();
            assert_eq!(
                jwt.verify(p256, "k1"),
                Err(JwtError::Algorithm(format!(
                    "key k1 is a P-256 key and verifies ES256 only; this assertion says {alg}"
                )))
            );
        }
        for alg in [Algorithm::RS256, Algorithm::PS256] {
            let token = sign_with_pem(alg, "JWT", "k1", &claims(json!({})), pair(alg).1).unwrap();
            for (key, says) in [
                (
                    pair(Algorithm::ES384).0,
                    "is a P-384 key and verifies ES384 only",
                ),
                (
                    pair(Algorithm::EdDSA).0,
                    "is an Ed25519 key and verifies EdDSA only",
                ),
            ] {
                let err = UnverifiedJwt::parse(&token)
                    .unwrap()
                    .verify(key, "k9")
                    .unwrap_err();
                assert_eq!(
                    err.to_string(),
                    format!("key k9 {says}; this assertion says {alg}")
                );
            }
        }
        let eddsa = sign_with_pem(
            Algorithm::EdDSA,
            "JWT",
            "k1",
            &claims(json!({})),
            pair(Algorithm::EdDSA).1,
        )
        .unwrap();
        let err = UnverifiedJwt::parse(&eddsa)
            .unwrap()
            .verify(pair(Algorithm::RS256).0, "k1")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "key k1 is an RSA key and verifies RS256 or PS256 only; this assertion says EdDSA"
        );
        // A signer refuses to sign under an algorithm its key does not take.
        let err = sign_with_pem(
            Algorithm::ES384,
            "JWT",
            "k1",
            &json!({}),
            pair(Algorithm::ES256).1,
        )
        .unwrap_err();
        assert!(matches!(err, JwtError::Key(_)), "{err}");
        assert!(
            err.to_string().contains("P-256") && err.to_string().contains("ES384"),
            "{err}"
        );
        assert!(matches!(
            sign_with_pem(Algorithm::RS256, "JWT", "k1", &json!({}), "not a key"),
            Err(JwtError::Key(_))
        ));
    }

    /// Tokens signed elsewhere (OpenSSL, through Python's `cryptography`), with the public keys
    /// of keypair.rs's tests: ECDSA signatures in JWS's r || s form verify.
    #[test]
    fn tokens_signed_by_another_implementation_verify() {
        let vectors = [
            (
                "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPgrTaL4PLFPWudcM51NN98Sb3YEx\na/VhK0neEV/vI0Z9KjV/nUmsJ8BME7nlILPxTS2FDV3SA/FloBlqSSwIpA==\n-----END PUBLIC KEY-----\n",
                "eyJhbGciOiJFUzI1NiIsImtpZCI6ImludGVyb3AiLCJ0eXAiOiJKV1QifQ.eyJpc3MiOiJpbnRlcm9wIiwic3ViIjoiaW50ZXJvcCJ9.qAemruAxpm8HRpFazgRqUeS933FhyCBk8IaJd8zVTm3_cZUDZd_kkM8FXGY1zVRSeuq50vIUl_IKw0c5bU7lfw",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEoEh2uHPgvrVfOtBTkF1+MH9TpRl3tfhY\nhbnoA96Kh0/5wl8nCZgs9Vzds6cXN85w7623r4aqTAVgQPCDco/j4TkXbY7eaLwW\npmi1CvxmkqycSH/MqsSytLhbwgem/ZIb\n-----END PUBLIC KEY-----\n",
                "eyJhbGciOiJFUzM4NCIsImtpZCI6ImludGVyb3AiLCJ0eXAiOiJKV1QifQ.eyJpc3MiOiJpbnRlcm9wIiwic3ViIjoiaW50ZXJvcCJ9.v_Sp_df9WWOvlhE6KGKPztXV_JZ2GtJKBCkGToShzuRYzcB9JP5cfaf6iHkjuWWXT5w3D6s9URrzxB-6Fld1obD6_wFAD0amOJ19ZHnhVcba3krIJrmTZQ9jfIbpBFSD",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA4Du4PNgHMiUF/jdqklmhX30xE6BK9nXF8Far+k8lXfQ=\n-----END PUBLIC KEY-----\n",
                "eyJhbGciOiJFZERTQSIsImtpZCI6ImludGVyb3AiLCJ0eXAiOiJKV1QifQ.eyJpc3MiOiJpbnRlcm9wIiwic3ViIjoiaW50ZXJvcCJ9.CTixWa4otoeLekuZekK-04Bvgl_TzQKMzShyrkBwvT5Bo0SIo26tFwOvAB4E_PI39moGWb7CCF7X6aXSD8c_DQ",
            ),
        ];
        for (pem, token) in vectors {
            let key = PublicKey::from_pkix_pem(pem.as_bytes()).unwrap();
            let jwt = UnverifiedJwt::parse(token).unwrap();
            assert_eq!(jwt.kid().unwrap(), "interop");
            jwt.verify(&key, "interop").unwrap();
            assert!(
                jwt.verify(keypair::decoy_for(jwt.algorithm().unwrap()), "interop")
                    .is_err()
            );
        }
    }

    #[test]
    fn malformed_and_unsigned_tokens() {
        assert!(matches!(
            UnverifiedJwt::parse("abc"),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(
            UnverifiedJwt::parse("a.b.c.d"),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(
            UnverifiedJwt::parse("!!.e30.AA"),
            Err(JwtError::Malformed(_))
        ));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#)
        );
        let jwt = UnverifiedJwt::parse(&none).unwrap();
        assert!(
            jwt.algorithm()
                .unwrap_err()
                .to_string()
                .contains("alg none")
        );
        assert_eq!(jwt.kid(), Err(JwtError::NoKid));
        let hs = format!(
            "{}.e30.AA",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"1"}"#)
        );
        assert!(
            UnverifiedJwt::parse(&hs)
                .unwrap()
                .algorithm()
                .unwrap_err()
                .to_string()
                .contains("HS256")
        );
        for alg in ["HS256", "none", "ES512", "es256"] {
            let token = format!(
                "{}.e30.AA",
                URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "1"}).to_string())
            );
            let err = UnverifiedJwt::parse(&token)
                .unwrap()
                .algorithm()
                .unwrap_err();
            assert!(
                err.to_string()
                    .ends_with("sign with RS256, PS256, ES256, ES384 or EdDSA"),
                "{err}"
            );
        }
    }
}
