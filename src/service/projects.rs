//! Projects and their API applications.
use serde_json::json;

use super::{Ctx, Services};
use crate::{
    domain::{
        model::{ApiAuthMethod, App, Details, Project},
        secret::ClientSecret,
        validate,
    },
    error::{Error, Result},
    storage::repo,
};

/// AddProject's input.
#[derive(Debug, Clone)]
pub struct NewProject {
    pub name: String,
    pub project_role_assertion: bool,
    pub project_role_check: bool,
    pub has_project_check: bool,
    pub private_labeling_setting: i32,
}

/// An app just added; `client_secret` (BASIC apps only) is returned once, never stored.
#[derive(Debug)]
pub struct AddedApp {
    pub app_id: String,
    pub client_id: String,
    pub client_secret: Option<ClientSecret>,
    pub details: Details,
}

pub(crate) fn project_not_found() -> Error {
    Error::not_found("PROJECT-Rd3fs", "project not found")
}

impl Services {
    pub async fn add_project(&self, ctx: &Ctx, new: NewProject) -> Result<(String, Details)> {
        validate::name("name", &new.name)?;
        let mut w = self.begin_write(ctx).await?;
        let now = w.now;
        let id = self.ids.next_id();
        let project = Project {
            id: id.clone(),
            org_id: ctx.org_id.clone(),
            name: new.name,
            project_role_assertion: new.project_role_assertion,
            project_role_check: new.project_role_check,
            has_project_check: new.has_project_check,
            private_labeling_setting: new.private_labeling_setting,
            sequence: 1,
            created_at: now,
            changed_at: now,
        };
        repo::insert_project(w.db(), &project).await?;
        w.record(
            "project",
            &id,
            1,
            "project.added",
            json!({"name": project.name}),
        );
        w.commit().await?;
        Ok((id, Details::added(1, now, &ctx.org_id)))
    }

    pub async fn get_project(&self, ctx: &Ctx, id: &str) -> Result<Project> {
        validate::id("id", id)?;
        repo::find_project_in_org(&self.db, &ctx.org_id, id)
            .await?
            .ok_or_else(project_not_found)
    }

    /// RemoveProject: the project goes with its apps and their keys, which stop working at once.
    pub async fn remove_project(&self, ctx: &Ctx, id: &str) -> Result<Details> {
        validate::id("id", id)?;
        let mut w = self.begin_write(ctx).await?;
        let now = w.now;
        let sequence = repo::bump_project(w.db(), &ctx.org_id, id, now)
            .await?
            .ok_or_else(project_not_found)?;
        repo::delete_project(w.db(), id).await?;
        w.record("project", id, sequence, "project.removed", json!({}));
        w.commit().await?;
        Ok(Details::changed(sequence, now, &ctx.org_id))
    }

    /// AddAPIApp: BASIC apps get a client secret (returned once, stored as a keyed hash);
    /// PRIVATE_KEY_JWT apps authenticate with app keys and get none.
    pub async fn add_api_app(
        &self,
        ctx: &Ctx,
        project_id: &str,
        name: &str,
        auth_method: ApiAuthMethod,
    ) -> Result<AddedApp> {
        validate::id("project_id", project_id)?;
        validate::name("name", name)?;
        let unknown_project = || {
            Error::failed_precondition("PROJECT-3M9sd", format!("project {project_id} not found"))
        };
        repo::find_project_in_org(&self.db, &ctx.org_id, project_id)
            .await?
            .ok_or_else(unknown_project)?;
        let (secret, secret_hash) = match auth_method {
            ApiAuthMethod::PrivateKeyJwt => (None, None),
            ApiAuthMethod::Basic => {
                let secret = ClientSecret::generate();
                let hash = self.secrets.hash(secret.expose());
                (Some(secret), Some(hash))
            }
        };
        let mut w = self.begin_write(ctx).await?;
        let now = w.now;
        let sequence = repo::bump_project(w.db(), &ctx.org_id, project_id, now)
            .await?
            .ok_or_else(unknown_project)?;
        let app = App {
            id: self.ids.next_id(),
            project_id: project_id.to_owned(),
            org_id: ctx.org_id.clone(),
            name: name.to_owned(),
            client_id: self.ids.next_id(),
            auth_method,
            secret_hash,
            sequence,
            created_at: now,
            changed_at: now,
        };
        repo::insert_app(w.db(), &app).await?;
        w.record("project", project_id, sequence, "project.application.added", json!({"appId": app.id, "name": name, "clientId": app.client_id, "authMethod": auth_method as i32}));
        w.commit().await?;
        Ok(AddedApp {
            app_id: app.id,
            client_id: app.client_id,
            client_secret: secret,
            details: Details::added(sequence, now, &ctx.org_id),
        })
    }

    pub async fn get_app(&self, ctx: &Ctx, project_id: &str, app_id: &str) -> Result<App> {
        validate::id("project_id", project_id)?;
        validate::id("app_id", app_id)?;
        repo::find_app_in_project(&self.db, &ctx.org_id, project_id, app_id)
            .await?
            .ok_or_else(|| Error::not_found("APP-ii02Ms", "application not found"))
    }

    /// RemoveApp: the app goes with its keys, which stop working at once.
    pub async fn remove_app(&self, ctx: &Ctx, project_id: &str, app_id: &str) -> Result<Details> {
        validate::id("project_id", project_id)?;
        validate::id("app_id", app_id)?;
        let not_found = || Error::not_found("COMMAND-8iw2c", "application not found");
        let mut w = self.begin_write(ctx).await?;
        let now = w.now;
        let sequence = repo::bump_project(w.db(), &ctx.org_id, project_id, now)
            .await?
            .ok_or_else(not_found)?;
        repo::find_app_in_project(w.db(), &ctx.org_id, project_id, app_id)
            .await?
            .ok_or_else(not_found)?;
        repo::delete_app(w.db(), app_id).await?;
        w.record(
            "project",
            project_id,
            sequence,
            "project.application.removed",
            json!({"appId": app_id}),
        );
        w.commit().await?;
        Ok(Details::changed(sequence, now, &ctx.org_id))
    }
}
