//! How far the materialisers fall behind the write-ahead log during a load,
//! sampled from the in-process server's store every 20 ms, and how long
//! after the last acknowledgement every acknowledged item is in the tables.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracklog_store::Stores;

/// The lag figures of one load.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LagFigures {
    /// Of the lag sampled during the load: the age of the oldest item some
    /// materialiser had not applied.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// From the last acknowledgement until nothing was left to apply.
    pub settled_ms: f64,
}

/// Samples while a load runs.
pub struct LagSampler {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<Vec<f64>>,
    stores: Stores,
}

const EVERY: Duration = Duration::from_millis(20);

fn lag_seconds(stores: &Stores) -> (f64, usize) {
    stores
        .lifecycle
        .materialisers()
        .iter()
        .fold((0.0, 0), |(s, n), m| {
            (s.max(m.lag_seconds), n + m.lag_items)
        })
}

impl LagSampler {
    pub fn start(stores: Stores) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let sampled = stores.clone();
        let handle = tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                samples.push(lag_seconds(&sampled).0 * 1000.0);
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(EVERY) => {}
                }
            }
            samples
        });
        Self {
            stop,
            handle,
            stores,
        }
    }

    /// Ends the sampling once the load's last acknowledgement is in, and
    /// waits (at most `bound`) for the materialisers to catch up.
    pub async fn finish(self, bound: Duration) -> LagFigures {
        let _ = self.stop.send(());
        let mut samples = self.handle.await.unwrap_or_default();
        let acknowledged = Instant::now();
        let mut logged = Instant::now();
        while acknowledged.elapsed() < bound {
            let (seconds, items) = lag_seconds(&self.stores);
            if items == 0 && seconds == 0.0 {
                break;
            }
            if logged.elapsed() >= crate::runner::LOG_EVERY {
                logged = Instant::now();
                eprintln!(
                    "  waiting for the materialisers: {items} items left, the oldest {seconds:.1} s old"
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let settled_ms = acknowledged.elapsed().as_secs_f64() * 1000.0;
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| {
            samples
                .get(((samples.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        LagFigures {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: samples.last().copied().unwrap_or(0.0),
            settled_ms,
        }
    }
}
