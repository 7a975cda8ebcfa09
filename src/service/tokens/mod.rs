//! The OAuth side: the JWT-profile grant (RFC 7523) that turns a machine key's assertion into
//! an access token, and verification of those tokens for the API.
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::net::IpAddr;

use super::{Services, cache::CachedKey, throttle};
use crate::{
    domain::{
        jwt::{self, JwtError, TimeRules, UnverifiedJwt},
        keypair,
        model::{AccessToken, AccessTokenType, AuthnKey, KeyUse, LastUse, OwnerKind, User},
        scope::{MAX_SCOPE_LEN, MAX_SCOPES, requested_projects},
        text::shown,
    },
    error::{Error, Result},
    storage::repo,
};

mod oauth_error;
mod records;
mod trusted;

pub use oauth_error::{OAuthError, OAuthErrorCode};
use records::RECORD_GONE;
pub use records::{ReplayGuard, TokenRecords};

pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// What obtained a token, for [`Services::issue`].
pub(super) struct Obtained<'a> {
    /// The key's id, or the trust's.
    pub id: &'a str,
    pub via_trust: bool,
    /// The token ends by then at the latest.
    pub not_after: DateTime<Utc>,
    /// The credential's `jti`, to remember until then.
    pub jti: Option<(String, DateTime<Utc>)>,
    pub peer: Option<IpAddr>,
    /// The thumbprint of the DPoP proof's key the token is to be bound to.
    pub dpop_jkt: Option<&'a str>,
}

/// A token request as the form carries it. Other fields (`client_id`, as ZITADEL's SDKs add
/// it) are ignored.
#[derive(Default, Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub assertion: Option<String>,
    pub scope: Option<String>,
    /// RFC 8693 token exchange: the outside token, its type, and what is asked for.
    pub subject_token: Option<String>,
    pub subject_token_type: Option<String>,
    pub requested_token_type: Option<String>,
    pub actor_token: Option<String>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// RFC 8693's answer to a token exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct AccessClaims {
    iss: String,
    sub: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: String,
    client_id: String,
    scope: String,
    #[serde(rename = "urn:zitadel:iam:user:resourceowner:id")]
    org_id: String,
    /// RFC 9449 §6.1: the key a DPoP-bound token is bound to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    cnf: Option<Confirmation>,
}

/// The `cnf` claim (RFC 7800) of a DPoP-bound token: its key's RFC 7638 thumbprint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: Vec<&'a str>,
    azp: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(rename = "urn:zitadel:iam:user:resourceowner:id")]
    org_id: &'a str,
}

pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The id of the record a token claims to be: the part before the dot of an opaque token
/// (`<id>.<secret>`), the `jti` of a JWT access token. Only a claim — the record holds the
/// token's hash, which decides. Records are found by their time-ordered id, so they append
/// to the table's one unique index instead of landing at random places in a hash index.
/// (Every bearer check comes here, so a JWT's payload is decoded for its `jti` alone, not
/// parsed whole as [`UnverifiedJwt::parse`] does with header, claims and signature.)
pub(crate) fn claimed_token_id(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Jti {
        jti: String,
    }
    let mut parts = token.split('.');
    let (first, second, third) = (parts.next()?, parts.next()?, parts.next());
    let id = match third {
        None => first.to_owned(),
        Some(_) if parts.next().is_none() => {
            let payload = URL_SAFE_NO_PAD.decode(second).ok()?;
            serde_json::from_slice::<Jti>(&payload).ok()?.jti
        }
        Some(_) => return None,
    };
    let plausible = (1..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit());
    plausible.then_some(id)
}

