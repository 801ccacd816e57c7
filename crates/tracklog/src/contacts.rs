//! `tracklog import contacts` and `tracklog contact export|erase`.
//!
//! Parsing a file is pure and lives in the domain
//! ([`tracklog_domain::contact::import`]): every row becomes a contact or an
//! error naming its line, so one bad row never stops the good ones.

use std::path::Path;

use anyhow::{Context, anyhow};
use serde_json::Value;
use tracklog_domain::contact::import::{parse_csv, parse_jsonl};
use tracklog_domain::ids::{ContactId, OrgId};
use tracklog_domain::time::UtcMillis;
use tracklog_server::services::{Actor, portals};
use tracklog_store::Stores;

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
    let total = rows.len();
    let (mut imported, mut refused) = (0, 0);
    let mut batch = Vec::with_capacity(CHUNK);
    let mut first_line = None;
    let mut rows = rows.into_iter().peekable();
    while let Some((line, parsed)) = rows.next() {
        match parsed {
            Ok(contact) => {
                first_line.get_or_insert(line);
                batch.push(contact);
            }
            Err(message) => {
                refused += 1;
                bar.suspend(|| eprintln!("{}:{line}: {message}", path.display()));
            }
        }
        if batch.len() == CHUNK || (rows.peek().is_none() && !batch.is_empty()) {
            let written = batch.len();
            if let Err(error) = stores
                .portals
                .upsert_contacts(org, std::mem::take(&mut batch))
                .await
            {
                bar.finish_and_clear();
                // A chunk is one transaction: it is in whole or not at all.
                return Err(anyhow!(
                    "{}: {imported} of {total} rows imported; the store refused the rows \
                     from line {} on: {error}. Contacts are upserted, so running the \
                     same import again (once the cause is fixed) completes it",
                    path.display(),
                    first_line.unwrap_or(line)
                ));
            }
            imported += written;
            first_line = None;
            bar.set_position((imported + refused) as u64);
        }
    }
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
