//! Client authentication at the introspection and revocation endpoints, and token
//! introspection (RFC 7662) for API apps: an app authenticates with a client assertion signed
//! by one of its app keys (RFC 7523 §2.2) or, for BASIC apps, with HTTP Basic; a token is
//! active for it only when the token was asked for the app's project. The answer is JSON, or a
//! JWT signed by the server (RFC 9701) when the client asks for one.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Services, throttle,
    tokens::{KeyRefusal, OAuthError, OAuthErrorCode, check_usable, unknown_key},
};
use crate::{
    domain::{
        jwt::{self, UnverifiedJwt},
        model::{ApiAuthMethod, App, AuthnKey, KeyUse, LastUse, OwnerKind, User},
        secret::{SecretHasher, Verdict},
        text::shown,
    },
    error::Error,
    storage::repo,
};

pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The media type, and the JWT `typ`, of RFC 9701's introspection answers.
pub const INTROSPECTION_JWT: &str = "application/token-introspection+jwt";
const INTROSPECTION_JWT_TYP: &str = "token-introspection+jwt";

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

/// How a client authenticates: a client assertion (`private_key_jwt`) or HTTP Basic
/// (`client_secret_basic`).
pub struct ClientAuth<'a> {
    pub assertion_type: Option<&'a str>,
    pub assertion: Option<&'a str>,
    pub basic: Option<BasicAuth>,
}

/// Who authenticated as the client: an API app, or a machine user with its own key's
/// assertion (the JWT profile's client: the client id is the user id).
#[derive(Debug)]
pub enum Client {
    App(App),
    User(User),
}

impl Client {
    pub fn client_id(&self) -> &str {
        match self {
            Client::App(app) => &app.client_id,
            Client::User(user) => &user.id,
        }
    }
}

/// An introspection answer and the client it is for.
#[derive(Debug)]
pub struct Introspection {
    pub answer: Value,
    pub client_id: String,
}

/// RFC 9701 §5: the claims of a JWT introspection answer.
#[derive(Serialize)]
struct IntrospectionClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    token_introspection: &'a Value,
}

fn client_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidClient, description)
}

/// The claim naming the token user's organization, as ZITADEL's introspection answers carry.
pub const RESOURCE_OWNER_CLAIM: &str = "urn:zitadel:iam:user:resourceowner:id";

