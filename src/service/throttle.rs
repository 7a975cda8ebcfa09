//! Rate limits on failed authentication: token buckets keyed by what was attacked (a key id,
//! a client id) and by source address. Only failures take tokens; a caller whose bucket is
//! empty is refused before any work is done (429 / RESOURCE_EXHAUSTED with Retry-After), so
//! guessing and cost-driving floods are slowed while well-behaved callers never notice.
//!
//! Hand-rolled rather than `governor`: governor charges every request it is asked about and
//! cannot ask "would this be allowed?" without charging, while here a request must be checked
//! before its outcome is known and charged only if it fails.
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::error::{Error, Kind};

/// One bucket's shape: `burst` failures at once, refilled at `per_minute`. A burst of 0
/// switches the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub burst: u32,
    pub per_minute: u32,
}

impl Limit {
    pub const OFF: Limit = Limit {
        burst: 0,
        per_minute: 0,
    };

    fn on(self) -> bool {
        self.burst > 0
    }

    fn refill_per_sec(self) -> f64 {
        f64::from(self.per_minute.max(1)) / 60.0
    }
}

/// What a bucket is keyed by: the attacked credential, or where the attempts come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A machine or app key id (`kid`), or a client id.
    Credential(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets are forgotten once full again; past this many live ones, new subjects are not
/// tracked (memory stays bounded whatever an attacker sends).
const MAX_BUCKETS: usize = 100_000;

#[derive(Debug)]
pub struct Throttle {
    credential: Limit,
    address: Limit,
    buckets: Mutex<HashMap<Subject, Bucket>>,
    rejected: std::sync::atomic::AtomicU64,
}

impl Throttle {
    pub fn new(credential: Limit, address: Limit) -> Self {
        Throttle {
            credential,
            address,
            buckets: Mutex::new(HashMap::new()),
            rejected: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn limit(&self, s: &Subject) -> Limit {
        match s {
            Subject::Credential(_) => self.credential,
            Subject::Address(_) => self.address,
        }
    }

    fn refilled(limit: Limit, b: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * limit.refill_per_sec()).min(f64::from(limit.burst))
    }

    /// Refuses when any of `subjects` has no failure left; says how long to wait.
    pub fn check(&self, subjects: &[Subject]) -> Result<(), Error> {
        let now = Instant::now();
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = 0f64;
        for s in subjects {
            let limit = self.limit(s);
            if !limit.on() {
                continue;
            }
            if let Some(b) = buckets.get(s) {
                let tokens = Self::refilled(limit, *b, now);
                if tokens < 1.0 {
                    wait = wait.max((1.0 - tokens) / limit.refill_per_sec());
                }
            }
        }
        if wait > 0.0 {
            self.rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let secs = Duration::from_secs_f64(wait).as_secs() + 1;
            return Err(Error::new(
                Kind::ResourceExhausted,
                "AUTH-Rate01",
                format!("too many failed authentication attempts; retry after {secs} s"),
            )
            .retry_after(secs));
        }
        Ok(())
    }

    /// Charges one failure to each of `subjects`.
    pub fn failed(&self, subjects: &[Subject]) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        for s in subjects {
            let limit = self.limit(s);
            if !limit.on() {
                continue;
            }
            if !buckets.contains_key(s) && buckets.len() >= MAX_BUCKETS {
                buckets.retain(|k, b| {
                    Self::refilled(self.limit(k), *b, now) < f64::from(self.limit(k).burst)
                });
                if buckets.len() >= MAX_BUCKETS {
                    continue;
                }
            }
            let b = buckets.entry(s.clone()).or_insert(Bucket {
                tokens: f64::from(limit.burst),
                at: now,
            });
            b.tokens = (Self::refilled(limit, *b, now) - 1.0).max(0.0);
            b.at = now;
        }
    }

    /// Requests refused since start (for metrics).
    pub fn rejected(&self) -> u64 {
        self.rejected.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many subjects are being tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The subjects of one attempt: the credential if known, and the address if known. IPv6
/// addresses count by their /64: one holder gets a whole /64 and could take a fresh address
/// for every attempt.
pub fn subjects(credential: Option<&str>, peer: Option<IpAddr>) -> Vec<Subject> {
    let mut out = Vec::with_capacity(2);
    out.extend(credential.and_then(subjects_of_credential));
    if let Some(ip) = peer {
        out.push(Subject::Address(address_group(ip)));
    }
    out
}

/// Adds the attacked credential to an attempt's subjects, once it is known.
pub fn charge_credential(subjects: &mut Vec<Subject>, credential: &str) {
    if let Some(c) = subjects_of_credential(credential) {
        subjects.retain(|s| !matches!(s, Subject::Credential(_)));
        subjects.push(c);
    }
}

/// Bounded: an attacker chooses it.
fn subjects_of_credential(credential: &str) -> Option<Subject> {
    (!credential.is_empty()).then(|| Subject::Credential(credential.chars().take(200).collect()))
}

/// The address a failure is charged to: IPv4 as it is, IPv6 by its /64 prefix.
fn address_group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_drain_the_bucket_and_successes_do_not() {
        let t = Throttle::new(
            Limit {
                burst: 3,
                per_minute: 1,
            },
            Limit::OFF,
        );
        let s = subjects(Some("kid-1"), Some(IpAddr::from([127, 0, 0, 1])));
        for _ in 0..3 {
            t.check(&s).unwrap();
            t.failed(&s);
        }
        let e = t.check(&s).unwrap_err();
        assert_eq!(e.kind, Kind::ResourceExhausted);
        assert!(e.retry_after_secs.is_some_and(|r| (1..=61).contains(&r)));
        // Another credential from the same address is unaffected (the address limit is off).
        t.check(&subjects(Some("kid-2"), Some(IpAddr::from([127, 0, 0, 1]))))
            .unwrap();
        assert_eq!(t.tracked(), 1);
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let t = Throttle::new(
            Limit::OFF,
            Limit {
                burst: 2,
                per_minute: 1,
            },
        );
        let at = |s: &str| subjects(None, Some(s.parse().unwrap()));
        // Every attempt from a fresh address of one /64 drains the same bucket.
        t.failed(&at("2001:db8:1:2::1"));
        t.failed(&at("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert!(t.check(&at("2001:db8:1:2:abcd::7")).is_err());
        assert_eq!(t.tracked(), 1);
        // The next /64 and IPv4 addresses are apart.
        t.check(&at("2001:db8:1:3::1")).unwrap();
        assert_eq!(
            at("2001:db8:1:2::9"),
            [Subject::Address("2001:db8:1:2::".parse().unwrap())]
        );
        assert_eq!(
            at("192.0.2.1"),
            [Subject::Address("192.0.2.1".parse().unwrap())]
        );
        // A v4-mapped address is its IPv4 address, not a /64.
        assert_eq!(
            at("::ffff:192.0.2.1"),
            [Subject::Address("192.0.2.1".parse().unwrap())]
        );
    }

    #[test]
    fn off_limits_track_nothing() {
        let t = Throttle::new(Limit::OFF, Limit::OFF);
        let s = subjects(Some("k"), Some(IpAddr::from([10, 0, 0, 1])));
        for _ in 0..100 {
            t.failed(&s);
        }
        t.check(&s).unwrap();
        assert_eq!(t.tracked(), 0);
    }
}
