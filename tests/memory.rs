//! Memory against the real binary: a storm of not-founds for unique keys,
//! each a tiny entry, must keep the node's resident memory within a bound
//! that follows from `--cache-bytes`, since every entry is charged its
//! bookkeeping as well as its key and value.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use common::*;

/// The cache size of the storm's node.
const CACHE_BYTES: u64 = 1 << 20;

/// What the node's memory may grow by while its cache fills: the cache
/// size, charged as `src/cache/mod.rs` charges it, plus a quarter for what the
/// charge leaves out (the allocator's partly filled pages) and 1 MiB for
/// the process itself (connections, the runtime's buffers).
const MOST_GROWTH: u64 = CACHE_BYTES + CACHE_BYTES / 4 + (1 << 20);

/// Done when: 25,000 GETs of keys the origin does not have, each
/// remembered (`--negative-ttl 1h`), grow a node with a 1 MiB cache by
/// less than [`MOST_GROWTH`]: the entries a storm leaves are bounded by
/// `--cache-bytes`, not by their count. Counted as key plus message alone
/// (48 bytes against ~180 held), four times as many entries would stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_found_storm_keeps_memory_within_the_cache_bytes() {
    let origin = Origin::start().await;
    let cache_bytes = CACHE_BYTES.to_string();
    let extra = ["--cache-bytes", &cache_bytes, "--negative-ttl", "1h"];
    let node = start_cluster(&free_ports(1), &origin, &extra)
        .await
        .remove(0);
    let storm = |prefix: &'static str, count: usize| {
        let url = node.url.clone();
        let keys: Vec<String> = (0..count)
            .map(|i| format!("missing-{prefix}-{i}"))
            .collect();
        bounded(16, keys, move |key| {
            let url = format!("{url}/cache/g/{key}");
            async move { http_get(&url).await.status }
        })
    };
    // Connections, threads and their buffers first, the cache not yet full.
    assert!(storm("warm", 1_000).await.iter().all(|&s| s == 404));
    let before = node.rss_bytes();
    let statuses = storm("storm", 25_000).await;
    assert!(statuses.iter().all(|&s| s == 404), "every key is missing");
    let grown = node.rss_bytes().saturating_sub(before);
    let stats = node.stats().await;
    let items = stat(&stats, "g", "MainCache.Items");
    assert!(
        grown < MOST_GROWTH,
        "RSS grew by {grown} bytes with {items} not-founds held in a {CACHE_BYTES}-byte cache"
    );
    assert!(
        stat(&stats, "g", "MainCache.Evictions") > 0,
        "the cache filled"
    );
}
