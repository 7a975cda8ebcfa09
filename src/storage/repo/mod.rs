//! Repo functions, one module per aggregate: each takes a connection or a transaction
//! (`&impl ConnectionTrait`) and speaks in domain records. Callers own transactions (the
//! services through their unit of work).
//!
//! Naming: `find_*` reads what may be absent and answers `Option` (a missing row is not an
//! error here; the use case decides what it means); `list_*` reads a page of one owner's rows,
//! `search_*` a filtered page across owners; `insert_*`, `delete_*` and
//! `bump_*` write. The services' `get_*` are the reads that answer NOT_FOUND.
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
        key_policy::KeyPolicy,
        list::{
            Compare, KeyFilter, KeyOrder, MemberQuery, Page, TextMatch, TextMethod, UserOrder,
            UserQuery, Visible,
        },
        model::{
            AccessToken, AccessTokenType, ApiAuthMethod, App, AuthnKey, Member, MemberEntry,
            NewEvent, Org, Project, User,
        },
        principal::{Role, roles_from_text, roles_to_text},
    },
    error::{Error, Result},
};

mod events;
mod instance_row;
mod keys;
mod members;
mod orgs;
mod projects;
mod signing;
mod tokens;
mod trusts;
mod users;
mod webhooks;

pub use events::*;
pub use instance_row::*;
pub use keys::*;
pub use members::*;
pub use orgs::*;
pub use projects::*;
pub use signing::*;
pub use tokens::*;
pub use trusts::*;
pub use users::*;
pub use webhooks::*;

fn u(v: i64) -> u64 {
    std::cmp::max(v, 0) as u64
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
    paged_as(db, query, order, id, page, seen).await
}

/// [`paged`] for a query that selects its own columns (a join), read as `M`.
async fn paged_as<E, M>(
    db: &impl ConnectionTrait,
    query: sea_orm::Select<E>,
    order: E::Column,
    id: E::Column,
    page: Page,
    seen: &Visible,
) -> Result<PageOf<M>>
where
    E: EntityTrait,
    M: sea_orm::FromQueryResult + Send + Sync,
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
        .into_model::<WithTotals<M>>()
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
