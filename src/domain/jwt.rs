//! Compact JWS (RFC 7515) for the JWT-profile grant (RFC 7523): parsing untrusted tokens,
//! verifying RS256/PS256 signatures, checking the time and audience rules, and signing our
//! own tokens with RS256. Every refusal says which check failed.
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    keypair::{PublicKey, SigningKey},
    text::shown,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RS256,
    PS256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
        }
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
}

#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    /// The media type (RFC 7515 §4.1.9).
    #[serde(default)]
    pub typ: Option<String>,
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
            "RS256" => Ok(Algorithm::RS256),
            "PS256" => Ok(Algorithm::PS256),
            "none" | "" => Err(JwtError::Algorithm(
                "unsigned JWTs (alg none) are not accepted; sign with RS256 or PS256".into(),
            )),
            other => Err(JwtError::Algorithm(format!(
                "algorithm {} is not accepted; sign with RS256 or PS256",
                shown(other)
            ))),
        }
    }

    pub fn kid(&self) -> Result<&str, JwtError> {
        match self.header.kid.as_deref() {
            Some(k) if !k.is_empty() => Ok(k),
            _ => Err(JwtError::NoKid),
        }
    }

    /// Checks the signature with `key` under the header's algorithm.
    pub fn verify(&self, key: &PublicKey, key_id: &str) -> Result<(), JwtError> {
        let pss = self.algorithm()? == Algorithm::PS256;
        if key.verify(pss, self.signing_input.as_bytes(), &self.signature) {
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
    if !aud
        .iter()
        .any(|a| a.trim_end_matches('/') == issuer_trimmed)
    {
        let aud: Vec<_> = aud.iter().take(10).map(|a| shown(a)).collect();
        return Err(JwtError::Claims(format!(
            "aud {aud:?} does not contain the issuer {issuer}"
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

/// Signs `claims` with `key` (RS256 or PS256) under key id `kid`, with header `typ`.
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
        .sign(alg == Algorithm::PS256, input.as_bytes())
        .map_err(|e| SignError(e.to_string()))?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::OnceLock;

    use crate::domain::keypair::PrivateKey;

    fn private() -> &'static PrivateKey {
        static KEY: OnceLock<PrivateKey> = OnceLock::new();
        KEY.get_or_init(|| PrivateKey::generate(2048).unwrap())
    }

    fn key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::from_private(private()).unwrap())
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
    }
}
