//! The caches of a group behind one lock: `main` holds values this node
//! owns and loaded itself, `hot` mirrors a sample of values fetched from
//! other peers, `stale` keeps expired main values within their grace
//! ([`stale`]).
//!
//! All three are bounded together by the group's cache size. Each entry is
//! charged `len(key) + len(value)`, as golang/groupcache counts it, plus
//! [`ENTRY_OVERHEAD`] for the memory it takes besides them, so that the
//! limit bounds the memory of tiny entries (a storm of not-founds) as well
//! as of large ones; the `Bytes` counters stay golang's. After every add
//! the victim rule runs: while the charged total is over the limit, evict
//! the oldest stale entry if any, else the oldest entry of `hot` if
//! `hot > main / 8` (charged bytes), else of `main`. Unlike golang,
//! replacing an existing key subtracts the old entry's bytes, so the count
//! never drifts above what is really held, and an entry larger than the
//! whole limit is not stored at all (it would only flush the others).
//!
//! An entry may carry an expiry. An expired entry is a miss: it is removed
//! when looked up and counted in `Evictions` (as mailgun's and
//! groupcache-go's caches count it) and in `Expired`, or moved to `stale`
//! if it has a grace. Nothing sweeps in the background; an expired entry
//! nobody asks for leaves by the LRU rule.
//!
//! Main may also hold not-founds: an origin's "no such key", remembered
//! until its expiry, counted as `len(key) + len(message)` (and charged the
//! overhead) and evicted like values.
//!
//! Every lookup counts its key in the group's [`Heat`] sketch, under the
//! same lock; a copy offered to the hot cache is admitted by that count
//! ([`admission`]). Writes bump the write generation of the key's stripe,
//! and loads begun before a write do not store their value
//! ([`generations`]).

mod admission;
pub(crate) mod compressed;
mod entry;
mod generations;
mod heat;
mod list;
mod lookup;
mod lru;
mod stale;

use parking_lot::Mutex;

use crate::cache::admission::Weighing;
use crate::cache::entry::Entry;
use crate::cache::generations::Generations;
use crate::cache::heat::Heat;
use crate::cache::list::{Got, List};
use crate::cache::stale::Stale;
use crate::value::{now_nanos, Expiry, Value};

pub use crate::cache::list::CacheStats;
pub(crate) use crate::cache::lookup::{Lookup, StaleHit, Which};

/// One of the keys asked for most at a node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HotKey {
    pub key: Box<[u8]>,
    /// Estimated requests per second here.
    pub rate: f64,
    /// The cache holding it, if any.
    pub held: Option<Which>,
}

/// Main, hot and stale lists behind one lock, so the victim rule sees all
/// three.
pub(crate) struct Caches {
    limit: u64,
    /// What each entry is charged beyond its key and value:
    /// [`ENTRY_OVERHEAD`], or 0 in tests of exact byte counts.
    overhead: u64,
    inner: Mutex<Pair>,
}

/// The memory an entry takes beyond `len(key) + len(value)`, charged
/// against the limit with them so that `--cache-bytes` bounds the memory
/// of small entries too: its 56-byte slot of the LRU's slab, the 32-byte
/// `Arc` header of its value's buffer, its share of the index (4-byte
/// buckets, a control byte each, an eighth to half of them empty), the
/// allocator's rounding of the value's buffer up to its size class, and
/// the slab chunk and table growth that the next entries will fill.
/// BENCHMARKS.md ("Memory per entry") says how it was measured.
pub(crate) const ENTRY_OVERHEAD: u64 = 128;

/// What the lock guards.
struct Pair {
    main: List<Entry>,
    hot: List<Entry>,
    /// Expired main entries within their grace.
    stale: List<Stale>,
    /// How often each key is asked for here.
    heat: Heat,
    generations: Generations,
}

impl Pair {
    fn remove_everywhere(&mut self, key: &[u8]) {
        self.main.remove(key);
        self.hot.remove(key);
        self.stale.remove(key);
    }

    /// The bytes charged against the limit: every entry's key, value and
    /// `overhead`.
    fn charged(&self, overhead: u64) -> u64 {
        let main = self.main.charged(overhead);
        main + self.hot.charged(overhead) + self.stale.charged(overhead)
    }
}

