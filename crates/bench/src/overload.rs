//! What the bench's clients do when the server sheds load (503 or 429): wait
//! and send the same body again, as a well-behaved client would, for as long
//! as a bounded time budget allows.
//!
//! The pause starts at 5 ms and doubles up to the server's `Retry-After`
//! (whole seconds, 1 s when absent), so a brief overload costs little and a
//! long one, such as materialisers far behind a 1 M-conversation load, is
//! waited out instead of failing the run after a fixed count of tries.

use std::time::{Duration, Instant};

use anyhow::bail;
use reqwest::header::RETRY_AFTER;

/// The longest one request is retried for before the run fails.
pub const BUDGET: Duration = Duration::from_secs(600);
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const DEFAULT_CEILING: Duration = Duration::from_secs(1);

/// The retries of one request.
#[derive(Debug)]
pub struct Backoff {
    started: Instant,
    pause: Duration,
    retries: usize,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            pause: FIRST_PAUSE,
            retries: 0,
        }
    }
}

impl Backoff {
    /// Whether `status` means "overloaded, try again later".
    pub fn is_overload(status: reqwest::StatusCode) -> bool {
        matches!(status.as_u16(), 429 | 503)
    }

    /// Waits before the next try of a request refused with `response`, or
    /// fails once the budget is spent.
    pub async fn wait(&mut self, what: &str, response: &reqwest::Response) -> anyhow::Result<()> {
        if self.started.elapsed() >= BUDGET {
            bail!(
                "{what} stayed overloaded for {:.0} s ({} retries)",
                BUDGET.as_secs_f64(),
                self.retries
            );
        }
        let ceiling = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map_or(DEFAULT_CEILING, Duration::from_secs)
            .max(FIRST_PAUSE);
        let pause = self.pause.min(ceiling);
        tokio::time::sleep(pause).await;
        self.pause = (pause * 2).min(ceiling);
        self.retries += 1;
        Ok(())
    }

    /// The retries so far.
    pub fn retries(&self) -> usize {
        self.retries
    }
}
