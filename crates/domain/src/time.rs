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
        let mut buf = [0; 24];
        match self.write_rfc3339(&mut buf) {
            Some(text) => text.to_owned(),
            None => match jiff::Timestamp::from_millisecond(self.0) {
                Ok(t) => format!("{t:.3}"),
                Err(_) => self.0.to_string(),
            },
        }
    }

    /// Writes the timestamp as `YYYY-MM-DDTHH:MM:SS.mmmZ` into `buf`, for
    /// the years 0 to 9999; `None` outside them.
    ///
    /// Written by hand because answers print a time per point (a dashboard
    /// prints tens of thousands), and jiff's general printer, with its
    /// formatting machinery and a `String` per call, cost more than the rest
    /// of the point's JSON. The tests hold it to jiff's output.
    pub fn write_rfc3339(self, buf: &mut [u8; 24]) -> Option<&str> {
        let (days, in_day) = (self.0.div_euclid(DAY_MS), self.0.rem_euclid(DAY_MS));
        if !write_date(days, buf) {
            return None;
        }
        write_time(in_day, buf);
        std::str::from_utf8(buf).ok()
    }

    /// Adds a signed number of milliseconds, saturating at the ends of the range.
    pub fn saturating_add_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
}

const DAY_MS: i64 = 86_400_000;

/// Writes `YYYY-MM-DDT` of the day `days` after the epoch into `buf`; false
/// outside the years 0 to 9999.
fn write_date(days: i64, buf: &mut [u8; 24]) -> bool {
    // Days to the civil date in the proleptic Gregorian calendar (Howard
    // Hinnant's `civil_from_days`), counted from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return false;
    }
    write_digits(buf, &[(0, 4, year), (5, 2, month), (8, 2, day)]);
    buf[4] = b'-';
    buf[7] = b'-';
    buf[10] = b'T';
    true
}

/// Writes `HH:MM:SS.mmmZ` of `in_day` milliseconds into `buf[11..]`.
fn write_time(in_day: i64, buf: &mut [u8; 24]) {
    write_digits(
        buf,
        &[
            (11, 2, in_day / 3_600_000),
            (14, 2, in_day / 60_000 % 60),
            (17, 2, in_day / 1000 % 60),
            (20, 3, in_day % 1000),
        ],
    );
    buf[13] = b':';
    buf[16] = b':';
    buf[19] = b'.';
    buf[23] = b'Z';
}

/// Writes each (place, width, value) as zero-padded decimal digits.
fn write_digits(buf: &mut [u8; 24], fields: &[(usize, usize, i64)]) {
    for &(at, width, mut value) in fields {
        for place in (at..at + width).rev() {
            buf[place] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
}

/// Prints many times as [`UtcMillis::write_rfc3339`] does, working out each
/// day's date once: a series' points are consecutive intervals, tens of
/// them a day.
#[derive(Default)]
pub struct Rfc3339Printer {
    buf: [u8; 24],
    day: Option<i64>,
}

impl Rfc3339Printer {
    /// The time as `YYYY-MM-DDTHH:MM:SS.mmmZ`, or `None` outside the years
    /// 0 to 9999.
    pub fn print(&mut self, time: UtcMillis) -> Option<&str> {
        let (days, in_day) = (time.0.div_euclid(DAY_MS), time.0.rem_euclid(DAY_MS));
        if self.day != Some(days) {
            self.day = None;
            if !write_date(days, &mut self.buf) {
                return None;
            }
            self.day = Some(days);
        }
        write_time(in_day, &mut self.buf);
        std::str::from_utf8(&self.buf).ok()
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
        let mut buf = [0; 24];
        match time.write_rfc3339(&mut buf) {
            Some(text) => serializer.serialize_str(text),
            None => serializer.serialize_str(&time.to_rfc3339()),
        }
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

    /// The hand-written printer agrees with jiff's everywhere it prints,
    /// and leaves the rest of jiff's range to jiff.
    #[test]
    fn prints_as_jiff_does() {
        let jiff_print = |ms: i64| format!("{:.3}", jiff::Timestamp::from_millisecond(ms).unwrap());
        let mut buf = [0; 24];
        let year_10000 = 253_402_300_800_000;
        for ms in [
            0,
            -1,
            1,
            951_782_400_000,
            1_709_164_799_999,
            -62_167_219_200_000,
            253_402_207_200_000,
        ] {
            assert_eq!(
                UtcMillis(ms).write_rfc3339(&mut buf),
                Some(jiff_print(ms).as_str())
            );
        }
        assert_eq!(UtcMillis(-62_167_219_200_001).write_rfc3339(&mut buf), None);
        assert_eq!(
            UtcMillis(year_10000 - 1).write_rfc3339(&mut buf),
            Some("9999-12-31T23:59:59.999Z")
        );
        assert_eq!(UtcMillis(year_10000).write_rfc3339(&mut buf), None);
        assert_eq!(
            UtcMillis(-62_167_219_200_001).to_rfc3339(),
            jiff_print(-62_167_219_200_001)
        );
    }

    proptest::proptest! {
        #[test]
        fn prints_every_time_as_jiff_does(ms in -62_167_219_200_000i64..=253_402_207_200_000) {
            let mut buf = [0; 24];
            let expected = format!("{:.3}", jiff::Timestamp::from_millisecond(ms).unwrap());
            proptest::prop_assert_eq!(UtcMillis(ms).write_rfc3339(&mut buf), Some(expected.as_str()));
        }

        /// A printer reused over times in any order prints each as alone.
        #[test]
        fn a_printer_prints_each_time_as_alone(
            times in proptest::collection::vec(-377_705_116_800_000i64..506_804_601_600_000, 1..40),
            step in 0i64..100_000_000,
        ) {
            let mut printer = Rfc3339Printer::default();
            for ms in times.iter().flat_map(|ms| [*ms, ms.saturating_add(step)]) {
                let mut buf = [0; 24];
                let alone = UtcMillis(ms).write_rfc3339(&mut buf).map(str::to_owned);
                proptest::prop_assert_eq!(printer.print(UtcMillis(ms)).map(str::to_owned), alone);
            }
        }
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
