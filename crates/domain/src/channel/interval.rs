//! Query intervals (15m, 30m, 1h, 1d, 1w) aligned in an IANA time zone.
//!
//! Sub-day intervals are aligned on the local clock at each instant's own
//! offset, so the repeated hour of a DST fall-back gives two distinct
//! intervals and the skipped hour of a spring-forward gives none. Days start
//! at local midnight (a DST day lasts 23 or 25 hours) and weeks on Monday.
//!
//! Pre-aggregates are kept in 15-minute UTC buckets ([`BUCKET_MS`]). Every
//! offset in use today is a whole number of quarter hours, so each bucket
//! lies inside exactly one interval of any size in any zone, and an interval's
//! value is the fold of its buckets.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::time::UtcMillis;

/// The width of a pre-aggregate bucket.
pub const BUCKET_MS: i64 = 15 * 60 * 1000;
/// The most intervals one query may span.
pub const MAX_INTERVALS: usize = 20_000;

/// The start of the bucket holding `at`.
pub fn bucket_of(at: UtcMillis) -> i64 {
    at.as_millis().div_euclid(BUCKET_MS) * BUCKET_MS
}

/// The size of a query interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    M15,
    M30,
    H1,
    D1,
    W1,
}

impl Interval {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "15m" | "PT15M" => Some(Self::M15),
            "30m" | "PT30M" => Some(Self::M30),
            "1h" | "PT1H" => Some(Self::H1),
            "1d" | "P1D" => Some(Self::D1),
            "1w" | "P1W" | "P7D" => Some(Self::W1),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::M15 => "15m",
            Self::M30 => "30m",
            Self::H1 => "1h",
            Self::D1 => "1d",
            Self::W1 => "1w",
        }
    }

    /// The nominal length, for sub-day sizes the exact one.
    pub fn nominal_ms(self) -> i64 {
        match self {
            Self::M15 => BUCKET_MS,
            Self::M30 => 2 * BUCKET_MS,
            Self::H1 => 4 * BUCKET_MS,
            Self::D1 => 96 * BUCKET_MS,
            Self::W1 => 7 * 96 * BUCKET_MS,
        }
    }
}

