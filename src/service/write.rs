//! A write as one unit of work: begin a transaction, make the change (bumping the aggregate's
//! sequence), record its audit events, commit — and let the caches forget what it changed.
//!
//! Architecture invariant: every write a use case makes goes through [`Write`]. The cache
//! invalidations are not named by the use case but derived from the events it records
//! ([`Change::caused_by`]), so a write cannot record a removal and forget to invalidate it; a
//! write dropped without [`Write::commit`] rolls back and records nothing.
use super::{Ctx, Services, cache::Change};
use crate::{
    domain::model::NewEvent,
    error::Result,
    storage::{self, Tx, repo},
};
use chrono::{DateTime, Utc};

/// An open write on behalf of one caller in one org.
pub(crate) struct Write<'s> {
    svc: &'s Services,
    tx: Tx,
    actor: String,
    org_id: String,
    /// "Now" for everything this write stamps.
    pub(crate) now: DateTime<Utc>,
    events: Vec<NewEvent>,
}

impl Services {
    /// Begins a write whose events are recorded as `ctx`'s actor in `ctx`'s org.
    pub(crate) async fn begin_write(&self, ctx: &Ctx) -> Result<Write<'_>> {
        self.begin_write_at(ctx, self.now()).await
    }

    /// [`Services::begin_write`] for a write whose "now" was taken before it began.
    pub(crate) async fn begin_write_at(&self, ctx: &Ctx, now: DateTime<Utc>) -> Result<Write<'_>> {
        Ok(Write {
            svc: self,
            tx: storage::begin(&self.db).await?,
            actor: ctx.actor.clone(),
            org_id: ctx.org_id.clone(),
            now,
            events: Vec::new(),
        })
    }
}

impl Write<'_> {
    /// The transaction, for the repo functions.
    pub(crate) fn db(&self) -> &Tx {
        &self.tx
    }

    /// The org the events recorded from now on belong to.
    pub(crate) fn set_org(&mut self, org_id: &str) {
        org_id.clone_into(&mut self.org_id);
    }

    /// Records an audit event of this write; it is appended when the write commits. The
    /// payload never holds key material or secrets.
    pub(crate) fn record(
        &mut self,
        aggregate_type: &'static str,
        aggregate_id: &str,
        aggregate_sequence: u64,
        event_type: &'static str,
        payload: serde_json::Value,
    ) {
        self.events.push(NewEvent {
            org_id: self.org_id.clone(),
            aggregate_type,
            aggregate_id: aggregate_id.to_owned(),
            aggregate_sequence,
            event_type,
            actor: self.actor.clone(),
            payload,
            created_at: self.now,
        });
    }

    /// Appends the events, commits, and drops what the events changed from the caches — in
    /// this process before the caller gets its answer, in the others through the change
    /// notices queued in the same transaction.
    pub(crate) async fn commit(self) -> Result<()> {
        let changes: Vec<Change> = self.events.iter().filter_map(Change::caused_by).collect();
        let mut orgs: Vec<String> = self.events.iter().map(|e| e.org_id.clone()).collect();
        orgs.dedup();
        let recorded = !self.events.is_empty();
        let keys_added = self
            .events
            .iter()
            .any(|e| e.event_type.ends_with(".key.added"));
        for e in self.events {
            repo::append_event(&self.tx, e).await?;
        }
        Services::announce(&self.tx, &changes).await?;
        storage::commit(self.tx).await?;
        self.svc.forget(&changes);
        // Key listings kept in memory say which event position they reflect: the orgs that
        // just moved are read again (other processes' lists follow within their lifetime).
        for org in &orgs {
            self.svc.caches.forget_owner_lists_of(org);
        }
        // The events are the webhooks' outbox: the dispatcher makes their deliveries now
        // rather than at its next look.
        if keys_added {
            self.svc
                .events
                .keys_added
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if recorded {
            self.svc.events.wake.notify_one();
        }
        Ok(())
    }
}
