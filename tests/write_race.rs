//! Writes racing reads across a pool of three groupcached nodes: once a
//! `PUT` has answered 200, no read that starts afterwards, at any node,
//! returns an older value of the key. Writers put increasing versions of
//! their own keys through every node in turn while readers ask every node
//! for those keys; each read is checked against the newest version that
//! was confirmed before it began.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use bytes::Bytes;
use common::*;

/// Keys written, each by one writer, `VERSIONS` times: 1,000 writes.
const KEYS: usize = 50;
const VERSIONS: u64 = 20;
const WRITERS: usize = 5;
const READERS: usize = 8;

/// The version a value of `key` carries: 0 for the origin's value.
fn version(key: &str, value: &[u8]) -> u64 {
    if value == value_of(key.as_bytes()) {
        return 0;
    }
    let text = std::str::from_utf8(value).expect("text value");
    let number = text.strip_prefix(&format!("{key}=v"));
    number
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{key}: unexpected value {text:?}"))
}

/// Races `KEYS * VERSIONS` writes against reads on a pool started with
/// `protocol`; panics with the first stale read seen.
async fn race(protocol: &str) {
    let origin = Origin::start().await;
    let flags = ["--protocol", protocol, "--allow-writes"];
    let nodes = start_cluster(&free_ports(3), &origin, &flags).await;
    let urls: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.url.clone()).collect());
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("race-{i}")).collect());
    // The newest version of each key that a write has confirmed.
    let confirmed: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));

    let mut readers = Vec::new();
    for r in 0..READERS {
        let (urls, keys, confirmed, done) =
            (urls.clone(), keys.clone(), confirmed.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let (mut reads, mut step) = (0u64, r);
            while !done.load(SeqCst) {
                step = step.wrapping_mul(31).wrapping_add(17);
                let (k, n) = (step % KEYS, (step / KEYS) % urls.len());
                let floor = confirmed[k].load(SeqCst);
                let url = format!("{}/cache/g/{}", urls[n], keys[k]);
                let reply = http_get(&url).await;
                assert_eq!(reply.status, 200, "GET {url}: {:?}", reply.body);
                let seen = version(&keys[k], &reply.body);
                assert!(
                    seen >= floor,
                    "stale read: GET {url} gave v{seen} after v{floor} was confirmed"
                );
                reads += 1;
            }
            reads
        }));
    }

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (urls, keys, confirmed) = (urls.clone(), keys.clone(), confirmed.clone());
        writers.push(tokio::spawn(async move {
            let mut writes = 0;
            for v in 1..=VERSIONS {
                for k in (w..KEYS).step_by(WRITERS) {
                    let through = &urls[(k + v as usize) % urls.len()];
                    let url = format!("{through}/cache/g/{}", keys[k]);
                    let body = Bytes::from(format!("{}=v{v}", keys[k]));
                    let reply = http_send("PUT", &url, body).await.expect("PUT");
                    assert_eq!(reply.status, 200, "PUT {url}: {:?}", reply.body);
                    confirmed[k].store(v, SeqCst);
                    writes += 1;
                }
            }
            writes
        }));
    }
    let mut writes = 0;
    for writer in writers {
        writes += writer.await.expect("writer");
    }
    done.store(true, SeqCst);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.expect("reader");
    }
    assert_eq!(writes, KEYS as u64 * VERSIONS);
    eprintln!("{protocol}: {writes} confirmed writes raced {reads} reads; no stale read");

    // Every node serves every key's last version.
    let mut last: HashMap<&str, Vec<u64>> = HashMap::new();
    for node in &nodes {
        for key in keys.iter() {
            let reply = node.get(&format!("/cache/g/{key}")).await;
            last.entry(key).or_default().push(version(key, &reply.body));
        }
    }
    for (key, versions) in last {
        assert_eq!(versions, vec![VERSIONS; nodes.len()], "{key} at each node");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_read_after_a_confirmed_write_mailgun() {
    race("mailgun").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_read_after_a_confirmed_write_groupcache_go() {
    race("groupcache-go").await;
}
