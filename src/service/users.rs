//! Machine users.
use serde_json::json;

use super::{Ctx, Services, cache::Change};
use crate::{
    domain::{
        model::{AccessTokenType, Details, User},
        principal::Role,
        validate,
    },
    error::{Error, Result},
    storage::{TransactionTrait, db_err, repo},
};

/// RemoveUser of the only IAM_OWNER.
pub const LAST_IAM_OWNER: &str = "COMMAND-IamLst";

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

impl Services {
    pub async fn add_machine_user(
        &self,
        ctx: &Ctx,
        new: NewMachineUser,
    ) -> Result<(String, Details)> {
        validate::name("user_name", &new.user_name)?;
        validate::name("name", &new.name)?;
        validate::description("description", &new.description)?;
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

    /// Adds a machine user under `id`, chosen and checked or generated.
    pub(crate) async fn insert_machine_user(
        &self,
        ctx: &Ctx,
        new: NewMachineUser,
        id: String,
    ) -> Result<(String, Details)> {
        validate::name("user_name", &new.user_name)?;
        validate::name("name", &new.name)?;
        validate::description("description", &new.description)?;
        let now = self.now();
        let user = User {
            id: id.clone(),
            org_id: ctx.org_id.clone(),
            user_name: new.user_name.clone(),
            name: new.name,
            description: new.description,
            access_token_type: new.access_token_type,
            sequence: 1,
            created_at: now,
            changed_at: now,
        };
        let tx = self.db.begin().await.map_err(db_err)?;
        repo::insert_user(&tx, &user).await.map_err(|e| {
            repo::on_conflict(
                e,
                "COMMAND-k2ad3",
                format!(
                    "a user with id {id} or user name {:?} already exists",
                    new.user_name
                ),
            )
        })?;
        repo::append_event(
            &tx,
            self.event(
                ctx,
                "user",
                &id,
                1,
                "user.machine.added",
                json!({"userName": user.user_name, "accessTokenType": user.access_token_type as i32}),
                now,
            ),
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok((id, Details::added(1, now, &ctx.org_id)))
    }

    pub async fn get_user(&self, ctx: &Ctx, id: &str) -> Result<User> {
        validate::id("id", id)?;
        repo::get_user_in_org(&self.db, &ctx.org_id, id)
            .await?
            .ok_or_else(|| Error::not_found("QUERY-Dfbg2", "user not found"))
    }

    /// RemoveUser: the user goes with its keys, tokens and memberships; its keys and tokens
    /// stop working at once. Only a caller holding every role of the user may remove it, and
    /// the last IAM_OWNER stays.
    pub async fn remove_user(&self, ctx: &Ctx, id: &str) -> Result<Details> {
        validate::id("id", id)?;
        let now = self.now();
        let tx = self.db.begin().await.map_err(db_err)?;
        let sequence = repo::bump_user(&tx, &ctx.org_id, id, now)
            .await?
            .ok_or_else(|| Error::not_found("COMMAND-m9od3", "user not found"))?;
        self.check_boundary(&tx, ctx, id).await?;
        if repo::instance_roles(&tx, id)
            .await?
            .contains(&Role::IamOwner)
        {
            // Serialized on the instance row, so two removals cannot each see the other's
            // target as the one left.
            repo::lock_instance(&tx).await?;
            let owners = repo::instance_role_holders(&tx, Role::IamOwner).await?;
            if owners.iter().all(|o| o == id) {
                return Err(Error::failed_precondition(
                    LAST_IAM_OWNER,
                    format!(
                        "user {id} is the last user holding IAM_OWNER and cannot be removed; operators can make another with `authn-keys admin-key`"
                    ),
                ));
            }
        }
        repo::delete_user(&tx, id).await?;
        repo::append_event(
            &tx,
            self.event(ctx, "user", id, sequence, "user.removed", json!({}), now),
        )
        .await?;
        self.commit_changes(tx, &[Change::User(id.to_owned())])
            .await?;
        Ok(Details::changed(sequence, now, &ctx.org_id))
    }
}
