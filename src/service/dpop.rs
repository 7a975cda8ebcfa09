//! DPoP (RFC 9449) on our side: checking a request's proof (the proof itself in
//! [`crate::domain::dpop`]), remembering its `jti` across processes, and the server nonces.
//!
//! Nonces are stateless: `base64url(period || HMAC-SHA256(key, period))`, the key derived
//! from the master key, so every process issues and accepts the same nonces without sharing
//! anything else. A nonce is good in its period and the next one (5 to 10 minutes).
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::hmac;

use super::{Services, auth::Scheme, signing::MasterKey, tokens::hash_token};
use crate::{
    domain::{
        dpop::{self, ALGORITHMS, Expected, Proof},
        text::shown,
    },
    error::{Challenge, Error},
};

/// How long after its `iat` a proof is accepted (plus the clock skew): long enough for a
/// request's round trip, short enough that a captured proof is soon worthless. Clients make a
/// new proof for each request anyway.
pub const PROOF_MAX_AGE_SECS: i64 = 300;

/// The period of a nonce.
const NONCE_PERIOD_SECS: i64 = 300;

/// Where the server asks for its nonce in proofs (`AUTHN_KEYS_DPOP_NONCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NonceMode {
    /// Never.
    Off,
    /// At the token endpoint (RFC 9449 §8): a proof made in advance cannot obtain tokens.
    Token,
    /// At the token endpoint and on every API call (§9).
    All,
}

/// The nonce key and where nonces are asked for.
pub struct Dpop {
    key: hmac::Key,
    mode: NonceMode,
}

impl std::fmt::Debug for Dpop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dpop")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Why a request's DPoP proof was not accepted.
#[derive(Debug)]
pub enum Refusal {
    /// The proof is missing where it must be, malformed, or fails a check: `invalid_dpop_proof`.
    Invalid(String),
    /// The proof lacks the server's current nonce: `use_dpop_nonce`, with the nonce to use.
    UseNonce(String, String),
    /// The server could not check it (the replay store failed).
    Failed(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Failed(e)
    }
}

/// Where a request went, for a proof's `htm` and `htu`: the HTTP method and path of a REST
/// call; `POST` and the method path of a gRPC, gRPC-Web or Connect call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    pub method: &'static str,
    pub path: String,
}

/// The `algs` a 401 names (RFC 9449 §7.1).
fn algs() -> String {
    crate::domain::jwt::accepted_names(&ALGORITHMS).join(" ")
}

/// The challenge of a 401 at a protected resource: `DPoP error="…"`, with the nonce to use.
pub fn challenge(error: &str, description: &str, nonce: Option<String>) -> Challenge {
    Challenge {
        www_authenticate: format!(
            "DPoP error=\"{error}\", error_description=\"{}\", algs=\"{}\"",
            quotable(description),
            algs()
        ),
        dpop_nonce: nonce,
    }
}

/// `description` as the inside of a header's quoted-string: visible ASCII only (a header value
/// cannot carry more, and one that fails to parse would drop the whole challenge), without
/// quotes or backslashes. The messages are ours, but they may quote a value from the request.
fn quotable(description: &str) -> String {
    description
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// RFC 6750 §3 and RFC 9449 §7.1: a refusal of the APIs' authentication that carries no
/// challenge of its own gets one — `invalid_token` under the scheme the token came with, and
/// both schemes, without an error, when no usable `authorization` header came at all.
pub(crate) fn token_challenge(e: Error, scheme: Option<Scheme>) -> Error {
    if e.kind != crate::error::Kind::Unauthenticated || e.challenge.is_some() {
        return e;
    }
    let www_authenticate = match scheme {
        Some(Scheme::Dpop) => {
            let c = challenge("invalid_token", &e.message, None);
            return e.with_challenge(c);
        }
        Some(Scheme::Bearer) => format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\", DPoP algs=\"{}\"",
            quotable(&e.message),
            algs()
        ),
        None => format!("Bearer, DPoP algs=\"{}\"", algs()),
    };
    e.with_challenge(Challenge {
        www_authenticate,
        dpop_nonce: None,
    })
}

impl Dpop {
    pub fn new(master: &MasterKey, mode: NonceMode) -> Self {
        Dpop {
            key: hmac::Key::new(
                hmac::HMAC_SHA256,
                &master.derive("authn-keys dpop nonces v1"),
            ),
            mode,
        }
    }

    fn nonce_for(&self, period: i64) -> String {
        let period = period.to_be_bytes();
        let tag = hmac::sign(&self.key, &period);
        let mut raw = [0u8; 40];
        raw[..8].copy_from_slice(&period);
        raw[8..].copy_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The nonce to hand out now.
    pub fn nonce(&self, now: i64) -> String {
        self.nonce_for(now.div_euclid(NONCE_PERIOD_SECS))
    }

    /// Whether `nonce` is one of ours of this period or the last.
    fn nonce_valid(&self, nonce: &str, now: i64) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Ok(period) = <[u8; 8]>::try_from(raw.get(..8).unwrap_or_default()) else {
            return false;
        };
        let period = i64::from_be_bytes(period);
        let current = now.div_euclid(NONCE_PERIOD_SECS);
        if period != current && period != current - 1 {
            return false;
        }
        hmac::verify(&self.key, &raw[..8], &raw[8..]).is_ok()
    }