/// Whether two hex digests are equal, in time that does not depend on where they differ.
fn same_digest(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

fn claim_error(e: JwtError) -> OAuthError {
    OAuthError::grant(e.to_string())
}

/// The message for a kid that is unknown, or whose key does not verify the signature. The
/// two are not told apart, so nobody learns which key ids exist without holding the key.
pub(crate) fn unknown_key(kid: &str, what: &str) -> String {
    format!(
        "no {what} with key id (kid) {} verifies this assertion: the key id is unknown, the key was removed, or the assertion was signed with another key",
        shown(kid)
    )
}

/// Refuses a key that is disabled or expired, saying which (after the caller proved it holds
/// the key: only then is anything about the key told).
pub(crate) fn check_usable(key: &AuthnKey, kid: &str, now: DateTime<Utc>) -> Result<(), String> {
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if let Some(d) = &key.disabled {
        return Err(format!(
            "key {kid} is disabled (since {}); enable it again or sign with another key",
            at(d.at)
        ));
    }
    if key.expires_at <= now {
        return Err(format!("key {kid} expired at {}", at(key.expires_at)));
    }
    Ok(())
}

/// Why an assertion signed with one of our keys was refused.
pub(crate) enum KeyRefusal {
    /// No key of the owner kind asked for verifies it: the key id is unknown, the key was
    /// removed, or another key signed it (not told apart).
    Unknown,
    /// The key signed it, but it belongs to the other kind of owner.
    OtherKind,
    /// Signed by the key, but not acceptable: its algorithm, or a claim RFC 7523 rules out.
    Invalid(JwtError),
    Failed(Error),
}

/// The id under which an assertion's `jti` is remembered: one space per key.
fn assertion_id(kid: &str, jti: &str) -> String {
    hash_token(&format!("{}:{kid}{jti}", kid.len()))
}

impl Services {
    /// Signs `claims` as a JWT of type `typ` with the server's current signing key, under its
    /// algorithm (RS256, ES256 or EdDSA): ID tokens, JWT access tokens and JWT introspection
    /// answers all go through here.
    pub(crate) fn sign_jwt(
        &self,
        typ: &str,
        claims: &impl Serialize,
    ) -> Result<String, jwt::SignError> {
        let signer = self.signing.current();
        jwt::sign(
            signer.key.algorithm(),
            typ,
            &signer.kid,
            claims,
            &signer.key,
        )
    }

    /// Verifies an assertion signed with one of our keys, owned by a user or an app as `kind`
    /// asks (either when `None`): the key (from memory when possible), its signature, then
    /// RFC 7523's claims with the issuer as audience. Nothing about the key is told until the
    /// caller has proven it holds it, and an unknown key id costs what a known one does:
    /// remembered lookups and one signature check (against a decoy key when there is none).
    /// The JWT-profile grant, and client assertions at introspection and revocation, all
    /// verify their keys' assertions here.
    pub(crate) async fn verify_key_assertion(
        &self,
        jwt: &UnverifiedJwt,
        kid: &str,
        kind: Option<OwnerKind>,
    ) -> Result<(AuthnKey, jwt::Assertion), KeyRefusal> {
        let alg = jwt.algorithm().map_err(KeyRefusal::Invalid)?;
        let (key, public) = match self.cached_key(kid).await.map_err(KeyRefusal::Failed)? {
            Some(CachedKey { key, public }) if kind.is_none_or(|k| key.owner.kind() == k) => {
                (key, public)
            }
            other => {
                let signer = other
                    .as_ref()
                    .map_or(keypair::decoy_for(alg), |k| &k.public);
                if jwt.verify(signer, kid).is_ok() && other.is_some() {
                    return Err(KeyRefusal::OtherKind);
                }
                return Err(KeyRefusal::Unknown);
            }
        };
        jwt.verify(&public, kid).map_err(|_| KeyRefusal::Unknown)?;
        let assertion = jwt::check_assertion(jwt, &self.settings.issuer, self.time_rules())
            .map_err(KeyRefusal::Invalid)?;
        Ok((key, assertion))
    }

    /// The machine user behind a verified assertion of its key (the JWT profile: `iss` = `sub`
    /// = the user id): the key must be that user's and usable now, and the user must exist.
    /// `fail` makes the endpoint's error from a description.
    pub(crate) async fn user_of_key(
        &self,
        key: &AuthnKey,
        assertion: &jwt::Assertion,
        kid: &str,
        fail: fn(String) -> OAuthError,
    ) -> Result<User, OAuthError> {
        if assertion.subject != key.owner_id() {
            return Err(fail(format!(
                "key {kid} does not belong to {} (iss/sub); it belongs to another user",
                shown(&assertion.subject)
            )));
        }
        check_usable(key, kid, self.now()).map_err(fail)?;
        self.cached_user(key.owner_id())
            .await?
            .ok_or_else(|| fail(format!("user {} does not exist", key.owner_id())))
    }

    /// The token endpoint's external URL (a DPoP proof's `htu` there).
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth/v2/token", self.settings.issuer)
    }

    pub fn time_rules(&self) -> TimeRules {
        TimeRules {
            now: self.clock.now(),
            skew: self.settings.clock_skew,
            max_age: self.settings.assertion_max_age,
        }
    }

    /// Accepts an assertion's `jti` once within its lifetime (replays are refused). An
    /// assertion without `jti` is not tracked (ZITADEL's SDKs send none).
    pub(crate) async fn spend_jti(
        &self,
        jwt: &UnverifiedJwt,
        kid: &str,
        expires_at: i64,
    ) -> Result<bool> {
        match self.jti_entry(jwt, kid, expires_at) {
            Some((id, until)) => self.spend_once(&id, until).await,
            None => Ok(true),
        }
    }

    /// Remembers `id` until `until`: true the first time, false for a replay, in every
    /// process (the store is the database).
    pub(crate) async fn spend_once(&self, id: &str, until: DateTime<Utc>) -> Result<bool> {
        self.replays.spend(id.to_owned(), until).await
    }

    /// Under which id, and until when, a JWT's `jti` is remembered (`space`: the key id, or
    /// the issuer of an outside token); `None` without a `jti`.
    pub(crate) fn jti_entry(
        &self,
        jwt: &UnverifiedJwt,
        space: &str,
        expires_at: i64,
    ) -> Option<(String, DateTime<Utc>)> {
        let jti = jwt.str_claim("jti").filter(|j| !j.is_empty())?;
        let until = DateTime::from_timestamp(expires_at, 0).unwrap_or_else(Utc::now)
            + self.settings.clock_skew;
        Some((assertion_id(space, jti), until))
    }

    /// `POST /oauth/v2/token`, with failed attempts rate-limited per key id and per address.
    ///
    /// A valid assertion is never refused because of what others sent: checking it (a key read,
    /// from memory when possible, and one signature) costs no more than refusing it would, so
    /// the limits only shape failures — past a subject's budget a failure is answered 429 with
    /// `Retry-After` instead of 400, telling a client that keeps failing to back off. Otherwise
    /// anyone could lock a key's holder out by sending garbage under its key id, or everybody
    /// behind one load balancer by sending garbage from it.
    pub async fn token(
        &self,
        req: TokenRequest,
        dpop: &[String],
        peer: Option<IpAddr>,
    ) -> Result<TokenResponse, OAuthError> {
        let mut charged = throttle::subjects(None, peer);
        let result = self.grant(req, dpop, &mut charged, peer).await;
        if let Err(e) = &result
            && e.code.is_client_failure()
        {
            self.throttle.check(&charged)?;
            self.throttle.failed(&charged);
        }
        result
    }

    async fn grant(
        &self,
        req: TokenRequest,
        dpop: &[String],
        charged: &mut Vec<throttle::Subject>,
        peer: Option<IpAddr>,
    ) -> Result<TokenResponse, OAuthError> {
        let exchange = match req.grant_type.as_deref() {
            None | Some("") => {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidRequest,
                    "grant_type is required",
                ));
            }
            Some(JWT_BEARER_GRANT) => false,
            Some(TOKEN_EXCHANGE_GRANT) => true,
            Some(other) => {
                return Err(OAuthError::new(
                    OAuthErrorCode::UnsupportedGrantType,
                    format!(
                        "grant_type {} is not supported; use {JWT_BEARER_GRANT} (a key's assertion or a trusted issuer's token) or {TOKEN_EXCHANGE_GRANT} (a trusted issuer's token)",
                        shown(other)
                    ),
                ));
            }
        };
        let assertion = if exchange {
            match req.subject_token_type.as_deref() {
                Some(JWT_TOKEN_TYPE | ID_TOKEN_TYPE) => {}
                None | Some("") => {
                    return Err(OAuthError::new(
                        OAuthErrorCode::InvalidRequest,
                        format!("subject_token_type is required: {JWT_TOKEN_TYPE}"),
                    ));
                }
                Some(other) => {
                    return Err(OAuthError::new(
                        OAuthErrorCode::InvalidRequest,
                        format!(
                            "subject_token_type {} is not supported; the subject token is a JWT ({JWT_TOKEN_TYPE})",
                            shown(other)
                        ),
                    ));
                }
            }
            if req
                .requested_token_type
                .as_deref()
                .is_some_and(|t| !t.is_empty() && t != ACCESS_TOKEN_TYPE)
            {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidRequest,
                    format!("requested_token_type: only {ACCESS_TOKEN_TYPE} is issued"),
                ));
            }
            if req.actor_token.as_deref().is_some_and(|t| !t.is_empty()) {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidRequest,
                    "actor_token is not supported: delegation is not offered",
                ));
            }
            req.subject_token
                .as_deref()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    OAuthError::new(OAuthErrorCode::InvalidRequest, "subject_token is required")
                })?
        } else {
            req.assertion
                .as_deref()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    OAuthError::new(OAuthErrorCode::InvalidRequest, "assertion is required")
                })?
        };
        let scope = req.scope.as_deref().unwrap_or("");
        if scope.len() > MAX_SCOPE_LEN {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidScope,
                format!("scope is longer than {MAX_SCOPE_LEN} characters"),
            ));
        }
        let scopes: Vec<String> = scope.split_whitespace().map(String::from).collect();
        if scopes.len() > MAX_SCOPES {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidScope,
                format!(
                    "{} scopes requested; at most {MAX_SCOPES} are allowed",
                    scopes.len()
                ),
            ));
        }
        // The proof first: a client asked for the server's nonce retries before anything else
        // is looked at.
        // (Most grants carry none: the endpoint's URL is built only for a proof.)
        let proof = if dpop.is_empty() {
            None
        } else {
            self.dpop_proof(dpop, "POST", &self.token_endpoint(), None)
                .await?
        };
        let dpop_jkt = proof.as_ref().map(|p| p.jkt.as_str());
        let jwt = UnverifiedJwt::parse(assertion).map_err(claim_error)?;
        let alg = jwt.algorithm().map_err(claim_error)?;
        if let Some(mut response) = self
            .trusted_grant(&jwt, alg, &scopes, charged, peer, dpop_jkt)
            .await?
        {
            if exchange {
                response.issued_token_type = Some(ACCESS_TOKEN_TYPE);
            }
            return Ok(response);
        }
        if exchange {
            return Err(OAuthError::grant(
                "the subject_token's iss names no trusted issuer; token exchange takes tokens of trusted issuers",
            ));
        }
        let kid = jwt.kid().map_err(claim_error)?.to_owned();
        throttle::charge_credential(charged, &kid);
        let (key, assertion) = self
            .verify_key_assertion(&jwt, &kid, Some(OwnerKind::User))
            .await
            .map_err(|refused| match refused {
                KeyRefusal::Unknown => OAuthError::grant(unknown_key(&kid, "machine key")),
                KeyRefusal::OtherKind => OAuthError::grant(format!(
                    "key {kid} is an application key; application keys authenticate clients (as client_assertion at introspection or revocation), not users"
                )),
                KeyRefusal::Invalid(e) => claim_error(e),
                KeyRefusal::Failed(e) => e.into(),
            })?;
        let user = self
            .user_of_key(&key, &assertion, &kid, OAuthError::grant)
            .await?;

        let jti = self.jti_entry(&jwt, &kid, assertion.expires_at);
        let by = Obtained {
            id: &kid,
            via_trust: false,
            // No token outlives the key it was obtained with.
            not_after: key.expires_at,
            jti,
            peer,
            dpop_jkt,
        };
        self.issue(&user, scopes, by).await
    }

    /// Issues the token a verified credential asked for: the projects asked for checked, the
    /// credential's `jti` spent, the token made, recorded and answered.
    pub(super) async fn issue(
        &self,
        user: &crate::domain::model::User,
        scopes: Vec<String>,
        by: Obtained<'_>,
    ) -> Result<TokenResponse, OAuthError> {
        let now = self.now();
        let kid = by.id.to_owned();
        if user.dpop_bound && by.dpop_jkt.is_none() {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidRequest,
                format!(
                    "user {} takes DPoP-bound tokens only (dpop_bound_access_tokens): send a DPoP proof with the token request",
                    user.id
                ),
            ));
        }
        let projects = requested_projects(&scopes);
        for project in &projects {
            // Only the user's own org's projects: a foreign project answers as an unknown one.
            if repo::find_project_in_org(&self.db, &user.org_id, project)
                .await?
                .is_none()
            {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidScope,
                    format!(
                        "scope asks for the audience of project {}, which does not exist in the user's organization",
                        shown(project)
                    ),
                ));
            }
        }
        if let Some((id, until)) = &by.jti
            && !self.spend_once(id, *until).await?
        {
            return Err(OAuthError::grant(if by.via_trust {
                "this token was already exchanged (its jti was seen before); get a new one from its issuer"
            } else {
                "this assertion was already used (its jti was seen before); sign a new one"
            }));
        }
        // The audience is the projects asked for, never the subject: a user id chosen to equal
        // another tenant's project id must not make a token that project's verifiers accept.
        let audience = projects.clone();
        let expires_at = (now + self.settings.access_token_lifetime).min(by.not_after);
        let lifetime = expires_at - now;
        let token_id = self.ids.next_id();
        let access_token = match user.access_token_type {
            AccessTokenType::Bearer => {
                let mut raw = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut raw);
                format!("{token_id}.{}", URL_SAFE_NO_PAD.encode(raw))
            }
            AccessTokenType::Jwt => {
                let claims = AccessClaims {
                    iss: self.settings.issuer.clone(),
                    sub: user.id.clone(),
                    aud: audience.clone(),
                    exp: expires_at.timestamp(),
                    iat: now.timestamp(),
                    nbf: now.timestamp(),
                    jti: token_id.clone(),
                    client_id: user.id.clone(),
                    scope: scopes.join(" "),
                    org_id: user.org_id.clone(),
                    cnf: by.dpop_jkt.map(|jkt| Confirmation {
                        jkt: jkt.to_owned(),
                    }),
                };
                self.sign_jwt(self.settings.access_token_typ, &claims)
                    .map_err(|e| {
                        OAuthError::from(
                            Error::internal("TOKEN-Sign1", "cannot sign the token").with_source(e),
                        )
                    })?
            }
        };
        // Every token, opaque or JWT, is recorded by hash with its key, so that removing the
        // user or the key revokes it everywhere at once.
        self.token_records
            .record(AccessToken {
                id: token_id.clone(),
                token_hash: hash_token(&access_token),
                user_id: user.id.clone(),
                org_id: user.org_id.clone(),
                key_id: kid.clone(),
                via_trust: by.via_trust,
                scopes: scopes.clone(),
                audience: audience.clone(),
                projects,
                expires_at,
                created_at: now,
                dpop_jkt: by.dpop_jkt.map(str::to_owned),
            })
            .await
            .map_err(|e| {
                if e.id == RECORD_GONE {
                    OAuthError::grant(format!(
                        "{} {kid} or its user was removed while the token was being issued",
                        if by.via_trust { "trust" } else { "key" }
                    ))
                } else if e.id == repo::KEY_DISABLED {
                    OAuthError::grant(e.message.into_owned())
                } else {
                    e.into()
                }
            })?;
        if !by.via_trust {
            self.last_uses.record(
                &kid,
                LastUse {
                    at: now,
                    kind: KeyUse::JwtBearerGrant,
                    address: by.peer.map(|p| p.to_string()).unwrap_or_default(),
                },
            );
        }
        let id_token = if scopes.iter().any(|s| s == "openid") {
            // An ID token is for the client that asked — in the JWT profile the user itself —
            // and never for a project: it must not pass for an access token anywhere.
            let claims = IdClaims {
                iss: &self.settings.issuer,
                sub: &user.id,
                aud: vec![&user.id],
                azp: &user.id,
                exp: expires_at.timestamp(),
                iat: now.timestamp(),
                auth_time: now.timestamp(),
                org_id: &user.org_id,
            };
            Some(self.sign_jwt("JWT", &claims).map_err(|e| {
                OAuthError::from(
                    Error::internal("TOKEN-Sign2", "cannot sign the id token").with_source(e),
                )
            })?)
        } else {
            None
        };
        if by.via_trust {
            tracing::info!(user_id = %shown(&user.id), trust_id = %shown(&kid), token_id = %token_id, "access token issued for an outside token");
        } else {
            tracing::info!(user_id = %shown(&user.id), key_id = %shown(&kid), token_id = %token_id, "access token issued");
        }
        Ok(TokenResponse {
            access_token,
            issued_token_type: None,
            token_type: if by.dpop_jkt.is_some() {
                "DPoP"
            } else {
                "Bearer"
            },
            expires_in: lifetime.num_seconds(),
            scope: scopes.join(" "),
            id_token,
        })
    }

    /// The token's facts if it is one of ours, unexpired and not revoked; `None` otherwise.
    /// Every token we issue — opaque or JWT — is on record with its hash until its user or the
    /// key it was obtained with is removed, so the record decides: a forged, foreign or revoked
    /// token has none or another hash, and so has an ID token (never recorded), whatever its
    /// signature.
    /// The record is read from memory when possible (see [`super::cache`]).
    pub async fn verify_access_token(&self, token: &str) -> Result<Option<AccessToken>> {
        if token.is_empty() || token.len() > 8192 {
            return Ok(None);
        }
        let Some(id) = claimed_token_id(token) else {
            return Ok(None);
        };
        let Some(info) = self.token_record(&id).await? else {
            return Ok(None);
        };
        if !same_digest(&info.token_hash, &hash_token(token)) {
            return Ok(None);
        }
        if info.expires_at <= self.clock.now() {
            return Ok(None);
        }
        Ok(Some(info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assertion_ids_do_not_collide_across_keys() {
        assert_ne!(assertion_id("k", "a\nb"), assertion_id("k\na", "b"));
        assert_eq!(hash_token("abc").len(), 64);
    }

    #[test]
    fn a_token_names_its_record_and_nothing_else_does() {
        assert_eq!(
            claimed_token_id("382961664204800001.c2VjcmV0").as_deref(),
            Some("382961664204800001")
        );
        let jwt = |payload: &str| format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(payload));
        assert_eq!(
            claimed_token_id(&jwt(r#"{"jti":"42","sub":"u"}"#)).as_deref(),
            Some("42")
        );
        for not in [
            String::new(),
            "no-dot".into(),
            "12a.secret".into(),
            ".secret".into(),
            "123456789012345678901.secret".into(),
            jwt(r#"{"sub":"u"}"#),
            jwt(r#"{"jti":"../x"}"#),
            jwt(r#"{"jti":42}"#),
            "a.b.c.d".into(),
            "e30.!!!.c2ln".into(),
        ] {
            assert_eq!(claimed_token_id(&not), None, "{not}");
        }
        assert!(same_digest("ab01", "ab01"));
        assert!(!same_digest("ab01", "ab02"));
        assert!(!same_digest("ab01", "ab0"));
    }
}
