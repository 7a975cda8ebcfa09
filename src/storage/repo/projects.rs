//! Projects and their API apps.
use super::*;

fn project_from(m: project::Model) -> Project {
    Project {
        id: m.id,
        org_id: m.org_id,
        name: m.name,
        project_role_assertion: m.project_role_assertion,
        project_role_check: m.project_role_check,
        has_project_check: m.has_project_check,
        private_labeling_setting: m.private_labeling_setting,
        sequence: u(m.sequence),
        created_at: m.created_at.to_utc(),
        changed_at: m.changed_at.to_utc(),
    }
}

pub async fn insert_project(db: &impl ConnectionTrait, p: &Project) -> Result<()> {
    project::Entity::insert(project::ActiveModel {
        id: Set(p.id.clone()),
        org_id: Set(p.org_id.clone()),
        name: Set(p.name.clone()),
        project_role_assertion: Set(p.project_role_assertion),
        project_role_check: Set(p.project_role_check),
        has_project_check: Set(p.has_project_check),
        private_labeling_setting: Set(p.private_labeling_setting),
        sequence: Set(p.sequence as i64),
        created_at: Set(p.created_at.fixed_offset()),
        changed_at: Set(p.changed_at.fixed_offset()),
    })
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub async fn find_project(db: &impl ConnectionTrait, id: &str) -> Result<Option<Project>> {
    Ok(project::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(project_from))
}

pub async fn find_project_in_org(
    db: &impl ConnectionTrait,
    org_id: &str,
    id: &str,
) -> Result<Option<Project>> {
    Ok(find_project(db, id).await?.filter(|p| p.org_id == org_id))
}

pub async fn bump_project(
    db: &impl ConnectionTrait,
    org_id: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<u64>> {
    let res = project::Entity::update_many()
        .col_expr(
            project::Column::Sequence,
            Expr::col(project::Column::Sequence).add(1),
        )
        .col_expr(project::Column::ChangedAt, Expr::value(now.fixed_offset()))
        .filter(project::Column::Id.eq(id))
        .filter(project::Column::OrgId.eq(org_id))
        .exec(db)
        .await
        .map_err(db_err)?;
    if res.rows_affected == 0 {
        return Ok(None);
    }
    Ok(find_project(db, id).await?.map(|p| p.sequence))
}

/// Removes the project with its apps and their keys.
pub async fn delete_project(db: &impl ConnectionTrait, id: &str) -> Result<()> {
    authn_key::Entity::delete_many()
        .filter(authn_key::Column::ProjectId.eq(id))
        .exec(db)
        .await
        .map_err(db_err)?;
    app::Entity::delete_many()
        .filter(app::Column::ProjectId.eq(id))
        .exec(db)
        .await
        .map_err(db_err)?;
    project::Entity::delete_by_id(id.to_owned())
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(())
}

fn app_from(m: app::Model) -> App {
    App {
        id: m.id,
        project_id: m.project_id,
        org_id: m.org_id,
        name: m.name,
        client_id: m.client_id,
        auth_method: ApiAuthMethod::from_i32(m.auth_method).unwrap_or(ApiAuthMethod::PrivateKeyJwt),
        secret_hash: m.secret_hash,
        sequence: u(m.sequence),
        created_at: m.created_at.to_utc(),
        changed_at: m.changed_at.to_utc(),
    }
}

pub async fn insert_app(db: &impl ConnectionTrait, a: &App) -> Result<()> {
    app::Entity::insert(app::ActiveModel {
        id: Set(a.id.clone()),
        project_id: Set(a.project_id.clone()),
        org_id: Set(a.org_id.clone()),
        name: Set(a.name.clone()),
        client_id: Set(a.client_id.clone()),
        auth_method: Set(a.auth_method as i32),
        secret_hash: Set(a.secret_hash.clone()),
        sequence: Set(a.sequence as i64),
        created_at: Set(a.created_at.fixed_offset()),
        changed_at: Set(a.changed_at.fixed_offset()),
    })
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// The app, if it belongs to that project in that org.
pub async fn find_app_in_project(
    db: &impl ConnectionTrait,
    org_id: &str,
    project_id: &str,
    app_id: &str,
) -> Result<Option<App>> {
    Ok(app::Entity::find_by_id(app_id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(app_from)
        .filter(|a| a.org_id == org_id && a.project_id == project_id))
}

pub async fn find_app_by_client_id(
    db: &impl ConnectionTrait,
    client_id: &str,
) -> Result<Option<App>> {
    Ok(app::Entity::find()
        .filter(app::Column::ClientId.eq(client_id))
        .one(db)
        .await
        .map_err(db_err)?
        .map(app_from))
}

/// Replaces a client secret's stored hash (upgrading old argon2id hashes).
pub async fn set_app_secret_hash(
    db: &impl ConnectionTrait,
    app_id: &str,
    hash: &str,
) -> Result<()> {
    app::Entity::update_many()
        .col_expr(app::Column::SecretHash, Expr::value(hash))
        .filter(app::Column::Id.eq(app_id))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub async fn find_app(db: &impl ConnectionTrait, app_id: &str) -> Result<Option<App>> {
    Ok(app::Entity::find_by_id(app_id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(app_from))
}

pub async fn delete_app(db: &impl ConnectionTrait, app_id: &str) -> Result<()> {
    authn_key::Entity::delete_many()
        .filter(authn_key::Column::AppId.eq(app_id))
        .exec(db)
        .await
        .map_err(db_err)?;
    app::Entity::delete_by_id(app_id.to_owned())
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// One page of an org's projects, optionally by name.
pub async fn list_projects(
    db: &impl ConnectionTrait,
    org_id: &str,
    names: &[TextMatch],
    page: Page,
    seen: &Visible,
) -> Result<PageOf<Project>> {
    let backend = db.get_database_backend();
    let mut query = project::Entity::find().filter(project::Column::OrgId.eq(org_id));
    for m in names {
        query = query.filter(text_condition(backend, project::Column::Name, m));
    }
    let p = paged(
        db,
        query,
        project::Column::CreatedAt,
        project::Column::Id,
        page,
        seen,
    )
    .await?;
    Ok(p.map(project_from))
}

/// One page of a project's apps, optionally by name.
pub async fn list_apps(
    db: &impl ConnectionTrait,
    org_id: &str,
    project_id: &str,
    names: &[TextMatch],
    page: Page,
    seen: &Visible,
) -> Result<PageOf<App>> {
    let backend = db.get_database_backend();
    let mut query = app::Entity::find()
        .filter(app::Column::OrgId.eq(org_id))
        .filter(app::Column::ProjectId.eq(project_id));
    for m in names {
        query = query.filter(text_condition(backend, app::Column::Name, m));
    }
    Ok(paged(
        db,
        query,
        app::Column::CreatedAt,
        app::Column::Id,
        page,
        seen,
    )
    .await?
    .map(app_from))
}
