//! Other processes' change notices, and the heartbeat that proves they still arrive.
//!
//! A listener whose connection died silently (its server process frozen, a NAT or load
//! balancer that dropped the idle connection) hears nothing, which looks just like nothing
//! changing. So every process notifies itself: once a second it sends `beat <token> <n>` on the
//! notice channel through its ordinary pool (`token` is random per process, `n` counts up) and
//! notes when it began sending each. PostgreSQL delivers notices in commit order, and a
//! heartbeat commits after it began to be sent, so receiving heartbeat `n`, sent at `S`, proves
//! that every notice committed before `S` has arrived (and has been applied: notices are
//! applied in the order they arrive).
//!
//! **The rule.** Entries live the long lifetime (60 s) only until 2 s after the sending time of
//! the newest own heartbeat received on the current listener connection; otherwise they live
//! 1 s, and those older than that are dropped when a confirmation lapses. A listener that has
//! brought no heartbeat for 5 s is dropped (closed, never waited on again) and a new one
//! connected, which forgets everything cached, as any reconnect does. So a change committed at
//! `R` is acted upon here by `R + 2 s` at the latest whatever became of the connection: if it
//! has not arrived, the newest confirmation was sent before `R` and lapses before `R + 2 s`.
//!
//! Heartbeats are not invalidations: other processes' are ignored, never read as "anything may
//! have changed". The cost is one tiny notice a second per process.
use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use super::{Change, TTL_DEAF, TTL_LISTENING};
use crate::{
    service::Services,
    storage::{self, ChangeListener, Notice},
};

/// How often each process sends itself a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a received heartbeat vouches for the notices before it (from its sending).
const CONFIRMATION: Duration = Duration::from_secs(2);
/// A listener silent this long after its newest heartbeat is given up and replaced. Also the
/// bound on connecting one and on sending a heartbeat.
const GIVE_UP: Duration = Duration::from_secs(5);
/// Heartbeats remembered while in flight; an older one would prove too little to matter.
const IN_FLIGHT: usize = 8;

/// What a notice says.
#[derive(Debug, PartialEq, Eq)]
enum Heard<'a> {
    Change(Change),
    /// A heartbeat; `n` is `None` when unreadable (then it is nobody's).
    Beat {
        token: &'a str,
        n: Option<u64>,
    },
}

fn hear(text: &str) -> Heard<'_> {
    let mut words = text.split(' ');
    if words.next() != Some("beat") {
        return Heard::Change(Change::decode(text));
    }
    let token = words.next().unwrap_or("");
    let n = words.next().and_then(|n| n.parse().ok());
    let n = if words.next().is_none() { n } else { None };
    Heard::Beat { token, n }
}

/// This process's heartbeats: those in flight, and what the newest one back proves.
struct Beats {
    token: String,
    sent: u64,
    in_flight: VecDeque<(u64, Instant)>,
    /// When the newest own heartbeat received on the current connection was sent.
    proven: Option<Instant>,
}

impl Beats {
    fn new(token: String) -> Self {
        Beats {
            token,
            sent: 0,
            in_flight: VecDeque::with_capacity(IN_FLIGHT),
            proven: None,
        }
    }

    /// The next heartbeat's payload; it is sent at `now`.
    fn send(&mut self, now: Instant) -> String {
        self.sent += 1;
        if self.in_flight.len() == IN_FLIGHT {
            self.in_flight.pop_front();
        }
        self.in_flight.push_back((self.sent, now));
        format!("beat {} {}", self.token, self.sent)
    }

    /// Heartbeat `n` of `token` arrived: the new end of the confirmation when it moved.
    fn received(&mut self, token: &str, n: u64) -> Option<Instant> {
        if token != self.token {
            return None;
        }
        let (_, sent_at) = *self.in_flight.iter().find(|(m, _)| *m == n)?;
        self.in_flight.retain(|(m, _)| *m > n);
        if self.proven.is_some_and(|p| p >= sent_at) {
            return None;
        }
        self.proven = Some(sent_at);
        self.confirmed_until()
    }

    /// A new listener is in place: heartbeats sent before prove nothing about it.
    fn reset(&mut self) {
        self.in_flight.clear();
        self.proven = None;
    }

    /// Until when the long lifetime applies (`None`: not at all).
    fn confirmed_until(&self) -> Option<Instant> {
        self.proven.map(|p| p + CONFIRMATION)
    }

