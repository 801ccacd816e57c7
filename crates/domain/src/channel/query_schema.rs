//! The API document's schemas for the values of a metrics query, built from
//! the same tables the parser reads, so the document lists exactly what the
//! server takes: metric names from the catalogue, time zones from the
//! bundled tz database, intervals and dimensions from their parsers.

use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

use super::metrics;

fn names(description: &str, values: Vec<String>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(description))
        .into()
}

/// A metric's name, as `GET /api/v1/metrics` lists them.
pub struct MetricName;

impl utoipa::PartialSchema for MetricName {
    fn schema() -> RefOr<Schema> {
        let names_in_catalogue = metrics::catalogue()
            .into_iter()
            .map(|m| m.name.to_owned())
            .collect();
        names(
            "A metric of the catalogue (`GET /api/v1/metrics`)",
            names_in_catalogue,
        )
    }
}

impl utoipa::ToSchema for MetricName {}

/// Metric names, comma-separated (a query parameter).
pub struct MetricNameList;

impl utoipa::PartialSchema for MetricNameList {
    fn schema() -> RefOr<Schema> {
        let one = metrics::catalogue()
            .into_iter()
            .map(|m| m.name.replace('.', "\\."))
            .collect::<Vec<_>>()
            .join("|");
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!("^({one})(,({one}))*$")))
            .description(Some("Metric names of the catalogue, comma-separated"))
            .into()
    }
}

impl utoipa::ToSchema for MetricNameList {}

/// An IANA time zone of the bundled tz database.
pub struct TimeZoneName;

impl utoipa::PartialSchema for TimeZoneName {
    fn schema() -> RefOr<Schema> {
        let mut zones: Vec<String> = jiff::tz::db()
            .available()
            .map(|name| name.as_str().to_owned())
            .collect();
        zones.sort();
        zones.dedup();
        names("An IANA time zone, such as Europe/Berlin", zones)
    }
}

impl utoipa::ToSchema for TimeZoneName {}

/// A query interval.
pub struct IntervalName;

impl utoipa::PartialSchema for IntervalName {
    fn schema() -> RefOr<Schema> {
        let all = ["15m", "30m", "1h", "1d", "1w"];
        names("15m, 30m, 1h, 1d or 1w", all.map(str::to_owned).to_vec())
    }
}

impl utoipa::ToSchema for IntervalName {}

/// A dimension a metric can be grouped or filtered by.
pub struct DimensionName;

impl utoipa::PartialSchema for DimensionName {
    fn schema() -> RefOr<Schema> {
        names(
            "queue, channel, agent, provider or sentiment_band",
            DIMENSIONS.map(str::to_owned).to_vec(),
        )
    }
}

impl utoipa::ToSchema for DimensionName {}

const DIMENSIONS: [&str; 5] = ["queue", "channel", "agent", "provider", "sentiment_band"];

/// An object keyed by dimension, nothing else, with `value` under each.
fn by_dimension(description: &str, value: impl Fn() -> RefOr<Schema>) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
        ));
    for dimension in DIMENSIONS {
        object = object.property(dimension, value());
    }
    object.into()
}

fn dimension_value() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).into()
}

/// One value per dimension: `{"queue": "billing"}`.
pub struct DimensionValues;

impl utoipa::PartialSchema for DimensionValues {
    fn schema() -> RefOr<Schema> {
        by_dimension(
            "One value per dimension, such as {\"queue\": \"billing\"}",
            dimension_value,
        )
    }
}

impl utoipa::ToSchema for DimensionValues {}

/// One value or a list per dimension: `{"queue": ["billing", "sales"]}`.
pub struct DimensionValueLists;

impl utoipa::PartialSchema for DimensionValueLists {
    fn schema() -> RefOr<Schema> {
        by_dimension(
            "One value or a list per dimension, such as {\"queue\": [\"billing\", \"sales\"]}",
            || {
                utoipa::openapi::schema::OneOfBuilder::new()
                    .item(dimension_value())
                    .item(utoipa::openapi::schema::ArrayBuilder::new().items(dimension_value()))
                    .into()
            },
        )
    }
}

impl utoipa::ToSchema for DimensionValueLists {}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;
    use crate::channel::interval::{self, Interval};
    use crate::channel::metrics::Dimension;

    fn values(schema: RefOr<Schema>) -> Vec<String> {
        let RefOr::T(Schema::Object(object)) = schema else {
            panic!("not an object")
        };
        object
            .enum_values
            .unwrap()
            .into_iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn every_documented_value_is_taken_by_its_parser() {
        for name in values(MetricName::schema()) {
            assert!(metrics::metric(&name).is_some(), "{name}");
        }
        let zones = values(TimeZoneName::schema());
        assert!(zones.len() > 300, "{} zones", zones.len());
        for zone in zones {
            assert!(interval::zone(&zone).is_some(), "{zone}");
        }
        for name in values(IntervalName::schema()) {
            assert!(Interval::parse(&name).is_some(), "{name}");
        }
        for name in values(DimensionName::schema()) {
            assert!(Dimension::parse(&name).is_some(), "{name}");
        }
    }

    #[test]
    fn the_filter_objects_take_every_dimension_and_nothing_else() {
        for schema in [DimensionValues::schema(), DimensionValueLists::schema()] {
            let RefOr::T(Schema::Object(object)) = schema else {
                panic!("not an object")
            };
            let keys: Vec<&String> = object.properties.keys().collect();
            assert_eq!(keys.len(), DIMENSIONS.len());
            for key in keys {
                assert!(Dimension::parse(key).is_some(), "{key}");
            }
            assert!(matches!(
                object.additional_properties.as_deref(),
                Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(
                    false
                ))
            ));
        }
    }
}
