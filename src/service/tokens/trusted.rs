//! Keyless machine identity at the token endpoint: an outside issuer's token (a Kubernetes
//! service-account token, a GitHub Actions OIDC token, a SPIFFE JWT-SVID, …) exchanged for an
//! access token of the machine user a trust names — as the RFC 7523 `assertion` or the
//! RFC 8693 `subject_token`.
//!
//! Order of checks: nothing about the trusts of an issuer is told before the token's signature
//! is verified with that issuer's keys; then every check that fails says which.
use chrono::{DateTime, Utc};

use super::{OAuthError, Obtained, TokenResponse, claim_error};
use crate::{
    domain::{
        jwt::{Algorithm, UnverifiedJwt},
        text::shown,
    },
    service::{Services, throttle, trusts::TrustEntry},
};

/// Whether `iss` can name a trusted issuer (a URL): key assertions name a user id there.
fn names_an_issuer(iss: &str) -> bool {
    iss.contains(':')
}

impl Services {
    /// The access token for an outside token, when the token's `iss` is an issuer some trust
    /// names; `None` when it is not (a key assertion), so the key grant goes on.
    pub(super) async fn trusted_grant(
        &self,
        jwt: &UnverifiedJwt,
        alg: Algorithm,
        scopes: &[String],
        charged: &mut Vec<throttle::Subject>,
        peer: Option<std::net::IpAddr>,
        dpop_jkt: Option<&str>,
    ) -> Result<Option<TokenResponse>, OAuthError> {
        let Some(iss) = jwt.str_claim("iss").filter(|i| names_an_issuer(i)) else {
            return Ok(None);
        };
        throttle::charge_credential(charged, iss);
        let trusts = self.cached_trusts(iss).await?;
        if trusts.is_empty() {
            return Err(OAuthError::grant(format!(
                "no machine user trusts issuer {} (iss); add a trust for it, or sign the assertion with a machine key",
                shown(iss)
            )));
        }
        let kid = jwt.kid().ok();
        // The signature first, with the keys of the sources the issuer's trusts name (one,
        // unless trusts carry keys of their own).
        let mut verified: Vec<&TrustEntry> = Vec::new();
        let mut why = String::new();
        let mut checked: Vec<(&crate::service::issuer_keys::KeySource, bool)> = Vec::new();
        for t in trusts.iter() {
            let signed = match checked.iter().find(|(source, _)| **source == t.source) {
                Some((_, signed)) => *signed,
                None => {
                    let signed = match self.issuer_keys.key_for(&t.source, kid, alg).await {
                        Ok(key) => jwt
                            .verify(&key, kid.unwrap_or("(none)"))
                            .map_err(|e| why = e.to_string())
                            .is_ok(),
                        Err(e) => {
                            why = e.to_string();
                            false
                        }
                    };
                    checked.push((&t.source, signed));
                    signed
                }
            };
            if signed {
                verified.push(t);
            }
        }
        if verified.is_empty() {
            return Err(OAuthError::grant(format!(
                "the token is not signed by a key of issuer {}: {why}",
                shown(iss)
            )));
        }
        // Times: exp required; nbf and iat within the clock skew.
        let now = self.clock.now();
        let skew = self.settings.clock_skew;
        let exp = jwt.time_claim("exp").map_err(claim_error)?.ok_or_else(|| {
            OAuthError::grant("the token has no exp; tokens without an expiry are not exchanged")
        })?;
        let exp_at = DateTime::<Utc>::from_timestamp(exp, 0)
            .ok_or_else(|| OAuthError::grant("the token's exp is out of range"))?;
        if exp_at + skew <= now {
            return Err(OAuthError::grant(format!(
                "the token expired at {}",
                exp_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        for claim in ["nbf", "iat"] {
            if let Some(t) = jwt.time_claim(claim).map_err(claim_error)?
                && DateTime::<Utc>::from_timestamp(t, 0).is_none_or(|t| t > now + skew)
            {
                return Err(OAuthError::grant(format!(
                    "the token's {claim} is in the future (beyond the clock skew of {} s)",
                    skew.num_seconds()
                )));
            }
        }
        // Which trust: the subject's most specific match, then audience and claims.
        let sub = jwt
            .str_claim("sub")
            .ok_or_else(|| OAuthError::grant("the token has no sub"))?;
        let mut by_subject: Vec<(usize, &TrustEntry)> = verified
            .iter()
            .filter_map(|t| t.rule.subject_match(sub).map(|m| (m, *t)))
            .collect();
        if by_subject.is_empty() {
            return Err(OAuthError::grant(format!(
                "no trust of issuer {} matches the token's sub {}",
                shown(iss),
                shown(sub)
            )));
        }
        by_subject.sort_by_key(|(m, _)| std::cmp::Reverse(*m));
        let audience = jwt.audience();
        let claims = serde_json::Value::Object(jwt.claims.clone());
        let mut first_mismatch = None;
        let mut matching: Vec<(usize, &TrustEntry)> = Vec::new();
        for (m, t) in &by_subject {
            match t.rule.mismatch(&audience, &claims) {
                None => matching.push((*m, t)),
                Some(why) => {
                    first_mismatch.get_or_insert(why);
                }
            }
        }
        let Some(&(best, trust)) = matching.first() else {
            return Err(OAuthError::grant(first_mismatch.unwrap_or_default()));
        };
        if matching.iter().filter(|(m, _)| *m == best).count() > 1 {
            return Err(OAuthError::grant(
                "the token matches trusts of more than one machine user equally; make their subjects or claims tell them apart",
            ));
        }
        let row = &trust.model;
        let user = self.cached_user(&row.user_id).await?.ok_or_else(|| {
            OAuthError::grant(format!("the trust's user {} does not exist", row.user_id))
        })?;
        let now = self.now();
        let mut not_after = now + self.settings.access_token_lifetime;
        if let Some(secs) = row.max_token_lifetime_secs {
            not_after = not_after.min(now + chrono::Duration::seconds(secs));
        }
        if row.cap_at_token_expiry {
            not_after = not_after.min(exp_at);
        }
        // An outside token's jti is accepted once; one without jti can be exchanged again
        // until it expires (SPIFFE JWT-SVIDs often carry none).
        let jti = self.jti_entry(jwt, &format!("trust:{iss}"), exp);
        let by = Obtained {
            id: &row.id,
            via_trust: true,
            not_after,
            jti,
            peer,
            dpop_jkt,
        };
        self.issue(&user, scopes.to_vec(), by).await.map(Some)
    }
}