    /// When a listener connected at `connected` is given up unless another heartbeat comes.
    fn give_up_at(&self, connected: Instant) -> Instant {
        self.proven.map_or(connected, |p| p.max(connected)) + GIVE_UP
    }
}

fn lock(beats: &Mutex<Beats>) -> MutexGuard<'_, Beats> {
    beats.lock().unwrap_or_else(|p| p.into_inner())
}

impl Services {
    /// Listens for other processes' change notices until the database pool closes (PostgreSQL;
    /// returns at once on SQLite and MySQL), sending the heartbeat alongside.
    pub async fn listen_for_changes(&self) {
        let beats = Mutex::new(Beats::new(format!("{:016x}", rand::random::<u64>())));
        tokio::select! {
            () = self.receive_notices(&beats) => {}
            () = self.send_heartbeats(&beats) => {}
        }
    }

    async fn send_heartbeats(&self, beats: &Mutex<Beats>) {
        let mut every = tokio::time::interval(HEARTBEAT);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.send_heartbeat(beats).await;
        }
    }

    /// A failed heartbeat only means none comes back, which is what counts.
    async fn send_heartbeat(&self, beats: &Mutex<Beats>) {
        let payload = lock(beats).send(Instant::now());
        match tokio::time::timeout(GIVE_UP, storage::notify(&self.db, &payload)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(cause = %e.cause_chain(), "sending a heartbeat failed"),
            Err(_) => tracing::debug!("sending a heartbeat timed out"),
        }
    }

    async fn receive_notices(&self, beats: &Mutex<Beats>) {
        let c = &self.caches;
        loop {
            let connecting = tokio::time::timeout(GIVE_UP, ChangeListener::connect(&self.db));
            let mut listener = match connecting.await {
                Ok(Ok(Some(l))) => l,
                Ok(Ok(None)) => return,
                failed => {
                    if storage::is_closed(&self.db) {
                        return;
                    }
                    let cause = match failed {
                        Ok(Err(e)) => e.cause_chain(),
                        _ => "timed out".into(),
                    };
                    tracing::warn!(%cause, "change notices unavailable; caching for 1 s only");
                    tokio::time::sleep(HEARTBEAT).await;
                    continue;
                }
            };
            // Whatever happened before this LISTEN is unknown: start clean.
            lock(beats).reset();
            c.clear();
            let connected = Instant::now();
            // The first confirmation now, not at the next tick.
            self.send_heartbeat(beats).await;
            self.hear(&mut listener, beats, connected).await;
            c.unconfirm();
            c.clear();
            drop(listener);
            if storage::is_closed(&self.db) {
                return;
            }
        }
    }

    /// Applies notices until the listener is lost or silent for too long.
    async fn hear(&self, listener: &mut ChangeListener, beats: &Mutex<Beats>, connected: Instant) {
        let c = &self.caches;
        let mut confirmed = false;
        loop {
            let (until, give_up) = {
                let b = lock(beats);
                (b.confirmed_until(), b.give_up_at(connected))
            };
            let now = Instant::now();
            let until = until.filter(|u| now < *u);
            if confirmed && until.is_none() {
                c.expire_to_short_lifetime();
                tracing::warn!(
                    lifetime_s = TTL_DEAF.as_secs(),
                    "change notices unconfirmed: no heartbeat came back for {} s",
                    CONFIRMATION.as_secs()
                );
                confirmed = false;
            }
            if now >= give_up {
                tracing::warn!(
                    "the change-notice connection brought no heartbeat for {} s; reconnecting",
                    GIVE_UP.as_secs()
                );
                return;
            }
            let wake = tokio::time::Instant::from_std(until.unwrap_or(give_up));
            let text = match tokio::time::timeout_at(wake, listener.next()).await {
                Err(_) => continue,
                Ok(Ok(Notice::Message(text))) => text,
                Ok(Ok(Notice::Gap)) => {
                    tracing::warn!("lost the change-notice connection; reconnecting");
                    return;
                }
                Ok(Err(e)) => {
                    if !storage::is_closed(&self.db) {
                        let cause = e.cause_chain();
                        tracing::warn!(%cause, "lost the change-notice connection; reconnecting");
                    }
                    return;
                }
            };
            match hear(&text) {
                Heard::Change(change) => c.apply(&change),
                Heard::Beat { token, n: Some(n) } => {
                    let moved = lock(beats).received(token, n);
                    if let Some(until) = moved {
                        c.confirm_until(until);
                        if !confirmed && Instant::now() < until {
                            tracing::info!(
                                lifetime_s = TTL_LISTENING.as_secs(),
                                "change notices confirmed by the heartbeat"
                            );
                            confirmed = true;
                        }
                    }
                }
                Heard::Beat { n: None, .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_are_never_invalidations() {
        assert_eq!(
            hear("beat 00ff 7"),
            Heard::Beat {
                token: "00ff",
                n: Some(7)
            }
        );
        for odd in ["beat", "beat x", "beat x y", "beat x 1 2"] {
            assert!(matches!(hear(odd), Heard::Beat { n: None, .. }), "{odd}");
        }
        assert_eq!(
            hear("key 12"),
            Heard::Change(Change::Key {
                id: "12".into(),
                owner: String::new()
            })
        );
        assert_eq!(hear("beats 1 2"), Heard::Change(Change::All));
    }

    #[test]
    fn only_own_heartbeats_sent_on_this_connection_confirm_and_only_from_their_sending() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut beats = Beats::new("me".into());
        assert_eq!(beats.confirmed_until(), None);
        assert_eq!(beats.give_up_at(t0), t0 + GIVE_UP);

        let first = beats.send(t0);
        let second = beats.send(t0 + s(1));
        assert_eq!(first, "beat me 1");
        // Another process's heartbeat, and a number never sent, prove nothing.
        assert_eq!(beats.received("other", 1), None);
        assert_eq!(beats.received("me", 9), None);
        // The confirmation runs from the sending, however late the heartbeat arrives.
        assert_eq!(beats.received("me", 2), Some(t0 + s(1) + CONFIRMATION));
        assert_eq!(second, "beat me 2");
        // An older one arriving later (or again) does not move it back.
        assert_eq!(beats.received("me", 1), None);
        assert_eq!(beats.confirmed_until(), Some(t0 + s(3)));
        assert_eq!(beats.give_up_at(t0), t0 + s(1) + GIVE_UP);

        // A new connection: what was in flight before proves nothing about it.
        beats.send(t0 + s(2));
        beats.reset();
        assert_eq!(beats.received("me", 3), None);
        assert_eq!(beats.confirmed_until(), None);
        assert_eq!(beats.give_up_at(t0 + s(4)), t0 + s(4) + GIVE_UP);
        beats.send(t0 + s(5));
        assert_eq!(beats.received("me", 4), Some(t0 + s(5) + CONFIRMATION));
    }

    #[test]
    fn in_flight_heartbeats_are_bounded() {
        let t0 = Instant::now();
        let mut beats = Beats::new("me".into());
        for i in 0..100 {
            beats.send(t0 + Duration::from_millis(i));
        }
        assert_eq!(beats.in_flight.len(), IN_FLIGHT);
        assert_eq!(beats.received("me", 1), None);
        assert!(beats.received("me", 100).is_some());
        assert!(beats.in_flight.is_empty());
    }

    #[test]
    fn the_long_lifetime_holds_only_until_the_confirmation_ends() {
        let c = super::super::Caches::default();
        assert!(!c.listening());
        c.confirm_until(Instant::now() + Duration::from_secs(60));
        assert!(c.listening());
        c.confirm_until(Instant::now() - Duration::from_millis(1));
        assert!(!c.listening());
        c.confirm_until(c.start - Duration::from_secs(1));
        assert!(!c.listening());
        c.confirm_until(Instant::now() + Duration::from_secs(60));
        c.unconfirm();
        assert!(!c.listening());
    }

    #[test]
    fn a_lapsed_confirmation_drops_what_the_short_lifetime_does_not_cover() {
        let c = super::super::Caches::default();
        let mut orgs = c.orgs.inner.write().unwrap();
        orgs.insert("old".into(), ((), Instant::now() - Duration::from_secs(5)));
        orgs.insert("new".into(), ((), Instant::now()));
        drop(orgs);
        c.expire_to_short_lifetime();
        assert_eq!(c.orgs.len(), 1);
        assert!(c.orgs.get(&"new".to_owned(), TTL_DEAF).is_some());
    }
}
