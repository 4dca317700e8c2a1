//! Liveness probes with default flags: an owner that answers nothing (a
//! stopped process) is found out by a probe and its keys load locally,
//! while a live owner behind a slow origin keeps its whole deadline, for
//! groupcached and Go owners alike.

#![cfg(feature = "binary")]

mod common;

use std::time::Duration;

use common::*;
use groupcached::consistenthash::{Ring, DEFAULT_REPLICAS};

/// The health `node`'s `/peers` reports for `peer`.
async fn health_of(node: &str, peer: &str) -> serde_json::Value {
    let peers: serde_json::Value =
        serde_json::from_slice(&http_get(&format!("{node}/peers")).await.body).unwrap();
    peers["health"]
        .as_array()
        .and_then(|all| all.iter().find(|h| h["url"] == peer))
        .cloned()
        .unwrap_or_else(|| panic!("no health for {peer} in {peers}"))
}

/// A stopped owner, with default flags: the keys it owns are answered
/// from local loads once a probe went unanswered, not after the 15 s fetch
/// deadline; `/peers` says why it went down; once it runs again it is
/// found back up and asked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_owner_is_found_out_by_a_probe() {
    let origin = Origin::start().await;
    let ports = free_ports(2);
    let nodes = start_cluster(&ports, &origin, &[]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let ring = Ring::new(DEFAULT_REPLICAS, &[a.url.clone(), b.url.clone()]);
    let keys = keys_owned_by(&ring, &b.url, "frozen", 200);

    b.proc.stop().await;
    // 16 clients at once, as users would keep asking.
    let replies = bounded(16, keys[..32].to_vec(), |key| {
        let url = a.url.clone();
        async move {
            let reply = try_get(&format!("{url}/cache/g/{key}")).await;
            (key, reply)
        }
    })
    .await;
    for (key, reply) in replies {
        let reply = reply.unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(
            (reply.status, &reply.body[..]),
            (200, &value_of(key.as_bytes())[..]),
            "{key}"
        );
    }
    let health = health_of(&a.url, &b.url).await;
    assert_eq!(
        health["last_error"], "no answer to a liveness probe within 1s",
        "{health}"
    );
    assert!(health["probes_unanswered"].as_u64() >= Some(1), "{health}");
    let stats = a.stats().await;
    assert_eq!(stat(&stats, "g", "LocalLoads"), 32, "{stats}");
    assert_eq!(stat(&stats, "g", "PeerLoads"), 0, "{stats}");
    let metrics = String::from_utf8(a.get("/metrics").await.body.to_vec()).unwrap();
    let unanswered = format!(
        "groupcached_peer_probes_total{{peer=\"{}\",result=\"unanswered\"}}",
        b.url
    );
    assert!(metrics.contains(&unanswered), "{metrics}");

    b.proc.signal("CONT");
    // Each poll asks for a fresh key of the owner: a trial fetch finds it.
    let mut next = keys[32..].iter();
    eventually(Duration::from_secs(20), "the owner asked again", || {
        let key = next.next().expect("keys left to ask for");
        async move {
            still_serves(&a.url, key).await;
            (stat(&a.stats().await, "g", "PeerLoads") > 0).then_some(())
        }
    })
    .await;
    assert_eq!(health_of(&a.url, &b.url).await["state"], "up");
}

/// A live owner whose origin takes 7 s, asked by three nodes at once: the
/// askers' probes are answered, so they wait for the owner's whole load
/// (the 15 s default deadline) and the key is loaded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_origin_behind_a_live_owner_is_loaded_once() {
    let origin = Origin::start().await;
    let ports = free_ports(3);
    // A live owner must answer its probes in time; 3 s rather than the
    // default 1 s, because a loaded test machine (scripts/stress-test) may
    // leave a process unscheduled for a second.
    let nodes = start_cluster(&ports, &origin, &["--probe-timeout", "3s"]).await;
    let key = "delay-7000-once";
    let replies = bounded(
        3,
        nodes.iter().map(|n| n.url.clone()).collect(),
        |url| async move { try_get(&format!("{url}/cache/g/{key}")).await },
    )
    .await;
    for reply in replies {
        let reply = reply.unwrap();
        assert_eq!(
            (reply.status, &reply.body[..]),
            (200, &value_of(key.as_bytes())[..])
        );
    }
    assert_eq!(origin.hits(key.as_bytes()), 1, "loaded once");
    let ring = Ring::new(
        DEFAULT_REPLICAS,
        &nodes.iter().map(|n| n.url.clone()).collect::<Vec<_>>(),
    );
    let owner = ring.get(key.as_bytes()).unwrap();
    for asker in nodes.iter().filter(|n| n.url != owner) {
        let health = health_of(&asker.url, owner).await;
        assert!(health["probes"].as_u64() >= Some(1), "{health}");
        assert_eq!(health["probes_unanswered"], 0, "{health}");
        assert_eq!(health["state"], "up", "{health}");
        let stats = asker.stats().await;
        assert_eq!(stat(&stats, "g", "PeerLoads"), 1, "{stats}");
        assert_eq!(stat(&stats, "g", "PeerErrors"), 0, "{stats}");
    }
}

