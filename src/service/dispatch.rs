//! The webhook dispatcher and the expiry notices: background work that must not be lost, so
//! it goes through the database (design §8).
//!
//! - **Fan-out**: events are written in the transaction of their change with no
//!   `dispatched_at`. One process at a time (the `dispatch` job row, taken with `SKIP LOCKED`)
//!   reads them in order, writes a delivery per matching webhook and marks them dispatched,
//!   in one transaction: a crash before the commit leaves the events to fan out again, never
//!   half of them.
//! - **Sending**: each process claims due deliveries ([`repo::claim_deliveries`]), which
//!   moves their due time to a lease, sends them concurrently (bounded), and records the
//!   outcome: sent, retried at the next step of the backoff, or failed after the horizon. A
//!   process killed mid-send leaves the delivery to be claimed again when the lease ends.
//!   A key's deliveries to one webhook go in event order.
//! - **Expiry notices** (`notice_keys`): at least once a minute, by one
//!   process (the `expiry` job row); each notice is recorded with the event it causes, and a
//!   key's notices are unique in the database, so none is given twice, restarts included.
use std::{sync::Arc, time::Duration};

use chrono::Utc;
use serde_json::json;
use tokio::{sync::Semaphore, task::JoinSet};

use super::{Services, events::EventView, events::webhook_types};
use crate::{
    domain::{
        events::{Notice, contract_type, gives_up, retry_delay},
        model::NewEvent,
    },
    error::Result,
    storage::{
        self,
        entity::{delivery, event, webhook},
        repo::{self, Attempt, NewDelivery},
    },
};

/// Sends in flight at once, per process.
pub const MAX_IN_FLIGHT: usize = 16;
/// How often a process looks for due deliveries when nothing woke it.
const POLL: Duration = Duration::from_secs(1);
/// The least time between two passes: a burst of writes is fanned out together rather than
/// with a transaction each.
const MIN_PASS: Duration = Duration::from_millis(100);
/// Events fanned out per transaction.
const FAN_OUT_BATCH: u64 = 500;
/// How often the backlog figures are read.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);
/// How often the expiry notices are looked at (the contract asks for at least once a minute).
pub const EXPIRY_EVERY: chrono::Duration = chrono::Duration::seconds(30);
/// Keys whose expiry passed longer ago than this get no `key.expired` (they expired before
/// notices existed, or while notices were off).
const EXPIRED_GRACE: chrono::Duration = chrono::Duration::days(7);
/// The actor of the server's own events.
pub const EXPIRY_ACTOR: &str = "system:expiry";

