//! A group: a named cache namespace with its getter, its two caches and its
//! stats, and the `get` path that ties them together (golang's `Group`).
//!
//! A user get runs: main/hot lookup → singleflight → owner by the ring →
//! fetch from the owner (1 in 10 remote values mirrored into the hot cache)
//! → if that fails, load locally → getter, value into the main cache.
//! The group reaches its peers only through [`PickPeer`] and [`FetchPeer`],
//! and stops waiting for an owner after the pool's fetch timeout whatever
//! the peer does.
//! Every value carries its expiry: a copy in the hot cache keeps the owner's
//! expiry, and a value that has already expired (one its origin marked
//! uncacheable) answers the gets waiting for it but is cached nowhere.
//!
//! Bad days at the origin (RFC 5861): an expired main value within its
//! `stale-while-revalidate` window is answered at once while one reload
//! runs in the background; within its `stale-if-error` window, a reload
//! that fails (an error, a timeout, a 5xx) is answered with the stale value
//! instead, and later gets answer at once and retry in the background, as
//! the back-off allows. A reload that has not ended within the group's
//! stale wait is answered stale too, and counts as failed for the
//! back-off; it runs on to its own deadline and its value, if one comes,
//! replaces the stale one. A not-found is remembered for its negative lifetime
//! and answered from the cache until then.
//!
//! Writes ([`Group::write`]: a Set or Remove from a user or a peer) bump
//! the key's write generation. Loads are shared per key *and* generation,
//! and store their value only if no write came while they ran: a caller
//! already waiting on a load gets its value, a get that arrives after a
//! write starts a load of its own, and no older value is stored after a
//! write (no resurrection).
//!
//! A get that arrives from a peer ([`Group::get_for_peer`]) is never sent to
//! another peer: it is answered from the caches or this node's getter. So
//! nodes whose rings briefly disagree cannot bounce a request between them,
//! and local loads have a singleflight of their own that never waits on a
//! remote fetch, so two nodes can never wait on each other.
//!
//! The handle and `get` live here; the child modules hold what a get
//! answers (`answer`, `error`), the hot policy (`hot_policy`), a miss's
//! load (`load`), the load through the getter (`local_load`) and the
//! stale answers (`stale`).

mod answer;
pub(crate) mod counters;
mod error;
pub(crate) mod freshness;
pub(crate) mod getter;
mod hot_policy;
mod load;
mod local_load;
mod stale;

use std::sync::Arc;
use std::time::Duration;

use crate::cache::compressed::CompressedCopies;
use crate::cache::{Caches, Lookup, Which};
use crate::group::answer::{answer, Loaded};
pub(crate) use crate::group::answer::{Source, Traced};
pub(crate) use crate::group::counters::{Counted, GroupStats};
use crate::group::counters::{LoadTimings, Stats};
pub use crate::group::error::GroupError;
use crate::group::freshness::TtlPolicy;
use crate::group::getter::Getter;
use crate::group::hot_policy::one_in_ten;
pub use crate::group::hot_policy::{HotPolicy, UnknownHotPolicy};
use crate::log_gate::WarnGate;
use crate::peers::picker::PickPeer;
use crate::singleflight::Flight;
use crate::value::Value;

/// How a get goes on a miss: a user's may ask the owning peer, a peer's is
/// answered from this node's getter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    User,
    Peer,
}

/// A cheap-to-clone handle on one group.
#[derive(Clone)]
pub struct Group {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    getter: Arc<dyn Getter>,
    peers: Arc<dyn PickPeer>,
    /// How values fetched from peers get into the hot cache.
    hot_policy: HotPolicy,
    /// Under [`HotPolicy::Golang`], whether a fetched value is mirrored
    /// when the protocol leaves it to chance: [`one_in_ten`], or a fixed
    /// choice in tests.
    mirror_sample: fn() -> bool,
    caches: Caches,
    /// Compressed copies of values, for a group that sends them
    /// compressed; within the group's cache size.
    compressed: Option<CompressedCopies>,
    /// The group's TTL policy: the grace of values whose getter gave none,
    /// and the lifetime of not-founds.
    policy: TtlPolicy,
    stats: Stats,
    /// How long peer fetches and origin loads take (misses only).
    timings: LoadTimings,
    /// Loads of any kind (peer fetch or local), for user gets.
    loads: Flight<Traced>,
    /// Local loads only, shared by user gets and peer gets.
    local_loads: Flight<Traced>,
    /// Rate limit on logging failed loads from the getter.
    getter_warnings: WarnGate,
    /// How long a get with a value in its `stale-if-error` window waits
    /// for the reload before answering stale.
    stale_wait: Duration,
}

