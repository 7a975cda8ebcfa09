//! Machine users.
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Ctx, Services, auth::v2_denied};
use crate::{
    domain::{
        list::Visible,
        model::{AccessTokenType, Details, User},
        principal::{Permission, Role},
        validate,
    },
    error::{Error, Result},
    storage::repo,
};

/// RemoveUser of the only IAM_OWNER.
pub const LAST_IAM_OWNER: &str = "COMMAND-IamLst";

/// How a machine user's access tokens are issued (authnkeys.v1 MachineUserService).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    pub user_id: String,
    /// RFC 9449 `dpop_bound_access_tokens`: token requests without a DPoP proof are refused.
    pub dpop_bound: bool,
    /// When the user last changed.
    pub changed_at: DateTime<Utc>,
}

impl TokenSettings {
    fn of(user: &User) -> TokenSettings {
        TokenSettings {
            user_id: user.id.clone(),
            dpop_bound: user.dpop_bound,
            changed_at: user.changed_at,
        }
    }
}

/// GetTokenSettings or SetTokenSettings of a user that is not in the org of the request's
/// context: unknown, removed, or another org's.
fn settings_user_missing(id: &str) -> Error {
    Error::not_found(
        "USER-Tok01",
        format!(
            "machine user {} not found in this organization",
            crate::domain::text::shown(id)
        ),
    )
}

/// AddMachineUser's input.
#[derive(Debug, Clone)]
pub struct NewMachineUser {
    pub user_name: String,
    pub name: String,
    pub description: String,
    pub access_token_type: AccessTokenType,
    /// A caller-chosen id; generated when absent.
    pub user_id: Option<String>,
}

/// A machine user to create (v2 CreateUser, machine branch).
#[derive(Debug, Clone)]
pub struct NewUserV2 {
    pub org_id: String,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub user: NewMachineUser,
}

impl Services {
    pub async fn add_machine_user(
        &self,
        ctx: &Ctx,
        new: NewMachineUser,
    ) -> Result<(String, Details)> {
        validate_machine_user(&new)?;
        let id = match &new.user_id {
            Some(id) => {
                self.check_chosen_user_id(id).await?;
                id.clone()
            }
            None => self.ids.next_id(),
        };
        self.insert_machine_user(ctx, new, id).await
    }

    /// The rules for a user id the caller chose: a safe character set, not digits only (the
    /// server's ids are), and not the id of an org, project, app or client.
    pub(crate) async fn check_chosen_user_id(&self, id: &str) -> Result<()> {
        validate::custom_id("user_id", id)?;
        if repo::is_object_id(&self.db, id).await? {
            return Err(Error::invalid_argument(
                "VALIDATION-Id003",
                format!("user_id {id} is the id of another object; choose another"),
            ));
        }
        Ok(())
    }

    /// Adds a validated machine user under `id`, chosen and checked or generated.
    async fn insert_machine_user(
        &self,
        ctx: &Ctx,
        new: NewMachineUser,
        id: String,
    ) -> Result<(String, Details)> {
        let mut w = self.begin_write(ctx).await?;
        let now = w.now;
        let user = User {
            id: id.clone(),
            org_id: ctx.org_id.clone(),
            user_name: new.user_name.clone(),
            name: new.name,
            description: new.description,
            access_token_type: new.access_token_type,
            dpop_bound: false,
            sequence: 1,
            created_at: now,
            changed_at: now,
        };
        repo::insert_user(w.db(), &user).await.map_err(|e| {
            repo::on_conflict(
                e,
                "COMMAND-k2ad3",
                format!(
                    "a user with id {id} or user name {:?} already exists",
                    new.user_name
                ),
            )
        })?;
        w.record(
            "user",
            &id,
            1,
            "user.machine.added",
            json!({"userName": user.user_name, "accessTokenType": user.access_token_type as i32}),
        );
        w.commit().await?;
        Ok((id, Details::added(1, now, &ctx.org_id)))
    }

    pub async fn get_user(&self, ctx: &Ctx, id: &str) -> Result<User> {
        validate::id("id", id)?;
        repo::find_user_in_org(&self.db, &ctx.org_id, id)
            .await?
            .ok_or_else(|| Error::not_found("QUERY-Dfbg2", "user not found"))
    }

