//! What a group counts: golang's counters and the write counters
//! ([`GroupStats`], as `/stats` shows them), and how long its misses take
//! ([`LoadTimings`], histograms `/metrics` exports). The group keeps them;
//! the views above it read them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[cfg(feature = "metrics")]
use prometheus::{Histogram, HistogramOpts};
use serde::Serialize;

use crate::cache::CacheStats;

/// The group's counters: golang's, with its names and meanings, then the
/// write counters.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) gets: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) peer_loads: AtomicU64,
    pub(crate) peer_errors: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) loads_deduped: AtomicU64,
    pub(crate) local_loads: AtomicU64,
    pub(crate) local_load_errs: AtomicU64,
    pub(crate) server_requests: AtomicU64,
    pub(crate) user_sets: AtomicU64,
    pub(crate) user_removes: AtomicU64,
    pub(crate) unconfirmed_writes: AtomicU64,
    pub(crate) peer_sets: AtomicU64,
    pub(crate) peer_removes: AtomicU64,
    pub(crate) stale_if_error: AtomicU64,
    pub(crate) stale_while_revalidate: AtomicU64,
    pub(crate) background_refreshes: AtomicU64,
    pub(crate) negative_hits: AtomicU64,
    pub(crate) hot_admissions: AtomicU64,
    pub(crate) hot_rejections: AtomicU64,
}

impl Stats {
    /// Adds one to a count outside the get path.
    pub(crate) fn count(&self, what: Counted) {
        let s = self;
        let counter = match what {
            Counted::ServerRequest => &s.server_requests,
            Counted::UserSet => &s.user_sets,
            Counted::UserRemove => &s.user_removes,
            Counted::UnconfirmedWrite => &s.unconfirmed_writes,
            Counted::PeerSet => &s.peer_sets,
            Counted::PeerRemove => &s.peer_removes,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// These counters, with both caches' counters.
    pub(crate) fn snapshot(
        &self,
        (main_cache, hot_cache, stale_cache): (CacheStats, CacheStats, CacheStats),
    ) -> GroupStats {
        let s = self;
        GroupStats {
            gets: s.gets.load(Relaxed),
            cache_hits: s.cache_hits.load(Relaxed),
            peer_loads: s.peer_loads.load(Relaxed),
            peer_errors: s.peer_errors.load(Relaxed),
            loads: s.loads.load(Relaxed),
            loads_deduped: s.loads_deduped.load(Relaxed),
            local_loads: s.local_loads.load(Relaxed),
            local_load_errs: s.local_load_errs.load(Relaxed),
            server_requests: s.server_requests.load(Relaxed),
            user_sets: s.user_sets.load(Relaxed),
            user_removes: s.user_removes.load(Relaxed),
            unconfirmed_writes: s.unconfirmed_writes.load(Relaxed),
            peer_sets: s.peer_sets.load(Relaxed),
            peer_removes: s.peer_removes.load(Relaxed),
            stale_if_error: s.stale_if_error.load(Relaxed),
            stale_while_revalidate: s.stale_while_revalidate.load(Relaxed),
            background_refreshes: s.background_refreshes.load(Relaxed),
            negative_hits: s.negative_hits.load(Relaxed),
            hot_admissions: s.hot_admissions.load(Relaxed),
            hot_rejections: s.hot_rejections.load(Relaxed),
            main_cache,
            hot_cache,
            stale_cache,
        }
    }
}

/// A count a group adds one to outside the get path (see [`GroupStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    /// A peer's write request to a group that exists (a peer's get counts
    /// itself).
    ServerRequest,
    UserSet,
    UserRemove,
    UnconfirmedWrite,
    PeerSet,
    PeerRemove,
}

/// A snapshot of a group's stats, serialized with golang's field names
/// (mailgun's for `ServerRequests`, which counts peer writes too), then
/// the write counters, which golang has no names for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct GroupStats {
    /// Gets of any kind (users', peers', embedders').
    pub gets: u64,
    /// Gets answered from the main or hot cache.
    pub cache_hits: u64,
    /// Values fetched from the owning peer.
    pub peer_loads: u64,
    /// Fetches from the owning peer that failed.
    pub peer_errors: u64,
    /// Gets that missed the caches.
    pub loads: u64,
    /// Misses that waited on a load already running.
    pub loads_deduped: u64,
    /// Values loaded by this node's getter.
    pub local_loads: u64,
    /// Loads by this node's getter that failed.
    pub local_load_errs: u64,
    /// Requests from peers: gets, and in a fork's pool writes too.
    pub server_requests: u64,
    /// User `PUT`s through this node sent on to the pool.
    pub user_sets: u64,
    /// User `DELETE`s through this node sent on to the pool.
    pub user_removes: u64,
    /// User writes that some node did not confirm (answered 502).
    pub unconfirmed_writes: u64,
    /// Values a peer's `PUT` stored here.
    pub peer_sets: u64,
    /// Keys a peer's `DELETE` (or each key of a `_remove-keys/` list)
    /// asked this node to remove, held or not.
    pub peer_removes: u64,
    /// Gets answered with an expired value because its reload failed, or
    /// a recent one did (`stale-if-error`).
    pub stale_if_error: u64,
    /// Gets answered with an expired value at once while it reloads in
    /// the background (`stale-while-revalidate`).
    pub stale_while_revalidate: u64,
    /// Reloads of stale values started in the background.
    pub background_refreshes: u64,
    /// Gets answered from a remembered not-found.
    pub negative_hits: u64,
    /// Values fetched from peers that the hot policy kept a copy of (by
    /// heat; golang's sampling counts neither).
    pub hot_admissions: u64,
    /// Values fetched from peers that were asked for less than the entry
    /// they would have evicted, and so not kept.
    pub hot_rejections: u64,
    /// The cache of keys this node owns (remembered not-founds included).
    pub main_cache: CacheStats,
    /// Copies of other nodes' hot keys.
    pub hot_cache: CacheStats,
    /// Expired main values kept for their grace.
    pub stale_cache: CacheStats,
}

