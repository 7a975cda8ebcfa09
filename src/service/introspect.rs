//! Token introspection (RFC 7662) for API apps: the app authenticates with a client
//! assertion signed by one of its app keys (RFC 7523 §2.2) or, for BASIC apps, with HTTP
//! Basic; a token is active for it only when the token was asked for the app's project.
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Services,
    cache::CachedKey,
    throttle,
    tokens::{OAuthError, OAuthErrorCode, check_usable},
};
use crate::{
    domain::{
        jwt::{self, UnverifiedJwt},
        keypair,
        model::{ApiAuthMethod, App, KeyUse, LastUse, OwnerKind},
        secret::{SecretHasher, Verdict},
        text::shown,
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

/// The claim naming the token user's organization, as ZITADEL's introspection answers carry.
pub const RESOURCE_OWNER_CLAIM: &str = "urn:zitadel:iam:user:resourceowner:id";

impl Services {
    /// `POST /oauth/v2/introspect`, with failed client authentications rate-limited per
    /// client (client id or app key id) and per address. As at the token endpoint, valid
    /// client credentials are never refused because of others' failures: past a subject's
    /// budget, failures are answered 429. The one expensive check — an argon2id secret hash
    /// left by an earlier version — is refused before it runs when the budget is spent.
    pub async fn introspect(
        &self,
        req: IntrospectRequest,
        basic: Option<BasicAuth>,
        peer: Option<IpAddr>,
    ) -> Result<Value, OAuthError> {
        let client = basic.as_ref().map(|b| b.client_id.clone()).or_else(|| {
            let assertion = req.client_assertion.as_deref()?;
            Some(UnverifiedJwt::parse(assertion).ok()?.kid().ok()?.to_owned())
        });
        let subjects = throttle::subjects(client.as_deref(), peer);
        let app = match self.authenticate_client(&req, basic, &subjects, peer).await {
            Ok(app) => app,
            Err(e) => {
                if e.code == OAuthErrorCode::InvalidClient {
                    self.throttle.check(&subjects)?;
                    self.throttle.failed(&subjects);
                }
                return Err(e);
            }
        };
        let token = req
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::new(OAuthErrorCode::InvalidRequest, "token is required"))?;
        let Some(info) = self.verify_access_token(token).await? else {
            return Ok(json!({"active": false}));
        };
        // Active only for an app of a project the token was asked for (projects are checked to
        // be of the user's org when the token is issued): never because the user's own id or
        // another aud entry happens to equal a project or client id.
        if info.org_id != app.org_id || !info.projects.contains(&app.project_id) {
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
            "iat": info.created_at.timestamp(),
            "jti": info.id,
            "token_type": "Bearer",
            RESOURCE_OWNER_CLAIM: info.org_id,
        }))
    }

    async fn authenticate_client(
        &self,
        req: &IntrospectRequest,
        basic: Option<BasicAuth>,
        subjects: &[throttle::Subject],
        peer: Option<IpAddr>,
    ) -> Result<App, OAuthError> {
        if let Some(assertion) = req.client_assertion.as_deref().filter(|a| !a.is_empty()) {
            if req.client_assertion_type.as_deref() != Some(CLIENT_ASSERTION_TYPE) {
                return Err(client_error(format!(
                    "client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
                )));
            }
            return self.authenticate_by_assertion(assertion, peer).await;
        }
        if let Some(basic) = basic {
            return self.authenticate_by_secret(basic, subjects).await;
        }
        Err(client_error(
            "client authentication required: send a client_assertion (private_key_jwt) or HTTP Basic credentials",
        ))
    }

    async fn authenticate_by_secret(
        &self,
        basic: BasicAuth,
        subjects: &[throttle::Subject],
    ) -> Result<App, OAuthError> {
        let failed =
            || client_error("client authentication failed: unknown client id or wrong secret");
        if basic.client_id.len() > 200 || basic.secret.len() > 1024 {
            return Err(failed());
        }
        let app = repo::find_app_by_client_id(&self.db, &basic.client_id).await?;
        let stored = app
            .as_ref()
            .filter(|a| a.auth_method == ApiAuthMethod::Basic)
            .and_then(|a| a.secret_hash.clone());
        let verdict = match stored.as_deref() {
            Some(h) if SecretHasher::is_legacy(h) => {
                // argon2id hashes from earlier versions: a few at a time, off the async
                // workers, and not for a caller whose failure budget is spent; each is
                // replaced by a keyed hash on its first good use.
                self.throttle.check(subjects)?;
                let _slot = self.legacy_hash_slots.acquire().await.map_err(|e| {
                    Error::internal("OIDC-Hash02", "secret checks are shut down").with_source(e)
                })?;
                let (hasher, phc, secret) =
                    (self.secrets.clone(), h.to_owned(), basic.secret.clone());
                tokio::task::spawn_blocking(move || hasher.verify(&secret, Some(&phc)))
                    .await
                    .map_err(|e| {
                        Error::internal("OIDC-Hash01", "checking the client secret was interrupted")
                            .with_source(e)
                    })?
            }
            other => self.secrets.verify(&basic.secret, other),
        };
        let app = match (app, verdict) {
            (Some(app), Verdict::Match | Verdict::MatchNeedsUpgrade) => app,
            _ => return Err(failed()),
        };
        if verdict == Verdict::MatchNeedsUpgrade {
            // The secret is known good here: store its keyed hash in place of the old one.
            repo::set_app_secret_hash(&self.db, &app.id, &self.secrets.hash(&basic.secret)).await?;
            tracing::info!(app_id = %app.id, "client secret hash upgraded from argon2id");
        }
        Ok(app)
    }

    async fn authenticate_by_assertion(
        &self,
        assertion: &str,
        peer: Option<IpAddr>,
    ) -> Result<App, OAuthError> {
        let bad = |e: jwt::JwtError| client_error(e.to_string());
        let jwt = UnverifiedJwt::parse(assertion).map_err(bad)?;
        let alg = jwt.algorithm().map_err(bad)?;
        let kid = jwt.kid().map_err(bad)?.to_owned();
        let unknown = || {
            client_error(format!(
                "no application key with key id (kid) {} verifies this client assertion: the key id is unknown, the key was removed, or the assertion was signed with another key",
                shown(&kid)
            ))
        };
        // Nothing about the key is said until the caller has proven it holds it.
        // An unknown key id costs what a known one does (see the token endpoint).
        let (key, public) = match self.cached_key(&kid).await? {
            Some(CachedKey { key, public }) if key.owner.kind() == OwnerKind::App => (key, public),
            other => {
                let signer = other
                    .as_ref()
                    .map_or(keypair::decoy_for(alg), |k| &k.public);
                if jwt.verify(signer, &kid).is_ok() && other.is_some() {
                    return Err(client_error(format!(
                        "key {kid} is a machine key; clients authenticate with application keys"
                    )));
                }
                return Err(unknown());
            }
        };
        jwt.verify(&public, &kid).map_err(|_| unknown())?;
        let claims =
            jwt::check_assertion(&jwt, &self.settings.issuer, self.time_rules()).map_err(bad)?;
        let app = self.cached_app(key.owner_id()).await?.ok_or_else(|| {
            client_error(format!("the application of key {kid} no longer exists"))
        })?;
        if claims.subject != app.client_id {
            return Err(client_error(format!(
                "iss/sub {} is not the client id of the application that owns key {kid}",
                shown(&claims.subject)
            )));
        }
        let now = self.now();
        check_usable(&key, &kid, now).map_err(client_error)?;
        if !self.spend_jti(&jwt, &kid, claims.expires_at).await? {
            return Err(client_error(
                "this client assertion was already used (its jti was seen before); sign a new one",
            ));
        }
        self.last_uses.record(
            &kid,
            LastUse {
                at: now,
                kind: KeyUse::ClientAssertion,
                address: peer.map(|p| p.to_string()).unwrap_or_default(),
            },
        );
        Ok(app)
    }
}
