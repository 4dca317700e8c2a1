//! What a group counts: golang's counters and the write counters, each
//! declared once in one table ([`Counted`] adds to it, [`GroupStats`]
//! shows it in `/stats`, `COUNTER_METRICS` names it in `/metrics`), and
//! how long its misses take ([`LoadTimings`], histograms `/metrics`
//! exports). The group keeps them; the views above it read them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[cfg(feature = "metrics")]
use prometheus::{Histogram, HistogramOpts};
use serde::Serialize;

use crate::cache::CacheStats;

/// Declares every count a group keeps, once: the [`Counted`] variant that
/// adds one to it, its [`GroupStats`] field (`/stats` shows it under the
/// field's PascalCase name), and its Prometheus metric (name, an extra
/// label, help). A counter added here shows up in `/stats` and
/// `/metrics` with nothing else to change. Rows sharing a metric name are
/// one family split by their label.
macro_rules! counters {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident => $field:ident, $metric:literal $({ $label:literal = $value:literal })?, $help:literal;
    )*) => {
        /// A count a group adds one to.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Counted {
            $($variant,)*
        }

        /// How many counts a group keeps.
        const COUNTS: usize = [$(Counted::$variant),*].len();

        impl Counted {
            /// Every count, in the table's order.
            #[cfg(test)]
            const ALL: [Counted; COUNTS] = [$(Counted::$variant),*];
        }

        /// A snapshot of a group's stats, serialized with golang's field
        /// names (mailgun's for `ServerRequests`, which counts peer writes
        /// too), then the counts golang has no names for, then the caches'.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
        #[serde(rename_all = "PascalCase")]
        #[non_exhaustive]
        pub struct GroupStats {
            $($(#[doc = $doc])* pub $field: u64,)*
            /// The cache of keys this node owns (remembered not-founds included).
            pub main_cache: CacheStats,
            /// Copies of other nodes' hot keys.
            pub hot_cache: CacheStats,
            /// Expired main values kept for their grace.
            pub stale_cache: CacheStats,
            /// Compressed copies of values (`--compress` groups only).
            pub compressed_cache: CacheStats,
        }

        impl GroupStats {
            fn from_counts(
                counts: [u64; COUNTS],
                (main_cache, hot_cache, stale_cache): (CacheStats, CacheStats, CacheStats),
                compressed_cache: CacheStats,
            ) -> GroupStats {
                let [$($field),*] = counts;
                GroupStats { $($field,)* main_cache, hot_cache, stale_cache, compressed_cache }
            }
        }

        /// Each count's metric: name, extra label (name and value), help,
        /// and its field.
        #[cfg(feature = "metrics")]
        pub(crate) const COUNTER_METRICS: [CounterMetric; COUNTS] = [
            $(($metric, counters!(@label $($label = $value)?), $help, |s: &GroupStats| s.$field),)*
        ];
    };
    (@label $label:literal = $value:literal) => { Some(($label, $value)) };
    (@label) => { None };
}

/// A count's metric: name, extra label, help, and how to read it.
#[cfg(feature = "metrics")]
pub(crate) type CounterMetric = (
    &'static str,
    Option<(&'static str, &'static str)>,
    &'static str,
    fn(&GroupStats) -> u64,
);

