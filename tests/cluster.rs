//! Real `groupcached` processes on loopback: a three-node cluster loads
//! every key exactly once, the peer and user APIs answer with the right
//! bytes and statuses, and SIGTERM drains. (Bad flags: tests/bad_input.rs.)
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::time::Duration;

use common::*;

/// 300 keys: ASCII, spaces and `+`, slashes, unicode and non-UTF-8 bytes.
fn keys() -> Vec<Vec<u8>> {
    (0..300u32)
        .map(|i| match i % 6 {
            0 => format!("key-{i}").into_bytes(),
            1 => format!("with space {i}").into_bytes(),
            2 => format!("plus+and/slash/{i}").into_bytes(),
            3 => format!("ünïcødé-{i}").into_bytes(),
            4 => {
                let mut k = vec![0xff, 0xfe, 0x00, b'%'];
                k.extend_from_slice(&i.to_be_bytes());
                k
            }
            _ => format!("?q=1&x#frag{i}").into_bytes(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_load_each_key_exactly_once() {
    let origin = Origin::start().await;
    let nodes = start_cluster(&free_ports(3), &origin, &[]).await;
    let keys = keys();
    for node in &nodes {
        let gets = keys.iter().map(|key| {
            let url = format!("{}/cache/g/{}", node.url, esc(key));
            let key = key.clone();
            tokio::spawn(async move { (key, http_get(&url).await) })
        });
        for get in gets.collect::<Vec<_>>() {
            let (key, reply) = get.await.unwrap();
            assert_eq!(reply.status, 200, "key {key:?}: {:?}", reply.body);
            assert_eq!(reply.body, value_of(&key), "key {key:?}");
        }
    }
    assert_eq!(origin.distinct_keys(), 300);
    assert_eq!(origin.repeated(), vec![], "keys loaded more than once");
    assert_eq!(origin.total_hits(), 300);

    // Every node served some keys to its peers and fetched others from them.
    let mut local_loads = 0;
    for node in &nodes {
        let stats = node.stats().await;
        let g = &stats["groups"]["g"];
        assert!(g["ServerRequests"].as_u64().unwrap() > 0, "{g}");
        assert!(g["PeerLoads"].as_u64().unwrap() > 0, "{g}");
        assert_eq!(g["PeerErrors"], 0, "{g}");
        assert_eq!(
            g["Gets"].as_u64().unwrap(),
            300 + g["ServerRequests"].as_u64().unwrap()
        );
        local_loads += g["LocalLoads"].as_u64().unwrap();
    }
    assert_eq!(local_loads, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_of_one_cold_key_across_nodes_load_it_once() {
    let origin = Origin::start().await;
    let nodes = start_cluster(&free_ports(3), &origin, &[]).await;
    let mut gets = Vec::new();
    for round in 0..30 {
        let url = format!("{}/cache/g/slow-shared", nodes[round % 3].url);
        gets.push(tokio::spawn(async move { http_get(&url).await }));
    }
    for get in gets {
        let reply = get.await.unwrap();
        assert_eq!(
            (reply.status, &reply.body[..]),
            (200, &b"value-of-slow-shared"[..])
        );
    }
    assert_eq!(origin.hits(b"slow-shared"), 1);
}

/// The peer API's statuses and bytes are checked against a real Go node in
/// `tests/interop.rs` (one table for every path case); here: the reply a
/// Go asker decodes, and golang's `ServerRequests` accounting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_requests_are_answered_and_counted_like_golang() {
    let origin = Origin::start().await;
    let nodes = start_cluster(&free_ports(1), &origin, &[]).await;
    let node = &nodes[0];

    let ok = node.get("/_groupcache/g/hello").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("content-type"), Some("application/x-protobuf"));
    // golang's bytes, then this node's estimate of the key's rate as
    // `minute_qps` (field 2, a double), which golang decodes and ignores.
    let (golang, rate) = ok.body.split_at(16);
    assert_eq!(golang, b"\x0a\x0evalue-of-hello");
    assert_eq!((rate.len(), rate[0]), (9, 0x11), "{rate:?}");
    let qps = f64::from_le_bytes(rate[1..].try_into().unwrap());
    assert!(qps > 0.0 && qps.is_finite(), "{qps}");
    for path in [
        "/_groupcache/g/hello",
        "/_groupcache/g/missing-1",
        "/_groupcache/g/fail-1",
        "/_groupcache/g",
        "/_groupcache/nosuch/k",
    ] {
        node.get(path).await;
    }
    // Any method is a get, as in golang.
    let post = http_request("POST", &format!("{}/_groupcache/g/hello", node.url))
        .await
        .unwrap();
    assert_eq!(&post.body[..16], b"\x0a\x0evalue-of-hello");

    let stats = node.stats().await;
    let g = &stats["groups"]["g"];
    // hello (three times), missing-1 and fail-1 reached the group; a path
    // without a key or with an unknown group does not count.
    assert_eq!(g["ServerRequests"], 5, "{g}");
    assert_eq!(g["CacheHits"], 2, "{g}");
    assert_eq!(g["LocalLoadErrs"], 2, "{g}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_api_statuses() {
    let origin = Origin::start().await;
    let nodes = start_cluster(&free_ports(1), &origin, &[]).await;
    let node = &nodes[0];

    let ok = node.get("/cache/g/%FF%00x").await;
    assert_eq!((ok.status, &ok.body[..]), (200, &b"value-of-\xff\x00x"[..]));
    let missing = node.get("/cache/g/missing-2").await;
    assert_eq!(
        (missing.status, &missing.body[..]),
        (404, &b"origin returned 404 Not Found\n"[..])
    );
    let failing = node.get("/cache/g/fail-2").await;
    assert_eq!(
        (failing.status, &failing.body[..]),
        (502, &b"origin returned 500 Internal Server Error\n"[..])
    );
    let unknown = node.get("/cache/nosuch/k").await;
    assert_eq!(
        (unknown.status, &unknown.body[..]),
        (404, &b"no such group: nosuch\n"[..])
    );
    assert_eq!(node.get("/cache/g").await.status, 400);
    assert_eq!(node.get("/healthz").await.status, 200);
    assert_eq!(node.get("/nothing-here").await.status, 404);

    let peers: serde_json::Value = serde_json::from_slice(&node.get("/peers").await.body).unwrap();
    assert_eq!(peers["self"], node.url);
    assert_eq!(peers["peers"], serde_json::json!([node.url]));
    assert_eq!(peers["source"], "static");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owner_means_local_loads_not_errors() {
    let origin = Origin::start().await;
    let ports = [free_ports(1)[0], closed_port()];
    // Only the first node runs; the second peer in the list is a closed port.
    let peers = peer_list(&ports);
    let node = GcNode::start(
        ports[0],
        &[
            "--peers".into(),
            peers,
            "--group".into(),
            format!("g={}", origin.template()),
            "--peer-timeout".into(),
            "1s".into(),
        ],
    )
    .await;
    for i in 0..50 {
        let reply = node.get(&format!("/cache/g/k{i}")).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, value_of(format!("k{i}").as_bytes()));
    }
    let stats = node.stats().await;
    let g = &stats["groups"]["g"];
    assert!(g["PeerErrors"].as_u64().unwrap() > 0, "{g}");
    assert_eq!(g["LocalLoads"], 50);
}

/// SIGTERM and SIGINT each: an in-flight request still gets its value, the
/// process exits 0 and stops accepting connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_finish_in_flight_requests_and_exit_zero() {
    let origin = Origin::start().await;
    for signal in ["TERM", "INT"] {
        let mut nodes = start_cluster(&free_ports(1), &origin, &[]).await;
        let key = format!("slow-drain-{signal}");
        let url = format!("{}/cache/g/{key}", nodes[0].url);
        let in_flight = tokio::spawn(async move { http_get(&url).await });
        // Signal once the load has reached the origin (which answers `slow`
        // keys after a second): the request is then surely in flight.
        poll_until(Duration::from_secs(10), || origin.hits(key.as_bytes()) == 1).await;
        nodes[0].proc.signal(signal);
        let reply = in_flight.await.unwrap();
        assert_eq!(
            (reply.status, &reply.body[..]),
            (200, &value_of(key.as_bytes())[..]),
            "SIG{signal}"
        );
        let code = nodes[0].proc.wait_exit(Duration::from_secs(10)).await;
        assert_eq!(code, Some(0), "exit status after SIG{signal}");
        // And it no longer accepts connections.
        assert!(
            try_get(&format!("{}/healthz", nodes[0].url)).await.is_err(),
            "still accepting after SIG{signal}"
        );
    }
}

/// Every value a user gets says where it came from (RFC 9211
/// `Cache-Status`): loaded from the origin or fetched from the owner just
/// now, or a hit in the main or the hot cache, with the seconds left for a
/// value that expires. (mailgun's pool mirrors every fetched value into
/// the hot cache, so the second get is a hot hit for sure.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_say_where_the_value_came_from() {
    use groupcached::consistenthash::{Ring, DEFAULT_REPLICAS};
    use groupcached::Protocol;
    let origin = Origin::start().await;
    let ports = free_ports(2);
    let nodes = start_cluster(&ports, &origin, &["--protocol", "mailgun"]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let peers = peer_urls(&ports);
    let ring = Ring::with_hashing(Protocol::Mailgun.hashing(), DEFAULT_REPLICAS, &peers);
    let status = |node: &GcNode, key: String| {
        let url = format!("{}/cache/g/{}", node.url, esc(key.as_bytes()));
        async move {
            let reply = http_get(&url).await;
            assert_eq!(reply.status, 200, "{key}");
            reply.header("cache-status").unwrap_or_default().to_string()
        }
    };
    let mine = key_owned_by(&ring, &a.url, "status-a");
    assert_eq!(
        status(a, mine.clone()).await,
        "groupcached; fwd=miss; detail=origin"
    );
    assert_eq!(status(a, mine).await, "groupcached; hit");
    let theirs = key_owned_by(&ring, &b.url, "status-b");
    assert_eq!(
        status(a, theirs.clone()).await,
        "groupcached; fwd=miss; detail=peer"
    );
    assert_eq!(
        status(a, theirs.clone()).await,
        "groupcached; hit; detail=hot"
    );
    assert_eq!(status(b, theirs).await, "groupcached; hit");
    let expiring = key_owned_by(&ring, &a.url, "ver/max-age=60/status");
    let first = status(a, expiring.clone()).await;
    assert!(
        first.starts_with("groupcached; fwd=miss; detail=origin; ttl=")
            && first.ends_with(['9', '0']),
        "{first}"
    );
    let again = status(a, expiring).await;
    assert!(
        again.starts_with("groupcached; hit; ttl=5") || again == "groupcached; hit; ttl=60",
        "{again}"
    );
}
