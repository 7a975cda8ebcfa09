//! Trusts in outside issuers: which tokens of which issuer stand in for a key of one machine
//! user (authnkeys.v1 TrustService), and how a presented token is matched to one.
use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::{
    domain::text::shown,
    error::{Error, Result},
};

/// Limits on what a trust may hold.
pub const MAX_ISSUER_LEN: usize = 2048;
pub const MAX_SUBJECT_LEN: usize = 1024;
pub const MAX_AUDIENCE_LEN: usize = 1024;
pub const MAX_CLAIMS: usize = 16;
pub const MAX_CLAIM_LEN: usize = 512;
/// Trusts per machine user.
pub const MAX_TRUSTS_PER_USER: usize = 20;

/// A trust's rule: the token's `iss`, `sub` (exact, or a prefix before a trailing `*`), one
/// of its `aud`, and claims that must equal given values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRule {
    pub issuer: String,
    pub subject: String,
    pub audience: String,
    pub claims: BTreeMap<String, String>,
}

fn invalid(id: &'static str, message: String) -> Error {
    Error::invalid_argument(id, message)
}

impl TrustRule {
    /// Checks what a trust is added with.
    pub fn validate(&self) -> Result<()> {
        if self.issuer.is_empty() {
            return Err(invalid(
                "TRUST-Iss01",
                "issuer is required: the `iss` of the tokens to trust".into(),
            ));
        }
        if self.issuer.len() > MAX_ISSUER_LEN {
            return Err(invalid(
                "TRUST-Iss02",
                format!("issuer is longer than {MAX_ISSUER_LEN} characters"),
            ));
        }
        match url::Url::parse(&self.issuer) {
            Ok(u) if u.has_host() || u.scheme() == "spiffe" => {}
            _ => {
                return Err(invalid(
                    "TRUST-Iss03",
                    format!(
                        "issuer \"{}\" is not a URL (e.g. https://token.actions.githubusercontent.com)",
                        shown(&self.issuer)
                    ),
                ));
            }
        }
        if self.subject.is_empty() {
            return Err(invalid(
                "TRUST-Sub01",
                "subject is required: the token's `sub`, exact or ending in `*` for a prefix"
                    .into(),
            ));
        }
        if self.subject.len() > MAX_SUBJECT_LEN {
            return Err(invalid(
                "TRUST-Sub02",
                format!("subject is longer than {MAX_SUBJECT_LEN} characters"),
            ));
        }
        if self.subject.trim_end_matches('*').contains('*') || self.subject.ends_with("**") {
            return Err(invalid(
                "TRUST-Sub03",
                format!(
                    "subject \"{}\": `*` may only end the pattern (a prefix match)",
                    shown(&self.subject)
                ),
            ));
        }
        if self.subject == "*" {
            return Err(invalid(
                "TRUST-Sub04",
                "subject `*` would trust every token of the issuer; name a prefix at least".into(),
            ));
        }
        if self.audience.is_empty() {
            return Err(invalid(
                "TRUST-Aud01",
                "audience is required: a value the token's `aud` must contain".into(),
            ));
        }
        if self.audience.len() > MAX_AUDIENCE_LEN {
            return Err(invalid(
                "TRUST-Aud02",
                format!("audience is longer than {MAX_AUDIENCE_LEN} characters"),
            ));
        }
        if self.claims.len() > MAX_CLAIMS {
            return Err(invalid(
                "TRUST-Clm01",
                format!("at most {MAX_CLAIMS} claims may be required"),
            ));
        }
        for (name, value) in &self.claims {
            if name.is_empty() || name.len() > MAX_CLAIM_LEN || value.len() > MAX_CLAIM_LEN {
                return Err(invalid(
                    "TRUST-Clm02",
                    format!(
                        "claims: names must be 1–{MAX_CLAIM_LEN} characters, values at most {MAX_CLAIM_LEN}"
                    ),
                ));
            }
            if matches!(
                name.as_str(),
                "iss" | "sub" | "aud" | "exp" | "nbf" | "iat" | "jti"
            ) {
                return Err(invalid(
                    "TRUST-Clm03",
                    format!(
                        "claims: {name} is checked by issuer, subject, audience or the token's times, not as a claim"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// SHA-256 over the rule: two trusts with the same rule would make a token's user
    /// ambiguous, so the rule is unique.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::json!([self.issuer, self.subject, self.audience, self.claims]);
        hex(&Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// How specifically the rule matches `sub`: `None` when it does not; exact beats any
    /// prefix, a longer prefix a shorter one.
    pub fn subject_match(&self, sub: &str) -> Option<usize> {
        match self.subject.strip_suffix('*') {
            Some(prefix) => sub.starts_with(prefix).then_some(prefix.len()),
            None => (self.subject == sub).then_some(usize::MAX),
        }
    }

    /// Why a token with these claims does not meet the rule's audience and claims, if it
    /// does not (issuer and subject are matched before).
    pub fn mismatch(&self, audience: &[String], claims: &serde_json::Value) -> Option<String> {
        if !audience.contains(&self.audience) {
            return Some(format!(
                "the token's aud does not contain \"{}\", the audience the trust requires",
                shown(&self.audience)
            ));
        }
        for (name, want) in &self.claims {
            let got = match claims.get(name) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                    Some(v.to_string())
                }
                _ => None,
            };
            if got.as_deref() != Some(want.as_str()) {
                return Some(format!(
                    "the token's claim {} is {} where the trust requires \"{}\"",
                    shown(name),
                    got.map_or_else(|| "missing".to_owned(), |g| format!("\"{}\"", shown(&g))),
                    shown(want)
                ));
            }
        }
        None
    }
}

/// SHA-256 of an issuer, hex: how trusts are looked up.
pub fn issuer_hash(issuer: &str) -> String {
    hex(&Sha256::digest(issuer.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(subject: &str) -> TrustRule {
        TrustRule {
            issuer: "https://token.actions.githubusercontent.com".into(),
            subject: subject.into(),
            audience: "authn-keys".into(),
            claims: BTreeMap::from([("repository".into(), "acme/deploy".into())]),
        }
    }

    #[test]
    fn subjects_match_exactly_or_by_a_trailing_prefix() {
        assert_eq!(
            rule("repo:acme/deploy:ref:refs/heads/main")
                .subject_match("repo:acme/deploy:ref:refs/heads/main"),
            Some(usize::MAX)
        );
        assert_eq!(
            rule("repo:acme/deploy:*").subject_match("repo:acme/deploy:ref:refs/heads/main"),
            Some(17)
        );
        assert_eq!(
            rule("repo:acme/deploy:*").subject_match("repo:acme/other:ref"),
            None
        );
        assert_eq!(
            rule("repo:acme/deploy").subject_match("repo:acme/deploy:x"),
            None
        );
        for bad in ["repo:*:main", "*", "a**", "*a"] {
            assert!(rule(bad).validate().is_err(), "{bad}");
        }
        assert!(rule("repo:acme/*").validate().is_ok());
    }

    #[test]
    fn audience_and_claims_say_what_differs() {
        let r = rule("repo:acme/*");
        let claims = serde_json::json!({"repository": "acme/deploy"});
        assert_eq!(r.mismatch(&["authn-keys".into()], &claims), None);
        assert!(
            r.mismatch(&["other".into()], &claims)
                .unwrap()
                .contains("aud")
        );
        let wrong = serde_json::json!({"repository": "acme/evil"});
        assert!(
            r.mismatch(&["authn-keys".into()], &wrong)
                .unwrap()
                .contains("acme/evil")
        );
        assert!(
            r.mismatch(&["authn-keys".into()], &serde_json::json!({}))
                .unwrap()
                .contains("missing")
        );
    }

    #[test]
    fn rules_are_checked() {
        let mut r = rule("x");
        r.issuer = "not a url".into();
        assert_eq!(r.validate().unwrap_err().id, "TRUST-Iss03");
        let mut r = rule("x");
        r.claims.insert("sub".into(), "y".into());
        assert_eq!(r.validate().unwrap_err().id, "TRUST-Clm03");
        assert_ne!(rule("a*").fingerprint(), rule("a").fingerprint());
        assert_eq!(issuer_hash("x").len(), 64);
    }
}
