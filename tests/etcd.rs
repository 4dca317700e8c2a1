//! Peer discovery through a real etcd: groupcached nodes started with only
//! `--etcd` find each other, load each key once, follow joins, graceful
//! leaves (lease revoked at once) and crashes (lease expiry), keep serving
//! through an etcd outage, re-register after etcd loses its data, and pick
//! up a Go groupcache node registered with `scripts/etcd-register`.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::etcd::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_find_each_other_and_load_each_key_once() {
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let ports = free_ports(3);
    let nodes = start_nodes(&ports, &etcd, &origin).await;
    let all: Vec<&GcNode> = nodes.iter().collect();
    let want = sorted_urls(&ports);
    await_peers(&all, &want, true, PROMPTLY).await;

    for node in &nodes {
        let peers = peers_of(node).await;
        assert_eq!(peers["self"], node.url.as_str());
        assert_eq!(peers["source"], "etcd");
        let status = &peers["etcd"];
        assert_eq!(status["endpoints"], serde_json::json!([etcd.endpoint()]));
        assert_eq!(status["prefix"], PREFIX);
        assert!(status["lease_id"].is_i64(), "{peers}");
        assert!(status["revision"].as_i64().unwrap() > 0, "{peers}");
        assert!(status["last_error"].is_null(), "{peers}");
    }
    assert_eq!(registered(&etcd).await, keys_of(&want), "keys in etcd");

    let keys: Vec<String> = (0..60).map(|i| format!("key-{i}")).collect();
    for key in &keys {
        for node in &nodes {
            get_ok(node, key).await;
        }
    }
    assert_eq!(origin.repeated(), vec![], "keys loaded more than once");
    assert_eq!(origin.total_hits(), keys.len());
    // The keys really were spread: every node served some to its peers.
    for node in &nodes {
        let stats = node.stats().await;
        assert!(
            stats["groups"]["g"]["ServerRequests"].as_u64().unwrap() > 0,
            "{}: {stats}",
            node.url
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_is_seen_at_once_and_sigterm_deregisters_at_once() {
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let ports = free_ports(4);
    let nodes = start_nodes(&ports[..3], &etcd, &origin).await;
    let three: Vec<&GcNode> = nodes.iter().collect();
    await_peers(&three, &sorted_urls(&ports[..3]), true, PROMPTLY).await;

    // The joiner's lease lives 10 s, so seeing it leave within PROMPTLY can only
    // come from the lease being revoked, never from it expiring.
    let long_ttl = Duration::from_secs(10);
    let mut joiner = GcNode::start(ports[3], &etcd_args(&etcd, &origin, long_ttl)).await;
    let mut four = three.clone();
    four.push(&joiner);
    let took = await_peers(&four, &sorted_urls(&ports), true, PROMPTLY).await;
    eprintln!("join seen by all four after {took:?}");

    joiner.proc.signal("TERM");
    let took = await_peers(&three, &sorted_urls(&ports[..3]), true, PROMPTLY).await;
    eprintln!("graceful leave seen by all three after {took:?} (lease TTL {long_ttl:?})");
    let code = joiner.proc.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "exit status of the SIGTERMed node");
    assert_eq!(etcd.keys(PREFIX).await.len(), 3, "keys left in etcd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_dropped_when_its_lease_expires() {
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let ports = free_ports(3);
    let mut nodes = start_nodes(&ports, &etcd, &origin).await;
    let all: Vec<&GcNode> = nodes.iter().collect();
    await_peers(&all, &sorted_urls(&ports), true, PROMPTLY).await;

    let mut killed = nodes.remove(0);
    killed.proc.signal("KILL");
    let survivors: Vec<&GcNode> = nodes.iter().collect();
    let took = await_peers(&survivors, &sorted_urls(&ports[1..]), true, TTL + PROMPTLY).await;
    eprintln!("SIGKILLed node dropped after {took:?} (lease TTL {TTL:?})");
    // -1: ended by a signal.
    assert_eq!(
        killed.proc.wait_exit(Duration::from_secs(10)).await,
        Some(-1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_serve_through_an_etcd_outage_and_register_again_after_data_loss() {
    let mut etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let ports = free_ports(3);
    let nodes = Arc::new(start_nodes(&ports, &etcd, &origin).await);
    let all: Vec<&GcNode> = nodes.iter().collect();
    let want = sorted_urls(&ports);
    await_peers(&all, &want, true, PROMPTLY).await;

    // 20 loops GET keys across the nodes for the whole 10 s outage.
    etcd.stop().await;
    let outage = Duration::from_secs(10);
    let load = ReadLoad::start(nodes.clone(), outage);
    // Meanwhile /peers says etcd is gone but keeps the last list.
    // Within the lease TTL and slack, well inside the outage.
    let took = await_peers(&all, &want, false, TTL + PROMPTLY).await;
    eprintln!("nodes noticed the outage after {took:?}");
    load.finish_without_failures().await;
    assert_eq!(origin.repeated(), vec![], "keys loaded more than once");
    for node in nodes.iter() {
        let peers = peers_of(node).await;
        assert_eq!(peer_list_of(&peers), want, "{peers}");
        assert_eq!(peers["etcd"]["connected"], false, "{peers}");
        assert!(peers["etcd"]["last_error"].is_string(), "{peers}");
    }

    // etcd comes back with its data: the nodes carry on with the same peers.
    etcd.start().await;
    let took = await_peers(&all, &want, true, TTL + PROMPTLY).await;
    eprintln!("reconnected after etcd restart in {took:?}");
    for node in nodes.iter() {
        get_ok(node, "after-restart").await;
    }

    // etcd comes back empty: every node registers again.
    etcd.wipe().await;
    etcd.start().await;
    let took = await_registered(&etcd, &keys_of(&want), TTL + PROMPTLY).await;
    eprintln!("all registered again in the wiped etcd after {took:?}");
    await_peers(&all, &want, true, PROMPTLY).await;
    assert_eq!(origin.repeated(), vec![], "keys loaded more than once");
}

/// A hung etcd (connections open, no answers) is noticed within the lease
/// TTL: `/peers` stops claiming a live registration, GETs keep working, and
/// once etcd answers again every node is registered and watching again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_etcd_is_noticed_within_the_ttl() {
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let ports = free_ports(2);
    let nodes = start_nodes(&ports, &etcd, &origin).await;
    let all: Vec<&GcNode> = nodes.iter().collect();
    let want = sorted_urls(&ports);
    await_peers(&all, &want, true, PROMPTLY).await;

    etcd.freeze().await;
    let took = await_peers(&all, &want, false, TTL + PROMPTLY).await;
    eprintln!("nodes noticed the frozen etcd after {took:?}");
    for node in &nodes {
        let peers = peers_of(node).await;
        assert!(peers["etcd"]["last_error"].is_string(), "{peers}");
        get_ok(node, "while-frozen").await;
    }

    etcd.thaw();
    let took = await_peers(&all, &want, true, TTL + PROMPTLY).await;
    eprintln!("nodes registered again {took:?} after the thaw");
    assert_eq!(registered(&etcd).await, keys_of(&want), "keys in etcd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_node_registered_with_etcd_register_is_used() {
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let ports = free_ports(4);
    let (rust_ports, go_port) = (&ports[..3], ports[3]);
    let go_url = url_of(go_port);
    let everyone = sorted_urls(&ports);

    // The Go node takes a static list: the one the Rust nodes will see.
    let go = GoNode::start(
        go_port,
        &[
            "-self".into(),
            go_url.clone(),
            "-peers".into(),
            everyone.join(","),
            "-group".into(),
            format!("g={}", origin.template()),
        ],
    )
    .await;
    let nodes = start_nodes(rust_ports, &etcd, &origin).await;
    let rust: Vec<&GcNode> = nodes.iter().collect();
    await_peers(&rust, &sorted_urls(rust_ports), true, PROMPTLY).await;

    let mut registration = Registration::start(&go_url, &etcd, PREFIX, TTL.as_secs());
    // etcdctl itself takes a moment to start and grant the lease.
    let took = await_peers(&rust, &everyone, true, Duration::from_secs(5)).await;
    eprintln!("Go node seen by all Rust nodes after {took:?}");

    go_keys_are_loaded_once_by_go(&nodes, &go, &everyone, &origin).await;

    // Stopping the script revokes the lease: the Go node leaves at once.
    registration.stop().await;
    await_peers(&rust, &sorted_urls(rust_ports), true, PROMPTLY).await;
}