impl Services {
    /// A claim lasts the request's time limit and a margin: a claimed delivery whose process
    /// died is due again then.
    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.outbound.config().timeout)
            .unwrap_or(chrono::Duration::seconds(10))
            + chrono::Duration::seconds(5)
    }

    /// Runs the dispatcher until the task is dropped: fan-out, claiming and sending, the
    /// backlog figures and the expiry notices.
    pub async fn keep_dispatching(&self) {
        let holder = format!("{}-{}", self.ids.node(), std::process::id());
        if let Err(e) = repo::ensure_jobs(&self.db, self.now()).await {
            tracing::warn!(error_id = e.id, cause = %e.cause_chain(), "preparing the dispatcher's job rows failed; retrying");
        }
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut sends = JoinSet::new();
        let mut last_backlog = tokio::time::Instant::now() - BACKLOG_EVERY;
        let mut last_expiry = tokio::time::Instant::now() - Duration::from_secs(3600);
        let mut jobs_ready = false;
        loop {
            if !jobs_ready {
                jobs_ready = repo::ensure_jobs(&self.db, self.now()).await.is_ok();
            }
            if let Err(e) = self.fan_out(&holder).await {
                tracing::warn!(error_id = e.id, cause = %e.cause_chain(), "making webhook deliveries failed; retrying");
            }
            let free = slots.available_permits();
            if free > 0 {
                match self.claim(&holder, free as u64).await {
                    Ok(claimed) => {
                        for (d, hook, ev) in claimed {
                            let Ok(permit) = slots.clone().acquire_owned().await else {
                                return;
                            };
                            let svc = self.clone();
                            sends.spawn(async move {
                                svc.send(d, hook, ev).await;
                                drop(permit);
                                svc.events.wake.notify_one();
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error_id = e.id, cause = %e.cause_chain(), "claiming webhook deliveries failed; retrying")
                    }
                }
            }
            while sends.try_join_next().is_some() {}
            // A key added may be inside a notice window already: looked at now, not at the
            // next regular look.
            let keys_added = self
                .events
                .keys_added
                .swap(false, std::sync::atomic::Ordering::Relaxed);
            if keys_added || last_expiry.elapsed() >= Duration::from_secs(10) {
                last_expiry = tokio::time::Instant::now();
                let every = if keys_added {
                    chrono::Duration::zero()
                } else {
                    EXPIRY_EVERY
                };
                if let Err(e) = self.notice_keys(&holder, self.now(), Some(every)).await {
                    tracing::warn!(error_id = e.id, cause = %e.cause_chain(), "looking for expiring keys failed; retrying");
                }
            }
            if last_backlog.elapsed() >= BACKLOG_EVERY {
                last_backlog = tokio::time::Instant::now();
                self.read_backlog().await;
            }
            tokio::time::sleep(MIN_PASS).await;
            tokio::select! {
                () = self.events.wake.notified() => {}
                () = tokio::time::sleep(POLL - MIN_PASS) => {}
            }
        }
    }

    /// Turns undispatched events into deliveries, one batch per transaction, while there are
    /// any and this process holds the job.
    pub async fn fan_out(&self, holder: &str) -> Result<()> {
        // A read first: no job row is taken (no write, on SQLite) when there is nothing to do.
        if !repo::has_undispatched_events(&self.db).await? {
            return Ok(());
        }
        loop {
            let tx = storage::begin(&self.db).await?;
            let now = self.now();
            if !repo::take_job(
                &tx,
                repo::JOB_DISPATCH,
                holder,
                now,
                chrono::Duration::zero(),
            )
            .await?
            {
                return Ok(());
            }
            let events = repo::undispatched_events(&tx, FAN_OUT_BATCH).await?;
            if events.is_empty() {
                return Ok(());
            }
            let hooks = repo::list_webhooks(&tx, None).await?;
            let deliveries = deliveries_for(&events, &hooks);
            let positions: Vec<i64> = events.iter().map(|e| e.position).collect();
            repo::insert_deliveries(&tx, deliveries, now).await?;
            repo::mark_dispatched(&tx, &positions, now).await?;
            storage::commit(tx).await?;
            if (events.len() as u64) < FAN_OUT_BATCH {
                return Ok(());
            }
        }
    }

    /// Claims due deliveries with their webhook and event.
    async fn claim(
        &self,
        holder: &str,
        limit: u64,
    ) -> Result<Vec<(delivery::Model, webhook::Model, event::Model)>> {
        let now = self.now();
        if !repo::has_due_deliveries(&self.db, now).await? {
            return Ok(Vec::new());
        }
        let claimed =
            repo::claim_deliveries(&self.db, holder, now, now + self.lease(), limit).await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let mut hook_ids: Vec<String> = claimed.iter().map(|d| d.webhook_id.clone()).collect();
        hook_ids.sort();
        hook_ids.dedup();
        let hooks = repo::find_webhooks(&self.db, &hook_ids).await?;
        let positions: Vec<i64> = claimed.iter().map(|d| d.event_position).collect();
        let events = repo::find_events(&self.db, &positions).await?;
        Ok(claimed
            .into_iter()
            .filter_map(|d| {
                // A webhook removed meanwhile took its deliveries with it.
                let hook = hooks.iter().find(|h| h.id == d.webhook_id)?.clone();
                let ev = events
                    .iter()
                    .find(|e| e.position == d.event_position)?
                    .clone();
                Some((d, hook, ev))
            })
            .collect())
    }

    /// One attempt of one delivery, and its outcome recorded.
    async fn send(&self, d: delivery::Model, hook: webhook::Model, ev: event::Model) {
        let attempt = self.attempt(&hook, &ev).await;
        let now = Utc::now();
        let outcome = match attempt {
            Ok(status) if (200..300).contains(&status) => Attempt::Sent { status },
            failed => {
                let (status, error) = match failed {
                    Ok(status) => (Some(status), format!("the receiver answered {status}")),
                    Err(e) => (None, e),
                };
                let attempts = u32::try_from(d.attempts).unwrap_or(u32::MAX);
                if gives_up(d.created_at.with_timezone(&Utc), attempts, now) {
                    Attempt::Failed { status, error }
                } else {
                    Attempt::Retry {
                        status,
                        error,
                        next: now + retry_delay(attempts),
                    }
                }
            }
        };
        match &outcome {
            Attempt::Sent { .. } => self
                .events
                .sent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            Attempt::Retry { .. } => self
                .events
                .retried
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            Attempt::Failed { .. } => self
                .events
                .failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        match &outcome {
            Attempt::Failed { status, error } => tracing::warn!(
                webhook = %hook.id, event = ev.position, attempts = d.attempts, ?status, error = %error,
                "webhook delivery failed for good after retrying"
            ),
            Attempt::Retry {
                status,
                error,
                next,
            } => tracing::info!(
                webhook = %hook.id, event = ev.position, attempts = d.attempts, ?status, error = %error, next = %next,
                "webhook delivery failed; retrying"
            ),
            Attempt::Sent { .. } => {}
        }
        if let Err(e) = repo::finish_delivery(&self.db, d.id, &outcome, self.now()).await {
            // The claim's lease ends and the delivery is sent again: at least once.
            tracing::warn!(error_id = e.id, cause = %e.cause_chain(), webhook = %hook.id, event = ev.position, "recording a webhook delivery failed");
        }
    }

    /// Signs and posts; the receiver's status, or why there was none.
    async fn attempt(
        &self,
        hook: &webhook::Model,
        ev: &event::Model,
    ) -> std::result::Result<u16, String> {
        let secret = self
            .events
            .open(hook)
            .map_err(|e| format!("the webhook's secret cannot be opened: {}", e.message))?;
        let url =
            url::Url::parse(&hook.url).map_err(|_| "the webhook's URL is invalid".to_owned())?;
        let view = EventView::of(ev);
        let body = view.delivery_body();
        let timestamp = Utc::now().timestamp();
        let signature = secret.sign(&view.id, timestamp, &body);
        let headers = [
            ("content-type", "application/json".to_owned()),
            ("webhook-id", view.id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ];
        match self.outbound.post_json(&url, &headers, body.into()).await {
            // A receiver that answers without end is cut off and counted as failing: a
            // webhook endpoint answers briefly.
            Ok(answer) if answer.truncated => Err(format!(
                "the receiver's answer ({}) was longer than {} bytes and was cut off",
                answer.status,
                self.outbound.config().max_body
            )),
            Ok(answer) => Ok(answer.status),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn read_backlog(&self) {
        match repo::delivery_backlog(&self.db).await {
            Ok((n, oldest)) => {
                use std::sync::atomic::Ordering::Relaxed;
                self.events.backlog.store(n, Relaxed);
                let age = oldest.map_or(0, |t| (self.now() - t).num_seconds().max(0));
                self.events.oldest_pending_secs.store(age, Relaxed);
            }
            Err(e) => {
                tracing::debug!(cause = %e.cause_chain(), "reading the delivery backlog failed")
            }
        }
    }

    /// The expiry notices as if it were `now`, whenever they were last looked at (waiting for
    /// another process that holds the job): for tests and operators' tools.
    pub async fn notice_expiring_keys_at(
        &self,
        holder: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<usize> {
        self.notice_keys(holder, storage::db_time(now), None).await
    }

    /// Records `key.expiring` / `key.expired` events that are due: with `every`, if no other
    /// process holds the expiry job and it was not run within `every`; without, waiting for
    /// the job. Answers how many it recorded.
    async fn notice_keys(
        &self,
        holder: &str,
        now: chrono::DateTime<Utc>,
        every: Option<chrono::Duration>,
    ) -> Result<usize> {
        let windows = &self.events.windows;
        let mut passes: Vec<(chrono::DateTime<Utc>, chrono::DateTime<Utc>, i64)> =
            vec![(now - EXPIRED_GRACE, now, 0)];
        for w in windows.seconds() {
            passes.push((now, now + chrono::Duration::seconds(w), w));
        }
        // A read first: no job row is taken (no write, which on SQLite would hold back others'
        // writers) when no key needs a notice.
        let mut due = false;
        for (after, before, notice) in &passes {
            if !repo::keys_needing_notice(&self.db, *after, *before, *notice, 1)
                .await?
                .is_empty()
            {
                due = true;
                break;
            }
        }
        if !due {
            return Ok(0);
        }
        let tx = storage::begin(&self.db).await?;
        let taken = match every {
            Some(every) => repo::take_job(&tx, repo::JOB_EXPIRY, holder, now, every).await?,
            None => repo::wait_for_job(&tx, repo::JOB_EXPIRY, holder, now).await?,
        };
        if !taken {
            return Ok(0);
        }
        let mut recorded = 0;
        for (after, before, notice) in passes {
            for (key, had) in repo::keys_needing_notice(&tx, after, before, notice, 1000).await? {
                let expires_at = key.expires_at.with_timezone(&Utc);
                let Some((what, record)) = windows.due(expires_at, now, &had) else {
                    continue;
                };
                repo::insert_notices(&tx, &key.id, &record, now).await?;
                let (aggregate_type, aggregate_id, kind, mut payload) =
                    match (&key.user_id, &key.project_id, &key.app_id) {
                        (Some(user), _, _) => (
                            "user",
                            user.clone(),
                            "user.machine.key",
                            json!({"keyId": key.id}),
                        ),
                        (None, Some(project), Some(app)) => (
                            "project",
                            project.clone(),
                            "project.application.key",
                            json!({"keyId": key.id, "appId": app}),
                        ),
                        _ => continue,
                    };
                payload["expirationDate"] = json!(expires_at);
                let event_type: &'static str = match (what, kind) {
                    (Notice::Expired, "user.machine.key") => "user.machine.key.expired",
                    (Notice::Expired, _) => "project.application.key.expired",
                    (Notice::Expiring { .. }, "user.machine.key") => "user.machine.key.expiring",
                    (Notice::Expiring { .. }, _) => "project.application.key.expiring",
                };
                if let Notice::Expiring { window } = what {
                    payload["window"] = json!(crate::domain::key_policy::show_duration(
                        chrono::Duration::seconds(window)
                    ));
                    payload["expiresIn"] = json!(format!("{}s", (expires_at - now).num_seconds()));
                }
                repo::append_event(
                    &tx,
                    NewEvent {
                        org_id: key.org_id.clone(),
                        aggregate_type,
                        aggregate_id,
                        // Not a change of the owner: its sequence stays.
                        aggregate_sequence: u64::try_from(key.sequence).unwrap_or(0),
                        event_type,
                        actor: EXPIRY_ACTOR.to_owned(),
                        payload,
                        created_at: now,
                    },
                )
                .await?;
                recorded += 1;
            }
        }
        storage::commit(tx).await?;
        if recorded > 0 {
            tracing::info!(notices = recorded, "key expiry notices recorded");
            self.events.wake.notify_one();
        }
        Ok(recorded)
    }
}

/// The deliveries a batch of events makes: each event to every webhook that sees its org
/// (an IAM_OWNER's sees all), takes its type, and existed when it was recorded.
fn deliveries_for(events: &[event::Model], hooks: &[webhook::Model]) -> Vec<NewDelivery> {
    let subscriptions: Vec<(&webhook::Model, Vec<String>)> =
        hooks.iter().map(|h| (h, webhook_types(h))).collect();
    let mut out = Vec::new();
    for e in events {
        let kind = contract_type(&e.event_type);
        for (h, types) in &subscriptions {
            let org_matches = h.all_orgs || h.org_id == e.org_id;
            let type_matches = types.is_empty() || types.iter().any(|t| t == kind);
            if org_matches && type_matches && h.created_at <= e.created_at {
                out.push(NewDelivery {
                    webhook_id: h.id.clone(),
                    event_position: e.position,
                    order_key: e.key_id.clone().unwrap_or_else(|| e.aggregate_id.clone()),
                });
            }
        }
    }
    out
}
