//! Token revocation (RFC 7009): a token's holder ends it before it expires. The client
//! authenticates as at introspection — an API app with its client assertion or secret, or the
//! machine user itself with an assertion of one of its keys (the JWT profile's client: the
//! client id is the user id). A user revokes its own tokens, an app the tokens asked for its
//! project; anything else, an unknown or malformed token included, changes nothing and is
//! answered as a success, as RFC 7009 §2.2 asks. A revocation deletes the token's record and
//! records an event, so the caches forget it here before the answer and in other processes
//! within the bound a removal has.
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::json;

use super::{
    Ctx, Services,
    introspect::{BasicAuth, Client, ClientAuth, app_may_see},
    tokens::{OAuthError, OAuthErrorCode},
};
use crate::{domain::text::shown, storage::repo};

/// The recorded type of a revocation (ZITADEL's name for a removed token), on the user's
/// aggregate; the contract calls it `token.revoked`.
pub const TOKEN_REVOKED: &str = "user.token.removed";

/// The revocation form (RFC 7009 §2.1) with the client's authentication.
#[derive(Default, Deserialize)]
pub struct RevokeRequest {
    pub token: Option<String>,
    /// A hint only (RFC 7009 §2.1): every token here is an access token, whatever it says.
    pub token_type_hint: Option<String>,
    /// When sent, it must name the client that authenticates.
    pub client_id: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
}

impl std::fmt::Debug for RevokeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokeRequest")
            .field("token_type_hint", &self.token_type_hint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What a revocation did; either way the answer is a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The token was the client's, and has ended.
    Revoked,
    /// Nothing changed: the token is unknown, expired, already revoked, or not the client's.
    Unchanged,
}

impl Services {
    /// `POST /oauth/v2/revoke`. Client authentication failures are rate-limited as at
    /// introspection.
    pub async fn revoke(
        &self,
        req: RevokeRequest,
        basic: Option<BasicAuth>,
        peer: Option<IpAddr>,
    ) -> Result<Revocation, OAuthError> {
        let auth = ClientAuth {
            assertion_type: req.client_assertion_type.as_deref(),
            assertion: req.client_assertion.as_deref(),
            basic,
        };
        let client = self.authenticate_client(auth, peer, None).await?;
        if let Some(named) = req.client_id.as_deref().filter(|c| !c.is_empty())
            && named != client.client_id()
        {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidClient,
                format!(
                    "client_id {} is not the client that authenticated",
                    shown(named)
                ),
            ));
        }
        let token = req
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::new(OAuthErrorCode::InvalidRequest, "token is required"))?;
        let Some(info) = self.verify_access_token(token).await? else {
            return Ok(Revocation::Unchanged);
        };
        let (holds, actor) = match &client {
            Client::User(user) => (info.user_id == user.id, user.id.clone()),
            Client::App(app) => (app_may_see(app, &info), format!("app:{}", app.id)),
        };
        if !holds {
            tracing::info!(client_id = %shown(client.client_id()), token_id = %info.id, "revocation of a token the client does not hold: nothing changed");
            return Ok(Revocation::Unchanged);
        }
        let ctx = Ctx {
            actor,
            org_id: info.org_id.clone(),
            roles: Vec::new(),
        };
        let mut w = self.begin_write(&ctx).await?;
        // The user's row first (a write, as SQLite wants): a grant for the same user waits.
        let Some(sequence) = repo::bump_user(w.db(), &info.org_id, &info.user_id, w.now).await?
        else {
            // The user was removed meanwhile, and its tokens with it.
            return Ok(Revocation::Unchanged);
        };
        if !repo::delete_access_token(w.db(), &info.id).await? {
            // Revoked meanwhile, or its key went: dropping the write records nothing.
            return Ok(Revocation::Unchanged);
        }
        w.record(
            "user",
            &info.user_id,
            sequence,
            TOKEN_REVOKED,
            json!({"tokenId": info.id}),
        );
        w.commit().await?;
        tracing::info!(client_id = %shown(client.client_id()), token_id = %info.id, "access token revoked");
        Ok(Revocation::Revoked)
    }
}
