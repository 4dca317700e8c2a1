//! A rate limit for log lines: [`WarnGate`] admits one event per interval
//! and counts the rest, so a failing peer, origin or accept loop logs a
//! line a second with the number it left out, not one per request.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

// tokio's clock, so that tests can pause and advance it.
use tokio::time::Instant;

/// How often a failing peer may be logged.
const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// Admits one event per interval and counts the rest: the rate limit on
/// warnings about failing peers, origins and accepts.
pub(crate) struct WarnGate {
    start: Instant,
    interval_ms: u64,
    /// Milliseconds after `start` when the next event may be admitted.
    next_ms: AtomicU64,
    skipped: AtomicU64,
}

impl WarnGate {
    fn new(interval: Duration) -> WarnGate {
        WarnGate {
            start: Instant::now(),
            interval_ms: interval.as_millis().try_into().unwrap_or(u64::MAX),
            next_ms: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// `Some(n)`: log, and `n` events went unlogged since the last.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = self
            .start
            .elapsed()
            .as_millis()
            .try_into()
            .unwrap_or(u64::MAX);
        let next = self.next_ms.load(Relaxed);
        let due = now >= next
            && self
                .next_ms
                .compare_exchange(next, now.saturating_add(self.interval_ms), Relaxed, Relaxed)
                .is_ok();
        if due {
            Some(self.skipped.swap(0, Relaxed))
        } else {
            self.skipped.fetch_add(1, Relaxed);
            None
        }
    }
}

/// One warning a second.
impl Default for WarnGate {
    fn default() -> WarnGate {
        WarnGate::new(WARN_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn warn_gate_admits_one_event_per_interval_and_counts_the_rest() {
        let gate = WarnGate::new(Duration::from_millis(200));
        assert_eq!(gate.admit(), Some(0));
        assert_eq!(gate.admit(), None);
        assert_eq!(gate.admit(), None);
        tokio::time::advance(Duration::from_millis(199)).await;
        assert_eq!(gate.admit(), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(gate.admit(), Some(3));
        assert_eq!(gate.admit(), None);
    }
}
