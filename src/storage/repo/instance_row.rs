//! The instance row and the id generator's nodes.
use super::*;

/// Registers this process and returns its node number for the id generator (16 bits).
pub async fn register_node(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<u16> {
    let res = node::Entity::insert(node::ActiveModel {
        started_at: Set(now.fixed_offset()),
        ..Default::default()
    })
    .exec(db)
    .await
    .map_err(db_err)?;
    Ok((res.last_insert_id.rem_euclid(1 << 16)) as u16)
}

pub async fn find_instance(db: &impl ConnectionTrait) -> Result<Option<(String, String)>> {
    Ok(instance::Entity::find_by_id(1)
        .one(db)
        .await
        .map_err(db_err)?
        .map(|m| (m.default_org_id, m.admin_user_id)))
}

/// Claims the instance row; a second process bootstrapping the same database fails here.
pub async fn insert_instance(
    db: &impl ConnectionTrait,
    org_id: &str,
    admin_id: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    instance::Entity::insert(instance::ActiveModel {
        id: Set(1),
        default_org_id: Set(org_id.into()),
        admin_user_id: Set(admin_id.into()),
        created_at: Set(now.fixed_offset()),
    })
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Takes the instance row's write lock for the rest of the transaction (a row lock on
/// PostgreSQL and MySQL, the database write lock on SQLite), so checks that span rows — "is another
/// IAM_OWNER left?", "is a signing key due?" — cannot race between processes.
pub async fn lock_instance(db: &impl ConnectionTrait) -> Result<()> {
    instance::Entity::update_many()
        .col_expr(
            instance::Column::CreatedAt,
            Expr::col(instance::Column::CreatedAt),
        )
        .filter(instance::Column::Id.eq(1))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Users holding `role` as an instance role, oldest grant first.
pub async fn instance_role_holders(db: &impl ConnectionTrait, role: Role) -> Result<Vec<String>> {
    Ok(instance_member::Entity::find()
        .order_by(instance_member::Column::CreatedAt, Order::Asc)
        .order_by(instance_member::Column::UserId, Order::Asc)
        .all(db)
        .await
        .map_err(db_err)?
        .into_iter()
        .filter(|m| roles_from_text(&m.roles).contains(&role))
        .map(|m| m.user_id)
        .collect())
}
