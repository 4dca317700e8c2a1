//! Exponential back-off, one rule for every retry loop: the wait after a
//! run of failures starts at a first wait and doubles with each failure in
//! a row, up to a longest wait. Callers count the failures; this only
//! says how long to wait after them.

use std::time::Duration;

/// A first wait and a longest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max }
    }

    /// The wait after `failures` failures in a row: none after none, the
    /// first wait after one, doubled with each more, at most the longest.
    pub(crate) fn after(self, failures: u32) -> Duration {
        match failures {
            0 => Duration::ZERO,
            n => self
                .first
                .saturating_mul(1 << (n - 1).min(31))
                .min(self.max),
        }
    }

    /// The first wait.
    #[cfg(test)]
    pub(crate) fn first(self) -> Duration {
        self.first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_the_first_up_to_the_longest() {
        let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        let waits: Vec<u128> = (0..7).map(|n| backoff.after(n).as_millis()).collect();
        assert_eq!(waits, [0, 500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(backoff.after(u32::MAX), Duration::from_secs(5));
    }
}
