//! Contact import files: CSV with a header row, or one JSON contact per line.
//!
//! Parsing is pure: every row becomes a contact or an error naming its line,
//! so one bad row never stops the good ones.

use serde_json::{Map, Value};

use super::Contact;
use crate::time::UtcMillis;

/// One row of an import file: its line number and what it became.
pub type Row = (u64, Result<Contact, String>);

/// A CSV file with a header row. `id` is required; `name` and `email` fill
/// those fields; every other non-empty column becomes an attribute.
pub fn parse_csv(text: &str, now: UtcMillis) -> Result<Vec<Row>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("line 1: {e}"))?
        .clone();
    if !headers.iter().any(|h| h.trim() == "id") {
        return Err("line 1: the header has no id column".into());
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let (line, parsed) = match record {
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line());
                let mut object = Map::new();
                let mut attributes = Map::new();
                for (header, value) in headers.iter().zip(record.iter()) {
                    let header = header.trim();
                    // An empty id is kept so that the row is refused for it.
                    if value.is_empty() && header != "id" {
                        continue;
                    }
                    match header {
                        "id" | "name" | "email" => {
                            object.insert(header.to_owned(), Value::from(value));
                        }
                        _ => {
                            attributes.insert(header.to_owned(), Value::from(value));
                        }
                    }
                }
                if !attributes.is_empty() {
                    object.insert("attributes".into(), Value::Object(attributes));
                }
                let parsed = Contact::from_json(Value::Object(object), now)
                    .map_err(|e| format!("{}: {}", e.field, e.message));
                (line, parsed)
            }
            Err(e) => (e.position().map_or(0, |p| p.line()), Err(e.to_string())),
        };
        rows.push((line, parsed));
    }
    Ok(rows)
}

/// One JSON contact per line, in the API's shape; blank lines are skipped.
pub fn parse_jsonl(text: &str, now: UtcMillis) -> Vec<Row> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let parsed = serde_json::from_str::<Value>(line)
                .map_err(|e| format!("not JSON: {e}"))
                .and_then(|value| {
                    Contact::from_json(value, now)
                        .map_err(|e| format!("{}: {}", e.field, e.message))
                });
            (index as u64 + 1, parsed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UtcMillis = UtcMillis::from_millis(1_700_000_000_000);

    #[test]
    fn csv_rows_keep_their_line_numbers_and_bad_rows_do_not_stop_good_ones() {
        let text =
            "id,name,email,tier\nc1,Ada,ada@example.com,gold\n,No Id,,\nc3,\"Grace, Dr\",,silver\n";
        let rows = parse_csv(text, NOW).unwrap();
        assert_eq!(rows.len(), 3);
        let (line, first) = &rows[0];
        assert_eq!(*line, 2);
        let first = first.as_ref().unwrap();
        assert_eq!(first.email.as_deref(), Some("ada@example.com"));
        assert_eq!(first.attributes["tier"], "gold");
        assert_eq!(rows[1].0, 3);
        assert!(rows[1].1.as_ref().unwrap_err().starts_with("id"));
        assert_eq!(
            rows[2].1.as_ref().unwrap().name.as_deref(),
            Some("Grace, Dr")
        );
        assert!(
            parse_csv("name\nx\n", NOW)
                .unwrap_err()
                .contains("no id column")
        );
    }

    #[test]
    fn jsonl_rows_name_their_line() {
        let text = "{\"id\":\"c1\"}\n\nnot json\n{\"id\":\"c4\",\"extra\":1}\n";
        let rows = parse_jsonl(text, NOW);
        let lines: Vec<u64> = rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [1, 3, 4]);
        assert!(rows[0].1.is_ok());
        assert!(rows[1].1.as_ref().unwrap_err().starts_with("not JSON"));
        assert!(rows[2].1.is_err());
    }
}
