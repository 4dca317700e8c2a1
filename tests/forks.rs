//! Mixed pools with the forks' wire, with real processes: two fork peers
//! (`tests/forkpeer`, speaking mailgun v2's or groupcache-go v3's wire) and
//! two groupcached nodes in the same mode. The rings agree (computed, and
//! between the live nodes: one load per key), a Set through
//! any node is read back through every node, a Remove through any node
//! makes the pool reload the key exactly once, and an expiry crosses the
//! hop both ways.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use bytes::Bytes;
use common::*;
use groupcached::consistenthash::{Hashing, Ring, DEFAULT_REPLICAS};

/// The pool: forks on the first two ports, groupcached on the last two.
struct Pool {
    forks: Vec<GoNode>,
    rust: Vec<GcNode>,
    urls: Vec<String>,
}

impl Pool {
    async fn start(dialect: &str, origin: &Origin) -> Pool {
        let ports = free_ports(4);
        let peers = peer_list(&ports);
        let group = format!("g={}", origin.template());
        let mut forks = Vec::new();
        for &port in &ports[..2] {
            let args = [
                "-dialect", dialect, "-peers", &peers, "-group", &group, "-ttl", "60s",
            ];
            forks.push(GoNode::start_fork(port, &args.map(String::from)).await);
        }
        let mut rust = Vec::new();
        for &port in &ports[2..] {
            let args = [
                "--protocol",
                dialect,
                "--allow-writes",
                "--peers",
                &peers,
                "--group",
                &group,
                "--default-ttl",
                "60s",
            ];
            rust.push(GcNode::start(port, &args.map(String::from)).await);
        }
        let urls = peers.split(',').map(String::from).collect();
        Pool { forks, rust, urls }
    }

    fn urls(&self) -> Vec<&str> {
        let forks = self.forks.iter().map(|n| n.url.as_str());
        forks
            .chain(self.rust.iter().map(|n| n.url.as_str()))
            .collect()
    }

    async fn read(&self, url: &str, key: &str) -> Reply {
        let reply = http_get(&format!("{url}/cache/g/{}", esc(key.as_bytes()))).await;
        assert_eq!(reply.status, 200, "{key} through {url}: {:?}", reply.body);
        reply
    }

    async fn write(&self, url: &str, method: &str, key: &str, body: &'static [u8]) {
        let target = format!("{url}/cache/g/{}", esc(key.as_bytes()));
        let reply = http_send(method, &target, Bytes::from_static(body))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{method} {target}: {:?}", reply.body);
    }
}

/// 10,000 keys and the worked-example keys have the same owner in Rust's
/// ring and in the fork peer's.
fn rings_agree(dialect: &str, hashing: Hashing) {
    let peers: Vec<String> = [
        "http://10.0.0.1:8080",
        "http://10.0.0.2:8080",
        "http://10.0.0.3:8080",
    ]
    .map(String::from)
    .to_vec();
    let mut keys: Vec<Vec<u8>> = ["foo", "bar", "hello", "a b", "12345", "user:42", ""]
        .iter()
        .map(|k| k.as_bytes().to_vec())
        .collect();
    keys.extend((0..10_000u32).map(|i| format!("key-{i}").into_bytes()));
    keys.push(vec![0xff, 0x00, b'/']);
    let ring = Ring::with_hashing(hashing, DEFAULT_REPLICAS, &peers);
    let theirs = fork_ring_owners(dialect, &peers, DEFAULT_REPLICAS, &keys);
    for (key, owner) in keys.iter().zip(&theirs) {
        assert_eq!(ring.get(key), Some(owner.as_str()), "key {key:?}");
    }
}

#[test]
fn mailgun_rings_agree() {
    rings_agree("mailgun", Hashing::Mailgun);
}

#[test]
fn groupcache_go_rings_agree() {
    rings_agree("groupcache-go", Hashing::GroupcacheGo);
}

async fn writes_cross_the_pool(dialect: &str) {
    let origin = Origin::start().await;
    let pool = Pool::start(dialect, &origin).await;
    let urls = pool.urls();
    // The live nodes agree on owners: 40 keys read through every node are
    // each loaded once, by their owner.
    for i in 0..40 {
        let key = format!("shared-{i}");
        for url in &urls {
            assert_eq!(pool.read(url, &key).await.body, value_of(key.as_bytes()));
        }
        assert_eq!(origin.hits(key.as_bytes()), 1, "{key}");
    }
    // A Set through each node, of a key nobody has read yet.
    for (i, writer) in urls.iter().enumerate() {
        let key = format!("set-{i}");
        pool.write(writer, "PUT", &key, b"written").await;
        for url in &urls {
            assert_eq!(
                &pool.read(url, &key).await.body[..],
                b"written",
                "{key} via {url}"
            );
        }
        assert_eq!(origin.hits(key.as_bytes()), 0, "{key}: never loaded");
    }
    // A Remove through each node: every node reloads, the origin once.
    let key = "removed";
    for url in &urls {
        assert_eq!(pool.read(url, key).await.body, value_of(key.as_bytes()));
    }
    assert_eq!(origin.hits(key.as_bytes()), 1);
    for (i, remover) in urls.iter().enumerate() {
        pool.write(remover, "DELETE", key, b"").await;
        for url in &urls {
            assert_eq!(pool.read(url, key).await.body, value_of(key.as_bytes()));
        }
        assert_eq!(
            origin.hits(key.as_bytes()),
            2 + i,
            "after DELETE via {remover}"
        );
    }
}

async fn expiry_crosses_the_hop(dialect: &str) {
    let origin = Origin::start().await;
    let pool = Pool::start(dialect, &origin).await;
    let ring = Ring::with_hashing(
        if dialect == "mailgun" {
            Hashing::Mailgun
        } else {
            Hashing::GroupcacheGo
        },
        DEFAULT_REPLICAS,
        &pool.urls,
    );
    let owned_by = |range: std::ops::Range<usize>| {
        (0..)
            .map(|i: u32| format!("exp-{i}"))
            .find(|k| {
                let owner = ring.get(k.as_bytes()).unwrap();
                range.clone().any(|i| pool.urls[i] == owner)
            })
            .unwrap()
    };
    // A fork's value read through groupcached, and the other way round.
    for (key, reader) in [
        (owned_by(0..2), pool.rust[0].url.clone()),
        (owned_by(2..4), pool.forks[0].url.clone()),
    ] {
        let reply = pool.read(&reader, &key).await;
        let max_age = reply.header("cache-control").map(str::to_string);
        assert!(
            matches!(max_age.as_deref(), Some("max-age=59" | "max-age=60")),
            "{key} via {reader}: {max_age:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailgun_writes_cross_the_pool() {
    writes_cross_the_pool("mailgun").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groupcache_go_writes_cross_the_pool() {
    writes_cross_the_pool("groupcache-go").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailgun_expiry_crosses_the_hop() {
    expiry_crosses_the_hop("mailgun").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groupcache_go_expiry_crosses_the_hop() {
    expiry_crosses_the_hop("groupcache-go").await;
}
