//! `tracklog audit`: export the activity log with a progress bar, set an
//! org's retention, verify the chain and its checkpoints, and verify an
//! export against independently kept checkpoints without the data directory
//! or the server ([`standalone_command`]); make and show signing keys.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::{Args as ClapArgs, Subcommand};
use serde_json::json;
use tracklog_domain::audit::format::Format;
use tracklog_domain::audit::standalone;
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;
use tracklog_server::api::audit::FilterParams;
use tracklog_server::config::Config;
use tracklog_server::services::{Actor, audit, selfaudit, signing_key};
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
    /// the first break, naming it. With --export, verify an export against
    /// checkpoints kept outside (the checkpoint file, a SIEM's copy) under a
    /// public key kept outside, trusting nothing in the data directory.
    Verify {
        #[arg(long, default_value = "default")]
        org: String,
        /// First sequence to check.
        #[arg(long, conflicts_with = "export")]
        from: Option<i64>,
        /// Last sequence to check.
        #[arg(long, conflicts_with = "export")]
        to: Option<i64>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// An export in JSON lines, unfiltered (`audit export --format
        /// jsonl`, or `GET /api/v1/audit/export?format=jsonl`); `-` reads
        /// standard input.
        #[arg(long, requires_all = ["public_key", "checkpoints"])]
        export: Option<PathBuf>,
        /// The public key: the JSON of `GET /api/v1/audit/public-key`, its
        /// base64, or the 32 raw bytes.
        #[arg(long, requires = "export")]
        public_key: Option<PathBuf>,
        /// Checkpoint lines as published: `audit.checkpoint_file`, or what
        /// a syslog or webhook forwarder delivered.
        #[arg(long, requires = "export")]
        checkpoints: Option<PathBuf>,
        /// When the export was asked for, RFC 3339 (by your own clock, a
        /// minute early is safe): checkpoints signed later may vouch for
        /// records it could not hold, such as the record of the export.
        #[arg(long, requires = "export")]
        as_of: Option<String>,
    },
    /// Make a new checkpoint signing key in a file that must not exist yet
    /// (mode 0600), for `audit.signing_key_file`; prints its public key.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key of the configured signing key, base64: what
    /// auditors keep to verify checkpoints.
    PublicKey,
}

impl AuditCommand {
    /// Whether the command runs without opening the stores.
    pub(crate) fn needs_no_store(&self) -> bool {
        matches!(
            self,
            AuditCommand::Verify {
                export: Some(_),
                ..
            } | AuditCommand::Keygen { .. }
                | AuditCommand::PublicKey
        )
    }
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
            export: None,
            ..
        } => {
            let id = org_id(stores, &org).await?;
            let key = signing_key::verifying_key_for(config, stores, id).await?;
            let result = audit::verify(stores, &key, id, &org, from, to).await?;
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
        command @ (AuditCommand::Verify { .. }
        | AuditCommand::Keygen { .. }
        | AuditCommand::PublicKey) => standalone_command(config, command)?,
    }
    Ok(())
}

