//! `google.protobuf.Timestamp` with grpc-gateway's JSON form: RFC 3339 in UTC with a `Z` and
//! 0, 3, 6 or 9 fractional digits (pbjson-types would write `+00:00`). The wire form is the
//! well-known type's: seconds (1) and nanos (2).
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

#[derive(Clone, Copy, PartialEq, Eq, Hash, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// The instant, if seconds and nanos are within the range the type allows
    /// (0001-01-01 to 9999-12-31, nanos 0..1e9).
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        // The well-known type's range. Beyond it, years have five digits: SQLite keeps times as
        // text, where "+10000-…" would sort before today.
        const MIN: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
        const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        if !(0..1_000_000_000).contains(&self.nanos) || !(MIN..=MAX).contains(&self.seconds) {
            return None;
        }
        DateTime::from_timestamp(self.seconds, self.nanos as u32)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp {
            seconds: t.timestamp(),
            nanos: t.timestamp_subsec_nanos() as i32,
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self
            .to_datetime()
            .ok_or_else(|| serde::ser::Error::custom("timestamp out of range"))?;
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = DateTime::parse_from_rfc3339(&s)
            .map_err(|e| de::Error::custom(format!("invalid RFC 3339 timestamp {s:?}: {e}")))?;
        Ok(t.with_timezone(&Utc).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_z_and_round_trips() {
        let t = Timestamp {
            seconds: 253_402_300_799,
            nanos: 0,
        };
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"9999-12-31T23:59:59Z\"");
        let back: Timestamp = serde_json::from_str("\"9999-12-31T23:59:59Z\"").unwrap();
        assert_eq!(back, t);
        let t = Timestamp {
            seconds: 1,
            nanos: 500_000_000,
        };
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"1970-01-01T00:00:01.500Z\""
        );
        let offset: Timestamp = serde_json::from_str("\"1970-01-01T01:00:01+01:00\"").unwrap();
        assert_eq!(offset.seconds, 1);
    }

    #[test]
    fn the_well_known_range_only() {
        let at = |seconds, nanos| Timestamp { seconds, nanos }.to_datetime();
        assert!(at(253_402_300_799, 999_999_999).is_some());
        assert!(at(253_402_300_800, 0).is_none());
        assert!(at(-62_135_596_800, 0).is_some());
        assert!(at(-62_135_596_801, 0).is_none());
        assert!(at(0, 1_000_000_000).is_none());
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
        assert!(
            Timestamp {
                seconds: 0,
                nanos: -1
            }
            .to_datetime()
            .is_none()
        );
        assert!(
            serde_json::to_string(&Timestamp {
                seconds: i64::MAX,
                nanos: 0
            })
            .is_err()
        );
    }
}
