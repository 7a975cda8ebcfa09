//! `zitadel.management.v1.ManagementService`: one thin method per RPC — authorize, convert,
//! call the service, convert back. REST reaches these same methods through the gateway.
use tonic::{Request, Response, Status};

use super::{
    convert::{self, defined_enum},
    edge::credentials,
};
use crate::{
    domain::{
        model::{AccessTokenType, ApiAuthMethod, KeyOwner},
        principal::Permission,
    },
    proto::zitadel::{
        app as app_pb, authn, management::v1::*, project as project_pb, user as user_pb,
    },
    service::{Ctx, Services, authn_keys::NewKey, projects::NewProject, users::NewMachineUser},
};

/// The service implementation handed to tonic (and called in-process by the REST gateway).
#[derive(Clone)]
pub struct ManagementApi {
    svc: Services,
}

impl ManagementApi {
    pub fn new(svc: Services) -> Self {
        ManagementApi { svc }
    }

    async fn authorize<T>(
        &self,
        req: Request<T>,
        permission: Permission,
    ) -> Result<(Ctx, T), Status> {
        let ctx = self.svc.authorize(&credentials(&req), permission).await?;
        Ok((ctx, req.into_inner()))
    }
}

type Rpc<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl management_service_server::ManagementService for ManagementApi {
    /// GET /management/v1/healthz; no authentication.
    async fn healthz(&self, _req: Request<HealthzRequest>) -> Rpc<HealthzResponse> {
        Ok(Response::new(HealthzResponse {}))
    }

    /// GET /management/v1/users/{id} (user.read)
    async fn get_user_by_id(&self, req: Request<GetUserByIdRequest>) -> Rpc<GetUserByIdResponse> {
        let (ctx, req) = self.authorize(req, Permission::UserRead).await?;
        let user = self.svc.get_user(&ctx, &req.id).await?;
        let org = self.svc.get_org(&ctx).await?;
        Ok(Response::new(GetUserByIdResponse {
            user: Some(convert::user(&user, &org)),
        }))
    }

    /// POST /management/v1/users/machine (user.write)
    async fn add_machine_user(
        &self,
        req: Request<AddMachineUserRequest>,
    ) -> Rpc<AddMachineUserResponse> {
        let (ctx, req) = self.authorize(req, Permission::UserWrite).await?;
        let access_token_type = match defined_enum::<user_pb::v1::AccessTokenType>(
            "access_token_type",
            req.access_token_type,
        )? {
            user_pb::v1::AccessTokenType::Bearer => AccessTokenType::Bearer,
            user_pb::v1::AccessTokenType::Jwt => AccessTokenType::Jwt,
        };
        let new = NewMachineUser {
            user_name: req.user_name,
            name: req.name,
            description: req.description,
            access_token_type,
            user_id: req.user_id,
        };
        let (user_id, details) = self.svc.add_machine_user(&ctx, new).await?;
        Ok(Response::new(AddMachineUserResponse {
            user_id,
            details: Some(convert::details(&details)),
        }))
    }

    /// DELETE /management/v1/users/{id} (user.delete)
    async fn remove_user(&self, req: Request<RemoveUserRequest>) -> Rpc<RemoveUserResponse> {
        let (ctx, req) = self.authorize(req, Permission::UserDelete).await?;
        let details = self.svc.remove_user(&ctx, &req.id).await?;
        Ok(Response::new(RemoveUserResponse {
            details: Some(convert::details(&details)),
        }))
    }

    /// POST /management/v1/users/_search (user.read)
    async fn list_users(&self, req: Request<ListUsersRequest>) -> Rpc<ListUsersResponse> {
        let (ctx, req) = self.authorize(req, Permission::UserRead).await?;
        let order = convert::user_order(req.sorting_column)?;
        let queries = convert::user_queries(req.queries)?;
        let listed = self
            .svc
            .list_users(&ctx, convert::page(req.query), order, &queries)
            .await?;
        let org = self.svc.get_org(&ctx).await?;
        Ok(Response::new(ListUsersResponse {
            details: Some(convert::list_details(&listed)),
            sorting_column: req.sorting_column,
            result: listed
                .items
                .iter()
                .map(|u| convert::user(u, &org))
                .collect(),
        }))
    }

    /// GET /management/v1/users/{user_id}/keys/{key_id} (user.read)
    async fn get_machine_key_by_i_ds(
        &self,
        req: Request<GetMachineKeyByIDsRequest>,
    ) -> Rpc<GetMachineKeyByIDsResponse> {
        let (ctx, req) = self.authorize(req, Permission::UserRead).await?;
        let key = self
            .svc
            .get_key(&ctx, &KeyOwner::user(req.user_id), &req.key_id)
            .await?;
        Ok(Response::new(GetMachineKeyByIDsResponse {
            key: Some(convert::key(&key)),
        }))
    }

    /// POST /management/v1/users/{user_id}/keys/_search (user.read)
    async fn list_machine_keys(
        &self,
        req: Request<ListMachineKeysRequest>,
    ) -> Rpc<ListMachineKeysResponse> {
        let (ctx, req) = self.authorize(req, Permission::UserRead).await?;
        let q = req.query.unwrap_or_default();
        let listed = self
            .svc
            .list_keys(&ctx, &KeyOwner::user(req.user_id), q.offset, q.limit, q.asc)
            .await?;
        Ok(Response::new(ListMachineKeysResponse {
            details: Some(convert::list_details(&listed)),
            result: listed.items.iter().map(convert::key).collect(),
        }))
    }

    /// POST /management/v1/users/{user_id}/keys (user.write)
    async fn add_machine_key(
        &self,
        req: Request<AddMachineKeyRequest>,
    ) -> Rpc<AddMachineKeyResponse> {
        let (ctx, req) = self.authorize(req, Permission::UserWrite).await?;
        defined_enum::<authn::v1::KeyType>("type", req.r#type)?;
        let new = NewKey {
            owner: KeyOwner::user(req.user_id),
            key_type: req.r#type,
            expiration: convert::timestamp("expiration_date", req.expiration_date)?,
            public_key: Some(req.public_key).filter(|k| !k.is_empty()),
            algorithm: None,
        };
        let added = self.svc.add_key(&ctx, new).await?;
        Ok(Response::new(AddMachineKeyResponse {
            key_id: added.key.id.clone(),
            key_details: added.key_file.map(|f| f.to_vec()).unwrap_or_default(),
            details: Some(convert::details(&added.details)),
        }))
    }

    /// DELETE /management/v1/users/{user_id}/keys/{key_id} (user.write)
    async fn remove_machine_key(
        &self,
        req: Request<RemoveMachineKeyRequest>,
    ) -> Rpc<RemoveMachineKeyResponse> {
        let (ctx, req) = self.authorize(req, Permission::UserWrite).await?;
        let details = self
            .svc
            .remove_key(&ctx, &KeyOwner::user(req.user_id), &req.key_id)
            .await?;
        Ok(Response::new(RemoveMachineKeyResponse {
            details: Some(convert::details(&details)),
        }))
    }

    /// GET /management/v1/orgs/me (org.read)
    async fn get_my_org(&self, req: Request<GetMyOrgRequest>) -> Rpc<GetMyOrgResponse> {
        let (ctx, _) = self.authorize(req, Permission::OrgRead).await?;
        let org = self.svc.get_org(&ctx).await?;
        Ok(Response::new(GetMyOrgResponse {
            org: Some(convert::org(&org)),
        }))
    }

    /// POST /management/v1/orgs (org.create)
    async fn add_org(&self, req: Request<AddOrgRequest>) -> Rpc<AddOrgResponse> {
        let (ctx, req) = self.authorize(req, Permission::OrgCreate).await?;
        let (id, details) = self.svc.add_org(&ctx, &req.name).await?;
        Ok(Response::new(AddOrgResponse {
            id,
            details: Some(convert::details(&details)),
        }))
    }

    /// POST /management/v1/orgs/me/members/_search (org.member.read)
    async fn list_org_members(
        &self,
        req: Request<ListOrgMembersRequest>,
    ) -> Rpc<ListOrgMembersResponse> {
        let (ctx, req) = self.authorize(req, Permission::OrgMemberRead).await?;
        let queries = convert::member_queries(req.queries)?;
        let listed = self
            .svc
            .list_org_members(&ctx, convert::page(req.query), &queries)
            .await?;
        let org = self.svc.get_org(&ctx).await?;
        Ok(Response::new(ListOrgMembersResponse {
            details: Some(convert::list_details(&listed)),
            result: listed
                .items
                .iter()
                .map(|m| convert::member(m, &org))
                .collect(),
        }))
    }

    /// POST /management/v1/orgs/me/members (org.member.write)
    async fn add_org_member(&self, req: Request<AddOrgMemberRequest>) -> Rpc<AddOrgMemberResponse> {
        let (ctx, req) = self.authorize(req, Permission::OrgMemberWrite).await?;
        let details = self
            .svc
            .add_org_member(&ctx, &req.user_id, &req.roles)
            .await?;
        Ok(Response::new(AddOrgMemberResponse {
            details: Some(convert::details(&details)),
        }))
    }

    /// DELETE /management/v1/orgs/me/members/{user_id} (org.member.delete)
    async fn remove_org_member(
        &self,
        req: Request<RemoveOrgMemberRequest>,
    ) -> Rpc<RemoveOrgMemberResponse> {
        let (ctx, req) = self.authorize(req, Permission::OrgMemberDelete).await?;
        let details = self.svc.remove_org_member(&ctx, &req.user_id).await?;
        Ok(Response::new(RemoveOrgMemberResponse {
            details: Some(convert::details(&details)),
        }))
    }

    /// POST /management/v1/projects/_search (project.read)
    async fn list_projects(&self, req: Request<ListProjectsRequest>) -> Rpc<ListProjectsResponse> {
        let (ctx, req) = self.authorize(req, Permission::ProjectRead).await?;
        let names = convert::project_queries(req.queries)?;
        let listed = self
            .svc
            .list_projects(&ctx, convert::page(req.query), &names)
            .await?;
        Ok(Response::new(ListProjectsResponse {
            details: Some(convert::list_details(&listed)),
            result: listed.items.iter().map(convert::project).collect(),
        }))
    }

    /// POST /management/v1/projects/{project_id}/apps/_search (project.app.read)
    async fn list_apps(&self, req: Request<ListAppsRequest>) -> Rpc<ListAppsResponse> {
        let (ctx, req) = self.authorize(req, Permission::ProjectAppRead).await?;
        let names = convert::app_queries(req.queries)?;
        let listed = self
            .svc
            .list_apps(&ctx, &req.project_id, convert::page(req.query), &names)
            .await?;
        Ok(Response::new(ListAppsResponse {
            details: Some(convert::list_details(&listed)),
            result: listed.items.iter().map(convert::app).collect(),
        }))
    }

    /// GET /management/v1/projects/{id} (project.read)
    async fn get_project_by_id(
        &self,
        req: Request<GetProjectByIdRequest>,
    ) -> Rpc<GetProjectByIdResponse> {
        let (ctx, req) = self.authorize(req, Permission::ProjectRead).await?;
        let project = self.svc.get_project(&ctx, &req.id).await?;
        Ok(Response::new(GetProjectByIdResponse {
            project: Some(convert::project(&project)),
        }))
    }

    /// POST /management/v1/projects (project.create)
    async fn add_project(&self, req: Request<AddProjectRequest>) -> Rpc<AddProjectResponse> {
        let (ctx, req) = self.authorize(req, Permission::ProjectCreate).await?;
        defined_enum::<project_pb::v1::PrivateLabelingSetting>(
            "private_labeling_setting",
            req.private_labeling_setting,
        )?;
        let new = NewProject {
            name: req.name,
            project_role_assertion: req.project_role_assertion,
            project_role_check: req.project_role_check,
            has_project_check: req.has_project_check,
            private_labeling_setting: req.private_labeling_setting,
        };
        let (id, details) = self.svc.add_project(&ctx, new).await?;
        Ok(Response::new(AddProjectResponse {
            id,
            details: Some(convert::details(&details)),
        }))
    }

    /// DELETE /management/v1/projects/{id} (project.delete)
    async fn remove_project(
        &self,
        req: Request<RemoveProjectRequest>,
    ) -> Rpc<RemoveProjectResponse> {
        let (ctx, req) = self.authorize(req, Permission::ProjectDelete).await?;
        let details = self.svc.remove_project(&ctx, &req.id).await?;
        Ok(Response::new(RemoveProjectResponse {
            details: Some(convert::details(&details)),
        }))
    }

    /// GET /management/v1/projects/{project_id}/apps/{app_id} (project.app.read)
    async fn get_app_by_id(&self, req: Request<GetAppByIdRequest>) -> Rpc<GetAppByIdResponse> {
        let (ctx, req) = self.authorize(req, Permission::ProjectAppRead).await?;
        let app = self.svc.get_app(&ctx, &req.project_id, &req.app_id).await?;
        Ok(Response::new(GetAppByIdResponse {
            app: Some(convert::app(&app)),
        }))
    }

    /// POST /management/v1/projects/{project_id}/apps/api (project.app.write)
    async fn add_api_app(&self, req: Request<AddApiAppRequest>) -> Rpc<AddApiAppResponse> {
        let (ctx, req) = self.authorize(req, Permission::ProjectAppWrite).await?;
        let method = match defined_enum::<app_pb::v1::ApiAuthMethodType>(
            "auth_method_type",
            req.auth_method_type,
        )? {
            app_pb::v1::ApiAuthMethodType::Basic => ApiAuthMethod::Basic,
            app_pb::v1::ApiAuthMethodType::PrivateKeyJwt => ApiAuthMethod::PrivateKeyJwt,
        };
        let added = self
            .svc
            .add_api_app(&ctx, &req.project_id, &req.name, method)
            .await?;
        Ok(Response::new(AddApiAppResponse {
            app_id: added.app_id,
            details: Some(convert::details(&added.details)),
            client_id: added.client_id,
            client_secret: added
                .client_secret
                .map(|s| s.expose().to_owned())
                .unwrap_or_default(),
        }))
    }

    /// DELETE /management/v1/projects/{project_id}/apps/{app_id} (project.app.delete)
    async fn remove_app(&self, req: Request<RemoveAppRequest>) -> Rpc<RemoveAppResponse> {
        let (ctx, req) = self.authorize(req, Permission::ProjectAppDelete).await?;
        let details = self
            .svc
            .remove_app(&ctx, &req.project_id, &req.app_id)
            .await?;
        Ok(Response::new(RemoveAppResponse {
            details: Some(convert::details(&details)),
        }))
    }

    /// GET /management/v1/projects/{project_id}/apps/{app_id}/keys/{key_id} (project.app.read)
    async fn get_app_key(&self, req: Request<GetAppKeyRequest>) -> Rpc<GetAppKeyResponse> {
        let (ctx, req) = self.authorize(req, Permission::ProjectAppRead).await?;
        let key = self
            .svc
            .get_key(
                &ctx,
                &KeyOwner::app(req.project_id, req.app_id),
                &req.key_id,
            )
            .await?;
        Ok(Response::new(GetAppKeyResponse {
            key: Some(convert::key(&key)),
        }))
    }

    /// POST /management/v1/projects/{project_id}/apps/{app_id}/keys/_search (project.app.read)
    async fn list_app_keys(&self, req: Request<ListAppKeysRequest>) -> Rpc<ListAppKeysResponse> {
        let (ctx, req) = self.authorize(req, Permission::ProjectAppRead).await?;
        let q = req.query.unwrap_or_default();
        let listed = self
            .svc
            .list_keys(
                &ctx,
                &KeyOwner::app(req.project_id, req.app_id),
                q.offset,
                q.limit,
                q.asc,
            )
            .await?;
        Ok(Response::new(ListAppKeysResponse {
            details: Some(convert::list_details(&listed)),
            result: listed.items.iter().map(convert::key).collect(),
        }))
    }

    /// POST /management/v1/projects/{project_id}/apps/{app_id}/keys (project.app.write)
    async fn add_app_key(&self, req: Request<AddAppKeyRequest>) -> Rpc<AddAppKeyResponse> {
        let (ctx, req) = self.authorize(req, Permission::ProjectAppWrite).await?;
        defined_enum::<authn::v1::KeyType>("type", req.r#type)?;
        let new = NewKey {
            owner: KeyOwner::app(req.project_id, req.app_id),
            key_type: req.r#type,
            expiration: convert::timestamp("expiration_date", req.expiration_date)?,
            public_key: None,
            algorithm: None,
        };
        let added = self.svc.add_key(&ctx, new).await?;
        Ok(Response::new(AddAppKeyResponse {
            id: added.key.id.clone(),
            details: Some(convert::details(&added.details)),
            key_details: added.key_file.map(|f| f.to_vec()).unwrap_or_default(),
        }))
    }

    /// DELETE /management/v1/projects/{project_id}/apps/{app_id}/keys/{key_id} (project.app.write)
    async fn remove_app_key(&self, req: Request<RemoveAppKeyRequest>) -> Rpc<RemoveAppKeyResponse> {
        let (ctx, req) = self.authorize(req, Permission::ProjectAppWrite).await?;
        let details = self
            .svc
            .remove_key(
                &ctx,
                &KeyOwner::app(req.project_id, req.app_id),
                &req.key_id,
            )
            .await?;
        Ok(Response::new(RemoveAppKeyResponse {
            details: Some(convert::details(&details)),
        }))
    }
}
