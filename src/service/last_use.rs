//! Keys' last use, without a write per grant: uses are coalesced in memory (one entry per key,
//! the latest wins) and flushed in batches every [`FLUSH_EVERY`]. The serving process reads
//! its pending entries over what the database says, so a use shows at once there; other
//! processes see it after the next flush. A crash loses at most the uses of the last
//! [`FLUSH_EVERY`] (the key then shows its previous use); a graceful stop flushes first.
use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use super::Services;
use crate::{
    domain::model::{AuthnKey, LastUse},
    error::Result,
    storage::repo,
};

/// How often pending uses are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// Keys with pending uses at most; beyond, a flush is due at once and the uses of keys not yet
/// pending are not recorded until it has made room (memory stays bounded whatever the traffic).
const CAPACITY: usize = 100_000;
/// Keys written per transaction.
const BATCH: usize = 500;

pub struct LastUses {
    pending: Mutex<HashMap<String, LastUse>>,
    /// Wakes the flusher early when the map is full.
    full: tokio::sync::Notify,
    /// `AUTHN_KEYS_KEY_LAST_USE`: off, no use (and no client address) is kept.
    enabled: AtomicBool,
}

impl Default for LastUses {
    fn default() -> Self {
        LastUses::new(true)
    }
}

impl std::fmt::Debug for LastUses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LastUses")
            .field("pending", &self.len())
            .finish()
    }
}

impl LastUses {
    pub fn new(enabled: bool) -> Self {
        LastUses {
            pending: Mutex::default(),
            full: tokio::sync::Notify::new(),
            enabled: AtomicBool::new(enabled),
        }
    }

    /// Turns recording on or off (the configuration sets it at start; the load generator
    /// switches it to measure what recording costs).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LastUse>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Notes a successful use (a cheap map update; the grant never waits for a write).
    pub fn record(&self, key_id: &str, used: LastUse) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let mut pending = self.lock();
        if let Some(seen) = pending.get_mut(key_id) {
            if seen.at <= used.at {
                *seen = used;
            }
            return;
        }
        if pending.len() >= CAPACITY {
            drop(pending);
            self.full.notify_one();
            return;
        }
        pending.insert(key_id.to_owned(), used);
    }

    /// The pending use of a key, if any.
    pub fn pending(&self, key_id: &str) -> Option<LastUse> {
        self.lock().get(key_id).cloned()
    }

    /// `key` with its pending use laid over what was read. Take `pending` before the read:
    /// a flush that commits in between then is in the read, and one that had not is here.
    pub fn overlay(key: &mut AuthnKey, pending: Option<LastUse>) {
        if let Some(p) = pending
            && key.last_used.as_ref().is_none_or(|stored| stored.at < p.at)
        {
            key.last_used = Some(p);
        }
    }

    /// [`LastUses::overlay`] for keys read before this call, under one lock.
    pub fn overlay_all(&self, keys: &mut [AuthnKey]) {
        let pending = self.lock();
        if pending.is_empty() {
            return;
        }
        for k in keys {
            Self::overlay(k, pending.get(&k.id).cloned());
        }
    }

    fn snapshot(&self) -> Vec<(String, LastUse)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Drops the entries written, unless a later use replaced them meanwhile.
    fn written(&self, uses: &[(String, LastUse)]) {
        let mut pending = self.lock();
        for (key, used) in uses {
            if pending.get(key) == Some(used) {
                pending.remove(key);
            }
        }
    }
}

impl Services {
    /// Writes every pending use; what fails stays pending for the next flush.
    pub async fn flush_last_uses(&self) -> Result<usize> {
        let uses = self.last_uses.snapshot();
        for chunk in uses.chunks(BATCH) {
            let tx = crate::storage::begin(&self.db).await?;
            repo::record_last_uses(&tx, chunk).await?;
            crate::storage::commit(tx).await?;
            // Lists read before hold the previous use: they go before the pending entries do.
            let written: std::collections::HashSet<&str> =
                chunk.iter().map(|(k, _)| k.as_str()).collect();
            self.caches.forget_owner_lists_with(&written);
            self.last_uses.written(chunk);
        }
        Ok(uses.len())
    }

    /// Flushes every [`FLUSH_EVERY`], or at once when the map is full; runs until aborted.
    pub async fn keep_flushing_last_uses(&self) {
        let mut every = tokio::time::interval(FLUSH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = self.last_uses.full.notified() => {}
            }
            if let Err(e) = self.flush_last_uses().await {
                tracing::warn!(error_id = e.id, cause = %e.cause_chain(), "writing keys' last use failed; retrying at the next flush");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::KeyUse;
    use chrono::{TimeZone, Utc};

    fn used(secs: i64, address: &str) -> LastUse {
        LastUse {
            at: Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(),
            kind: KeyUse::JwtBearerGrant,
            address: address.into(),
        }
    }

    #[test]
    fn the_latest_use_wins_and_written_entries_go() {
        let l = LastUses::default();
        l.record("k", used(10, "a"));
        l.record("k", used(5, "old"));
        assert_eq!(l.pending("k").unwrap().address, "a");
        l.record("k", used(11, "b"));
        let snap = l.snapshot();
        l.record("k", used(12, "c"));
        l.written(&snap);
        // A use after the snapshot is still pending.
        assert_eq!(l.pending("k").unwrap().address, "c");
        l.written(&l.snapshot());
        assert!(l.is_empty());
    }
}
