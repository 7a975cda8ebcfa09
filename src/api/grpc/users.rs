//! `authnkeys.v1.MachineUserService`: a machine user's settings that ZITADEL's user APIs lack.
use tonic::{Request, Response, Status};

use super::authnkeys::AuthnKeysApi;
use crate::{
    domain::principal::Permission,
    proto::authnkeys::v1::{self as pb, machine_user_service_server::MachineUserService},
    service::users::TokenSettings,
};

type Rpc<T> = Result<Response<T>, Status>;

fn settings_pb(s: &TokenSettings) -> pb::TokenSettings {
    pb::TokenSettings {
        user_id: s.user_id.clone(),
        dpop_bound_access_tokens: s.dpop_bound,
    }
}

#[tonic::async_trait]
impl MachineUserService for AuthnKeysApi {
    async fn get_token_settings(
        &self,
        req: Request<pb::GetTokenSettingsRequest>,
    ) -> Rpc<pb::GetTokenSettingsResponse> {
        let (ctx, req) = self.authorize(req, &[Permission::UserRead]).await?;
        let s = self.svc.get_token_settings(&ctx, &req.user_id).await?;
        Ok(Response::new(pb::GetTokenSettingsResponse {
            settings: Some(settings_pb(&s)),
        }))
    }

    async fn set_token_settings(
        &self,
        req: Request<pb::SetTokenSettingsRequest>,
    ) -> Rpc<pb::SetTokenSettingsResponse> {
        let (ctx, req) = self.authorize(req, &[Permission::UserWrite]).await?;
        let s = self
            .svc
            .set_token_settings(&ctx, &req.user_id, req.dpop_bound_access_tokens)
            .await?;
        Ok(Response::new(pb::SetTokenSettingsResponse {
            settings: Some(settings_pb(&s)),
            changed_at: Some(s.changed_at.into()),
        }))
    }
}
