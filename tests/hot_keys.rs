//! Hot keys, with real processes: a groupcached node in a pool with a real
//! Go node keeps hot copies of what it is asked for most (by its own
//! estimate: the Go owner reports no rate), where golang's 1-in-10 sample
//! keeps whatever it drew; the Go node decodes every reply of a groupcached
//! owner, whose bytes differ from a Go owner's only by `minute_qps`; and
//! `/status` lists the hottest keys.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use common::*;
use groupcached::consistenthash::{Ring, DEFAULT_REPLICAS};

/// `GET /cache/g/{key}` at `node`, which must answer the origin's value;
/// the reply's `Cache-Status`.
async fn read(node: &impl Frontend, key: &str) -> String {
    let reply = node.get(&format!("/cache/g/{}", esc(key.as_bytes()))).await;
    assert_eq!(
        (reply.status, &reply.body[..]),
        (200, &value_of(key.as_bytes())[..]),
        "{key}"
    );
    reply.header("cache-status").unwrap_or_default().to_string()
}

/// One groupcached node and one Go node; `policy` is the groupcached
/// node's `--hot-policy`. Its caches hold about 40 of the values read.
async fn mixed_pool(origin: &Origin, policy: &str) -> (GcNode, GoNode, Ring) {
    let ports = free_ports(2);
    let peers = peer_urls(&ports);
    let template = format!("g={}", origin.template());
    let gc = GcNode::start(
        ports[0],
        &[
            "--peers".into(),
            peers.join(","),
            "--group".into(),
            template.clone(),
            "--hot-policy".into(),
            policy.into(),
            "--cache-bytes".into(),
            "5000".into(),
        ],
    )
    .await;
    let go = GoNode::start(
        ports[1],
        &["-peers".into(), peers.join(","), "-group".into(), template],
    )
    .await;
    (gc, go, Ring::new(DEFAULT_REPLICAS, &peers))
}

/// Ten hot keys the Go node owns, read 30 times each at the groupcached
/// node, then a scan of 400 cold keys read once each (more than its caches
/// hold): how many of the hot keys are still answered from its hot cache.
/// Recency alone (an LRU that keeps every copy, or golang's sample) lets
/// the scan push them out.
async fn hot_ones_kept(gc: &GcNode, go: &GoNode, ring: &Ring, prefix: &str) -> usize {
    let hot = keys_owned_by(ring, &go.url, &format!("{prefix}-hot"), 10);
    let cold = keys_owned_by(ring, &go.url, &format!("{prefix}-cold"), 400);
    for _ in 0..30 {
        for key in &hot {
            read(gc, key).await;
        }
    }
    for key in &cold {
        read(gc, key).await;
    }
    let mut kept = 0;
    for key in &hot {
        if read(gc, key).await == "groupcached; hit; detail=hot" {
            kept += 1;
        }
    }
    kept
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_copies_follow_what_is_asked_for_most() {
    let origin = Origin::start().await;
    let (gc, go, ring) = mixed_pool(&origin, "heat").await;
    let kept = hot_ones_kept(&gc, &go, &ring, "heat").await;
    assert_eq!(kept, 10, "by heat, every hot key is held through the scan");
    let stats = gc.stats().await;
    assert!(stat(&stats, "g", "HotRejections") > 0, "{stats}");
    assert!(stat(&stats, "g", "HotAdmissions") >= 10, "{stats}");
    // Each key was loaded once, by its owner.
    assert!(origin.repeated().is_empty(), "{:?}", origin.repeated());
    assert_eq!(stat(&go.stats().await, "g", "PeerErrors"), 0);

    // /status lists the hottest keys, held in the hot cache here.
    let status: serde_json::Value = serde_json::from_slice(&gc.get("/status").await.body).unwrap();
    let top = status["groups"][0]["hot_keys"].as_array().unwrap().clone();
    let hot_keys: Vec<&str> = top
        .iter()
        .take(10)
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    for key in keys_owned_by(&ring, &go.url, "heat-hot", 10) {
        assert!(
            hot_keys.contains(&esc(key.as_bytes()).as_str()),
            "{key} not in {top:?}"
        );
    }
    assert!(
        top.iter()
            .take(10)
            .all(|k| k["held"] == "hot" && k["rate"].as_f64().unwrap() > 0.0),
        "{top:?}"
    );
}

/// Under golang's policy about one fetched value in ten is mirrored, at
/// random, and nothing is weighed: the scan pushes the hot keys out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golang_policy_samples_instead() {
    let origin = Origin::start().await;
    let (gc, go, ring) = mixed_pool(&origin, "golang").await;
    let kept = hot_ones_kept(&gc, &go, &ring, "sample").await;
    assert!(kept < 5, "the scan left {kept} of 10 hot keys");
    let stats = gc.stats().await;
    // About one fetch in ten: 40 of the scan's 400 expected.
    let mirrored = stat(&stats, "g", "HotCache.Items") + stat(&stats, "g", "HotCache.Evictions");
    assert!((20..=120).contains(&mirrored), "{mirrored} mirrored");
    let weighed = stat(&stats, "g", "HotAdmissions") + stat(&stats, "g", "HotRejections");
    assert_eq!(weighed, 0);
}

/// A Go node decodes every value a groupcached owner sends it; the bytes
/// differ from a Go owner's only by field 2, `minute_qps`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_node_decodes_every_reply_and_only_field_2_differs() {
    let origin = Origin::start().await;
    let (gc, go, ring) = mixed_pool(&origin, "heat").await;
    let keys = keys_owned_by(&ring, &gc.url, "owned-by-gc", 50);
    for key in &keys {
        for _ in 0..3 {
            read(&go, key).await;
        }
    }
    let stats = go.stats().await;
    assert_eq!(stat(&stats, "g", "PeerErrors"), 0, "{stats}");
    assert!(
        stat(&stats, "g", "PeerLoads") >= keys.len() as u64,
        "{stats}"
    );
    // The same peer request to both owners.
    for key in &keys[..5] {
        let path = format!("/_groupcache/g/{}", esc(key.as_bytes()));
        let (ours, theirs) = (gc.get(&path).await, go.get(&path).await);
        assert_eq!((ours.status, theirs.status), (200, 200));
        let value_end = theirs.body.len();
        assert_eq!(&ours.body[..value_end], &theirs.body[..], "{key}");
        let rate = &ours.body[value_end..];
        assert_eq!(
            (rate.len(), rate[0]),
            (9, 0x11),
            "{key}: only minute_qps after the value"
        );
        let qps = f64::from_le_bytes(rate[1..].try_into().unwrap());
        assert!(qps > 0.0 && qps.is_finite(), "{qps}");
    }
}