impl Caches {
    /// Caches holding at most `limit` bytes together, each entry charged
    /// [`ENTRY_OVERHEAD`] besides its key and value; 0 disables caching.
    pub(crate) fn new(limit: u64) -> Caches {
        Caches::charging(limit, ENTRY_OVERHEAD)
    }

    /// [`Caches::new`], charging `overhead` bytes per entry.
    fn charging(limit: u64, overhead: u64) -> Caches {
        Caches {
            limit,
            overhead,
            inner: Mutex::new(Pair {
                main: List::new(),
                hot: List::new(),
                stale: List::new(),
                // Sized for entries of about 1 KiB.
                heat: Heat::new(limit / 1024),
                generations: Generations::new(),
            }),
        }
    }

    /// Looks `key` up in main, then hot, then stale, with the key's
    /// estimated requests per second here, this one counted (for the
    /// `minute_qps` of an owner's reply). Counts a get (and a hit) on main
    /// and hot for each probe, as golang does; an expired entry is removed
    /// (or moved to stale, if it has a grace) and is a miss there.
    pub(crate) fn lookup_rated(&self, key: &[u8]) -> (Lookup, f64) {
        let mut rate = 0.0;
        // The clock is read only for entries that expire.
        let found = self.lookup_at(key, now_nanos, Some(&mut rate));
        (found, rate)
    }

    /// [`Caches::lookup_rated`] without counting the key again: a load's
    /// second look.
    pub(crate) fn lookup_again(&self, key: &[u8]) -> Lookup {
        self.lookup_at(key, now_nanos, None)
    }

    /// The lookup, with `now` telling the instant (Unix nanoseconds); with
    /// `rate`, a request for the key is counted and its estimated rate
    /// written there.
    fn lookup_at(&self, key: &[u8], now: impl Fn() -> i64, rate: Option<&mut f64>) -> Lookup {
        if self.limit == 0 {
            return Lookup::Miss;
        }
        let hash = rate.is_some().then(|| Heat::hash(key));
        let mut guard = self.inner.lock();
        // Through a plain reference, so the lists borrow separately.
        let pair: &mut Pair = &mut guard;
        if let (Some(hash), Some(rate)) = (hash, rate) {
            let count = pair.heat.touch(key, hash);
            *rate = pair.heat.rate(count);
        }
        match pair.main.get(key, Which::Main, &now) {
            Got::Live(found) => return found,
            Got::Expired(entry) => pair.stale.keep(key, entry, &now),
            Got::Nothing => {}
        }
        if let Got::Live(found) = pair.hot.get(key, Which::Hot, &now) {
            return found;
        }
        pair.stale.lookup(key, &now)
    }

    /// Starts a background reload of `key`'s stale value: true when none
    /// is running and the back-off after failures has passed.
    pub(crate) fn begin_refresh(&self, key: &[u8]) -> bool {
        let now = now_nanos();
        self.inner.lock().stale.begin_refresh(key, now)
    }

    /// A reload of `key` (in the background or not) ended; `failed`: with
    /// an error that leaves the stale value in use. Otherwise the origin
    /// has answered, and the stale value goes.
    pub(crate) fn end_reload(&self, key: &[u8], failed: bool) {
        let now = now_nanos();
        self.inner.lock().stale.end_reload(key, failed, now);
    }

    /// The write generation of `key`'s stripe, to pass to
    /// [`Caches::add_unless_written`] once a load finishes.
    pub(crate) fn generation(&self, key: &[u8]) -> u64 {
        self.inner.lock().generations.of(key)
    }

    /// Stores `value` under `key` in one cache, evicts down to the limit,
    /// and returns the value, now sharing the cache's buffer (see
    /// `Payload::new` for when it is copied). A value that has already
    /// expired, or whose entry cannot fit the limit, is returned without
    /// being stored. With `since` = `Some(generation)` the value is stored
    /// only if no write of the key's stripe came after that generation was
    /// read (it is returned all the same).
    pub(crate) fn add_unless_written(
        &self,
        which: Which,
        key: &[u8],
        value: Value,
        since: Option<u64>,
    ) -> Value {
        let entry = Entry::new(value);
        let value = entry.value();
        self.store_unless_written(which, key, entry, since);
        value
    }

