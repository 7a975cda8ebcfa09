//! Trusts in outside issuers.
use super::*;

pub async fn insert_trust(db: &impl ConnectionTrait, t: trust::Model) -> Result<()> {
    trust::Entity::insert(trust::ActiveModel::from(t))
        .exec_without_returning(db)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub async fn find_trust(db: &impl ConnectionTrait, id: &str) -> Result<Option<trust::Model>> {
    trust::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .map_err(db_err)
}

/// The trusts of an issuer (by [`crate::domain::trust::issuer_hash`]).
pub async fn trusts_of_issuer(
    db: &impl ConnectionTrait,
    issuer_hash: &str,
) -> Result<Vec<trust::Model>> {
    trust::Entity::find()
        .filter(trust::Column::IssuerHash.eq(issuer_hash))
        .order_by(trust::Column::Id, Order::Asc)
        .all(db)
        .await
        .map_err(db_err)
}

pub async fn count_trusts_of_user(db: &impl ConnectionTrait, user_id: &str) -> Result<u64> {
    trust::Entity::find()
        .filter(trust::Column::UserId.eq(user_id))
        .count(db)
        .await
        .map_err(db_err)
}

/// A page of an org's trusts (of one user, if named), oldest first unless `!asc`; with the
/// total.
pub async fn search_trusts(
    db: &impl ConnectionTrait,
    org_id: &str,
    user_id: Option<&str>,
    page: Page,
) -> Result<(Vec<trust::Model>, u64)> {
    let mut q = trust::Entity::find().filter(trust::Column::OrgId.eq(org_id));
    if let Some(u) = user_id {
        q = q.filter(trust::Column::UserId.eq(u));
    }
    let total = q.clone().count(db).await.map_err(db_err)?;
    let items = q
        .order_by(trust::Column::CreatedAt, order_dir(page))
        .order_by(trust::Column::Id, order_dir(page))
        .offset(page.offset)
        .limit(page.limit)
        .all(db)
        .await
        .map_err(db_err)?;
    Ok((items, total))
}

/// Removes a trust; its tokens go with it (foreign key, cascade).
pub async fn delete_trust(db: &impl ConnectionTrait, id: &str) -> Result<bool> {
    Ok(trust::Entity::delete_by_id(id.to_owned())
        .exec(db)
        .await
        .map_err(db_err)?
        .rows_affected
        == 1)
}
