//! # tracklog-bench
//!
//! `tracklog bench`: a seeded synthetic workload driven through the real
//! server over HTTP, measured side by side with ClickHouse and PostgreSQL.

use clap::Args;

/// Options of `tracklog bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "the benchmark is not built yet (asked for {} events)",
        args.events
    )
}