/// A time zone by IANA name.
pub fn zone(name: &str) -> Option<TimeZone> {
    if name.is_empty() || name.eq_ignore_ascii_case("utc") || name == "Z" {
        return Some(TimeZone::UTC);
    }
    TimeZone::get(name).ok()
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The start of the interval holding `at`.
pub fn floor(at: UtcMillis, size: Interval, tz: &TimeZone) -> UtcMillis {
    let ms = at.as_millis();
    match size {
        Interval::M15 | Interval::M30 | Interval::H1 => {
            let offset_ms = i64::from(tz.to_offset(timestamp(ms)).seconds()) * 1000;
            let width = size.nominal_ms();
            let local = ms + offset_ms;
            UtcMillis::from_millis(local.div_euclid(width) * width - offset_ms)
        }
        Interval::D1 | Interval::W1 => {
            let zoned = timestamp(ms).to_zoned(tz.clone());
            let day = zoned.start_of_day().unwrap_or(zoned);
            let start = if size == Interval::W1 {
                let back = i64::from(day.weekday().to_monday_zero_offset());
                day.checked_sub(back.days())
                    .and_then(|monday| monday.start_of_day())
                    .unwrap_or(day)
            } else {
                day
            };
            UtcMillis::from_millis(start.timestamp().as_millisecond())
        }
    }
}

/// The start of the interval after the one starting at `start`.
pub fn next(start: UtcMillis, size: Interval, tz: &TimeZone) -> UtcMillis {
    let ms = start.as_millis();
    match size {
        Interval::M15 | Interval::M30 | Interval::H1 => {
            // One width later on the absolute clock, floored: across a DST
            // change this lands on the next local boundary.
            let candidate = floor(UtcMillis::from_millis(ms + size.nominal_ms()), size, tz);
            if candidate.as_millis() > ms {
                candidate
            } else {
                UtcMillis::from_millis(ms + size.nominal_ms())
            }
        }
        Interval::D1 | Interval::W1 => {
            let zoned = timestamp(ms).to_zoned(tz.clone());
            let days: i64 = if size == Interval::W1 { 7 } else { 1 };
            zoned
                .checked_add(days.days())
                .and_then(|later| later.start_of_day())
                .map(|later| UtcMillis::from_millis(later.timestamp().as_millisecond()))
                .unwrap_or(UtcMillis::from_millis(ms + size.nominal_ms()))
        }
    }
}

/// The starts of the intervals covering `[from, to)`: the first holds
/// `from`, the last ends at or after `to`. `None` past [`MAX_INTERVALS`].
pub fn starts(
    from: UtcMillis,
    to: UtcMillis,
    size: Interval,
    tz: &TimeZone,
) -> Option<Vec<UtcMillis>> {
    let mut starts = Vec::new();
    let mut current = floor(from, size, tz);
    while current < to {
        if starts.len() >= MAX_INTERVALS {
            return None;
        }
        starts.push(current);
        current = next(current, size, tz);
    }
    Some(starts)
}

/// The instant as RFC 3339 with the zone's offset at that instant.
pub fn local_rfc3339(at: UtcMillis, tz: &TimeZone) -> String {
    let zoned = timestamp(at.as_millis()).to_zoned(tz.clone());
    zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> UtcMillis {
        UtcMillis::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn hours_across_a_fall_back_are_distinct() {
        let tz = zone("America/New_York").unwrap();
        // 2026-11-01: 02:00 EDT -> 01:00 EST. 05:30Z is 01:30 EDT, 06:30Z is 01:30 EST.
        let first = floor(ms("2026-11-01T05:30:00Z"), Interval::H1, &tz);
        let second = floor(ms("2026-11-01T06:30:00Z"), Interval::H1, &tz);
        assert_eq!(first, ms("2026-11-01T05:00:00Z"));
        assert_eq!(second, ms("2026-11-01T06:00:00Z"));
        assert_eq!(next(first, Interval::H1, &tz), second);
    }

    #[test]
    fn a_spring_forward_day_has_23_hours() {
        let tz = zone("Europe/Berlin").unwrap();
        // 2026-03-29: 02:00 CET -> 03:00 CEST.
        let day = floor(ms("2026-03-29T12:00:00Z"), Interval::D1, &tz);
        assert_eq!(day, ms("2026-03-28T23:00:00Z"));
        let after = next(day, Interval::D1, &tz);
        assert_eq!(after, ms("2026-03-29T22:00:00Z"));
        let hours = starts(day, after, Interval::H1, &tz).unwrap();
        assert_eq!(hours.len(), 23);
        assert_eq!(local_rfc3339(hours[2], &tz), "2026-03-29T03:00:00+02:00");
    }

    #[test]
    fn a_fall_back_day_has_25_hours_and_100_quarters() {
        let tz = zone("Europe/Berlin").unwrap();
        let day = floor(ms("2026-10-25T12:00:00Z"), Interval::D1, &tz);
        let after = next(day, Interval::D1, &tz);
        assert_eq!(starts(day, after, Interval::H1, &tz).unwrap().len(), 25);
        assert_eq!(starts(day, after, Interval::M15, &tz).unwrap().len(), 100);
    }

    #[test]
    fn weeks_start_on_monday_at_local_midnight() {
        let tz = zone("Asia/Tokyo").unwrap();
        // Sunday 2026-11-22 12:00 JST.
        let week = floor(ms("2026-11-22T03:00:00Z"), Interval::W1, &tz);
        assert_eq!(local_rfc3339(week, &tz), "2026-11-16T00:00:00+09:00");
    }

    #[test]
    fn quarter_hour_offsets_keep_buckets_inside_intervals() {
        let tz = zone("Asia/Kathmandu").unwrap(); // +05:45
        let bucket = bucket_of(ms("2026-06-01T00:20:00Z"));
        let start = floor(UtcMillis::from_millis(bucket), Interval::M30, &tz);
        let end = next(start, Interval::M30, &tz);
        assert!(start.as_millis() <= bucket && bucket + BUCKET_MS <= end.as_millis());
    }

    #[test]
    fn unknown_zones_and_sizes() {
        assert!(zone("Mars/Olympus").is_none());
        assert!(zone("UTC").is_some());
        assert_eq!(Interval::parse("1h"), Some(Interval::H1));
        assert_eq!(Interval::parse("2h"), None);
    }
}
