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

pub(crate) mod counters;
pub(crate) mod freshness;
pub(crate) mod getter;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::{Caches, Lookup, StaleHit, Which};
pub(crate) use crate::group::counters::{Counted, GroupStats};
use crate::group::counters::{LoadTimings, Stats};
use crate::group::freshness::TtlPolicy;
use crate::group::getter::{Getter, GetterError};
use crate::http_client::HttpError;
use crate::log_gate::WarnGate;
use crate::peers::picker::{FetchPeer, PeerError, PickPeer};
use crate::singleflight::Flight;
use crate::value::{Expiry, Value};

/// Why a get produced no value. The text is what peers and users see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The getter produced no value.
    #[error("{0}")]
    Getter(#[from] GetterError),
    /// The load panicked.
    #[error("load panicked")]
    Panicked,
    /// A fork's owner answered 404 or 503: its final word, passed on
    /// without a local load, as the forks' clients do.
    #[error("{message}")]
    Refused {
        /// True for 404 (the key does not exist), false for 503.
        not_found: bool,
        /// The owner's text.
        message: String,
    },
}

impl GroupError {
    /// True when the origin said the key does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            GroupError::Getter(GetterError::NotFound(_) | GetterError::NotFoundUntil(..))
                | GroupError::Refused {
                    not_found: true,
                    ..
                }
        )
    }

    /// True when the node had no room for the load (user API: 503).
    pub fn is_busy(&self) -> bool {
        matches!(self, GroupError::Getter(GetterError::Busy(_)))
    }

    /// True when the key cannot be loaded from the origin (user API: 400).
    pub fn is_bad_key(&self) -> bool {
        matches!(self, GroupError::Getter(GetterError::BadKey(_)))
    }

    /// True when a value within its `stale-if-error` window may answer
    /// instead: the load failed, rather than answering that the key does
    /// not exist or cannot be loaded.
    fn allows_stale(&self) -> bool {
        match self {
            GroupError::Getter(e) => matches!(e, GetterError::Failed(_) | GetterError::Busy(_)),
            GroupError::Panicked => true,
            GroupError::Refused { not_found, .. } => !not_found,
        }
    }
}

impl GetterError {
    fn is_not_found(&self) -> bool {
        matches!(
            self,
            GetterError::NotFound(_) | GetterError::NotFoundUntil(..)
        )
    }
}

type Loaded = Result<Value, GroupError>;

/// A get's answer and where this node got it.
pub(crate) type Traced = (Loaded, Source);

/// Where a get's answer came from: for the `Cache-Status` a user gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// This node's main cache.
    Main,
    /// This node's hot cache (a copy of another owner's value).
    Hot,
    /// The owning peer, just now.
    Peer,
    /// This node's getter (the origin), just now.
    Origin,
    /// A not-found this node remembers, until this expiry.
    NotFound(Expiry),
    /// This node's getter, just now: the key does not exist, and this
    /// node now remembers so until this expiry.
    OriginNotFound(Expiry),
    /// An expired value within `stale-while-revalidate`, answered at once
    /// while one reload runs in the background.
    Revalidating,
    /// An expired value within `stale-if-error`, answered because its
    /// reload failed with this error, or at once (`None`) because a recent
    /// one did and the next is not due.
    StaleOnError(Option<GroupError>),
    /// An expired value within `stale-if-error`, answered because its
    /// reload had not ended within the stale wait; the reload runs on.
    StaleOnSlowLoad,
}

impl From<Which> for Source {
    fn from(which: Which) -> Source {
        match which {
            Which::Main => Source::Main,
            Which::Hot => Source::Hot,
        }
    }
}

/// How a group decides to keep a hot copy of a value it fetched from the
/// key's owner.
///
/// ```
/// use groupcached::HotPolicy;
/// assert_eq!(HotPolicy::default(), HotPolicy::Heat);
/// assert_eq!("golang".parse::<HotPolicy>(), Ok(HotPolicy::Golang));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HotPolicy {
    /// By how often it is asked for: a copy is kept when there is room, or
    /// when its count here (or the owner's reported rate) beats that of the
    /// entry it would evict.
    #[default]
    Heat,
    /// As the pool's Go implementation does: one fetched value in ten at
    /// random in a golang pool, every fetched value in a fork's pool.
    Golang,
}

/// A hot policy name that is neither `heat` nor `golang`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hot policy {0:?}: expected heat or golang")]
pub struct UnknownHotPolicy(String);

impl std::str::FromStr for HotPolicy {
    type Err = UnknownHotPolicy;

