//! # tracklog-bench
//!
//! `tracklog bench`: a seeded synthetic workload driven through the real
//! server over HTTP, measured side by side with ClickHouse and PostgreSQL
//! and against the machine's own limits, reported in markdown and JSON.
//!
//! - [`audit`]: the activity-log workload (`--workload audit`): writes,
//!   one user's 30 days, free text, export and verification, in Tracklog
//!   and in each peer.
//! - [`channel`]: the contact-centre workload (`--workload channel`):
//!   conversations through the channel API, the metrics dashboard query,
//!   and the same metrics from raw events in the peers, checked to agree.
//! - [`workload`]: the [`workload::Workload`] trait and the portal workload
//!   (contacts, articles, sessions, interactions, cases).
//! - [`payload`]: the events as API JSON, ClickHouse rows and COPY text.
//! - [`ingest`]: concurrent HTTP clients that post batches and time acks;
//!   [`overload`]: how they wait out a 503 or 429.
//! - [`tracklog`]: the in-process server and its two query targets.
//! - [`queries`]: named query sets and the [`queries::QueryTarget`] trait.
//! - [`peers`]: ClickHouse and PostgreSQL, started and stopped by the bench.
//! - [`machine`]: the machine's description and measured limits.
//! - [`report`] and [`markdown`]: figures, medians, ratios and their rendering.
//! - [`runner`]: one repetition, end to end.

pub mod audit;
pub mod channel;
pub mod ingest;
pub mod lag;
pub mod machine;
pub mod markdown;
pub mod overload;
pub mod payload;
pub mod peers;
pub mod queries;
pub mod report;
pub mod runner;
pub mod stats;
pub mod tracklog;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::machine::Machine;
use crate::peers::PeerKind;
use crate::report::{Report, Settings};
use crate::runner::{Progress, Repetition, RunContext};

/// Options of `tracklog bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Repetitions; the report shows the median of each figure.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Peers to run beside Tracklog: clickhouse, postgres, or none. Both by
    /// default, since the report exists to compare; a requested peer that
    /// cannot start is an error.
    #[arg(long, value_delimiter = ',', default_value = "clickhouse,postgres")]
    pub peers: Vec<PeerKind>,
    /// Concurrent ingest clients.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Queries per query set (random cases).
    #[arg(long, default_value_t = 1_000)]
    pub queries: usize,
    /// Seed of the workload and of the query draw.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Batch sizes of the ingest runs.
    #[arg(long, value_delimiter = ',', default_value = "1,50,500")]
    pub batches: Vec<usize>,
    /// Runs with batches smaller than 500 send at most this many events...
    #[arg(long, default_value_t = 20_000)]
    pub small_batch_events: usize,
    /// ...and stop after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub run_seconds: u64,
    /// The workload to generate: portal, audit (the activity log), or
    /// channel (contact-centre conversations and the metrics dashboard).
    #[arg(long, default_value = "portal")]
    pub workload: String,
    /// Conversations to generate for `--workload channel` (each with one
    /// session and about 20 KPI events); `--events` does not apply to it.
    #[arg(long, default_value_t = 100_000)]
    pub conversations: usize,
    /// Timed runs of the dashboard query per target, for `--workload channel`.
    #[arg(long, default_value_t = 20)]
    pub dashboard_runs: usize,
    /// Where the report goes.
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,
    /// Where data directories and probe files go (the disk being measured).
    /// The system's temporary directory by default.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Datasets of more events than this render each batch's JSON when it
    /// is sent instead of holding every event's JSON in memory.
    #[arg(long, default_value_t = payload::PRERENDER_MAX_EVENTS)]
    pub prerender_max_events: usize,
    /// Keeps Tracklog's data directories when the run ends (their paths are
    /// printed), to inspect what was stored, with `sqlite3` for example.
    #[arg(long)]
    pub keep_data: bool,
}

/// Runs the benchmark and writes the report. Ctrl-C stops it cleanly: the
/// peers are stopped and the temporary data removed.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    tokio::select! {
        result = run_bench(args) => {
            let (markdown, json) = result?;
            println!("report: {}\n        {}", markdown.display(), json.display());
            Ok(())
        }
        _ = tokio::signal::ctrl_c() => bail!("interrupted: peers stopped, temporary data removed"),
    }
}

