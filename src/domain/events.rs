//! The audit trail as authnkeys.v1 names it, and the rules of webhook delivery: the contract's
//! event types, Standard Webhooks signing, the retry schedule and the expiry notice windows.
//!
//! Events are recorded under ZITADEL-style names (`user.machine.key.added`) since the first
//! version; the contract's names (`key.added`) are a view of them, so old rows read the same.
use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Duration, Utc};
use hmac::Mac;
use rand::RngCore;

use crate::error::{Error, Result};

/// Each contract type with the recorded types it stands for.
const TYPES: &[(&str, &[&str])] = &[
    (
        "key.added",
        &["user.machine.key.added", "project.application.key.added"],
    ),
    (
        "key.removed",
        &[
            "user.machine.key.removed",
            "project.application.key.removed",
        ],
    ),
    (
        "key.disabled",
        &[
            "user.machine.key.disabled",
            "project.application.key.disabled",
        ],
    ),
    (
        "key.enabled",
        &[
            "user.machine.key.enabled",
            "project.application.key.enabled",
        ],
    ),
    (
        "key.expiring",
        &[
            "user.machine.key.expiring",
            "project.application.key.expiring",
        ],
    ),
    (
        "key.expired",
        &[
            "user.machine.key.expired",
            "project.application.key.expired",
        ],
    ),
    ("trust.added", &["user.machine.trust.added"]),
    ("trust.removed", &["user.machine.trust.removed"]),
    (
        "policy.changed",
        &["org.key.policy.set", "org.key.policy.reset"],
    ),
    (
        "member.added",
        &["org.member.added", "instance.member.added"],
    ),
    (
        "member.changed",
        &["org.member.changed", "instance.member.changed"],
    ),
    (
        "member.removed",
        &["org.member.removed", "instance.member.removed"],
    ),
    ("user.added", &["user.machine.added"]),
    ("user.changed", &["user.machine.token.settings.changed"]),
    ("user.removed", &["user.removed"]),
    ("project.added", &["project.added"]),
    ("project.removed", &["project.removed"]),
    ("app.added", &["project.application.added"]),
    ("app.removed", &["project.application.removed"]),
    ("org.added", &["org.added"]),
    ("webhook.added", &["org.webhook.added"]),
    ("webhook.removed", &["org.webhook.removed"]),
];

/// The contract's name of a recorded event type; a type without one keeps its own name.
pub fn contract_type(recorded: &str) -> &str {
    TYPES
        .iter()
        .find(|(_, all)| all.contains(&recorded))
        .map_or(recorded, |(name, _)| name)
}

/// Every contract type, for messages and the console.
pub fn contract_types() -> impl Iterator<Item = &'static str> {
    TYPES.iter().map(|(name, _)| *name)
}

