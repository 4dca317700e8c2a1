//! `GET /metrics`: the node's state in the Prometheus text format.
//!
//! Nothing on the hot path is counted twice: the counters that groups and
//! caches already keep (those `/stats` shows) are read at scrape time and
//! written under mailgun/groupcache's metric names, so dashboards built for
//! its exporter work unchanged. Only the miss paths record something new,
//! the durations of peer fetches and origin loads ([`LoadTimings`], one per
//! group); the write counters, which golang has no names for, are
//! `groupcached_` ones. Every group count is named in the one table of
//! `group::counters`, next to the count itself. Peers, etcd, the process and the build are read at
//! scrape time too. Each metric is one line of a table or one call below,
//! so a new one is a line or two.

use std::sync::atomic::Ordering::Relaxed;

use prometheus::core::Collector;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Histogram, TextEncoder};

use crate::cache::CacheStats;
use crate::group::counters::{GroupStats, COUNTER_METRICS};
use crate::group::Group;
use crate::node::Node;

/// The `Content-Type` of the exposition (Prometheus text format 0.0.4).
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// mailgun's cache metrics (labels `group`, `type` = main | hot, and
/// stale for the expired values kept for their grace).
type CacheField = fn(&CacheStats) -> u64;
const CACHE_METRICS: [(&str, &str, MetricType, CacheField); 7] = [
    (
        "groupcache_cache_bytes",
        "Bytes held (keys plus values).",
        MetricType::GAUGE,
        |c| c.bytes,
    ),
    (
        "groupcache_cache_items",
        "Items held.",
        MetricType::GAUGE,
        |c| c.items,
    ),
    (
        "groupcache_cache_gets_total",
        "Cache lookups.",
        MetricType::COUNTER,
        |c| c.gets,
    ),
    (
        "groupcache_cache_hits_total",
        "Cache hits.",
        MetricType::COUNTER,
        |c| c.hits,
    ),
    (
        "groupcache_cache_evictions_total",
        "Items removed: to make room, or found expired.",
        MetricType::COUNTER,
        |c| c.evictions,
    ),
    (
        "groupcache_cache_evictions_nonexpired_total",
        "Items removed to make room before they expired.",
        MetricType::COUNTER,
        |c| c.evictions - c.expired,
    ),
    (
        "groupcached_cache_expirations_total",
        "Items found expired on lookup and removed.",
        MetricType::COUNTER,
        |c| c.expired,
    ),
];

/// The exposition for `node`.
pub(crate) fn render(node: &Node) -> Result<String, prometheus::Error> {
    let mut groups: Vec<(&Group, GroupStats)> = node.groups().map(|g| (g, g.stats())).collect();
    groups.sort_by(|a, b| a.0.name().cmp(b.0.name()));
    let mut out = Families::default();
    group_metrics(&mut out, &groups);
    peer_metrics(&mut out, node);
    process_metrics(&mut out);
    TextEncoder::new().encode_to_string(&out.0)
}

/// Each group's counts, caches and load timings.
fn group_metrics(out: &mut Families, groups: &[(&Group, GroupStats)]) {
    // Each group count, as its table in `group::counters` names it; rows
    // sharing a name are one family split by their label.
    let mut done: Vec<&str> = Vec::new();
    for (name, _, help, _) in COUNTER_METRICS {
        if done.contains(&name) {
            continue;
        }
        done.push(name);
        let rows = COUNTER_METRICS.iter().filter(|row| row.0 == name);
        let samples: Vec<(Vec<(&str, &str)>, f64)> = groups
            .iter()
            .flat_map(|(g, s)| {
                rows.clone().map(move |(_, label, _, field)| {
                    let mut labels = vec![("group", g.name())];
                    labels.extend(*label);
                    (labels, field(s) as f64)
                })
            })
            .collect();
        out.add(name, help, MetricType::COUNTER, samples);
    }
    out.add(
        "groupcache_get_from_peers_latency_lower",
        "The slowest fetch from a peer so far, in seconds.",
        MetricType::GAUGE,
        groups.iter().map(|(g, _)| {
            let nanos = g.timings().slowest_peer_fetch_ns.load(Relaxed);
            (vec![("group", g.name())], nanos as f64 / 1e9)
        }),
    );
    for (name, help, kind, field) in CACHE_METRICS {
        out.add(
            name,
            help,
            kind,
            groups.iter().flat_map(|(g, s)| {
                let mut caches = vec![
                    ("main", &s.main_cache),
                    ("hot", &s.hot_cache),
                    ("stale", &s.stale_cache),
                ];
                if g.compressed_copies().is_some() {
                    caches.push(("compressed", &s.compressed_cache));
                }
                caches.into_iter().map(move |(which, cache)| {
                    (
                        vec![("group", g.name()), ("type", which)],
                        field(cache) as f64,
                    )
                })
            }),
        );
    }
    out.add(
        "groupcached_cache_capacity_bytes",
        "The most bytes the group's caches hold together (--cache-bytes).",
        MetricType::GAUGE,
        groups
            .iter()
            .map(|(g, _)| (vec![("group", g.name())], g.cache_bytes() as f64)),
    );
    out.histograms(groups.iter().map(|(g, _)| &g.timings().peer_fetch));
    out.histograms(groups.iter().map(|(g, _)| &g.timings().origin_load));
}

