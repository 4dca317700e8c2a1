//! Mixed pools through a real etcd: golang/groupcache nodes that follow etcd
//! with go/etcdpeers (`gopeer -etcd`) and groupcached nodes started with
//! `--etcd` build the same ring, load each key once, all see joins, graceful
//! leaves and crashes of either kind within the bounds of `tests/etcd.rs`,
//! and the Go nodes notice a hung etcd and register again after etcd
//! restarts with no data.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::time::Duration;

use common::etcd::*;
use common::*;
use groupcached::consistenthash::{Ring, DEFAULT_REPLICAS};

/// A node of either kind, so one list can hold both.
enum Node {
    Go(GoNode),
    Rust(GcNode),
}

impl Frontend for Node {
    fn url(&self) -> &str {
        match self {
            Node::Go(node) => &node.url,
            Node::Rust(node) => &node.url,
        }
    }
}

impl Node {
    fn proc(&mut self) -> &mut Proc {
        match self {
            Node::Go(node) => &mut node.proc,
            Node::Rust(node) => &mut node.proc,
        }
    }
}

async fn start_go(port: u16, etcd: &Etcd, origin: &Origin, ttl: Duration) -> Node {
    Node::Go(GoNode::start(port, &etcd_args(etcd, origin, ttl)).await)
}

async fn start_rust(port: u16, etcd: &Etcd, origin: &Origin, ttl: Duration) -> Node {
    Node::Rust(GcNode::start(port, &etcd_args(etcd, origin, ttl)).await)
}

/// One Go node on each of `go_ports`, then one groupcached node on each of
/// `rust_ports`, all registering with [`TTL`].
async fn start_mixed(
    go_ports: &[u16],
    rust_ports: &[u16],
    etcd: &Etcd,
    origin: &Origin,
) -> Vec<Node> {
    let mut nodes = Vec::new();
    for &port in go_ports {
        nodes.push(start_go(port, etcd, origin, TTL).await);
    }
    for &port in rust_ports {
        nodes.push(start_rust(port, etcd, origin, TTL).await);
    }
    nodes
}

