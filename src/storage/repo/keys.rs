//! Keys of both owners, in one table: a machine user's key has `user_id`, an API app's key
//! `project_id` and `app_id`.
use super::*;
use crate::domain::{
    jwt::Algorithm,
    list::KeyQuery,
    model::{Disabled, KeyOrigin, KeyOwner, KeyState, KeyUse, LastUse, OwnerKind},
};

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
        // Written by the server only; a value it does not know reads as the safe default.
        algorithm: Algorithm::parse(&m.algorithm).unwrap_or(Algorithm::RS256),
        origin: KeyOrigin::parse(&m.origin).unwrap_or(KeyOrigin::Generated),
        thumbprint: m.thumbprint.unwrap_or_default(),
        disabled: m.disabled_at.map(|at| Disabled {
            at: at.to_utc(),
            reason: m.disabled_reason.unwrap_or_default(),
        }),
        last_used: m.last_used_at.and_then(|at| {
            Some(LastUse {
                at: at.to_utc(),
                kind: KeyUse::parse(m.last_used_kind.as_deref()?)?,
                address: m.last_used_address.unwrap_or_default(),
            })
        }),
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
        algorithm: Set(k.algorithm.as_str().to_owned()),
        origin: Set(k.origin.as_str().to_owned()),
        thumbprint: Set(Some(k.thumbprint.clone())),
        disabled_at: Set(k.disabled.as_ref().map(|d| d.at.fixed_offset())),
        disabled_reason: Set(k.disabled.as_ref().map(|d| d.reason.clone())),
        last_used_at: Set(None),
        last_used_kind: Set(None),
        last_used_address: Set(None),
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

/// How many of the owner's keys have not expired by `now` (the key policy's count).
pub async fn count_live_keys(
    db: &impl ConnectionTrait,
    owner: &KeyOwner,
    now: DateTime<Utc>,
) -> Result<u64> {
    authn_key::Entity::find()
        .filter(owned_by(owner))
        .filter(authn_key::Column::ExpiresAt.gt(now.fixed_offset()))
        .count(db)
        .await
        .map_err(db_err)
}

/// Disables the org's key unless it is disabled already; returns whether it changed. The
/// access tokens obtained with it are deleted in the same statement sequence (call it in the
/// write's transaction): a token insert share-locks its key and checks that it is enabled, so
/// a grant racing this either commits first and is deleted here, or sees the key disabled.
pub async fn disable_key(
    db: &impl ConnectionTrait,
    org_id: &str,
    key_id: &str,
    disabled: &Disabled,
) -> Result<bool> {
    use authn_key::Column as C;
    let res = authn_key::Entity::update_many()
        .col_expr(C::DisabledAt, Expr::value(disabled.at.fixed_offset()))
        .col_expr(C::DisabledReason, Expr::value(disabled.reason.clone()))
        .filter(C::Id.eq(key_id))
        .filter(C::OrgId.eq(org_id))
        .filter(C::DisabledAt.is_null())
        .exec(db)
        .await
        .map_err(db_err)?;
    if res.rows_affected == 0 {
        return Ok(false);
    }
    access_token::Entity::delete_many()
        .filter(access_token::Column::KeyId.eq(key_id))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(true)
}

/// Enables the org's disabled key; returns whether it changed. Tokens it obtained before it
/// was disabled stay deleted.
pub async fn enable_key(db: &impl ConnectionTrait, org_id: &str, key_id: &str) -> Result<bool> {
    use authn_key::Column as C;
    let res = authn_key::Entity::update_many()
        .col_expr(C::DisabledAt, Expr::value(Option::<DateTimeWithTz>::None))
        .col_expr(C::DisabledReason, Expr::value(Option::<String>::None))
        .filter(C::Id.eq(key_id))
        .filter(C::OrgId.eq(org_id))
        .filter(C::DisabledAt.is_not_null())
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(res.rows_affected > 0)
}

type DateTimeWithTz = chrono::DateTime<chrono::FixedOffset>;

