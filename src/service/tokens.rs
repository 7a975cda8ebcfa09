//! The OAuth side: the JWT-profile grant (RFC 7523) that turns a machine key's assertion into
//! an access token, and verification of those tokens for the API.
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Services, auth::API_SCOPE};
use crate::{
    domain::{
        jwt::{self, Algorithm, JwtError, TimeRules, UnverifiedJwt},
        keypair::PublicKey,
        model::{AccessToken, AccessTokenType},
    },
    error::{Error, Result},
    storage::repo,
};

pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const PROJECT_AUD_PREFIX: &str = "urn:zitadel:iam:org:project:id:";
const PROJECT_AUD_SUFFIX: &str = ":aud";

/// RFC 6749 §5.2 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnsupportedGrantType,
    InvalidScope,
    ServerError,
    TemporarilyUnavailable,
}

impl OAuthErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthErrorCode::InvalidRequest => "invalid_request",
            OAuthErrorCode::InvalidClient => "invalid_client",
            OAuthErrorCode::InvalidGrant => "invalid_grant",
            OAuthErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthErrorCode::InvalidScope => "invalid_scope",
            OAuthErrorCode::ServerError => "server_error",
            OAuthErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// An OAuth error with a description that names the failed check.
#[derive(Debug)]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: String,
    /// The cause of a server error, for the log.
    pub source: Option<Error>,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
            source: None,
        }
    }
    fn grant(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidGrant, description)
    }
}

impl From<Error> for OAuthError {
    fn from(e: Error) -> Self {
        let code = match e.kind {
            crate::error::Kind::Unavailable => OAuthErrorCode::TemporarilyUnavailable,
            _ => OAuthErrorCode::ServerError,
        };
        OAuthError {
            code,
            description: e.message.to_string(),
            source: Some(e),
        }
    }
}

/// A token request as the form carries it.
#[derive(Debug, Default, Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub assertion: Option<String>,
    pub scope: Option<String>,
}

#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
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