    /// Whether proofs at the token endpoint (`token`) or at the API must carry a nonce.
    pub fn nonce_required(&self, token: bool) -> bool {
        match self.mode {
            NonceMode::Off => false,
            NonceMode::Token => token,
            NonceMode::All => true,
        }
    }

    /// A fresh nonce for an answer, when nonces are in use there.
    pub fn nonce_to_offer(&self, token: bool, now: i64) -> Option<String> {
        self.nonce_required(token).then(|| self.nonce(now))
    }
}

impl Services {
    /// Checks a request's DPoP proof: `headers` are the values of its `DPoP` headers (none
    /// or exactly one), `url` the request's external URL, `access_token` the token it carries
    /// (at the API) or `None` (at the token endpoint). `Ok(None)` when there is no proof.
    pub(crate) async fn dpop_proof(
        &self,
        headers: &[String],
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<Option<Proof>, Refusal> {
        let proof = match headers {
            [] => return Ok(None),
            [one] => one.trim(),
            _ => {
                return Err(Refusal::Invalid(
                    "more than one DPoP header: send exactly one proof".into(),
                ));
            }
        };
        let now = self.clock.now().timestamp();
        let expected = Expected {
            method,
            url,
            access_token,
            now,
            skew: self.settings.clock_skew.num_seconds(),
            max_age: PROOF_MAX_AGE_SECS,
        };
        let proof = dpop::check(proof, &expected).map_err(|e| Refusal::Invalid(e.0))?;
        if self.dpop.nonce_required(access_token.is_none()) {
            let fresh = || self.dpop.nonce(now);
            match proof.nonce.as_deref() {
                None => {
                    return Err(Refusal::UseNonce(
                        "the server asks for its nonce in DPoP proofs: use the DPoP-Nonce header's value as the proof's nonce".into(),
                        fresh(),
                    ));
                }
                Some(n) if !self.dpop.nonce_valid(n, now) => {
                    return Err(Refusal::UseNonce(
                        format!(
                            "the DPoP proof's nonce {} is not current: use the DPoP-Nonce header's value",
                            shown(n)
                        ),
                        fresh(),
                    ));
                }
                Some(_) => {}
            }
        }
        // One space per key: a jti is the proof's own, not a global name.
        let id = hash_token(&format!("dpop:{}:{}", proof.jkt, proof.jti));
        let until = chrono::DateTime::from_timestamp(proof.acceptable_until(&expected), 0)
            .unwrap_or_else(chrono::Utc::now);
        if !self.spend_once(&id, until).await? {
            return Err(Refusal::Invalid(
                "this DPoP proof was already used (its jti was seen before): make a new proof for each request".into(),
            ));
        }
        Ok(Some(proof))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dpop() -> Dpop {
        Dpop::new(
            &MasterKey::parse(&MasterKey::generate_text()).unwrap(),
            NonceMode::Token,
        )
    }

    #[test]
    fn nonces_last_two_periods_and_are_the_servers() {
        let d = dpop();
        let now = 1_800_000_123;
        let n = d.nonce(now);
        assert_eq!(n.len(), 54);
        assert!(d.nonce_valid(&n, now));
        assert!(d.nonce_valid(&n, now + NONCE_PERIOD_SECS));
        assert!(!d.nonce_valid(&n, now + 2 * NONCE_PERIOD_SECS));
        assert!(!d.nonce_valid(&n, now - NONCE_PERIOD_SECS));
        // Another server's key, a changed period, garbage.
        assert!(!dpop().nonce_valid(&n, now));
        let mut raw = URL_SAFE_NO_PAD.decode(&n).unwrap();
        raw[7] ^= 1;
        assert!(!d.nonce_valid(&URL_SAFE_NO_PAD.encode(&raw), now + NONCE_PERIOD_SECS));
        for junk in ["", "x", "!!!!", &n[..20]] {
            assert!(!d.nonce_valid(junk, now), "{junk}");
        }
    }

    #[test]
    fn challenges_quote_safely() {
        let c = challenge("invalid_dpop_proof", "bad \"x\"\n", Some("n".into()));
        assert_eq!(
            c.www_authenticate,
            "DPoP error=\"invalid_dpop_proof\", error_description=\"bad x\", algs=\"ES256 EdDSA Ed25519 RS256 PS256\""
        );
        assert_eq!(c.dpop_nonce.as_deref(), Some("n"));
        // What a header cannot carry becomes '?', so the challenge is never dropped.
        let c = challenge(
            "invalid_dpop_proof",
            "htu https://bücher.example/… is not",
            None,
        );
        assert!(
            c.www_authenticate
                .contains("htu https://b?cher.example/? is not")
        );
        assert!(http::HeaderValue::from_str(&c.www_authenticate).is_ok());
        assert!(dpop().nonce_required(true) && !dpop().nonce_required(false));
    }
}
