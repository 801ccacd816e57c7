//! Command-line parsing and the subcommands.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use serde_json::json;
use tracklog_domain::audit::format::Format;
use tracklog_domain::auth::{Rights, make_sas_token};
use tracklog_domain::ids::{OrgId, OrgName, PolicyName, PortalId, UserName};
use tracklog_domain::time::{UtcMillis, parse_duration};
use tracklog_domain::user::Role;
use tracklog_server::api::audit::FilterParams;
use tracklog_server::config::{Config, ConfigOverrides, LogFormat};
use tracklog_server::services::{Actor, audit, policies, selfaudit, users};
use tracklog_store::{KeySlot, Policy, Stores};

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
enum Command {
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
enum ImportCommand {
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
enum AnalyticsCommand {
    /// Re-derive every session's facts and the 15-minute pre-aggregates from
    /// the raw conversations, sessions, participants and KPI events.
    Rebuild {
        #[arg(long, default_value = "default")]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
enum ContactCommand {
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
enum AuditCommand {
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
struct AuditFilterArgs {
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

#[derive(Debug, Subcommand)]
enum PolicyCommand {
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
enum KeyChoice {
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
enum UserCommand {
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
enum OrgCommand {
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

async fn org_id(stores: &Stores, name: &str) -> anyhow::Result<OrgId> {
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

fn policy_name(text: &str) -> anyhow::Result<PolicyName> {
    PolicyName::parse(text).map_err(|e| anyhow!("policy name {e}"))
}

/// The named policy, in whichever org holds it.
async fn existing_policy(stores: &Stores, name: &str) -> anyhow::Result<Policy> {
    let name = policy_name(name)?;
    stores
        .meta
        .policy(&name)
        .await?
        .ok_or_else(|| anyhow!("there is no policy named {name}"))
}

fn print_policy_keys(policy: &Policy, as_json: bool) {
    let rights: Vec<&str> = policy.rights.to_vec().iter().map(|r| r.as_str()).collect();
    if as_json {
        println!(
            "{}",
            json!({
                "name": policy.name.as_str(),
                "rights": rights,
                "portal": policy.portal.as_ref().map(PortalId::as_str),
                "provider": policy.provider,
                "primary_key": policy.primary_key.expose(),
                "secondary_key": policy.secondary_key.expose(),
            })
        );
    } else {
        println!("policy:        {}", policy.name);
        println!("rights:        {}", rights.join(","));
        if let Some(portal) = &policy.portal {
            println!("portal:        {portal}");
        }
        println!("primary key:   {}", policy.primary_key.expose());
        println!("secondary key: {}", policy.secondary_key.expose());
        println!("Keep these keys secret; `tracklog policy rotate` replaces one.");
    }
}

/// Reads a password from piped standard input, or generates one.
fn user_name(name: String) -> anyhow::Result<UserName> {
    UserName::parse(name).map_err(|e| anyhow!("user name {e}"))
}

fn password_from_stdin() -> anyhow::Result<(String, bool)> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut text = String::new();
        stdin.lock().take(4096).read_to_string(&mut text)?;
        let line = text.lines().next().unwrap_or("").to_owned();
        if !line.is_empty() {
            return Ok((line, false));
        }
    }
    Ok((tracklog_server::ui::session::random_token(), true))
}

async fn manage(stores: &Stores, command: Command) -> anyhow::Result<()> {
    let actor = Actor::cli();
    match command {
        Command::Serve { .. }
        | Command::Bench(_)
        | Command::Doctor { .. }
        | Command::Audit(_)
        | Command::Import(_)
        | Command::Analytics(_)
        | Command::Contact(_) => {
            unreachable!("handled by execute")
        }
        Command::Policy(PolicyCommand::Create {
            name,
            rights,
            portal,
            provider,
            org,
            json,
        }) => {
            let org = org_id(stores, &org).await?;
            let new = policies::NewPolicy {
                name: policy_name(&name)?,
                rights: Rights::parse_list(&rights).map_err(|e| anyhow!("--rights: {e}"))?,
                portal: portal
                    .map(PortalId::parse)
                    .transpose()
                    .map_err(|e| anyhow!("--portal: {e}"))?,
                provider,
            };
            let policy = policies::create(stores, org, &actor, new).await?;
            print_policy_keys(&policy, json);
        }
        Command::Policy(PolicyCommand::List { org, json }) => {
            let org = org_id(stores, &org).await?;
            let list = stores.meta.list_policies(org).await?;
            if json {
                let items: Vec<_> = list
                    .iter()
                    .map(|p| {
                        json!({
                            "name": p.name.as_str(),
                            "rights": p.rights.to_vec().iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                            "portal": p.portal.as_ref().map(PortalId::as_str),
                            "provider": p.provider,
                            "created_at": p.created_at.to_rfc3339(),
                        })
                    })
                    .collect();
                println!("{}", json!({ "items": items }));
            } else if list.is_empty() {
                println!(
                    "no policies; create one with `tracklog policy create NAME --rights manage,write,read`"
                );
            } else {
                println!("{:<24} {:<20} {:<16} created", "name", "rights", "portal");
                for p in list {
                    let rights: Vec<&str> = p.rights.to_vec().iter().map(|r| r.as_str()).collect();
                    println!(
                        "{:<24} {:<20} {:<16} {}",
                        p.name,
                        rights.join(","),
                        p.portal.as_ref().map_or("-", PortalId::as_str),
                        p.created_at
                    );
                }
            }
        }
        Command::Policy(PolicyCommand::Rotate { name, key, json }) => {
            let existing = existing_policy(stores, &name).await?;
            let policy =
                policies::rotate(stores, existing.org, &actor, &existing.name, key.into()).await?;
            print_policy_keys(&policy, json);
        }
        Command::Policy(PolicyCommand::Delete { name }) => {
            let existing = existing_policy(stores, &name).await?;
            policies::delete(stores, existing.org, &actor, &existing.name).await?;
            println!("deleted policy {}", existing.name);
        }
        Command::Sas {
            policy,
            resource,
            ttl,
            key,
        } => {
            let policy = existing_policy(stores, &policy).await?;
            let ttl_ms = parse_duration(&ttl)
                .filter(|ms| *ms > 0)
                .ok_or_else(|| anyhow!("--ttl: {ttl:?} is not a duration such as 1h or PT1H"))?;
            let expiry = (UtcMillis::now().as_millis() + ttl_ms) / 1000;
            let key = match key {
                KeyChoice::Primary => &policy.primary_key,
                KeyChoice::Secondary => &policy.secondary_key,
            };
            println!("{}", make_sas_token(&resource, &policy.name, key, expiry));
        }
        Command::User(UserCommand::Add { name, role, org }) => {
            let org = org_id(stores, &org).await?;
            let role: Role = role.parse().map_err(|e: String| anyhow!("--role: {e}"))?;
            let name = UserName::parse(name).map_err(|e| anyhow!("user name {e}"))?;
            let (password, generated) = password_from_stdin()?;
            let user = users::add(stores, org, &actor, name, role, password.clone()).await?;
            println!("added user {} ({})", user.name, user.role.as_str());
            if generated {
                println!("password: {password}");
                println!("It is shown only now.");
            }
        }
        Command::User(UserCommand::List { org }) => {
            let org = org_id(stores, &org).await?;
            println!(
                "{:<24} {:<11} {:<9} {:<25} CREATED",
                "NAME", "ROLE", "STATUS", "LAST SIGN-IN"
            );
            for user in stores.meta.list_users(org).await? {
                println!(
                    "{:<24} {:<11} {:<9} {:<25} {}",
                    user.name.as_str(),
                    user.role.as_str(),
                    if user.disabled { "disabled" } else { "active" },
                    user.last_sign_in
                        .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339()),
                    user.created_at.to_rfc3339()
                );
            }
        }
        Command::User(UserCommand::Disable { name, org }) => {
            let (org, name) = (org_id(stores, &org).await?, user_name(name)?);
            let update = users::UserUpdate {
                disabled: Some(true),
                ..Default::default()
            };
            users::update(stores, org, &actor, &name, update).await?;
            println!("disabled {name}; their sessions have ended");
        }
        Command::User(UserCommand::Enable { name, org }) => {
            let (org, name) = (org_id(stores, &org).await?, user_name(name)?);
            let update = users::UserUpdate {
                disabled: Some(false),
                ..Default::default()
            };
            users::update(stores, org, &actor, &name, update).await?;
            println!("enabled {name}");
        }
        Command::User(UserCommand::Role { name, role, org }) => {
            let (org, name) = (org_id(stores, &org).await?, user_name(name)?);
            let role: Role = role.parse().map_err(|e: String| anyhow!("role: {e}"))?;
            let update = users::UserUpdate {
                role: Some(role),
                ..Default::default()
            };
            let user = users::update(stores, org, &actor, &name, update).await?;
            println!("{name} is now {}", user.role.as_str());
        }
        Command::User(UserCommand::ResetPassword { name, org }) => {
            let (org, name) = (org_id(stores, &org).await?, user_name(name)?);
            let (password, generated) = password_from_stdin()?;
            let password = (!generated).then_some(password);
            let made = users::reset_password(stores, org, &actor, &name, password).await?;
            println!("reset the password of {name}; their sessions have ended");
            if let Some(password) = made {
                println!("password: {password}");
                println!("It is shown only now.");
            }
        }
        Command::User(UserCommand::Remove { name, org }) => {
            let (org, name) = (org_id(stores, &org).await?, user_name(name)?);
            users::remove(stores, org, &actor, &name).await?;
            println!("removed {name}");
        }
        Command::Org(OrgCommand::Create { name }) => {
            let name = OrgName::parse(name).map_err(|e| anyhow!("org name {e}"))?;
            if stores.meta.org_by_name(&name).await?.is_some() {
                bail!("an org named {name} already exists");
            }
            let org = stores.meta.ensure_org(&name).await?;
            selfaudit::record(
                stores,
                org.id,
                &actor,
                selfaudit::Action {
                    operation: "CreateOrganization",
                    entity_name: "organization",
                    entity_id: org.name.as_str(),
                    success: true,
                    fields: None,
                },
            )
            .await;
            println!("created org {name}");
        }
        Command::Org(OrgCommand::List) => {
            for org in stores.meta.list_orgs().await? {
                println!("{:<24} {}", org.name, org.created_at);
            }
        }
    }
    Ok(())
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

async fn audit_command(
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
