//! `authnkeys.v1.KeyService` and `PolicyService`: authn-keys' own API for the key lifecycle
//! and the org key policy. Thin methods, as ManagementService's: authorize (v1's bearer token
//! and `x-zitadel-orgid`), convert, call the service, convert back.
use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};

use super::{
    convert::{defined_enum, timestamp as time},
    edge::credentials,
};
use crate::{
    domain::{
        jwt::Algorithm,
        key_policy::{KeyPolicy, MAX_POLICY_LIFETIME, lifetime_out_of_range},
        list::{KeyQuery, Page},
        model::{AuthnKey, KeyOrigin, KeyOwner, KeyState},
        principal::Permission,
    },
    error::Error,
    proto::authnkeys::v1::{
        self as pb, key_service_server::KeyService, policy_service_server::PolicyService,
    },
    service::{Ctx, Services, authn_keys::NewKey, authn_keys::parse_algorithm},
};

type Rpc<T> = Result<Response<T>, Status>;

const KEY_READ: [Permission; 2] = [Permission::UserRead, Permission::ProjectAppRead];
const KEY_WRITE: [Permission; 2] = [Permission::UserWrite, Permission::ProjectAppWrite];

#[derive(Clone)]
pub struct AuthnKeysApi {
    pub(super) svc: Services,
}

impl AuthnKeysApi {
    pub fn new(svc: Services) -> Self {
        AuthnKeysApi { svc }
    }

    pub(super) async fn authorize<T>(
        &self,
        req: Request<T>,
        any_of: &[Permission],
    ) -> Result<(Ctx, T), Status> {
        let ctx = self.svc.authorize_any(&credentials(&req), any_of).await?;
        Ok((ctx, req.into_inner()))
    }
}

fn origin_pb(o: KeyOrigin) -> pb::KeyOrigin {
    match o {
        KeyOrigin::Generated => pb::KeyOrigin::Generated,
        KeyOrigin::Uploaded => pb::KeyOrigin::Uploaded,
    }
}

/// An origin filter or policy entry: unspecified reads as "none given".
fn origin(field: &'static str, value: i32) -> Result<Option<KeyOrigin>, Error> {
    Ok(match defined_enum::<pb::KeyOrigin>(field, value)? {
        pb::KeyOrigin::Unspecified => None,
        pb::KeyOrigin::Generated => Some(KeyOrigin::Generated),
        pb::KeyOrigin::Uploaded => Some(KeyOrigin::Uploaded),
    })
}

fn state_pb(s: KeyState) -> pb::KeyState {
    match s {
        KeyState::Active => pb::KeyState::Active,
        KeyState::Disabled => pb::KeyState::Disabled,
        KeyState::Expired => pb::KeyState::Expired,
    }
}

pub fn key(k: &AuthnKey, now: DateTime<Utc>) -> pb::Key {
    pb::Key {
        id: k.id.clone(),
        org_id: k.org_id.clone(),
        owner: Some(match &k.owner {
            KeyOwner::User { user_id } => pb::key::Owner::UserId(user_id.clone()),
            KeyOwner::App { project_id, app_id } => pb::key::Owner::App(pb::AppRef {
                project_id: project_id.clone(),
                app_id: app_id.clone(),
            }),
        }),
        algorithm: k.algorithm.as_str().to_owned(),
        origin: origin_pb(k.origin) as i32,
        thumbprint: k.thumbprint.clone(),
        created_at: Some(k.created_at.into()),
        expires_at: Some(k.expires_at.into()),
        state: state_pb(k.state(now)) as i32,
        disabled_at: k.disabled.as_ref().map(|d| d.at.into()),
        // Left out, as before, when disabled without a reason.
        disabled_reason: k
            .disabled
            .as_ref()
            .map(|d| d.reason.clone())
            .filter(|r| !r.is_empty()),
        last_used: k.last_used.as_ref().map(|u| pb::LastUse {
            time: Some(u.at.into()),
            r#use: u.kind.as_str().to_owned(),
            address: u.address.clone(),
        }),
    }
}

fn owner(field: &'static str, o: Option<pb::add_key_request::Owner>) -> Result<KeyOwner, Error> {
    match o {
        Some(pb::add_key_request::Owner::UserId(id)) => Ok(KeyOwner::user(id)),
        Some(pb::add_key_request::Owner::App(a)) => Ok(KeyOwner::app(a.project_id, a.app_id)),
        None => Err(Error::invalid_argument(
            "KEY-Own01",
            format!("{field}: name the key's owner, userId or app {{projectId, appId}}"),
        )),
    }
}

