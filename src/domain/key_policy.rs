//! An org's key policy: how long keys may live, how many an owner may hold, which origins and
//! algorithms are allowed. Applied on every path that adds a key, whichever API asked.
use chrono::{DateTime, Duration, SecondsFormat, Utc};

use super::{expiry, jwt::Algorithm, model::KeyOrigin};
use crate::error::{Error, Result};

/// The longest lifetime a policy may name (a hundred years); beyond is not a policy.
pub const MAX_POLICY_LIFETIME: Duration = Duration::days(36_500);
/// The largest per-owner key limit a policy may set.
pub const MAX_KEYS_LIMIT: u32 = 10_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPolicy {
    pub max_lifetime: Option<Duration>,
    pub default_lifetime: Option<Duration>,
    /// Keys per owner that have not expired; 0: unlimited.
    pub max_keys_per_owner: u32,
    /// Empty: both.
    pub allowed_origins: Vec<KeyOrigin>,
    /// Empty: all.
    pub allowed_algorithms: Vec<Algorithm>,
}

/// `90d`, `36h`, `3600s` — how lifetimes are shown in messages.
pub fn show_duration(d: Duration) -> String {
    let secs = d.num_seconds();
    if secs % 86_400 == 0 {
        format!("{}d", secs / 86_400)
    } else if secs % 3_600 == 0 {
        format!("{}h", secs / 3_600)
    } else {
        format!("{secs}s")
    }
}

/// Parses `90d`, `36h`, `15m`, `3600s` or plain seconds (configuration).
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90d, 36h, 15m or 3600s"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(unit_secs)
        .and_then(Duration::try_seconds)
        .ok_or_else(|| format!("{text:?} is too long"))
}

fn show_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `POLICY-Dur01`: a policy lifetime outside 1 s to [`MAX_POLICY_LIFETIME`].
pub fn lifetime_out_of_range(field: &str, seconds: i64) -> Error {
    Error::invalid_argument(
        "POLICY-Dur01",
        format!("{field} must be between 1s and 36500d (100 years), got {seconds}s"),
    )
}

impl KeyPolicy {
    /// Refuses a policy that cannot be meant: lifetimes outside 1 s to 100 years, a default
    /// beyond the maximum, a key limit beyond [`MAX_KEYS_LIMIT`]. (Duplicates in the lists
    /// change nothing; the API drops them.)
    pub fn validate(&self) -> Result<()> {
        for (field, d) in [
            ("maxLifetime", self.max_lifetime),
            ("defaultLifetime", self.default_lifetime),
        ] {
            if let Some(d) = d
                && (d < Duration::seconds(1) || d > MAX_POLICY_LIFETIME)
            {
                return Err(lifetime_out_of_range(field, d.num_seconds()));
            }
        }
        if let (Some(default), Some(max)) = (self.default_lifetime, self.max_lifetime)
            && default > max
        {
            return Err(Error::invalid_argument(
                "POLICY-Dur02",
                format!(
                    "defaultLifetime ({}) is longer than maxLifetime ({})",
                    show_duration(default),
                    show_duration(max)
                ),
            ));
        }
        if self.max_keys_per_owner > MAX_KEYS_LIMIT {
            return Err(Error::invalid_argument(
                "POLICY-Max02",
                format!(
                    "maxKeysPerOwner must be at most {MAX_KEYS_LIMIT} (0 means unlimited), got {}",
                    self.max_keys_per_owner
                ),
            ));
        }
        Ok(())
    }

    /// The expiration of a new key: the one asked for (checked against the maximum lifetime),
    /// else the default lifetime, else the maximum, else never.
    pub fn expiration(
        &self,
        requested: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        let limit = self.max_lifetime.map(|max| now + max);
        let expires_at = match requested {
            Some(_) => expiry::key_expiration(requested, now)?,
            None => match self.default_lifetime.or(self.max_lifetime) {
                Some(lifetime) => now + lifetime,
                None => expiry::never(),
            },
        };
        if let (Some(limit), Some(max)) = (limit, self.max_lifetime)
            && expires_at > limit
        {
            return Err(Error::invalid_argument(
                "POLICY-Life1",
                format!(
                    "expirationDate {} is beyond the org's key policy: keys may live at most {} (maxLifetime), so the latest allowed is {}",
                    show_time(expires_at),
                    show_duration(max),
                    show_time(limit)
                ),
            ));
        }
        Ok(expires_at)
    }