#[cfg(feature = "metrics")]
/// Histogram buckets for fetch and load durations, in seconds: from a fast
/// loopback peer to the longest `--peer-timeout` anyone should use.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How long one group's misses take: fetches from the owning peer and
/// loads from the origin, as histograms with the `metrics` feature, and
/// the slowest fetch. Recorded on the miss paths only.
pub(crate) struct LoadTimings {
    #[cfg(feature = "metrics")]
    pub(crate) peer_fetch: Histogram,
    #[cfg(feature = "metrics")]
    pub(crate) origin_load: Histogram,
    pub(crate) slowest_peer_fetch_ns: AtomicU64,
}

impl LoadTimings {
    pub(crate) fn new(group: &str) -> LoadTimings {
        #[cfg(not(feature = "metrics"))]
        let _ = group;
        LoadTimings {
            #[cfg(feature = "metrics")]
            peer_fetch: histogram(
                "groupcached_peer_fetch_duration_seconds",
                "How long fetches from the owning peer took, failed ones included.",
                group,
            ),
            #[cfg(feature = "metrics")]
            origin_load: histogram(
                "groupcached_origin_load_duration_seconds",
                "How long loads from the origin took, failed ones included.",
                group,
            ),
            slowest_peer_fetch_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn peer_fetch(&self, took: Duration) {
        #[cfg(feature = "metrics")]
        self.peer_fetch.observe(took.as_secs_f64());
        let nanos = took.as_nanos().try_into().unwrap_or(u64::MAX);
        self.slowest_peer_fetch_ns.fetch_max(nanos, Relaxed);
    }

    pub(crate) fn origin_load(&self, took: Duration) {
        #[cfg(feature = "metrics")]
        self.origin_load.observe(took.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = took;
    }
}

#[cfg(feature = "metrics")]
fn histogram(name: &str, help: &str, group: &str) -> Histogram {
    let opts = HistogramOpts::new(name, help)
        .const_label("group", group)
        .buckets(BUCKETS.to_vec());
    // The name, the label name and the buckets are valid constants, and any
    // string is a valid label value.
    Histogram::with_opts(opts).expect("valid histogram options")
}
