//! Machine users.
use super::*;

fn user_from(m: user::Model) -> User {
    User {
        id: m.id,
        org_id: m.org_id,
        user_name: m.user_name,
        name: m.name,
        description: m.description,
        access_token_type: AccessTokenType::from_i32(m.access_token_type)
            .unwrap_or(AccessTokenType::Bearer),
        dpop_bound: m.dpop_bound,
        sequence: u(m.sequence),
        created_at: m.created_at.to_utc(),
        changed_at: m.changed_at.to_utc(),
    }
}

pub async fn insert_user(db: &impl ConnectionTrait, x: &User) -> Result<()> {
    user::Entity::insert(user::ActiveModel {
        id: Set(x.id.clone()),
        org_id: Set(x.org_id.clone()),
        user_name: Set(x.user_name.clone()),
        name: Set(x.name.clone()),
        description: Set(x.description.clone()),
        access_token_type: Set(x.access_token_type as i32),
        dpop_bound: Set(x.dpop_bound),
        sequence: Set(x.sequence as i64),
        created_at: Set(x.created_at.fixed_offset()),
        changed_at: Set(x.changed_at.fixed_offset()),
    })
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub async fn find_user(db: &impl ConnectionTrait, id: &str) -> Result<Option<User>> {
    Ok(user::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(user_from))
}

/// The user, if it exists in `org_id` (other orgs' users are invisible).
pub async fn find_user_in_org(
    db: &impl ConnectionTrait,
    org_id: &str,
    id: &str,
) -> Result<Option<User>> {
    Ok(find_user(db, id).await?.filter(|x| x.org_id == org_id))
}

pub async fn user_name_taken(
    db: &impl ConnectionTrait,
    org_id: &str,
    user_name: &str,
) -> Result<bool> {
    let n = user::Entity::find()
        .filter(user::Column::OrgId.eq(org_id))
        .filter(user::Column::UserName.eq(user_name))
        .count(db)
        .await
        .map_err(db_err)?;
    Ok(n > 0)
}

/// Adds one to the user's sequence if the user exists in `org_id`; returns the new sequence.
/// Being a write, it also takes the write lock first thing in a transaction.
pub async fn bump_user(
    db: &impl ConnectionTrait,
    org_id: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<u64>> {
    bump_user_setting(db, org_id, id, now, None).await
}

/// [`bump_user`] that also sets whether the user's tokens must be DPoP-bound.
pub async fn set_user_dpop_bound(
    db: &impl ConnectionTrait,
    org_id: &str,
    id: &str,
    dpop_bound: bool,
    now: DateTime<Utc>,
) -> Result<Option<u64>> {
    bump_user_setting(db, org_id, id, now, Some(dpop_bound)).await
}

async fn bump_user_setting(
    db: &impl ConnectionTrait,
    org_id: &str,
    id: &str,
    now: DateTime<Utc>,
    dpop_bound: Option<bool>,
) -> Result<Option<u64>> {
    let mut update = user::Entity::update_many()
        .col_expr(
            user::Column::Sequence,
            Expr::col(user::Column::Sequence).add(1),
        )
        .col_expr(user::Column::ChangedAt, Expr::value(now.fixed_offset()))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::OrgId.eq(org_id));
    if let Some(bound) = dpop_bound {
        update = update.col_expr(user::Column::DpopBound, Expr::value(bound));
    }
    if db.get_database_backend() != sea_orm::DbBackend::MySql {
        // One round trip: PostgreSQL and SQLite return the new sequence with the update.
        let updated = update.exec_with_returning(db).await.map_err(db_err)?;
        return Ok(updated.first().map(|m| u(m.sequence)));
    }
    let res = update.exec(db).await.map_err(db_err)?;
    if res.rows_affected == 0 {
        return Ok(None);
    }
    Ok(find_user(db, id).await?.map(|x| x.sequence))
}

/// Removes the user with its keys, tokens and memberships.
pub async fn delete_user(db: &impl ConnectionTrait, id: &str) -> Result<()> {
    authn_key::Entity::delete_many()
        .filter(authn_key::Column::UserId.eq(id))
        .exec(db)
        .await
        .map_err(db_err)?;
    access_token::Entity::delete_many()
        .filter(access_token::Column::UserId.eq(id))
        .exec(db)
        .await
        .map_err(db_err)?;
    org_member::Entity::delete_many()
        .filter(org_member::Column::UserId.eq(id))
        .exec(db)
        .await
        .map_err(db_err)?;
    instance_member::Entity::delete_many()
        .filter(instance_member::Column::UserId.eq(id))
        .exec(db)
        .await
        .map_err(db_err)?;
    user::Entity::delete_by_id(id.to_owned())
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// One page of an org's users matching every query; the event position is of the orgs `seen`.
pub async fn list_users(
    db: &impl ConnectionTrait,
    org_id: &str,
    queries: &[UserQuery],
    order: UserOrder,
    page: Page,
    seen: &Visible,
) -> Result<PageOf<User>> {
    let backend = db.get_database_backend();
    let mut query = user::Entity::find().filter(user::Column::OrgId.eq(org_id));
    for q in queries {
        query = match q {
            UserQuery::UserName(m) => {
                query.filter(text_condition(backend, user::Column::UserName, m))
            }
            UserQuery::Ids(ids) => query.filter(user::Column::Id.is_in(ids.iter().cloned())),
            UserQuery::Nothing => query.filter(Expr::val(1).eq(0)),
        };
    }
    let order = match order {
        UserOrder::CreationDate => user::Column::CreatedAt,
        UserOrder::UserName => user::Column::UserName,
    };
    Ok(paged(db, query, order, user::Column::Id, page, seen)
        .await?
        .map(user_from))
}
