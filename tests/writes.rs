//! Set and Remove through the user API, with real processes: three
//! groupcached nodes in a mailgun pool. A write through any node is read
//! back through every node, a Remove makes the pool reload the key exactly
//! once, a write landing while a slow load of the key is in flight is not
//! undone by that load, and the status names any node that did not
//! confirm the write.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use groupcached::consistenthash::{Hashing, Ring, DEFAULT_REPLICAS};

const WRITES: &[&str] = &["--protocol", "mailgun", "--allow-writes"];

/// `method /cache/g/{key}` on `node` with `body`.
async fn write(node: &GcNode, method: &str, key: &str, body: &'static [u8]) -> Reply {
    let url = format!("{}/cache/g/{}", node.url, esc(key.as_bytes()));
    http_send(method, &url, Bytes::from_static(body))
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// The value of `key` through `node`, as text.
async fn read(node: &GcNode, key: &str) -> String {
    let reply = node.get(&format!("/cache/g/{}", esc(key.as_bytes()))).await;
    assert_eq!(
        reply.status, 200,
        "{key} through {}: {:?}",
        node.url, reply.body
    );
    String::from_utf8(reply.body.to_vec()).expect("text value")
}

/// The nodes' indexes as (owner of `key`, the other two), on the mailgun ring.
fn roles(nodes: &[GcNode], key: &str) -> (usize, usize, usize) {
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let ring = Ring::with_hashing(Hashing::Mailgun, DEFAULT_REPLICAS, &urls);
    let owner_url = ring.get(key.as_bytes()).expect("an owner");
    let owner = urls.iter().position(|u| u == owner_url).unwrap();
    let others: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    (owner, others[0], others[1])
}

/// `groups.g.Loads` of `node`.
async fn loads(node: &GcNode) -> u64 {
    node.stats().await["groups"]["g"]["Loads"]
        .as_u64()
        .expect("Loads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_any_node_is_read_back_through_every_node() {
    let origin = Origin::start().await;
    let nodes = start_cluster(&free_ports(3), &origin, WRITES).await;
    let key = "user:42";
    for node in &nodes {
        assert_eq!(read(node, key).await, "value-of-user:42");
    }
    assert_eq!(origin.hits(key.as_bytes()), 1);
    for (i, writer) in nodes.iter().enumerate() {
        let value: &'static [u8] = [&b"set-0"[..], b"set-1", b"set-2"][i];
        let reply = write(writer, "PUT", key, value).await;
        assert_eq!((reply.status, &reply.body[..]), (200, &b"ok\n"[..]));
        for node in &nodes {
            assert_eq!(
                read(node, key).await.as_bytes(),
                value,
                "through {}",
                node.url
            );
        }
    }
    // `?hot=1`: the receiving node (not the owner) keeps a copy and answers
    // from it without asking the owner.
    let (owner, other, _) = roles(&nodes, key);
    let hot_items = |stats: serde_json::Value| stats["groups"]["g"]["HotCache"]["Items"].clone();
    let url = format!("{}/cache/g/{key}?hot=1", nodes[other].url);
    let reply = http_send("PUT", &url, Bytes::from_static(b"hot"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(hot_items(nodes[other].stats().await), 1);
    let served = nodes[owner].stats().await["groups"]["g"]["ServerRequests"].clone();
    assert_eq!(read(&nodes[other], key).await, "hot");
    let after = nodes[owner].stats().await["groups"]["g"]["ServerRequests"].clone();
    assert_eq!(served, after, "answered from the hot copy");
    // A Remove through any node: every node reloads, the origin once.
    for (i, remover) in nodes.iter().enumerate() {
        let reply = write(remover, "DELETE", key, b"").await;
        assert_eq!((reply.status, &reply.body[..]), (200, &b"ok\n"[..]));
        for node in &nodes {
            assert_eq!(read(node, key).await, "value-of-user:42");
        }
        assert_eq!(origin.hits(key.as_bytes()), 2 + i);
    }
    // What /stats counts over the pool: 4 user PUTs and 3 DELETEs; each
    // PUT not through the owner is a peer PUT there (3), each PUT a peer
    // DELETE at every node but the owner and the writer (2 + 1 + 1 + 1),
    // each user DELETE one at both other nodes (3 × 2).
    let mut totals = [0; 5];
    for node in &nodes {
        let stats = node.stats().await;
        for (total, name) in totals.iter_mut().zip(WRITE_STATS) {
            *total += stats["groups"]["g"][name].as_u64().expect(name);
        }
    }
    assert_eq!(totals, [4, 3, 3, 5 + 6, 0], "{WRITE_STATS:?}");
}

/// The write counters of `/stats`, in the order the tests list them.
const WRITE_STATS: [&str; 5] = [
    "UserSets",
    "UserRemoves",
    "PeerSets",
    "PeerRemoves",
    "UnconfirmedWrites",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_a_slow_load_is_not_undone_by_it() {
    let origin = Origin::start().await;
    let nodes = start_cluster(&free_ports(3), &origin, WRITES).await;
    for method in ["PUT", "DELETE"] {
        // Answered by the origin after one second.
        let key = format!("slow-{method}");
        let (owner, reader, writer) = roles(&nodes, &key);
        let url = format!("{}/cache/g/{key}", nodes[reader].url);
        let before = loads(&nodes[owner]).await;
        let loading = tokio::spawn(async move { http_get(&url).await });
        // The owner has begun its load of the key (for the reader).
        eventually(Duration::from_secs(10), "the owner's load", || async {
            (loads(&nodes[owner]).await != before).then_some(())
        })
        .await;
        let reply = write(&nodes[writer], method, &key, b"written").await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let loaded = loading.await.unwrap();
        assert_eq!(loaded.body, value_of(key.as_bytes()), "the waiting get");
        assert_eq!(origin.hits(key.as_bytes()), 1);
        let expected = if method == "PUT" {
            b"written".to_vec()
        } else {
            value_of(key.as_bytes())
        };
        for node in &nodes {
            assert_eq!(read(node, &key).await.as_bytes(), expected);
        }
        // After a Remove the older value was stored nowhere: one reload.
        let reloads = usize::from(method == "DELETE");
        assert_eq!(origin.hits(key.as_bytes()), 1 + reloads);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_confirm_is_named() {
    let origin = Origin::start().await;
    let mut nodes = start_cluster(&free_ports(3), &origin, WRITES).await;
    let down = nodes.pop().expect("three nodes");
    let down_url = down.url.clone();
    drop(down); // killed
    for (method, body) in [("PUT", &b"v"[..]), ("DELETE", &b""[..])] {
        let reply = write(&nodes[0], method, "k", body).await;
        assert_eq!(reply.status, 502, "{method}");
        let text = String::from_utf8(reply.body.to_vec()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.starts_with(&format!("not confirmed by {down_url}: ")),
            "{text}"
        );
    }
    let stats = &nodes[0].stats().await["groups"]["g"];
    let counts = WRITE_STATS.map(|name| stats[name].as_u64().expect(name));
    assert_eq!(counts[..2], [1, 1], "{stats}");
    assert_eq!(counts[4], 2, "both writes unconfirmed: {stats}");
    // Without --allow-writes, 405 naming the flag.
    let port = free_ports(1)[0];
    let args = ["--protocol", "mailgun", "--group", "g=echo"].map(String::from);
    let closed = GcNode::start(port, &args).await;
    let reply = write(&closed, "PUT", "k", b"v").await;
    assert_eq!(reply.status, 405);
    assert!(String::from_utf8_lossy(&reply.body).contains("--allow-writes"));
}

/// The warning lines a node started with `args` logs by the time it
/// serves (stderr kept in a temporary file).
async fn start_warnings(args: &[&str], peer_port: bool) -> Vec<String> {
    let ports = free_ports(if peer_port { 2 } else { 1 });
    let log = std::env::temp_dir().join(format!("groupcached-writes-{}.log", ports[0]));
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_groupcached"));
    command
        .args(["--group", "g=echo"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stderr(std::fs::File::create(&log).expect("a log file"));
    if peer_port {
        command.args(["--peer-listen", &format!("127.0.0.1:{}", ports[1])]);
    }
    hand_over_ports(&mut command, &ports);
    let _proc = Proc::spawn("groupcached (warnings)", &mut command);
    drop(command); // closes the test's copy of the listeners
    wait_healthy(&format!("http://127.0.0.1:{}", ports[0])).await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    text.lines()
        .filter(|line| line.contains("WARN"))
        .map(str::to_string)
        .collect()
}

/// A fork pool's peer API takes writes from anyone who reaches it: a node
/// serving it on the user listener without client certificates says so
/// once at start; one with `--peer-listen`, or a golang pool, does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_writable_peer_api_is_warned_about_at_start() {
    for protocol in ["mailgun", "groupcache-go"] {
        let warnings = start_warnings(&["--protocol", protocol], false).await;
        assert_eq!(warnings.len(), 1, "{protocol}: {warnings:?}");
        assert!(
            warnings[0].contains("accepts PUT/DELETE from anyone")
                && warnings[0].contains("--peer-listen")
                && warnings[0].contains("--peer-client-ca"),
            "{warnings:?}"
        );
        let warnings = start_warnings(&["--protocol", protocol], true).await;
        assert_eq!(
            warnings,
            Vec::<String>::new(),
            "{protocol} with --peer-listen"
        );
    }
    assert_eq!(
        start_warnings(&[], false).await,
        Vec::<String>::new(),
        "golang"
    );
}
