//! The stale list: main entries that expired with a [`Grace`] wait out
//! their grace here, for the group to serve while a reload fails or runs in
//! the background. It also keeps, per key, whether a reload is running and
//! when the next may start after failures (back-off doubling from 1 s to
//! 10 s).
//!
//! [`Grace`]: crate::value::Grace

use std::time::Duration;

use crate::backoff::Backoff;
use crate::cache::entry::Entry;
use crate::cache::list::{Held, List};
use crate::cache::lookup::{Lookup, StaleHit};

/// The wait after a stale key's first failed reload; it doubles with each
/// failure up to [`MAX_RETRY_WAIT`].
const RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));

/// A stale entry, and how its reloads are going.
pub(super) struct Stale {
    entry: Entry,
    /// Reloads that failed since it went stale.
    failures: u32,
    /// No reload starts before this instant (Unix nanoseconds).
    retry_at: i64,
    /// A background reload is running.
    refreshing: bool,
}

impl Held for Stale {
    fn len(&self) -> usize {
        self.entry.payload.len()
    }
}

impl List<Stale> {
    /// Keeps `entry`, just expired out of main, if its grace has not ended
    /// by `now` (Unix nanoseconds, read only if it has a grace).
    pub(super) fn keep(&mut self, key: &[u8], entry: Entry, now: impl Fn() -> i64) {
        if entry.grace_ends().is_some_and(|end| now() < end) {
            let stale = Stale {
                entry,
                failures: 0,
                retry_at: 0,
                refreshing: false,
            };
            self.put(key, stale);
        }
    }

    /// The stale value of `key` at `now` (read only if there is one), if
    /// its grace has not ended; one whose grace has ended is removed.
    pub(super) fn lookup(&mut self, key: &[u8], now: impl Fn() -> i64) -> Lookup {
        if self.stats.items == 0 {
            return Lookup::Miss;
        }
        let Some(stale) = self.entries.get(key) else {
            return Lookup::Miss;
        };
        let entry = &stale.entry;
        let now = now();
        if entry.grace_ends().is_none_or(|end| now >= end) {
            self.remove(key);
            return Lookup::Miss;
        }
        let revalidate_ends = entry
            .expires
            .saturating_add(i64::from(entry.while_revalidate) * 1_000_000_000);
        Lookup::Stale(StaleHit {
            value: entry.value(),
            revalidating: now < revalidate_ends,
            failing: stale.failures > 0,
        })
    }

    /// Starts a background reload of `key` at `now`: true when none is
    /// running and the back-off after failures has passed.
    pub(super) fn begin_refresh(&mut self, key: &[u8], now: i64) -> bool {
        match self.entries.peek_mut(key) {
            Some(stale) if !stale.refreshing && now >= stale.retry_at => {
                stale.refreshing = true;
                true
            }
            _ => false,
        }
    }

    /// A reload of `key` ended at `now`; `failed`: with an error that
    /// leaves the stale value in use. Otherwise the origin has answered,
    /// and the stale value goes.
    pub(super) fn end_reload(&mut self, key: &[u8], failed: bool, now: i64) {
        if !failed {
            self.remove(key);
            return;
        }
        let Some(stale) = self.entries.peek_mut(key) else {
            return;
        };
        // Waiters of one failed load all end it: count it once.
        if stale.refreshing || now >= stale.retry_at {
            stale.failures = stale.failures.saturating_add(1);
            let wait = RETRY.after(stale.failures);
            stale.retry_at = now.saturating_add(wait.as_nanos() as i64);
        }
        stale.refreshing = false;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::cache::tests::{graced, SEC};
    use crate::cache::{Caches, Lookup, StaleHit, Which};
    use crate::value::{now_nanos, Expiry};

    #[test]
    fn expired_values_wait_out_their_grace_in_the_stale_list() {
        let caches = Caches::new(1000);
        let now = now_nanos();
        let expires = now + 10 * SEC;
        caches.add(Which::Main, b"k", graced(b"v", expires, 60, 5));
        caches.add(Which::Main, b"plain", graced(b"p", expires, 0, 0));
        assert!(matches!(
            caches.lookup_at(b"k", || now, Some(&mut 0.0)),
            Lookup::Hit(_, Which::Main)
        ));
        // Two seconds after expiry: within both windows.
        let Lookup::Stale(stale) = caches.lookup_at(b"k", || expires + 2 * SEC, Some(&mut 0.0))
        else {
            panic!("stale expected");
        };
        assert_eq!(
            (stale.value.bytes.as_ref(), stale.value.expiry),
            (&b"v"[..], Expiry::At(expires))
        );
        assert!(stale.revalidating && !stale.failing);
        let (main, _, stale_list) = caches.stats();
        assert_eq!((main.items, main.expired), (1, 1), "moved out of main");
        assert_eq!((stale_list.items, stale_list.bytes), (1, 2));
        // Past stale-while-revalidate, within stale-if-error.
        let Lookup::Stale(stale) = caches.lookup_at(b"k", || expires + 6 * SEC, Some(&mut 0.0))
        else {
            panic!("stale expected");
        };
        assert!(!stale.revalidating);
        // Past both: gone.
        assert_eq!(
            caches.lookup_at(b"k", || expires + 61 * SEC, Some(&mut 0.0)),
            Lookup::Miss
        );
        assert_eq!(caches.stats().2.items, 0);
        // No grace: an expired value is simply a miss.
        assert_eq!(
            caches.lookup_at(b"plain", || expires + SEC, Some(&mut 0.0)),
            Lookup::Miss
        );
        assert_eq!(caches.stats().2.items, 0);
    }

    #[test]
    fn reloads_of_a_stale_value_back_off_after_failures() {
        let caches = Caches::new(1000);
        let now = now_nanos();
        caches.add(Which::Main, b"k", graced(b"v", now + SEC, 60, 0));
        crate::value::advance_clock(Duration::from_secs(2));
        assert!(matches!(
            caches.lookup(b"k"),
            Lookup::Stale(StaleHit { failing: false, .. })
        ));
        // Every waiter of one failed load ends it: one failure.
        caches.end_reload(b"k", true);
        caches.end_reload(b"k", true);
        let Lookup::Stale(stale) = caches.lookup(b"k") else {
            panic!("stale expected");
        };
        assert!(stale.failing);
        assert!(!caches.begin_refresh(b"k"), "backing off for a second");
        let pair = caches.inner.lock();
        let entry = pair.stale.entries.peek(b"k").unwrap();
        assert_eq!(entry.failures, 1);
        let wait = entry.retry_at - now_nanos();
        assert!(wait > SEC / 2 && wait <= SEC, "{wait}");
        drop(pair);
        // Once the wait has passed, one refresh at a time.
        let mut pair = caches.inner.lock();
        pair.stale.entries.peek_mut(b"k").unwrap().retry_at = 0;
        drop(pair);
        assert!(caches.begin_refresh(b"k"));
        assert!(!caches.begin_refresh(b"k"), "already refreshing");
        caches.end_reload(b"k", true);
        let pair = caches.inner.lock();
        assert_eq!(pair.stale.entries.peek(b"k").unwrap().failures, 2);
        drop(pair);
        // The origin answered: the stale value goes.
        caches.end_reload(b"k", false);
        assert_eq!(caches.lookup(b"k"), Lookup::Miss);
    }
}