/// The default stale wait (`--stale-wait`): longer than an origin
/// normally takes, far shorter than `--origin-timeout`.
pub(crate) const DEFAULT_STALE_WAIT: Duration = Duration::from_secs(1);

impl Group {
    /// A group named `name` whose caches hold at most `cache_bytes` bytes,
    /// fetching keys other nodes own from `peers` (a node's [`Peers`]).
    ///
    /// [`Peers`]: crate::peers::Peers
    pub(crate) fn new(
        name: &str,
        cache_bytes: u64,
        getter: Arc<dyn Getter>,
        peers: Arc<dyn PickPeer>,
        policy: TtlPolicy,
        hot_policy: HotPolicy,
    ) -> Group {
        let mut group = Group::with_mirror_sample(name, cache_bytes, getter, peers, one_in_ten);
        // Only just made, so there is no other handle yet.
        let inner = Arc::get_mut(&mut group.inner).expect("a group not yet shared");
        inner.policy = policy;
        inner.hot_policy = hot_policy;
        group
    }

    fn with_mirror_sample(
        name: &str,
        cache_bytes: u64,
        getter: Arc<dyn Getter>,
        peers: Arc<dyn PickPeer>,
        mirror_sample: fn() -> bool,
    ) -> Group {
        Group {
            inner: Arc::new(Inner {
                name: name.to_string(),
                getter,
                peers,
                hot_policy: HotPolicy::Golang,
                mirror_sample,
                caches: Caches::new(cache_bytes),
                compressed: None,
                policy: TtlPolicy::default(),
                stats: Stats::default(),
                timings: LoadTimings::new(name),
                loads: Flight::default(),
                local_loads: Flight::default(),
                getter_warnings: WarnGate::default(),
                stale_wait: DEFAULT_STALE_WAIT,
            }),
        }
    }