/// Runs the benchmark; returns the paths of the markdown and JSON reports.
pub async fn run_bench(args: BenchArgs) -> anyhow::Result<(PathBuf, PathBuf)> {
    let settings = settings(&args)?;
    let work_dir = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    tracklog::keep_data_dirs(args.keep_data);
    if args.workload == "audit" {
        let audit = audit::AuditSettings {
            records: args.events,
            repeat: args.repeat,
            queries: args.queries,
            seed: args.seed,
            clients: args.clients,
            peers: settings.peers.clone(),
        };
        return audit::run(&audit, &work_dir, &args.out).await;
    }
    if args.workload == "channel" {
        let channel_settings = channel::ChannelSettings {
            conversations: args.conversations,
            seed: args.seed,
            clients: args.clients,
            dashboard_runs: args.dashboard_runs,
            repeat: args.repeat,
            peers: settings.peers.clone(),
        };
        return channel::run(channel_settings, &work_dir, &args.out, command_line()).await;
    }
    let progress = Progress::new();
    let workload = workload::workloads()
        .into_iter()
        .find(|w| w.name() == args.workload)
        .with_context(|| format!("unknown workload {:?}", args.workload))?;
    progress.say(format!(
        "generating {} events (seed {})",
        args.events, args.seed
    ));
    let dataset = Arc::new(workload.generate(args.events, args.seed));
    let payloads = Arc::new(payload::Payloads::new(
        dataset.clone(),
        args.prerender_max_events,
    ));
    if payloads.on_the_fly() {
        progress.say(format!(
            "more than {} events: each batch's JSON is rendered when it is sent",
            args.prerender_max_events
        ));
    }
    let mut query_rng = StdRng::seed_from_u64(args.seed.rotate_left(32));
    let query_sets: Vec<_> = queries::query_sets()
        .iter()
        .map(|build| build(&dataset, args.queries, &mut query_rng))
        .collect();
    let peers = runner::Peers::start(&settings.peers, &work_dir, &progress).await?;
    let context = RunContext {
        settings: settings.clone(),
        work_dir: work_dir.clone(),
        dataset: dataset.clone(),
        payloads,
        query_sets,
        peers,
        progress,
    };
    let mut repetitions = Vec::with_capacity(args.repeat);
    for index in 0..args.repeat {
        context
            .progress
            .say(format!("repetition {} of {}", index + 1, args.repeat));
        repetitions.push(Repetition::run(&context).await?);
    }
    let report = build_report(&context, &work_dir, workload.name(), repetitions);
    report.write(&args.out)
}

/// Checks the arguments and records them for the report.
fn settings(args: &BenchArgs) -> anyhow::Result<Settings> {
    if args.events == 0 || args.repeat == 0 || args.clients == 0 || args.queries == 0 {
        bail!("--events, --repeat, --clients and --queries must be greater than 0");
    }
    if args.batches.is_empty() || args.batches.contains(&0) {
        bail!("--batches must list batch sizes greater than 0");
    }
    let mut peers: Vec<PeerKind> = args
        .peers
        .iter()
        .copied()
        .filter(|peer| *peer != PeerKind::None)
        .collect();
    peers.sort();
    peers.dedup();
    Ok(Settings {
        events: args.events,
        repeat: args.repeat,
        seed: args.seed,
        clients: args.clients,
        batches: args.batches.clone(),
        small_batch_max_events: args.small_batch_events,
        run_budget_seconds: args.run_seconds,
        queries: args.queries,
        peers,
        workload: args.workload.clone(),
        prerender_max_events: args.prerender_max_events,
    })
}

fn build_report(
    context: &RunContext,
    work_dir: &std::path::Path,
    workload: &str,
    repetitions: Vec<report::Figures>,
) -> Report {
    let medians = report::medians(&repetitions);
    let set_names: Vec<String> = context
        .query_sets
        .iter()
        .map(|s| s.name.to_owned())
        .collect();
    let ratios = report::ratios(
        &medians,
        &context.settings.peers,
        &set_names,
        report::full_batch(&context.settings),
    );
    Report {
        date: jiff::Timestamp::now().strftime("%Y-%m-%d").to_string(),
        command_line: command_line(),
        settings: context.settings.clone(),
        machine: Machine::describe(work_dir),
        dataset: context.dataset.summary(workload),
        query_sets: context
            .query_sets
            .iter()
            .map(|set| (set.name.to_owned(), set.description.to_owned()))
            .collect(),
        rendered_on_the_fly: context.payloads.on_the_fly(),
        medians,
        ratios,
        repetitions,
        notes: context.notes(),
    }
}

/// The command as typed, with the program reduced to its name so that the
/// report carries no local paths.
pub(crate) fn command_line() -> String {
    let mut args = std::env::args();
    let program = args
        .next()
        .map(|path| {
            std::path::Path::new(&path)
                .file_name()
                .map_or(path.clone(), |name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    std::iter::once(program)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}