impl Services {
    /// `POST /oauth/v2/introspect`: the answer for the API app that authenticated (see
    /// [`Services::authenticate_client`]).
    pub async fn introspect(
        &self,
        req: IntrospectRequest,
        basic: Option<BasicAuth>,
        peer: Option<IpAddr>,
    ) -> Result<Introspection, OAuthError> {
        let auth = ClientAuth {
            assertion_type: req.client_assertion_type.as_deref(),
            assertion: req.client_assertion.as_deref(),
            basic,
        };
        let app = match self
            .authenticate_client(auth, peer, Some(OwnerKind::App))
            .await?
        {
            Client::App(app) => app,
            Client::User(user) => {
                return Err(client_error(format!(
                    "{} is a machine user; API apps introspect tokens",
                    user.id
                )));
            }
        };
        let token = req
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::new(OAuthErrorCode::InvalidRequest, "token is required"))?;
        let inactive = || Introspection {
            answer: json!({"active": false}),
            client_id: app.client_id.clone(),
        };
        let Some(info) = self.verify_access_token(token).await? else {
            return Ok(inactive());
        };
        // Active only for an app of a project the token was asked for (projects are checked to
        // be of the user's org when the token is issued): never because the user's own id or
        // another aud entry happens to equal a project or client id.
        if !app_may_see(&app, &info) {
            return Ok(inactive());
        }
        let mut answer = json!({
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
        });
        // RFC 9449 §6.2: a DPoP-bound token says so, with the key it is bound to.
        if let Some(jkt) = &info.dpop_jkt {
            answer["token_type"] = json!("DPoP");
            answer["cnf"] = json!({"jkt": jkt});
        }
        Ok(Introspection {
            answer,
            client_id: app.client_id.clone(),
        })
    }

    /// RFC 9701: an introspection answer as a JWT the server signs for the client that asked
    /// (`typ: token-introspection+jwt`, `aud` the client id, the answer in
    /// `token_introspection`).
    pub fn introspection_jwt(&self, introspection: &Introspection) -> Result<String, OAuthError> {
        let claims = IntrospectionClaims {
            iss: &self.settings.issuer,
            aud: &introspection.client_id,
            iat: self.clock.now().timestamp(),
            token_introspection: &introspection.answer,
        };
        self.sign_jwt(INTROSPECTION_JWT_TYP, &claims).map_err(|e| {
            Error::internal("TOKEN-Sign3", "cannot sign the introspection answer")
                .with_source(e)
                .into()
        })
    }

    /// Authenticates the client at introspection or revocation: a client assertion signed
    /// with a key of an owner of `kind` (either when `None`), or HTTP Basic for a BASIC app.
    /// Failed authentications are rate-limited per client (client id or key id) and per
    /// address. As at the token endpoint, valid client credentials are never refused because
    /// of others' failures: past a subject's budget, failures are answered 429. The one
    /// expensive check — an argon2id secret hash left by an earlier version — is refused
    /// before it runs when the budget is spent.
    pub(crate) async fn authenticate_client(
        &self,
        auth: ClientAuth<'_>,
        peer: Option<IpAddr>,
        kind: Option<OwnerKind>,
    ) -> Result<Client, OAuthError> {
        let client = auth
            .basic
            .as_ref()
            .map(|b| b.client_id.clone())
            .or_else(|| {
                let assertion = auth.assertion?;
                Some(UnverifiedJwt::parse(assertion).ok()?.kid().ok()?.to_owned())
            });
        let subjects = throttle::subjects(client.as_deref(), peer);
        let result = self.identify_client(auth, &subjects, peer, kind).await;
        if let Err(e) = &result
            && e.code == OAuthErrorCode::InvalidClient
        {
            self.throttle.check(&subjects)?;
            self.throttle.failed(&subjects);
        }
        result
    }

    async fn identify_client(
        &self,
        auth: ClientAuth<'_>,
        subjects: &[throttle::Subject],
        peer: Option<IpAddr>,
        kind: Option<OwnerKind>,
    ) -> Result<Client, OAuthError> {
        if let Some(assertion) = auth.assertion.filter(|a| !a.is_empty()) {
            if auth.assertion_type != Some(CLIENT_ASSERTION_TYPE) {
                return Err(client_error(format!(
                    "client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
                )));
            }
            return self.authenticate_by_assertion(assertion, peer, kind).await;
        }
        if let Some(basic) = auth.basic {
            return Ok(Client::App(
                self.authenticate_by_secret(basic, subjects).await?,
            ));
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
        kind: Option<OwnerKind>,
    ) -> Result<Client, OAuthError> {
        let bad = |e: jwt::JwtError| client_error(e.to_string());
        let jwt = UnverifiedJwt::parse(assertion).map_err(bad)?;
        let kid = jwt.kid().map_err(bad)?.to_owned();
        let what = match kind {
            Some(OwnerKind::App) => "application key",
            Some(OwnerKind::User) => "machine key",
            None => "key",
        };
        let (key, claims) =
            self.verify_key_assertion(&jwt, &kid, kind)
                .await
                .map_err(|refused| match refused {
                    KeyRefusal::Unknown => client_error(unknown_key(&kid, what)),
                    KeyRefusal::OtherKind => client_error(format!(
                        "key {kid} is a machine key; clients authenticate with application keys"
                    )),
                    KeyRefusal::Invalid(e) => bad(e),
                    KeyRefusal::Failed(e) => e.into(),
                })?;
        let client = match key.owner.kind() {
            OwnerKind::App => Client::App(self.app_of_key(&key, &claims, &kid).await?),
            OwnerKind::User => {
                Client::User(self.user_of_key(&key, &claims, &kid, client_error).await?)
            }
        };
        if !self.spend_jti(&jwt, &kid, claims.expires_at).await? {
            return Err(client_error(
                "this client assertion was already used (its jti was seen before); sign a new one",
            ));
        }
        self.last_uses.record(
            &kid,
            LastUse {
                at: self.now(),
                kind: KeyUse::ClientAssertion,
                address: peer.map(|p| p.to_string()).unwrap_or_default(),
            },
        );
        Ok(client)
    }

    /// The API app behind a verified assertion of its key: `iss` = `sub` = its client id, the
    /// key usable now.
    async fn app_of_key(
        &self,
        key: &AuthnKey,
        claims: &jwt::Assertion,
        kid: &str,
    ) -> Result<App, OAuthError> {
        let app = self.cached_app(key.owner_id()).await?.ok_or_else(|| {
            client_error(format!("the application of key {kid} no longer exists"))
        })?;
        if claims.subject != app.client_id {
            return Err(client_error(format!(
                "iss/sub {} is not the client id of the application that owns key {kid}",
                shown(&claims.subject)
            )));
        }
        check_usable(key, kid, self.now()).map_err(client_error)?;
        Ok(app)
    }
}

/// Whether `app` may learn about, or revoke, `token`: the token was asked for the app's
/// project (projects are checked to be of the user's org when the token is issued).
pub(crate) fn app_may_see(app: &App, token: &crate::domain::model::AccessToken) -> bool {
    token.org_id == app.org_id && token.projects.contains(&app.project_id)
}
