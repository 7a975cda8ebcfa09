//! Who is calling and what they may do: bearer token → caller → permission in the org
//! context (`x-zitadel-orgid`, or the caller's own org).
use std::net::IpAddr;

use super::{
    Services,
    dpop::{self, HttpTarget, Refusal},
    throttle,
};
use crate::{
    domain::{
        model::User,
        principal::{Permission, Role, dominates, uncovered},
        scope::has_api_scope,
        text::shown,
    },
    error::{Error, Result},
    storage::{ConnectionTrait, repo},
};

pub use crate::domain::scope::API_SCOPE;

/// An authorized call: who acts, in which org, holding which roles there (its instance
/// roles and its roles in that org).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    pub actor: String,
    pub org_id: String,
    pub roles: Vec<Role>,
}

impl Ctx {
    pub fn may(&self, permission: Permission) -> bool {
        self.roles.iter().any(|r| r.grants(permission))
    }

    /// Refuses, as v1 does, unless the caller holds `permission` in the context org.
    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.may(permission) {
            Ok(())
        } else {
            Err(denied_in(&[permission], &self.org_id))
        }
    }
}

fn denied_in(permissions: &[Permission], org_id: &str) -> Error {
    let names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
    Error::permission_denied(
        DENIED,
        format!(
            "no permission {} in organization {}",
            names.join(" or "),
            shown(org_id)
        ),
    )
}

/// What the transport hands over: the raw `authorization` and `x-zitadel-orgid` values, the
/// `DPoP` proofs and where the request went (for DPoP-bound tokens), and the peer address (for
/// rate limits).
#[derive(Clone, Default)]
pub struct Credentials {
    pub authorization: Option<String>,
    pub org_id: Option<String>,
    pub dpop: Vec<String>,
    pub target: Option<HttpTarget>,
    pub peer: Option<IpAddr>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("org_id", &self.org_id)
            .field("target", &self.target)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

const DENIED: &str = "AUTH-5mWD2";
/// v2's permission refusal.
pub const V2_DENIED: &str = "AUTHZ-HKJD33";

pub(crate) fn v2_denied(permission: Permission) -> Error {
    Error::permission_denied(
        V2_DENIED,
        format!("no permission {permission} for this object"),
    )
}

/// A caller tried to manage a user holding roles it does not hold itself.
pub const BOUNDARY: &str = "AUTH-Priv01";

impl Services {
    /// Checks the bearer token and that its user holds `permission` in the org context.
    /// Presented tokens that fail are charged to the caller's address (see [`throttle`]).
    pub async fn authorize(&self, creds: &Credentials, permission: Permission) -> Result<Ctx> {
        self.authorize_any(creds, &[permission]).await
    }

    /// [`Services::authorize`] for calls whose permission depends on the object (a key of a
    /// user or of an app): the caller must hold one of `permissions` in the context org; the
    /// use case then requires the one it needs with [`Ctx::require`].
    pub async fn authorize_any(
        &self,
        creds: &Credentials,
        permissions: &[Permission],
    ) -> Result<Ctx> {
        let user = self.caller(creds).await?;
        let org_id = match creds.org_id.as_deref().map(str::trim) {
            Some(o) if !o.is_empty() => o.to_owned(),
            _ => user.org_id.clone(),
        };
        let denied = || denied_in(permissions, &org_id);
        let ctx = self.context(&user.id, &org_id).await?.ok_or_else(denied)?;
        if permissions.iter().any(|p| ctx.may(*p)) {
            Ok(ctx)
        } else {
            Err(denied())
        }
    }

    /// The user behind a bearer token that is valid for the management APIs. A valid token is
    /// never refused because others sent invalid ones from the same address (its check — a
    /// lookup by hash, from memory when possible — costs no more than a refusal); invalid ones
    /// are answered RESOURCE_EXHAUSTED / 429 once the address's failure budget is spent.
    pub async fn caller(&self, creds: &Credentials) -> Result<crate::domain::model::User> {
        self.authenticated(creds).await.map_err(|e| {
            let scheme = bearer(creds.authorization.as_deref()).ok().map(|(s, _)| s);
            dpop::token_challenge(e, scheme)
        })
    }

