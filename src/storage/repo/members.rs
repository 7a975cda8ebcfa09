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

/// A membership row joined with its user's names.
#[derive(sea_orm::FromQueryResult)]
struct MemberRow {
    org_id: String,
    user_id: String,
    roles: String,
    created_at: sea_orm::prelude::ChronoDateTimeWithTimeZone,
    changed_at: sea_orm::prelude::ChronoDateTimeWithTimeZone,
    user_name: String,
    display_name: String,
    user_org_id: String,
}

/// One page of an org's memberships matching every query, each with its user's names, ordered
/// by when the membership was made, then user id; the event position is of the orgs `seen`.
/// Instance roles are not memberships and are not listed.
pub async fn list_org_members(
    db: &impl ConnectionTrait,
    org_id: &str,
    queries: &[MemberQuery],
    page: Page,
    seen: &Visible,
) -> Result<PageOf<MemberEntry>> {
    let of_user: sea_orm::RelationDef = org_member::Entity::belongs_to(user::Entity)
        .from(org_member::Column::UserId)
        .to(user::Column::Id)
        .into();
    let mut query = org_member::Entity::find()
        .select_only()
        .columns([
            org_member::Column::OrgId,
            org_member::Column::UserId,
            org_member::Column::Roles,
            org_member::Column::CreatedAt,
            org_member::Column::ChangedAt,
        ])
        .column_as(user::Column::UserName, "user_name")
        .column_as(user::Column::Name, "display_name")
        .column_as(user::Column::OrgId, "user_org_id")
        .join(sea_orm::JoinType::InnerJoin, of_user)
        .filter(org_member::Column::OrgId.eq(org_id));
    for q in queries {
        query = match q {
            MemberQuery::UserId(id) => query.filter(org_member::Column::UserId.eq(id.as_str())),
            MemberQuery::Nothing => query.filter(Expr::val(1).eq(0)),
        };
    }
    let page: PageOf<MemberRow> = paged_as(
        db,
        query,
        org_member::Column::CreatedAt,
        org_member::Column::UserId,
        page,
        seen,
    )
    .await?;
    Ok(page.map(|m| MemberEntry {
        org_id: m.org_id,
        user_id: m.user_id,
        roles: roles_from_text(&m.roles),
        user_name: m.user_name,
        display_name: m.display_name,
        user_org_id: m.user_org_id,
        created_at: m.created_at.to_utc(),
        changed_at: m.changed_at.to_utc(),
    }))
}