/// GETs every key through every node, in turn.
async fn get_everywhere(nodes: &[&Node], keys: &[String]) {
    for key in keys {
        for node in nodes {
            get_ok(*node, key).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_go_and_two_rust_nodes_agree_on_the_ring() {
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let ports = free_ports(4);
    let nodes = start_mixed(&ports[..2], &ports[2..], &etcd, &origin).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let want = sorted_urls(&ports);
    await_peers(&all, &want, true, PROMPTLY).await;
    assert_eq!(registered(&etcd).await, keys_of(&want), "keys in etcd");

    // A Go node's /peers says what its pool was given, as groupcached's does.
    for node in &nodes[..2] {
        let peers = peers_of(node).await;
        assert_eq!(peers["self"], node.url(), "{peers}");
        assert_eq!(peers["source"], "etcd", "{peers}");
        let status = &peers["etcd"];
        assert_eq!(status["endpoints"], serde_json::json!([etcd.endpoint()]));
        assert_eq!(status["prefix"], PREFIX, "{peers}");
        assert!(status["lease_id"].is_i64(), "{peers}");
        assert!(status["revision"].as_i64().unwrap() > 0, "{peers}");
        assert!(status["last_error"].is_null(), "{peers}");
    }

    // Both implementations name the same owner for every key...
    let keys: Vec<String> = (0..120).map(|i| format!("ring-{i}")).collect();
    let key_bytes: Vec<Vec<u8>> = keys.iter().map(|k| k.clone().into_bytes()).collect();
    let ring = Ring::new(DEFAULT_REPLICAS, &want);
    let owners: Vec<String> = keys
        .iter()
        .map(|k| ring.get(k.as_bytes()).unwrap().to_string())
        .collect();
    assert_eq!(
        owners,
        go_ring_owners(&want, DEFAULT_REPLICAS, &key_bytes),
        "owners by groupcached's ring and by golang's"
    );

    // ...and each key, asked through all four nodes, is loaded once, by it.
    get_everywhere(&all, &keys).await;
    assert_eq!(origin.repeated(), vec![], "keys loaded more than once");
    assert_eq!(origin.total_hits(), keys.len());
    for node in &nodes {
        let stats = node.stats().await;
        let group = &stats["groups"]["g"];
        let owned = owners.iter().filter(|o| *o == node.url()).count();
        assert!(owned > 0, "{} owns no key", node.url());
        assert_eq!(
            group["LocalLoads"].as_u64(),
            Some(owned as u64),
            "origin loads by {} (it owns {owned} keys): {stats}",
            node.url()
        );
        assert_eq!(
            group["PeerErrors"].as_u64(),
            Some(0),
            "{}: {stats}",
            node.url()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_sigterm_leaves_of_either_kind_are_seen_by_every_node_at_once() {
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let ports = free_ports(4);
    let nodes = start_mixed(&ports[..1], &ports[1..2], &etcd, &origin).await;
    let base: Vec<&Node> = nodes.iter().collect();
    await_peers(&base, &sorted_urls(&ports[..2]), true, PROMPTLY).await;

    // The joiners' leases live 10 s, so seeing them leave within PROMPTLY can
    // only come from the lease being revoked, never from it expiring.
    let long_ttl = Duration::from_secs(10);
    for (kind, port) in [("Go", ports[2]), ("groupcached", ports[3])] {
        let mut joiner = if kind == "Go" {
            start_go(port, &etcd, &origin, long_ttl).await
        } else {
            start_rust(port, &etcd, &origin, long_ttl).await
        };
        let mut three = base.clone();
        three.push(&joiner);
        let took = await_peers(
            &three,
            &sorted_urls(&[ports[0], ports[1], port]),
            true,
            PROMPTLY,
        )
        .await;
        eprintln!("{kind} join seen by all three after {took:?}");

        joiner.proc().signal("TERM");
        let took = await_peers(&base, &sorted_urls(&ports[..2]), true, PROMPTLY).await;
        eprintln!("{kind} graceful leave seen by both after {took:?} (lease TTL {long_ttl:?})");
        let code = joiner.proc().wait_exit(Duration::from_secs(10)).await;
        assert_eq!(code, Some(0), "exit status of the SIGTERMed {kind} node");
        assert_eq!(
            registered(&etcd).await,
            keys_of(&sorted_urls(&ports[..2])),
            "keys left in etcd after the {kind} node left"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_nodes_of_either_kind_are_dropped_when_their_leases_expire() {
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let ports = free_ports(4);
    // Go on ports[0] and ports[1], groupcached on ports[2] and ports[3].
    let mut nodes = start_mixed(&ports[..2], &ports[2..], &etcd, &origin).await;
    let all: Vec<&Node> = nodes.iter().collect();
    await_peers(&all, &sorted_urls(&ports), true, PROMPTLY).await;

    // Kill a Go node, then a groupcached node; each time the survivors, of
    // both kinds, drop it within the lease TTL.
    let mut alive = ports.clone();
    for (kind, index) in [("Go", 0), ("groupcached", 1)] {
        let mut killed = nodes.remove(index);
        killed.proc().signal("KILL");
        alive.retain(|&p| killed.url() != url_of(p));
        let survivors: Vec<&Node> = nodes.iter().collect();
        let took = await_peers(&survivors, &sorted_urls(&alive), true, TTL + PROMPTLY).await;
        eprintln!("SIGKILLed {kind} node dropped after {took:?} (lease TTL {TTL:?})");
        // -1: ended by a signal.
        assert_eq!(
            killed.proc().wait_exit(Duration::from_secs(10)).await,
            Some(-1)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_nodes_survive_an_etcd_restart_with_a_wiped_data_directory() {
    let mut etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let ports = free_ports(3);
    let nodes = start_mixed(&ports[..2], &ports[2..], &etcd, &origin).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let want = sorted_urls(&ports);
    await_peers(&all, &want, true, PROMPTLY).await;

    // etcd goes away with its data: every node keeps the last list and
    // keeps serving.
    etcd.wipe().await;
    let took = await_peers(&all, &want, false, TTL + PROMPTLY).await;
    eprintln!("nodes noticed the outage after {took:?}");
    for node in &nodes {
        let peers = peers_of(node).await;
        assert!(peers["etcd"]["last_error"].is_string(), "{peers}");
    }
    let during: Vec<String> = (0..30).map(|i| format!("outage-{i}")).collect();
    get_everywhere(&all, &during).await;

    // etcd comes back empty: the Go nodes register again, like the others.
    etcd.start().await;
    let took = await_registered(&etcd, &keys_of(&want), TTL + PROMPTLY).await;
    eprintln!("all registered again in the wiped etcd after {took:?}");
    await_peers(&all, &want, true, PROMPTLY).await;
    let after: Vec<String> = (0..30).map(|i| format!("after-{i}")).collect();
    get_everywhere(&all, &after).await;
    assert_eq!(origin.repeated(), vec![], "keys loaded more than once");
    assert_eq!(origin.total_hits(), during.len() + after.len());
}

/// A hung etcd (connections open, no answers) is noticed by Go nodes within
/// the lease TTL too, and they register again once it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_nodes_notice_a_frozen_etcd_within_the_ttl() {
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let ports = free_ports(2);
    let nodes = start_mixed(&ports[..1], &ports[1..], &etcd, &origin).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let want = sorted_urls(&ports);
    await_peers(&all, &want, true, PROMPTLY).await;

    etcd.freeze().await;
    let took = await_peers(&all, &want, false, TTL + PROMPTLY).await;
    eprintln!("nodes noticed the frozen etcd after {took:?}");
    get_everywhere(&all, &["while-frozen".to_string()]).await;

    etcd.thaw();
    let took = await_peers(&all, &want, true, TTL + PROMPTLY).await;
    eprintln!("nodes registered again {took:?} after the thaw");
    assert_eq!(registered(&etcd).await, keys_of(&want), "keys in etcd");
    assert_eq!(origin.repeated(), vec![], "keys loaded more than once");
}