/// What a valid access token says.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub token_id: String,
    pub user_id: String,
    pub org_id: String,
    pub scopes: Vec<String>,
    pub audience: Vec<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct AccessClaims {
    iss: String,
    sub: String,
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: String,
    client_id: String,
    scope: String,
    #[serde(rename = "urn:zitadel:iam:user:resourceowner:id")]
    org_id: String,
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

fn claim_error(e: JwtError) -> OAuthError {
    OAuthError::grant(e.to_string())
}

/// The project ids a scope list asks to put into the audience.
pub fn requested_projects(scopes: &[String]) -> Vec<String> {
    scopes
        .iter()
        .filter_map(|s| {
            s.strip_prefix(PROJECT_AUD_PREFIX)?
                .strip_suffix(PROJECT_AUD_SUFFIX)
        })
        .filter(|p| *p != "zitadel" && !p.is_empty())
        .map(String::from)
        .collect()
}

impl Services {
    pub fn time_rules(&self) -> TimeRules {
        TimeRules {
            now: self.clock.now(),
            skew: self.settings.clock_skew,
            max_age: self.settings.assertion_max_age,
        }
    }

    /// `POST /oauth/v2/token`.
    pub async fn token(&self, req: TokenRequest) -> Result<TokenResponse, OAuthError> {
        match req.grant_type.as_deref() {
            None | Some("") => {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidRequest,
                    "grant_type is required",
                ));
            }
            Some(JWT_BEARER_GRANT) => {}
            Some(other) => {
                return Err(OAuthError::new(
                    OAuthErrorCode::UnsupportedGrantType,
                    format!("grant_type {other} is not supported; use {JWT_BEARER_GRANT}"),
                ));
            }
        }
        let assertion = req
            .assertion
            .as_deref()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                OAuthError::new(OAuthErrorCode::InvalidRequest, "assertion is required")
            })?;
        let scopes: Vec<String> = req
            .scope
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect();
        let jwt = UnverifiedJwt::parse(assertion).map_err(claim_error)?;
        jwt.algorithm().map_err(claim_error)?;
        let kid = jwt.kid().map_err(claim_error)?.to_owned();
        let Some(key) = repo::find_machine_key(&self.db, &kid).await? else {
            if repo::find_app_key(&self.db, &kid).await?.is_some() {
                return Err(OAuthError::grant(
                    "key {kid} is an application key; application keys authenticate clients (use client_assertion at the introspection endpoint), not users"
                        .replace("{kid}", &kid),
                ));
            }
            return Err(OAuthError::grant(format!(
                "unknown key id (kid) {kid}: no such machine key, or it was removed"
            )));
        };
        let public = PublicKey::from_pkix_pem(key.public_key.as_bytes()).map_err(|e| {
            OAuthError::from(
                Error::internal("TOKEN-Key01", "a stored key is unreadable").with_source(e),
            )
        })?;
        jwt.verify(&public, &kid).map_err(claim_error)?;
        let assertion = jwt::check_assertion(&jwt, &self.settings.issuer, self.time_rules())
            .map_err(claim_error)?;
        if assertion.subject != key.owner_id {
            return Err(OAuthError::grant(format!(
                "key {kid} does not belong to {} (iss/sub); it belongs to another user",
                assertion.subject
            )));
        }
        let now = self.now();
        if key.expires_at <= now {
            return Err(OAuthError::grant(format!(
                "key {kid} expired at {}",
                key.expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        let user = repo::get_user(&self.db, &key.owner_id)
            .await?
            .ok_or_else(|| OAuthError::grant(format!("user {} does not exist", key.owner_id)))?;

        let mut audience = vec![user.id.clone()];
        for project in requested_projects(&scopes) {
            if repo::get_project(&self.db, &project).await?.is_none() {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidScope,
                    format!(
                        "scope asks for the audience of project {project}, which does not exist"
                    ),
                ));
            }
            if !audience.contains(&project) {
                audience.push(project);
            }
        }
        let lifetime = self.settings.access_token_lifetime;
        let expires_at = now + lifetime;
        let token_id = self.ids.next_id();
        let access_token = match user.access_token_type {
            AccessTokenType::Bearer => {
                let mut raw = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut raw);
                let token = format!("{token_id}.{}", URL_SAFE_NO_PAD.encode(raw));
                repo::insert_access_token(
                    &self.db,
                    &AccessToken {
                        id: token_id.clone(),
                        token_hash: hash_token(&token),
                        user_id: user.id.clone(),
                        org_id: user.org_id.clone(),
                        scopes: scopes.clone(),
                        audience: audience.clone(),
                        expires_at,
                        created_at: now,
                    },
                )
                .await?;
                token
            }
            AccessTokenType::Jwt => {
                let (kid, key) = self.signing.current();
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
                };
                jwt::sign(Algorithm::RS256, kid, &claims, key).map_err(|e| {
                    OAuthError::from(
                        Error::internal("TOKEN-Sign1", "cannot sign the token").with_source(e),
                    )
                })?
            }
        };
        let id_token = if scopes.iter().any(|s| s == "openid") {
            let (kid, key) = self.signing.current();
            let claims = IdClaims {
                iss: &self.settings.issuer,
                sub: &user.id,
                aud: audience.iter().map(String::as_str).collect(),
                azp: &user.id,
                exp: expires_at.timestamp(),
                iat: now.timestamp(),
                auth_time: now.timestamp(),
                org_id: &user.org_id,
            };
            Some(jwt::sign(Algorithm::RS256, kid, &claims, key).map_err(|e| {
                OAuthError::from(
                    Error::internal("TOKEN-Sign2", "cannot sign the id token").with_source(e),
                )
            })?)
        } else {
            None
        };
        tracing::info!(user_id = %user.id, key_id = %kid, token_id = %token_id, "access token issued");
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: lifetime.num_seconds(),
            scope: scopes.join(" "),
            id_token,
        })
    }

    /// The token's facts if it is one of ours and still valid; `None` otherwise.
    pub async fn verify_access_token(&self, token: &str) -> Result<Option<TokenInfo>> {
        let now = self.clock.now();
        if token.matches('.').count() == 2 {
            let Ok(jwt) = UnverifiedJwt::parse(token) else {
                return Ok(None);
            };
            if jwt.algorithm() != Ok(Algorithm::RS256) {
                return Ok(None);
            }
            let Ok(kid) = jwt.kid() else { return Ok(None) };
            let Some(public) = self.signing.public_key(kid).await? else {
                return Ok(None);
            };
            if jwt.verify(&public, kid).is_err() {
                return Ok(None);
            }
            let Ok(claims) =
                serde_json::from_value::<AccessClaims>(serde_json::Value::Object(jwt.claims))
            else {
                return Ok(None);
            };
            if claims.iss != self.settings.issuer || claims.exp <= now.timestamp() {
                return Ok(None);
            }
            let (Some(issued_at), Some(expires_at)) = (
                DateTime::from_timestamp(claims.iat, 0),
                DateTime::from_timestamp(claims.exp, 0),
            ) else {
                return Ok(None);
            };
            return Ok(Some(TokenInfo {
                token_id: claims.jti,
                user_id: claims.sub,
                org_id: claims.org_id,
                scopes: claims.scope.split_whitespace().map(String::from).collect(),
                audience: claims.aud,
                issued_at,
                expires_at,
            }));
        }
        if token.len() > 512 {
            return Ok(None);
        }
        let Some(stored) = repo::find_access_token(&self.db, &hash_token(token)).await? else {
            return Ok(None);
        };
        if stored.expires_at <= now {
            return Ok(None);
        }
        Ok(Some(TokenInfo {
            token_id: stored.id,
            user_id: stored.user_id,
            org_id: stored.org_id,
            scopes: stored.scopes,
            audience: stored.audience,
            issued_at: stored.created_at,
            expires_at: stored.expires_at,
        }))
    }
}

/// Whether `scopes` include the management API scope.
pub fn has_api_scope(scopes: &[String]) -> bool {
    scopes.iter().any(|s| s == API_SCOPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_audience_scopes() {
        let scopes: Vec<String> = [
            "openid",
            "urn:zitadel:iam:org:project:id:zitadel:aud",
            "urn:zitadel:iam:org:project:id:123:aud",
            "urn:zitadel:iam:org:project:id::aud",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(requested_projects(&scopes), vec!["123".to_string()]);
        assert!(has_api_scope(&scopes));
        assert_eq!(hash_token("abc").len(), 64);
    }
}
