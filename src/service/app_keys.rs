//! Application keys: keys of PRIVATE_KEY_JWT API apps, used as client assertions at the
//! introspection endpoint.
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{
    Ctx, Services,
    cache::Change,
    machine_keys::{AddedKey, check_key_type},
};
use crate::{
    domain::{
        expiry, key_file,
        list::Page,
        model::{ApiAuthMethod, AuthnKey, Details, Listed},
        validate,
    },
    error::{Error, Result},
    storage::{TransactionTrait, db_err, repo},
};

/// AddAppKey's input.
#[derive(Debug, Clone)]
pub struct NewAppKey {
    pub project_id: String,
    pub app_id: String,
    pub key_type: i32,
    pub expiration: Option<DateTime<Utc>>,
}

fn key_not_found() -> Error {
    Error::not_found("QUERY-S0fQs", "application key not found")
}

impl Services {
    pub async fn add_app_key(&self, ctx: &Ctx, new: NewAppKey) -> Result<AddedKey> {
        validate::id("project_id", &new.project_id)?;
        validate::id("app_id", &new.app_id)?;
        check_key_type(new.key_type)?;
        let unknown_app = || {
            Error::failed_precondition(
                "COMMAND-sak25",
                format!(
                    "application {} not found in project {}",
                    new.app_id, new.project_id
                ),
            )
        };
        let app = repo::get_app(&self.db, &ctx.org_id, &new.project_id, &new.app_id)
            .await?
            .ok_or_else(unknown_app)?;
        if app.auth_method != ApiAuthMethod::PrivateKeyJwt {
            return Err(Error::failed_precondition(
                "COMMAND-Dff54",
                "the application's auth method is not PRIVATE_KEY_JWT, so it cannot have keys",
            ));
        }
        let now = self.now();
        let expires_at = expiry::key_expiration(new.expiration.map(crate::storage::db_time), now)?;
        let key_id = self.ids.next_id();
        let private = self.keys.next_key().await?;
        let file =
            key_file::app_key_file(&key_id, &private, &app.id, &app.client_id).map_err(|e| {
                Error::internal("KEY-File2", "cannot build the key file").with_source(e)
            })?;
        let public_key = private.public_key().to_pkix_pem().map_err(|e| {
            Error::internal("KEY-Pem02", "cannot encode the public key").with_source(e)
        })?;

        let tx = self.db.begin().await.map_err(db_err)?;
        let sequence = repo::bump_project(&tx, &ctx.org_id, &new.project_id, now)
            .await?
            .ok_or_else(unknown_app)?;
        repo::get_app(&tx, &ctx.org_id, &new.project_id, &new.app_id)
            .await?
            .ok_or_else(unknown_app)?;
        let key = AuthnKey {
            id: key_id.clone(),
            owner_id: app.id.clone(),
            org_id: ctx.org_id.clone(),
            key_type: new.key_type,
            public_key,
            expires_at,
            sequence,
            created_at: now,
        };
        repo::insert_app_key(&tx, &key, &new.project_id).await?;
        repo::append_event(
            &tx,
            self.event(
                ctx,
                "project",
                &new.project_id,
                sequence,
                "project.application.key.added",
                json!({"appId": app.id, "keyId": key_id, "type": new.key_type, "expirationDate": expires_at}),
                now,
            ),
        )
        .await?;
        // A new key id may have been asked for (and remembered as absent) before.
        self.commit_changes(tx, &[Change::Key(key_id.clone())])
            .await?;
        Ok(AddedKey {
            key,
            key_file: Some(file),
            details: Details::added(sequence, now, &ctx.org_id),
        })
    }

    /// The app's key, if the app is in that project and org.
    pub async fn get_app_key(
        &self,
        ctx: &Ctx,
        project_id: &str,
        app_id: &str,
        key_id: &str,
    ) -> Result<AuthnKey> {
        validate::id("project_id", project_id)?;
        validate::id("app_id", app_id)?;
        validate::id("key_id", key_id)?;
        repo::get_app(&self.db, &ctx.org_id, project_id, app_id)
            .await?
            .ok_or_else(key_not_found)?;
        self.cached_key(key_id, true)
            .await?
            .map(|k| k.key)
            .filter(|k| k.org_id == ctx.org_id && k.owner_id == app_id)
            .ok_or_else(key_not_found)
    }

    /// ListAppKeys: that app's keys only; an app outside the project or org lists nothing.
    pub async fn list_app_keys(
        &self,
        ctx: &Ctx,
        project_id: &str,
        app_id: &str,
        offset: u64,
        limit: u32,
        asc: bool,
    ) -> Result<Listed<AuthnKey>> {
        validate::id("project_id", project_id)?;
        validate::id("app_id", app_id)?;
        let page = Page::new(offset, limit, asc, self.settings.list_limits)?;
        let app_here = self
            .cached_app(app_id)
            .await?
            .is_some_and(|a| a.org_id == ctx.org_id && a.project_id == project_id);
        let mut page =
            repo::list_app_keys(&self.db, &ctx.org_id, app_id, page, &Self::event_scope(ctx))
                .await?;
        if !app_here {
            // An app outside this project (a sibling's keys) lists nothing.
            page.total = 0;
            page.items.clear();
        }
        Ok(self.listed(page))
    }

    /// RemoveAppKey: the key stops authenticating the app at once.
    pub async fn remove_app_key(
        &self,
        ctx: &Ctx,
        project_id: &str,
        app_id: &str,
        key_id: &str,
    ) -> Result<Details> {
        validate::id("project_id", project_id)?;
        validate::id("app_id", app_id)?;
        validate::id("key_id", key_id)?;
        let not_found = || Error::not_found("COMMAND-D8fi3", "application key not found");
        let now = self.now();
        let tx = self.db.begin().await.map_err(db_err)?;
        let sequence = repo::bump_project(&tx, &ctx.org_id, project_id, now)
            .await?
            .ok_or_else(not_found)?;
        repo::get_app(&tx, &ctx.org_id, project_id, app_id)
            .await?
            .ok_or_else(not_found)?;
        if !repo::delete_app_key(&tx, &ctx.org_id, app_id, key_id).await? {
            return Err(not_found());
        }
        repo::append_event(
            &tx,
            self.event(
                ctx,
                "project",
                project_id,
                sequence,
                "project.application.key.removed",
                json!({"appId": app_id, "keyId": key_id}),
                now,
            ),
        )
        .await?;
        self.commit_changes(tx, &[Change::Key(key_id.to_owned())])
            .await?;
        Ok(Details::changed(sequence, now, &ctx.org_id))
    }
}