    /// Offers a copy of another owner's value to the hot cache, as
    /// [`Caches::add_unless_written`] would store it, but only if there is
    /// room or it is asked for more than the entry it would evict: its own
    /// count here, or the count `reported_rate` (the owner's requests per
    /// second) stands for, whichever is larger. Returns the value and
    /// whether it was admitted: `None` when it could not be stored at all
    /// (too large, already expired, or written since `since`).
    pub(crate) fn offer_hot(
        &self,
        key: &[u8],
        value: Value,
        since: u64,
        reported_rate: Option<f64>,
    ) -> (Value, Option<bool>) {
        let entry = Entry::new(value);
        let value = entry.value();
        if !self.fits(key, entry.payload.as_ref()) || entry.is_expired_at(now_nanos()) {
            return (value, None);
        }
        let hash = Heat::hash(key);
        let mut guard = self.inner.lock();
        let pair: &mut Pair = &mut guard;
        if pair.generations.written_since(key, since) {
            return (value, None);
        }
        let charge = (key.len() + entry.payload.len()) as u64 + self.overhead;
        let weighing = Weighing {
            main: &pair.main,
            hot: &pair.hot,
            stale: &pair.stale,
            heat: &pair.heat,
            limit: self.limit,
            overhead: self.overhead,
        };
        let admitted = weighing.admits(hash, charge, reported_rate);
        if admitted {
            self.store(pair, Which::Hot, key, entry);
        }
        (value, Some(admitted))
    }

    /// The keys asked for most here, hottest first: each with its
    /// estimated requests per second and the cache that holds it.
    pub(crate) fn hot_keys(&self) -> Vec<HotKey> {
        let pair = self.inner.lock();
        let top = pair.heat.top();
        top.into_iter()
            .map(|(key, count)| {
                let held = if pair.main.entries.contains(&key) {
                    Some(Which::Main)
                } else if pair.hot.entries.contains(&key) {
                    Some(Which::Hot)
                } else {
                    None
                };
                let rate = pair.heat.rate(count);
                HotKey { key, rate, held }
            })
            .collect()
    }

    /// Remembers that `key` does not exist until `expiry`, unless a write
    /// of its stripe came after generation `since`: whether it does.
    pub(crate) fn add_not_found(
        &self,
        key: &[u8],
        message: &str,
        expiry: Expiry,
        since: u64,
    ) -> bool {
        let entry = Entry::not_found(message, expiry);
        self.store_unless_written(Which::Main, key, entry, Some(since))
    }

    /// The work of [`Caches::add_unless_written`]: whether `entry` was
    /// stored.
    fn store_unless_written(
        &self,
        which: Which,
        key: &[u8],
        entry: Entry,
        since: Option<u64>,
    ) -> bool {
        if !self.fits(key, entry.payload.as_ref()) || entry.is_expired_at(now_nanos()) {
            return false;
        }
        let mut pair = self.inner.lock();
        if since.is_some_and(|since| pair.generations.written_since(key, since)) {
            return false;
        }
        self.store(&mut pair, which, key, entry);
        true
    }

    /// A write: removes `key` from every cache (a stale or not-found entry
    /// too), then stores `value` in the given cache, and bumps the key's
    /// write generation so that no load in flight stores an older value
    /// afterwards. A value that cannot fit the limit is refused
    /// (`Err(size)`) rather than flushing the cache; the key is removed all
    /// the same.
    pub(crate) fn write(&self, key: &[u8], value: Option<(Which, Value)>) -> Result<(), u64> {
        // Copied, if it must be, before the lock is taken.
        let entry = value.map(|(which, value)| (which, Entry::new(value)));
        let mut pair = self.inner.lock();
        pair.generations.bump(key);
        pair.remove_everywhere(key);
        let Some((which, entry)) = entry else {
            return Ok(());
        };
        if !self.fits(key, entry.payload.as_ref()) {
            return Err((key.len() as u64).saturating_add(entry.payload.len() as u64));
        }
        if !entry.is_expired_at(now_nanos()) {
            self.store(&mut pair, which, key, entry);
        }
        Ok(())
    }