/// The peer list, each peer's health and probes, and etcd's state.
fn peer_metrics(out: &mut Families, node: &Node) {
    let shares = node.peers().ring_shares();
    out.add(
        "groupcached_peers",
        "Peers in the current list, this node included.",
        MetricType::GAUGE,
        [(vec![], shares.len() as f64)],
    );
    out.add(
        "groupcached_peer_ring_share",
        "The share of the hash ring (and so of the keys) each peer owns.",
        MetricType::GAUGE,
        shares
            .iter()
            .map(|(peer, share)| (vec![("peer", peer.as_str())], *share)),
    );
    let health = node.peers().health();
    out.add(
        "groupcached_peer_up",
        "1 while another peer answers, 0 while it is marked down or being probed.",
        MetricType::GAUGE,
        health.iter().map(|p| {
            let up = p.health.state == "up";
            (vec![("peer", p.url.as_str())], f64::from(u8::from(up)))
        }),
    );
    out.add(
        "groupcached_peer_failures",
        "Fetches in a row that found another peer unreachable.",
        MetricType::GAUGE,
        health.iter().map(|p| {
            let failures = f64::from(p.health.failures);
            (vec![("peer", p.url.as_str())], failures)
        }),
    );
    out.add(
        "groupcached_peer_probes_total",
        "Liveness probes sent to another peer while a fetch waited on it, by whether it answered in time.",
        MetricType::COUNTER,
        health.iter().flat_map(|p| {
            let peer = p.url.as_str();
            let answered = p.health.probes.saturating_sub(p.health.probes_unanswered);
            [
                (vec![("peer", peer), ("result", "answered")], answered as f64),
                (vec![("peer", peer), ("result", "unanswered")], p.health.probes_unanswered as f64),
            ]
        }),
    );
    if let Some(status) = node.source().describe().etcd {
        out.add(
            "groupcached_etcd_connected",
            "1 while this node is registered in etcd and watching the peer list.",
            MetricType::GAUGE,
            [(vec![], f64::from(u8::from(status.connected)))],
        );
        out.add(
            "groupcached_etcd_revision",
            "The etcd revision of the last peer list seen.",
            MetricType::GAUGE,
            [(vec![], status.revision as f64)],
        );
    }
}

/// The process and the build.
fn process_metrics(out: &mut Families) {
    if let Some(bytes) = resident_bytes() {
        out.add(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            MetricType::GAUGE,
            [(vec![], bytes as f64)],
        );
    }
    if let Some(fds) = open_fds() {
        out.add(
            "process_open_fds",
            "Number of open file descriptors.",
            MetricType::GAUGE,
            [(vec![], fds as f64)],
        );
    }
    out.add(
        "groupcached_build_info",
        "Always 1; the labels say which build is running.",
        MetricType::GAUGE,
        [(vec![("version", env!("CARGO_PKG_VERSION"))], 1.0)],
    );
}

/// Metric families in the order they are written.
#[derive(Default)]
struct Families(Vec<MetricFamily>);

impl Families {
    /// One family of counters or gauges, one sample per label set; a
    /// family without samples is left out (the format has no empty ones).
    fn add<'a>(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        samples: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, f64)>,
    ) {
        let metrics: Vec<Metric> = samples
            .into_iter()
            .map(|(labels, value)| {
                let mut metric = Metric::default();
                metric.set_label(labels.into_iter().map(label).collect());
                if kind == MetricType::COUNTER {
                    let mut counter = Counter::default();
                    counter.set_value(value);
                    metric.set_counter(counter);
                } else {
                    let mut gauge = Gauge::default();
                    gauge.set_value(value);
                    metric.set_gauge(gauge);
                }
                metric
            })
            .collect();
        self.push(name, help, kind, metrics);
    }

    /// One histogram family from the same histogram of every group.
    fn histograms<'a>(&mut self, histograms: impl Iterator<Item = &'a Histogram>) {
        let mut merged: Option<MetricFamily> = None;
        for family in histograms.flat_map(Collector::collect) {
            match &mut merged {
                Some(merged) => merged
                    .mut_metric()
                    .extend(family.get_metric().iter().cloned()),
                None => merged = Some(family),
            }
        }
        self.0.extend(merged);
    }

    fn push(&mut self, name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) {
        if metrics.is_empty() {
            return;
        }
        let mut family = MetricFamily::default();
        family.set_name(name.to_string());
        family.set_help(help.to_string());
        family.set_field_type(kind);
        family.set_metric(metrics);
        self.0.push(family);
    }
}

fn label((name, value): (&str, &str)) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_string());
    pair.set_value(value.to_string());
    pair
}

/// This process's resident set size, from `/proc/self/status`.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// How many file descriptors this process has open.
fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exposition_reads_the_stats_under_mailguns_names() {
        let node = crate::cmd::app::test_node(&["--group", "g=echo"]);
        let group = node.group(b"g").expect("group g");
        for key in [&b"k1"[..], b"k2", b"k1"] {
            group.get(key).await.expect("echo value");
        }
        crate::writes::peer_remove(group, b"never-loaded");
        let text = render(&node).expect("exposition");
        for line in [
            "groupcache_gets_total{group=\"g\"} 3",
            "groupcache_hits_total{group=\"g\"} 1",
            "groupcache_local_loads_total{group=\"g\"} 2",
            "groupcache_cache_bytes{group=\"g\",type=\"main\"} 8",
            "groupcache_cache_items{group=\"g\",type=\"hot\"} 0",
            "groupcached_cache_capacity_bytes{group=\"g\"} 67108864",
            "groupcached_origin_load_duration_seconds_count{group=\"g\"} 2",
            "groupcached_peer_ring_share{peer=\"http://127.0.0.1:1\"} 1",
            "# TYPE groupcache_cache_evictions_nonexpired_total counter",
            "groupcached_cache_expirations_total{group=\"g\",type=\"main\"} 0",
            "groupcached_user_writes_total{group=\"g\",op=\"set\"} 0",
            "groupcached_peer_writes_total{group=\"g\",op=\"remove\"} 1",
            "groupcached_user_writes_unconfirmed_total{group=\"g\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
