//! One of a group's lists (main, hot or stale): its entries in LRU order
//! and its counters, kept in step with every put, removal and eviction.
//! Each entry is counted as `len(key) + len(value)`, as golang/groupcache
//! counts it; the caches charge each a fixed overhead besides.

use serde::Serialize;

use crate::cache::entry::Entry;
use crate::cache::lookup::{Lookup, Which};
use crate::cache::lru::{Lru, Pushed};
#[cfg(feature = "binary")]
use crate::value::Value;

/// One cache's counters, with golang's `CacheStats` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct CacheStats {
    /// Bytes held (keys and values).
    pub bytes: u64,
    /// Entries held.
    pub items: u64,
    /// Lookups.
    pub gets: u64,
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Entries removed to make room, or found expired.
    pub evictions: u64,
    /// Entries found expired on lookup (also counted in `evictions`).
    pub expired: u64,
}

/// The length of what an entry holds besides its key.
pub(super) trait Held {
    fn len(&self) -> usize;
}

impl Held for Entry {
    fn len(&self) -> usize {
        self.payload.len()
    }
}

/// One of the lists: its entries and its counters.
pub(super) struct List<E> {
    pub(super) entries: Lru<E>,
    pub(super) stats: CacheStats,
}

/// What [`List::get`] found.
pub(super) enum Got {
    /// Live: what it answers.
    Live(Lookup),
    /// Expired, and taken out (counted as an eviction).
    Expired(Entry),
    Nothing,
}

impl List<Entry> {
    /// Counts a get; a live entry is a hit, an expired one is taken out.
    /// `which`: this list.
    pub(super) fn get(&mut self, key: &[u8], which: Which, now: impl Fn() -> i64) -> Got {
        self.stats.gets += 1;
        let Some(entry) = self.entries.get(key) else {
            return Got::Nothing;
        };
        if entry.expires == 0 || !entry.is_expired_at(now()) {
            let found = entry.found(which);
            self.stats.hits += 1;
            return Got::Live(found);
        }
        match self.entries.remove(key) {
            Some((key, entry)) => {
                self.forget(&key, &entry);
                self.stats.expired += 1;
                Got::Expired(entry)
            }
            None => Got::Nothing,
        }
    }

    /// Its values (not its not-founds), least recently used first: what a
    /// snapshot keeps.
    #[cfg(feature = "binary")]
    pub(super) fn values(&self) -> Vec<(Box<[u8]>, Value)> {
        let entries = self.entries.iter_oldest_first();
        let values = entries.filter(|(_, entry)| !entry.is_not_found());
        values.map(|(k, entry)| (k.into(), entry.value())).collect()
    }
}

impl<E: Held> List<E> {
    pub(super) fn new() -> List<E> {
        List {
            entries: Lru::new(),
            stats: CacheStats::default(),
        }
    }

    pub(super) fn put(&mut self, key: &[u8], entry: E) {
        let size = (key.len() + entry.len()) as u64;
        match self.entries.push(key, entry) {
            Pushed::New => {}
            Pushed::Replaced(old) => {
                self.stats.bytes -= (key.len() + old.len()) as u64;
                self.stats.items -= 1;
            }
            Pushed::Evicted(key, old) => self.forget(&key, &old),
        }
        self.stats.bytes += size;
        self.stats.items += 1;
    }

    /// Removes `key` if present; counted as an eviction, as mailgun counts it.
    pub(super) fn remove(&mut self, key: &[u8]) {
        if let Some((key, entry)) = self.entries.remove(key) {
            self.forget(&key, &entry);
        }
    }

    pub(super) fn evict_oldest(&mut self) -> bool {
        let Some((key, entry)) = self.entries.pop_oldest() else {
            return false;
        };
        self.forget(&key, &entry);
        true
    }

    /// The bytes charged for its entries: keys, values and `overhead` each.
    pub(super) fn charged(&self, overhead: u64) -> u64 {
        self.stats.bytes + self.stats.items * overhead
    }

    /// Accounts for an entry that has been taken out: an eviction.
    fn forget(&mut self, key: &[u8], entry: &E) {
        self.stats.bytes -= (key.len() + entry.len()) as u64;
        self.stats.items -= 1;
        self.stats.evictions += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use crate::cache::tests::v;
    use crate::cache::{Caches, Which};
    use crate::value::{Expiry, Value};

    #[test]
    fn counts_key_plus_value_bytes() {
        let caches = Caches::new(1000);
        caches.add(Which::Main, b"abc", v(b"12345"));
        caches.add(Which::Hot, b"k", v(b"v"));
        let (main, hot, _) = caches.stats();
        assert_eq!((main.bytes, main.items), (8, 1));
        assert_eq!((hot.bytes, hot.items), (2, 1));
    }

    #[test]
    fn replacing_a_key_does_not_double_count() {
        let caches = Caches::new(1000);
        caches.add(Which::Main, b"k", v(b"0123456789"));
        caches.add(Which::Main, b"k", v(b"01"));
        let (main, _, _) = caches.stats();
        assert_eq!((main.bytes, main.items), (3, 1));
        assert_eq!(
            caches.get(b"k").map(|v| v.bytes),
            Some(Bytes::from_static(b"01"))
        );
    }

    #[test]
    fn gets_and_hits_count_every_probe() {
        let caches = Caches::without_overhead(100);
        caches.add(Which::Hot, b"h", v(b"v"));
        assert!(caches.get(b"h").is_some()); // main miss, hot hit
        assert!(caches.get(b"x").is_none()); // main miss, hot miss
        let (main, hot, _) = caches.stats();
        assert_eq!((main.gets, main.hits), (2, 0));
        assert_eq!((hot.gets, hot.hits), (2, 1));
    }

    #[test]
    fn expired_entries_are_misses_in_both_caches() {
        let caches = Caches::new(1000);
        // Lookups happen at `now` and then at `later`, not on the wall clock.
        let now = crate::value::now_nanos();
        let soon = Expiry::after_at(Duration::from_secs(3600), now);
        let later = now + Duration::from_secs(3601).as_nanos() as i64;
        caches.add(Which::Main, b"m", Value::new(&b"main"[..], soon));
        caches.add(Which::Hot, b"h", Value::new(&b"hot"[..], soon));
        caches.add(Which::Main, b"n", v(b"never"));
        let far = Value::new(
            &b"far"[..],
            Expiry::after_at(Duration::from_secs(7200), now),
        );
        caches.add(Which::Hot, b"f", far.clone());
        assert_eq!(caches.get_at(b"m", now).unwrap().expiry, soon);
        assert_eq!(caches.get_at(b"h", now).unwrap().bytes, "hot");
        assert!(caches.get_at(b"m", later).is_none(), "expired in main");
        assert!(caches.get_at(b"h", later).is_none(), "expired in hot");
        assert_eq!(caches.get_at(b"n", later).unwrap().bytes, "never");
        let found = caches.get_at(b"f", later).unwrap();
        assert_eq!((found.bytes, found.expiry), (far.bytes, far.expiry));
        let (main, hot, _) = caches.stats();
        assert_eq!(
            (main.bytes, main.items, main.evictions, main.expired),
            (6, 1, 1, 1)
        );
        assert_eq!(
            (hot.bytes, hot.items, hot.evictions, hot.expired),
            (4, 1, 1, 1)
        );
        // A second lookup of an expired key is a plain miss.
        assert!(caches.get(b"m").is_none());
        assert_eq!(caches.stats().0.expired, 1);
    }
}
