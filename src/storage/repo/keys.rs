//! Keys of both owners, in one table: a machine user's key has `user_id`, an API app's key
//! `project_id` and `app_id`.
use super::*;
use crate::domain::model::{KeyOwner, OwnerKind};

fn key_from(m: authn_key::Model) -> AuthnKey {
    // The table's check constraint sets exactly one owner.
    let owner = match m.user_id {
        Some(user_id) => KeyOwner::User { user_id },
        None => KeyOwner::App {
            project_id: m.project_id.unwrap_or_default(),
            app_id: m.app_id.unwrap_or_default(),
        },
    };
    AuthnKey {
        id: m.id,
        owner,
        org_id: m.org_id,
        key_type: m.key_type,
        public_key: m.public_key,
        expires_at: m.expires_at.to_utc(),
        sequence: u(m.sequence),
        created_at: m.created_at.to_utc(),
    }
}

/// The owner's columns: (user_id, project_id, app_id).
fn owner_columns(owner: &KeyOwner) -> (Option<String>, Option<String>, Option<String>) {
    match owner {
        KeyOwner::User { user_id } => (Some(user_id.clone()), None, None),
        KeyOwner::App { project_id, app_id } => {
            (None, Some(project_id.clone()), Some(app_id.clone()))
        }
    }
}

/// The condition "the key belongs to `owner`".
fn owned_by(owner: &KeyOwner) -> sea_orm::Condition {
    use authn_key::Column as C;
    match owner {
        KeyOwner::User { user_id } => sea_orm::Condition::all().add(C::UserId.eq(user_id.as_str())),
        KeyOwner::App { project_id, app_id } => sea_orm::Condition::all()
            .add(C::AppId.eq(app_id.as_str()))
            .add(C::ProjectId.eq(project_id.as_str())),
    }
}

pub async fn insert_key(db: &impl ConnectionTrait, k: &AuthnKey) -> Result<()> {
    let (user_id, project_id, app_id) = owner_columns(&k.owner);
    authn_key::Entity::insert(authn_key::ActiveModel {
        id: Set(k.id.clone()),
        org_id: Set(k.org_id.clone()),
        user_id: Set(user_id),
        project_id: Set(project_id),
        app_id: Set(app_id),
        key_type: Set(k.key_type),
        public_key: Set(k.public_key.clone()),
        expires_at: Set(k.expires_at.fixed_offset()),
        sequence: Set(k.sequence as i64),
        created_at: Set(k.created_at.fixed_offset()),
    })
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// A key by id alone, whoever owns it (the token and introspection endpoints' lookup by
/// `kid`, v2's lookups by key id).
pub async fn find_key(db: &impl ConnectionTrait, key_id: &str) -> Result<Option<AuthnKey>> {
    Ok(authn_key::Entity::find_by_id(key_id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(key_from))
}

/// One page of an owner's keys in `org_id` with the total count, newest first unless
/// `page.asc`.
pub async fn list_keys(
    db: &impl ConnectionTrait,
    org_id: &str,
    owner: &KeyOwner,
    page: Page,
    seen: &Visible,
) -> Result<PageOf<AuthnKey>> {
    use authn_key::Column as C;
    let query = authn_key::Entity::find()
        .filter(C::OrgId.eq(org_id))
        .filter(owned_by(owner));
    Ok(paged(db, query, C::CreatedAt, C::Id, page, seen)
        .await?
        .map(key_from))
}

/// Removes the owner's key; returns whether it existed. The access tokens obtained with it
/// go with it (foreign key, cascade) — also those committed while this delete waited for the
/// key row.
pub async fn delete_key(
    db: &impl ConnectionTrait,
    org_id: &str,
    owner: &KeyOwner,
    key_id: &str,
) -> Result<bool> {
    use authn_key::Column as C;
    let res = authn_key::Entity::delete_many()
        .filter(C::Id.eq(key_id))
        .filter(C::OrgId.eq(org_id))
        .filter(owned_by(owner))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(res.rows_affected > 0)
}

/// The condition of one v2 key filter. A project filter never matches a user's key (its
/// project is NULL).
fn key_condition(kind: OwnerKind, f: &KeyFilter) -> Expr {
    use authn_key::Column as C;
    match f {
        KeyFilter::KeyId(id) => C::Id.eq(id.clone()),
        KeyFilter::OwnerId(id) => owner_column(kind).eq(id.clone()),
        KeyFilter::OrgId(id) => C::OrgId.eq(id.clone()),
        KeyFilter::ProjectId(id) => C::ProjectId.eq(id.clone()),
        KeyFilter::Created(how, at) => compare(C::CreatedAt, *how, *at),
        KeyFilter::Expires(how, at) => compare(C::ExpiresAt, *how, *at),
    }
}

fn owner_column(kind: OwnerKind) -> authn_key::Column {
    match kind {
        OwnerKind::User => authn_key::Column::UserId,
        OwnerKind::App => authn_key::Column::AppId,
    }
}

/// The sort column; ties break by id in the same direction (a user's key has no project, so
/// ordering users' keys by project is ordering them by id).
fn key_order(kind: OwnerKind, order: KeyOrder) -> authn_key::Column {
    use authn_key::Column as C;
    match order {
        KeyOrder::Created => C::CreatedAt,
        KeyOrder::Id => C::Id,
        KeyOrder::OwnerId => owner_column(kind),
        KeyOrder::ProjectId if kind == OwnerKind::User => C::Id,
        KeyOrder::ProjectId => C::ProjectId,
        KeyOrder::OrgId => C::OrgId,
        KeyOrder::Expiration => C::ExpiresAt,
    }
}

/// One page of the keys of `kind` matching every filter among those `visible` (the visible
/// orgs' keys, and for users' keys the caller's own), in `order`, and the count of all of them
/// (v2 ListKeys and ListApplicationKeys).
pub async fn search_keys(
    db: &impl ConnectionTrait,
    kind: OwnerKind,
    visible: &Visible,
    filters: &[KeyFilter],
    order: KeyOrder,
    page: Page,
) -> Result<PageOf<AuthnKey>> {
    use authn_key::Column as C;
    let mut query = authn_key::Entity::find().filter(owner_column(kind).is_not_null());
    if let Visible::Some { orgs, own_user } = visible {
        let mut any = sea_orm::Condition::any().add(C::OrgId.is_in(orgs.iter().cloned()));
        if let (OwnerKind::User, Some(user)) = (kind, own_user) {
            any = any.add(C::UserId.eq(user.clone()));
        }
        query = query.filter(any);
    }
    for f in filters {
        query = query.filter(key_condition(kind, f));
    }
    Ok(
        paged(db, query, key_order(kind, order), C::Id, page, visible)
            .await?
            .map(key_from),
    )
}