    fn from_str(name: &str) -> Result<HotPolicy, UnknownHotPolicy> {
        match name {
            "heat" => Ok(HotPolicy::Heat),
            "golang" => Ok(HotPolicy::Golang),
            _ => Err(UnknownHotPolicy(name.to_string())),
        }
    }
}

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

    /// The group's name, as the cluster knows it.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The most bytes the main and hot caches hold together.
    pub fn cache_bytes(&self) -> u64 {
        self.inner.caches.limit()
    }

    /// Durations of this group's peer fetches and origin loads.
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
        self.inner.stats.gets.fetch_add(1, Relaxed);
        let (found, _) = self.inner.caches.lookup_rated(key);
        self.get_by(key, found, Path::User).await
    }

    /// Gets `key` for a peer that believes this node owns it: from the
    /// caches or the getter, never from another peer. With it, the key's
    /// estimated requests per second here.
    pub(crate) async fn get_for_peer(&self, key: &[u8]) -> (Loaded, f64) {
        let stats = &self.inner.stats;
        stats.server_requests.fetch_add(1, Relaxed);
        stats.gets.fetch_add(1, Relaxed);
        let (found, rate) = self.inner.caches.lookup_rated(key);
        (self.get_by(key, found, Path::Peer).await.0, rate)
    }

    /// What the caches `found`, else a load by `path`; a stale value
    /// stands in as its grace allows.
    async fn get_by(&self, key: &[u8], found: Lookup, path: Path) -> Traced {
        let inner = &self.inner;
        let stale = match self.answer(found) {
            Ok(answered) => return answered,
            Err(Some(stale)) => stale,
            Err(None) => {
                inner.stats.loads.fetch_add(1, Relaxed);
                return self.load_by(key, path).await;
            }
        };
        if stale.revalidating || stale.failing {
            if inner.caches.begin_refresh(key) {
                self.refresh_in_background(key, path);
            }
            let (counter, source) = if stale.revalidating {
                (&inner.stats.stale_while_revalidate, Source::Revalidating)
            } else {
                (&inner.stats.stale_if_error, Source::StaleOnError(None))
            };
            counter.fetch_add(1, Relaxed);
            return (Ok(stale.value), source);
        }
        inner.stats.loads.fetch_add(1, Relaxed);
        let Some((loaded, source)) = self.load_within_stale_wait(key, path).await else {
            // The load runs on; gets answer stale at once until it ends.
            inner.caches.end_reload(key, true);
            inner.stats.stale_if_error.fetch_add(1, Relaxed);
            return (Ok(stale.value), Source::StaleOnSlowLoad);
        };
        match loaded {
            Err(e) if e.allows_stale() => {
                inner.caches.end_reload(key, true);
                inner.stats.stale_if_error.fetch_add(1, Relaxed);
                (Ok(stale.value), Source::StaleOnError(Some(e)))
            }
            loaded => {
                inner.caches.end_reload(key, false);
                (loaded, source)
            }
        }
    }

    /// Loads `key` as a miss by `path` would, once per key in flight.
    async fn load_by(&self, key: &[u8], path: Path) -> Traced {
        let since = self.inner.caches.generation(key);
        if path == Path::Peer {
            return self.load_locally(key, since, true).await;
        }
        let this = self.clone();
        let owned_key = key.to_vec();
        // Boxed: the singleflight moves the work into a task of its own,
        // and moving a pointer is cheaper than moving the whole future.
        let flight = flight_key(key, since);
        let loaded = self.inner.loads.run(&flight, move || {
            Box::pin(async move { this.load(owned_key, since).await })
        });
        loaded.await.unwrap_or(panicked())
    }

    /// [`Group::load_by`], waited for at most the stale wait: `None` when
    /// it has not ended by then. It then runs on, on a task of its own, and
    /// ends the reload of the stale value when it does.
    async fn load_within_stale_wait(&self, key: &[u8], path: Path) -> Option<Traced> {
        let (this, owned_key) = (self.clone(), key.to_vec());
        let mut loading = tokio::spawn(async move { this.load_by(&owned_key, path).await });
        if let Ok(joined) = tokio::time::timeout(self.inner.stale_wait, &mut loading).await {
            return Some(joined.unwrap_or_else(|_| panicked()));
        }
        let (this, key) = (self.clone(), key.to_vec());
        tokio::spawn(async move {
            let failed = match loading.await {
                Ok((loaded, _)) => matches!(&loaded, Err(e) if e.allows_stale()),
                Err(_) => true,
            };
            this.inner.caches.end_reload(&key, failed);
        });
        None
    }

    /// Reloads `key`, whose stale value is being served, on a task of its
    /// own; its new value replaces the stale one, its failure backs off.
    fn refresh_in_background(&self, key: &[u8], path: Path) {
        self.inner.stats.background_refreshes.fetch_add(1, Relaxed);
        let (this, key) = (self.clone(), key.to_vec());
        tokio::spawn(async move {
            let (loaded, _) = this.load_by(&key, path).await;
            let failed = matches!(&loaded, Err(e) if e.allows_stale());
            this.inner.caches.end_reload(&key, failed);
        });
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
    pub(crate) fn restore(&self, key: &[u8], value: Value) -> bool {
        self.inner.caches.restore(key, self.with_grace(value))
    }

    /// The main cache's entries, least recently used first.
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

    /// The group's counters and both caches' counters.
    pub fn stats(&self) -> GroupStats {
        self.inner.stats.snapshot(self.inner.caches.stats())
    }

    /// A singleflight leader's second look: another load may have filled
    /// the cache just before this one began.
    fn recheck(&self, key: &[u8]) -> Option<Traced> {
        self.answer(self.inner.caches.lookup_again(key)).ok()
    }

    /// What the caches `found`, as an answer (a hit or a remembered
    /// not-found, counted), or what is left to do: `Err(Some)` a stale
    /// value, `Err(None)` a miss.
    fn answer(&self, found: Lookup) -> Result<Traced, Option<StaleHit>> {
        let stats = &self.inner.stats;
        match found {
            Lookup::Hit(value, which) => {
                stats.cache_hits.fetch_add(1, Relaxed);
                Ok((Ok(value), which.into()))
            }
            Lookup::NotFound(message, expiry) => {
                stats.negative_hits.fetch_add(1, Relaxed);
                let error = GroupError::Getter(GetterError::NotFound(message));
                Ok((Err(error), Source::NotFound(expiry)))
            }
            Lookup::Stale(stale) => Err(Some(stale)),
            Lookup::Miss => Err(None),
        }
    }

    /// The singleflight leader's work for a user get.
    async fn load(&self, key: Vec<u8>, since: u64) -> Traced {
        let inner = &self.inner;
        let Some(peer) = inner.peers.pick(&key) else {
            // This node owns the key; the local load re-checks the caches.
            return self.load_locally(&key, since, true).await;
        };
        if let Some(found) = self.recheck(&key) {
            return found;
        }
        inner.stats.loads_deduped.fetch_add(1, Relaxed);
        let started = Instant::now();
        let fetched = self.fetch(peer.as_ref(), &key).await;
        inner.timings.peer_fetch(started.elapsed());
        match fetched {
            Ok((value, reported_rate)) => {
                inner.stats.peer_loads.fetch_add(1, Relaxed);
                let value = self.mirror(&key, value, since, reported_rate);
                return (Ok(value), Source::Peer);
            }
            // Its keys load here at once while the owner is marked down.
            Err(PeerError::Down) => {}
            // The owner asked its origin: the key does not exist.
            Err(PeerError::NotFound(message)) => {
                let not_found = true;
                return (
                    Err(GroupError::Refused { not_found, message }),
                    Source::Peer,
                );
            }
            Err(PeerError::Status(status, message))
                if inner.peers.protocol().is_final_refusal(status) =>
            {
                let not_found = status == hyper::StatusCode::NOT_FOUND;
                return (
                    Err(GroupError::Refused { not_found, message }),
                    Source::Peer,
                );
            }
            Err(e) => {
                inner.stats.peer_errors.fetch_add(1, Relaxed);
                if let Some(unlogged) = peer.failure_to_log() {
                    tracing::warn!(
                        group = %inner.name,
                        peer = peer.url(),
                        error = %e,
                        unlogged,
                        "peer fetch failed, loading locally"
                    );
                }
            }
        }
        self.load_locally(&key, since, false).await
    }

    /// Keeps a hot copy of `value`, fetched from its owner, as the hot
    /// policy says; returns the value.
    fn mirror(&self, key: &[u8], value: Value, since: u64, reported_rate: Option<f64>) -> Value {
        let inner = &self.inner;
        match inner.hot_policy {
            HotPolicy::Golang => {
                if inner.peers.protocol().always_fills_hot() || (inner.mirror_sample)() {
                    let since = Some(since);
                    return inner
                        .caches
                        .add_unless_written(Which::Hot, key, value, since);
                }
                value
            }
            HotPolicy::Heat => {
                let (value, admitted) = inner.caches.offer_hot(key, value, since, reported_rate);
                match admitted {
                    Some(true) => inner.stats.hot_admissions.fetch_add(1, Relaxed),
                    Some(false) => inner.stats.hot_rejections.fetch_add(1, Relaxed),
                    None => 0,
                };
                value
            }
        }
    }

    /// Fetches `key` from its owner, with the owner's estimate of its rate,
    /// giving up after the pool's fetch timeout even if the peer never
    /// answers.
    async fn fetch(
        &self,
        peer: &dyn FetchPeer,
        key: &[u8],
    ) -> Result<(Value, Option<f64>), PeerError> {
        let timeout = self.inner.peers.fetch_timeout();
        // `fetch` before the timer: the peer client counts the same deadline
        // from its call, so when this timer fires it sees it has passed.
        let fetching = peer.fetch_with_rate(self.inner.name.as_bytes(), key);
        tokio::time::timeout(timeout, fetching)
            .await
            .unwrap_or(Err(PeerError::Http(HttpError::Timeout(timeout))))
    }

    /// Loads `key` with this node's getter, once per key in flight.
    /// `count_dedup` is false when the caller already counted this load as
    /// deduplicated (a fallback after a failed peer fetch).
    async fn load_locally(&self, key: &[u8], since: u64, count_dedup: bool) -> Traced {
        let this = self.clone();
        let owned_key = key.to_vec();
        // Boxed for the same reason as in `load_by`.
        let flight = flight_key(key, since);
        let loaded = self.inner.local_loads.run(&flight, move || {
            Box::pin(async move { this.load_from_getter(owned_key, since, count_dedup).await })
        });
        loaded.await.unwrap_or(panicked())
    }

    /// The singleflight leader's work for a local load.
    async fn load_from_getter(&self, key: Vec<u8>, since: u64, count_dedup: bool) -> Traced {
        let inner = &self.inner;
        if let Some(found) = self.recheck(&key) {
            return found;
        }
        if count_dedup {
            inner.stats.loads_deduped.fetch_add(1, Relaxed);
        }
        let started = Instant::now();
        let loaded = inner.getter.get(&key).await;
        inner.timings.origin_load(started.elapsed());
        match loaded {
            Ok(value) => {
                inner.stats.local_loads.fetch_add(1, Relaxed);
                let value = self.with_grace(value);
                let since = Some(since);
                let value = inner
                    .caches
                    .add_unless_written(Which::Main, &key, value, since);
                (Ok(value), Source::Origin)
            }
            Err(e) => {
                inner.stats.local_load_errs.fetch_add(1, Relaxed);
                let mut source = Source::Origin;
                if e.is_not_found() {
                    if let Some(until) = self.remember_not_found(&key, &e, since) {
                        source = Source::OriginNotFound(until);
                    }
                } else if matches!(e, GetterError::Failed(_)) {
                    if let Some(unlogged) = inner.getter_warnings.admit() {
                        tracing::warn!(group = %inner.name, error = %e, unlogged, "origin load failed");
                    }
                }
                (Err(GroupError::Getter(e)), source)
            }
        }
    }

    /// Keeps a not-found for its negative lifetime: the getter's, else the
    /// group's `--negative-ttl` (capped by `--negative-max-ttl`). Returns
    /// the expiry it is kept until, `None` when it is not kept.
    fn remember_not_found(&self, key: &[u8], error: &GetterError, since: u64) -> Option<Expiry> {
        let expiry = match error {
            GetterError::NotFoundUntil(_, expiry) => *expiry,
            _ => {
                let silent = crate::group::freshness::Lifetime::Unspecified;
                self.inner
                    .policy
                    .negative_expiry(silent, crate::value::now())
            }
        };
        if expiry.is_expired() {
            return None;
        }
        let message = error.to_string();
        let caches = &self.inner.caches;
        caches
            .add_not_found(key, &message, expiry, since)
            .then_some(expiry)
    }
}

