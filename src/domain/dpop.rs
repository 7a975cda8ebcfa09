//! DPoP proofs (RFC 9449): a JWT the client signs with its own key for each request, naming
//! the request (`htm`, `htu`), the access token it carries (`ath`) and, when the server asks
//! for one, the server's nonce. A token obtained with a proof is bound to the proof key's
//! RFC 7638 thumbprint (`jkt`) and works only with fresh proofs signed by that key.
//!
//! This module checks one proof against one request; remembering `jti`s across processes and
//! issuing nonces is the service's (`service::dpop`).
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use super::{
    jwt::{Algorithm, UnverifiedJwt},
    keypair::PublicKey,
    text::shown,
};

/// The proof's media type (RFC 9449 §4.2).
pub const PROOF_TYP: &str = "dpop+jwt";

/// The algorithms a proof may be signed with: asymmetric only, never `none` or HMAC.
pub const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::ES256,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
];

/// The longest proof read; a proof is a header with one public key and a few claims.
pub const MAX_PROOF_LEN: usize = 8192;

/// The longest `jti` remembered.
const MAX_JTI_LEN: usize = 256;

/// Why a proof was refused: a message saying which check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProofError(pub String);

fn refused(message: impl Into<String>) -> ProofError {
    ProofError(message.into())
}

/// What the request the proof came with is.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The HTTP method (`POST` for gRPC, gRPC-Web and Connect calls).
    pub method: &'a str,
    /// The request's external URL, without query and fragment.
    pub url: &'a str,
    /// The access token presented with the proof, at a protected resource (`ath` must hash
    /// it); `None` at the token endpoint.
    pub access_token: Option<&'a str>,
    /// Seconds since the epoch.
    pub now: i64,
    /// Tolerated clock difference, both ways, in seconds.
    pub skew: i64,
    /// How old a proof's `iat` may be, in seconds.
    pub max_age: i64,
}

/// A proof that passed every check but the server's own (replay and nonce).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 thumbprint of the proof's key.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    /// The server nonce the proof carries, if any.
    pub nonce: Option<String>,
}

impl Proof {
    /// Until when the proof could be presented again: what a replay check must remember.
    pub fn acceptable_until(&self, expected: &Expected<'_>) -> i64 {
        self.iat
            .saturating_add(expected.max_age)
            .saturating_add(expected.skew)
    }
}

/// `ath`: base64url(SHA-256(access token)).
pub fn token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// The form URLs are compared in (RFC 9449 §4.3 step 9, RFC 3986 §6.2.2–6.2.3): scheme and
/// host lowercased, default ports dropped, the path as parsed. `Err` for what is no absolute
/// http(s) URL, and for one with a query or fragment.
fn normalized(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{} is not a URL: {e}", shown(url)))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(format!("{} is not an http(s) URL", shown(url)));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "{} has a query or fragment; htu is the URL without them",
            shown(url)
        ));
    }
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!(
        "{}://{host}{port}{}",
        parsed.scheme(),
        parsed.path()
    ))
}

