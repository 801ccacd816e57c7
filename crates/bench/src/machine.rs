//! The machine the bench ran on, and its limits measured in the same run:
//! sequential write bandwidth with fdatasync, and the single-core JSON parse
//! rate of the very payloads the server receives. Tracklog's ingest rate is
//! reported as a fraction of each, which says how much headroom is left.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::payload::Payloads;

/// Bytes written by the bandwidth probe, in chunks of [`WRITE_CHUNK`].
const WRITE_TOTAL: usize = 256 * 1024 * 1024;
const WRITE_CHUNK: usize = 1024 * 1024;
/// The parse probe stops after this many items or this long.
const PARSE_MAX_ITEMS: usize = 500_000;
const PARSE_BUDGET: Duration = Duration::from_secs(10);
/// Items rendered for the parse probe when the payloads are not all held
/// in memory (a workload generated as it is sent, or batches rendered on
/// the fly).
pub const PARSE_SAMPLE: usize = 100_000;

/// What the machine is.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    /// `df` of the directory that held the data.
    pub disk: String,
}

impl Machine {
    pub fn describe(work_dir: &Path) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: memory_kib() as f64 / (1024.0 * 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".into(), |text| text.trim().to_owned()),
            disk: disk_description(work_dir),
        }
    }
}

fn memory_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Device, file system type and size, from `df`.
fn disk_description(dir: &Path) -> String {
    let output = Command::new("df")
        .args(["-h", "--output=source,fstype,size,avail"])
        .arg(dir)
        .output();
    match output {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(1)
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                match fields.as_slice() {
                    [source, fstype, size, avail] => {
                        format!("{source} ({fstype}), {size}, {avail} free")
                    }
                    _ => line.trim().to_owned(),
                }
            })
            .unwrap_or_else(|| "unknown".into()),
        _ => "unknown".into(),
    }
}

/// The machine's limits, measured.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    pub write_mb_per_sec: f64,
    pub json_parse_events_per_sec: f64,
    pub json_bytes_per_event: f64,
}

impl Limits {
    pub fn measure(work_dir: &Path, payloads: &Payloads) -> anyhow::Result<Self> {
        let sample = payloads.sample(PARSE_SAMPLE);
        Ok(Self {
            write_mb_per_sec: write_bandwidth(work_dir)?,
            json_parse_events_per_sec: parse_rate(
                (0..sample.len()).map(|index| (sample.item(index), 1)),
            ),
            json_bytes_per_event: sample.average_bytes(),
        })
    }
}

/// Writes 256 MiB in 1 MiB chunks to a temporary file, then fdatasync: the
/// rate a log writer could reach if every byte had to be durable.
fn write_bandwidth(work_dir: &Path) -> anyhow::Result<f64> {
    let mut file = tempfile::tempfile_in(work_dir)?;
    // Incompressible-looking content, so no layer can shortcut the writes.
    let chunk: Vec<u8> = (0..WRITE_CHUNK).map(|i| (i * 31 % 251) as u8).collect();
    let started = Instant::now();
    for _ in 0..WRITE_TOTAL / WRITE_CHUNK {
        file.write_all(&chunk)?;
    }
    file.sync_data()?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(WRITE_TOTAL as f64 / 1e6 / seconds)
}

/// serde_json parses of request items into `Value`, on this thread only:
/// the first thing the server does with each item. Each item counts for
/// the units it carries (1 for an event or a record; the KPI events of a
/// channel events item), and the rate is in those units per second. At
/// most [`PARSE_MAX_ITEMS`] items, for at most [`PARSE_BUDGET`].
pub fn parse_rate<'a>(items: impl IntoIterator<Item = (&'a str, usize)>) -> f64 {
    let started = Instant::now();
    let mut parsed = 0usize;
    let mut units = 0usize;
    for (item, carries) in items.into_iter().take(PARSE_MAX_ITEMS) {
        let value: serde_json::Value =
            serde_json::from_str(item).expect("the bench's own JSON parses");
        std::hint::black_box(value);
        parsed += 1;
        units += carries;
        if parsed.is_multiple_of(1_024) && started.elapsed() > PARSE_BUDGET {
            break;
        }
    }
    units as f64 / started.elapsed().as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parse_rate_counts_what_each_item_carries() {
        let items = ["{\"a\":1}", "[1,2,3]"];
        let events = parse_rate(items.iter().map(|item| (*item, 1)));
        let carried = parse_rate(items.iter().map(|item| (*item, 1_000)));
        assert!(events > 0.0 && carried > events);
    }
}