    /// This group, waiting at most `wait` for a reload when an expired
    /// value may answer if it fails (default [`DEFAULT_STALE_WAIT`]).
    pub(crate) fn with_stale_wait(mut self, wait: Duration) -> Group {
        // Called right after `new`, before the group is shared.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.stale_wait = wait;
        }
        self
    }

    /// This group, keeping compressed copies of its values in an eighth
    /// of its cache size (the main and hot caches keep the rest).
    pub(crate) fn with_compressed_copies(mut self) -> Group {
        // Called right after `new`, before the group is shared.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            let limit = inner.caches.limit();
            let copies = limit / 8;
            inner.caches = Caches::new(limit - copies);
            inner.compressed = Some(CompressedCopies::new(copies));
        }
        self
    }

    /// The compressed copies of this group's values, if it keeps any.
    pub(crate) fn compressed_copies(&self) -> Option<&CompressedCopies> {
        self.inner.compressed.as_ref()
    }

    /// The group's name, as the cluster knows it.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The most bytes the group's caches hold together: main and hot, and
    /// compressed copies if it keeps any.
    pub fn cache_bytes(&self) -> u64 {
        let copies = self.inner.compressed.as_ref().map_or(0, |c| c.limit());
        self.inner.caches.limit() + copies
    }

    /// Durations of this group's peer fetches and origin loads.
    #[cfg(feature = "metrics")]
    pub(crate) fn timings(&self) -> &LoadTimings {
        &self.inner.timings
    }

    /// Gets `key` for a user: from the caches, the owning peer, or the
    /// getter. A value answered in its grace (while its reload fails or
    /// runs in the background) has an `expiry` in the past.
    pub async fn get(&self, key: &[u8]) -> Loaded {
        self.get_traced(key).await.0
    }

    /// [`Group::get`], saying where the answer came from.
    pub(crate) async fn get_traced(&self, key: &[u8]) -> Traced {
        self.inner.stats.count(Counted::Get);
        let (found, _) = self.inner.caches.lookup_rated(key);
        self.get_by(key, found, Path::User).await
    }

    /// Gets `key` for a peer that believes this node owns it: from the
    /// caches or the getter, never from another peer. With it, the key's
    /// estimated requests per second here.
    pub(crate) async fn get_for_peer(&self, key: &[u8]) -> (Loaded, f64) {
        let stats = &self.inner.stats;
        stats.count(Counted::ServerRequest);
        stats.count(Counted::Get);
        let (found, rate) = self.inner.caches.lookup_rated(key);
        (self.get_by(key, found, Path::Peer).await.0, rate)
    }

    /// What the caches `found`, else a load by `path`; a stale value
    /// stands in as its grace allows.
    async fn get_by(&self, key: &[u8], found: Lookup, path: Path) -> Traced {
        match answer(found, &self.inner.stats) {
            Ok(answered) => answered,
            Err(Some(stale)) => self.answer_stale(key, stale, path).await,
            Err(None) => {
                self.inner.stats.count(Counted::Load);
                self.load_by(key, path).await
            }
        }
    }

    /// A write at this node: removes `key` from both caches and, for a Set,
    /// stores `value` in the given cache. Loads of the key in flight store
    /// nothing afterwards. `Err(size)`: the entry (key plus value) cannot
    /// fit this group's caches and was not stored.
    pub(crate) fn write(&self, key: &[u8], value: Option<(Which, Value)>) -> Result<(), u64> {
        let value = value.map(|(which, value)| (which, self.with_grace(value)));
        self.inner.caches.write(key, value)
    }

    /// `value`, with the group's grace if it has none of its own.
    fn with_grace(&self, mut value: Value) -> Value {
        value
            .grace
            .get_or_insert_with(|| self.inner.policy.default_grace());
        value
    }

    /// Stores an entry read back from a snapshot in the main cache; false
    /// when it cannot fit or has expired.
    #[cfg(feature = "binary")]
    pub(crate) fn restore(&self, key: &[u8], value: Value) -> bool {
        self.inner.caches.restore(key, self.with_grace(value))
    }

    /// The main cache's entries, least recently used first.
    #[cfg(feature = "binary")]
    pub(crate) fn main_entries(&self) -> Vec<(Box<[u8]>, Value)> {
        self.inner.caches.main_entries()
    }

    /// The largest entry (key plus value) this group's caches can hold.
    pub(crate) fn max_entry_bytes(&self) -> u64 {
        self.inner.caches.max_entry()
    }

    /// Adds one to a count outside the get path.
    pub(crate) fn count(&self, what: Counted) {
        self.inner.stats.count(what);
    }

    /// How this group keeps hot copies.
    pub(crate) fn hot_policy(&self) -> HotPolicy {
        self.inner.hot_policy
    }

    /// The keys asked for most at this node, hottest first.
    pub(crate) fn hot_keys(&self) -> Vec<crate::cache::HotKey> {
        self.inner.caches.hot_keys()
    }

    /// The group's counters and its caches' counters.
    pub fn stats(&self) -> GroupStats {
        let copies = self.inner.compressed.as_ref().map(|c| c.stats());
        self.inner
            .stats
            .snapshot(self.inner.caches.stats(), copies.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::getter::GetterError;
    use crate::peers::picker::fake::{Answer, FakePeer, FakePool};
    use crate::peers::protocol::Protocol;
    use crate::value::Expiry;
    use bytes::Bytes;
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering::Relaxed;

    /// A group over `pool` whose golang-style mirroring is never chosen.
    pub(super) fn group_over(pool: &Arc<FakePool>, getter: Arc<dyn Getter>) -> Group {
        Group::with_mirror_sample("g", 1 << 20, getter, pool.clone(), || false)
    }

    /// A group that owns every key, with the default TTL policy.
    pub(super) fn local_group(getter: Arc<dyn Getter>) -> Group {
        let policy = TtlPolicy::default();
        Group::new(
            "g",
            1 << 20,
            getter,
            local_peers(),
            policy,
            HotPolicy::Golang,
        )
    }

    pub(super) fn local_peers() -> Arc<FakePool> {
        FakePool::new(None, Protocol::Golang)
    }

    /// A getter that counts calls and answers `value-of-<key>` after a delay.
    pub(super) fn counting_getter(calls: Arc<AtomicUsize>, delay: Duration) -> Arc<dyn Getter> {
        Arc::new(move |key: Vec<u8>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Relaxed);
                tokio::time::sleep(delay).await;
                if key == b"missing" {
                    return Err(GetterError::NotFound(
                        "origin returned 404 Not Found".into(),
                    ));
                }
                let mut value = b"value-of-".to_vec();
                value.extend_from_slice(&key);
                Ok(Bytes::from(value))
            }
        })
    }

    /// `n` gets of `key` started at once, each on its own task.
    pub(super) async fn concurrent_gets(
        group: &Group,
        key: &'static [u8],
        n: usize,
    ) -> Vec<Loaded> {
        let gets: Vec<_> = (0..n)
            .map(|_| {
                let group = group.clone();
                tokio::spawn(async move { group.get(key).await })
            })
            .collect();
        let mut results = Vec::new();
        for get in gets {
            results.push(get.await.expect("get task"));
        }
        results
    }

    /// What [`versioned_getter`] answers.
    pub(super) const UP: u8 = 0;
    pub(super) const FAILING: u8 = 1;
    pub(super) const GONE: u8 = 2;
    /// Up, but each load takes 5 s more.
    pub(super) const SLOW: u8 = 3;

    /// A getter that answers `v{n}` on its nth call after 100 ms, fresh for
    /// a second, as `mode` says: up, failing, or the key is gone.
    pub(super) fn versioned_getter(
        calls: Arc<AtomicUsize>,
        mode: Arc<std::sync::atomic::AtomicU8>,
    ) -> Arc<dyn Getter> {
        Arc::new(move |_key: Vec<u8>| {
            let (calls, mode) = (calls.clone(), mode.clone());
            async move {
                let n = calls.fetch_add(1, Relaxed) + 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                if mode.load(Relaxed) == SLOW {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                match mode.load(Relaxed) {
                    FAILING => Err(GetterError::Failed("origin returned 503".into())),
                    GONE => Err(GetterError::NotFound("origin returned 404".into())),
                    _ => Ok(Value::expiring_in(format!("v{n}"), Duration::from_secs(1))),
                }
            }
        })
    }

    pub(super) fn stale_group(
        policy: TtlPolicy,
    ) -> (Group, Arc<AtomicUsize>, Arc<std::sync::atomic::AtomicU8>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let mode = Arc::new(std::sync::atomic::AtomicU8::new(UP));
        let getter = versioned_getter(calls.clone(), mode.clone());
        let group = Group::new("g", 1 << 20, getter, local_peers(), policy, HotPolicy::Heat);
        (group, calls, mode)
    }

    #[tokio::test]
    async fn peer_gets_count_server_requests_and_load_locally_never_from_a_peer() {
        // The pool says another node owns every key.
        let owner = FakePeer::new(Answer::Value("remote"));
        let pool = FakePool::new(Some(owner.clone()), Protocol::Golang);
        let calls = Arc::new(AtomicUsize::new(0));
        let group = group_over(&pool, counting_getter(calls.clone(), Duration::ZERO));
        assert_eq!(
            group.get_for_peer(b"k").await.0.unwrap().bytes,
            "value-of-k"
        );
        assert_eq!(
            group.get_for_peer(b"k").await.0.unwrap().bytes,
            "value-of-k"
        );
        let stats = group.stats();
        assert_eq!(
            (stats.server_requests, stats.gets, stats.cache_hits),
            (2, 2, 1)
        );
        assert_eq!(
            (stats.peer_loads, stats.peer_errors, stats.local_loads),
            (0, 0, 1)
        );
        assert_eq!(calls.load(Relaxed), 1);
        assert_eq!(pool.picks.load(Relaxed), 0, "the pool was never asked");
        assert!(owner.fetched().is_empty());
    }

    #[tokio::test]
    async fn non_utf8_keys_are_plain_bytes() {
        let calls = Arc::new(AtomicUsize::new(0));
        let group = local_group(counting_getter(calls.clone(), Duration::ZERO));
        let key = [0xff, 0xfe, b'/', 0x00];
        let value = group.get(&key).await.unwrap().bytes;
        assert_eq!(&value[..9], b"value-of-");
        assert_eq!(&value[9..], key);
    }

    #[tokio::test(start_paused = true)]
    async fn uncacheable_values_answer_every_waiter_and_are_loaded_again() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let getter = Arc::new(move |_key: Vec<u8>| {
            let calls = counter.clone();
            async move {
                calls.fetch_add(1, Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(Value::new(&b"fresh"[..], Expiry::UNCACHEABLE))
            }
        });
        let group = local_group(getter);
        for loaded in concurrent_gets(&group, b"k", 20).await {
            assert_eq!(loaded.unwrap().bytes, "fresh");
        }
        assert_eq!(calls.load(Relaxed), 1, "one load answers every waiter");
        assert_eq!(group.get(b"k").await.unwrap().bytes, "fresh");
        assert_eq!(calls.load(Relaxed), 2, "and is not cached");
        assert_eq!(group.stats().main_cache.items, 0);
    }

    #[tokio::test]
    async fn an_expired_value_is_loaded_again() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let getter = Arc::new(move |_key: Vec<u8>| {
            let n = counter.fetch_add(1, Relaxed) + 1;
            async move { Ok(Value::expiring_in(format!("v{n}"), Duration::from_secs(60))) }
        });
        let group = local_group(getter);
        let first = group.get(b"k").await.unwrap();
        assert_eq!(first.bytes, "v1");
        assert_eq!(group.get(b"k").await.unwrap().bytes, "v1");
        crate::value::advance_clock(Duration::from_secs(61));
        assert!(first.expiry.is_expired());
        assert_eq!(group.get(b"k").await.unwrap().bytes, "v2");
        let stats = group.stats();
        assert_eq!((stats.local_loads, stats.cache_hits), (2, 1));
        assert_eq!(
            (stats.main_cache.expired, stats.main_cache.evictions),
            (1, 1)
        );
    }

    // Paused time: the load stays in flight while the test writes.
    #[tokio::test(start_paused = true)]
    async fn a_write_during_a_load_is_never_undone_by_it() {
        let calls = Arc::new(AtomicUsize::new(0));
        let group = local_group(counting_getter(calls.clone(), Duration::from_millis(300)));
        for set in [false, true] {
            let before = calls.load(Relaxed);
            let loading = tokio::spawn({
                let group = group.clone();
                async move { group.get(b"k").await }
            });
            // The getter has been called: the load is in flight.
            while calls.load(Relaxed) == before {
                tokio::task::yield_now().await;
            }
            let written = set.then(|| (Which::Main, Value::from(Bytes::from_static(b"set"))));
            group.write(b"k", written).unwrap();
            // A get after the write does not join the older load.
            let after = group.get(b"k").await.unwrap().bytes;
            // The caller that was already waiting gets the loaded value.
            assert_eq!(loading.await.unwrap().unwrap().bytes, "value-of-k");
            let expected = if set { "set" } else { "value-of-k" };
            assert_eq!(after, expected);
            assert_eq!(group.get(b"k").await.unwrap().bytes, expected);
            group.write(b"k", None).unwrap();
        }
        // Remove: one older load, one load after it. Set: one older load.
        assert_eq!(calls.load(Relaxed), 3);
    }
}
