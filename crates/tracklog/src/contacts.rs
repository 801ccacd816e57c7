//! `tracklog import contacts` and `tracklog contact export|erase`.
//!
//! Parsing a file is pure ([`parse_csv`], [`parse_jsonl`]): every row becomes
//! a contact or an error naming its line, so one bad row never stops the
//! good ones.

use std::path::Path;

use anyhow::{Context, anyhow};
use serde_json::{Map, Value};
use tracklog_domain::contact::Contact;
use tracklog_domain::ids::{ContactId, OrgId};
use tracklog_domain::time::UtcMillis;
use tracklog_server::services::{Actor, portals};
use tracklog_store::Stores;

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

/// Contacts written per store call.
const CHUNK: usize = 1_000;

/// Imports a file, showing progress; prints each bad row with its line and
/// returns (imported, refused).
pub async fn import(stores: &Stores, org: OrgId, path: &Path) -> anyhow::Result<(usize, usize)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let now = UtcMillis::now();
    let rows = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => parse_csv(&text, now).map_err(|e| anyhow!("{}: {e}", path.display()))?,
        Some("jsonl" | "ndjson") => parse_jsonl(&text, now),
        _ => return Err(anyhow!("{}: use a .csv or .jsonl file", path.display())),
    };
    let bar = indicatif::ProgressBar::new(rows.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{wide_bar} {pos}/{len} contacts ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut imported, mut refused) = (0, 0);
    let mut batch = Vec::with_capacity(CHUNK);
    for (line, parsed) in rows {
        match parsed {
            Ok(contact) => batch.push(contact),
            Err(message) => {
                refused += 1;
                bar.suspend(|| eprintln!("{}:{line}: {message}", path.display()));
            }
        }
        if batch.len() == CHUNK {
            imported += batch.len();
            stores
                .portals
                .upsert_contacts(org, std::mem::take(&mut batch))
                .await?;
            bar.set_position((imported + refused) as u64);
        }
    }
    imported += batch.len();
    stores.portals.upsert_contacts(org, batch).await?;
    bar.finish_and_clear();
    Ok((imported, refused))
}

pub fn contact_id(text: &str) -> anyhow::Result<ContactId> {
    ContactId::parse(text).map_err(|e| anyhow!("contact id {e}"))
}

/// Prints everything held about a contact as JSON (audited as an export).
pub async fn export(stores: &Stores, org: OrgId, id: &ContactId) -> anyhow::Result<Value> {
    Ok(portals::export_contact(stores, org, &Actor::cli(), id).await?)
}

/// Erases a contact (audited); returns what went.
pub async fn erase(stores: &Stores, org: OrgId, id: &ContactId) -> anyhow::Result<Value> {
    let erasure = portals::erase_contact(stores, org, &Actor::cli(), id).await?;
    Ok(serde_json::to_value(erasure)?)
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