fn duration(
    field: &'static str,
    d: Option<pbjson_types::Duration>,
) -> Result<Option<chrono::Duration>, Error> {
    let Some(d) = d else { return Ok(None) };
    if d.seconds < 0 || d.nanos < 0 {
        return Err(Error::invalid_argument(
            "POLICY-Dur01",
            format!("{field} must not be negative"),
        ));
    }
    if d.nanos != 0 {
        return Err(Error::invalid_argument(
            "POLICY-Dur03",
            format!("{field} must be whole seconds"),
        ));
    }
    // Checked here, before it becomes a `chrono::Duration` (which cannot hold every i64 of
    // seconds); `KeyPolicy::validate` checks the lower bound and the rest.
    if d.seconds > MAX_POLICY_LIFETIME.num_seconds() {
        return Err(lifetime_out_of_range(field, d.seconds));
    }
    Ok(Some(chrono::Duration::seconds(d.seconds)))
}

fn policy(p: Option<pb::KeyPolicy>) -> Result<KeyPolicy, Error> {
    // Without it, a body such as {"maxLifetime": "90d"} (the limit beside `policy`, not in
    // it) would set a policy with no limits at all.
    let p = p.ok_or_else(|| {
        Error::invalid_argument(
            "POLICY-Req01",
            "policy is required: {\"policy\": {…}}; an empty policy sets no limits, ResetKeyPolicy goes back to the instance default",
        )
    })?;
    let mut allowed_origins = Vec::new();
    for o in p.allowed_origins {
        match origin("allowedOrigins", o)? {
            Some(o) if !allowed_origins.contains(&o) => allowed_origins.push(o),
            Some(_) => {}
            None => {
                return Err(Error::invalid_argument(
                    "POLICY-Orig2",
                    "allowedOrigins: KEY_ORIGIN_UNSPECIFIED is not an origin",
                ));
            }
        }
    }
    let mut allowed_algorithms: Vec<Algorithm> = Vec::new();
    for a in &p.allowed_algorithms {
        let alg = parse_algorithm("allowedAlgorithms:", a)?.ok_or_else(|| {
            Error::invalid_argument("KEY-Alg01", "allowedAlgorithms: an entry is empty")
        })?;
        if !allowed_algorithms.contains(&alg) {
            allowed_algorithms.push(alg);
        }
    }
    Ok(KeyPolicy {
        max_lifetime: duration("maxLifetime", p.max_lifetime)?,
        default_lifetime: duration("defaultLifetime", p.default_lifetime)?,
        max_keys_per_owner: p.max_keys_per_owner,
        allowed_origins,
        allowed_algorithms,
    })
}

fn policy_pb(p: &KeyPolicy) -> pb::KeyPolicy {
    let d = |d: Option<chrono::Duration>| {
        d.map(|d| pbjson_types::Duration {
            seconds: d.num_seconds(),
            nanos: 0,
        })
    };
    pb::KeyPolicy {
        max_lifetime: d(p.max_lifetime),
        default_lifetime: d(p.default_lifetime),
        max_keys_per_owner: p.max_keys_per_owner,
        allowed_origins: p
            .allowed_origins
            .iter()
            .map(|o| origin_pb(*o) as i32)
            .collect(),
        allowed_algorithms: p
            .allowed_algorithms
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
    }
}

fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

#[tonic::async_trait]
impl KeyService for AuthnKeysApi {
    async fn add_key(&self, req: Request<pb::AddKeyRequest>) -> Rpc<pb::AddKeyResponse> {
        let (ctx, req) = self.authorize(req, &KEY_WRITE).await?;
        let new = NewKey {
            owner: owner("owner", req.owner)?,
            key_type: crate::service::authn_keys::KEY_TYPE_JSON,
            expiration: time("expirationDate", req.expiration_date)?,
            public_key: Some(req.public_key).filter(|k| !k.is_empty()),
            algorithm: parse_algorithm("algorithm", &req.algorithm)?,
        };
        let added = self.svc.add_key_any(&ctx, new).await?;
        Ok(Response::new(pb::AddKeyResponse {
            key: Some(key(&added.key, self.svc.now())),
            key_details: added.key_file.map(|f| f.to_vec()),
        }))
    }

