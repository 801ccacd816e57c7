//! A storage fault, latched until a recovery proves the disk good again.
//!
//! When `fdatasync` fails, Linux may already have marked the dirty pages
//! clean, so a later `fdatasync` that succeeds says nothing about the pages
//! the failed one covered (PostgreSQL's "fsyncgate", 2018). Retrying the
//! sync and trusting it would acknowledge writes that sit after lost ones.
//! So the first failure trips a latch: from then on nothing is acknowledged
//! (writes answer 503 with Retry-After, `/readyz` names the cause) until the
//! owner of the file has re-established it from what it knows is true —
//! the log cuts its segment back to the durable end, reopens it and reads
//! every frame again; the database forces its WAL into the main file with a
//! checkpoint that syncs, and checks itself — and only then clears it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// What failed, and since when.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// The failed operation and the error the system reported.
    pub cause: String,
    pub since: SystemTime,
}

/// The cause of a fault as the error names it, without the generic prefix.
pub fn cause_of(error: &crate::StoreError) -> String {
    match error {
        crate::StoreError::Unavailable(message) | crate::StoreError::Internal(message) => {
            message.clone()
        }
        other => other.to_string(),
    }
}

/// One file's fault state, shared by the thread that writes it and the
/// callers that must refuse work while it is set.
#[derive(Debug, Default)]
pub struct FaultLatch {
    set: AtomicBool,
    fault: Mutex<Option<Fault>>,
    /// Faults tripped since start.
    tripped: AtomicU64,
    /// When the owner may next try to recover (rate limit).
    next_try: Mutex<Option<Instant>>,
}

/// How often a faulted owner tries to recover.
pub const RECOVERY_INTERVAL: Duration = Duration::from_millis(500);

impl FaultLatch {
    /// Records a failure. The first cause is kept until the latch clears.
    pub fn trip(&self, cause: impl Into<String>) {
        let cause = cause.into();
        if let Ok(mut fault) = self.fault.lock()
            && fault.is_none()
        {
            tracing::error!(%cause, "storage fault: nothing more is acknowledged until the file is re-established");
            *fault = Some(Fault {
                cause,
                since: SystemTime::now(),
            });
            self.tripped.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut next) = self.next_try.lock() {
            *next = Some(Instant::now() + RECOVERY_INTERVAL);
        }
        self.set.store(true, Ordering::Release);
    }

    /// Whether a fault is latched.
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// The latched fault, if any.
    pub fn current(&self) -> Option<Fault> {
        if !self.is_set() {
            return None;
        }
        self.fault.lock().ok().and_then(|f| f.clone())
    }

    /// The error callers get while the latch is set.
    pub fn refusal(&self) -> Option<crate::StoreError> {
        self.current().map(|fault| {
            crate::StoreError::Unavailable(format!(
                "storage fault ({}); writes resume once it is recovered",
                fault.cause
            ))
        })
    }

    /// Whether the owner should try to recover now: set, and not tried in
    /// the last [`RECOVERY_INTERVAL`].
    pub fn due(&self) -> bool {
        if !self.is_set() {
            return false;
        }
        let Ok(mut next) = self.next_try.lock() else {
            return false;
        };
        let now = Instant::now();
        if next.is_some_and(|at| now < at) {
            return false;
        }
        *next = Some(now + RECOVERY_INTERVAL);
        true
    }

    /// Clears the latch after a successful recovery.
    pub fn clear(&self) {
        if let Ok(mut fault) = self.fault.lock()
            && let Some(fault) = fault.take()
        {
            let for_ms = fault.since.elapsed().map_or(0, |d| d.as_millis());
            tracing::warn!(cause = %fault.cause, for_ms, "storage fault recovered: the file was re-established and verified");
        }
        self.set.store(false, Ordering::Release);
    }

    /// Faults tripped since start.
    pub fn tripped(&self) -> u64 {
        self.tripped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cause_is_kept_until_cleared_and_recovery_is_rate_limited() {
        let latch = FaultLatch::default();
        assert!(latch.current().is_none() && !latch.due() && latch.refusal().is_none());
        latch.trip("fdatasync a: EIO");
        latch.trip("fdatasync b: EIO");
        assert_eq!(latch.current().unwrap().cause, "fdatasync a: EIO");
        assert_eq!(latch.tripped(), 1);
        // Just tripped: the first try waits out the interval.
        assert!(!latch.due());
        std::thread::sleep(RECOVERY_INTERVAL);
        assert!(latch.due());
        assert!(
            !latch.due(),
            "a second try right after the first is not due"
        );
        assert!(matches!(
            latch.refusal(),
            Some(crate::StoreError::Unavailable(m)) if m.contains("fdatasync a")
        ));
        latch.clear();
        assert!(latch.current().is_none() && !latch.due());
        latch.trip("again");
        assert_eq!(latch.tripped(), 2);
    }
}
