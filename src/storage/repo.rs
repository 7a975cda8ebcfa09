//! Repo functions: each takes a connection or a transaction (`&impl ConnectionTrait`) and
//! speaks in domain records. Callers own transactions.
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
    sea_query::{Expr, ExprTrait, Func, IntoColumnRef, LikeExpr},
};

use super::{db_err, entity::*};
use crate::{
    domain::{
        list::{
            Compare, KeyFilter, KeyOrder, Page, TextMatch, TextMethod, UserOrder, UserQuery,
            Visible,
        },
        model::{
            AccessToken, AccessTokenType, ApiAuthMethod, App, AuthnKey, Member, NewEvent, Org,
            Project, User,
        },
        principal::{Role, roles_from_text, roles_to_text},
    },
    error::{Error, Result},
};

fn u(v: i64) -> u64 {
    std::cmp::max(v, 0) as u64
}

// ---- id nodes and the instance -------------------------------------------------------------

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

pub async fn get_instance(db: &impl ConnectionTrait) -> Result<Option<(String, String)>> {
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

// ---- events ----------------------------------------------------------------------------------

pub async fn append_event(db: &impl ConnectionTrait, e: NewEvent) -> Result<()> {
    event::Entity::insert(event::ActiveModel {
        position: Default::default(),
        created_at: Set(e.created_at.fixed_offset()),
        org_id: Set(e.org_id),
        aggregate_type: Set(e.aggregate_type.into()),
        aggregate_id: Set(e.aggregate_id),
        aggregate_sequence: Set(e.aggregate_sequence as i64),
        event_type: Set(e.event_type.into()),
        actor: Set(e.actor),
        payload: Set(e.payload.to_string()),
    })
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Events of one aggregate, oldest first (for tests and audits).
pub async fn events_of(
    db: &impl ConnectionTrait,
    aggregate_id: &str,
) -> Result<Vec<(String, u64, String, String)>> {
    Ok(event::Entity::find()
        .filter(event::Column::AggregateId.eq(aggregate_id))
        .order_by(event::Column::Position, Order::Asc)
        .all(db)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(|m| (m.event_type, u(m.aggregate_sequence), m.actor, m.payload))
        .collect())
}

// ---- orgs ------------------------------------------------------------------------------------

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

pub async fn get_org(db: &impl ConnectionTrait, id: &str) -> Result<Option<Org>> {
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
    Ok(get_org(db, id).await?.map(|o| o.sequence))
}

// ---- users -----------------------------------------------------------------------------------

fn user_from(m: user::Model) -> User {
    User {
        id: m.id,
        org_id: m.org_id,
        user_name: m.user_name,
        name: m.name,
        description: m.description,
        access_token_type: AccessTokenType::from_i32(m.access_token_type)
            .unwrap_or(AccessTokenType::Bearer),
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
        sequence: Set(x.sequence as i64),
        created_at: Set(x.created_at.fixed_offset()),
        changed_at: Set(x.changed_at.fixed_offset()),
    })
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub async fn get_user(db: &impl ConnectionTrait, id: &str) -> Result<Option<User>> {
    Ok(user::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(user_from))
}

/// The user, if it exists in `org_id` (other orgs' users are invisible).
pub async fn get_user_in_org(
    db: &impl ConnectionTrait,
    org_id: &str,
    id: &str,
) -> Result<Option<User>> {
    Ok(get_user(db, id).await?.filter(|x| x.org_id == org_id))
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
    let res = user::Entity::update_many()
        .col_expr(
            user::Column::Sequence,
            Expr::col(user::Column::Sequence).add(1),
        )
        .col_expr(user::Column::ChangedAt, Expr::value(now.fixed_offset()))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::OrgId.eq(org_id))
        .exec(db)
        .await
        .map_err(db_err)?;
    if res.rows_affected == 0 {
        return Ok(None);
    }
    Ok(get_user(db, id).await?.map(|x| x.sequence))
}

/// Removes the user with its keys, tokens and memberships.
pub async fn delete_user(db: &impl ConnectionTrait, id: &str) -> Result<()> {
    machine_key::Entity::delete_many()
        .filter(machine_key::Column::UserId.eq(id))
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

// ---- members ---------------------------------------------------------------------------------

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

pub async fn get_org_member(
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

/// A page of a listing with its total and the newest event position it reflects.
#[derive(Debug, Clone)]
pub struct PageOf<T> {
    pub total: u64,
    pub latest_position: u64,
    pub items: Vec<T>,
}

impl<T> PageOf<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> PageOf<U> {
        PageOf {
            total: self.total,
            latest_position: self.latest_position,
            items: self.items.into_iter().map(f).collect(),
        }
    }
}

/// A row of a listing with the statement-wide figures attached.
struct WithTotals<M> {
    model: M,
    total: i64,
    latest: Option<i64>,
}

impl<M: sea_orm::FromQueryResult> sea_orm::FromQueryResult for WithTotals<M> {
    fn from_query_result(res: &sea_orm::QueryResult, pre: &str) -> Result<Self, sea_orm::DbErr> {
        Ok(WithTotals {
            model: M::from_query_result(res, pre)?,
            total: res.try_get(pre, "page_total")?,
            latest: res.try_get(pre, "page_latest")?,
        })
    }
}

/// The newest event position among the events of the orgs in `seen`, as a scalar expression.
/// Only those: the newest position of every org would let a tenant watch the others' writes.
/// Each org is its own `MAX` so that each is one probe of the (org_id, position) index; an
/// `IN` list would make the database walk every event of those orgs.
fn latest_position_expr(seen: &Visible) -> Expr {
    let orgs = match seen {
        Visible::All => return Expr::cust("(SELECT MAX(position) FROM events)"),
        Visible::Some { orgs, .. } => orgs,
    };
    let newest_of = |org: &String| {
        let q = sea_orm::sea_query::Query::select()
            .expr(Func::max(Expr::col(event::Column::Position)))
            .from(event::Entity)
            .and_where(Expr::col(event::Column::OrgId).eq(org.clone()))
            .to_owned();
        Expr::SubQuery(None, Box::new(q.into()))
    };
    match orgs.as_slice() {
        [] => Expr::cust("(SELECT MAX(position) FROM events WHERE 1 = 0)"),
        [org] => newest_of(org),
        many => {
            Expr::expr(Func::greatest(many.iter().map(|org| {
                Expr::expr(Func::coalesce([newest_of(org), Expr::val(0i64)]))
            })))
        }
    }
}

/// One page of `query` ordered by `order` then id (descending unless `page.asc`), the
/// count of all matches and the newest event position of the orgs `seen` — in one statement,
/// so one snapshot and one round trip. An empty page (past the end, or nothing to list) asks
/// once more for the two figures alone.
async fn paged<E>(
    db: &impl ConnectionTrait,
    query: sea_orm::Select<E>,
    order: E::Column,
    id: E::Column,
    page: Page,
    seen: &Visible,
) -> Result<PageOf<E::Model>>
where
    E: EntityTrait,
    E::Model: Send + Sync,
{
    // An uncorrelated scalar subquery: evaluated once per statement, from the index alone (a
    // window count would make the database materialize every matching row).
    let count = query
        .clone()
        .select_only()
        .column_as(Expr::cust("COUNT(*)"), "n")
        .into_query();
    let rows = query
        .clone()
        .column_as(Expr::SubQuery(None, Box::new(count.into())), "page_total")
        .column_as(latest_position_expr(seen), "page_latest")
        .order_by(order, order_dir(page))
        .order_by(id, order_dir(page))
        .offset(std::cmp::min(page.offset, i64::MAX as u64))
        .limit(page.limit)
        .into_model::<WithTotals<E::Model>>()
        .all(db)
        .await
        .map_err(db_err)?;
    if let Some(first) = rows.first() {
        return Ok(PageOf {
            total: u(first.total),
            latest_position: u(first.latest.unwrap_or(0)),
            items: rows.into_iter().map(|r| r.model).collect(),
        });
    }
    let (total, latest): (i64, Option<i64>) = query
        .select_only()
        .column_as(Expr::cust("COUNT(*)"), "page_total")
        .column_as(latest_position_expr(seen), "page_latest")
        .into_tuple()
        .one(db)
        .await
        .map_err(db_err)?
        .unwrap_or((0, None));
    Ok(PageOf {
        total: u(total),
        latest_position: u(latest.unwrap_or(0)),
        items: Vec::new(),
    })
}

fn order_dir(page: Page) -> Order {
    if page.asc { Order::Asc } else { Order::Desc }
}

/// The condition of a text query on `col`: `=` for equality, a pattern match otherwise, with
/// both sides lower-cased when case does not matter. SQLite's LIKE ignores ASCII case, so a
/// case-sensitive pattern match there is a GLOB.
fn text_condition<C: IntoColumnRef + Copy>(
    backend: sea_orm::DbBackend,
    col: C,
    m: &TextMatch,
) -> Expr {
    let lower = || Expr::expr(Func::lower(Expr::col(col)));
    match (m.method, m.ignore_case) {
        (TextMethod::Equals, false) => Expr::col(col).eq(m.value.clone()),
        (TextMethod::Equals, true) => lower().eq(m.value.to_lowercase()),
        (_, true) => {
            let folded = TextMatch {
                value: m.value.to_lowercase(),
                ..m.clone()
            };
            lower().like(LikeExpr::new(folded.like_pattern()).escape('\\'))
        }
        (_, false) if backend == sea_orm::DbBackend::Sqlite => {
            Expr::cust_with_exprs("? GLOB ?", [Expr::col(col), Expr::val(m.glob_pattern())])
        }
        (_, false) => Expr::col(col).like(LikeExpr::new(m.like_pattern()).escape('\\')),
    }
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

fn compare<C: IntoColumnRef + Copy>(col: C, how: Compare, at: DateTime<Utc>) -> Expr {
    let col = Expr::col(col);
    // Cut to the stored precision, so every database compares the same instant (MySQL
    // would round a finer one).
    let at = crate::storage::db_time(at).fixed_offset();
    match how {
        Compare::Equals => col.eq(at),
        Compare::After => col.gt(at),
        Compare::AfterOrEquals => col.gte(at),
        Compare::Before => col.lt(at),
        Compare::BeforeOrEquals => col.lte(at),
    }
}

/// The columns of a key table that the v2 filters and sorting name.
struct KeyColumns<C> {
    id: C,
    owner: C,
    org: C,
    /// Machine keys belong to no project.
    project: Option<C>,
    created: C,
    expires: C,
}

impl<C: ColumnTrait + IntoColumnRef + Copy> KeyColumns<C> {
    fn condition(&self, f: &KeyFilter) -> Expr {
        match f {
            KeyFilter::KeyId(id) => self.id.eq(id.clone()),
            KeyFilter::OwnerId(id) => self.owner.eq(id.clone()),
            KeyFilter::OrgId(id) => self.org.eq(id.clone()),
            KeyFilter::ProjectId(id) => match self.project {
                Some(project) => project.eq(id.clone()),
                None => Expr::val(1).eq(0),
            },
            KeyFilter::Created(how, at) => compare(self.created, *how, *at),
            KeyFilter::Expires(how, at) => compare(self.expires, *how, *at),
        }
    }

    /// The sort column; ties break by id in the same direction.
    fn order(&self, order: KeyOrder) -> C {
        match order {
            KeyOrder::Created => self.created,
            KeyOrder::Id => self.id,
            KeyOrder::OwnerId => self.owner,
            KeyOrder::ProjectId => self.project.unwrap_or(self.id),
            KeyOrder::OrgId => self.org,
            KeyOrder::Expiration => self.expires,
        }
    }
}

/// One page of the keys matching every filter among those `visible`, in `order`, and the
/// count of all of them (v2 ListKeys and ListApplicationKeys).
async fn find_keys<E>(
    db: &impl ConnectionTrait,
    mut query: sea_orm::Select<E>,
    columns: KeyColumns<E::Column>,
    filters: &[KeyFilter],
    order: KeyOrder,
    page: Page,
    seen: &Visible,
) -> Result<PageOf<E::Model>>
where
    E: EntityTrait,
    E::Model: Send + Sync,
    E::Column: IntoColumnRef + Copy,
{
    for f in filters {
        query = query.filter(columns.condition(f));
    }
    paged(db, query, columns.order(order), columns.id, page, seen).await
}

/// v2 ListKeys: machine keys of the visible orgs, or the caller's own.
pub async fn find_machine_keys(
    db: &impl ConnectionTrait,
    visible: &Visible,
    filters: &[KeyFilter],
    order: KeyOrder,
    page: Page,
) -> Result<PageOf<AuthnKey>> {
    use machine_key::Column as C;
    let mut query = machine_key::Entity::find();
    if let Visible::Some { orgs, own_user } = visible {
        let mut any = sea_orm::Condition::any().add(C::OrgId.is_in(orgs.iter().cloned()));
        if let Some(user) = own_user {
            any = any.add(C::UserId.eq(user.clone()));
        }
        query = query.filter(any);
    }
    let columns = KeyColumns {
        id: C::Id,
        owner: C::UserId,
        org: C::OrgId,
        project: None,
        created: C::CreatedAt,
        expires: C::ExpiresAt,
    };
    Ok(find_keys(db, query, columns, filters, order, page, visible)
        .await?
        .map(machine_key_from))
}

/// An app key with its project: (key, project id).
pub type AppKeyRow = (AuthnKey, String);

fn app_key_row(m: app_key::Model) -> AppKeyRow {
    let project = m.project_id.clone();
    (app_key_from(m), project)
}

/// v2 ListApplicationKeys: app keys of the visible orgs.
pub async fn find_app_keys(
    db: &impl ConnectionTrait,
    visible: &Visible,
    filters: &[KeyFilter],
    order: KeyOrder,
    page: Page,
) -> Result<PageOf<AppKeyRow>> {
    use app_key::Column as C;
    let mut query = app_key::Entity::find();
    if let Visible::Some { orgs, .. } = visible {
        query = query.filter(C::OrgId.is_in(orgs.iter().cloned()));
    }
    let columns = KeyColumns {
        id: C::Id,
        owner: C::AppId,
        org: C::OrgId,
        project: Some(C::ProjectId),
        created: C::CreatedAt,
        expires: C::ExpiresAt,
    };
    Ok(find_keys(db, query, columns, filters, order, page, visible)
        .await?
        .map(app_key_row))
}

/// An app key with its project, wherever it is.
pub async fn find_app_key_with_project(
    db: &impl ConnectionTrait,
    key_id: &str,
) -> Result<Option<AppKeyRow>> {
    Ok(app_key::Entity::find_by_id(key_id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(app_key_row))
}

// ---- machine keys and app keys ---------------------------------------------------------------

fn machine_key_from(m: machine_key::Model) -> AuthnKey {
    AuthnKey {
        id: m.id,
        owner_id: m.user_id,
        org_id: m.org_id,
        key_type: m.key_type,
        public_key: m.public_key,
        expires_at: m.expires_at.to_utc(),
        sequence: u(m.sequence),
        created_at: m.created_at.to_utc(),
    }
}

fn app_key_from(m: app_key::Model) -> AuthnKey {
    AuthnKey {
        id: m.id,
        owner_id: m.app_id,
        org_id: m.org_id,
        key_type: m.key_type,
        public_key: m.public_key,
        expires_at: m.expires_at.to_utc(),
        sequence: u(m.sequence),
        created_at: m.created_at.to_utc(),
    }
}

pub async fn insert_machine_key(db: &impl ConnectionTrait, k: &AuthnKey) -> Result<()> {
    machine_key::Entity::insert(machine_key::ActiveModel {
        id: Set(k.id.clone()),
        user_id: Set(k.owner_id.clone()),
        org_id: Set(k.org_id.clone()),
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

/// A machine key by id alone (the token endpoint's lookup by `kid`).
pub async fn find_machine_key(db: &impl ConnectionTrait, key_id: &str) -> Result<Option<AuthnKey>> {
    Ok(machine_key::Entity::find_by_id(key_id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(machine_key_from))
}

/// One page of a user's keys with the total count, newest first unless `page.asc`.
pub async fn list_machine_keys(
    db: &impl ConnectionTrait,
    org_id: &str,
    user_id: &str,
    page: Page,
    seen: &Visible,
) -> Result<PageOf<AuthnKey>> {
    let query = machine_key::Entity::find()
        .filter(machine_key::Column::OrgId.eq(org_id))
        .filter(machine_key::Column::UserId.eq(user_id));
    let p = paged(
        db,
        query,
        machine_key::Column::CreatedAt,
        machine_key::Column::Id,
        page,
        seen,
    )
    .await?;
    Ok(p.map(machine_key_from))
}

/// Removes the key and every access token obtained with it; returns whether the key existed.
pub async fn delete_machine_key(
    db: &impl ConnectionTrait,
    org_id: &str,
    user_id: &str,
    key_id: &str,
) -> Result<bool> {
    // The key's token records go with it (foreign key, cascade): also those committed while
    // this delete waited for the key row.
    let res = machine_key::Entity::delete_many()
        .filter(machine_key::Column::Id.eq(key_id))
        .filter(machine_key::Column::UserId.eq(user_id))
        .filter(machine_key::Column::OrgId.eq(org_id))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(res.rows_affected > 0)
}

/// An app key with its project; the app is in `owner_id`.
pub async fn insert_app_key(
    db: &impl ConnectionTrait,
    k: &AuthnKey,
    project_id: &str,
) -> Result<()> {
    app_key::Entity::insert(app_key::ActiveModel {
        id: Set(k.id.clone()),
        app_id: Set(k.owner_id.clone()),
        project_id: Set(project_id.into()),
        org_id: Set(k.org_id.clone()),
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

pub async fn find_app_key(db: &impl ConnectionTrait, key_id: &str) -> Result<Option<AuthnKey>> {
    Ok(app_key::Entity::find_by_id(key_id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(app_key_from))
}

pub async fn list_app_keys(
    db: &impl ConnectionTrait,
    org_id: &str,
    app_id: &str,
    page: Page,
    seen: &Visible,
) -> Result<PageOf<AuthnKey>> {
    let query = app_key::Entity::find()
        .filter(app_key::Column::OrgId.eq(org_id))
        .filter(app_key::Column::AppId.eq(app_id));
    let p = paged(
        db,
        query,
        app_key::Column::CreatedAt,
        app_key::Column::Id,
        page,
        seen,
    )
    .await?;
    Ok(p.map(app_key_from))
}

pub async fn delete_app_key(
    db: &impl ConnectionTrait,
    org_id: &str,
    app_id: &str,
    key_id: &str,
) -> Result<bool> {
    let res = app_key::Entity::delete_many()
        .filter(app_key::Column::Id.eq(key_id))
        .filter(app_key::Column::AppId.eq(app_id))
        .filter(app_key::Column::OrgId.eq(org_id))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(res.rows_affected > 0)
}

// ---- projects and apps -----------------------------------------------------------------------

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

pub async fn get_project(db: &impl ConnectionTrait, id: &str) -> Result<Option<Project>> {
    Ok(project::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(project_from))
}

pub async fn get_project_in_org(
    db: &impl ConnectionTrait,
    org_id: &str,
    id: &str,
) -> Result<Option<Project>> {
    Ok(get_project(db, id).await?.filter(|p| p.org_id == org_id))
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
    Ok(get_project(db, id).await?.map(|p| p.sequence))
}

/// Removes the project with its apps and their keys.
pub async fn delete_project(db: &impl ConnectionTrait, id: &str) -> Result<()> {
    app_key::Entity::delete_many()
        .filter(app_key::Column::ProjectId.eq(id))
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
pub async fn get_app(
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
    app_key::Entity::delete_many()
        .filter(app_key::Column::AppId.eq(app_id))
        .exec(db)
        .await
        .map_err(db_err)?;
    app::Entity::delete_by_id(app_id.to_owned())
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(())
}

// ---- access tokens and signing keys ----------------------------------------------------------

fn json_list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

/// A JSON array of strings as stored; anything else reads as empty (never as a wider grant).
fn from_json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Records access tokens, several in one statement; call it in a transaction. Each record
/// references its user and its key (foreign keys, cascade): a token whose key or user was
/// removed meanwhile is refused here (`STORE-Fk001`), and a removal deletes the records committed
/// before it, so no token outlives its key.
///
/// On PostgreSQL and MySQL their users are share-locked first. A removal of the user or of a
/// key holds the user row, then deletes keys (and so tokens) and the user; the insert's foreign
/// key checks lock the user and then the key (InnoDB even inserts the row before it checks), so
/// without the user locked first a grant racing a removal would deadlock. Locked first, the
/// grant simply waits for the removal, or the removal for it.
pub async fn insert_access_tokens(db: &impl ConnectionTrait, tokens: &[AccessToken]) -> Result<()> {
    if tokens.is_empty() {
        return Ok(());
    }
    if db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        let mut users: Vec<&str> = tokens.iter().map(|t| t.user_id.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::Id.is_in(users))
            .order_by(user::Column::Id, Order::Asc)
            .lock_shared()
            .into_tuple::<String>()
            .all(db)
            .await
            .map_err(db_err)?;
    }
    access_token::Entity::insert_many(tokens.iter().map(|t| access_token::ActiveModel {
        id: Set(t.id.clone()),
        token_hash: Set(t.token_hash.clone()),
        user_id: Set(t.user_id.clone()),
        org_id: Set(t.org_id.clone()),
        key_id: Set(t.key_id.clone()),
        scopes: Set(json_list(&t.scopes)),
        audience: Set(json_list(&t.audience)),
        projects: Set(json_list(&t.projects)),
        expires_at: Set(t.expires_at.fixed_offset()),
        created_at: Set(t.created_at.fixed_offset()),
    }))
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub async fn find_access_token(
    db: &impl ConnectionTrait,
    token_hash: &str,
) -> Result<Option<AccessToken>> {
    Ok(access_token::Entity::find()
        .filter(access_token::Column::TokenHash.eq(token_hash))
        .one(db)
        .await
        .map_err(db_err)?
        .map(|m| AccessToken {
            id: m.id,
            token_hash: m.token_hash,
            user_id: m.user_id,
            org_id: m.org_id,
            key_id: m.key_id,
            scopes: from_json_list(&m.scopes),
            audience: from_json_list(&m.audience),
            projects: from_json_list(&m.projects),
            expires_at: m.expires_at.to_utc(),
            created_at: m.created_at.to_utc(),
        }))
}

/// Removes tokens and remembered assertion ids that expired before `before`; returns how
/// many rows went.
pub async fn purge_expired_tokens(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64> {
    let tokens = access_token::Entity::delete_many()
        .filter(access_token::Column::ExpiresAt.lt(before.fixed_offset()))
        .exec(db)
        .await
        .map_err(db_err)?;
    let assertions = used_assertion::Entity::delete_many()
        .filter(used_assertion::Column::ExpiresAt.lt(before.fixed_offset()))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(tokens.rows_affected + assertions.rows_affected)
}

/// Remembers an assertion id until `expires_at`; false when it was already used.
pub async fn remember_assertion(
    db: &impl ConnectionTrait,
    id: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool> {
    let res = used_assertion::Entity::insert(used_assertion::ActiveModel {
        id: Set(id.to_owned()),
        expires_at: Set(expires_at.fixed_offset()),
    })
    .exec_without_returning(db)
    .await;
    match res.map_err(db_err) {
        Ok(_) => Ok(true),
        Err(e) if e.kind == crate::error::Kind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// A token signing key row: public PEM and the encrypted private key.
#[derive(Clone)]
pub struct SigningKeyRow {
    pub id: String,
    pub algorithm: String,
    pub public_key: String,
    pub private_key_enc: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

pub async fn list_signing_keys(db: &impl ConnectionTrait) -> Result<Vec<SigningKeyRow>> {
    Ok(signing_key::Entity::find()
        .order_by(signing_key::Column::CreatedAt, Order::Desc)
        .order_by(signing_key::Column::Id, Order::Desc)
        .all(db)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(|m| SigningKeyRow {
            id: m.id,
            algorithm: m.algorithm,
            public_key: m.public_key,
            private_key_enc: m.private_key_enc,
            created_at: m.created_at.to_utc(),
        })
        .collect())
}

pub async fn insert_signing_key(db: &impl ConnectionTrait, k: &SigningKeyRow) -> Result<()> {
    signing_key::Entity::insert(signing_key::ActiveModel {
        id: Set(k.id.clone()),
        algorithm: Set(k.algorithm.clone()),
        public_key: Set(k.public_key.clone()),
        private_key_enc: Set(k.private_key_enc.clone()),
        created_at: Set(k.created_at.fixed_offset()),
    })
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// A signing key's public facts, without its encrypted private key: what the JWKS refresh
/// reads every second.
#[derive(Debug, Clone)]
pub struct SigningKeyPublic {
    pub id: String,
    pub public_key: String,
    pub created_at: DateTime<Utc>,
}

/// Newest first, as [`list_signing_keys`].
pub async fn list_signing_key_publics(db: &impl ConnectionTrait) -> Result<Vec<SigningKeyPublic>> {
    let rows: Vec<(String, String, sea_orm::prelude::DateTimeWithTimeZone)> =
        signing_key::Entity::find()
            .select_only()
            .column(signing_key::Column::Id)
            .column(signing_key::Column::PublicKey)
            .column(signing_key::Column::CreatedAt)
            .order_by(signing_key::Column::CreatedAt, Order::Desc)
            .order_by(signing_key::Column::Id, Order::Desc)
            .into_tuple()
            .all(db)
            .await
            .map_err(db_err)?;
    Ok(rows
        .into_iter()
        .map(|(id, public_key, created_at)| SigningKeyPublic {
            id,
            public_key,
            created_at: created_at.to_utc(),
        })
        .collect())
}

pub async fn get_signing_key(db: &impl ConnectionTrait, id: &str) -> Result<Option<SigningKeyRow>> {
    Ok(signing_key::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(|m| SigningKeyRow {
            id: m.id,
            algorithm: m.algorithm,
            public_key: m.public_key,
            private_key_enc: m.private_key_enc,
            created_at: m.created_at.to_utc(),
        }))
}

/// Replaces a signing key's encrypted private key, if it still is `old` (another process may
/// have replaced it first, or the key may have been dropped). True when this call replaced it.
pub async fn reseal_signing_key(
    db: &impl ConnectionTrait,
    id: &str,
    old: &[u8],
    new: &[u8],
) -> Result<bool> {
    let res = signing_key::Entity::update_many()
        .col_expr(
            signing_key::Column::PrivateKeyEnc,
            Expr::value(new.to_vec()),
        )
        .filter(signing_key::Column::Id.eq(id))
        .filter(signing_key::Column::PrivateKeyEnc.eq(old.to_vec()))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(res.rows_affected == 1)
}

/// Deletes every signing key but `keep`; returns the ids deleted.
pub async fn delete_signing_keys_except(
    db: &impl ConnectionTrait,
    keep: &str,
) -> Result<Vec<String>> {
    let gone: Vec<String> = signing_key::Entity::find()
        .select_only()
        .column(signing_key::Column::Id)
        .filter(signing_key::Column::Id.ne(keep))
        .order_by(signing_key::Column::CreatedAt, Order::Desc)
        .order_by(signing_key::Column::Id, Order::Desc)
        .into_tuple()
        .all(db)
        .await
        .map_err(db_err)?;
    signing_key::Entity::delete_many()
        .filter(signing_key::Column::Id.ne(keep))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(gone)
}

/// Re-labels a unique violation with the caller's id and message.
pub fn on_conflict(
    e: Error,
    id: &'static str,
    message: impl Into<std::borrow::Cow<'static, str>>,
) -> Error {
    if e.kind == crate::error::Kind::AlreadyExists {
        Error {
            id,
            message: message.into(),
            ..e
        }
    } else {
        e
    }
}
