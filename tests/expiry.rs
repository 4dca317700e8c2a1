//! Values that expire, with real processes: an origin's `Cache-Control`
//! decides how long every node of a cluster serves a value and how often
//! the origin is asked, `no-store` values are cached nowhere, the TTL flags
//! change what the origin sees, and a Go node fetching an expiring value
//! from a groupcached owner gets the exact bytes.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use groupcached::consistenthash::{Ring, DEFAULT_REPLICAS};

/// `GET /cache/g/{key}` on `node`: (body as text, `Cache-Control`).
async fn get_value(node: &impl Frontend, key: &str) -> (String, Option<String>) {
    let reply = node.get(&format!("/cache/g/{}", esc(key.as_bytes()))).await;
    assert_eq!(reply.status, 200, "{key}: {:?}", reply.body);
    let body = String::from_utf8(reply.body.to_vec()).expect("text body");
    (body, reply.header("cache-control").map(str::to_string))
}

/// Polls `node` for `key` until it answers `want` (at most 10 s).
async fn wait_for_value(node: &impl Frontend, key: &str, want: &str) {
    let what = format!("{key} becoming {want:?}");
    eventually(Duration::from_secs(10), &what, || async {
        (get_value(node, key).await.0 == want).then_some(())
    })
    .await
}

/// The sum of `groups.g.{cache}.{field}` over the nodes' `/stats`.
async fn cache_stat(nodes: &[GcNode], cache: &str, field: &str) -> u64 {
    let mut sum = 0;
    for node in nodes {
        let stats = node.stats().await;
        sum += stats["groups"]["g"][cache][field]
            .as_u64()
            .unwrap_or_else(|| panic!("no g.{cache}.{field} in {stats}"));
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_one_expires_on_every_node_and_the_origin_is_asked_twice() {
    let origin = Origin::start().await;
    let nodes = start_cluster(&free_ports(3), &origin, &[]).await;
    let key = "ver/max-age=1/shared";
    for node in &nodes {
        let (body, cache_control) = get_value(node, key).await;
        assert_eq!(body, "version 1");
        // Less than a second is left: downstream caches may not keep it.
        assert_eq!(cache_control.as_deref(), Some("max-age=0"));
    }
    assert_eq!(origin.hits(key.as_bytes()), 1, "one load for the cluster");

    wait_for_value(&nodes[0], key, "version 2").await;
    for node in &nodes[1..] {
        assert_eq!(get_value(node, key).await.0, "version 2");
    }
    assert_eq!(origin.hits(key.as_bytes()), 2, "one more load after expiry");
    // Only the owner held it in its main cache, and found it expired once.
    assert_eq!(cache_stat(&nodes, "MainCache", "Expired").await, 1);
    assert_eq!(cache_stat(&nodes, "MainCache", "Items").await, 1);
}

/// Node A fetches 100 keys that node B owns; about one in ten goes into
/// A's hot cache with B's expiry, and none outlives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_copies_expire_with_the_owner() {
    let origin = Origin::start().await;
    let ports = free_ports(2);
    let nodes = start_cluster(&ports, &origin, &[]).await;
    let peers = peer_list(&ports);
    let peers: Vec<String> = peers.split(',').map(str::to_string).collect();
    let ring = Ring::new(DEFAULT_REPLICAS, &peers);
    let keys = keys_owned_by(&ring, &peers[1], "ver/max-age=1/hot", 100);
    for key in &keys {
        assert_eq!(get_value(&nodes[0], key).await.0, "version 1");
    }
    let hot = cache_stat(&nodes[..1], "HotCache", "Items").await;
    assert!(hot > 0, "no hot copies to test with");
    for key in &keys {
        wait_for_value(&nodes[0], key, "version 2").await;
    }
    // Each hot copy expired once; polls that went to the owner before the
    // expiry may have added and expired more.
    let expired = cache_stat(&nodes[..1], "HotCache", "Expired").await;
    assert!(expired >= hot, "{expired} expired of {hot} hot copies");
    assert_eq!(origin.total_hits(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_store_value_is_loaded_on_every_request_and_cached_nowhere() {
    let origin = Origin::start().await;
    let nodes = start_cluster(&free_ports(3), &origin, &[]).await;
    let key = "ver/no-store/k";
    let mut version = 0;
    for _round in 0..4 {
        for node in &nodes {
            version += 1;
            let (body, cache_control) = get_value(node, key).await;
            assert_eq!(body, format!("version {version}"));
            assert_eq!(cache_control.as_deref(), Some("no-store"));
        }
    }
    assert_eq!(origin.hits(key.as_bytes()), 12);
    for cache in ["MainCache", "HotCache"] {
        assert_eq!(cache_stat(&nodes, cache, "Items").await, 0, "{cache}");
        assert_eq!(cache_stat(&nodes, cache, "Bytes").await, 0, "{cache}");
    }
}

/// Two single nodes on one origin, the second started with `flags`: a
/// key whose origin sends `cache_control` is loaded again a second later
/// on the second node, and never on the first, whose `Cache-Control` to
/// users passes `plain_header`.
async fn flags_make_a_value_expire_in_a_second(
    flags: &[&str],
    cache_control: &str,
    plain_header: fn(Option<&str>) -> bool,
) {
    let origin = Origin::start().await;
    let ports = free_ports(2);
    let plain = start_cluster(&ports[..1], &origin, &[]).await;
    let flagged = start_cluster(&ports[1..], &origin, flags).await;
    let key_plain = format!("ver/{cache_control}/plain");
    let key_flagged = format!("ver/{cache_control}/flagged");
    let (body, header) = get_value(&plain[0], &key_plain).await;
    assert_eq!(body, "version 1");
    assert!(plain_header(header.as_deref()), "{header:?}");
    let (body, header) = get_value(&flagged[0], &key_flagged).await;
    assert_eq!(body, "version 1");
    assert!(
        matches!(header.as_deref(), Some("max-age=0" | "max-age=1")),
        "{header:?}"
    );

    wait_for_value(&flagged[0], &key_flagged, "version 2").await;
    assert_eq!(origin.hits(key_flagged.as_bytes()), 2);
    assert_eq!(get_value(&plain[0], &key_plain).await.0, "version 1");
    assert_eq!(origin.hits(key_plain.as_bytes()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_ttl_expires_values_whose_origin_says_nothing() {
    // Without the flag such a value never expires and gets no header.
    flags_make_a_value_expire_in_a_second(&["--default-ttl", "1s"], "", |h| h.is_none()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_ttl_caps_the_origins_lifetime() {
    flags_make_a_value_expire_in_a_second(&["--max-ttl", "g=1s"], "max-age=3600", |h| {
        matches!(h, Some("max-age=3599" | "max-age=3600"))
    })
    .await;
}

/// A golang node ignores `expire` (field 3), so it must still decode the
/// value exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_node_gets_the_exact_bytes_of_an_expiring_value() {
    let origin = Origin::start().await;
    let ports = free_ports(2);
    let peers = peer_urls(&ports);
    let ring = Ring::new(DEFAULT_REPLICAS, &peers);
    // A key the groupcached node (ports[0]) owns.
    let key = key_owned_by(&ring, &peers[0], "ver/max-age=60/k");
    let template = format!("g={}", origin.template());
    let owner = GcNode::start(
        ports[0],
        &[
            "--peers".into(),
            peers.join(","),
            "--group".into(),
            template.clone(),
        ],
    )
    .await;
    let go = GoNode::start(
        ports[1],
        &["-peers".into(), peers.join(","), "-group".into(), template],
    )
    .await;

    // The owner sends field 2 (minute_qps) and field 3 (expire): the reply
    // is longer than golang's.
    let peer_reply = owner
        .get(&format!("/_groupcache/g/{}", esc(key.as_bytes())))
        .await;
    let mut golang_bytes = vec![0x0a, 9];
    golang_bytes.extend_from_slice(b"version 1");
    assert_eq!(&peer_reply.body[..11], &golang_bytes[..]);
    assert_eq!(
        (peer_reply.body[11], peer_reply.body[20]),
        (0x11, 0x18),
        "minute_qps and expire fields: {:?}",
        peer_reply.body
    );

    let reply = go.get(&format!("/cache/g/{}", esc(key.as_bytes()))).await;
    assert_eq!((reply.status, &reply.body[..]), (200, &b"version 1"[..]));
    let stats = go.stats().await;
    assert_eq!(stats["groups"]["g"]["PeerLoads"], 1, "{stats}");
    assert_eq!(stats["groups"]["g"]["PeerErrors"], 0, "{stats}");
    assert_eq!(origin.hits(key.as_bytes()), 1);
}

#[test]
fn bad_ttl_flags_exit_2_naming_the_flag() {
    for (flag, value) in [("--default-ttl", "soon"), ("--max-ttl", "nosuch=1s")] {
        let out = Command::new(env!("CARGO_BIN_EXE_groupcached"))
            .args(["--group", "g=echo", flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(flag), "{stderr}");
    }
}