    /// RemoveUser: the user goes with its keys, tokens and memberships; its keys and tokens
    /// stop working at once. Only a caller holding every role of the user may remove it, and
    /// the last IAM_OWNER stays.
    pub async fn remove_user(&self, ctx: &Ctx, id: &str) -> Result<Details> {
        validate::id("id", id)?;
        let mut w = self.begin_write(ctx).await?;
        let sequence = repo::bump_user(w.db(), &ctx.org_id, id, w.now)
            .await?
            .ok_or_else(|| Error::not_found("COMMAND-m9od3", "user not found"))?;
        self.check_boundary(w.db(), ctx, id).await?;
        if repo::instance_roles(w.db(), id)
            .await?
            .contains(&Role::IamOwner)
        {
            // Serialized on the instance row, so two removals cannot each see the other's
            // target as the one left.
            repo::lock_instance(w.db()).await?;
            let owners = repo::instance_role_holders(w.db(), Role::IamOwner).await?;
            if owners.iter().all(|o| o == id) {
                return Err(Error::failed_precondition(
                    LAST_IAM_OWNER,
                    format!(
                        "user {id} is the last user holding IAM_OWNER and cannot be removed; operators can make another with `authn-keys admin-key`"
                    ),
                ));
            }
        }
        repo::delete_user(w.db(), id).await?;
        let now = w.now;
        w.record("user", id, sequence, "user.removed", json!({}));
        w.commit().await?;
        Ok(Details::changed(sequence, now, &ctx.org_id))
    }

    /// GetTokenSettings: user.read in the org of the request's context, where the user must be.
    pub async fn get_token_settings(&self, ctx: &Ctx, user_id: &str) -> Result<TokenSettings> {
        ctx.require(Permission::UserRead)?;
        validate::id("userId", user_id)?;
        let user = repo::find_user_in_org(&self.db, &ctx.org_id, user_id)
            .await?
            .ok_or_else(|| settings_user_missing(user_id))?;
        Ok(TokenSettings::of(&user))
    }

    /// SetTokenSettings: what managing the user's keys needs (user.write in its org, inside
    /// the privilege boundary). The change is audited and the user's cached record dropped
    /// everywhere, so the token endpoint follows it at once here and within the caches' bound
    /// in other processes; tokens issued before stay valid. Settings already as asked change
    /// nothing and record nothing.
    pub async fn set_token_settings(
        &self,
        ctx: &Ctx,
        user_id: &str,
        dpop_bound: bool,
    ) -> Result<TokenSettings> {
        ctx.require(Permission::UserWrite)?;
        validate::id("userId", user_id)?;
        let user = repo::find_user_in_org(&self.db, &ctx.org_id, user_id)
            .await?
            .ok_or_else(|| settings_user_missing(user_id))?;
        if user.dpop_bound == dpop_bound {
            // The same answer as a change would get from a caller outside the boundary.
            self.check_boundary(&self.db, ctx, user_id).await?;
            return Ok(TokenSettings::of(&user));
        }
        let mut w = self.begin_write(ctx).await?;
        let now = w.now;
        let sequence = repo::set_user_dpop_bound(w.db(), &ctx.org_id, user_id, dpop_bound, now)
            .await?
            .ok_or_else(|| settings_user_missing(user_id))?;
        self.check_boundary(w.db(), ctx, user_id).await?;
        w.record(
            "user",
            user_id,
            sequence,
            "user.machine.token.settings.changed",
            json!({"dpopBoundAccessTokens": dpop_bound}),
        );
        w.commit().await?;
        Ok(TokenSettings {
            user_id: user_id.to_owned(),
            dpop_bound,
            changed_at: now,
        })
    }

    // ---- v2: the org comes from the request or the target user ------------------------------

    /// v2 CreateUser (machine): `user.write` on the organization. A taken user id is
    /// FAILED_PRECONDITION, a taken user name ALREADY_EXISTS, as upstream.
    pub async fn create_user_v2(
        &self,
        caller: &User,
        new: NewUserV2,
    ) -> Result<(String, DateTime<Utc>)> {
        let ctx = match self.context(&caller.id, &new.org_id).await? {
            Some(ctx) if ctx.may(Permission::UserWrite) => ctx,
            Some(_) => return Err(v2_denied(Permission::UserWrite)),
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
                        Visible::Some { .. } => v2_denied(Permission::UserWrite),
                    },
                );
            }
        };
        let id = match &new.user_id {
            Some(id) => {
                self.check_chosen_user_id(id).await?;
                if repo::find_user(&self.db, id).await?.is_some() {
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
        let user = NewMachineUser {
            user_name,
            ..new.user
        };
        validate_machine_user(&user)?;
        let (id, details) = self.insert_machine_user(&ctx, user, id).await?;
        Ok((id, details.created.unwrap_or_else(|| self.now())))
    }

    /// The user wherever it is (v2 addresses users by id alone).
    pub async fn find_user(&self, id: &str) -> Result<Option<User>> {
        validate::id("user_id", id)?;
        repo::find_user(&self.db, id).await
    }

    /// v2 DeleteUser: `user.delete` on the user's org, or the caller itself. Unknown, or
    /// unreadable for the caller → NOT_FOUND.
    pub async fn delete_user_v2(&self, caller: &User, user_id: &str) -> Result<Details> {
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
}

fn validate_machine_user(new: &NewMachineUser) -> Result<()> {
    validate::name("user_name", &new.user_name)?;
    validate::name("name", &new.name)?;
    validate::description("description", &new.description)
}
