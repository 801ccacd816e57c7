//! UTC timestamps with millisecond precision.
//!
//! Every stored time is an `i64` count of milliseconds since the Unix epoch; the
//! API speaks RFC 3339 in UTC.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A point in time, in milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UtcMillis(i64);

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp: {0}")]
pub struct TimeParseError(String);

impl UtcMillis {
    /// Wraps a raw millisecond count.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// The raw millisecond count.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The current time from the system clock.
    pub fn now() -> Self {
        Self(jiff::Timestamp::now().as_millisecond())
    }

    /// Parses an RFC 3339 timestamp with any offset (`Z`, `+02:00`).
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimeParseError> {
        text.parse::<jiff::Timestamp>()
            .map(|t| Self(t.as_millisecond()))
            .map_err(|_| TimeParseError(truncate(text, 64)))
    }

    /// The timestamp as RFC 3339 in UTC with millisecond precision.
    pub fn to_rfc3339(self) -> String {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(t) => format!("{t:.3}"),
            Err(_) => self.0.to_string(),
        }
    }

    /// Adds a signed number of milliseconds, saturating at the ends of the range.
    pub fn saturating_add_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
}

impl fmt::Display for UtcMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Parses a duration for people at a command line: ISO 8601 (`PT1H`) or the
/// short form (`1h`, `10m`, `2d`), into milliseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let span: jiff::Span = text.parse().ok()?;
    let duration = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .ok()?;
    i64::try_from(duration.as_millis()).ok()
}

/// Parses an ISO 8601 duration such as `PT72H` or `P3D` into milliseconds.
pub fn parse_iso8601_duration(text: &str) -> Option<i64> {
    // jiff also reads its "friendly" format (`72h`); the contract is ISO 8601.
    if !text.starts_with(['P', 'p']) {
        return None;
    }
    parse_duration(text)
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Serde for a time as RFC 3339 in UTC; reads RFC 3339 or Unix milliseconds.
pub mod rfc3339 {
    use super::UtcMillis;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &UtcMillis, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<UtcMillis, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Millis(i64),
        }
        match Either::deserialize(deserializer)? {
            Either::Millis(ms) => Ok(UtcMillis::from_millis(ms)),
            Either::Text(text) => UtcMillis::parse_rfc3339(&text).map_err(serde::de::Error::custom),
        }
    }
}

/// [`rfc3339`] for an optional time.
pub mod rfc3339_opt {
    use super::UtcMillis;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        time: &Option<UtcMillis>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => super::rfc3339::serialize(time, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<UtcMillis>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::rfc3339")] UtcMillis);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_prints_utc() {
        let t = UtcMillis::parse_rfc3339("2026-03-01T10:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-01T08:00:00.000Z");
        let z = UtcMillis::parse_rfc3339("2026-03-01T08:00:00.123Z").unwrap();
        assert_eq!(z.as_millis() - t.as_millis(), 123);
    }

    #[test]
    fn rejects_garbage() {
        assert!(UtcMillis::parse_rfc3339("yesterday").is_err());
        assert!(UtcMillis::parse_rfc3339("2026-13-01T00:00:00Z").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_iso8601_duration("PT72H"), Some(72 * 3_600_000));
        assert_eq!(parse_iso8601_duration("P1D"), Some(86_400_000));
        assert_eq!(parse_iso8601_duration("PT90M"), Some(90 * 60_000));
        assert_eq!(parse_iso8601_duration("soon"), None);
        assert_eq!(parse_iso8601_duration("72h"), None);
        assert_eq!(parse_duration("10m"), Some(600_000));
        assert_eq!(parse_duration("PT10M"), Some(600_000));
    }
}
