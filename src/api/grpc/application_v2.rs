//! `zitadel.application.v2.ApplicationService` (the key part): thin methods over the same app
//! keys as v1's AddAppKey & co. No REST rules upstream: Connect, gRPC and gRPC-Web only.
use tonic::{Request, Response, Status};

use super::{
    edge::{caller, id_filter, pagination, time, timestamp, window},
    pgv::{required, runes},
};
use crate::{
    domain::{
        list::{KeyFilter, KeyOrder},
        model::OwnerKind,
    },
    proto::zitadel::application::v2::{
        self as pb, application_key_search_filter::Filter,
        application_service_server::ApplicationService,
    },
    service::Services,
};

#[derive(Clone)]
pub struct ApplicationApi {
    svc: Services,
}

impl ApplicationApi {
    pub fn new(svc: Services) -> Self {
        ApplicationApi { svc }
    }
}

type Rpc<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ApplicationService for ApplicationApi {
    /// `project.app.write` on the project's org; expiration defaults to 9999-12-31.
    async fn create_application_key(
        &self,
        req: Request<pb::CreateApplicationKeyRequest>,
    ) -> Rpc<pb::CreateApplicationKeyResponse> {
        let caller = caller(&self.svc, &req).await?;
        let req = req.into_inner();
        const M: &str = "CreateApplicationKeyRequest";
        runes(M, "ApplicationId", &req.application_id, 1, 200)?;
        runes(M, "ProjectId", &req.project_id, 1, 200)?;
        let expiration = req.expiration_date.as_ref().map(time).transpose()?;
        let added = self
            .svc
            .add_app_key_v2(&caller, &req.project_id, &req.application_id, expiration)
            .await?;
        Ok(Response::new(pb::CreateApplicationKeyResponse {
            key_id: added.key.id.clone(),
            creation_date: timestamp(added.key.created_at),
            key_details: added.key_file.map(|f| f.to_vec()).unwrap_or_default(),
        }))
    }

    /// `project.app.write` on the project's org; not idempotent.
    async fn delete_application_key(
        &self,
        req: Request<pb::DeleteApplicationKeyRequest>,
    ) -> Rpc<pb::DeleteApplicationKeyResponse> {
        let caller = caller(&self.svc, &req).await?;
        let req = req.into_inner();
        const M: &str = "DeleteApplicationKeyRequest";
        runes(M, "KeyId", &req.key_id, 1, 200)?;
        runes(M, "ApplicationId", &req.application_id, 1, 200)?;
        runes(M, "ProjectId", &req.project_id, 1, 200)?;
        let deleted = self
            .svc
            .remove_app_key_v2(&caller, &req.project_id, &req.application_id, &req.key_id)
            .await?;
        Ok(Response::new(pb::DeleteApplicationKeyResponse {
            deletion_date: timestamp(deleted),
        }))
    }

    /// `project.app.read` on the key's org, checked after the lookup.
    async fn get_application_key(
        &self,
        req: Request<pb::GetApplicationKeyRequest>,
    ) -> Rpc<pb::GetApplicationKeyResponse> {
        let caller = caller(&self.svc, &req).await?;
        let req = req.into_inner();
        runes("GetApplicationKeyRequest", "KeyId", &req.key_id, 1, 200)?;
        let key = self.svc.get_app_key_v2(&caller, &req.key_id).await?;
        Ok(Response::new(pb::GetApplicationKeyResponse {
            key_id: key.id,
            creation_date: timestamp(key.created_at),
            expiration_date: timestamp(key.expires_at),
        }))
    }

    /// App keys of the orgs where the caller holds `project.app.read`; ANDed filters.
    async fn list_application_keys(
        &self,
        req: Request<pb::ListApplicationKeysRequest>,
    ) -> Rpc<pb::ListApplicationKeysResponse> {
        let caller = caller(&self.svc, &req).await?;
        let req = req.into_inner();
        use pb::ApplicationKeysSorting as S;
        // No rule on the column upstream: unknown numbers sort by id, as enum 0 does.
        let order = match S::try_from(req.sorting_column).unwrap_or(S::ApplicationKeysSortById) {
            S::ApplicationKeysSortById | S::ApplicationKeysSortByType => KeyOrder::Id,
            S::ApplicationKeysSortByProjectId => KeyOrder::ProjectId,
            S::ApplicationKeysSortByApplicationId => KeyOrder::OwnerId,
            S::ApplicationKeysSortByCreationDate => KeyOrder::Created,
            S::ApplicationKeysSortByOrganizationId => KeyOrder::OrgId,
            S::ApplicationKeysSortByExpiration => KeyOrder::Expiration,
        };
        let mut filters = Vec::with_capacity(req.filters.len());
        for f in req.filters {
            let filter = required("ApplicationKeySearchFilter", "Filter", &f.filter)?;
            filters.push(match filter {
                Filter::ApplicationIdFilter(f) => KeyFilter::OwnerId(id_filter(
                    "ApplicationKeyApplicationIDFilter",
                    "ApplicationId",
                    &f.application_id,
                    0,
                )?),
                Filter::ProjectIdFilter(f) => KeyFilter::ProjectId(id_filter(
                    "ApplicationKeyProjectIDFilter",
                    "ProjectId",
                    &f.project_id,
                    1,
                )?),
                Filter::OrganizationIdFilter(f) => KeyFilter::OrgId(id_filter(
                    "ApplicationKeyOrganizationIDFilter",
                    "OrganizationId",
                    &f.organization_id,
                    1,
                )?),
            });
        }
        let window = window(req.pagination)?;
        let page = self
            .svc
            .search_keys_v2(&caller, OwnerKind::App, &filters, order, window)
            .await?;
        Ok(Response::new(pb::ListApplicationKeysResponse {
            keys: page
                .items
                .iter()
                .map(|k| pb::ApplicationKey {
                    key_id: k.id.clone(),
                    application_id: k.owner_id().to_owned(),
                    project_id: k.owner.project_id().unwrap_or_default().to_owned(),
                    creation_date: timestamp(k.created_at),
                    organization_id: k.org_id.clone(),
                    expiration_date: timestamp(k.expires_at),
                })
                .collect(),
            pagination: pagination(page.total, page.limit),
        }))
    }
}
