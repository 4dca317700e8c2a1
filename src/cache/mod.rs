//! The two LRU caches of a group: `main` holds values this node owns and
//! loaded itself, `hot` mirrors a sample of values fetched from other peers.
//!
//! Both are bounded together by the group's cache size. Each entry is
//! charged `len(key) + len(value)`, as golang/groupcache counts it, plus
//! [`ENTRY_OVERHEAD`] for the memory it takes besides them, so that the
//! limit bounds the memory of tiny entries (a storm of not-founds) as well
//! as of large ones; the `Bytes` counters stay golang's. After every add
//! the victim rule runs: while the charged total is over the limit, evict
//! the oldest entry of `hot` if `hot > main / 8` (charged bytes), else of
//! `main`. Unlike golang, replacing an existing key subtracts the old
//! entry's bytes, so the count never drifts above what is really held, and
//! an entry larger than the whole limit is not stored at all (it would only
//! flush the others).
//!
//! An entry may carry an expiry. An expired entry is a miss: it is removed
//! when looked up and counted in `Evictions` (as mailgun's and
//! groupcache-go's caches count it) and in `Expired`. Nothing sweeps in the
//! background; an expired entry nobody asks for leaves by the LRU rule.
//!
//! A main entry whose value has a [`Grace`] is not dropped when it expires:
//! the lookup that finds it expired moves it to a third list, `stale`,
//! where it waits out its grace for the group to serve it while a reload
//! fails or runs in the background. Stale entries count against the limit
//! and are the first to be evicted. The stale list also keeps, per key,
//! whether a reload is running and when the next may start after failures
//! (back-off doubling from 1 s to 10 s).
//!
//! Main may also hold not-founds: an origin's "no such key", remembered
//! until its expiry, counted as `len(key) + len(message)` (and charged the
//! overhead) and evicted like values.
//!
//! Every lookup counts its key in the group's [`Heat`] sketch, under the
//! same lock. A copy offered to the hot cache ([`Caches::offer_hot`]) is
//! admitted when there is room, or when its count (or the owner's reported
//! rate) beats the summed counts of every entry the victim rule would evict
//! for it (TinyLFU's admission, weighed by size): the hot cache fills with
//! what is asked for most, not with whatever came last, and one large copy
//! cannot push out many entries that are asked for more together.
//!
//! Writes (a Set or Remove from a user or a peer) bump a write generation
//! of the key's stripe. A load notes the generation before it starts and
//! stores its value only if no write came in between, so a load that began
//! before a write can never put the older value back afterwards.
//!
//! Each list is an [`Lru`] of [`Entry`]s: an entry's expiry and grace sit
//! in its slot, and its value in a buffer of exactly the value's length
//! ([`Payload`]), shared with the replies that send it.

mod heat;
mod lru;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::cache::heat::Heat;
use crate::cache::lru::{Lru, Pushed};
use crate::value::{now_nanos, Expiry, Grace, Value};

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

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A live value, and the cache that held it.
    Hit(Value, Which),
    /// A remembered not-found: the origin's message, until `expiry`.
    NotFound(String, Expiry),
    /// An expired value still within its grace.
    Stale(StaleHit),
    /// Nothing usable.
    Miss,
}

/// An expired value within its grace, and what the group may do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StaleHit {
    /// The value, with the expiry that has passed.
    pub value: Value,
    /// Within its `stale-while-revalidate` window: answer at once.
    pub revalidating: bool,
    /// A reload has failed since it expired: answer at once and reload in
    /// the background, as the back-off allows.
    pub failing: bool,
}

/// One of the keys asked for most at a node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HotKey {
    pub key: Box<[u8]>,
    /// Estimated requests per second here.
    pub rate: f64,
    /// The cache holding it, if any.
    pub held: Option<Which>,
}

/// Main and hot caches behind one lock, so the victim rule sees both.
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

/// The most entries a hot copy's admission weighs one by one; beyond them
/// the rest are taken to be as hot, per byte, as those weighed.
const MOST_WEIGHED: usize = 1024;

