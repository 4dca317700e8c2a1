//! Bad loads: hostile origins and peers, dot-segment keys, values bigger
//! than the cache, a full load budget, a frozen owner and a slow origin.
//!
//! Each case of the matrix asserts the exact status a user gets and then
//! that the node still serves correct values. The hostile servers are small
//! raw-TCP HTTP servers in this file, so they can send what no well-behaved
//! server would: a false `Content-Length`, an endless chunked body, a
//! `GetResponse` over the limit.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use groupcached::consistenthash::{Ring, DEFAULT_REPLICAS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// The matrix node's value limit (and cache size).
const MAX: usize = 2 << 20;

/// What a hostile server does with one request.
enum Act {
    /// Sends these bytes and closes the connection.
    Raw(Vec<u8>),
    /// A chunked 200 that never ends.
    Endless,
    /// Reads the request and never answers.
    Hang,
    /// Headers of a 1000-byte body, then one byte every 100 ms.
    Drip,
    /// Waits, then sends the bytes.
    Later(Duration, Vec<u8>),
    /// Sends the first bytes, waits for the notify, sends the rest.
    Held(Vec<u8>, Arc<Notify>, Vec<u8>),
}

/// A loopback HTTP server answering each request by `respond(path)`, and
/// counting requests per path.
#[derive(Clone)]
struct Hostile {
    url: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Hostile {
    async fn start(respond: impl Fn(&str) -> Act + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hostile = Hostile {
            url: format!("http://{}", listener.local_addr().unwrap()),
            hits: Arc::default(),
        };
        let hits = hostile.hits.clone();
        let respond = Arc::new(respond);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (hits, respond) = (hits.clone(), respond.clone());
                tokio::spawn(async move {
                    let _ = serve_hostile(stream, &hits, &*respond).await;
                });
            }
        });
        hostile
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn serve_hostile(
    mut stream: TcpStream,
    hits: &Mutex<HashMap<String, usize>>,
    respond: &(dyn Fn(&str) -> Act + Send + Sync),
) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buffer[..n]);
    }
    let line = String::from_utf8_lossy(&request);
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    match respond(&path) {
        Act::Raw(bytes) => stream.write_all(&bytes).await?,
        Act::Endless => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await?;
            let chunk = [b"10000\r\n".as_slice(), &[b'x'; 0x10000], b"\r\n"].concat();
            loop {
                stream.write_all(&chunk).await?;
            }
        }
        Act::Hang => {
            // A deliberately hung origin: the node must give up on it.
            tokio::time::sleep(Duration::from_secs(60)).await
        }
        Act::Drip => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                .await?;
            for _ in 0..1000 {
                // A deliberately dripping origin: one byte every 100 ms.
                tokio::time::sleep(Duration::from_millis(100)).await;
                stream.write_all(b"x").await?;
            }
        }
        Act::Later(delay, bytes) => {
            // A deliberately slow origin.
            tokio::time::sleep(delay).await;
            stream.write_all(&bytes).await?;
        }
        Act::Held(head, release, rest) => {
            stream.write_all(&head).await?;
            release.notified().await;
            stream.write_all(&rest).await?;
        }
    }
    stream.shutdown().await
}

/// A 200 with `Content-Length` and `body`, closing the connection.
fn ok(body: &[u8]) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body].concat()
}