    /// Stores `entry`, replacing any stale copy of `key`, then evicts down
    /// to the limit: stale entries first, then hot while it holds more
    /// than an eighth of main's bytes, then main.
    fn store(&self, pair: &mut Pair, which: Which, key: &[u8], entry: Entry) {
        pair.stale.remove(key);
        let cache = match which {
            Which::Main => &mut pair.main,
            Which::Hot => &mut pair.hot,
        };
        cache.put(key, entry);
        let overhead = self.overhead;
        while pair.charged(overhead) > self.limit {
            let evicted = if pair.stale.stats.items > 0 {
                pair.stale.evict_oldest()
            } else if pair.hot.charged(overhead) > pair.main.charged(overhead) / 8 {
                pair.hot.evict_oldest()
            } else {
                pair.main.evict_oldest()
            };
            if !evicted {
                break;
            }
        }
    }

    /// Stores an entry read back from a snapshot in main, as a load would;
    /// false when it cannot fit or has expired.
    #[cfg(feature = "binary")]
    pub(crate) fn restore(&self, key: &[u8], value: Value) -> bool {
        self.store_unless_written(Which::Main, key, Entry::new(value), None)
    }

    /// Main's values (not its not-founds), least recently used first, for
    /// a snapshot.
    #[cfg(feature = "binary")]
    pub(crate) fn main_entries(&self) -> Vec<(Box<[u8]>, Value)> {
        self.inner.lock().main.values()
    }

    /// The most bytes main and hot hold together, each entry charged its
    /// key, its value and [`ENTRY_OVERHEAD`].
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// The largest entry (key plus value) they can hold: the limit less
    /// one entry's overhead.
    pub(crate) fn max_entry(&self) -> u64 {
        self.limit.saturating_sub(self.overhead)
    }

    /// Whether an entry for `key` and `value` can be stored at all.
    fn fits(&self, key: &[u8], value: &[u8]) -> bool {
        let size = (key.len() as u64).saturating_add(value.len() as u64);
        self.limit > 0 && size <= self.max_entry()
    }

