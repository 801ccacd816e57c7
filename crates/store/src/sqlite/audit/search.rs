//! How a search of the activity log becomes SQL: the filter as a WHERE
//! clause of bound values, free text quoted for FTS5, and where the rows
//! come from ([`Source`]), chosen by how many records match.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params};
use tracklog_domain::audit::reports::{PRODUCT_PREFIXES, Predicate};
use tracklog_domain::ids::OrgId;

use super::super::sql_error;
use crate::{AuditFilter, StoreError};

/// A WHERE clause and its bound values. User text is only ever bound.
#[derive(Default)]
pub(super) struct Where {
    pub clauses: Vec<String>,
    pub values: Vec<SqlValue>,
}

impl Where {
    pub fn push(&mut self, clause: &str, values: impl IntoIterator<Item = SqlValue>) {
        self.clauses.push(clause.to_owned());
        self.values.extend(values);
    }

    fn text(&mut self, column: &str, value: &Option<String>) {
        if let Some(value) = value {
            self.push(&format!("{column} = ?"), [SqlValue::Text(value.clone())]);
        }
    }

    fn in_list(&mut self, expression: &str, negate: bool, items: &[&str]) {
        if items.is_empty() {
            return;
        }
        let marks = vec!["?"; items.len()].join(", ");
        let not = if negate { "NOT " } else { "" };
        self.push(
            &format!("{expression} {not}IN ({marks})"),
            items.iter().map(|i| SqlValue::Text(i.to_ascii_lowercase())),
        );
    }

    pub fn sql(&self) -> String {
        self.clauses.join(" AND ")
    }
}

/// Quotes free text for FTS5 so that nothing the user types is query
/// syntax: each word becomes a quoted phrase, all of which must appear.
pub(crate) fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    if terms.is_empty() {
        None
    } else {
        Some(terms.join(" AND "))
    }
}

fn predicate_sql(predicate: &Predicate, org_sign_in: &[String], w: &mut Where) {
    let mut lower_ops: Vec<String> = predicate.operations.iter().map(|o| o.to_string()).collect();
    if predicate.org_sign_in_operations && !lower_ops.is_empty() {
        lower_ops.extend(org_sign_in.iter().cloned());
    }
    if !lower_ops.is_empty() {
        let marks = vec!["?"; lower_ops.len()].join(", ");
        w.push(
            &format!("operation IN ({marks})"),
            lower_ops.into_iter().map(SqlValue::Text),
        );
    }
    if !predicate.operation_prefixes.is_empty() {
        let ors: Vec<String> = predicate
            .operation_prefixes
            .iter()
            .map(|p| format!("substr(operation, 1, {}) = ?", p.chars().count()))
            .collect();
        w.push(
            &format!("({})", ors.join(" OR ")),
            predicate
                .operation_prefixes
                .iter()
                .map(|p| SqlValue::Text((*p).to_owned())),
        );
    }
    if predicate.has_entity {
        w.push("(entity_name IS NOT NULL AND entity_name <> '')", []);
    }
    w.in_list("lower(entity_name)", false, predicate.entities);
    if !predicate.not_entities.is_empty() {
        let marks = vec!["?"; predicate.not_entities.len()].join(", ");
        w.push(
            &format!("(entity_name IS NULL OR lower(entity_name) NOT IN ({marks}))"),
            predicate
                .not_entities
                .iter()
                .map(|e| SqlValue::Text(e.to_ascii_lowercase())),
        );
    }
    if let Some(custom) = predicate.custom_entity {
        // `reports::is_custom`: a publisher prefix that is not the product's.
        let product: Vec<String> = PRODUCT_PREFIXES
            .iter()
            .map(|p| format!("substr(lower(entity_name), 1, {}) = ?", p.chars().count()))
            .collect();
        w.push(
            &format!(
                "(entity_name IS NOT NULL AND (instr(entity_name, '_') > 0 AND NOT ({})) = ?)",
                product.join(" OR ")
            ),
            PRODUCT_PREFIXES
                .iter()
                .map(|p| SqlValue::Text(p.to_ascii_lowercase()))
                .chain([SqlValue::Integer(i64::from(custom))]),
        );
    }
    w.in_list("lower(service_name)", false, predicate.services);
}

