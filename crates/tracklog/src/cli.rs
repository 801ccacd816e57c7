//! Command-line parsing and the subcommands.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use tracklog_domain::ids::{OrgId, OrgName};
use tracklog_server::config::{Config, ConfigOverrides, LogFormat};
use tracklog_store::{KeySlot, Stores};

use crate::cli_audit::{AuditCommand, audit_command};
use crate::cli_manage::manage;

#[derive(Debug, Parser)]
#[command(
    name = "tracklog",
    version,
    about = "Tracklog: portal journeys, channel analytics and compliance activity logs in one server"
)]
pub struct Args {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

impl Args {
    /// Whether the command keeps network connections of its own open (the
    /// server, the benchmark), rather than only writing its output.
    pub fn uses_sockets(&self) -> bool {
        matches!(self.command, Command::Serve { .. } | Command::Bench(_))
    }
}

#[derive(Debug, ClapArgs)]
struct GlobalArgs {
    /// The data directory [default: ./tracklog-data; env: TRACKLOG_DATA_DIR]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// A TOML configuration file.
    #[arg(long, global = true, env = "TRACKLOG_CONFIG")]
    config: Option<PathBuf>,
    /// Log format: text or json [env: TRACKLOG_LOG_FORMAT]
    #[arg(long, global = true)]
    log_format: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080; env: TRACKLOG_LISTEN]
        #[arg(long)]
        listen: Option<String>,
    },
    /// Manage access policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Mint a SAS token for a policy.
    Sas {
        #[arg(long)]
        policy: String,
        /// The URI the token is for; it covers every path under it.
        #[arg(long)]
        resource: String,
        /// Lifetime: ISO 8601 (PT1H) or short (1h, 30m, 7d).
        #[arg(long, default_value = "1h")]
        ttl: String,
        #[arg(long, value_enum, default_value_t = KeyChoice::Primary)]
        key: KeyChoice,
    },
    /// Manage people who sign in to the web UI.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage organisations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// The activity log: export and verify.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Import records from a file.
    #[command(subcommand)]
    Import(ImportCommand),
    /// A contact's data: export or erase it (both are audited).
    #[command(subcommand)]
    Contact(ContactCommand),
    /// Channel analytics: rebuild the session facts and pre-aggregates.
    #[command(subcommand)]
    Analytics(AnalyticsCommand),
    /// Benchmark Tracklog side by side with ClickHouse and PostgreSQL.
    Bench(tracklog_bench::BenchArgs),
    /// Check every file of the data directory: the database's integrity,
    /// every frame of the log, the materialisers' positions and each org's
    /// activity log. Reads only; exits 1 when it finds a problem.
    Doctor {
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImportCommand {
    /// Upsert contacts from a .csv (header with an `id` column; `name`,
    /// `email`, other columns become attributes) or a .jsonl file (one API
    /// contact per line). Bad rows are reported by line; good rows are kept.
    Contacts {
        file: PathBuf,
        #[arg(long, default_value = "default")]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AnalyticsCommand {
    /// Re-derive every session's facts and the 15-minute pre-aggregates from
    /// the raw conversations, sessions, participants and KPI events.
    Rebuild {
        #[arg(long, default_value = "default")]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ContactCommand {
    /// Print everything held about a contact, as JSON.
    Export {
        id: String,
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// Erase a contact's interactions, session links, cases and profile.
    Erase {
        id: String,
        #[arg(long, default_value = "default")]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Create a policy and print its keys.
    Create {
        name: String,
        /// Comma-separated: manage, write, read.
        #[arg(long)]
        rights: String,
        /// Limit the policy to one portal.
        #[arg(long)]
        portal: Option<String>,
        /// Limit the policy to one channel provider.
        #[arg(long)]
        provider: Option<String>,
        #[arg(long, default_value = "default")]
        org: String,
        /// Print JSON with primary_key and secondary_key.
        #[arg(long)]
        json: bool,
    },
    /// List an org's policies (never their keys).
    List {
        #[arg(long, default_value = "default")]
        org: String,
        #[arg(long)]
        json: bool,
    },
    /// Replace one key; the other keeps working.
    Rotate {
        name: String,
        #[arg(long, value_enum, default_value_t = KeyChoice::Primary)]
        key: KeyChoice,
        #[arg(long)]
        json: bool,
    },
    /// Delete a policy: its credentials stop working at once.
    Delete { name: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum KeyChoice {
    Primary,
    Secondary,
}

impl From<KeyChoice> for KeySlot {
    fn from(choice: KeyChoice) -> Self {
        match choice {
            KeyChoice::Primary => KeySlot::Primary,
            KeyChoice::Secondary => KeySlot::Secondary,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user. The password is read from standard input when it is not a
    /// terminal; otherwise one is generated and printed once.
    Add {
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// List an org's users.
    List {
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// Disable a user: they cannot sign in, and their sessions end at once.
    Disable {
        name: String,
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// Enable a disabled user again.
    Enable {
        name: String,
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// Change a user's role (admin, supervisor, agent or auditor).
    Role {
        name: String,
        role: String,
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// Set a user's password (read from standard input when it is not a
    /// terminal; otherwise generated and printed once). Their sessions end.
    ResetPassword {
        name: String,
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// Remove a user; their sessions end at once.
    Remove {
        name: String,
        #[arg(long, default_value = "default")]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum OrgCommand {
    /// Create an organisation (a tenant).
    Create { name: String },
    /// List organisations.
    List,
}

fn load_config(global: &GlobalArgs, listen: Option<String>) -> anyhow::Result<Config> {
    let overrides = ConfigOverrides {
        listen,
        data_dir: global.data_dir.clone(),
        log_format: global.log_format.clone(),
    };
    Ok(Config::load(global.config.as_deref(), &overrides)?)
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs one subcommand.
pub async fn execute(args: Args) -> anyhow::Result<()> {
    let listen = match &args.command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let mut config = load_config(&args.global, listen)?;
    if !matches!(args.command, Command::Serve { .. }) {
        // Only the server checks the database before it opens it; a
        // command beside it, or `doctor`, must not pay for it each time.
        config.storage.check_at_start = false;
    }
    match args.command {
        Command::Serve { .. } => {
            init_logging(config.log_format, "info");
            serve(config).await
        }
        Command::Bench(bench) => {
            init_logging(config.log_format, "warn");
            tracklog_bench::run(bench).await
        }
        Command::Doctor { json } => {
            init_logging(config.log_format, "warn");
            crate::doctor::run(&config, json).await
        }
        Command::Audit(audit) if audit.needs_no_store() => {
            init_logging(config.log_format, "warn");
            crate::cli_audit::standalone_command(&config, audit)
        }
        command => {
            init_logging(config.log_format, "warn");
            let stores = tracklog_server::open_stores(&config)
                .with_context(|| format!("opening {}", config.data_dir.display()))?;
            let result = match command {
                Command::Audit(audit) => audit_command(&stores, &config, audit).await,
                Command::Import(ImportCommand::Contacts { file, org }) => {
                    match org_id(&stores, &org).await {
                        Ok(org) => crate::contacts::import(&stores, org, &file).await.map(
                            |(imported, refused)| {
                                eprintln!("imported {imported} contacts; {refused} rows refused");
                            },
                        ),
                        Err(e) => Err(e),
                    }
                }
                Command::Contact(command) => contact_command(&stores, command).await,
                Command::Analytics(AnalyticsCommand::Rebuild { org }) => {
                    rebuild_analytics(&stores, &org).await
                }
                command => manage(&stores, command).await,
            };
            stores.lifecycle.close().await;
            result
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Open (and migrate) the store before listening, so a client that sees the
    // address finds a ready server.
    let stores = tracklog_server::open_stores(&config)
        .with_context(|| format!("opening {} (key `data_dir`)", config.data_dir.display()))?;
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            stores.lifecycle.close().await;
            return Err(anyhow!(
                "cannot listen on {} (key `listen`): {error}",
                config.listen
            ));
        }
    };
    let address = listener.local_addr()?;
    println!(
        "tracklog listening on http://{address} with data in {}",
        config.data_dir.display()
    );
    tracklog_server::run_with_stores(config, stores, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

pub(crate) async fn org_id(stores: &Stores, name: &str) -> anyhow::Result<OrgId> {
    let name = OrgName::parse(name).map_err(|e| anyhow!("org name {e}"))?;
    stores
        .meta
        .org_by_name(&name)
        .await?
        .map(|org| org.id)
        .ok_or_else(|| {
            anyhow!("there is no org named {name}; create it with `tracklog org create {name}`")
        })
}

async fn rebuild_analytics(stores: &Stores, org: &str) -> anyhow::Result<()> {
    let org = org_id(stores, org).await?;
    let bar = indicatif::ProgressBar::new(0).with_style(indicatif::ProgressStyle::with_template(
        "rebuilding {bar:40} {pos}/{len} sessions and agents ({eta} left)",
    )?);
    let shown = bar.clone();
    let summary = stores
        .channel
        .rebuild_analytics(
            org,
            Box::new(move |done, total| {
                shown.set_length(total as u64);
                shown.set_position(done as u64);
            }),
        )
        .await?;
    bar.finish_and_clear();
    eprintln!(
        "rebuilt {} sessions and {} agents into {} buckets",
        summary.sessions, summary.agents, summary.buckets
    );
    Ok(())
}

async fn contact_command(stores: &Stores, command: ContactCommand) -> anyhow::Result<()> {
    let (id, org, erase) = match command {
        ContactCommand::Export { id, org } => (id, org, false),
        ContactCommand::Erase { id, org } => (id, org, true),
    };
    let org = org_id(stores, &org).await?;
    let id = crate::contacts::contact_id(&id)?;
    let value = if erase {
        crate::contacts::erase(stores, org, &id).await?
    } else {
        crate::contacts::export(stores, org, &id).await?
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}