    /// (main, hot, stale) counters.
    pub(crate) fn stats(&self) -> (CacheStats, CacheStats, CacheStats) {
        let pair = self.inner.lock();
        (pair.main.stats, pair.hot.stats, pair.stale.stats)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::value::{Expiry, Grace};
    use bytes::Bytes;
    use std::time::Duration;

    /// What the tests of every cache module ask of the caches.
    impl Caches {
        /// Caches that charge no overhead per entry: `len(key) +
        /// len(value)` exactly, as golang counts, for tests that count
        /// bytes to the limit.
        pub(crate) fn without_overhead(limit: u64) -> Caches {
            Caches::charging(limit, 0)
        }

        /// [`Caches::lookup_rated`] without the rate.
        pub(crate) fn lookup(&self, key: &[u8]) -> Lookup {
            self.lookup_rated(key).0
        }

        /// The live value of `key`, if any.
        pub(crate) fn get(&self, key: &[u8]) -> Option<Value> {
            match self.lookup(key) {
                Lookup::Hit(value, _) => Some(value),
                _ => None,
            }
        }

        /// [`Caches::get`] at the instant `now` (Unix nanoseconds).
        pub(crate) fn get_at(&self, key: &[u8], now: i64) -> Option<Value> {
            match self.lookup_at(key, || now, Some(&mut 0.0)) {
                Lookup::Hit(value, _) => Some(value),
                _ => None,
            }
        }

        /// [`Caches::add_unless_written`] whatever was written before.
        pub(crate) fn add(&self, which: Which, key: &[u8], value: Value) -> Value {
            self.add_unless_written(which, key, value, None)
        }

        /// The estimated requests per second for `key` here.
        pub(crate) fn rate(&self, key: &[u8]) -> f64 {
            let hash = Heat::hash(key);
            let pair = self.inner.lock();
            pair.heat.rate(pair.heat.estimate(hash))
        }
    }

    /// A value that never expires.
    pub(crate) fn v(bytes: &[u8]) -> Value {
        Value::from(Bytes::copy_from_slice(bytes))
    }

    /// A value expiring `at` with `if_error` and `while_revalidate` seconds
    /// of grace.
    pub(crate) fn graced(bytes: &[u8], at: i64, if_error: u64, while_revalidate: u64) -> Value {
        let secs = Duration::from_secs;
        Value::new(Bytes::copy_from_slice(bytes), Expiry::At(at))
            .with_grace(Grace::new(secs(if_error), secs(while_revalidate)))
    }

    pub(crate) const SEC: i64 = 1_000_000_000;

    /// Looks `key` up `times` times: a key asked for that often.
    pub(crate) fn ask(caches: &Caches, key: &[u8], times: usize) {
        for _ in 0..times {
            let _ = caches.lookup(key);
        }
    }

    #[test]
    fn evicts_least_recently_used_from_main() {
        // Three 10-byte entries fit in 30 bytes; a fourth evicts the LRU one.
        let caches = Caches::without_overhead(30);
        for key in [b"k1", b"k2", b"k3"] {
            caches.add(Which::Main, key, v(b"01234567"));
        }
        assert!(caches.get(b"k1").is_some()); // k1 is now most recent
        caches.add(Which::Main, b"k4", v(b"01234567"));
        assert!(caches.get(b"k2").is_none());
        for key in [b"k1", b"k3", b"k4"] {
            assert!(caches.get(key).is_some());
        }
        let (main, _, _) = caches.stats();
        assert_eq!((main.bytes, main.items, main.evictions), (30, 3, 1));
    }

    #[test]
    fn hot_is_the_victim_while_above_an_eighth_of_main() {
        // main: 80 bytes, hot: 20 bytes (> 80/8 = 10): hot gives way first.
        let caches = Caches::without_overhead(100);
        for i in 0..8 {
            caches.add(Which::Main, format!("m{i}").as_bytes(), v(b"01234567"));
        }
        caches.add(Which::Hot, b"h0", v(b"01234567"));
        caches.add(Which::Hot, b"h1", v(b"01234567"));
        caches.add(Which::Main, b"m8", v(b"01234567"));
        let (main, hot, _) = caches.stats();
        assert_eq!((main.items, main.evictions), (9, 0));
        assert_eq!((hot.items, hot.evictions), (1, 1));
        assert!(caches.get(b"h0").is_none(), "oldest hot entry evicted");
        assert!(caches.get(b"h1").is_some());
    }

    #[test]
    fn main_is_the_victim_while_hot_is_small() {
        // main: 90 bytes, hot: 10 bytes (<= 90/8 = 11): main gives way.
        let caches = Caches::without_overhead(100);
        for i in 0..9 {
            caches.add(Which::Main, format!("m{i}").as_bytes(), v(b"01234567"));
        }
        caches.add(Which::Hot, b"h0", v(b"01234567"));
        caches.add(Which::Hot, b"h1", v(b"01234567"));
        // Total 110: hot 20 > main 90/8 = 11, so hot evicted h0.
        let (main, hot, _) = caches.stats();
        assert_eq!((main.items, hot.items), (9, 1));
        caches.add(Which::Main, b"m9", v(b"01234567"));
        // Total 110: hot 10 <= main 100/8 = 12, so main evicts m0.
        let (main, hot, _) = caches.stats();
        assert_eq!((main.items, main.evictions), (9, 1));
        assert_eq!((hot.items, hot.evictions), (1, 1));
        assert!(caches.get(b"m0").is_none());
    }

    #[test]
    fn an_item_bigger_than_the_limit_is_served_but_not_stored() {
        let caches = Caches::without_overhead(10);
        caches.add(Which::Main, b"a", v(b"1"));
        let value = caches.add(Which::Main, b"big", v(&[7u8; 20]));
        assert_eq!(value.bytes.len(), 20, "the caller still gets the value");
        let (main, _, _) = caches.stats();
        assert_eq!((main.bytes, main.items, main.evictions), (2, 1, 0));
        assert!(caches.get(b"a").is_some(), "the other entries stay");
        assert!(caches.get(b"big").is_none());
    }

    #[test]
    fn size_zero_disables_the_caches() {
        let caches = Caches::without_overhead(0);
        caches.add(Which::Main, b"k", v(b"v"));
        assert!(caches.get(b"k").is_none());
        assert_eq!(
            caches.stats(),
            (
                CacheStats::default(),
                CacheStats::default(),
                CacheStats::default()
            )
        );
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
        let (main, _, _) = caches.stats();
        assert_eq!((main.items, main.bytes, main.evictions), (0, 0, 0));
    }

    #[test]
    fn a_write_removes_both_copies_and_refuses_what_cannot_fit() {
        let caches = Caches::without_overhead(20);
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
        let (main, hot, _) = caches.stats();
        assert_eq!((main.items, hot.items), (1, 1));
    }

    #[test]
    fn stale_entries_are_the_first_to_go() {
        // Room for three 10-byte entries.
        let caches = Caches::without_overhead(30);
        let now = now_nanos();
        caches.add(Which::Main, b"s1", graced(b"01234567", now + SEC, 60, 0));
        caches.add(Which::Main, b"m1", v(b"01234567"));
        crate::value::advance_clock(Duration::from_secs(2));
        assert!(matches!(caches.lookup(b"s1"), Lookup::Stale(_)));
        caches.add(Which::Main, b"m2", v(b"01234567"));
        caches.add(Which::Main, b"m3", v(b"01234567"));
        let (main, _, stale) = caches.stats();
        assert_eq!(
            (main.items, main.evictions),
            (3, 1),
            "only s1 left main, expired"
        );
        assert_eq!(
            (stale.items, stale.evictions),
            (0, 1),
            "the stale entry went first"
        );
        for key in [b"m1", b"m2", b"m3"] {
            assert!(caches.get(key).is_some());
        }
    }

    #[test]
    fn not_founds_are_remembered_until_they_expire_and_writes_clear_them() {
        let caches = Caches::new(1000);
        let now = now_nanos();
        let until = Expiry::At(now + 60 * SEC);
        let since = caches.generation(b"k");
        caches.add_not_found(b"k", "origin returned 404 Not Found", until, since);
        assert_eq!(
            caches.lookup_at(b"k", || now, Some(&mut 0.0)),
            Lookup::NotFound("origin returned 404 Not Found".into(), until)
        );
        let (main, _, _) = caches.stats();
        assert_eq!(
            (main.items, main.bytes),
            (1, 1 + 29),
            "counted as key plus message"
        );
        #[cfg(feature = "binary")]
        assert!(caches.main_entries().is_empty(), "not a value to snapshot");
        assert_eq!(
            caches.lookup_at(b"k", || now + 61 * SEC, Some(&mut 0.0)),
            Lookup::Miss,
            "expired"
        );
        // A write clears a not-found, and one begun before it is not stored.
        caches.add_not_found(b"k", "gone", until, caches.generation(b"k"));
        let before = caches.generation(b"k");
        caches.write(b"k", None).unwrap();
        assert_eq!(caches.lookup(b"k"), Lookup::Miss);
        caches.add_not_found(b"k", "gone", until, before);
        assert_eq!(
            caches.lookup(b"k"),
            Lookup::Miss,
            "written after that load began"
        );
        // And a write clears a stale value.
        caches.add(Which::Main, b"s", graced(b"v", now_nanos() + SEC, 60, 60));
        crate::value::advance_clock(Duration::from_secs(2));
        assert!(matches!(caches.lookup(b"s"), Lookup::Stale(_)));
        caches.write(b"s", None).unwrap();
        assert_eq!(caches.lookup(b"s"), Lookup::Miss);
        assert_eq!(caches.stats().2.items, 0);
    }

    #[test]
    fn the_limit_bounds_tiny_entries_with_their_overhead() {
        // Room for ten entries of 2 + 8 bytes and their overhead.
        let caches = Caches::new(10 * (10 + ENTRY_OVERHEAD));
        for i in 0..20 {
            caches.add(Which::Main, format!("{i:02}").as_bytes(), v(b"01234567"));
        }
        let (main, _, _) = caches.stats();
        assert_eq!((main.items, main.evictions), (10, 10));
        assert_eq!(main.bytes, 100, "Bytes counts keys and values, as golang");
        // Not-founds too: a storm of them stays within the limit.
        let until = Expiry::At(now_nanos() + 60 * SEC);
        for i in 0..1000 {
            let key = format!("missing-{i}");
            let since = caches.generation(key.as_bytes());
            caches.add_not_found(
                key.as_bytes(),
                "origin returned 404 Not Found",
                until,
                since,
            );
        }
        let (main, _, _) = caches.stats();
        let charged = main.bytes + main.items * ENTRY_OVERHEAD;
        assert!(charged <= caches.limit(), "{charged}");
        assert_eq!(main.items, caches.limit() / (11 + 29 + ENTRY_OVERHEAD));
        // The largest entry leaves room for its own overhead.
        assert_eq!(caches.max_entry(), caches.limit() - ENTRY_OVERHEAD);
        let too_big = vec![0u8; caches.max_entry() as usize];
        assert_eq!(
            caches.write(b"k", Some((Which::Main, v(&too_big)))),
            Err(1 + too_big.len() as u64)
        );
    }
}
