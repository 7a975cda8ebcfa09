//! Token introspection (RFC 7662) for API apps: the app authenticates with a client
//! assertion signed by one of its app keys (RFC 7523 §2.2) or, for BASIC apps, with HTTP
//! Basic; a token is active for it only when the token's audience names its project or client.
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Services,
    tokens::{OAuthError, OAuthErrorCode},
};
use crate::{
    domain::{
        jwt::{self, UnverifiedJwt},
        keypair::PublicKey,
        model::{ApiAuthMethod, App},
        secret,
    },
    error::Error,
    storage::repo,
};

pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The introspection form.
#[derive(Default, Deserialize)]
pub struct IntrospectRequest {
    pub token: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
}

impl std::fmt::Debug for IntrospectRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectRequest").finish_non_exhaustive()
    }
}

/// Client id and secret from an `Authorization: Basic` header.
pub struct BasicAuth {
    pub client_id: String,
    pub secret: zeroize::Zeroizing<String>,
}

fn client_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidClient, description)
}

impl Services {
    /// `POST /oauth/v2/introspect`.
    pub async fn introspect(
        &self,
        req: IntrospectRequest,
        basic: Option<BasicAuth>,
    ) -> Result<Value, OAuthError> {
        let app = self.authenticate_client(&req, basic).await?;
        let token = req
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::new(OAuthErrorCode::InvalidRequest, "token is required"))?;
        let Some(info) = self.verify_access_token(token).await? else {
            return Ok(json!({"active": false}));
        };
        if !info
            .audience
            .iter()
            .any(|a| *a == app.project_id || *a == app.client_id)
        {
            return Ok(json!({"active": false}));
        }
        Ok(json!({
            "active": true,
            "iss": self.settings.issuer,
            "sub": info.user_id,
            "client_id": info.user_id,
            "aud": info.audience,
            "scope": info.scopes.join(" "),
            "exp": info.expires_at.timestamp(),
            "iat": info.issued_at.timestamp(),
            "jti": info.token_id,
            "token_type": "Bearer",
        }))
    }

    async fn authenticate_client(
        &self,
        req: &IntrospectRequest,
        basic: Option<BasicAuth>,
    ) -> Result<App, OAuthError> {
        if let Some(assertion) = req.client_assertion.as_deref().filter(|a| !a.is_empty()) {
            if req.client_assertion_type.as_deref() != Some(CLIENT_ASSERTION_TYPE) {
                return Err(client_error(format!(
                    "client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
                )));
            }
            return self.authenticate_by_assertion(assertion).await;
        }
        if let Some(basic) = basic {
            let app = repo::find_app_by_client_id(&self.db, &basic.client_id).await?;
            let stored = app
                .as_ref()
                .filter(|a| a.auth_method == ApiAuthMethod::Basic)
                .and_then(|a| a.secret_hash.clone());
            let secret = basic.secret;
            let ok =
                tokio::task::spawn_blocking(move || secret::verify(&secret, stored.as_deref()))
                    .await
                    .map_err(|e| {
                        Error::internal("OIDC-Hash01", "checking the client secret was interrupted")
                            .with_source(e)
                    })?;
            return match app {
                Some(app) if ok => Ok(app),
                _ => Err(client_error(
                    "client authentication failed: unknown client id or wrong secret",
                )),
            };
        }
        Err(client_error(
            "client authentication required: send a client_assertion (private_key_jwt) or HTTP Basic credentials",
        ))
    }

    async fn authenticate_by_assertion(&self, assertion: &str) -> Result<App, OAuthError> {
        let bad = |e: jwt::JwtError| client_error(e.to_string());
        let jwt = UnverifiedJwt::parse(assertion).map_err(bad)?;
        jwt.algorithm().map_err(bad)?;
        let kid = jwt.kid().map_err(bad)?.to_owned();
        let Some(key) = repo::find_app_key(&self.db, &kid).await? else {
            if repo::find_machine_key(&self.db, &kid).await?.is_some() {
                return Err(client_error(format!(
                    "key {kid} is a machine key; clients authenticate with application keys"
                )));
            }
            return Err(client_error(format!(
                "unknown key id (kid) {kid}: no such application key, or it was removed"
            )));
        };
        let public = PublicKey::from_pkix_pem(key.public_key.as_bytes()).map_err(|e| {
            OAuthError::from(
                Error::internal("OIDC-Key01", "a stored key is unreadable").with_source(e),
            )
        })?;
        jwt.verify(&public, &kid).map_err(bad)?;
        let claims =
            jwt::check_assertion(&jwt, &self.settings.issuer, self.time_rules()).map_err(bad)?;
        let app = repo::find_app(&self.db, &key.owner_id)
            .await?
            .ok_or_else(|| {
                client_error(format!("the application of key {kid} no longer exists"))
            })?;
        if claims.subject != app.client_id {
            return Err(client_error(format!(
                "iss/sub {} is not the client id of the application that owns key {kid}",
                claims.subject
            )));
        }
        if key.expires_at <= self.now() {
            return Err(client_error(format!(
                "key {kid} expired at {}",
                key.expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        Ok(app)
    }
}
