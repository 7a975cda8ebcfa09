//! `zitadel.user.v2.UserService` (the key part): one thin method per RPC — authenticate,
//! check the field rules, call the v2 use cases (beside their v1 siblings in `service/`) over
//! the same users and keys as v1, convert back. Connect and REST (`/v2/...`) reach these same methods.
use tonic::{Request, Response, Status};

use super::{
    edge::{caller, changed, id_filter, pagination, time, timestamp, timestamp_filter, window},
    pgv::{defined, max_bytes, opt_runes, required, runes},
};
use crate::{
    domain::{
        list::{KeyFilter, KeyOrder},
        model::{AccessTokenType, OwnerKind},
    },
    error::{Error, Kind, Result},
    proto::zitadel::user::v2::{
        self as pb, create_user_request::UserType, keys_search_filter::Filter,
        user_service_server::UserService,
    },
    service::{
        Services,
        users::{NewMachineUser, NewUserV2},
    },
};

#[derive(Clone)]
pub struct UserApi {
    svc: Services,
}

impl UserApi {
    pub fn new(svc: Services) -> Self {
        UserApi { svc }
    }
}

fn validate_create(req: &pb::CreateUserRequest) -> Result<()> {
    const M: &str = "CreateUserRequest";
    runes(M, "OrganizationId", &req.organization_id, 1, 200)?;
    opt_runes(M, "UserId", req.user_id.as_ref(), 1, 200)?;
    opt_runes(M, "Username", req.username.as_ref(), 1, 200)?;
    for m in &req.metadata {
        runes("Metadata", "Key", &m.key, 1, 200)?;
        max_bytes("Metadata", "Value", &m.value, 500_000)?;
    }
    match required(M, "UserType", &req.user_type)? {
        UserType::Machine(machine) => {
            const MM: &str = "CreateUserRequest_Machine";
            runes(MM, "Name", &machine.name, 1, 200)?;
            opt_runes(MM, "Description", machine.description.as_ref(), 1, 500)?;
            defined::<pb::AccessTokenType>(MM, "AccessTokenType", machine.access_token_type)?;
        }
        UserType::Human(human) => {
            const MH: &str = "CreateUserRequest_Human";
            let profile = required(MH, "Profile", &human.profile)?;
            runes("SetHumanProfile", "GivenName", &profile.given_name, 1, 200)?;
            runes(
                "SetHumanProfile",
                "FamilyName",
                &profile.family_name,
                1,
                200,
            )?;
            opt_runes(
                "SetHumanProfile",
                "NickName",
                profile.nick_name.as_ref(),
                0,
                200,
            )?;
            opt_runes(
                "SetHumanProfile",
                "DisplayName",
                profile.display_name.as_ref(),
                0,
                200,
            )?;
            opt_runes(
                "SetHumanProfile",
                "PreferredLanguage",
                profile.preferred_language.as_ref(),
                0,
                10,
            )?;
            if let Some(g) = profile.gender {
                defined::<pb::Gender>("SetHumanProfile", "Gender", g)?;
            }
            let email = required(MH, "Email", &human.email)?;
            runes("SetHumanEmail", "Email", &email.email, 1, 200)?;
            super::pgv::email("SetHumanEmail", "Email", &email.email)?;
            if let Some(phone) = &human.phone {
                runes("SetHumanPhone", "Phone", &phone.phone, 0, 200)?;
            }
            opt_runes(MH, "TotpSecret", human.totp_secret.as_ref(), 1, 200)?;
            for link in &human.idp_links {
                runes("IDPLink", "IdpId", &link.idp_id, 1, 200)?;
                runes("IDPLink", "UserId", &link.user_id, 1, 200)?;
                runes("IDPLink", "UserName", &link.user_name, 1, 200)?;
            }
        }
    }
    Ok(())
}

fn key(k: &crate::domain::model::AuthnKey) -> pb::Key {
    pb::Key {
        creation_date: timestamp(k.created_at),
        // Keys never change: the change date is the creation date.
        change_date: timestamp(k.created_at),
        id: k.id.clone(),
        user_id: k.owner_id().to_owned(),
        organization_id: k.org_id.clone(),
        expiration_date: timestamp(k.expires_at),
    }
}

