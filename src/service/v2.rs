//! ZITADEL's v2 resource rules over the same records as v1: the organization comes from the
//! request or the target object (not from `x-zitadel-orgid`), permissions are checked there,
//! a machine user may manage its own keys (self-service), and listings span every org the
//! caller may read, with totals that count only what it may see.
use chrono::{DateTime, Utc};

use super::{Ctx, Services, machine_keys::NewMachineKey, users::NewMachineUser};
use crate::{
    domain::{
        list::{KeyFilter, KeyOrder, Page, Visible},
        model::{AuthnKey, User},
        principal::Permission,
        validate,
    },
    error::{Error, Result},
    storage::repo,
};

/// v2's permission refusal.
pub const DENIED: &str = "AUTHZ-HKJD33";

fn denied(permission: Permission) -> Error {
    Error::permission_denied(
        DENIED,
        format!("no permission {permission} for this object"),
    )
}

/// A machine user to create (v2 CreateUser, machine branch).
#[derive(Debug, Clone)]
pub struct NewUserV2 {
    pub org_id: String,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub user: NewMachineUser,
}

/// A page of v2 keys: the total the caller may see, and the rows.
#[derive(Debug)]
pub struct KeyPage<T> {
    pub total: u64,
    pub limit: u64,
    pub items: Vec<T>,
}

