//! `Timestamp`: microseconds since the Unix epoch, shown and parsed as RFC 3339 (and as
//! relative times such as `15m` where users type them).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A moment in time, kept as microseconds since the Unix epoch and shown as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_micros() as i64)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(micros(d)))
    }

    pub fn minus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(micros(d)))
    }

    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_micros(self.0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }

    /// Parses RFC 3339 ("2026-11-22T10:00:00Z"), a date ("2026-11-22"), or a relative time
    /// back from now ("15m", "2h", "7d").
    pub fn parse(s: &str) -> Result<Timestamp, String> {
        let s = s.trim();
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
            return Ok(Timestamp(t.timestamp_micros()));
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            let t = d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
            return Ok(Timestamp(t.timestamp_micros()));
        }
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: u64 = num
            .parse()
            .map_err(|_| format!("'{s}' is not a time (RFC 3339, YYYY-MM-DD, or 30s/15m/2h/7d)"))?;
        // Longer ago than time goes back is the beginning of time.
        let secs = match unit {
            "s" => n,
            "m" => n.saturating_mul(60),
            "h" => n.saturating_mul(3600),
            "d" => n.saturating_mul(86_400),
            _ => {
                return Err(format!(
                    "'{s}' is not a time (RFC 3339, YYYY-MM-DD, or 30s/15m/2h/7d)"
                ));
            }
        };
        Ok(Timestamp::now().minus(Duration::from_secs(secs)))
    }
}

/// A duration in microseconds, saturating (a `Duration` may hold ~2^64 seconds).
fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Shown as an RFC 3339 date-time string.
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .examples([serde_json::json!("2026-11-22T10:00:00.000000Z")])
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| Timestamp(t.timestamp_micros()))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_and_print() {
        let t = Timestamp::parse("2026-11-22T10:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T10:00:00.000000Z");
        assert_eq!(
            Timestamp::parse("2026-11-22").unwrap(),
            Timestamp::parse("2026-11-22T00:00:00Z").unwrap()
        );
        let hour_ago = Timestamp::parse("1h").unwrap();
        let delta = Timestamp::now().0 - hour_ago.0;
        assert!((3_599_000_000..3_601_000_000).contains(&delta));
        assert!(Timestamp::parse("yesterday").is_err());
        // Further back than anything: long ago, not an overflow.
        for far in ["999999999999999999d", "18446744073709551615s"] {
            assert!(Timestamp::parse(far).unwrap() < Timestamp(0), "{far}");
        }
    }
}
