//! Key expiration: unset means "never" (ZITADEL's 9999-12-31T23:59:59Z); the past is refused.
use chrono::{DateTime, TimeZone, Utc};

use crate::error::Error;

/// 9999-12-31T23:59:59Z.
pub fn never() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .expect("valid date")
}

/// The expiration to store for a new key.
pub fn key_expiration(
    requested: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, Error> {
    match requested {
        None => Ok(never()),
        Some(t) if t <= now => Err(Error::invalid_argument(
            "DOMAIN-dv3t5",
            format!(
                "expiration date {} is in the past",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
        )),
        Some(t) => Ok(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_past_and_future() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            key_expiration(None, now).unwrap().to_rfc3339(),
            "9999-12-31T23:59:59+00:00"
        );
        assert_eq!(
            key_expiration(Some(now), now).unwrap_err().id,
            "DOMAIN-dv3t5"
        );
        let later = now + chrono::Duration::days(1);
        assert_eq!(key_expiration(Some(later), now).unwrap(), later);
    }
}