/// Checks `proof` against the request: its form (`typ`, an accepted `alg`, a public `jwk`),
/// its signature with that key, `jti`, `htm`, `htu`, `iat` and, at a protected resource,
/// `ath`. Every refusal says which check failed.
pub fn check(proof: &str, expected: &Expected<'_>) -> Result<Proof, ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(refused(format!(
            "the DPoP proof is longer than {MAX_PROOF_LEN} bytes"
        )));
    }
    let jwt = UnverifiedJwt::parse(proof)
        .map_err(|e| refused(format!("the DPoP proof is not a valid JWT: {e}")))?;
    if !jwt
        .header
        .typ
        .as_deref()
        // A media type without '/' stands for application/… (RFC 7515 §4.1.9).
        .map(|t| {
            t.get(..12)
                .filter(|p| p.eq_ignore_ascii_case("application/"))
                .map_or(t, |_| &t[12..])
        })
        .is_some_and(|t| t.eq_ignore_ascii_case(PROOF_TYP))
    {
        return Err(refused(format!(
            "the DPoP proof's typ must be {PROOF_TYP}, not {}",
            shown(jwt.header.typ.as_deref().unwrap_or("(none)"))
        )));
    }
    let accepted = || {
        ALGORITHMS
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let alg = match jwt.algorithm() {
        Ok(a) if ALGORITHMS.contains(&a) => a,
        _ => {
            return Err(refused(format!(
                "the DPoP proof is signed with {}; accepted are {} (never none or HMAC)",
                shown(&jwt.header.alg),
                accepted()
            )));
        }
    };
    let jwk = jwt
        .header
        .jwk
        .as_ref()
        .ok_or_else(|| refused("the DPoP proof's header has no jwk (the public key)"))?;
    let key = PublicKey::from_jwk(jwk)
        .map_err(|e| refused(format!("the DPoP proof's jwk is not accepted: {e}")))?;
    if !key.allows(alg) {
        return Err(refused(format!(
            "the DPoP proof's jwk is {} and cannot verify {alg}",
            key.described()
        )));
    }
    jwt.verify(&key, "of the DPoP proof's jwk")
        .map_err(|_| refused("the DPoP proof's signature does not verify with its jwk"))?;

    let jti = jwt
        .str_claim("jti")
        .filter(|j| !j.is_empty())
        .ok_or_else(|| refused("the DPoP proof has no jti"))?;
    if jti.len() > MAX_JTI_LEN {
        return Err(refused(format!(
            "the DPoP proof's jti is longer than {MAX_JTI_LEN} characters"
        )));
    }
    let htm = jwt
        .str_claim("htm")
        .ok_or_else(|| refused("the DPoP proof has no htm (the HTTP method)"))?;
    if htm != expected.method {
        return Err(refused(format!(
            "the DPoP proof's htm is {}, but the request is a {}",
            shown(htm),
            expected.method
        )));
    }
    let htu = jwt
        .str_claim("htu")
        .ok_or_else(|| refused("the DPoP proof has no htu (the request's URL)"))?;
    let htu = normalized(htu).map_err(|e| refused(format!("the DPoP proof's htu: {e}")))?;
    let target = normalized(expected.url).map_err(refused)?;
    if htu != target {
        return Err(refused(format!(
            "the DPoP proof's htu is {}, but the request is for {target}",
            shown(&htu)
        )));
    }
    let iat = jwt
        .time_claim("iat")
        .map_err(|e| refused(format!("the DPoP proof's {e}")))?
        .ok_or_else(|| refused("the DPoP proof has no iat"))?;
    if iat > expected.now.saturating_add(expected.skew) {
        return Err(refused(format!(
            "the DPoP proof's iat is {}s in the future (allowed clock skew {}s)",
            iat.saturating_sub(expected.now),
            expected.skew
        )));
    }
    if iat
        .saturating_add(expected.max_age)
        .saturating_add(expected.skew)
        < expected.now
    {
        return Err(refused(format!(
            "the DPoP proof was made {}s ago; proofs are accepted for {}s: make a new one for each request",
            expected.now.saturating_sub(iat),
            expected.max_age
        )));
    }
    if let Some(token) = expected.access_token {
        let ath = jwt.str_claim("ath").ok_or_else(|| {
            refused("the DPoP proof has no ath (the hash of the access token it is sent with)")
        })?;
        if ath.trim_end_matches('=') != token_hash(token) {
            return Err(refused(
                "the DPoP proof's ath is not the hash of the access token it is sent with",
            ));
        }
    }
    let nonce = match jwt.claims.get("nonce") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(n)) => Some(n.clone()),
        Some(_) => return Err(refused("the DPoP proof's nonce is not a string")),
    };
    Ok(Proof {
        jkt: key.thumbprint(),
        jti: jti.to_owned(),
        iat,
        nonce,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::keypair::{ClientSigningKey, KeyPair};
    use serde_json::{Value, json};

    /// Signs a proof with `key` (whose public JWK is `jwk`) and `header`/`claims` as given.
    pub(crate) fn sign(
        key: &ClientSigningKey,
        alg: Algorithm,
        header: Value,
        claims: Value,
    ) -> String {
        let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
        let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let input = format!("{h}.{c}");
        let sig = key.sign(alg, input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    struct Client {
        key: ClientSigningKey,
        jwk: Value,
        jkt: String,
        alg: Algorithm,
    }

    fn client(alg: Algorithm) -> Client {
        let pair = KeyPair::generate(alg).unwrap();
        let public = pair.public_key();
        Client {
            key: ClientSigningKey::from_pem(pair.private_pem().unwrap().expose()).unwrap(),
            jwk: public.jwk(),
            jkt: public.thumbprint(),
            alg,
        }
    }

    const URL: &str = "https://id.example.com/oauth/v2/token";
    const NOW: i64 = 1_800_000_000;

    fn expected() -> Expected<'static> {
        Expected {
            method: "POST",
            url: URL,
            access_token: None,
            now: NOW,
            skew: 30,
            max_age: 300,
        }
    }

    impl Client {
        fn proof(&self, claims: Value) -> String {
            self.proof_with(
                json!({"typ": "dpop+jwt", "alg": self.alg.as_str(), "jwk": self.jwk}),
                claims,
            )
        }
        fn proof_with(&self, header: Value, claims: Value) -> String {
            sign(&self.key, self.alg, header, claims)
        }
    }

    fn claims() -> Value {
        json!({"jti": "j1", "htm": "POST", "htu": URL, "iat": NOW})
    }

    fn with(mut v: Value, k: &str, x: Value) -> Value {
        if x.is_null() {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = x;
        }
        v
    }

    fn refusal(proof: &str, e: &Expected<'_>) -> String {
        check(proof, e).unwrap_err().0
    }

    #[test]
    fn a_good_proof_names_its_key() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let c = client(alg);
            let p = check(&c.proof(claims()), &expected()).unwrap();
            assert_eq!(p.jkt, c.jkt);
            if alg == Algorithm::EdDSA {
                // RFC 9864's name for it.
                let header = json!({"typ": "dpop+jwt", "alg": "Ed25519", "jwk": c.jwk});
                assert!(check(&c.proof_with(header, claims()), &expected()).is_ok());
            }
            assert_eq!(p.jti, "j1");
            assert_eq!(p.nonce, None);
            assert_eq!(p.acceptable_until(&expected()), NOW + 330);
        }
    }

    #[test]
    fn the_url_is_compared_in_normal_form() {
        let c = client(Algorithm::ES256);
        let htu = "HTTPS://ID.Example.com:443/oauth/v2/token";
        assert!(check(&c.proof(with(claims(), "htu", json!(htu))), &expected()).is_ok());
        for (htu, says) in [
            (
                "https://id.example.com/oauth/v2/token?x=1",
                "query or fragment",
            ),
            (
                "https://id.example.com/oauth/v2/token#f",
                "query or fragment",
            ),
            (
                "https://id.example.com/oauth/v2/introspect",
                "but the request is for",
            ),
            (
                "https://id.example.com:8443/oauth/v2/token",
                "but the request is for",
            ),
            ("/oauth/v2/token", "is not a URL"),
        ] {
            let m = refusal(&c.proof(with(claims(), "htu", json!(htu))), &expected());
            assert!(m.contains(says), "{htu}: {m}");
        }
    }

    #[test]
    fn every_claim_is_checked() {
        let c = client(Algorithm::ES256);
        let cases = [
            ("jti", Value::Null, "no jti"),
            ("jti", json!(""), "no jti"),
            ("jti", json!("x".repeat(300)), "longer than"),
            ("htm", json!("GET"), "htm is GET"),
            ("htm", Value::Null, "no htm"),
            ("htu", Value::Null, "no htu"),
            ("iat", Value::Null, "no iat"),
            ("iat", json!("soon"), "not a number"),
            ("iat", json!(NOW + 31), "in the future"),
            ("iat", json!(NOW - 331), "made 331s ago"),
            // Beyond what an i64 holds either way: refused, not an overflow.
            ("iat", json!(-1e20), "ago"),
            ("iat", json!(1e20), "in the future"),
            ("nonce", json!(5), "nonce is not a string"),
        ];
        for (claim, value, says) in cases {
            let m = refusal(&c.proof(with(claims(), claim, value.clone())), &expected());
            assert!(m.contains(says), "{claim}={value}: {m}");
        }
        assert!(
            check(
                &c.proof(with(claims(), "iat", json!(NOW - 330))),
                &expected()
            )
            .is_ok()
        );
        let p = check(&c.proof(with(claims(), "nonce", json!("n1"))), &expected()).unwrap();
        assert_eq!(p.nonce.as_deref(), Some("n1"));
    }

    #[test]
    fn ath_binds_the_proof_to_the_token() {
        let c = client(Algorithm::EdDSA);
        let at = Expected {
            access_token: Some("tok"),
            ..expected()
        };
        let good = with(claims(), "ath", json!(token_hash("tok")));
        assert!(check(&c.proof(good), &at).is_ok());
        let m = refusal(&c.proof(claims()), &at);
        assert!(m.contains("no ath"), "{m}");
        let other = with(claims(), "ath", json!(token_hash("other")));
        assert!(refusal(&c.proof(other), &at).contains("ath is not the hash"));
    }

    #[test]
    fn the_header_is_checked() {
        let c = client(Algorithm::ES256);
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": c.jwk});
        let m = refusal(
            &c.proof_with(with(header.clone(), "typ", json!("JWT")), claims()),
            &expected(),
        );
        assert!(m.contains("typ must be dpop+jwt"), "{m}");
        // The same media type, written in full.
        let full = with(header.clone(), "typ", json!("application/dpop+jwt"));
        assert!(check(&c.proof_with(full, claims()), &expected()).is_ok());
        // An extension that must be understood, and is not.
        let crit = with(header.clone(), "crit", json!(["exp"]));
        let m = refusal(&c.proof_with(crit, claims()), &expected());
        assert!(m.contains("crit"), "{m}");
        let m = refusal(
            &c.proof_with(with(header.clone(), "jwk", Value::Null), claims()),
            &expected(),
        );
        assert!(m.contains("no jwk"), "{m}");
        let mut private = c.jwk.clone();
        private["d"] = json!("AAAA");
        let m = refusal(
            &c.proof_with(with(header.clone(), "jwk", private), claims()),
            &expected(),
        );
        assert!(m.contains("jwk is not accepted"), "{m}");
        // Another key's jwk: the signature does not verify with it.
        let other = client(Algorithm::ES256);
        let m = refusal(
            &c.proof_with(with(header.clone(), "jwk", other.jwk), claims()),
            &expected(),
        );
        assert!(m.contains("does not verify"), "{m}");
        // alg none and HMAC, whatever the rest says.
        for alg in ["none", "HS256", "ES512"] {
            let h = URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&with(header.clone(), "alg", json!(alg))).unwrap());
            let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
            let m = refusal(&format!("{h}.{p}.c2ln"), &expected());
            assert!(m.contains("never none or HMAC"), "{alg}: {m}");
        }
        // An alg its key cannot verify.
        let m = refusal(
            &c.proof_with(with(header, "alg", json!("EdDSA")), claims()),
            &expected(),
        );
        assert!(m.contains("cannot verify EdDSA"), "{m}");
        assert!(refusal("not a jwt", &expected()).contains("not a valid JWT"));
        assert!(refusal(&"a".repeat(9000), &expected()).contains("longer than"));
    }
}