/// Where the rows of a search come from. Below
/// [`SqliteOptions::audit_fts_driven_below`](super::SqliteOptions) free-text
/// matches (20,000 by default), a search starts from the FTS index: it looks
/// up each match, sorts, and takes the page. From that many on, it walks the
/// time-ordered index and keeps the rows that match, which reaches a page
/// after about `page × rows ÷ matches` rows. Either way the work is bounded
/// by about that many rows.
pub(super) enum Source {
    /// `audit_log` alone, through whichever index suits the filter.
    Log,
    /// Free text with few matches: FTS5's matches joined to their rows.
    FtsDriven(String),
    /// Free text with many matches: `audit_log` in time order, each row
    /// checked against FTS5's matches.
    FtsFiltered(String),
}

impl Source {
    /// Where a count of `filter` reads from. A count visits every match
    /// whatever the plan, and visiting them in FTS5's rowid order (which is
    /// the table's) is cheaper than probing each row of the org against a
    /// list of them, so free text is always FTS-driven here.
    pub fn for_count(filter: &AuditFilter) -> Self {
        match filter.q.as_deref().and_then(fts_query) {
            Some(query) => Source::FtsDriven(query),
            None => Source::Log,
        }
    }

    /// Where a page of `filter` reads from, asking FTS5 for at most `below`
    /// matches to tell few from many.
    pub fn for_page(
        conn: &Connection,
        filter: &AuditFilter,
        below: i64,
    ) -> Result<Self, StoreError> {
        let Some(query) = filter.q.as_deref().and_then(fts_query) else {
            return Ok(Source::Log);
        };
        let matches: i64 = conn
            .prepare_cached(
                "SELECT count(*) FROM (SELECT 1 FROM audit_fts WHERE audit_fts MATCH ?1 LIMIT ?2)",
            )
            .and_then(|mut s| s.query_row(params![query, below], |r| r.get(0)))
            .map_err(fts_or_sql)?;
        Ok(if matches < below {
            Source::FtsDriven(query)
        } else {
            Source::FtsFiltered(query)
        })
    }

    /// The FROM clause, and the match against FTS5 added to `w`. The
    /// CROSS JOIN fixes FTS5 as the outer loop; `audit_log`'s columns stay
    /// unqualified because FTS5's only column is `body`.
    pub fn from(&self, w: &mut Where) -> &'static str {
        match self {
            Source::Log => "audit_log",
            Source::FtsDriven(query) => {
                w.push("audit_fts MATCH ?", [SqlValue::Text(query.clone())]);
                "audit_fts CROSS JOIN audit_log ON audit_log.rid = audit_fts.rowid"
            }
            Source::FtsFiltered(query) => {
                w.push(
                    "rid IN (SELECT rowid FROM audit_fts WHERE audit_fts MATCH ?)",
                    [SqlValue::Text(query.clone())],
                );
                "audit_log"
            }
        }
    }
}

/// The filter as SQL over `audit_log`'s columns, without the free text,
/// which [`Source`] adds.
pub(super) fn filter_sql(org: OrgId, filter: &AuditFilter) -> Where {
    let mut w = Where::default();
    w.push("org_id = ?", [SqlValue::Integer(org.0)]);
    if let Some(from) = filter.from {
        w.push("creation_time >= ?", [SqlValue::Integer(from.as_millis())]);
    }
    if let Some(to) = filter.to {
        w.push("creation_time < ?", [SqlValue::Integer(to.as_millis())]);
    }
    w.text("user_name", &filter.user);
    w.text("operation", &filter.operation);
    if let Some(category) = filter.category {
        w.push(
            "category = ?",
            [SqlValue::Text(category.as_str().to_owned())],
        );
    }
    w.text("entity_name", &filter.entity_name);
    w.text("entity_id", &filter.entity_id);
    w.text("result_status", &filter.result_status);
    w.text("client_ip", &filter.client_ip);
    if let Some(predicate) = &filter.report {
        predicate_sql(predicate, &filter.sign_in_operations, &mut w);
    }
    if let Some(until) = filter.until_sequence {
        w.push("seq <= ?", [SqlValue::Integer(until)]);
    }
    w
}

/// Rewrites anonymous `?` placeholders after `?1` into numbered ones (`?2`,
/// `?3`, ...) so a statement can mix both.
pub(super) fn renumber(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut next = 2;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' {
            if chars.peek().is_some_and(char::is_ascii_digit) {
                out.push('?');
                continue;
            }
            out.push_str(&format!("?{next}"));
            next += 1;
        } else {
            out.push(c);
        }
    }
    out
}

/// An FTS5 syntax error cannot come from user text (it is quoted), but map
/// it to a client error rather than a 500 all the same.
pub(super) fn fts_or_sql(error: rusqlite::Error) -> StoreError {
    let text = error.to_string();
    if text.contains("fts5") {
        StoreError::BadQuery(text)
    } else {
        sql_error(error)
    }
}
