//! `authnkeys.v1.TrustService`: a machine user's trusts in outside issuers.
use tonic::{Request, Response, Status};

use super::authnkeys::AuthnKeysApi;
use crate::{
    domain::{list::Page, principal::Permission},
    error::Error,
    proto::authnkeys::v1::{self as pb, trust_service_server::TrustService},
    service::trusts::NewTrust,
    storage::entity::trust,
};

type Rpc<T> = Result<Response<T>, Status>;

pub fn trust_pb(t: &trust::Model) -> pb::Trust {
    let jwks = t
        .jwks
        .as_deref()
        .and_then(|text| serde_json::from_str::<pbjson_types::Struct>(text).ok());
    pb::Trust {
        id: t.id.clone(),
        org_id: t.org_id.clone(),
        user_id: t.user_id.clone(),
        issuer: t.issuer.clone(),
        subject: t.subject.clone(),
        audience: t.audience.clone(),
        jwks_uri: t.jwks_uri.clone().unwrap_or_default(),
        jwks,
        claims: serde_json::from_str(&t.claims).unwrap_or_default(),
        max_token_lifetime: t.max_token_lifetime_secs.map(|s| pbjson_types::Duration {
            seconds: s,
            nanos: 0,
        }),
        cap_at_token_expiry: t.cap_at_token_expiry,
        created_at: Some(t.created_at.with_timezone(&chrono::Utc).into()),
        created_by: t.created_by.clone(),
    }
}

fn lifetime(d: Option<pbjson_types::Duration>) -> Result<Option<chrono::Duration>, Error> {
    let Some(d) = d else { return Ok(None) };
    if d.seconds < 0 || d.nanos != 0 {
        return Err(Error::invalid_argument(
            "TRUST-Life1",
            "maxTokenLifetime must be between 1 second and 24 hours, in whole seconds",
        ));
    }
    Ok(Some(chrono::Duration::seconds(d.seconds)))
}

#[tonic::async_trait]
impl TrustService for AuthnKeysApi {
    async fn add_trust(&self, req: Request<pb::AddTrustRequest>) -> Rpc<pb::AddTrustResponse> {
        let (ctx, req) = self.authorize(req, &[Permission::UserWrite]).await?;
        let jwks =
            match req.jwks {
                Some(s) => Some(serde_json::to_value(&s).map_err(|_| {
                    Error::invalid_argument("TRUST-Jwks2", "jwks: not a JSON object")
                })?),
                None => None,
            };
        let new = NewTrust {
            user_id: req.user_id,
            issuer: req.issuer,
            subject: req.subject,
            audience: req.audience,
            claims: req.claims.into_iter().collect(),
            jwks_uri: req.jwks_uri,
            jwks,
            max_token_lifetime: lifetime(req.max_token_lifetime)?,
            cap_at_token_expiry: req.cap_at_token_expiry,
        };
        let t = self.svc.add_trust(&ctx, new).await?;
        Ok(Response::new(pb::AddTrustResponse {
            trust: Some(trust_pb(&t)),
        }))
    }

    async fn get_trust(&self, req: Request<pb::GetTrustRequest>) -> Rpc<pb::GetTrustResponse> {
        let (ctx, req) = self.authorize(req, &[Permission::UserRead]).await?;
        let t = self.svc.get_trust(&ctx, &req.trust_id).await?;
        Ok(Response::new(pb::GetTrustResponse {
            trust: Some(trust_pb(&t)),
        }))
    }

    async fn list_trusts(
        &self,
        req: Request<pb::ListTrustsRequest>,
    ) -> Rpc<pb::ListTrustsResponse> {
        let (ctx, req) = self.authorize(req, &[Permission::UserRead]).await?;
        let page = Page::new(
            req.offset,
            req.limit,
            req.asc,
            self.svc.settings.list_limits,
        )?;
        let user = (!req.user_id.is_empty()).then_some(req.user_id.as_str());
        let (trusts, total) = self.svc.list_trusts(&ctx, user, page).await?;
        Ok(Response::new(pb::ListTrustsResponse {
            result: trusts.iter().map(trust_pb).collect(),
            total_result: total,
        }))
    }

    async fn remove_trust(
        &self,
        req: Request<pb::RemoveTrustRequest>,
    ) -> Rpc<pb::RemoveTrustResponse> {
        let (ctx, req) = self.authorize(req, &[Permission::UserWrite]).await?;
        self.svc.remove_trust(&ctx, &req.trust_id).await?;
        Ok(Response::new(pb::RemoveTrustResponse {}))
    }
}
