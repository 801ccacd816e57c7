//! A metric series written as JSON straight into a byte buffer.
//!
//! A dashboard's answer holds tens of thousands of points of one fixed
//! shape, `{"start", "value", "count"}`. Through serde_json's generic path
//! each point is a map whose keys are escaped again every time, and that
//! machinery cost more than the numbers and times themselves. Here the keys
//! are constant bytes and the times come from an [`Rfc3339Printer`], which
//! works out each day's date once; every free-form value (the metric's name,
//! the group, each number) is still written by serde_json, and a property
//! test holds the bytes to the derived `Serialize`.

use super::series::{Point, Series};
use crate::time::Rfc3339Printer;

impl Series {
    /// Appends the series as JSON, byte for byte what `serde_json` makes of
    /// its `Serialize`.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"metric\":");
        serde_json::to_writer(&mut *out, &self.metric)?;
        out.extend_from_slice(b",\"group\":");
        serde_json::to_writer(&mut *out, &self.group)?;
        out.extend_from_slice(b",\"points\":[");
        let mut times = Rfc3339Printer::default();
        for (i, point) in self.points.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_point(point, &mut times, out)?;
        }
        out.extend_from_slice(b"]}");
        Ok(())
    }
}

fn write_point(
    point: &Point,
    times: &mut Rfc3339Printer,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"start\":");
    match times.print(point.start) {
        // Digits and `-:.TZ` only: nothing to escape.
        Some(text) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        None => serde_json::to_writer(&mut *out, &point.start.to_rfc3339())?,
    }
    out.extend_from_slice(b",\"value\":");
    serde_json::to_writer(&mut *out, &point.value)?;
    out.extend_from_slice(b",\"count\":");
    serde_json::to_writer(&mut *out, &point.count)?;
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::time::UtcMillis;

    fn value() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            Just(None),
            Just(Some(f64::NAN)),
            Just(Some(f64::INFINITY)),
            Just(Some(0.0)),
            Just(Some(-0.0)),
            any::<f64>().prop_map(Some),
            (-1000i64..1000).prop_map(|n| Some(n as f64)),
        ]
    }

    fn series() -> impl Strategy<Value = Series> {
        (
            ".{0,12}",
            proptest::collection::btree_map(".{0,6}", ".{0,6}", 0..3),
            proptest::collection::vec(
                (
                    // Past jiff's range at both ends too.
                    -377_705_116_800_000i64..253_402_300_800_000 * 2,
                    value(),
                    any::<i64>(),
                ),
                0..20,
            ),
        )
            .prop_map(|(metric, group, points)| Series {
                metric,
                group: group.into_iter().collect::<BTreeMap<_, _>>(),
                points: points
                    .into_iter()
                    .map(|(start, value, count)| Point {
                        start: UtcMillis::from_millis(start),
                        value,
                        count,
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn writes_what_serde_json_writes(series in series()) {
            let mut ours = Vec::new();
            series.write_json(&mut ours).unwrap();
            prop_assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&series).unwrap()
            );
        }
    }

    #[test]
    fn a_dashboard_point() {
        let series = Series {
            metric: "aht".into(),
            group: BTreeMap::from([("queue".to_owned(), "bil\"ling".to_owned())]),
            points: vec![Point {
                start: UtcMillis::from_millis(1_772_409_600_000),
                value: Some(312.5),
                count: 8,
            }],
        };
        let mut out = Vec::new();
        series.write_json(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"metric":"aht","group":{"queue":"bil\"ling"},"points":[{"start":"2026-03-02T00:00:00.000Z","value":312.5,"count":8}]}"#
        );
    }
}