/// What a load that panicked answers.
fn panicked() -> Traced {
    (Err(GroupError::Panicked), Source::Origin)
}

/// The singleflight key of a load of `key` begun at write generation
/// `since`: a get after a write never joins a load begun before it.
fn flight_key(key: &[u8], since: u64) -> Vec<u8> {
    let mut flight = Vec::with_capacity(key.len() + 8);
    flight.extend_from_slice(&since.to_le_bytes());
    flight.extend_from_slice(key);
    flight
}

/// True about one time in ten (golang's `rand.Intn(10) == 0`), from a
/// shared splitmix64 sequence: good enough to sample, and lock-free.
fn one_in_ten() -> bool {
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut z = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_client::HttpClient;
    use crate::peers::picker::fake::{Answer, FakePeer, FakePool, FETCH_TIMEOUT};
    use crate::peers::protocol::Protocol;
    use crate::peers::Peers;
    use crate::value::advance_clock;
    use bytes::Bytes;
    use hyper::StatusCode;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// A group over `pool` whose golang-style mirroring is never chosen.
    fn group_over(pool: &Arc<FakePool>, getter: Arc<dyn Getter>) -> Group {
        Group::with_mirror_sample("g", 1 << 20, getter, pool.clone(), || false)
    }

    /// A group that owns every key, with the default TTL policy.
    fn local_group(getter: Arc<dyn Getter>) -> Group {
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

    fn local_peers() -> Arc<FakePool> {
        FakePool::new(None, Protocol::Golang)
    }

    /// A getter that counts calls and answers `value-of-<key>` after a delay.
    fn counting_getter(calls: Arc<AtomicUsize>, delay: Duration) -> Arc<dyn Getter> {
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
    async fn concurrent_gets(group: &Group, key: &'static [u8], n: usize) -> Vec<Loaded> {
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

    // Paused time: the getter's delay passes only once every get is
    // waiting, so all hundred join the one load.
    #[tokio::test(start_paused = true)]
    async fn hundred_concurrent_gets_load_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let group = Group::new(
            "g",
            1 << 20,
            counting_getter(calls.clone(), Duration::from_millis(200)),
            local_peers(),
            TtlPolicy::default(),
            HotPolicy::Golang,
        );
        for loaded in concurrent_gets(&group, b"slow", 100).await {
            assert_eq!(loaded.unwrap().bytes, "value-of-slow");
        }
        assert_eq!(calls.load(Relaxed), 1);
        let stats = group.stats();
        assert_eq!(stats.gets, 100);
        assert_eq!(stats.local_loads, 1);
        assert_eq!(stats.loads_deduped, 1);
        assert_eq!(stats.main_cache.items, 1);
        // A later get is a cache hit.
        assert_eq!(group.get(b"slow").await.unwrap().bytes, "value-of-slow");
        assert_eq!(calls.load(Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_getter_error_reaches_every_waiter_and_is_not_cached() {
        let calls = Arc::new(AtomicUsize::new(0));
        let group = Group::new(
            "g",
            1 << 20,
            counting_getter(calls.clone(), Duration::from_millis(100)),
            local_peers(),
            TtlPolicy::default(),
            HotPolicy::Golang,
        );
        for loaded in concurrent_gets(&group, b"missing", 50).await {
            let error = loaded.unwrap_err();
            assert!(error.is_not_found());
            assert_eq!(error.to_string(), "origin returned 404 Not Found");
        }
        assert_eq!(calls.load(Relaxed), 1);
        assert_eq!(group.stats().local_load_errs, 1);
        assert!(group.get(b"missing").await.is_err());
        assert_eq!(calls.load(Relaxed), 2, "errors are not cached");
    }

    #[tokio::test]
    async fn owner_down_falls_back_to_a_local_load() {
        // Self is 127.0.0.1:1; the other peer is a closed port, and with
        // two peers some keys are owned by it.
        let http = HttpClient::new(Duration::from_millis(500), 4);
        let peers = Arc::new(Peers::new(
            "http://127.0.0.1:1".into(),
            "/_groupcache/".into(),
            50,
            http,
            4,
        ));
        peers.set(vec![
            "http://127.0.0.1:1".into(),
            "http://127.0.0.1:9".into(),
        ]);
        let key = (0..)
            .map(|i: u32| format!("key{i}"))
            .find(|k| peers.owner(k.as_bytes()).as_deref() == Some("http://127.0.0.1:9"))
            .unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let group = Group::new(
            "g",
            1 << 20,
            counting_getter(calls.clone(), Duration::ZERO),
            peers,
            TtlPolicy::default(),
            HotPolicy::Golang,
        );
        assert_eq!(
            group.get(key.as_bytes()).await.unwrap().bytes,
            format!("value-of-{key}")
        );
        let stats = group.stats();
        assert_eq!(
            (stats.peer_errors, stats.peer_loads, stats.local_loads),
            (1, 0, 1)
        );
        assert_eq!(calls.load(Relaxed), 1);
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
        let group = Group::new(
            "g",
            1 << 20,
            counting_getter(calls.clone(), Duration::ZERO),
            local_peers(),
            TtlPolicy::default(),
            HotPolicy::Golang,
        );
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

    #[test]
    fn one_in_ten_is_about_a_tenth() {
        let hits = (0..100_000).filter(|_| one_in_ten()).count();
        assert!((8_000..12_000).contains(&hits), "{hits}");
    }

    // Paused time: the load stays in flight while the test writes.
    #[tokio::test(start_paused = true)]
    async fn a_write_during_a_load_is_never_undone_by_it() {
        let calls = Arc::new(AtomicUsize::new(0));
        let group = Group::new(
            "g",
            1 << 20,
            counting_getter(calls.clone(), Duration::from_millis(300)),
            local_peers(),
            TtlPolicy::default(),
            HotPolicy::Golang,
        );
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

    #[tokio::test]
    async fn a_value_from_the_owner_is_returned_without_a_local_load() {
        let owner = FakePeer::new(Answer::Value("remote"));
        let pool = FakePool::new(Some(owner.clone()), Protocol::Golang);
        let calls = Arc::new(AtomicUsize::new(0));
        let group = group_over(&pool, counting_getter(calls.clone(), Duration::ZERO));
        assert_eq!(group.get(b"k").await.unwrap().bytes, "remote");
        assert_eq!(calls.load(Relaxed), 0, "the getter is not called");
        assert_eq!(owner.fetched(), [b"k".to_vec()]);
        let stats = group.stats();
        assert_eq!(
            (stats.loads, stats.peer_loads, stats.local_loads),
            (1, 1, 0)
        );
        assert_eq!((stats.peer_errors, stats.local_load_errs), (0, 0));
        // Not mirrored and not the owner: nothing is cached here.
        assert_eq!((stats.main_cache.items, stats.hot_cache.items), (0, 0));
    }

    #[tokio::test]
    async fn golang_mirrors_exactly_the_sampled_fetches_into_the_hot_cache() {
        // The 2nd and 5th fetches are chosen (golang: 1 in 10 at random).
        fn second_and_fifth() -> bool {
            static FETCHES: AtomicUsize = AtomicUsize::new(0);
            matches!(FETCHES.fetch_add(1, Relaxed), 1 | 4)
        }
        let owner = FakePeer::new(Answer::Value("remote"));
        let pool = FakePool::new(Some(owner.clone()), Protocol::Golang);
        let getter = counting_getter(Arc::new(AtomicUsize::new(0)), Duration::ZERO);
        let group = Group::with_mirror_sample("g", 1 << 20, getter, pool, second_and_fifth);
        let keys: Vec<Vec<u8>> = (0..6).map(|i| format!("k{i}").into_bytes()).collect();
        for key in &keys {
            assert_eq!(group.get(key).await.unwrap().bytes, "remote");
        }
        assert_eq!(owner.fetched(), keys);
        assert_eq!(group.stats().hot_cache.items, 2);
        // Mirrored keys are hits now; the others are fetched again.
        for key in &keys {
            assert_eq!(group.get(key).await.unwrap().bytes, "remote");
        }
        let again = &owner.fetched()[keys.len()..];
        assert_eq!(again, [&keys[0][..], &keys[2], &keys[3], &keys[5]]);
        let stats = group.stats();
        assert_eq!((stats.cache_hits, stats.peer_loads), (2, 10));
    }

    #[tokio::test]
    async fn the_forks_mirror_every_fetched_value_and_a_hit_asks_no_peer() {
        for protocol in [Protocol::Mailgun, Protocol::GroupcacheGo] {
            let owner = FakePeer::new(Answer::Value("remote"));
            let pool = FakePool::new(Some(owner.clone()), protocol);
            let getter = counting_getter(Arc::new(AtomicUsize::new(0)), Duration::ZERO);
            let group = group_over(&pool, getter);
            for _ in 0..3 {
                assert_eq!(group.get(b"k").await.unwrap().bytes, "remote");
            }
            assert_eq!(owner.fetched().len(), 1, "{protocol:?}");
            assert_eq!(
                pool.picks.load(Relaxed),
                1,
                "{protocol:?}: hits skip the pool"
            );
            let stats = group.stats();
            assert_eq!((stats.hot_cache.items, stats.cache_hits), (1, 2));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_owner_is_given_up_on_after_the_fetch_timeout() {
        let owner = FakePeer::new(Answer::Hang);
        let pool = FakePool::new(Some(owner.clone()), Protocol::Golang);
        let calls = Arc::new(AtomicUsize::new(0));
        let group = group_over(&pool, counting_getter(calls.clone(), Duration::ZERO));
        let started = tokio::time::Instant::now();
        for loaded in concurrent_gets(&group, b"k", 10).await {
            assert_eq!(loaded.unwrap().bytes, "value-of-k");
        }
        let waited = started.elapsed();
        assert!(
            (FETCH_TIMEOUT..FETCH_TIMEOUT + Duration::from_millis(10)).contains(&waited),
            "{waited:?}"
        );
        assert_eq!(owner.fetched().len(), 1, "one fetch for all ten gets");
        assert_eq!(calls.load(Relaxed), 1);
        let stats = group.stats();
        assert_eq!(
            (stats.peer_errors, stats.peer_loads, stats.local_loads),
            (1, 0, 1)
        );
    }

    #[tokio::test]
    async fn golang_loads_locally_whatever_the_owner_answers() {
        let refusals = [StatusCode::NOT_FOUND, StatusCode::SERVICE_UNAVAILABLE];
        let errors = refusals
            .map(|status| PeerError::Status(status, "no".into()))
            .into_iter()
            .chain([
                PeerError::Status(StatusCode::INTERNAL_SERVER_ERROR, "boom".into()),
                PeerError::Http(HttpError::Request("connection refused".into())),
                PeerError::Down,
            ]);
        for error in errors {
            let down = error == PeerError::Down;
            let owner = FakePeer::new(Answer::Error(error));
            let pool = FakePool::new(Some(owner.clone()), Protocol::Golang);
            let calls = Arc::new(AtomicUsize::new(0));
            let group = group_over(&pool, counting_getter(calls.clone(), Duration::ZERO));
            assert_eq!(group.get(b"k").await.unwrap().bytes, "value-of-k");
            assert_eq!(calls.load(Relaxed), 1);
            let stats = group.stats();
            // A peer marked down is skipped, not counted as an error.
            let errors = if down { 0 } else { 1 };
            assert_eq!((stats.peer_errors, stats.local_loads), (errors, 1));
            // Loaded here, so cached here: the next get asks no one.
            assert_eq!(group.get(b"k").await.unwrap().bytes, "value-of-k");
            assert_eq!(owner.fetched().len(), 1);
        }
    }

    #[tokio::test]
    async fn the_forks_pass_on_an_owners_404_or_503_without_a_local_load() {
        for protocol in [Protocol::Mailgun, Protocol::GroupcacheGo] {
            for (status, not_found) in [
                (StatusCode::NOT_FOUND, true),
                (StatusCode::SERVICE_UNAVAILABLE, false),
            ] {
                let refusal = PeerError::Status(status, "no such key".into());
                let owner = FakePeer::new(Answer::Error(refusal));
                let pool = FakePool::new(Some(owner), protocol);
                let calls = Arc::new(AtomicUsize::new(0));
                let group = group_over(&pool, counting_getter(calls.clone(), Duration::ZERO));
                let error = group.get(b"k").await.unwrap_err();
                let expected = GroupError::Refused {
                    not_found,
                    message: "no such key".into(),
                };
                assert_eq!(error, expected, "{protocol:?}");
                assert_eq!(calls.load(Relaxed), 0, "{protocol:?}: no local load");
                let stats = group.stats();
                assert_eq!((stats.peer_errors, stats.local_loads), (0, 0));
            }
            // Any other failure still falls back to a local load.
            let failure = PeerError::Status(StatusCode::INTERNAL_SERVER_ERROR, "boom".into());
            let pool = FakePool::new(Some(FakePeer::new(Answer::Error(failure))), protocol);
            let calls = Arc::new(AtomicUsize::new(0));
            let group = group_over(&pool, counting_getter(calls.clone(), Duration::ZERO));
            assert_eq!(group.get(b"k").await.unwrap().bytes, "value-of-k");
            assert_eq!(calls.load(Relaxed), 1);
        }
    }

    /// What [`versioned_getter`] answers.
    const UP: u8 = 0;
    const FAILING: u8 = 1;
    const GONE: u8 = 2;
    /// Up, but each load takes 5 s more.
    const SLOW: u8 = 3;

    /// A getter that answers `v{n}` on its nth call after 100 ms, fresh for
    /// a second, as `mode` says: up, failing, or the key is gone.
    fn versioned_getter(
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

    fn stale_group(
        policy: TtlPolicy,
    ) -> (Group, Arc<AtomicUsize>, Arc<std::sync::atomic::AtomicU8>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let mode = Arc::new(std::sync::atomic::AtomicU8::new(UP));
        let getter = versioned_getter(calls.clone(), mode.clone());
        let group = Group::new("g", 1 << 20, getter, local_peers(), policy, HotPolicy::Heat);
        (group, calls, mode)
    }

    /// A get that must not wait at all (time is paused: any wait shows).
    async fn get_at_once(group: &Group, key: &[u8]) -> (Bytes, Source) {
        let started = tokio::time::Instant::now();
        let (loaded, source) = group.get_traced(key).await;
        assert_eq!(started.elapsed(), Duration::ZERO, "{source:?} waited");
        (loaded.expect("a value").bytes, source)
    }

    /// Lets background refreshes run to the end.
    async fn let_background_work_finish() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Expiry runs on `value::now`, moved by `advance_clock`; the getter's
    // delay on tokio's paused clock. A current-thread runtime keeps both
    // on this thread.
    #[tokio::test(start_paused = true)]
    async fn stale_while_revalidate_answers_at_once_and_reloads_once() {
        let (group, calls, _) = stale_group(TtlPolicy {
            stale_while_revalidate: Some(Duration::from_secs(30)),
            ..TtlPolicy::default()
        });
        assert_eq!(group.get(b"k").await.unwrap().bytes, "v1");
        for expiry in 1..=3 {
            advance_clock(Duration::from_secs(2));
            for _ in 0..10 {
                let answer = get_at_once(&group, b"k").await;
                assert_eq!(
                    answer,
                    (Bytes::from(format!("v{expiry}")), Source::Revalidating)
                );
            }
            let_background_work_finish().await;
            assert_eq!(calls.load(Relaxed), expiry + 1, "one reload per expiry");
            let fresh = get_at_once(&group, b"k").await;
            assert_eq!(
                fresh,
                (Bytes::from(format!("v{}", expiry + 1)), Source::Main)
            );
        }
        let stats = group.stats();
        assert_eq!(
            (stats.stale_while_revalidate, stats.background_refreshes),
            (30, 3)
        );
        assert_eq!(
            stats.stale_cache.items, 0,
            "each refresh replaced its stale value"
        );
    }

    /// A group whose `k`, loaded as v1 with a minute of `stale-if-error`,
    /// has expired, its getter now in `mode`; gets wait `stale_wait` for a
    /// reload.
    async fn expired_in_grace(
        mode_now: u8,
        stale_wait: Duration,
    ) -> (Group, Arc<AtomicUsize>, Arc<std::sync::atomic::AtomicU8>) {
        let (group, calls, mode) = stale_group(TtlPolicy {
            stale_if_error: Some(Duration::from_secs(60)),
            ..TtlPolicy::default()
        });
        let group = group.with_stale_wait(stale_wait);
        assert_eq!(group.get(b"k").await.unwrap().bytes, "v1");
        mode.store(mode_now, Relaxed);
        advance_clock(Duration::from_secs(2));
        (group, calls, mode)
    }

    #[tokio::test(start_paused = true)]
    async fn stale_if_error_answers_failed_reloads_and_retries_in_the_background() {
        let (group, calls, mode) = expired_in_grace(FAILING, DEFAULT_STALE_WAIT).await;
        // The first get after expiry tries the origin, and gets v1 instead.
        let (loaded, source) = group.get_traced(b"k").await;
        assert_eq!(loaded.unwrap().bytes, "v1");
        assert!(matches!(
            source,
            Source::StaleOnError(Some(GroupError::Getter(GetterError::Failed(_))))
        ));
        assert_eq!(calls.load(Relaxed), 2);
        // Within the back-off: answered at once, the origin left alone.
        for _ in 0..5 {
            let answer = get_at_once(&group, b"k").await;
            assert_eq!(answer, (Bytes::from("v1"), Source::StaleOnError(None)));
        }
        assert_eq!(calls.load(Relaxed), 2);
        // After the back-off: still at once, one retry in the background.
        advance_clock(Duration::from_millis(1100));
        assert_eq!(
            get_at_once(&group, b"k").await.1,
            Source::StaleOnError(None)
        );
        let_background_work_finish().await;
        assert_eq!(calls.load(Relaxed), 3);
        // The origin is back; the next retry (after 2 s) brings v4.
        mode.store(UP, Relaxed);
        advance_clock(Duration::from_millis(2100));
        assert_eq!(get_at_once(&group, b"k").await.0, "v1");
        let_background_work_finish().await;
        assert_eq!(calls.load(Relaxed), 4);
        assert_eq!(
            get_at_once(&group, b"k").await,
            (Bytes::from("v4"), Source::Main)
        );
        // Past the window, a failure is an error again.
        mode.store(FAILING, Relaxed);
        advance_clock(Duration::from_secs(62));
        assert!(group.get(b"k").await.is_err());
        // A key that is gone is not answered stale.
        mode.store(UP, Relaxed);
        assert_eq!(group.get(b"k").await.unwrap().bytes, "v6");
        mode.store(GONE, Relaxed);
        advance_clock(Duration::from_secs(2));
        assert!(group.get(b"k").await.unwrap_err().is_not_found());
        assert_eq!(group.stats().stale_cache.items, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_reload_is_answered_stale_after_the_stale_wait() {
        let (group, calls, _) = expired_in_grace(SLOW, DEFAULT_STALE_WAIT).await;
        let started = tokio::time::Instant::now();
        let (loaded, source) = group.get_traced(b"k").await;
        assert_eq!(started.elapsed(), DEFAULT_STALE_WAIT, "not the load's 5 s");
        assert_eq!(
            (loaded.unwrap().bytes, source),
            (Bytes::from("v1"), Source::StaleOnSlowLoad)
        );
        // While the reload runs on: answered at once, the origin asked once.
        for _ in 0..5 {
            let answer = get_at_once(&group, b"k").await;
            assert_eq!(answer, (Bytes::from("v1"), Source::StaleOnError(None)));
        }
        assert_eq!(calls.load(Relaxed), 2);
        // Its value replaces the stale one.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            get_at_once(&group, b"k").await,
            (Bytes::from("v2"), Source::Main)
        );
        assert_eq!(calls.load(Relaxed), 2);
        assert_eq!(group.stats().stale_if_error, 6);
        // With no stale wait, the same get answers stale at once.
        let (group, _, _) = expired_in_grace(SLOW, Duration::ZERO).await;
        assert_eq!(
            get_at_once(&group, b"k").await,
            (Bytes::from("v1"), Source::StaleOnSlowLoad)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn not_founds_are_remembered_for_the_negative_ttl() {
        let (group, calls, mode) = stale_group(TtlPolicy {
            negative_ttl: Some(Duration::from_secs(60)),
            ..TtlPolicy::default()
        });
        mode.store(GONE, Relaxed);
        let (loaded, first) = group.get_traced(b"k").await;
        assert!(loaded.unwrap_err().is_not_found());
        let Source::OriginNotFound(until) = first else {
            panic!("the first answer says it is remembered: {first:?}");
        };
        let left = until.remaining().unwrap_or_default();
        assert!(left > Duration::from_secs(59), "kept for the negative TTL");
        for _ in 0..5 {
            let (loaded, source) = group.get_traced(b"k").await;
            assert_eq!(loaded.unwrap_err().to_string(), "origin returned 404");
            assert!(matches!(source, Source::NotFound(_)));
        }
        assert_eq!(calls.load(Relaxed), 1);
        assert_eq!(group.stats().negative_hits, 5);
        // A write clears it at once.
        group.write(b"k", None).unwrap();
        assert!(group.get(b"k").await.is_err());
        assert_eq!(calls.load(Relaxed), 2);
        // And it expires.
        advance_clock(Duration::from_secs(61));
        mode.store(UP, Relaxed);
        assert_eq!(group.get(b"k").await.unwrap().bytes, "v3");
        // Without a negative TTL, nothing is remembered.
        let (group, calls, mode) = stale_group(TtlPolicy::default());
        mode.store(GONE, Relaxed);
        for _ in 0..3 {
            assert!(group.get(b"k").await.is_err());
        }
        assert_eq!(calls.load(Relaxed), 3);
    }
}
