//! The two LRU caches of a group: `main` holds values this node owns and
//! loaded itself, `hot` mirrors a sample of values fetched from other peers.
//!
//! Both are bounded together by the group's cache size, counted as
//! `len(key) + len(value)` per entry as golang/groupcache counts it. After
//! every add the victim rule runs: while the total is over the limit, evict
//! the oldest entry of `hot` if `hot > main / 8`, else of `main`. Unlike
//! golang, replacing an existing key subtracts the old entry's bytes, so the
//! count never drifts above what is really held, and an entry larger than
//! the whole limit is not stored at all (it would only flush the others).
//!
//! An entry may carry an expiry. An expired entry is a miss: it is removed
//! when looked up and counted in `Evictions` (as mailgun's and
//! groupcache-go's caches count it) and in `Expired`. Nothing sweeps in the
//! background; an expired entry nobody asks for leaves by the LRU rule.
//!
//! Writes (a Set or Remove from a user or a peer) bump a write generation
//! of the key's stripe. A load notes the generation before it starts and
//! stores its value only if no write came in between, so a load that began
//! before a write can never put the older value back afterwards.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;
use serde::Serialize;

use crate::value::{Expiry, Value};

/// Which of a group's two caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    Main,
    Hot,
}

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

/// Main and hot caches behind one lock, so the victim rule sees both.
pub(crate) struct Caches {
    limit: u64,
    inner: Mutex<Pair>,
}

struct Pair {
    main: Lru,
    hot: Lru,
    /// Write generations, one per stripe of keys (by hash). A write to any
    /// key of a stripe bumps it: loads of the stripe's other keys in flight
    /// at that moment are then served but not stored, which costs a reload
    /// and never serves anything stale.
    generations: Box<[u64; STRIPES]>,
    /// The keys written lately, oldest first: for [`Caches::written_lately`].
    recent: VecDeque<(Instant, Box<[u8]>)>,
}

/// How long a write is remembered for peers that join later, and how many
/// writes at most.
pub(crate) const RECENT_WRITES_KEPT: Duration = Duration::from_secs(600);
const RECENT_WRITES_MAX: usize = 10_000;

/// How many write generations a group keeps.
const STRIPES: usize = 1024;

fn stripe(key: &[u8]) -> usize {
    (crate::consistenthash::fnv1_64(key) % STRIPES as u64) as usize
}

impl Pair {
    fn remember_write(&mut self, key: &[u8]) {
        self.recent.push_back((Instant::now(), key.into()));
        if self.recent.len() > RECENT_WRITES_MAX {
            self.recent.pop_front();
        }
        self.forget_old_writes();
    }

    fn forget_old_writes(&mut self) {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| at.elapsed() > RECENT_WRITES_KEPT)
        {
            self.recent.pop_front();
        }
    }
}

struct Lru {
    entries: LruCache<Box<[u8]>, Value>,
    stats: CacheStats,
}

impl Caches {
    /// Caches holding at most `limit` bytes together; 0 disables caching.
    pub(crate) fn new(limit: u64) -> Caches {
        Caches {
            limit,
            inner: Mutex::new(Pair {
                main: Lru::new(),
                hot: Lru::new(),
                generations: Box::new([0; STRIPES]),
                recent: VecDeque::new(),
            }),
        }
    }

