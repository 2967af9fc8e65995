//! A moment, as the JSON API sends it and pages show it.
use serde::{Deserialize, Serialize};
use std::fmt;

/// A moment in UTC, to the second. Serialised as RFC 3339 (`2026-12-01T21:39:00Z`),
/// which every client library parses; shown to people as `2026-12-01 21:39:00 UTC`.
/// Only the server makes them (from unix milliseconds), so the text is always that shape.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema), schema(value_type = String, format = DateTime))]
#[serde(transparent)]
pub struct Timestamp(String);

impl Timestamp {
    /// Beyond what a calendar date can say (year 9999) it is held at its edge, never
    /// wrapped: a far-away deadline must not read as long past.
    pub fn from_unix_ms(ms: i64) -> Self {
        const LAST: i64 = 253_402_300_799_000; // 9999-12-31T23:59:59Z
        const FIRST: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
        let ms = ms.clamp(FIRST, LAST);
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Self(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ))
    }

    /// The RFC 3339 text (for `<time datetime=…>`).
    pub fn rfc3339(&self) -> &str {
        &self.0
    }
}

/// `2026-12-01 21:39:00 UTC`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.strip_suffix('Z') {
            Some(rest) => write!(f, "{} UTC", rest.replacen('T', " ", 1)),
            None => f.write_str(&self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Timestamp;

    #[test]
    fn the_api_gets_rfc_3339_and_people_read_utc() {
        let t = Timestamp::from_unix_ms(1_795_900_503_000);
        assert_eq!(t.rfc3339(), "2026-11-28T21:15:03Z");
        assert_eq!(t.to_string(), "2026-11-28 21:15:03 UTC");
        assert_eq!(serde_json::to_string(&t).ok().as_deref(), Some("\"2026-11-28T21:15:03Z\""));
        assert_eq!(Timestamp::from_unix_ms(0).to_string(), "1970-01-01 00:00:00 UTC");
    }

    #[test]
    fn a_time_beyond_the_calendar_is_held_at_its_edge() {
        assert_eq!(Timestamp::from_unix_ms(i64::MAX).rfc3339(), "9999-12-31T23:59:59Z");
        assert_eq!(Timestamp::from_unix_ms(i64::MIN).rfc3339(), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn milliseconds_are_dropped_not_rounded() {
        assert_eq!(Timestamp::from_unix_ms(1_999).rfc3339(), "1970-01-01T00:00:01Z");
    }
}