counters! {
    /// Gets of any kind (users', peers', embedders').
    Get => gets, "groupcache_gets_total", "Gets, from users and peers.";
    /// Gets answered from the main or hot cache.
    CacheHit => cache_hits, "groupcache_hits_total", "Gets answered from the main or hot cache.";
    /// Values fetched from the owning peer.
    PeerLoad => peer_loads, "groupcache_peer_loads_total", "Successful fetches from the owning peer.";
    /// Fetches from the owning peer that failed.
    PeerError => peer_errors, "groupcache_peer_errors_total", "Failed fetches from the owning peer.";
    /// Gets that missed the caches.
    Load => loads, "groupcache_loads_total", "Gets that missed both caches.";
    /// Misses that waited on a load already running.
    LoadDeduped => loads_deduped, "groupcache_loads_deduped_total",
        "Loads left after concurrent loads of the same key were merged.";
    /// Values loaded by this node's getter.
    LocalLoad => local_loads, "groupcache_local_loads_total", "Successful loads from this node's origin.";
    /// Loads by this node's getter that failed.
    LocalLoadErr => local_load_errs, "groupcache_local_load_errs_total", "Failed loads from this node's origin.";
    /// Requests from peers: gets, and in a fork's pool writes too.
    ServerRequest => server_requests, "groupcache_server_requests_total",
        "Requests received from peers: gets, and in a fork's pool writes.";
    /// User `PUT`s through this node sent on to the pool.
    UserSet => user_sets, "groupcached_user_writes_total" { "op" = "set" },
        "User PUTs and DELETEs through this node, sent on to the pool.";
    /// User `DELETE`s through this node sent on to the pool.
    UserRemove => user_removes, "groupcached_user_writes_total" { "op" = "remove" },
        "User PUTs and DELETEs through this node, sent on to the pool.";
    /// User writes that some node did not confirm (answered 502).
    UnconfirmedWrite => unconfirmed_writes, "groupcached_user_writes_unconfirmed_total",
        "User writes that some node did not confirm (answered 502).";
    /// Values a peer's `PUT` stored here.
    PeerSet => peer_sets, "groupcached_peer_writes_total" { "op" = "set" },
        "Values stored here at a peer's request, and keys it asked to remove.";
    /// Keys a peer's `DELETE` (or each key of a `_remove-keys/` list)
    /// asked this node to remove, held or not.
    PeerRemove => peer_removes, "groupcached_peer_writes_total" { "op" = "remove" },
        "Values stored here at a peer's request, and keys it asked to remove.";
    /// Gets answered with an expired value because its reload failed, or
    /// a recent one did (`stale-if-error`).
    StaleIfError => stale_if_error, "groupcached_stale_served_total" { "why" = "if-error" },
        "Gets answered with an expired value in its grace: while its reload failed (if-error), or while it reloads in the background (while-revalidate).";
    /// Gets answered with an expired value at once while it reloads in
    /// the background (`stale-while-revalidate`).
    StaleWhileRevalidate => stale_while_revalidate, "groupcached_stale_served_total" { "why" = "while-revalidate" },
        "Gets answered with an expired value in its grace: while its reload failed (if-error), or while it reloads in the background (while-revalidate).";
    /// Reloads of stale values started in the background.
    BackgroundRefresh => background_refreshes, "groupcached_background_refreshes_total",
        "Reloads of stale values started in the background.";
    /// Gets answered from a remembered not-found.
    NegativeHit => negative_hits, "groupcached_negative_hits_total", "Gets answered from a remembered not-found.";
    /// Values fetched from peers that the hot policy kept a copy of (by
    /// heat; golang's sampling counts neither).
    HotAdmission => hot_admissions, "groupcached_hot_offers_total" { "result" = "admitted" },
        "Values fetched from peers offered to the hot cache by heat: kept (admitted) or not (rejected).";
    /// Values fetched from peers that were asked for less than the entry
    /// they would have evicted, and so not kept.
    HotRejection => hot_rejections, "groupcached_hot_offers_total" { "result" = "rejected" },
        "Values fetched from peers offered to the hot cache by heat: kept (admitted) or not (rejected).";
    /// User gets answered `304 Not Modified` (`If-None-Match`): each is
    /// also counted as the get it was.
    NotModified => not_modified, "groupcached_not_modified_total",
        "User gets answered 304 Not Modified (also counted as gets and hits).";
    /// User gets answered with part of a value (`206`, `Range`).
    PartialReply => partial_replies, "groupcached_partial_replies_total",
        "User gets answered 206 Partial Content with the ranges asked for.";
    /// User gets answered in a content coding (`--compress`).
    CompressedReply => compressed_replies, "groupcached_compressed_replies_total",
        "User gets answered in a content coding (gzip, br, zstd).";
    /// Compressed copies made (once per value and coding while kept).
    Compression => compressions, "groupcached_compressions_total",
        "Compressed copies of values made (once per value and coding while kept).";
}

/// A group's counts, one atomic each, added to by [`Stats::count`] only.
pub(crate) struct Stats {
    counts: [AtomicU64; COUNTS],
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Stats {
    /// Adds one to `what`.
    pub(crate) fn count(&self, what: Counted) {
        self.counts[what as usize].fetch_add(1, Relaxed);
    }

    /// These counts, with the caches' counters and the compressed
    /// copies'.
    pub(crate) fn snapshot(
        &self,
        caches: (CacheStats, CacheStats, CacheStats),
        compressed: CacheStats,
    ) -> GroupStats {
        let counts = self.counts.each_ref().map(|c| c.load(Relaxed));
        GroupStats::from_counts(counts, caches, compressed)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each count, added to once, shows up as exactly one `/stats` field
    /// and (with the metrics) exactly one metric sample of 1.
    #[test]
    fn every_count_shows_in_stats_and_metrics_once() {
        for (i, what) in Counted::ALL.into_iter().enumerate() {
            let stats = Stats::default();
            stats.count(what);
            let snapshot = stats.snapshot(Default::default(), Default::default());
            let json = serde_json::to_value(snapshot).unwrap();
            let ones: Vec<&String> = json
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, v)| v.as_u64() == Some(1))
                .map(|(k, _)| k)
                .collect();
            assert_eq!(ones.len(), 1, "{what:?}: {ones:?}");
            #[cfg(feature = "metrics")]
            {
                let read: Vec<u64> = COUNTER_METRICS.iter().map(|m| (m.3)(&snapshot)).collect();
                assert_eq!(read.iter().sum::<u64>(), 1, "{what:?}");
                assert_eq!(read[i], 1, "{what:?}: its own row");
            }
            let _ = i;
        }
        // `/stats` names golang's counters first, as it always has.
        let json = serde_json::to_string(
            &Stats::default().snapshot(Default::default(), Default::default()),
        )
        .unwrap();
        assert!(
            json.starts_with(r#"{"Gets":0,"CacheHits":0,"PeerLoads":0,"#),
            "{json}"
        );
    }
}