    /// Looks `key` up in main, then hot. Counts a get (and a hit) on each
    /// cache it probes, as golang does; an expired entry is removed and is
    /// a miss.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &[u8]) -> Option<Value> {
        self.get_if(key, Expiry::is_expired)
    }

    /// [`Caches::get`], saying which cache held the value.
    pub(crate) fn get_from(&self, key: &[u8]) -> Option<(Value, Which)> {
        self.get_if_from(key, Expiry::is_expired)
    }

    /// [`Caches::get`], with `expired` saying which expiries have passed
    /// (tests pass a later instant rather than waiting for the clock).
    #[cfg(test)]
    fn get_if(&self, key: &[u8], expired: impl Fn(Expiry) -> bool) -> Option<Value> {
        self.get_if_from(key, expired).map(|(value, _)| value)
    }

    /// [`Caches::get_from`], with `expired` saying which expiries have
    /// passed.
    fn get_if_from(&self, key: &[u8], expired: impl Fn(Expiry) -> bool) -> Option<(Value, Which)> {
        if self.limit == 0 {
            return None;
        }
        let mut pair = self.lock();
        if let Some(value) = pair.main.get(key, &expired) {
            return Some((value, Which::Main));
        }
        pair.hot.get(key, &expired).map(|value| (value, Which::Hot))
    }

    /// Stores `value` under `key` in one cache, evicts down to the limit,
    /// and returns the value. The value is kept as given, not copied: the
    /// HTTP client reads each body into a buffer of its own size, so a value
    /// never pins much more than itself. A value that has already expired,
    /// or whose entry cannot fit the limit, is returned without being stored.
    #[cfg(test)]
    pub(crate) fn add(&self, which: Which, key: &[u8], value: Value) -> Value {
        self.add_unless_written(which, key, value, None)
    }

    /// The write generation of `key`'s stripe, to pass to
    /// [`Caches::add_unless_written`] once a load finishes.
    pub(crate) fn generation(&self, key: &[u8]) -> u64 {
        self.lock().generations[stripe(key)]
    }

    /// [`Caches::add`], but with `since` = `Some(generation)` the value is
    /// stored only if no write of the key's stripe came after that
    /// generation was read (it is returned all the same).
    pub(crate) fn add_unless_written(
        &self,
        which: Which,
        key: &[u8],
        value: Value,
        since: Option<u64>,
    ) -> Value {
        self.store_unless_written(which, key, value.clone(), since);
        value
    }

    /// The work of [`Caches::add_unless_written`]: whether `value` was
    /// stored.
    fn store_unless_written(
        &self,
        which: Which,
        key: &[u8],
        value: Value,
        since: Option<u64>,
    ) -> bool {
        if !self.fits(key, &value.bytes) || value.expiry.is_expired() {
            return false;
        }
        let mut pair = self.lock();
        if since.is_some_and(|since| pair.generations[stripe(key)] != since) {
            return false;
        }
        self.store(&mut pair, which, key, value);
        true
    }

    /// A write: removes `key` from both caches, then stores `value` in the
    /// given cache, and bumps the key's write generation so that no load in
    /// flight stores an older value afterwards. A value that cannot fit the
    /// limit is refused (`Err(size)`) rather than flushing the cache; the
    /// key is removed all the same.
    pub(crate) fn write(&self, key: &[u8], value: Option<(Which, Value)>) -> Result<(), u64> {
        let mut pair = self.lock();
        pair.generations[stripe(key)] += 1;
        pair.remember_write(key);
        pair.main.remove(key);
        pair.hot.remove(key);
        let Some((which, value)) = value else {
            return Ok(());
        };
        if !self.fits(key, &value.bytes) {
            return Err((key.len() as u64).saturating_add(value.bytes.len() as u64));
        }
        if !value.expiry.is_expired() {
            self.store(&mut pair, which, key, value);
        }
        Ok(())
    }

    fn store(&self, pair: &mut Pair, which: Which, key: &[u8], value: Value) {
        let cache = match which {
            Which::Main => &mut pair.main,
            Which::Hot => &mut pair.hot,
        };
        cache.put(key, value);
        while pair.main.stats.bytes + pair.hot.stats.bytes > self.limit {
            let victim = if pair.hot.stats.bytes > pair.main.stats.bytes / 8 {
                &mut pair.hot
            } else {
                &mut pair.main
            };
            if !victim.evict_oldest() {
                break;
            }
        }
    }

    /// Stores an entry read back from a snapshot in main, as a load would;
    /// false when it cannot fit or has expired.
    pub(crate) fn restore(&self, key: &[u8], value: Value) -> bool {
        self.store_unless_written(Which::Main, key, value, None)
    }

    /// Main's entries, least recently used first, for a snapshot.
    pub(crate) fn main_entries(&self) -> Vec<(Box<[u8]>, Value)> {
        let pair = self.lock();
        let entries = pair.main.entries.iter().rev();
        entries.map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The keys written (Set or Remove) within [`RECENT_WRITES_KEPT`], at
    /// most the last 10,000, oldest first.
    pub(crate) fn written_lately(&self) -> Vec<Box<[u8]>> {
        let mut pair = self.lock();
        pair.forget_old_writes();
        pair.recent.iter().map(|(_, key)| key.clone()).collect()
    }

    /// The most bytes main and hot hold together: also the largest entry
    /// (key plus value) they can hold.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether an entry for `key` and `value` can be stored at all.
    fn fits(&self, key: &[u8], value: &[u8]) -> bool {
        let size = (key.len() as u64).saturating_add(value.len() as u64);
        self.limit > 0 && size <= self.limit
    }

    /// (main, hot) counters.
    pub(crate) fn stats(&self) -> (CacheStats, CacheStats) {
        let pair = self.lock();
        (pair.main.stats, pair.hot.stats)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pair> {
        // A panic while holding this lock cannot leave the caches half
        // updated in a way that matters (worst case a counter is off), so
        // recover from poisoning instead of propagating the panic.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Lru {
    fn new() -> Lru {
        Lru {
            entries: LruCache::unbounded(),
            stats: CacheStats::default(),
        }
    }

    fn get(&mut self, key: &[u8], expired: impl Fn(Expiry) -> bool) -> Option<Value> {
        self.stats.gets += 1;
        let value = self.entries.get(key)?;
        // `is_expired` reads the clock only for values that expire.
        if !expired(value.expiry) {
            let value = value.clone();
            self.stats.hits += 1;
            return Some(value);
        }
        if let Some((key, value)) = self.entries.pop_entry(key) {
            self.forget(&key, &value);
            self.stats.expired += 1;
        }
        None
    }

    fn put(&mut self, key: &[u8], value: Value) {
        let size = (key.len() + value.bytes.len()) as u64;
        if let Some(old) = self.entries.put(key.into(), value) {
            self.stats.bytes -= (key.len() + old.bytes.len()) as u64;
            self.stats.items -= 1;
        }
        self.stats.bytes += size;
        self.stats.items += 1;
    }

    /// Removes `key` if present; counted as an eviction, as mailgun counts it.
    fn remove(&mut self, key: &[u8]) {
        if let Some((key, value)) = self.entries.pop_entry(key) {
            self.forget(&key, &value);
        }
    }

    fn evict_oldest(&mut self) -> bool {
        let Some((key, value)) = self.entries.pop_lru() else {
            return false;
        };
        self.forget(&key, &value);
        true
    }

    /// Accounts for an entry that has been taken out: an eviction.
    fn forget(&mut self, key: &[u8], value: &Value) {
        self.stats.bytes -= (key.len() + value.bytes.len()) as u64;
        self.stats.items -= 1;
        self.stats.evictions += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Expiry;
    use bytes::Bytes;
    use std::time::Duration;

    /// A value that never expires.
    fn v(bytes: &[u8]) -> Value {
        Value::from(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn counts_key_plus_value_bytes() {
        let caches = Caches::new(1000);
        caches.add(Which::Main, b"abc", v(b"12345"));
        caches.add(Which::Hot, b"k", v(b"v"));
        let (main, hot) = caches.stats();
        assert_eq!((main.bytes, main.items), (8, 1));
        assert_eq!((hot.bytes, hot.items), (2, 1));
    }

    #[test]
    fn replacing_a_key_does_not_double_count() {
        let caches = Caches::new(1000);
        caches.add(Which::Main, b"k", v(b"0123456789"));
        caches.add(Which::Main, b"k", v(b"01"));
        let (main, _) = caches.stats();
        assert_eq!((main.bytes, main.items), (3, 1));
        assert_eq!(
            caches.get(b"k").map(|v| v.bytes),
            Some(Bytes::from_static(b"01"))
        );
    }

    #[test]
    fn evicts_least_recently_used_from_main() {
        // Three 10-byte entries fit in 30 bytes; a fourth evicts the LRU one.
        let caches = Caches::new(30);
        for key in [b"k1", b"k2", b"k3"] {
            caches.add(Which::Main, key, v(b"01234567"));
        }
        assert!(caches.get(b"k1").is_some()); // k1 is now most recent
        caches.add(Which::Main, b"k4", v(b"01234567"));
        assert!(caches.get(b"k2").is_none());
        for key in [b"k1", b"k3", b"k4"] {
            assert!(caches.get(key).is_some());
        }
        let (main, _) = caches.stats();
        assert_eq!((main.bytes, main.items, main.evictions), (30, 3, 1));
    }

    #[test]
    fn hot_is_the_victim_while_above_an_eighth_of_main() {
        // main: 80 bytes, hot: 20 bytes (> 80/8 = 10): hot gives way first.
        let caches = Caches::new(100);
        for i in 0..8 {
            caches.add(Which::Main, format!("m{i}").as_bytes(), v(b"01234567"));
        }
        caches.add(Which::Hot, b"h0", v(b"01234567"));
        caches.add(Which::Hot, b"h1", v(b"01234567"));
        caches.add(Which::Main, b"m8", v(b"01234567"));
        let (main, hot) = caches.stats();
        assert_eq!((main.items, main.evictions), (9, 0));
        assert_eq!((hot.items, hot.evictions), (1, 1));
        assert!(caches.get(b"h0").is_none(), "oldest hot entry evicted");
        assert!(caches.get(b"h1").is_some());
    }

    #[test]
    fn main_is_the_victim_while_hot_is_small() {
        // main: 90 bytes, hot: 10 bytes (<= 90/8 = 11): main gives way.
        let caches = Caches::new(100);
        for i in 0..9 {
            caches.add(Which::Main, format!("m{i}").as_bytes(), v(b"01234567"));
        }
        caches.add(Which::Hot, b"h0", v(b"01234567"));
        caches.add(Which::Hot, b"h1", v(b"01234567"));
        // Total 110: hot 20 > main 90/8 = 11, so hot evicted h0.
        let (main, hot) = caches.stats();
        assert_eq!((main.items, hot.items), (9, 1));
        caches.add(Which::Main, b"m9", v(b"01234567"));
        // Total 110: hot 10 <= main 100/8 = 12, so main evicts m0.
        let (main, hot) = caches.stats();
        assert_eq!((main.items, main.evictions), (9, 1));
        assert_eq!((hot.items, hot.evictions), (1, 1));
        assert!(caches.get(b"m0").is_none());
    }

    #[test]
    fn an_item_bigger_than_the_limit_is_served_but_not_stored() {
        let caches = Caches::new(10);
        caches.add(Which::Main, b"a", v(b"1"));
        let value = caches.add(Which::Main, b"big", v(&[7u8; 20]));
        assert_eq!(value.bytes.len(), 20, "the caller still gets the value");
        let (main, _) = caches.stats();
        assert_eq!((main.bytes, main.items, main.evictions), (2, 1, 0));
        assert!(caches.get(b"a").is_some(), "the other entries stay");
        assert!(caches.get(b"big").is_none());
    }

    #[test]
    fn size_zero_disables_the_caches() {
        let caches = Caches::new(0);
        caches.add(Which::Main, b"k", v(b"v"));
        assert!(caches.get(b"k").is_none());
        assert_eq!(
            caches.stats(),
            (CacheStats::default(), CacheStats::default())
        );
    }

    #[test]
    fn gets_and_hits_count_every_probe() {
        let caches = Caches::new(100);
        caches.add(Which::Hot, b"h", v(b"v"));
        assert!(caches.get(b"h").is_some()); // main miss, hot hit
        assert!(caches.get(b"x").is_none()); // main miss, hot miss
        let (main, hot) = caches.stats();
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
        let at = |t: i64| move |expiry: Expiry| expiry.is_expired_at(t);
        caches.add(Which::Main, b"m", Value::new(&b"main"[..], soon));
        caches.add(Which::Hot, b"h", Value::new(&b"hot"[..], soon));
        caches.add(Which::Main, b"n", v(b"never"));
        let far = Value::new(
            &b"far"[..],
            Expiry::after_at(Duration::from_secs(7200), now),
        );
        caches.add(Which::Hot, b"f", far.clone());
        assert_eq!(caches.get_if(b"m", at(now)).unwrap().expiry, soon);
        assert_eq!(caches.get_if(b"h", at(now)).unwrap().bytes, "hot");
        assert!(caches.get_if(b"m", at(later)).is_none(), "expired in main");
        assert!(caches.get_if(b"h", at(later)).is_none(), "expired in hot");
        assert_eq!(caches.get_if(b"n", at(later)).unwrap().bytes, "never");
        assert_eq!(caches.get_if(b"f", at(later)), Some(far));
        let (main, hot) = caches.stats();
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

    #[test]
    fn an_already_expired_value_is_returned_but_not_stored() {
        let caches = Caches::new(1000);
        let value = caches.add(
            Which::Main,
            b"k",
            Value::new(&b"v"[..], Expiry::UNCACHEABLE),
        );
        assert_eq!(value.bytes, "v");
        assert!(caches.get(b"k").is_none());
        let (main, _) = caches.stats();
        assert_eq!((main.items, main.bytes, main.evictions), (0, 0, 0));
    }

    #[test]
    fn a_write_keeps_an_older_load_out() {
        let caches = Caches::new(1000);
        let before = caches.generation(b"k");
        caches.write(b"k", Some((Which::Main, v(b"new")))).unwrap();
        // A load that began before the write finishes now: served, not stored.
        let loaded = caches.add_unless_written(Which::Main, b"k", v(b"old"), Some(before));
        assert_eq!(loaded.bytes, "old");
        assert_eq!(caches.get(b"k").unwrap().bytes, "new");
        // A load that began after the write is stored.
        let after = caches.generation(b"k");
        caches.write(b"k", None).unwrap();
        assert!(caches.get(b"k").is_none());
        caches.add_unless_written(Which::Main, b"k", v(b"old"), Some(after));
        assert!(caches.get(b"k").is_none(), "removed after that load began");
        let now = caches.generation(b"k");
        caches.add_unless_written(Which::Main, b"k", v(b"fresh"), Some(now));
        assert_eq!(caches.get(b"k").unwrap().bytes, "fresh");
    }

    #[test]
    fn a_write_removes_both_copies_and_refuses_what_cannot_fit() {
        let caches = Caches::new(20);
        caches.add(Which::Main, b"a", v(b"1"));
        caches.add(Which::Hot, b"k", v(b"hot"));
        caches.add(Which::Main, b"k", v(b"main"));
        caches.write(b"k", None).unwrap();
        assert!(caches.get(b"k").is_none());
        assert_eq!(
            caches.write(b"k", Some((Which::Main, v(&[0; 20])))),
            Err(21)
        );
        assert_eq!(caches.get(b"a").unwrap().bytes, "1", "nothing flushed");
        caches.write(b"k", Some((Which::Hot, v(b"h")))).unwrap();
        let (main, hot) = caches.stats();
        assert_eq!((main.items, hot.items), (1, 1));
    }
}