/// A Go owner answers the probe (golang's `400 bad request` for the bare
/// base path), so a slow load behind it is waited for; stopped, it answers
/// nothing and its keys load locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_owner_answers_the_probe() {
    let origin = Origin::start().await;
    let ports = free_ports(2);
    let peers = peer_urls(&ports);
    let ring = Ring::new(DEFAULT_REPLICAS, &peers);
    let go_url = &peers[1];
    // Go's flag package reads `--flag` as `-flag`: both take these.
    let args = [
        "--peers".to_string(),
        peers.join(","),
        "--group".to_string(),
        format!("g={}", origin.template()),
    ];
    let go = GoNode::start(ports[1], &args).await;
    // 3 s rather than the default 1 s: the live Go owner must answer its
    // probes in time even on a loaded test machine.
    let rust_args = [
        &args[..],
        &["--probe-timeout".to_string(), "3s".to_string()],
    ]
    .concat();
    let rust = GcNode::start(ports[0], &rust_args).await;
    // What a probe gets from a Go node.
    let probed = http_get(&format!("{go_url}/_groupcache/")).await;
    assert_eq!(
        (probed.status, &probed.body[..]),
        (400, &b"bad request\n"[..])
    );

    let slow = key_owned_by(&ring, go_url, "delay-4000-go");
    still_serves(&rust.url, &slow).await;
    assert_eq!(origin.hits(slow.as_bytes()), 1);
    assert_eq!(stat(&go.stats().await, "g", "LocalLoads"), 1);
    let health = health_of(&rust.url, go_url).await;
    assert!(health["probes"].as_u64() >= Some(1), "{health}");
    assert_eq!(health["probes_unanswered"], 0, "{health}");

    go.proc.stop().await;
    let stopped = key_owned_by(&ring, go_url, "stopped-go");
    still_serves(&rust.url, &stopped).await;
    let health = health_of(&rust.url, go_url).await;
    assert_eq!(
        health["last_error"], "no answer to a liveness probe within 3s",
        "{health}"
    );
    assert_eq!(stat(&rust.stats().await, "g", "LocalLoads"), 1);
    go.proc.signal("CONT");
}

/// A half-alive groupcache peer on a loopback port: it answers the probe
/// path (`GET /_groupcache/`) at once, as every node does, and reads every
/// real fetch without ever answering it. Counts the fetches it was sent.
struct HalfAlivePeer {
    url: String,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl HalfAlivePeer {
    async fn start() -> HalfAlivePeer {
        use std::sync::atomic::Ordering::Relaxed;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = fetches.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counted = counted.clone();
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let counted = counted.clone();
                        async move {
                            if request.uri().path() != "/_groupcache/" {
                                counted.fetch_add(1, Relaxed);
                                std::future::pending::<()>().await;
                            }
                            let body =
                                http_body_util::Full::new(bytes::Bytes::from("bad request\n"));
                            let mut reply = hyper::Response::new(body);
                            *reply.status_mut() = hyper::StatusCode::BAD_REQUEST;
                            Ok::<_, std::convert::Infallible>(reply)
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        HalfAlivePeer {
            url,
            fetches,
            server,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for HalfAlivePeer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An owner that answers its probes but never a fetch: once one fetch has
/// waited out its whole deadline, users asking for its keys one after
/// another are answered from local loads without waiting for it, also
/// after each back-off, when it is tried again (by a fetch of its own,
/// which times out again, not by a user's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_alive_owner_holds_no_user_after_it_is_found_out() {
    let origin = Origin::start().await;
    let peer = HalfAlivePeer::start().await;
    let port = free_ports(1)[0];
    let url = peer_urls(&[port]).remove(0);
    let ring = Ring::new(DEFAULT_REPLICAS, &[url.clone(), peer.url.clone()]);
    // A fetch's deadline is 2 s + 1 s: a user held by the peer waits 3 s,
    // one answered by a local load a few milliseconds.
    let args = [
        "--peers".to_string(),
        format!("{url},{}", peer.url),
        "--group".to_string(),
        format!("g={}", origin.template()),
        "--origin-timeout".to_string(),
        "2s".to_string(),
        "--peer-timeout".to_string(),
        "1s".to_string(),
    ];
    let node = GcNode::start(port, &args).await;
    let slow = Duration::from_millis(1500);
    let mut keys = (0..)
        .map(|i| format!("half-alive-{i}"))
        .filter(|key| ring.get(key.as_bytes()) == Some(peer.url.as_str()));
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let (gets, slow_gets) = (&AtomicU64::new(0), &AtomicU64::new(0));
    // One user after another, each asking for a key the peer owns, until
    // the peer has been found out and then tried again three times.
    until_ok(
        Duration::from_secs(60),
        "three trials after detection",
        || {
            let key = keys.next().expect("keys left to ask for");
            let started = std::time::Instant::now();
            let (node, peer) = (&node, &peer);
            async move {
                still_serves(&node.url, &key).await;
                gets.fetch_add(1, Relaxed);
                if started.elapsed() >= slow {
                    slow_gets.fetch_add(1, Relaxed);
                }
                let health = health_of(&node.url, &peer.url).await;
                match health["failures"].as_u64() {
                    Some(failures) if failures >= 4 => Ok(health),
                    _ => Err(health.to_string()),
                }
            }
        },
    )
    .await;
    let (gets, slow_gets) = (gets.load(Relaxed), slow_gets.load(Relaxed));
    eprintln!("{gets} GETs, {slow_gets} of them slow");
    assert_eq!(
        slow_gets, 1,
        "GETs that waited for the half-alive owner: only the one that found it out"
    );
    assert!(
        peer.fetches() >= 4,
        "{} fetches reached the peer",
        peer.fetches()
    );
    let health = health_of(&node.url, &peer.url).await;
    assert_eq!(health["last_error"], "timed out after 3s", "{health}");
    assert_eq!(health["probes_unanswered"], 0, "{health}");
    let stats = node.stats().await;
    assert_eq!(stat(&stats, "g", "PeerLoads"), 0, "{stats}");
    assert_eq!(stat(&stats, "g", "LocalLoads"), gets, "{stats}");
}