/// Checks a list of contract types (a filter or a webhook's subscription): each must be known;
/// duplicates are dropped, the order kept.
pub fn parse_types(field: &str, types: &[String]) -> Result<Vec<&'static str>> {
    let mut out: Vec<&'static str> = Vec::new();
    for t in types {
        let Some((name, _)) = TYPES.iter().find(|(name, _)| name == t) else {
            return Err(Error::invalid_argument(
                "EVENT-Type01",
                format!(
                    "{field}: unknown event type \"{}\"; known types: {}",
                    crate::domain::text::shown(t),
                    contract_types().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        if !out.contains(name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// The recorded types behind contract types, for a query.
pub fn recorded_types(types: &[&str]) -> Vec<&'static str> {
    TYPES
        .iter()
        .filter(|(name, _)| types.contains(name))
        .flat_map(|(_, all)| all.iter().copied())
        .collect()
}

/// The key, user and app an event concerns, derived from how it was recorded. Stored beside
/// the event so the trail can be searched by them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    /// (project id, app id)
    pub app: Option<(String, String)>,
}

impl Subject {
    pub fn of(aggregate_type: &str, aggregate_id: &str, payload: &serde_json::Value) -> Subject {
        let field = |name: &str| {
            payload
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let user_id = match aggregate_type {
            "user" => Some(aggregate_id.to_owned()),
            _ => field("userId"),
        };
        let app = match (aggregate_type, field("appId")) {
            ("project", Some(app_id)) => Some((aggregate_id.to_owned(), app_id)),
            _ => None,
        };
        Subject {
            key_id: field("keyId"),
            user_id,
            app,
        }
    }
}

/// A webhook's signing secret: 32 random bytes, shown once as `whsec_<base64>`.
pub struct WebhookSecret(zeroize::Zeroizing<Vec<u8>>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

impl WebhookSecret {
    pub fn generate() -> WebhookSecret {
        let mut bytes = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        WebhookSecret(zeroize::Zeroizing::new(bytes))
    }

    pub fn from_bytes(bytes: zeroize::Zeroizing<Vec<u8>>) -> WebhookSecret {
        WebhookSecret(bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text shown to the caller once (Standard Webhooks' `whsec_` form).
    pub fn text(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(format!("whsec_{}", STANDARD.encode(&*self.0)))
    }

    /// `v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">` (Standard Webhooks).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// How long a delivery is retried before it is marked failed.
pub const RETRY_HORIZON: Duration = Duration::hours(25);

/// When the attempt after `attempts` failed ones is due: 5 s, 30 s, 2 min, 10 min, 30 min,
/// 1 h, 2 h, then every 4 h (so the first retry comes within 10 s and the schedule covers
/// a day with a dozen attempts). A little jitter spreads receivers that failed together.
pub fn retry_delay(attempts: u32) -> Duration {
    const STEPS: [i64; 7] = [5, 30, 120, 600, 1800, 3600, 7200];
    let base = STEPS
        .get(attempts.saturating_sub(1) as usize)
        .copied()
        .unwrap_or(4 * 3600);
    // Up to a tenth of the step, in milliseconds.
    let jitter_ms = (rand::rngs::OsRng.next_u32() % 1000) as i64 * base / 10;
    Duration::milliseconds(base * 1000 + jitter_ms)
}

/// Whether a failed delivery is retried, or given up: retried until the horizon after the
/// event, and never fewer than three times.
pub fn gives_up(created_at: DateTime<Utc>, attempts: u32, now: DateTime<Utc>) -> bool {
    attempts >= 3 && now - created_at >= RETRY_HORIZON
}

/// The expiry notice windows (`AUTHN_KEYS_EXPIRY_NOTICES`, default `7d,1d`): a key gets a
/// `key.expiring` event when its expiry comes within each window, and `key.expired` when it
/// passes. Stored as seconds; `0` stands for "expired".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeWindows(Vec<i64>);

impl Default for NoticeWindows {
    fn default() -> Self {
        NoticeWindows(vec![7 * 86_400, 86_400])
    }
}

impl NoticeWindows {
    /// `7d,1d`, `72h`, or empty/`off` for none; widest first.
    pub fn parse(text: &str) -> std::result::Result<NoticeWindows, String> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("off") {
            return Ok(NoticeWindows(Vec::new()));
        }
        let mut out = Vec::new();
        for part in text.split(',') {
            let d = crate::domain::key_policy::parse_duration(part.trim())
                .map_err(|e| format!("{part:?}: {e}"))?;
            let secs = d.num_seconds();
            if secs <= 0 || secs > 366 * 86_400 {
                return Err(format!(
                    "{part:?}: a notice window is between 1 second and 366 days"
                ));
            }
            if !out.contains(&secs) {
                out.push(secs);
            }
        }
        out.sort_unstable_by(|a, b| b.cmp(a));
        Ok(NoticeWindows(out))
    }

    /// The windows in seconds, widest first.
    pub fn seconds(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What is due for a key expiring at `expires_at`, given the notices it already had:
    /// `Notice::Expired` once it passed, else the narrowest window it is in that has not been
    /// noticed — with every wider window it is in, which that one notice covers (a key added
    /// a day before it expires gets one notice, not one per window).
    pub fn due(
        &self,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        had: &[i64],
    ) -> Option<(Notice, Vec<i64>)> {
        if expires_at <= now {
            return (!had.contains(&0)).then(|| (Notice::Expired, vec![0]));
        }
        let left = (expires_at - now).num_seconds();
        let inside: Vec<i64> = self.0.iter().copied().filter(|w| left <= *w).collect();
        let narrowest = *inside.last()?;
        if had.contains(&narrowest) {
            return None;
        }
        let record: Vec<i64> = inside.into_iter().filter(|w| !had.contains(w)).collect();
        Some((Notice::Expiring { window: narrowest }, record))
    }
}

impl fmt::Display for NoticeWindows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|s| crate::domain::key_policy::show_duration(Duration::seconds(*s)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Expiring { window: i64 },
    Expired,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_names_cover_what_is_recorded() {
        assert_eq!(contract_type("user.machine.key.added"), "key.added");
        assert_eq!(
            contract_type("project.application.key.disabled"),
            "key.disabled"
        );
        assert_eq!(contract_type("org.key.policy.reset"), "policy.changed");
        assert_eq!(contract_type("something.new"), "something.new");
        assert_eq!(
            recorded_types(&["key.removed"]),
            [
                "user.machine.key.removed",
                "project.application.key.removed"
            ]
        );
        let err = parse_types("types", &["key.add".into()]).unwrap_err();
        assert!(err.client_message().contains("key.added"), "{err:?}");
        assert_eq!(
            parse_types("types", &["key.added".into(), "key.added".into()]).unwrap(),
            ["key.added"]
        );
    }

    #[test]
    fn subjects_come_from_the_aggregate_and_payload() {
        let s = Subject::of("user", "u1", &serde_json::json!({"keyId": "k1"}));
        assert_eq!(s.key_id.as_deref(), Some("k1"));
        assert_eq!(s.user_id.as_deref(), Some("u1"));
        let s = Subject::of(
            "project",
            "p1",
            &serde_json::json!({"keyId": "k2", "appId": "a1"}),
        );
        assert_eq!(s.app, Some(("p1".into(), "a1".into())));
        assert_eq!(s.user_id, None);
        let s = Subject::of("org", "o1", &serde_json::json!({"userId": "u9"}));
        assert_eq!(s.user_id.as_deref(), Some("u9"));
    }

    /// The example of the Standard Webhooks specification, checked against its published
    /// signature.
    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        let secret = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let s = WebhookSecret::from_bytes(zeroize::Zeroizing::new(secret));
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            s.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(s.text().starts_with("whsec_"));
        assert_eq!(format!("{s:?}"), "WebhookSecret(redacted)");
    }

    #[test]
    fn retries_start_soon_and_grow() {
        assert!(retry_delay(1) <= Duration::seconds(10));
        assert!(retry_delay(1) >= Duration::seconds(5));
        let mut last = Duration::zero();
        for n in 1..=8 {
            let d = retry_delay(n);
            assert!(d >= last, "attempt {n}: {d} after {last}");
            last = d;
        }
        let t0 = Utc::now();
        assert!(!gives_up(t0, 10, t0 + Duration::hours(24)));
        assert!(gives_up(t0, 10, t0 + Duration::hours(26)));
        assert!(!gives_up(t0, 2, t0 + Duration::hours(48)));
    }

    #[test]
    fn notice_windows() {
        let w = NoticeWindows::default();
        assert_eq!(w.to_string(), "7d,1d");
        assert_eq!(NoticeWindows::parse("1d, 7d").unwrap(), w);
        assert!(NoticeWindows::parse("off").unwrap().is_empty());
        assert!(NoticeWindows::parse("-1d").is_err());
        assert!(NoticeWindows::parse("soon").is_err());
        let now = Utc::now();
        let day = 86_400;
        // Far off: nothing.
        assert_eq!(w.due(now + Duration::days(30), now, &[]), None);
        // Inside 7d: the 7d notice.
        assert_eq!(
            w.due(now + Duration::days(3), now, &[]),
            Some((Notice::Expiring { window: 7 * day }, vec![7 * day]))
        );
        assert_eq!(w.due(now + Duration::days(3), now, &[7 * day]), None);
        // Added inside 1d: one notice that covers both windows.
        assert_eq!(
            w.due(now + Duration::hours(5), now, &[]),
            Some((Notice::Expiring { window: day }, vec![7 * day, day]))
        );
        assert_eq!(
            w.due(now + Duration::hours(5), now, &[7 * day]),
            Some((Notice::Expiring { window: day }, vec![day]))
        );
        assert_eq!(w.due(now + Duration::hours(5), now, &[7 * day, day]), None);
        // Passed: expired, once.
        assert_eq!(
            w.due(now - Duration::seconds(1), now, &[7 * day, day]),
            Some((Notice::Expired, vec![0]))
        );
        assert_eq!(w.due(now - Duration::seconds(1), now, &[0]), None);
    }
}