/// The commands that open no store: the standalone verifier, which must not
/// trust the data directory, and the key commands.
pub(crate) fn standalone_command(config: &Config, command: AuditCommand) -> anyhow::Result<()> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    match command {
        AuditCommand::Verify {
            org,
            json,
            export: Some(export),
            public_key: Some(public_key),
            checkpoints: Some(checkpoints),
            as_of,
            ..
        } => {
            let as_of = as_of
                .map(|text| UtcMillis::parse_rfc3339(&text).map(UtcMillis::as_millis))
                .transpose()
                .map_err(|e| anyhow!("--as-of: {e}"))?;
            let key_bytes = std::fs::read(&public_key)
                .with_context(|| format!("reading {}", public_key.display()))?;
            let key = standalone::parse_public_key(&key_bytes)
                .map_err(|e| anyhow!("{}: {e}", public_key.display()))?;
            let kept = std::fs::File::open(&checkpoints)
                .with_context(|| format!("reading {}", checkpoints.display()))?;
            let exported: Box<dyn BufRead> = if export.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::io::BufReader::new(
                    std::fs::File::open(&export)
                        .with_context(|| format!("reading {}", export.display()))?,
                ))
            };
            let report = standalone::verify_export_as_of(
                &key,
                &org,
                std::io::BufReader::new(kept),
                exported,
                as_of,
            )
            .map_err(|e| anyhow!("verification failed: {e}"))?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
                return Ok(());
            }
            println!(
                "ok: {} records of {} ({} to {}) match {} of {} checkpoints signed by the given key",
                report.records,
                report.org,
                report.first_sequence,
                report.last_sequence,
                report.checkpoints_matched,
                report.checkpoints_read,
            );
            if report.checkpoints_after_export > 0 {
                println!(
                    "note: {} checkpoints signed after --as-of vouch for later records",
                    report.checkpoints_after_export
                );
            }
            if report.uncovered_tail > 0 {
                println!(
                    "note: the last {} records (after sequence {}) are chained but no \
                     checkpoint signs them yet; verify again after the next checkpoint",
                    report.uncovered_tail, report.covered_to
                );
            }
            if !report.missing_checkpoint_numbers.is_empty() {
                println!(
                    "note: checkpoints {:?} are not among the kept lines (a lost delivery, or \
                     lines removed)",
                    report.missing_checkpoint_numbers
                );
            }
            if !report.unreadable_lines.is_empty() {
                println!(
                    "note: lines {:?} of {} name a checkpoint but are not whole (torn by a \
                     crash?) and were skipped",
                    report.unreadable_lines,
                    checkpoints.display()
                );
            }
        }
        AuditCommand::Keygen { out } => {
            let key = signing_key::generate_key_file(&out)?;
            println!("{}", STANDARD.encode(key.verifying_key().to_bytes()));
            eprintln!(
                "wrote the signing key to {}; set audit.signing_key_file to it, and give \
                 auditors the public key printed above",
                out.display()
            );
        }
        AuditCommand::PublicKey => {
            let (key, source) = audit::find_key(config)?;
            println!("{}", STANDARD.encode(key.verifying_key().to_bytes()));
            if source.is_in_data_directory() {
                eprintln!(
                    "note: this key is in the data directory {}; see `audit.signing_key_file`",
                    config.data_dir.display()
                );
            }
        }
        _ => bail!("--export, --public-key and --checkpoints go together"),
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
    // A file is written beside its destination and renamed into place once
    // whole and synced: a full disk or a failure midway leaves no partial
    // export that looks complete (the partial file is removed).
    let mut partial = match &out {
        Some(path) => Some(partial_file(path)?),
        None => None,
    };
    let mut sink: Box<dyn Write + '_> = match &mut partial {
        Some(file) => Box::new(std::io::BufWriter::new(file.as_file_mut())),
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
    let target = out
        .as_ref()
        .map_or_else(|| "standard output".to_owned(), |p| p.display().to_string());
    let failed = || format!("writing {target}");
    sink.write_all(format.header().as_bytes())
        .with_context(failed)?;
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
                    .line_at(
                        &hit.record,
                        &hostname,
                        hit.integrity.as_ref(),
                        hit.stored_at,
                    )
                    .as_bytes(),
            )
            .with_context(failed)?;
        }
        written += page.items.len() as u64;
        bar.set_position(written);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    sink.flush().with_context(failed)?;
    drop(sink);
    bar.finish_and_clear();
    if let (Some(file), Some(path)) = (partial, &out) {
        file.as_file()
            .sync_all()
            .with_context(|| format!("writing {}", path.display()))?;
        file.persist(path)
            .with_context(|| format!("renaming the export to {}", path.display()))?;
    }
    Ok(written)
}

/// A new file in the directory of `path`, removed unless persisted.
fn partial_file(path: &std::path::Path) -> anyhow::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))
}