    async fn authenticated(&self, creds: &Credentials) -> Result<crate::domain::model::User> {
        let (scheme, token) = bearer(creds.authorization.as_deref())?;
        let info = match self.verify_access_token(token).await? {
            Some(info) => info,
            None => {
                let by_address = throttle::subjects(None, creds.peer);
                self.bearer_throttle.check(&by_address)?;
                self.bearer_throttle.failed(&by_address);
                return Err(Error::unauthenticated(
                    "AUTH-7fs2e",
                    "the access token is invalid, expired or revoked",
                ));
            }
        };
        self.check_binding(creds, scheme, token, info.dpop_jkt.as_deref())
            .await?;
        if !has_api_scope(&info.scopes) {
            return Err(Error::unauthenticated(
                "AUTH-Aud01",
                format!("the access token is not for this API: request the scope {API_SCOPE}"),
            ));
        }
        self.cached_user(&info.user_id).await?.ok_or_else(|| {
            Error::unauthenticated("AUTH-Usr01", "the token's user no longer exists")
        })
    }

    /// RFC 9449 §7: a DPoP-bound token goes with `authorization: DPoP` and a fresh proof of
    /// its key for this request; any other token with `Bearer`.
    async fn check_binding(
        &self,
        creds: &Credentials,
        scheme: Scheme,
        token: &str,
        bound_to: Option<&str>,
    ) -> Result<()> {
        let now = self.clock.now().timestamp();
        // The nonce to offer with a refusal, when the API asks for nonces.
        let offer = || self.dpop.nonce_to_offer(false, now);
        let refused = |error: &str, message: String, nonce: Option<String>| {
            let challenge = dpop::challenge(error, &message, nonce);
            Error::unauthenticated("AUTH-Dpop01", message).with_challenge(challenge)
        };
        let Some(jkt) = bound_to else {
            if scheme == Scheme::Dpop {
                return Err(refused(
                    "invalid_token",
                    "the access token is not bound to a key: send it as 'authorization: Bearer <token>'".into(),
                    None,
                ));
            }
            return Ok(());
        };
        if scheme == Scheme::Bearer {
            return Err(refused(
                "invalid_token",
                "the access token is bound to a key (DPoP): send it as 'authorization: DPoP <token>' with a DPoP proof signed by that key".into(),
                None,
            ));
        }
        let target = creds.target.as_ref().ok_or_else(|| {
            Error::internal(
                "AUTH-Dpop02",
                "the request's target is unknown to the DPoP check",
            )
        })?;
        let url = format!("{}{}", self.settings.issuer, target.path);
        let proof = match self
            .dpop_proof(&creds.dpop, target.method, &url, Some(token))
            .await
        {
            Ok(Some(proof)) => proof,
            Ok(None) => {
                return Err(refused(
                    "invalid_dpop_proof",
                    "a DPoP-bound token needs a DPoP proof: send the 'dpop' header".into(),
                    offer(),
                ));
            }
            Err(Refusal::Invalid(m)) => {
                return Err(refused("invalid_dpop_proof", m, offer()));
            }
            Err(Refusal::UseNonce(m, nonce)) => {
                return Err(refused("use_dpop_nonce", m, Some(nonce)));
            }
            Err(Refusal::Failed(e)) => return Err(e),
        };
        if proof.jkt != jkt {
            return Err(refused(
                "invalid_dpop_proof",
                "the DPoP proof is signed by another key than the one the access token is bound to"
                    .into(),
                offer(),
            ));
        }
        Ok(())
    }

    /// `user_id` acting in `org_id`, with the roles it holds there; `None` when no such org.
    pub async fn context(&self, user_id: &str, org_id: &str) -> Result<Option<Ctx>> {
        if org_id.chars().count() > 200 || !self.org_exists(org_id).await? {
            return Ok(None);
        }
        let roles = self.cached_roles(org_id, user_id).await?;
        Ok(Some(Ctx {
            actor: user_id.to_owned(),
            org_id: org_id.to_owned(),
            roles,
        }))
    }

    /// Where `user_id` holds `permission`: everywhere (an instance role grants it), or in
    /// the orgs whose membership grants it.
    pub async fn where_permitted(
        &self,
        user_id: &str,
        permission: Permission,
    ) -> Result<crate::domain::list::Visible> {
        use crate::domain::list::Visible;
        let instance = repo::instance_roles(&self.db, user_id).await?;
        if instance.iter().any(|r| r.grants(permission)) {
            return Ok(Visible::All);
        }
        let orgs = repo::memberships_of(&self.db, user_id)
            .await?
            .into_iter()
            .filter(|m| m.roles.iter().any(|r| r.grants(permission)))
            .map(|m| m.org_id)
            .collect();
        Ok(Visible::Some {
            orgs,
            own_user: None,
        })
    }

