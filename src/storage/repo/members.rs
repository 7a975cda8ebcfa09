//! Org and instance memberships.
use super::*;

pub async fn instance_roles(db: &impl ConnectionTrait, user_id: &str) -> Result<Vec<Role>> {
    Ok(instance_member::Entity::find_by_id(user_id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(|m| roles_from_text(&m.roles))
        .unwrap_or_default())
}

pub async fn insert_instance_member(
    db: &impl ConnectionTrait,
    user_id: &str,
    roles: &[Role],
    now: DateTime<Utc>,
) -> Result<()> {
    instance_member::Entity::insert(instance_member::ActiveModel {
        user_id: Set(user_id.into()),
        roles: Set(roles_to_text(roles)),
        created_at: Set(now.fixed_offset()),
    })
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Every org membership of a user.
pub async fn memberships_of(db: &impl ConnectionTrait, user_id: &str) -> Result<Vec<Member>> {
    Ok(org_member::Entity::find()
        .filter(org_member::Column::UserId.eq(user_id))
        .all(db)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(|m| Member {
            org_id: m.org_id,
            user_id: m.user_id,
            roles: roles_from_text(&m.roles),
        })
        .collect())
}

pub async fn find_org_member(
    db: &impl ConnectionTrait,
    org_id: &str,
    user_id: &str,
) -> Result<Option<Member>> {
    Ok(
        org_member::Entity::find_by_id((org_id.to_owned(), user_id.to_owned()))
            .one(db)
            .await
            .map_err(db_err)?
            .map(|m| Member {
                org_id: m.org_id,
                user_id: m.user_id,
                roles: roles_from_text(&m.roles),
            }),
    )
}

pub async fn insert_org_member(
    db: &impl ConnectionTrait,
    m: &Member,
    now: DateTime<Utc>,
) -> Result<()> {
    org_member::Entity::insert(org_member::ActiveModel {
        org_id: Set(m.org_id.clone()),
        user_id: Set(m.user_id.clone()),
        roles: Set(roles_to_text(&m.roles)),
        created_at: Set(now.fixed_offset()),
        changed_at: Set(now.fixed_offset()),
    })
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Returns whether a membership was removed.
pub async fn delete_org_member(
    db: &impl ConnectionTrait,
    org_id: &str,
    user_id: &str,
) -> Result<bool> {
    let res = org_member::Entity::delete_by_id((org_id.to_owned(), user_id.to_owned()))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(res.rows_affected > 0)
}