    async fn get_key(&self, req: Request<pb::GetKeyRequest>) -> Rpc<pb::GetKeyResponse> {
        let (ctx, req) = self.authorize(req, &KEY_READ).await?;
        let k = self.svc.get_key_any(&ctx, &req.key_id).await?;
        Ok(Response::new(pb::GetKeyResponse {
            key: Some(key(&k, self.svc.now())),
        }))
    }

    async fn list_keys(&self, req: Request<pb::ListKeysRequest>) -> Rpc<pb::ListKeysResponse> {
        let (ctx, req) = self.authorize(req, &KEY_READ).await?;
        let state = match defined_enum::<pb::KeyState>("state", req.state)? {
            pb::KeyState::Unspecified => None,
            pb::KeyState::Active => Some(KeyState::Active),
            pb::KeyState::Disabled => Some(KeyState::Disabled),
            pb::KeyState::Expired => Some(KeyState::Expired),
        };
        let query = KeyQuery {
            user_id: non_empty(req.user_id),
            project_id: non_empty(req.project_id),
            app_id: non_empty(req.app_id),
            state,
            origin: origin("origin", req.origin)?,
            unused_since: time("unusedSince", req.unused_since)?,
            expires_before: time("expiresBefore", req.expires_before)?,
            ..KeyQuery::default()
        };
        let page = Page::new(
            req.offset,
            req.limit,
            req.asc,
            self.svc.settings.list_limits,
        )?;
        let listed = self.svc.list_keys_any(&ctx, query, page).await?;
        let now = self.svc.now();
        Ok(Response::new(pb::ListKeysResponse {
            result: listed.items.iter().map(|k| key(k, now)).collect(),
            total_result: listed.total,
        }))
    }

    async fn disable_key(
        &self,
        req: Request<pb::DisableKeyRequest>,
    ) -> Rpc<pb::DisableKeyResponse> {
        let (ctx, req) = self.authorize(req, &KEY_WRITE).await?;
        let k = self.svc.disable_key(&ctx, &req.key_id, &req.reason).await?;
        Ok(Response::new(pb::DisableKeyResponse {
            key: Some(key(&k, self.svc.now())),
        }))
    }

    async fn enable_key(&self, req: Request<pb::EnableKeyRequest>) -> Rpc<pb::EnableKeyResponse> {
        let (ctx, req) = self.authorize(req, &KEY_WRITE).await?;
        let k = self.svc.enable_key(&ctx, &req.key_id).await?;
        Ok(Response::new(pb::EnableKeyResponse {
            key: Some(key(&k, self.svc.now())),
        }))
    }

    async fn remove_key(&self, req: Request<pb::RemoveKeyRequest>) -> Rpc<pb::RemoveKeyResponse> {
        let (ctx, req) = self.authorize(req, &KEY_WRITE).await?;
        self.svc.remove_key_any(&ctx, &req.key_id).await?;
        Ok(Response::new(pb::RemoveKeyResponse {}))
    }
}

#[tonic::async_trait]
impl PolicyService for AuthnKeysApi {
    async fn get_key_policy(
        &self,
        req: Request<pb::GetKeyPolicyRequest>,
    ) -> Rpc<pb::GetKeyPolicyResponse> {
        let (ctx, _) = self.authorize(req, &[Permission::PolicyRead]).await?;
        let (p, is_default) = self.svc.get_key_policy(&ctx).await?;
        Ok(Response::new(pb::GetKeyPolicyResponse {
            policy: Some(policy_pb(&p)),
            is_default,
        }))
    }

    async fn set_key_policy(
        &self,
        req: Request<pb::SetKeyPolicyRequest>,
    ) -> Rpc<pb::SetKeyPolicyResponse> {
        let (ctx, req) = self.authorize(req, &[Permission::PolicyWrite]).await?;
        let p = self.svc.set_key_policy(&ctx, policy(req.policy)?).await?;
        Ok(Response::new(pb::SetKeyPolicyResponse {
            policy: Some(policy_pb(&p)),
        }))
    }

    async fn reset_key_policy(
        &self,
        req: Request<pb::ResetKeyPolicyRequest>,
    ) -> Rpc<pb::ResetKeyPolicyResponse> {
        let (ctx, _) = self.authorize(req, &[Permission::PolicyWrite]).await?;
        let p = self.svc.reset_key_policy(&ctx).await?;
        Ok(Response::new(pb::ResetKeyPolicyResponse {
            policy: Some(policy_pb(&p)),
        }))
    }
}