struct Pair {
    main: List<Entry>,
    hot: List<Entry>,
    /// Expired main entries within their grace.
    stale: List<Stale>,
    /// How often each key is asked for here.
    heat: Heat,
    /// Write generations, one per stripe of keys (by hash). A write to any
    /// key of a stripe bumps it: loads of the stripe's other keys in flight
    /// at that moment are then served but not stored, which costs a reload
    /// and never serves anything stale.
    generations: Box<[u64; STRIPES]>,
}

/// How many write generations a group keeps.
const STRIPES: usize = 1024;

/// The wait after a stale key's first failed reload; it doubles with each
/// failure up to [`MAX_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_secs(1);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

fn stripe(key: &[u8]) -> usize {
    (crate::consistenthash::fnv1_64(key) % STRIPES as u64) as usize
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

/// An entry as a cache holds it, in its slot of an [`Lru`]: 24 bytes
/// besides the key and the value's buffer.
#[derive(Debug, Clone)]
struct Entry {
    /// The value, or a not-found's message.
    payload: Payload,
    /// Unix nanoseconds; 0: never.
    expires: i64,
    /// Seconds of `stale-if-error`.
    if_error: u32,
    /// Seconds of `stale-while-revalidate`; [`NOT_FOUND`] for a not-found.
    while_revalidate: u32,
}

/// Marks a not-found entry (no grace is this long: they stop at 2^31 s).
const NOT_FOUND: u32 = u32::MAX;

impl Entry {
    fn new(value: Value) -> Entry {
        let grace = value.grace.unwrap_or_default();
        // Seconds of at most 2^31, by `Grace`'s own rule.
        let seconds = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX - 1);
        Entry {
            payload: Payload::new(value.bytes),
            expires: expires(value.expiry),
            if_error: seconds(grace.if_error()),
            while_revalidate: seconds(grace.while_revalidate()),
        }
    }

    fn not_found(message: &str, expiry: Expiry) -> Entry {
        Entry {
            payload: Payload::copy(message.as_bytes()),
            expires: expires(expiry),
            if_error: 0,
            while_revalidate: NOT_FOUND,
        }
    }

    fn is_not_found(&self) -> bool {
        self.while_revalidate == NOT_FOUND
    }

    fn expiry(&self) -> Expiry {
        Expiry::from_wire(Some(self.expires))
    }

    fn grace(&self) -> Grace {
        if self.is_not_found() {
            return Grace::NONE;
        }
        let secs = |s: u32| Duration::from_secs(s.into());
        Grace::new(secs(self.if_error), secs(self.while_revalidate))
    }

    /// What a lookup that finds it live answers, in the cache `which`.
    fn found(&self, which: Which) -> Lookup {
        if self.is_not_found() {
            let message = String::from_utf8_lossy(self.payload.as_ref()).into_owned();
            return Lookup::NotFound(message, self.expiry());
        }
        Lookup::Hit(self.value(), which)
    }

    /// The value, sharing the entry's buffer.
    fn value(&self) -> Value {
        Value::new(self.payload.to_bytes(), self.expiry()).with_grace(self.grace())
    }

    /// True when it is a miss at `now`, grace or not.
    fn is_expired_at(&self, now: i64) -> bool {
        self.expires != 0 && self.expires <= now
    }

    /// The instant its grace ends (Unix nanoseconds), when it has one.
    fn grace_ends(&self) -> Option<i64> {
        let grace = self.grace();
        (self.expires != 0 && !grace.is_none())
            .then(|| self.expires.saturating_add(grace.longest_nanos()))
    }
}

/// A value's bytes as a cache keeps them: one buffer of exactly their
/// length, shared by reference count with the replies that send it.
#[derive(Debug, Clone)]
struct Payload(Arc<Box<[u8]>>);