type Rpc<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl UserService for UserApi {
    /// POST /v2/users/new; `user.write` on the organization. Machine users only.
    async fn create_user(
        &self,
        req: Request<pb::CreateUserRequest>,
    ) -> Rpc<pb::CreateUserResponse> {
        let caller = caller(&self.svc, &req).await?;
        let req = req.into_inner();
        validate_create(&req)?;
        if !req.metadata.is_empty() {
            return Err(Status::from(Error::new(
                Kind::Unimplemented,
                "USER2-Meta01",
                "user metadata is not stored by this server; send no metadata",
            )));
        }
        let Some(UserType::Machine(machine)) = req.user_type else {
            return Err(Status::from(Error::new(
                Kind::Unimplemented,
                "USER2-Hum01",
                "this server keeps machine users only; create human users in ZITADEL",
            )));
        };
        let access_token_type = match pb::AccessTokenType::try_from(machine.access_token_type) {
            Ok(pb::AccessTokenType::Jwt) => AccessTokenType::Jwt,
            _ => AccessTokenType::Bearer,
        };
        let new = NewUserV2 {
            org_id: req.organization_id,
            user_id: req.user_id,
            user_name: req.username,
            user: NewMachineUser {
                user_name: String::new(),
                name: machine.name,
                description: machine.description.unwrap_or_default(),
                access_token_type,
                user_id: None,
            },
        };
        let (id, created) = self.svc.create_user_v2(&caller, new).await?;
        Ok(Response::new(pb::CreateUserResponse {
            id,
            creation_date: timestamp(created),
            email_code: None,
            phone_code: None,
        }))
    }

    /// DELETE /v2/users/{user_id}; `user.delete` on the user's org, or the user itself.
    async fn delete_user(
        &self,
        req: Request<pb::DeleteUserRequest>,
    ) -> Rpc<pb::DeleteUserResponse> {
        let caller = caller(&self.svc, &req).await?;
        let req = req.into_inner();
        runes("DeleteUserRequest", "UserId", &req.user_id, 1, 200)?;
        let details = self.svc.delete_user_v2(&caller, &req.user_id).await?;
        Ok(Response::new(pb::DeleteUserResponse {
            details: changed(&details),
        }))
    }

    /// POST /v2/users/{user_id}/keys; `user.write` on the user's org, or the user itself.
    async fn add_key(&self, req: Request<pb::AddKeyRequest>) -> Rpc<pb::AddKeyResponse> {
        let caller = caller(&self.svc, &req).await?;
        let req = req.into_inner();
        runes("AddKeyRequest", "UserId", &req.user_id, 1, 200)?;
        let expiration = time(required(
            "AddKeyRequest",
            "ExpirationDate",
            &req.expiration_date,
        )?)?;
        let public_key = (!req.public_key.is_empty()).then_some(req.public_key);
        let added = self
            .svc
            .add_key_v2(&caller, &req.user_id, expiration, public_key)
            .await?;
        let key_content = added.key_file.map(|f| f.to_vec()).unwrap_or_default();
        Ok(Response::new(pb::AddKeyResponse {
            creation_date: timestamp(added.key.created_at),
            key_id: added.key.id,
            key_content,
        }))
    }

    /// DELETE /v2/users/{user_id}/keys/{key_id}; `user.write` on the user's org, or itself.
    async fn remove_key(&self, req: Request<pb::RemoveKeyRequest>) -> Rpc<pb::RemoveKeyResponse> {
        let caller = caller(&self.svc, &req).await?;
        let req = req.into_inner();
        runes("RemoveKeyRequest", "UserId", &req.user_id, 1, 200)?;
        runes("RemoveKeyRequest", "KeyId", &req.key_id, 1, 200)?;
        let removed = self
            .svc
            .remove_key_v2(&caller, &req.user_id, &req.key_id)
            .await?;
        Ok(Response::new(pb::RemoveKeyResponse {
            deletion_date: timestamp(removed),
        }))
    }

    /// POST /v2/users/keys/search; rows the caller may read (`user.read`) or owns.
    async fn list_keys(&self, req: Request<pb::ListKeysRequest>) -> Rpc<pb::ListKeysResponse> {
        let caller = caller(&self.svc, &req).await?;
        let req = req.into_inner();
        let order = match req.sorting_column {
            None => KeyOrder::Created,
            Some(column) => {
                use pb::KeyFieldName as F;
                match defined::<F>("ListKeysRequest", "SortingColumn", column)? {
                    F::Unspecified | F::CreatedDate => KeyOrder::Created,
                    F::Id => KeyOrder::Id,
                    F::UserId => KeyOrder::OwnerId,
                    F::OrganizationId => KeyOrder::OrgId,
                    F::KeyExpirationDate => KeyOrder::Expiration,
                }
            }
        };
        let mut filters = Vec::with_capacity(req.filters.len());
        for f in req.filters {
            let id = |f: &crate::proto::zitadel::filter::v2::IdFilter| {
                id_filter("IDFilter", "Id", &f.id, 0)
            };
            filters.push(match required("KeysSearchFilter", "Filter", &f.filter)? {
                Filter::KeyIdFilter(f) => KeyFilter::KeyId(id(f)?),
                Filter::UserIdFilter(f) => KeyFilter::OwnerId(id(f)?),
                Filter::OrganizationIdFilter(f) => KeyFilter::OrgId(id(f)?),
                Filter::CreatedDateFilter(f) => {
                    let (how, t) = timestamp_filter(f)?;
                    KeyFilter::Created(how, t)
                }
                Filter::ExpirationDateFilter(f) => {
                    let (how, t) = timestamp_filter(f)?;
                    KeyFilter::Expires(how, t)
                }
            });
        }
        let window = window(req.pagination)?;
        let page = self
            .svc
            .search_keys_v2(&caller, OwnerKind::User, &filters, order, window)
            .await?;
        Ok(Response::new(pb::ListKeysResponse {
            pagination: pagination(page.total, page.limit),
            result: page.items.iter().map(key).collect(),
        }))
    }
}