/// Moves keys' last use forward (never back: another process may have seen a later use);
/// sorted by key id, as token inserts lock keys, so the two never deadlock.
pub async fn record_last_uses(db: &impl ConnectionTrait, uses: &[(String, LastUse)]) -> Result<()> {
    use authn_key::Column as C;
    let mut sorted: Vec<&(String, LastUse)> = uses.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (key_id, last) in sorted {
        let at = last.at.fixed_offset();
        authn_key::Entity::update_many()
            .col_expr(C::LastUsedAt, Expr::value(at))
            .col_expr(C::LastUsedKind, Expr::value(last.kind.as_str()))
            .col_expr(C::LastUsedAddress, Expr::value(last.address.clone()))
            .filter(C::Id.eq(key_id.as_str()))
            .filter(
                sea_orm::Condition::any()
                    .add(C::LastUsedAt.is_null())
                    .add(C::LastUsedAt.lt(at)),
            )
            .exec(db)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// The condition of a lifecycle listing's filters, at `now` (states depend on it).
fn query_condition(q: &KeyQuery, now: DateTime<Utc>) -> sea_orm::Condition {
    use authn_key::Column as C;
    let mut all = sea_orm::Condition::all();
    match (q.users, q.apps) {
        (true, false) => all = all.add(C::UserId.is_not_null()),
        (false, true) => all = all.add(C::AppId.is_not_null()),
        (false, false) => all = all.add(Expr::cust("1 = 0")),
        (true, true) => {}
    }
    if let Some(id) = &q.user_id {
        all = all.add(C::UserId.eq(id.as_str()));
    }
    if let Some(id) = &q.project_id {
        all = all.add(C::ProjectId.eq(id.as_str()));
    }
    if let Some(id) = &q.app_id {
        all = all.add(C::AppId.eq(id.as_str()));
    }
    let now = now.fixed_offset();
    match q.state {
        Some(KeyState::Active) => {
            all = all.add(C::DisabledAt.is_null()).add(C::ExpiresAt.gt(now));
        }
        Some(KeyState::Disabled) => all = all.add(C::DisabledAt.is_not_null()),
        Some(KeyState::Expired) => {
            all = all.add(C::DisabledAt.is_null()).add(C::ExpiresAt.lte(now));
        }
        None => {}
    }
    if let Some(origin) = q.origin {
        all = all.add(C::Origin.eq(origin.as_str()));
    }
    if let Some(t) = q.unused_since {
        let t = crate::storage::db_time(t).fixed_offset();
        all = all.add(
            sea_orm::Condition::any()
                .add(C::LastUsedAt.is_null())
                .add(C::LastUsedAt.lt(t)),
        );
    }
    if let Some(t) = q.expires_before {
        all = all.add(C::ExpiresAt.lt(crate::storage::db_time(t).fixed_offset()));
    }
    all
}

/// One page of the org's keys of both owners matching `q`, newest first unless `page.asc`,
/// with the count of all of them (authnkeys.v1 ListKeys).
pub async fn search_org_keys(
    db: &impl ConnectionTrait,
    org_id: &str,
    q: &KeyQuery,
    now: DateTime<Utc>,
    page: Page,
    seen: &Visible,
) -> Result<PageOf<AuthnKey>> {
    use authn_key::Column as C;
    let query = authn_key::Entity::find()
        .filter(C::OrgId.eq(org_id))
        .filter(query_condition(q, now));
    Ok(paged(db, query, C::CreatedAt, C::Id, page, seen)
        .await?
        .map(key_from))
}

fn policy_from(m: key_policy::Model) -> KeyPolicy {
    let list = |text: &str| -> Vec<String> { serde_json::from_str(text).unwrap_or_default() };
    KeyPolicy {
        max_lifetime: m.max_lifetime_secs.map(chrono::Duration::seconds),
        default_lifetime: m.default_lifetime_secs.map(chrono::Duration::seconds),
        max_keys_per_owner: u32::try_from(m.max_keys_per_owner).unwrap_or(0),
        allowed_origins: list(&m.allowed_origins)
            .iter()
            .filter_map(|o| KeyOrigin::parse(o))
            .collect(),
        allowed_algorithms: list(&m.allowed_algorithms)
            .iter()
            .filter_map(|a| Algorithm::parse(a))
            .collect(),
    }
}

/// The org's own key policy, if it has one.
pub async fn find_key_policy(db: &impl ConnectionTrait, org_id: &str) -> Result<Option<KeyPolicy>> {
    Ok(key_policy::Entity::find_by_id(org_id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(policy_from))
}

/// Sets the org's key policy (call it in a write that holds the org).
pub async fn upsert_key_policy(
    db: &impl ConnectionTrait,
    org_id: &str,
    p: &KeyPolicy,
    sequence: u64,
    now: DateTime<Utc>,
) -> Result<()> {
    let origins: Vec<&str> = p.allowed_origins.iter().map(|o| o.as_str()).collect();
    let algorithms: Vec<&str> = p.allowed_algorithms.iter().map(|a| a.as_str()).collect();
    let row = key_policy::ActiveModel {
        org_id: Set(org_id.to_owned()),
        max_lifetime_secs: Set(p.max_lifetime.map(|d| d.num_seconds())),
        default_lifetime_secs: Set(p.default_lifetime.map(|d| d.num_seconds())),
        max_keys_per_owner: Set(i32::try_from(p.max_keys_per_owner).unwrap_or(i32::MAX)),
        allowed_origins: Set(serde_json::Value::from(origins).to_string()),
        allowed_algorithms: Set(serde_json::Value::from(algorithms).to_string()),
        sequence: Set(sequence as i64),
        changed_at: Set(now.fixed_offset()),
    };
    let exists = key_policy::Entity::find_by_id(org_id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .is_some();
    if exists {
        key_policy::Entity::update(row)
            .exec(db)
            .await
            .map_err(db_err)?;
    } else {
        key_policy::Entity::insert(row)
            .exec_without_returning(db)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Removes the org's own key policy; returns whether it had one.
pub async fn delete_key_policy(db: &impl ConnectionTrait, org_id: &str) -> Result<bool> {
    let res = key_policy::Entity::delete_by_id(org_id.to_owned())
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(res.rows_affected > 0)
}