impl Payload {
    /// Keeps `bytes` without copying them when they alone own a buffer of
    /// their exact length (a body the HTTP client read), and copies them
    /// once otherwise: a slice of a larger buffer (a peer's reply, a
    /// request body) would keep all of it, and a buffer with room to spare
    /// takes a larger size class of the allocator.
    fn new(bytes: Bytes) -> Payload {
        let bytes = Vec::from(bytes);
        if bytes.len() == bytes.capacity() {
            Payload(Arc::new(bytes.into_boxed_slice()))
        } else {
            Payload::copy(&bytes)
        }
    }

    fn copy(bytes: &[u8]) -> Payload {
        Payload(Arc::new(bytes.into()))
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// The bytes, shared rather than copied: each call allocates a
    /// `Bytes`' small header that holds one count of the buffer.
    fn to_bytes(&self) -> Bytes {
        Bytes::from_owner(self.clone())
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// An expiry as an entry keeps it: 0 for never (an expiry at the epoch
/// itself has passed like any other, so it becomes 1).
fn expires(expiry: Expiry) -> i64 {
    expiry.to_wire().map_or(0, |at| at.max(1))
}

/// A stale entry, and how its reloads are going.
struct Stale {
    entry: Entry,
    /// Reloads that failed since it went stale.
    failures: u32,
    /// No reload starts before this instant (Unix nanoseconds).
    retry_at: i64,
    /// A background reload is running.
    refreshing: bool,
}

/// The length of what an entry holds besides its key.
trait Held {
    fn len(&self) -> usize;
}

impl Held for Entry {
    fn len(&self) -> usize {
        self.payload.len()
    }
}

impl Held for Stale {
    fn len(&self) -> usize {
        self.entry.payload.len()
    }
}

/// One of the lists: its entries and its counters.
struct List<E> {
    entries: Lru<E>,
    stats: CacheStats,
}

impl Caches {
    /// Caches holding at most `limit` bytes together, each entry charged
    /// [`ENTRY_OVERHEAD`] besides its key and value; 0 disables caching.
    pub(crate) fn new(limit: u64) -> Caches {
        Caches::charging(limit, ENTRY_OVERHEAD)
    }

    /// Caches that charge no overhead per entry: `len(key) + len(value)`
    /// exactly, as golang counts, for tests that count bytes to the limit.
    #[cfg(test)]
    fn without_overhead(limit: u64) -> Caches {
        Caches::charging(limit, 0)
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
                generations: Box::new([0; STRIPES]),
            }),
        }
    }

    /// Looks `key` up in main, then hot, then stale. Counts a get (and a
    /// hit) on main and hot for each probe, as golang does; an expired
    /// entry is removed (or moved to stale, if it has a grace) and is a
    /// miss there.
    #[cfg(test)]
    pub(crate) fn lookup(&self, key: &[u8]) -> Lookup {
        self.lookup_rated(key).0
    }

    /// [`Caches::lookup`], with the key's estimated requests per second
    /// here, this one counted (for the `minute_qps` of an owner's reply).
    pub(crate) fn lookup_rated(&self, key: &[u8]) -> (Lookup, f64) {
        let mut rate = 0.0;
        // The clock is read only for entries that expire.
        let found = self.lookup_at(key, now_nanos, Some(&mut rate));
        (found, rate)
    }

    /// [`Caches::lookup`] without counting the key again: a load's second
    /// look.
    pub(crate) fn lookup_again(&self, key: &[u8]) -> Lookup {
        self.lookup_at(key, now_nanos, None)
    }