    /// Refuses an origin or algorithm the policy does not allow.
    pub fn check_kind(&self, origin: KeyOrigin, algorithm: Algorithm) -> Result<()> {
        if !self.allowed_origins.is_empty() && !self.allowed_origins.contains(&origin) {
            let allowed: Vec<&str> = self.allowed_origins.iter().map(|o| o.as_str()).collect();
            return Err(Error::failed_precondition(
                "POLICY-Orig1",
                format!(
                    "the org's key policy does not allow {} keys (allowedOrigins: {})",
                    origin.as_str(),
                    allowed.join(", ")
                ),
            ));
        }
        if !self.allowed_algorithms.is_empty() && !self.allowed_algorithms.contains(&algorithm) {
            let allowed: Vec<&str> = self.allowed_algorithms.iter().map(|a| a.as_str()).collect();
            return Err(Error::failed_precondition(
                "POLICY-Alg01",
                format!(
                    "the org's key policy does not allow {} keys (allowedAlgorithms: {})",
                    algorithm.as_str(),
                    allowed.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Refuses one more key for an owner that already holds `held` unexpired keys.
    pub fn check_count(&self, held: u64, owner: &str) -> Result<()> {
        let max = u64::from(self.max_keys_per_owner);
        if max > 0 && held >= max {
            return Err(Error::failed_precondition(
                "POLICY-Max01",
                format!(
                    "{owner} already has {held} keys that have not expired; the org's key policy allows at most {max} per owner (maxKeysPerOwner): remove one first"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn configured_durations_too_long_for_a_duration_are_an_error() {
        assert_eq!(parse_duration("90d").unwrap(), Duration::days(90));
        assert!(parse_duration("9999999999999999").is_err());
        assert!(parse_duration("100000000000000d").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn lifetimes_default_and_limit() {
        let open = KeyPolicy::default();
        assert_eq!(open.expiration(None, now()).unwrap(), expiry::never());
        let p = KeyPolicy {
            max_lifetime: Some(Duration::days(90)),
            default_lifetime: Some(Duration::days(30)),
            ..KeyPolicy::default()
        };
        assert_eq!(
            p.expiration(None, now()).unwrap(),
            now() + Duration::days(30)
        );
        let inside = now() + Duration::days(90);
        assert_eq!(p.expiration(Some(inside), now()).unwrap(), inside);
        let e = p
            .expiration(Some(inside + Duration::seconds(1)), now())
            .unwrap_err();
        assert_eq!(e.id, "POLICY-Life1");
        assert!(e.message.contains("90d"), "{}", e.message);
        let only_max = KeyPolicy {
            max_lifetime: Some(Duration::hours(36)),
            ..KeyPolicy::default()
        };
        assert_eq!(
            only_max.expiration(None, now()).unwrap(),
            now() + Duration::hours(36)
        );
        assert_eq!(
            p.expiration(Some(now()), now()).unwrap_err().id,
            "DOMAIN-dv3t5"
        );
    }

    #[test]
    fn absurd_policies_are_refused() {
        let bad = |p: KeyPolicy| p.validate().unwrap_err().id;
        assert_eq!(
            bad(KeyPolicy {
                max_lifetime: Some(Duration::seconds(-5)),
                ..KeyPolicy::default()
            }),
            "POLICY-Dur01"
        );
        assert_eq!(
            bad(KeyPolicy {
                default_lifetime: Some(Duration::days(40_000)),
                ..KeyPolicy::default()
            }),
            "POLICY-Dur01"
        );
        assert_eq!(
            bad(KeyPolicy {
                max_lifetime: Some(Duration::days(1)),
                default_lifetime: Some(Duration::days(2)),
                ..KeyPolicy::default()
            }),
            "POLICY-Dur02"
        );
        assert_eq!(
            bad(KeyPolicy {
                max_keys_per_owner: MAX_KEYS_LIMIT + 1,
                ..KeyPolicy::default()
            }),
            "POLICY-Max02"
        );
    }

    #[test]
    fn kinds_and_counts() {
        let p = KeyPolicy {
            max_keys_per_owner: 2,
            allowed_origins: vec![KeyOrigin::Uploaded],
            allowed_algorithms: vec![Algorithm::ES256],
            ..KeyPolicy::default()
        };
        assert_eq!(
            p.check_kind(KeyOrigin::Generated, Algorithm::ES256)
                .unwrap_err()
                .id,
            "POLICY-Orig1"
        );
        assert_eq!(
            p.check_kind(KeyOrigin::Uploaded, Algorithm::RS256)
                .unwrap_err()
                .id,
            "POLICY-Alg01"
        );
        p.check_kind(KeyOrigin::Uploaded, Algorithm::ES256).unwrap();
        p.check_count(1, "user u").unwrap();
        let e = p.check_count(2, "user u").unwrap_err();
        assert_eq!(e.id, "POLICY-Max01");
        assert!(e.message.contains("at most 2"), "{}", e.message);
        KeyPolicy::default()
            .check_count(1_000_000, "user u")
            .unwrap();
    }

    #[test]
    fn durations_parse_and_show() {
        assert_eq!(parse_duration("90d").unwrap(), Duration::days(90));
        assert_eq!(parse_duration("36h").unwrap(), Duration::hours(36));
        assert_eq!(parse_duration("15m").unwrap(), Duration::minutes(15));
        assert_eq!(parse_duration("3600").unwrap(), Duration::hours(1));
        assert!(parse_duration("ten days").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
        assert_eq!(show_duration(Duration::days(90)), "90d");
        assert_eq!(show_duration(Duration::hours(36)), "36h");
        assert_eq!(show_duration(Duration::seconds(61)), "61s");
    }
}
