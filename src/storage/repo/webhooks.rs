//! Webhooks, their deliveries, the expiry notices given, and the job rows background work
//! locks. The event log is the outbox: an event is written in the transaction of its change
//! (`append_event`), and the dispatcher turns undispatched events into deliveries
//! ([`undispatched_events`], [`insert_deliveries`], [`mark_dispatched`]) and claims due ones
//! ([`claim_deliveries`]) — with `FOR UPDATE SKIP LOCKED` on PostgreSQL and MySQL, and under
//! SQLite's single writer lock there.
use sea_orm::{DbBackend, sea_query::LockBehavior, sea_query::LockType};

use super::*;

/// The states of a delivery.
pub const PENDING: &str = "pending";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";

/// The job rows, made at start if missing.
pub const JOB_DISPATCH: &str = "dispatch";
pub const JOB_CLAIM: &str = "claim";
pub const JOB_EXPIRY: &str = "expiry";

fn backend(db: &impl ConnectionTrait) -> DbBackend {
    db.get_database_backend()
}

fn at(t: DateTime<Utc>) -> sea_orm::prelude::ChronoDateTimeWithTimeZone {
    crate::storage::db_time(t).fixed_offset()
}

pub async fn insert_webhook(db: &impl ConnectionTrait, w: webhook::Model) -> Result<()> {
    webhook::Entity::insert(webhook::ActiveModel::from(w))
        .exec_without_returning(db)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// The webhooks of one org (`Some`), or of every org.
pub async fn list_webhooks(
    db: &impl ConnectionTrait,
    org_id: Option<&str>,
) -> Result<Vec<webhook::Model>> {
    let mut q = webhook::Entity::find();
    if let Some(org) = org_id {
        q = q.filter(webhook::Column::OrgId.eq(org));
    }
    q.order_by(webhook::Column::CreatedAt, Order::Asc)
        .order_by(webhook::Column::Id, Order::Asc)
        .all(db)
        .await
        .map_err(db_err)
}

pub async fn find_webhook(db: &impl ConnectionTrait, id: &str) -> Result<Option<webhook::Model>> {
    webhook::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .map_err(db_err)
}

/// Deletes a webhook's deliveries, pending ones included (they are never sent).
pub async fn delete_deliveries_of(db: &impl ConnectionTrait, webhook_id: &str) -> Result<()> {
    delivery::Entity::delete_many()
        .filter(delivery::Column::WebhookId.eq(webhook_id))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Removes a webhook and every delivery it still had (pending ones are never sent).
pub async fn delete_webhook(db: &impl ConnectionTrait, id: &str) -> Result<bool> {
    delete_deliveries_of(db, id).await?;
    Ok(webhook::Entity::delete_by_id(id.to_owned())
        .exec(db)
        .await
        .map_err(db_err)?
        .rows_affected
        == 1)
}

/// Pending and failed deliveries per webhook.
pub async fn delivery_counts(
    db: &impl ConnectionTrait,
    webhook_ids: &[String],
) -> Result<Vec<(String, String, i64)>> {
    use delivery::Column as C;
    if webhook_ids.is_empty() {
        return Ok(Vec::new());
    }
    delivery::Entity::find()
        .select_only()
        .column(C::WebhookId)
        .column(C::State)
        .column_as(C::Id.count(), "n")
        .filter(C::WebhookId.is_in(webhook_ids.iter().map(String::as_str)))
        .filter(C::State.is_in([PENDING, FAILED]))
        .group_by(C::WebhookId)
        .group_by(C::State)
        .into_tuple::<(String, String, i64)>()
        .all(db)
        .await
        .map_err(db_err)
}

/// Makes the job rows that are missing (at start; several processes may race to).
pub async fn ensure_jobs(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<()> {
    for name in [JOB_DISPATCH, JOB_CLAIM, JOB_EXPIRY] {
        if job_lock::Entity::find_by_id(name.to_owned())
            .one(db)
            .await
            .map_err(db_err)?
            .is_some()
        {
            continue;
        }
        let inserted = job_lock::Entity::insert(job_lock::ActiveModel {
            name: Set(name.to_owned()),
            holder: Set(String::new()),
            ran_at: Set(at(now - chrono::Duration::days(1))),
        })
        .exec_without_returning(db)
        .await;
        match inserted {
            Ok(_) => {}
            // Another process made it first.
            Err(e)
                if matches!(
                    e.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ) => {}
            Err(e) => return Err(db_err(e)),
        }
    }
    Ok(())
}

/// Takes the job row `name` inside the transaction `tx`, for one process at a time: `false`
/// when another process holds it (PostgreSQL, MySQL: `SKIP LOCKED`; SQLite: its one writer
/// waits instead) or ran it less than `every` ago. Taken, it is stamped with `now`; it is
/// released when the transaction ends.
pub async fn take_job(
    tx: &impl ConnectionTrait,
    name: &str,
    holder: &str,
    now: DateTime<Utc>,
    every: chrono::Duration,
) -> Result<bool> {
    use job_lock::Column as C;
    let row = if backend(tx) == DbBackend::Sqlite {
        // The write first: it takes SQLite's writer lock for the rest of the transaction.
        job_lock::Entity::update_many()
            .col_expr(C::Holder, Expr::value(holder))
            .filter(C::Name.eq(name))
            .exec(tx)
            .await
            .map_err(db_err)?;
        job_lock::Entity::find_by_id(name.to_owned())
            .one(tx)
            .await
            .map_err(db_err)?
    } else {
        job_lock::Entity::find_by_id(name.to_owned())
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .one(tx)
            .await
            .map_err(db_err)?
    };
    let Some(row) = row else { return Ok(false) };
    let last = row.ran_at.with_timezone(&Utc);
    if every > chrono::Duration::zero() && now - last < every && last <= now {
        return Ok(false);
    }
    job_lock::Entity::update_many()
        .col_expr(C::Holder, Expr::value(holder))
        .col_expr(C::RanAt, Expr::value(at(now)))
        .filter(C::Name.eq(name))
        .exec(tx)
        .await
        .map_err(db_err)?;
    Ok(true)
}

/// [`take_job`] waiting for the process that holds it instead of skipping, whenever the job
/// last ran. `false` only when the row is missing.
pub async fn wait_for_job(
    tx: &impl ConnectionTrait,
    name: &str,
    holder: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    use job_lock::Column as C;
    let taken = job_lock::Entity::update_many()
        .col_expr(C::Holder, Expr::value(holder))
        .col_expr(C::RanAt, Expr::value(at(now)))
        .filter(C::Name.eq(name))
        .exec(tx)
        .await
        .map_err(db_err)?;
    Ok(taken.rows_affected == 1)
}

/// Whether any event waits for its deliveries to be made.
pub async fn has_undispatched_events(db: &impl ConnectionTrait) -> Result<bool> {
    Ok(event::Entity::find()
        .select_only()
        .column(event::Column::Position)
        .filter(event::Column::DispatchedAt.is_null())
        .limit(1)
        .into_tuple::<i64>()
        .one(db)
        .await
        .map_err(db_err)?
        .is_some())
}

/// Whether any pending delivery is due at `now`.
pub async fn has_due_deliveries(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<bool> {
    Ok(delivery::Entity::find()
        .select_only()
        .column(delivery::Column::Id)
        .filter(delivery::Column::State.eq(PENDING))
        .filter(delivery::Column::DueAt.lte(at(now)))
        .limit(1)
        .into_tuple::<i64>()
        .one(db)
        .await
        .map_err(db_err)?
        .is_some())
}

/// The oldest events whose deliveries are not made yet.
pub async fn undispatched_events(
    db: &impl ConnectionTrait,
    limit: u64,
) -> Result<Vec<event::Model>> {
    event::Entity::find()
        .filter(event::Column::DispatchedAt.is_null())
        .order_by(event::Column::Position, Order::Asc)
        .limit(limit)
        .all(db)
        .await
        .map_err(db_err)
}

pub async fn mark_dispatched(
    db: &impl ConnectionTrait,
    positions: &[i64],
    now: DateTime<Utc>,
) -> Result<()> {
    if positions.is_empty() {
        return Ok(());
    }
    event::Entity::update_many()
        .col_expr(event::Column::DispatchedAt, Expr::value(at(now)))
        .filter(event::Column::Position.is_in(positions.iter().copied()))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// A delivery to make: the event for the webhook, due at once.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub webhook_id: String,
    pub event_position: i64,
    pub order_key: String,
}

pub async fn insert_deliveries(
    db: &impl ConnectionTrait,
    new: Vec<NewDelivery>,
    now: DateTime<Utc>,
) -> Result<()> {
    // Bounded statements: MySQL and SQLite cap the number of bound values.
    for chunk in new.chunks(200) {
        delivery::Entity::insert_many(chunk.iter().map(|d| delivery::ActiveModel {
            id: Default::default(),
            webhook_id: Set(d.webhook_id.clone()),
            event_position: Set(d.event_position),
            order_key: Set(d.order_key.clone()),
            state: Set(PENDING.to_owned()),
            attempts: Set(0),
            due_at: Set(at(now)),
            created_at: Set(at(now)),
            last_attempt_at: Set(None),
            last_status: Set(None),
            last_error: Set(None),
        }))
        .exec_without_returning(db)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// Claims up to `limit` due deliveries for one attempt each: a delivery is due when its time
/// has come and no earlier delivery of the same key to the same webhook is still pending (so a
/// key's events reach a receiver in order). A claimed delivery stays pending with its due time
/// moved to `lease_until`: if the process dies while sending, it is due again then. Runs in
/// its own transaction.
pub async fn claim_deliveries(
    db: &crate::storage::Db,
    holder: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<delivery::Model>> {
    use delivery::Column as C;
    let tx = crate::storage::begin(db).await?;
    let sqlite = backend(&tx) == DbBackend::Sqlite;
    if sqlite {
        // SQLite's writer lock for the transaction, so no other process claims meanwhile.
        job_lock::Entity::update_many()
            .col_expr(job_lock::Column::Holder, Expr::value(holder))
            .filter(job_lock::Column::Name.eq(JOB_CLAIM))
            .exec(&tx)
            .await
            .map_err(db_err)?;
    }
    let mut q = delivery::Entity::find()
        .filter(C::State.eq(PENDING))
        .filter(C::DueAt.lte(at(now)))
        .filter(Expr::cust(
            "NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.webhook_id = deliveries.webhook_id \
             AND p.order_key = deliveries.order_key AND p.state = 'pending' \
             AND p.event_position < deliveries.event_position)",
        ))
        .order_by(C::DueAt, Order::Asc)
        .order_by(C::Id, Order::Asc)
        .limit(limit);
    if !sqlite {
        q = q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let mut claimed = q.all(&tx).await.map_err(db_err)?;
    if claimed.is_empty() {
        return Ok(claimed);
    }
    delivery::Entity::update_many()
        .col_expr(C::DueAt, Expr::value(at(lease_until)))
        .col_expr(C::Attempts, Expr::col(C::Attempts).add(1))
        .filter(C::Id.is_in(claimed.iter().map(|d| d.id)))
        .exec(&tx)
        .await
        .map_err(db_err)?;
    crate::storage::commit(tx).await?;
    for d in &mut claimed {
        d.attempts += 1;
    }
    Ok(claimed)
}

/// What an attempt came to.
#[derive(Debug, Clone)]
pub enum Attempt {
    Sent {
        status: u16,
    },
    /// Retried at `next`.
    Retry {
        status: Option<u16>,
        error: String,
        next: DateTime<Utc>,
    },
    /// Given up on.
    Failed {
        status: Option<u16>,
        error: String,
    },
}

pub async fn finish_delivery(
    db: &impl ConnectionTrait,
    id: i64,
    attempt: &Attempt,
    now: DateTime<Utc>,
) -> Result<()> {
    use delivery::Column as C;
    let mut u = delivery::Entity::update_many()
        .col_expr(C::LastAttemptAt, Expr::value(at(now)))
        .filter(C::Id.eq(id))
        .filter(C::State.eq(PENDING));
    u = match attempt {
        Attempt::Sent { status } => u
            .col_expr(C::State, Expr::value(SENT))
            .col_expr(C::LastStatus, Expr::value(i32::from(*status)))
            .col_expr(C::LastError, Expr::value(Option::<String>::None)),
        Attempt::Retry {
            status,
            error,
            next,
        } => u
            .col_expr(C::DueAt, Expr::value(at(*next)))
            .col_expr(C::LastStatus, Expr::value(status.map(i32::from)))
            .col_expr(C::LastError, Expr::value(error.clone())),
        Attempt::Failed { status, error } => u
            .col_expr(C::State, Expr::value(FAILED))
            .col_expr(C::LastStatus, Expr::value(status.map(i32::from)))
            .col_expr(C::LastError, Expr::value(error.clone())),
    };
    u.exec(db).await.map_err(db_err)?;
    Ok(())
}

pub async fn find_events(
    db: &impl ConnectionTrait,
    positions: &[i64],
) -> Result<Vec<event::Model>> {
    event::Entity::find()
        .filter(event::Column::Position.is_in(positions.iter().copied()))
        .all(db)
        .await
        .map_err(db_err)
}

pub async fn find_webhooks(
    db: &impl ConnectionTrait,
    ids: &[String],
) -> Result<Vec<webhook::Model>> {
    webhook::Entity::find()
        .filter(webhook::Column::Id.is_in(ids.iter().map(String::as_str)))
        .all(db)
        .await
        .map_err(db_err)
}

/// The deliveries of some events (for ListEvents), to the given webhooks.
pub async fn deliveries_of(
    db: &impl ConnectionTrait,
    positions: &[i64],
    webhook_ids: &[String],
) -> Result<Vec<delivery::Model>> {
    if positions.is_empty() || webhook_ids.is_empty() {
        return Ok(Vec::new());
    }
    delivery::Entity::find()
        .filter(delivery::Column::EventPosition.is_in(positions.iter().copied()))
        .filter(delivery::Column::WebhookId.is_in(webhook_ids.iter().map(String::as_str)))
        .order_by(delivery::Column::Id, Order::Asc)
        .all(db)
        .await
        .map_err(db_err)
}

/// Pending deliveries in the whole database and the creation time of the oldest (metrics).
pub async fn delivery_backlog(db: &impl ConnectionTrait) -> Result<(i64, Option<DateTime<Utc>>)> {
    use delivery::Column as C;
    let row: Option<(i64, Option<sea_orm::prelude::ChronoDateTimeWithTimeZone>)> =
        delivery::Entity::find()
            .select_only()
            .column_as(C::Id.count(), "n")
            .column_as(C::CreatedAt.min(), "oldest")
            .filter(C::State.eq(PENDING))
            .into_tuple()
            .one(db)
            .await
            .map_err(db_err)?;
    Ok(row.map_or((0, None), |(n, oldest)| {
        (n, oldest.map(|t| t.with_timezone(&Utc)))
    }))
}

/// Keys whose expiry is within `(after, before]` and have no notice `notice` yet, soonest
/// first: (key, its notices so far).
pub async fn keys_needing_notice(
    db: &impl ConnectionTrait,
    after: DateTime<Utc>,
    before: DateTime<Utc>,
    notice: i64,
    limit: u64,
) -> Result<Vec<(authn_key::Model, Vec<i64>)>> {
    use authn_key::Column as C;
    let sql_notice = notice.to_string();
    let keys = authn_key::Entity::find()
        .filter(C::ExpiresAt.gt(at(after)))
        .filter(C::ExpiresAt.lte(at(before)))
        .filter(Expr::cust(format!(
            "NOT EXISTS (SELECT 1 FROM key_notices n WHERE n.key_id = authn_keys.id \
             AND n.notice = {sql_notice})"
        )))
        .order_by(C::ExpiresAt, Order::Asc)
        .limit(limit)
        .all(db)
        .await
        .map_err(db_err)?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let had: Vec<key_notice::Model> = key_notice::Entity::find()
        .filter(key_notice::Column::KeyId.is_in(keys.iter().map(|k| k.id.as_str())))
        .all(db)
        .await
        .map_err(db_err)?;
    Ok(keys
        .into_iter()
        .map(|k| {
            let notices = had
                .iter()
                .filter(|n| n.key_id == k.id)
                .map(|n| n.notice)
                .collect();
            (k, notices)
        })
        .collect())
}

/// Records notices given to a key. A notice given before (by a process that raced this one)
/// is a unique violation, which rolls the caller's transaction back with its event.
pub async fn insert_notices(
    db: &impl ConnectionTrait,
    key_id: &str,
    notices: &[i64],
    now: DateTime<Utc>,
) -> Result<()> {
    if notices.is_empty() {
        return Ok(());
    }
    key_notice::Entity::insert_many(notices.iter().map(|n| key_notice::ActiveModel {
        key_id: Set(key_id.to_owned()),
        notice: Set(*n),
        created_at: Set(at(now)),
    }))
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// A filtered page of the audit trail.
#[derive(Debug, Clone, Default)]
pub struct EventSearch {
    /// `None`: every org's events.
    pub org_id: Option<String>,
    /// Recorded types; empty: all.
    pub types: Vec<&'static str>,
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: u64,
    pub offset: u64,
    pub asc: bool,
}

pub async fn search_events(
    db: &impl ConnectionTrait,
    s: &EventSearch,
) -> Result<(Vec<event::Model>, u64)> {
    use event::Column as C;
    let mut q = event::Entity::find();
    if let Some(org) = &s.org_id {
        q = q.filter(C::OrgId.eq(org.as_str()));
    }
    if !s.types.is_empty() {
        q = q.filter(C::EventType.is_in(s.types.iter().copied()));
    }
    if let Some(k) = &s.key_id {
        q = q.filter(C::KeyId.eq(k.as_str()));
    }
    if let Some(u) = &s.user_id {
        q = q.filter(C::UserId.eq(u.as_str()));
    }
    if let Some(t) = s.since {
        q = q.filter(C::CreatedAt.gte(at(t)));
    }
    if let Some(t) = s.until {
        q = q.filter(C::CreatedAt.lt(at(t)));
    }
    let total = q.clone().count(db).await.map_err(db_err)?;
    let order = if s.asc { Order::Asc } else { Order::Desc };
    let items = q
        .order_by(C::Position, order)
        .offset(s.offset)
        .limit(s.limit)
        .all(db)
        .await
        .map_err(db_err)?;
    Ok((items, total))
}