    /// A user's roles in `org_id`: its instance roles and its membership there.
    pub(crate) async fn roles_of(
        &self,
        db: &impl ConnectionTrait,
        org_id: &str,
        user_id: &str,
    ) -> Result<Vec<Role>> {
        let mut roles: Vec<Role> = repo::instance_roles(db, user_id).await?;
        if let Some(m) = repo::find_org_member(db, org_id, user_id).await? {
            roles.extend(m.roles);
        }
        Ok(roles)
    }

    /// The privilege boundary: refuses unless the caller holds every role `user_id` holds in
    /// the context org (instance roles included). Call it inside the write's transaction.
    pub(crate) async fn check_boundary(
        &self,
        db: &impl ConnectionTrait,
        ctx: &Ctx,
        user_id: &str,
    ) -> Result<()> {
        if ctx.roles.contains(&Role::IamOwner) {
            // IAM_OWNER holds every role there is: no target's roles can exceed it.
            return Ok(());
        }
        let target = self.roles_of(db, &ctx.org_id, user_id).await?;
        boundary(ctx, user_id, &target)
    }

    /// [`Services::check_boundary`] from memory: a quick refusal before expensive work (a
    /// key generation); the write checks again in its transaction.
    pub(crate) async fn precheck_boundary(&self, ctx: &Ctx, user_id: &str) -> Result<()> {
        let target = self.cached_roles(&ctx.org_id, user_id).await?;
        boundary(ctx, user_id, &target)
    }

    /// v2's rule for an object named by id: the caller in the object's org, if it holds
    /// `permission` there or is `self_target`. A caller of another org who may not even `read`
    /// there gets `missing()`, the answer for an object that does not exist: any other answer
    /// would tell it that the id is taken in an org it cannot see. Within its own org a caller
    /// learns it lacks `permission`, as upstream answers (no other tenant is revealed).
    pub(crate) async fn v2_object_context(
        &self,
        caller: &User,
        org_id: &str,
        permission: Permission,
        read: Permission,
        self_target: Option<&str>,
        missing: impl Fn() -> Error,
    ) -> Result<Ctx> {
        let ctx = self
            .context(&caller.id, org_id)
            .await?
            .ok_or_else(&missing)?;
        if ctx.may(permission) || self_target == Some(caller.id.as_str()) {
            Ok(ctx)
        } else if ctx.may(read) || caller.org_id == org_id {
            Err(v2_denied(permission))
        } else {
            Err(missing())
        }
    }
}

fn boundary(ctx: &Ctx, user_id: &str, target: &[Role]) -> Result<()> {
    if dominates(&ctx.roles, target) {
        return Ok(());
    }
    Err(Error::permission_denied(
        BOUNDARY,
        format!(
            "user {user_id} holds {}, which you do not hold; only a caller holding every role of a user may manage its keys, its membership or remove it",
            uncovered(&ctx.roles, target).join(", ")
        ),
    ))
}

/// How the token was presented: `Bearer` (RFC 6750) or `DPoP` (RFC 9449 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bearer,
    Dpop,
}

fn bearer(header: Option<&str>) -> Result<(Scheme, &str)> {
    let missing = || {
        Error::unauthenticated(
            "AUTH-7fs1e",
            "authentication required: send the header 'authorization: Bearer <access token>'",
        )
    };
    let value = header
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(missing)?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(missing());
    };
    if token.trim().is_empty() {
        return Err(missing());
    }
    Ok((scheme, token.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer abc")).unwrap(), (Scheme::Bearer, "abc"));
        assert_eq!(
            bearer(Some("bearer  abc ")).unwrap(),
            (Scheme::Bearer, "abc")
        );
        assert_eq!(bearer(Some("DPoP abc")).unwrap(), (Scheme::Dpop, "abc"));
        assert!(bearer(Some("DPoP ")).is_err());
        assert_eq!(bearer(None).unwrap_err().id, "AUTH-7fs1e");
        assert!(bearer(Some("Basic abc")).is_err());
        assert!(bearer(Some("Bearer ")).is_err());
    }
}
