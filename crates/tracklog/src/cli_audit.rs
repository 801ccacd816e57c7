//! `tracklog audit`: export the activity log with a progress bar, set an
//! org's retention, and verify the chain and its checkpoints.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::{Args as ClapArgs, Subcommand};
use serde_json::json;
use tracklog_domain::audit::format::Format;
use tracklog_domain::ids::OrgId;
use tracklog_server::api::audit::FilterParams;
use tracklog_server::config::Config;
use tracklog_server::services::{Actor, audit, selfaudit};
use tracklog_store::Stores;

use crate::cli::org_id;

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Export the records matching a filter, newest first.
    Export {
        /// csv, jsonl, cef, syslog or ocsf.
        #[arg(long)]
        format: String,
        #[arg(long, default_value = "default")]
        org: String,
        #[command(flatten)]
        filter: Box<AuditFilterArgs>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Set how many days an org keeps its activity log (the server's
    /// `audit.retention_days` when never set); the change is audited.
    Retention {
        #[arg(long, default_value = "default")]
        org: String,
        /// Days to keep, at least 1.
        #[arg(long)]
        days: u32,
    },
    /// Verify the hash chain and the signed checkpoints; exits non-zero at
    /// the first break, naming it.
    Verify {
        #[arg(long, default_value = "default")]
        org: String,
        /// First sequence to check.
        #[arg(long)]
        from: Option<i64>,
        /// Last sequence to check.
        #[arg(long)]
        to: Option<i64>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The search filter of `audit export`, as in `GET /api/v1/audit/search`.
#[derive(Debug, Clone, ClapArgs)]
pub(crate) struct AuditFilterArgs {
    /// Inclusive lower bound on CreationTime, RFC 3339.
    #[arg(long)]
    from: Option<String>,
    /// Exclusive upper bound on CreationTime, RFC 3339.
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    operation: Option<String>,
    #[arg(long)]
    category: Option<String>,
    #[arg(long)]
    entity_name: Option<String>,
    #[arg(long)]
    entity_id: Option<String>,
    #[arg(long)]
    result_status: Option<String>,
    #[arg(long)]
    client_ip: Option<String>,
    /// Free text over Fields and Query.
    #[arg(long)]
    q: Option<String>,
}

impl From<AuditFilterArgs> for FilterParams {
    fn from(args: AuditFilterArgs) -> Self {
        FilterParams {
            from: args.from,
            to: args.to,
            user: args.user,
            operation: args.operation,
            category: args.category,
            entity_name: args.entity_name,
            entity_id: args.entity_id,
            result_status: args.result_status,
            client_ip: args.client_ip,
            q: args.q,
        }
    }
}

pub(crate) async fn audit_command(
    stores: &Stores,
    config: &Config,
    command: AuditCommand,
) -> anyhow::Result<()> {
    match command {
        AuditCommand::Export {
            format,
            org,
            filter,
            out,
        } => {
            let org_name = org.clone();
            let org = org_id(stores, &org).await?;
            let parsed: Format = format
                .parse()
                .map_err(|e: String| anyhow!("--format: {e}"))?;
            let params = FilterParams::from(*filter);
            let filter = params
                .parse()
                .map_err(|e| anyhow!("{}: {e}", e_field(&e)))?;
            let written =
                export(stores, org, &org_name, parsed, &format, params, filter, out).await?;
            eprintln!("exported {written} records");
        }
        AuditCommand::Retention { org, days } => {
            if days == 0 {
                bail!("--days must be at least 1");
            }
            let id = org_id(stores, &org).await?;
            let old = stores.audit.retention_days(id).await?;
            stores.audit.set_retention_days(id, Some(days)).await?;
            selfaudit::record(
                stores,
                id,
                &Actor::cli(),
                selfaudit::Action {
                    operation: "UpdateAuditRetention",
                    entity_name: "audit_settings",
                    entity_id: "retention_days",
                    success: true,
                    fields: Some(json!({"retention_days": {"old": old, "new": days}})),
                },
            )
            .await;
            println!("{org} keeps its activity log for {days} days");
        }
        AuditCommand::Verify {
            org,
            from,
            to,
            json,
        } => {
            let id = org_id(stores, &org).await?;
            let key = audit::load_or_create_key(&config.data_dir)?;
            let result = audit::verify(stores, &key.verifying_key(), id, &org, from, to).await?;
            if json {
                println!("{}", serde_json::to_string(&result)?);
            } else if result.ok {
                println!(
                    "ok: {} records and {} checkpoints verified, up to sequence {}",
                    result.records_checked,
                    result.checkpoints_checked,
                    result.last_sequence.map_or("-".into(), |s| s.to_string())
                );
            }
            if let Some(found) = result.first_break {
                match found.object {
                    Some(object) if found.sequence == 0 => {
                        bail!("verification failed in {object}: {}", found.message)
                    }
                    _ => bail!(
                        "verification failed at sequence {}: {}",
                        found.sequence,
                        found.message
                    ),
                }
            }
        }
    }
    Ok(())
}

fn e_field(error: &tracklog_server::error::ApiError) -> String {
    match error {
        tracklog_server::error::ApiError::BadRequest {
            field: Some(field), ..
        } => format!("--{}", field.replace('_', "-")),
        _ => "filter".into(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn export(
    stores: &Stores,
    org: OrgId,
    org_name: &str,
    format: Format,
    format_name: &str,
    params: FilterParams,
    mut filter: tracklog_store::AuditFilter,
    out: Option<PathBuf>,
) -> anyhow::Result<u64> {
    use std::io::Write;
    filter.until_sequence = Some(stores.audit.chain_head(org).await?.map_or(0, |h| h.0));
    let total = stores
        .audit
        .search_audit(org, filter.clone(), 1, None, true)
        .await?
        .count
        .unwrap_or(0);
    audit::record_export(
        stores,
        org,
        &Actor::cli(),
        format_name,
        serde_json::to_value(&params)?,
    )
    .await;
    let mut sink: Box<dyn Write> = match &out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {wide_bar} {pos}/{len} records ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let hostname = org_name.to_owned();
    sink.write_all(format.header().as_bytes())?;
    let mut cursor = None;
    let mut written = 0u64;
    loop {
        let page = stores
            .audit
            .search_audit(org, filter.clone(), 1000, cursor, false)
            .await?;
        for hit in &page.items {
            sink.write_all(
                format
                    .line(&hit.record, &hostname, hit.integrity.as_ref())
                    .as_bytes(),
            )?;
        }
        written += page.items.len() as u64;
        bar.set_position(written);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    sink.flush()?;
    bar.finish_and_clear();
    Ok(written)
}
