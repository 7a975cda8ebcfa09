//! Organizations.
use super::*;

fn org_from(m: org::Model) -> Org {
    Org {
        id: m.id,
        name: m.name,
        primary_domain: m.primary_domain,
        sequence: u(m.sequence),
        created_at: m.created_at.to_utc(),
        changed_at: m.changed_at.to_utc(),
    }
}

pub async fn insert_org(db: &impl ConnectionTrait, o: &Org) -> Result<()> {
    org::Entity::insert(org::ActiveModel {
        id: Set(o.id.clone()),
        name: Set(o.name.clone()),
        primary_domain: Set(o.primary_domain.clone()),
        sequence: Set(o.sequence as i64),
        created_at: Set(o.created_at.fixed_offset()),
        changed_at: Set(o.changed_at.fixed_offset()),
    })
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub async fn find_org(db: &impl ConnectionTrait, id: &str) -> Result<Option<Org>> {
    Ok(org::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(org_from))
}

/// Whether `id` is the id of an org, project or app, or an app's client id: a user id chosen
/// to equal one would stand for that object wherever ids are compared (a token's audience).
pub async fn is_object_id(db: &impl ConnectionTrait, id: &str) -> Result<bool> {
    let orgs = org::Entity::find_by_id(id.to_owned()).count(db);
    let projects = project::Entity::find_by_id(id.to_owned()).count(db);
    let apps = app::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(app::Column::Id.eq(id))
                .add(app::Column::ClientId.eq(id)),
        )
        .count(db);
    Ok(orgs.await.map_err(db_err)?
        + projects.await.map_err(db_err)?
        + apps.await.map_err(db_err)?
        > 0)
}

/// Adds one to the org's sequence; `None` when the org does not exist.
pub async fn bump_org(
    db: &impl ConnectionTrait,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<u64>> {
    let res = org::Entity::update_many()
        .col_expr(
            org::Column::Sequence,
            Expr::col(org::Column::Sequence).add(1),
        )
        .col_expr(org::Column::ChangedAt, Expr::value(now.fixed_offset()))
        .filter(org::Column::Id.eq(id))
        .exec(db)
        .await
        .map_err(db_err)?;
    if res.rows_affected == 0 {
        return Ok(None);
    }
    Ok(find_org(db, id).await?.map(|o| o.sequence))
}