impl Services {
    /// The caller in the org of an object it named by id, if it holds `permission` there or
    /// is `self_target`. A caller of another org who may not even `read` there gets
    /// `missing()`, the answer for an object that does not exist: any other answer would tell
    /// it that the id is taken in an org it cannot see. Within its own org a caller learns it
    /// lacks `permission`, as upstream answers (no other tenant is revealed).
    async fn v2_object_context(
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
            Err(denied(permission))
        } else {
            Err(missing())
        }
    }

    /// CreateUser (machine): `user.write` on the organization. A taken user id is
    /// FAILED_PRECONDITION, a taken user name ALREADY_EXISTS, as upstream.
    pub async fn create_user_v2(
        &self,
        caller: &User,
        new: NewUserV2,
    ) -> Result<(String, DateTime<Utc>)> {
        let ctx = match self.context(&caller.id, &new.org_id).await? {
            Some(ctx) if ctx.may(Permission::UserWrite) => ctx,
            Some(_) => return Err(denied(Permission::UserWrite)),
            // No such org: say so only to a caller who could write users in any org.
            None => {
                return Err(
                    match self
                        .where_permitted(&caller.id, Permission::UserWrite)
                        .await?
                    {
                        Visible::All => Error::failed_precondition(
                            "USER2-Org404",
                            format!("organization {} does not exist", new.org_id),
                        ),
                        Visible::Some { .. } => denied(Permission::UserWrite),
                    },
                );
            }
        };
        let id = match &new.user_id {
            Some(id) => {
                self.check_chosen_user_id(id).await?;
                if repo::get_user(&self.db, id).await?.is_some() {
                    return Err(Error::failed_precondition(
                        "COMMAND-k2una",
                        format!("a user with id {id} already exists"),
                    ));
                }
                id.clone()
            }
            None => self.ids.next_id(),
        };
        let user_name = new.user_name.clone().unwrap_or_else(|| id.clone());
        if repo::user_name_taken(&self.db, &ctx.org_id, &user_name).await? {
            return Err(Error::already_exists(
                "V3-DKcYh",
                format!("the user name {user_name:?} is taken in this organization"),
            ));
        }
        let (id, details) = self
            .insert_machine_user(
                &ctx,
                NewMachineUser {
                    user_name,
                    ..new.user
                },
                id,
            )
            .await?;
        Ok((id, details.created.unwrap_or_else(|| self.now())))
    }

    /// The user wherever it is (v2 addresses users by id alone).
    pub async fn find_user(&self, id: &str) -> Result<Option<User>> {
        validate::id("user_id", id)?;
        repo::get_user(&self.db, id).await
    }

    /// DeleteUser: `user.delete` on the user's org, or the caller itself. Unknown, or
    /// unreadable for the caller → NOT_FOUND.
    pub async fn delete_user_v2(
        &self,
        caller: &User,
        user_id: &str,
    ) -> Result<crate::domain::model::Details> {
        let missing = || Error::not_found("COMMAND-bd4ir1mblj", "User could not be found");
        let user = self.find_user(user_id).await?.ok_or_else(missing)?;
        let ctx = self
            .v2_object_context(
                caller,
                &user.org_id,
                Permission::UserDelete,
                Permission::UserRead,
                Some(user_id),
                missing,
            )
            .await?;
        self.remove_user(&ctx, user_id).await
    }

    /// AddKey: the key checks first (as upstream), then the user (a missing one, or one the
    /// caller may not read, is FAILED_PRECONDITION), then `user.write` on its org or
    /// self-service.
    pub async fn add_key_v2(
        &self,
        caller: &User,
        user_id: &str,
        expiration: DateTime<Utc>,
        public_key: Option<Vec<u8>>,
    ) -> Result<super::machine_keys::AddedKey> {
        if let Some(pem) = public_key.as_deref().filter(|p| !p.is_empty()) {
            crate::domain::keypair::PublicKey::from_pkix_pem(pem)
                .map_err(|e| Error::invalid_argument("COMMAND-5F3h1", e.to_string()))?;
        }
        crate::domain::expiry::key_expiration(
            Some(crate::storage::db_time(expiration)),
            self.now(),
        )?;
        let missing = || Error::failed_precondition("COMMAND-bnipwm1", "User could not be found");
        let user = self.find_user(user_id).await?.ok_or_else(missing)?;
        let ctx = self
            .v2_object_context(
                caller,
                &user.org_id,
                Permission::UserWrite,
                Permission::UserRead,
                Some(user_id),
                missing,
            )
            .await?;
        self.add_machine_key(
            &ctx,
            NewMachineKey {
                user_id: user_id.to_owned(),
                key_type: super::machine_keys::KEY_TYPE_JSON,
                expiration: Some(expiration),
                public_key,
            },
        )
        .await
    }

    /// RemoveKey: not idempotent. An unknown user, or one the caller may not read, is
    /// NOT_FOUND (COMMAND-4g3xq) unless the caller names itself; a key not of that user is
    /// NOT_FOUND (COMMAND-4m77G).
    pub async fn remove_key_v2(
        &self,
        caller: &User,
        user_id: &str,
        key_id: &str,
    ) -> Result<DateTime<Utc>> {
        validate::id("key_id", key_id)?;
        let missing = || Error::not_found("COMMAND-4g3xq", "Object could not be found");
        let Some(user) = self.find_user(user_id).await? else {
            return Err(if caller.id == user_id {
                Error::not_found("COMMAND-4m77G", "Machine key could not be found")
            } else {
                missing()
            });
        };
        let ctx = self
            .v2_object_context(
                caller,
                &user.org_id,
                Permission::UserWrite,
                Permission::UserRead,
                Some(user_id),
                missing,
            )
            .await?;
        let details = self
            .remove_machine_key(&ctx, user_id, key_id)
            .await
            .map_err(|e| {
                if e.id == "COMMAND-4m77G" {
                    Error::not_found("COMMAND-4m77G", "Machine key could not be found")
                } else {
                    e
                }
            })?;
        Ok(details.changed.unwrap_or_else(|| self.now()))
    }

    /// ListKeys: machine keys the caller may read (`user.read` on the owner's org) or owns.
    pub async fn list_keys_v2(
        &self,
        caller: &User,
        filters: &[KeyFilter],
        order: KeyOrder,
        window: Page,
    ) -> Result<KeyPage<AuthnKey>> {
        let visible = match self
            .where_permitted(&caller.id, Permission::UserRead)
            .await?
        {
            Visible::All => Visible::All,
            Visible::Some { orgs, .. } => Visible::Some {
                orgs,
                own_user: Some(caller.id.clone()),
            },
        };
        let found = repo::find_machine_keys(&self.db, &visible, filters, order, window).await?;
        Ok(KeyPage {
            total: found.total,
            limit: window.limit,
            items: found.items,
        })
    }

    /// CreateApplicationKey: `project.app.write` on the project's org. A project the caller
    /// may not read answers as a missing app does.
    pub async fn create_app_key_v2(
        &self,
        caller: &User,
        project_id: &str,
        app_id: &str,
        expiration: Option<DateTime<Utc>>,
    ) -> Result<super::machine_keys::AddedKey> {
        validate::id("project_id", project_id)?;
        validate::id("application_id", app_id)?;
        crate::domain::expiry::key_expiration(expiration.map(crate::storage::db_time), self.now())?;
        let unknown_app = || {
            Error::failed_precondition(
                "COMMAND-sak25",
                format!("application {app_id} not found in project {project_id}"),
            )
        };
        let project = repo::get_project(&self.db, project_id)
            .await?
            .ok_or_else(unknown_app)?;
        let ctx = self
            .v2_object_context(
                caller,
                &project.org_id,
                Permission::ProjectAppWrite,
                Permission::ProjectAppRead,
                None,
                unknown_app,
            )
            .await?;
        self.add_app_key(
            &ctx,
            super::app_keys::NewAppKey {
                project_id: project_id.to_owned(),
                app_id: app_id.to_owned(),
                key_type: super::machine_keys::KEY_TYPE_JSON,
                expiration,
            },
        )
        .await
    }

    /// DeleteApplicationKey: not idempotent; `project.app.write` on the project's org. A key
    /// the caller may not read answers as a missing one.
    pub async fn delete_app_key_v2(
        &self,
        caller: &User,
        project_id: &str,
        app_id: &str,
        key_id: &str,
    ) -> Result<DateTime<Utc>> {
        validate::id("key_id", key_id)?;
        let not_found = || Error::not_found("COMMAND-4m77G", "Application key could not be found");
        let (key, key_project) = repo::find_app_key_with_project(&self.db, key_id)
            .await?
            .ok_or_else(not_found)?;
        if key_project != project_id || key.owner_id != app_id {
            return Err(not_found());
        }
        let ctx = self
            .v2_object_context(
                caller,
                &key.org_id,
                Permission::ProjectAppWrite,
                Permission::ProjectAppRead,
                None,
                not_found,
            )
            .await?;
        let details = self
            .remove_app_key(&ctx, project_id, app_id, key_id)
            .await?;
        Ok(details.changed.unwrap_or_else(|| self.now()))
    }

    /// GetApplicationKey: `project.app.read` on the key's org; a key the caller may not read
    /// is NOT_FOUND, as a missing one.
    pub async fn get_app_key_v2(&self, caller: &User, key_id: &str) -> Result<(AuthnKey, String)> {
        validate::id("key_id", key_id)?;
        let missing = || Error::not_found("QUERY-Dgr3g", "Key could not be found");
        let (key, project) = repo::find_app_key_with_project(&self.db, key_id)
            .await?
            .ok_or_else(missing)?;
        self.v2_object_context(
            caller,
            &key.org_id,
            Permission::ProjectAppRead,
            Permission::ProjectAppRead,
            None,
            missing,
        )
        .await?;
        Ok((key, project))
    }

    /// ListApplicationKeys: app keys of the orgs where the caller holds `project.app.read`.
    pub async fn list_app_keys_v2(
        &self,
        caller: &User,
        filters: &[KeyFilter],
        order: KeyOrder,
        window: Page,
    ) -> Result<KeyPage<repo::AppKeyRow>> {
        let visible = self
            .where_permitted(&caller.id, Permission::ProjectAppRead)
            .await?;
        let found = repo::find_app_keys(&self.db, &visible, filters, order, window).await?;
        Ok(KeyPage {
            total: found.total,
            limit: window.limit,
            items: found.items,
        })
    }
}