/// A status line and a text body, closing the connection.
fn status(code: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A chunked 200 whose chunks together are `body`.
fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for part in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// `/o/{key}` or `/q?k={key}` → the key.
fn origin_key(path: &str) -> Vec<u8> {
    let raw = path
        .strip_prefix("/o/")
        .or_else(|| path.strip_prefix("/q?k="))
        .unwrap_or("");
    groupcached::wire::unescape(raw.as_bytes()).unwrap_or_default()
}

/// The hostile origin: the key's prefix picks the misbehaviour; any other
/// key gets `value-of-{key}`. `release` frees the `hold` keys' bodies.
fn hostile_origin(path: &str, release: &Arc<Notify>) -> Act {
    let key = origin_key(path);
    let has = |prefix: &str| key.starts_with(prefix.as_bytes());
    if has("huge-cl") {
        Act::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\nxxxx".to_vec())
    } else if has("endless") {
        Act::Endless
    } else if has("over-cl") {
        Act::Raw(ok(&vec![b'o'; MAX + 1]))
    } else if has("over-chunked") {
        Act::Raw(chunked(&vec![b'c'; MAX + 1], 100_000))
    } else if has("max") {
        Act::Raw(ok(&vec![b'm'; MAX]))
    } else if has("mib") {
        Act::Raw(ok(&vec![b'i'; 1 << 20]))
    } else if has("chunked") {
        Act::Raw(chunked(&value_of(&key), 3))
    } else if has("hang") {
        Act::Hang
    } else if has("drip") {
        Act::Drip
    } else if has("slow") {
        Act::Later(Duration::from_millis(5500), ok(&value_of(&key)))
    } else if has("hold") {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\nConnection: close\r\n\r\n";
        Act::Held(head.to_vec(), release.clone(), vec![b'h'; 1 << 20])
    } else {
        Act::Raw(ok(&value_of(&key)))
    }
}

/// A [`hostile_origin`] server and the notify that releases its `hold` keys.
async fn start_hostile_origin() -> (Hostile, Arc<Notify>) {
    let release = Arc::new(Notify::new());
    let notify = release.clone();
    let origin = Hostile::start(move |path| hostile_origin(path, &notify)).await;
    (origin, release)
}

/// The hostile peer: answers `/_groupcache/g/{key}` by the key's prefix.
fn hostile_peer(path: &str) -> Act {
    let key = path.rsplit('/').next().unwrap_or("");
    if key.starts_with("peer-oversized") {
        // A well-formed GetResponse whose value is one byte over the limit.
        let value = vec![b'p'; MAX + 1];
        let body = groupcached::wire::encode_response(&value, groupcached::Expiry::Never);
        Act::Raw(ok(&body))
    } else if key.starts_with("peer-huge-cl") {
        Act::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n\x0a".to_vec())
    } else if key.starts_with("peer-endless") {
        Act::Endless
    } else if key.starts_with("peer-garbage") {
        Act::Raw(ok(b"\x0a\xff\xff\xff\xff\x0fnot protobuf"))
    } else {
        Act::Raw(status("500 Internal Server Error", "hostile peer"))
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// After every case: fresh keys owned by the node itself and by the
/// hostile peer still load with their correct values.
async fn fresh_keys_still_load(node: &GcNode, ring: &Ring, case: &str) {
    let prefix: String = case.chars().filter(char::is_ascii_alphanumeric).collect();
    for owner in ring.peers() {
        still_serves(
            &node.url,
            &key_owned_by(ring, owner, &format!("after-{prefix}")),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_origins_and_peers_get_exact_statuses() {
    let (origin, release) = start_hostile_origin().await;
    let peer = Hostile::start(hostile_peer).await;
    let port = free_ports(1)[0];
    let node_url = format!("http://127.0.0.1:{port}");
    let peers = vec![node_url.clone(), peer.url.clone()];
    let ring = Ring::new(DEFAULT_REPLICAS, &peers);
    let args = strings(&[
        "--peers",
        &peers.join(","),
        "--group",
        &format!("g={}/o/{{key}}", origin.url),
        "--group",
        &format!("q={}/q?k={{key}}", origin.url),
        "--cache-bytes",
        "2MiB",
        "--max-value-bytes",
        "2MiB",
        "--origin-timeout",
        "1s",
        "--peer-timeout",
        "1s",
    ]);
    let node = GcNode::start(port, &args).await;
    let own = |prefix: &str| keys_owned_by(&ring, &node_url, prefix, 1).remove(0);
    let peers_key = |prefix: &str| keys_owned_by(&ring, &peer.url, prefix, 1).remove(0);

    // 50 small values in the cache, which no case may flush.
    for i in 0..50 {
        let key = own(&format!("fill{i}"));
        assert_eq!(node.get(&format!("/cache/g/{key}")).await.status, 200);
    }
    let filled = stat(&node.stats().await, "g", "MainCache.Items");
    assert_eq!(filled, 50);

    // (case, group, key, status, what the body must say or be)
    let too_large = "response body is larger than the 2097152-byte limit";
    let dot = "key has a '.' or '..' path segment";
    let value = |key: &str| String::from_utf8(value_of(key.as_bytes())).unwrap();
    // A key the hostile peer owns: its bad reply is a peer error, and the
    // node loads the key itself.
    let peer_case = |case, prefix| {
        let key = peers_key(prefix);
        let want = value(&key);
        (case, "g", key, 200, want)
    };
    let cases: Vec<(&str, &str, String, u16, String)> = vec![
        (
            "huge Content-Length",
            "g",
            own("huge-cl"),
            502,
            too_large.into(),
        ),
        (
            "endless chunked body",
            "g",
            own("endless"),
            502,
            too_large.into(),
        ),
        (
            "Content-Length one over",
            "g",
            own("over-cl"),
            502,
            too_large.into(),
        ),
        (
            "chunked one over",
            "g",
            own("over-chunked"),
            502,
            too_large.into(),
        ),
        (
            "origin never answers",
            "g",
            own("hang"),
            502,
            "timed out after 1s".into(),
        ),
        (
            "origin drips its body",
            "g",
            own("drip"),
            502,
            "timed out after 1s".into(),
        ),
        (
            "small chunked body",
            "g",
            own("chunked"),
            200,
            value(&own("chunked")),
        ),
        ("key ..", "g", "..".into(), 400, dot.into()),
        ("key .", "g", ".".into(), 400, dot.into()),
        ("key ../x", "g", "..%2Fx".into(), 400, dot.into()),
        ("key a\\..\\x", "g", "a%5C..%5Cx".into(), 400, dot.into()),
        ("key .. in a query", "q", "..".into(), 200, value("..")),
        ("key ... is a name", "g", "...".into(), 200, value("...")),
        peer_case("peer: oversized GetResponse", "peer-oversized"),
        peer_case("peer: huge Content-Length", "peer-huge-cl"),
        peer_case("peer: endless body", "peer-endless"),
        peer_case("peer: garbage protobuf", "peer-garbage"),
    ];
    for (case, group, key, want_status, want) in &cases {
        let reply = node.get(&format!("/cache/{group}/{key}")).await;
        let body = String::from_utf8_lossy(&reply.body);
        assert_eq!(reply.status, *want_status, "case {case}: {body}");
        if *want_status == 200 {
            assert_eq!(body, *want, "case {case}");
        } else {
            assert!(body.contains(want.as_str()), "case {case}: {body}");
        }
        fresh_keys_still_load(&node, &ring, case).await;
    }
    // Refused keys never reached the origin; peers' keys were loaded once.
    for path in ["/o/..", "/o/.", "/o/..%2Fx", "/o/a%5C..%5Cx"] {
        assert_eq!(origin.hits(path), 0, "{path}");
    }
    for prefix in [
        "peer-oversized",
        "peer-huge-cl",
        "peer-endless",
        "peer-garbage",
    ] {
        let key = peers_key(prefix);
        assert_eq!(peer.hits(&format!("/_groupcache/g/{key}")), 1, "{key}");
        assert_eq!(origin.hits(&format!("/o/{key}")), 1, "{key}");
    }

    // A value of exactly the limit is served, but key + value do not fit
    // the 2 MiB cache: it is not stored and flushes nothing.
    let max = own("max");
    for round in 1..=2 {
        let reply = node.get(&format!("/cache/g/{max}")).await;
        assert_eq!((reply.status, reply.body.len()), (200, MAX));
        assert!(reply.body.iter().all(|&b| b == b'm'));
        assert_eq!(origin.hits(&format!("/o/{max}")), round, "not cached");
    }
    assert_eq!(stat(&node.stats().await, "g", "MainCache.Evictions"), 0);
    let items = stat(&node.stats().await, "g", "MainCache.Items");
    assert!(
        items >= filled,
        "{items} items: the big value flushed the cache"
    );
    let fill0 = own("fill0");
    let reply = node.get(&format!("/cache/g/{fill0}")).await;
    assert_eq!(reply.body, value_of(fill0.as_bytes()));
    assert_eq!(origin.hits(&format!("/o/{fill0}")), 1, "still cached");
    release.notify_waiters();
}

/// Loads over `--load-budget` fail at once with 503, and the node serves
/// again as soon as the budget is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_over_the_budget_get_503() {
    let (origin, release) = start_hostile_origin().await;
    let port = free_ports(1)[0];
    let args = strings(&[
        "--group",
        &format!("g={}/o/{{key}}", origin.url),
        "--cache-bytes",
        "8MiB",
        "--max-value-bytes",
        "1MiB",
        "--load-budget",
        "1MiB",
    ]);
    let node = GcNode::start(port, &args).await;
    // `hold` sends the headers of a 1 MiB body and waits: it holds the budget.
    let held = {
        let url = format!("{}/cache/g/hold", node.url);
        tokio::spawn(async move { http_get(&url).await })
    };
    let mut attempt = 0;
    let refused = eventually(Duration::from_secs(10), "a load refused", || {
        let holding = origin.hits("/o/hold") == 1;
        attempt += holding as usize;
        let (node, attempt) = (&node, attempt);
        async move {
            if !holding {
                return None;
            }
            let reply = node.get(&format!("/cache/g/mib-{attempt}")).await;
            assert!(matches!(reply.status, 200 | 503), "{:?}", reply.body);
            (reply.status == 503).then_some(reply)
        }
    })
    .await;
    let body = String::from_utf8_lossy(&refused.body);
    assert!(body.contains("load budget of 1048576 bytes"), "{body}");
    // Release the held body: both it and the refused key load now.
    while !held.is_finished() {
        release.notify_waiters();
        // Poll interval: notify again until the held load has its body.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = held.await.unwrap();
    assert_eq!((held.status, held.body.len()), (200, 1 << 20));
    let reply = node.get(&format!("/cache/g/mib-{attempt}")).await;
    assert_eq!((reply.status, reply.body.len()), (200, 1 << 20));
}

/// A Python `http.server` decodes `%2F` before resolving `..`: a key must
/// not reach files outside the template's directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_stay_inside_a_decoding_origins_directory() {
    let root = std::env::temp_dir().join(format!("gc-bad-load-{}", std::process::id()));
    let public = root.join("public");
    std::fs::create_dir_all(&public).unwrap();
    let _cleanup = RemoveOnDrop(root.clone());
    std::fs::write(root.join("secret.txt"), "the secret").unwrap();
    std::fs::write(public.join("hello.txt"), "hello from public").unwrap();
    let (python, port) = start_python_server(&root).await;
    let node_port = free_ports(1)[0];
    let node = GcNode::start(
        node_port,
        &[
            "--group".into(),
            format!("g=http://127.0.0.1:{port}/public/{{key}}"),
        ],
    )
    .await;
    // The origin itself serves the secret to `..%2F`: the hazard is real.
    let direct = http_get(&format!("http://127.0.0.1:{port}/public/..%2Fsecret.txt")).await;
    assert_eq!((direct.status, &direct.body[..]), (200, &b"the secret"[..]));

    for key in [
        "..%2Fsecret.txt",
        "..",
        "sub%2F..%2F..%2Fsecret.txt",
        "..%5Csecret.txt",
    ] {
        let reply = node.get(&format!("/cache/g/{key}")).await;
        assert_eq!(reply.status, 400, "{key}: {:?}", reply.body);
        assert!(!reply.body.windows(6).any(|w| w == b"secret"), "{key}");
    }
    let reply = node.get("/cache/g/hello.txt").await;
    assert_eq!(
        (reply.status, &reply.body[..]),
        (200, &b"hello from public"[..])
    );
    drop(python);
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// With the owner of some keys stopped (SIGSTOP), those keys are still
/// served (locally), `/peers` shows the owner down, and after SIGCONT it
/// is found back up and asked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_owner_is_marked_down_and_found_back() {
    let origin = Origin::start().await;
    let ports = free_ports(2);
    let nodes = start_cluster(
        &ports,
        &origin,
        // The frozen owner's fetches time out after 2.3 s; the origin's
        // own loads have 2 s, plenty on a loaded machine. Without liveness
        // probes (tests/liveness.rs has them), so the deadline is what
        // finds the owner out.
        &[
            "--peer-timeout",
            "300ms",
            "--origin-timeout",
            "2s",
            "--probe-timeout",
            "0",
        ],
    )
    .await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let peers = vec![a.url.clone(), b.url.clone()];
    let ring = Ring::new(DEFAULT_REPLICAS, &peers);
    let keys = keys_owned_by(&ring, &b.url, "frozen", 400);
    let health = |peers: serde_json::Value| peers["health"][0].clone();

    b.proc.stop().await;
    for key in &keys[..20] {
        let reply = a.get(&format!("/cache/g/{key}")).await;
        assert_eq!(
            (reply.status, &reply.body[..]),
            (200, &value_of(key.as_bytes())[..])
        );
    }
    let down = health(serde_json::from_slice(&a.get("/peers").await.body).unwrap());
    assert_eq!(down["url"], b.url.as_str());
    assert!(
        down["state"] == "down" || down["state"] == "probing",
        "{down}"
    );
    assert!(down["failures"].as_u64().unwrap() >= 1, "{down}");
    // The status page's JSON carries the same health.
    let status: serde_json::Value = serde_json::from_slice(&a.get("/status").await.body).unwrap();
    let listed = status["peers"].as_array().unwrap();
    let frozen = listed.iter().find(|p| p["url"] == b.url.as_str()).unwrap();
    assert!(
        frozen["state"] == "down" || frozen["state"] == "probing",
        "{status}"
    );
    assert!(
        frozen["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out")),
        "{status}"
    );
    let this = listed.iter().find(|p| p["url"] == a.url.as_str()).unwrap();
    assert!(this.get("state").is_none(), "{status}");
    // And Prometheus sees it down.
    let metrics = String::from_utf8_lossy(&a.get("/metrics").await.body).into_owned();
    let up = format!("groupcached_peer_up{{peer=\"{}\"}} 0", b.url);
    assert!(metrics.contains(&up), "no {up:?} in:\n{metrics}");
    // Only probes waited for the frozen owner: the rest were local at once.
    let peer_errors = stat(&a.stats().await, "g", "PeerErrors");
    assert!(
        (1..20).contains(&peer_errors),
        "{peer_errors} of 20 fetches timed out"
    );
    assert_eq!(stat(&a.stats().await, "g", "LocalLoads"), 20);

    b.proc.signal("CONT");
    // Each poll asks for a fresh key of the owner: one of them probes it.
    let mut next = keys[20..].iter();
    let now = eventually(Duration::from_secs(20), "the owner up again", || {
        let key = next.next().expect("keys left to ask for");
        async move {
            still_serves(&a.url, key).await;
            let now = health(serde_json::from_slice(&a.get("/peers").await.body).unwrap());
            (now["state"] == "up").then_some(now)
        }
    })
    .await;
    assert_eq!(now["failures"], 0, "{now}");
    assert!(
        stat(&a.stats().await, "g", "PeerLoads") >= 1,
        "the owner is asked again"
    );
}

/// An origin slower than the old 5 s peer timeout, asked for one key by
/// three nodes at once, is loaded exactly once: the requesters wait for
/// the owner's own origin load instead of loading the key themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_origin_is_loaded_once_cluster_wide() {
    let (origin, _release) = start_hostile_origin().await;
    let ports = free_ports(3);
    let peers = peer_list(&ports);
    let mut nodes = Vec::new();
    for &port in &ports {
        let args = vec![
            "--peers".to_string(),
            peers.clone(),
            "--group".into(),
            format!("g={}/o/{{key}}", origin.url),
        ];
        nodes.push(GcNode::start(port, &args).await);
    }
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let replies = bounded(3, urls, |url| async move {
        http_get(&format!("{url}/cache/g/slow-key")).await
    })
    .await;
    for reply in replies {
        assert_eq!(
            (reply.status, &reply.body[..]),
            (200, &b"value-of-slow-key"[..])
        );
    }
    assert_eq!(origin.hits("/o/slow-key"), 1);
}

/// A load that waits for one of the origin's connection permits gets its
/// whole `--origin-timeout` once it has one: with 2 permits, 4 distinct
/// keys whose origin answers after 1 s all load within a 1.9 s deadline
/// (the last two wait about 1 s for a permit, then load for 1 s; were the
/// wait counted they would need 2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_queued_for_a_connection_gets_its_own_deadline() {
    let origin = Origin::start().await;
    let port = free_ports(1)[0];
    let args = strings(&[
        "--group",
        &format!("g={}", origin.template()),
        "--max-conns-per-peer",
        "2",
        "--origin-timeout",
        "1900ms",
    ]);
    let node = GcNode::start(port, &args).await;
    let keys: Vec<String> = (0..4).map(|i| format!("slow-{i}")).collect();
    let url = node.url.clone();
    let replies = bounded(4, keys.clone(), move |key| {
        let url = format!("{url}/cache/g/{key}");
        async move { (key, http_get(&url).await) }
    })
    .await;
    for (key, reply) in replies {
        let body = String::from_utf8_lossy(&reply.body);
        assert_eq!(reply.status, 200, "{key}: {body}");
        assert_eq!(reply.body, value_of(key.as_bytes()));
        assert_eq!(origin.hits(key.as_bytes()), 1, "{key}");
    }
}