    /// [`Caches::lookup`], with `now` telling the instant (Unix
    /// nanoseconds); with `rate`, a request for the key is counted and its
    /// estimated rate written there.
    fn lookup_at(&self, key: &[u8], now: impl Fn() -> i64, rate: Option<&mut f64>) -> Lookup {
        if self.limit == 0 {
            return Lookup::Miss;
        }
        let hash = rate.is_some().then(|| Heat::hash(key));
        let mut guard = self.lock();
        // Through a plain reference, so the lists borrow separately.
        let pair: &mut Pair = &mut guard;
        if let (Some(hash), Some(rate)) = (hash, rate) {
            let count = pair.heat.touch(key, hash);
            *rate = pair.heat.rate(count);
        }
        match pair.main.get(key, Which::Main, &now) {
            Got::Live(found) => return found,
            Got::Expired(entry) => {
                if entry.grace_ends().is_some_and(|end| now() < end) {
                    let stale = Stale {
                        entry,
                        failures: 0,
                        retry_at: 0,
                        refreshing: false,
                    };
                    pair.stale.put(key, stale);
                }
            }
            Got::Nothing => {}
        }
        if let Got::Live(found) = pair.hot.get(key, Which::Hot, &now) {
            return found;
        }
        if pair.stale.stats.items == 0 {
            return Lookup::Miss;
        }
        let Some(stale) = pair.stale.entries.get(key) else {
            return Lookup::Miss;
        };
        let entry = &stale.entry;
        let now = now();
        if entry.grace_ends().is_none_or(|end| now >= end) {
            pair.stale.remove(key);
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

    /// The live value of `key`, if any (tests).
    #[cfg(test)]
    pub(crate) fn get(&self, key: &[u8]) -> Option<Value> {
        match self.lookup(key) {
            Lookup::Hit(value, _) => Some(value),
            _ => None,
        }
    }

    /// [`Caches::get`] at the instant `now` (Unix nanoseconds).
    #[cfg(test)]
    fn get_at(&self, key: &[u8], now: i64) -> Option<Value> {
        match self.lookup_at(key, || now, Some(&mut 0.0)) {
            Lookup::Hit(value, _) => Some(value),
            _ => None,
        }
    }

    /// Starts a background reload of `key`'s stale value: true when none
    /// is running and the back-off after failures has passed.
    pub(crate) fn begin_refresh(&self, key: &[u8]) -> bool {
        let now = now_nanos();
        let mut pair = self.lock();
        match pair.stale.entries.peek_mut(key) {
            Some(stale) if !stale.refreshing && now >= stale.retry_at => {
                stale.refreshing = true;
                true
            }
            _ => false,
        }
    }

    /// A reload of `key` (in the background or not) ended; `failed`: with
    /// an error that leaves the stale value in use. Otherwise the origin
    /// has answered, and the stale value goes.
    pub(crate) fn end_reload(&self, key: &[u8], failed: bool) {
        let now = now_nanos();
        let mut pair = self.lock();
        if !failed {
            pair.stale.remove(key);
            return;
        }
        let Some(stale) = pair.stale.entries.peek_mut(key) else {
            return;
        };
        // Waiters of one failed load all end it: count it once.
        if stale.refreshing || now >= stale.retry_at {
            stale.failures = stale.failures.saturating_add(1);
            let wait = FIRST_RETRY_WAIT
                .saturating_mul(1 << (stale.failures - 1).min(8))
                .min(MAX_RETRY_WAIT);
            stale.retry_at = now.saturating_add(wait.as_nanos() as i64);
        }
        stale.refreshing = false;
    }

    /// The write generation of `key`'s stripe, to pass to
    /// [`Caches::add_unless_written`] once a load finishes.
    pub(crate) fn generation(&self, key: &[u8]) -> u64 {
        self.lock().generations[stripe(key)]
    }

    /// Stores `value` under `key` in one cache, evicts down to the limit,
    /// and returns the value, now sharing the cache's buffer (see
    /// [`Payload::new`] for when it is copied). A value that has already
    /// expired, or whose entry cannot fit the limit, is returned without
    /// being stored.
    #[cfg(test)]
    pub(crate) fn add(&self, which: Which, key: &[u8], value: Value) -> Value {
        self.add_unless_written(which, key, value, None)
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
        let mut guard = self.lock();
        let pair: &mut Pair = &mut guard;
        if pair.generations[stripe(key)] != since {
            return (value, None);
        }
        let own = pair.heat.estimate(hash);
        let reported = reported_rate.map_or(0, |rate| pair.heat.count_for_rate(rate));
        let charge = (key.len() + entry.payload.len()) as u64 + self.overhead;
        let admitted = self.beats_victims(pair, charge, own.max(reported));
        if admitted {
            self.store(pair, Which::Hot, key, entry);
        }
        (value, Some(admitted))
    }

    /// Whether a hot copy charged `charge` bytes and asked for `count`
    /// times may take its room: true when there is room (or stale entries
    /// make it), or when `count` beats the summed counts of every entry the
    /// victim rule would evict for it, in the order it would evict them.
    /// False when the rule would evict the copy itself. Past
    /// [`MOST_WEIGHED`] victims, the rest are taken to be as hot per byte
    /// as those weighed.
    fn beats_victims(&self, pair: &Pair, charge: u64, count: u32) -> bool {
        let overhead = self.overhead;
        let over = (pair.charged(overhead) + charge).saturating_sub(self.limit);
        // Stale entries go first, whatever their heat.
        let Some(over) = over.checked_sub(pair.stale.charged(overhead)) else {
            return true;
        };
        if over == 0 {
            return true;
        }
        let mut hot = pair.hot.charged(overhead) + charge;
        let mut main = pair.main.charged(overhead);
        let mut hot_victims = pair.hot.entries.iter_oldest_first();
        let mut main_victims = pair.main.entries.iter_oldest_first();
        let (mut freed, mut weighed) = (0u64, 0u64);
        for _ in 0..MOST_WEIGHED {
            let from_hot = hot > main / 8;
            let victim = if from_hot {
                hot_victims.next()
            } else {
                main_victims.next()
            };
            // Hot has nothing older: the copy itself would go.
            let Some((key, entry)) = victim else {
                return false;
            };
            let bytes = (key.len() + entry.len()) as u64 + overhead;
            if from_hot {
                hot -= bytes;
            } else {
                main -= bytes;
            }
            weighed += u64::from(pair.heat.estimate(Heat::hash(key)));
            if weighed >= u64::from(count) {
                return false;
            }
            freed += bytes;
            if freed >= over {
                return true;
            }
        }
        // Without an overhead (tests), empty entries could free nothing.
        (count as f64) > weighed as f64 * over as f64 / freed.max(1) as f64
    }

    /// The estimated requests per second for `key` here.
    #[cfg(test)]
    pub(crate) fn rate(&self, key: &[u8]) -> f64 {
        let hash = Heat::hash(key);
        let pair = self.lock();
        pair.heat.rate(pair.heat.estimate(hash))
    }

    /// The keys asked for most here, hottest first: each with its
    /// estimated requests per second and the cache that holds it.
    pub(crate) fn hot_keys(&self) -> Vec<HotKey> {
        let pair = self.lock();
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
        let mut pair = self.lock();
        if since.is_some_and(|since| pair.generations[stripe(key)] != since) {
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
        let mut pair = self.lock();
        pair.generations[stripe(key)] += 1;
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
    pub(crate) fn restore(&self, key: &[u8], value: Value) -> bool {
        self.store_unless_written(Which::Main, key, Entry::new(value), None)
    }

    /// Main's values (not its not-founds), least recently used first, for
    /// a snapshot.
    pub(crate) fn main_entries(&self) -> Vec<(Box<[u8]>, Value)> {
        let pair = self.lock();
        let entries = pair.main.entries.iter_oldest_first();
        let values = entries.filter(|(_, entry)| !entry.is_not_found());
        values.map(|(k, entry)| (k.into(), entry.value())).collect()
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
        let pair = self.lock();
        (pair.main.stats, pair.hot.stats, pair.stale.stats)
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

/// What [`List::get`] found.
enum Got {
    /// Live: what it answers.
    Live(Lookup),
    /// Expired, and taken out (counted as an eviction).
    Expired(Entry),
    Nothing,
}

impl List<Entry> {
    /// Counts a get; a live entry is a hit, an expired one is taken out.
    /// `which`: this list.
    fn get(&mut self, key: &[u8], which: Which, now: impl Fn() -> i64) -> Got {
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
}

impl<E: Held> List<E> {
    fn new() -> List<E> {
        List {
            entries: Lru::new(),
            stats: CacheStats::default(),
        }
    }

    fn put(&mut self, key: &[u8], entry: E) {
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
    fn remove(&mut self, key: &[u8]) {
        if let Some((key, entry)) = self.entries.remove(key) {
            self.forget(&key, &entry);
        }
    }

    fn evict_oldest(&mut self) -> bool {
        let Some((key, entry)) = self.entries.pop_oldest() else {
            return false;
        };
        self.forget(&key, &entry);
        true
    }

    /// The bytes charged for its entries: keys, values and `overhead` each.
    fn charged(&self, overhead: u64) -> u64 {
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
    fn a_value_alone_in_a_buffer_of_its_size_is_kept_and_others_are_copied() {
        let caches = Caches::new(10_000);
        let alone = Bytes::from(vec![1u8; 1024]);
        let at = alone.as_ptr();
        let served = caches.add(Which::Main, b"alone", Value::from(alone));
        assert_eq!(served.bytes.as_ptr(), at, "not copied");
        let hit = caches.get(b"alone").unwrap().bytes;
        assert_eq!(hit.as_ptr(), at, "hits share it");
        // A value sliced out of a larger buffer, such as a peer's reply.
        let slice = Bytes::from(vec![2u8; 2048]).slice(100..1124);
        let at = slice.as_ptr();
        let served = caches.add(Which::Main, b"slice", Value::from(slice));
        assert_ne!(served.bytes.as_ptr(), at, "copied out");
        assert_eq!(served.bytes, vec![2u8; 1024]);
        let hit = caches.get(b"slice").unwrap().bytes;
        assert_eq!(hit.as_ptr(), served.bytes.as_ptr());
    }

    #[test]
    fn an_entry_takes_24_bytes_of_its_slot() {
        assert_eq!(std::mem::size_of::<Entry>(), 24);
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

    /// A value expiring `at` with `if_error` and `while_revalidate` seconds
    /// of grace.
    fn graced(bytes: &[u8], at: i64, if_error: u64, while_revalidate: u64) -> Value {
        let secs = Duration::from_secs;
        Value::new(Bytes::copy_from_slice(bytes), Expiry::At(at))
            .with_grace(Grace::new(secs(if_error), secs(while_revalidate)))
    }

    const SEC: i64 = 1_000_000_000;

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
        let pair = caches.lock();
        let entry = pair.stale.entries.peek(b"k").unwrap();
        assert_eq!(entry.failures, 1);
        let wait = entry.retry_at - now_nanos();
        assert!(wait > SEC / 2 && wait <= SEC, "{wait}");
        drop(pair);
        // Once the wait has passed, one refresh at a time.
        caches.lock().stale.entries.peek_mut(b"k").unwrap().retry_at = 0;
        assert!(caches.begin_refresh(b"k"));
        assert!(!caches.begin_refresh(b"k"), "already refreshing");
        caches.end_reload(b"k", true);
        assert_eq!(caches.lock().stale.entries.peek(b"k").unwrap().failures, 2);
        // The origin answered: the stale value goes.
        caches.end_reload(b"k", false);
        assert_eq!(caches.lookup(b"k"), Lookup::Miss);
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

    /// Looks `key` up `times` times: a key asked for that often.
    fn ask(caches: &Caches, key: &[u8], times: usize) {
        for _ in 0..times {
            let _ = caches.lookup(key);
        }
    }

    #[test]
    fn hot_copies_are_admitted_by_heat() {
        // Room for ten 10-byte entries; five owned values.
        let caches = Caches::without_overhead(100);
        for i in 0..5 {
            caches.add(Which::Main, format!("m{i}").as_bytes(), v(b"01234567"));
        }
        // While there is room, every copy is kept.
        for i in 0..5 {
            let key = format!("h{i}");
            ask(&caches, key.as_bytes(), 5);
            let since = caches.generation(key.as_bytes());
            let offered = caches.offer_hot(key.as_bytes(), v(b"01234567"), since, None);
            assert_eq!(offered.1, Some(true));
        }
        // Full: a key asked for once loses to the coldest hot copy...
        ask(&caches, b"c0", 1);
        let since = caches.generation(b"c0");
        assert_eq!(
            caches.offer_hot(b"c0", v(b"01234567"), since, None).1,
            Some(false)
        );
        assert!(caches.get(b"c0").is_none());
        // ...unless its owner reports it hot.
        let (_, admitted) = caches.offer_hot(b"c0", v(b"01234567"), since, Some(1e6));
        assert_eq!(admitted, Some(true), "the owner's rate counts");
        // A key asked for more than the coldest copy replaces it.
        ask(&caches, b"w0", 20);
        let since = caches.generation(b"w0");
        assert!(caches.offer_hot(b"w0", v(b"01234567"), since, None).1 == Some(true));
        assert!(caches.get(b"w0").is_some());
        // Owned values were never evicted for hot copies.
        for i in 0..5 {
            assert!(caches.get(format!("m{i}").as_bytes()).is_some(), "m{i}");
        }
        let (main, hot, _) = caches.stats();
        assert_eq!((main.items, main.evictions), (5, 0));
        assert_eq!((hot.items, hot.evictions), (5, 2));
    }

    #[test]
    fn a_large_copy_does_not_push_out_many_warmer_entries() {
        // Hot full of 80 entries asked for 5 times each.
        let charge = |key: &[u8], value: usize| key.len() as u64 + value as u64 + ENTRY_OVERHEAD;
        let small = |i: usize| format!("s{i:02}");
        let caches = Caches::new(80 * charge(b"s00", 100));
        for i in 0..80 {
            let key = small(i);
            ask(&caches, key.as_bytes(), 5);
            let since = caches.generation(key.as_bytes());
            let offered = caches.offer_hot(key.as_bytes(), v(&[1; 100]), since, None);
            assert_eq!(offered.1, Some(true), "{key}: room for it");
        }
        // A value the size of 70 of them, asked for 6 times: more than any
        // one of them, less than the 70 together.
        let big = vec![2u8; 70 * charge(b"s00", 100) as usize];
        ask(&caches, b"big", 6);
        let since = caches.generation(b"big");
        let (served, admitted) = caches.offer_hot(b"big", v(&big), since, None);
        assert_eq!(served.bytes.len(), big.len(), "served all the same");
        assert_eq!(admitted, Some(false));
        let (_, hot, _) = caches.stats();
        assert_eq!((hot.items, hot.evictions), (80, 0), "none pushed out");
        // Reported hotter than all of them together, it takes their room.
        let (_, admitted) = caches.offer_hot(b"big", v(&big), since, Some(1e6));
        assert_eq!(admitted, Some(true));
        assert!(caches.get(b"big").is_some());
        assert_eq!(caches.stats().1.evictions, 71);
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

    #[test]
    fn owned_values_push_hot_copies_out_and_a_write_stops_an_offer() {
        let caches = Caches::without_overhead(100);
        for i in 0..10 {
            let key = format!("h{i}");
            let since = caches.generation(key.as_bytes());
            caches.offer_hot(key.as_bytes(), v(b"01234567"), since, None);
        }
        // Hot holds everything; owned values take its room back.
        for i in 0..8 {
            caches.add(Which::Main, format!("m{i}").as_bytes(), v(b"01234567"));
        }
        let (main, hot, _) = caches.stats();
        assert_eq!((main.items, hot.items), (8, 2));
        // A copy fetched before a write is not kept.
        let since = caches.generation(b"x");
        caches.write(b"x", None).unwrap();
        assert_eq!(caches.offer_hot(b"x", v(b"01234567"), since, None).1, None);
        // The rate of a key follows its lookups.
        ask(&caches, b"m0", 30);
        assert!(caches.rate(b"m0") > caches.rate(b"m1"));
        let top = caches.hot_keys();
        assert_eq!(&*top[0].key, b"m0");
        assert_eq!(top[0].held, Some(Which::Main));
    }
}
