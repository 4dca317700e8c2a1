//! What a node that was away is sent when it comes back, with real
//! `groupcached` processes in a mailgun write pool on a real etcd: each
//! key written while it was away once, with its latest value, and nothing
//! at all after a pause with no writes; and a flood of peer PUTs too large
//! to store leaves the node's memory where it was.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::net::TcpListener as StdListener;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::etcd::{await_peers, etcd_args, Etcd, TTL};
use common::*;
use groupcached::consistenthash::{Ring, DEFAULT_REPLICAS};
use groupcached::Protocol;

const WRITES: [&str; 3] = ["--protocol", "mailgun", "--allow-writes"];

/// How long the whole pool may take to see a node join, leave or lose
/// its lease: a lease runs out after [`TTL`] plus a keep-alive.
const SEEN: Duration = Duration::from_secs(20);

/// The etcd arguments of a write pool loading from `origin`, plus `extra`.
fn pool_args(etcd: &Etcd, origin: &Origin, extra: &[&str]) -> Vec<String> {
    let mut args = etcd_args(etcd, origin, TTL);
    args.extend(WRITES.iter().chain(extra).map(|a| a.to_string()));
    args
}

/// `method /cache/g/{key}` through `node` with `body`, which must be
/// answered 200.
async fn write(node: &str, method: &str, key: &str, body: String) {
    let url = format!("{node}/cache/g/{}", esc(key.as_bytes()));
    let reply = http_send(method, &url, Bytes::from(body))
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    assert_eq!(reply.status, 200, "{method} {url}: {:?}", reply.body);
}

/// The value of `key` through `node`, as text.
async fn read(node: &str, key: &str) -> String {
    let reply = http_get(&format!("{node}/cache/g/{}", esc(key.as_bytes()))).await;
    assert_eq!(reply.status, 200, "{key} through {node}: {:?}", reply.body);
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// The peer writes `node` received: (PeerSets, PeerRemoves).
async fn peer_writes(node: &impl Frontend) -> (u64, u64) {
    let stats = node.stats().await;
    (
        stat(&stats, "g", "PeerSets"),
        stat(&stats, "g", "PeerRemoves"),
    )
}

/// A `groupcached` restarted on the one listening socket the test keeps,
/// so the pool knows it by the same URL when it comes back.
struct Returning {
    listener: StdListener,
    args: Vec<String>,
    node: Option<GcNode>,
}

impl Returning {
    async fn start(port: u16, args: Vec<String>) -> Returning {
        let mut returning = Returning {
            listener: take_listener(port),
            args,
            node: None,
        };
        returning.restart().await;
        returning
    }

    async fn restart(&mut self) {
        let copy = self.listener.try_clone().expect("a copy of the listener");
        self.node = Some(GcNode::start_on_listener(copy, &self.args).await);
    }

    /// SIGTERM: the node revokes its lease and writes its snapshot.
    async fn stop(&mut self) {
        let mut node = self.node.take().expect("a running node");
        node.proc.signal("TERM");
        let code = node.proc.wait_exit(Duration::from_secs(20)).await;
        assert_eq!(code, Some(0), "{} stopped cleanly", node.url);
    }

    fn node(&self) -> &GcNode {
        self.node.as_ref().expect("a running node")
    }
}

/// The three URLs sorted, as `/peers` shows them.
fn sorted(urls: &[&str]) -> Vec<String> {
    let mut urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
    urls.sort();
    urls
}

/// A write pool on `etcd`: A and B (with `extra` arguments) and C, which
/// keeps a snapshot in `dir` and is restarted on its own socket; once
/// every node sees the three, with their URLs sorted.
async fn start_pool(
    etcd: &Etcd,
    origin: &Origin,
    dir: &TempDir,
    extra: &[&str],
) -> (GcNode, GcNode, Returning, Vec<String>) {
    let ports = free_ports(3);
    let a = GcNode::start(ports[0], &pool_args(etcd, origin, extra)).await;
    let b = GcNode::start(ports[1], &pool_args(etcd, origin, extra)).await;
    let snapshot = dir.join("c.snap");
    let snapshot = ["--snapshot", snapshot.to_str().expect("a UTF-8 path")];
    let c = Returning::start(ports[2], pool_args(etcd, origin, &snapshot)).await;
    let everyone = sorted(&[&a.url, &b.url, &c.node().url]);
    await_peers(&[&a, &b, c.node()], &everyone, true, SEEN).await;
    (a, b, c, everyone)
}

/// Waits until `node` has received at least `n` peer writes.
async fn await_peer_writes(node: &GcNode, n: u64) {
    let what = format!("{n} peer writes received by {}", node.url);
    until_ok(SEEN, what, || async {
        let (sets, removes) = peer_writes(node).await;
        (sets + removes >= n)
            .then_some(())
            .ok_or(format!("PeerSets {sets}, PeerRemoves {removes}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_node_gets_each_missed_key_once_and_serves_no_stale_value() {
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let dir = TempDir::new("write-replay");
    let (a, b, mut c, everyone) = start_pool(&etcd, &origin, &dir, &[]).await;
    let c_url = c.node().url.clone();

    // Keys C owns, each written once before C leaves: C's snapshot keeps
    // these values, which later writes make stale.
    let ring = Ring::with_hashing(Protocol::Mailgun.hashing(), DEFAULT_REPLICAS, &everyone);
    let keys = keys_owned_by(&ring, &c_url, "missed", 10);
    let hot = key_owned_by(&ring, &c_url, "hot");
    for key in keys.iter().chain([&hot]) {
        write(&a.url, "PUT", key, format!("old {key}")).await;
        assert_eq!(read(&c_url, key).await, format!("old {key}"));
    }

    c.stop().await;
    let rest = sorted(&[&a.url, &b.url]);
    await_peers(&[&a, &b], &rest, true, SEEN).await;
    // While C is away: ten keys written once, then one key 20,000 times.
    for key in &keys {
        write(&a.url, "PUT", key, format!("new {key}")).await;
    }
    let started = Instant::now();
    let times: Vec<usize> = (0..20_000 - 1).collect();
    let (writer, hot_key) = (a.url.clone(), hot.clone());
    bounded(16, times, move |i| {
        let (writer, hot_key) = (writer.clone(), hot_key.clone());
        async move { write(&writer, "PUT", &hot_key, format!("hot {i}")).await }
    })
    .await;
    write(&a.url, "PUT", &hot, "hot last".into()).await;
    eprintln!("20,000 writes of one key took {:?}", started.elapsed());

    c.restart().await;
    await_peers(&[&a, &b, c.node()], &everyone, true, SEEN).await;
    // A, the only node the writes went through, sends each key to C once,
    // as a Set (C owns them all again).
    await_peer_writes(c.node(), 11).await;
    for node in [&a.url, &b.url, &c_url] {
        for key in &keys {
            assert_eq!(
                read(node, key).await,
                format!("new {key}"),
                "through {node}"
            );
        }
        assert_eq!(read(node, &hot).await, "hot last", "through {node}");
    }
    assert_eq!(peer_writes(c.node()).await, (11, 0), "one Set per key");
    c.stop().await;
}

/// A key the returning node refuses (its group is unknown there) is
/// counted and skipped: the keys written after it still reach the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_returning_node_refuses_does_not_stop_the_others() {
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let dir = TempDir::new("write-replay-refused");
    // A and B have a second group, which C lacks.
    let extra = ["--group", "h=echo"];
    let (a, b, mut c, everyone) = start_pool(&etcd, &origin, &dir, &extra).await;
    let c_url = c.node().url.clone();
    let ring = Ring::with_hashing(Protocol::Mailgun.hashing(), DEFAULT_REPLICAS, &everyone);
    let keys = keys_owned_by(&ring, &c_url, "after", 3);
    for key in &keys {
        write(&a.url, "PUT", key, format!("old {key}")).await;
    }

    c.stop().await;
    await_peers(&[&a, &b], &sorted(&[&a.url, &b.url]), true, SEEN).await;
    let url = format!("{}/cache/h/refused", a.url);
    let reply = http_send("DELETE", &url, Bytes::new()).await.unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    for key in &keys {
        write(&a.url, "PUT", key, format!("new {key}")).await;
    }

    c.restart().await;
    await_peers(&[&a, &b, c.node()], &everyone, true, SEEN).await;
    await_peer_writes(c.node(), 3).await;
    for key in &keys {
        assert_eq!(read(&c_url, key).await, format!("new {key}"));
    }
    c.stop().await;
}

/// Polls `probe` for `window` and panics if it ever gives anything but
/// `expected`: for what must not happen once something has.
async fn stays<T, F, Fut>(window: Duration, what: &str, expected: T, mut probe: F)
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let until = Instant::now() + window;
    while Instant::now() < until {
        let seen = probe().await;
        assert_eq!(seen, expected, "{what}");
        // The poll interval of the watch; `window` is its length.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_past_its_lease_with_no_writes_meanwhile_gets_no_replay() {
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let ports = free_ports(3);
    let args = pool_args(&etcd, &origin, &[]);
    let a = GcNode::start(ports[0], &args).await;
    let b = GcNode::start(ports[1], &args).await;
    let c = GcNode::start(ports[2], &args).await;
    let everyone = sorted(&[&a.url, &b.url, &c.url]);
    await_peers(&[&a, &b, &c], &everyone, true, SEEN).await;
    // Writes through every node before the pause: each has a log.
    let ring = Ring::with_hashing(Protocol::Mailgun.hashing(), DEFAULT_REPLICAS, &everyone);
    let keys = keys_owned_by(&ring, &c.url, "kept", 6);
    for (key, node) in keys.iter().zip([&a, &b, &c].iter().cycle()) {
        write(&node.url, "PUT", key, format!("set {key}")).await;
    }
    let before = [
        peer_writes(&a).await,
        peer_writes(&b).await,
        peer_writes(&c).await,
    ];

    // SIGSTOP past the lease: A and B drop C, then see it come back.
    c.proc.stop().await;
    let rest = sorted(&[&a.url, &b.url]);
    await_peers(&[&a, &b], &rest, true, SEEN).await;
    c.proc.signal("CONT");
    await_peers(&[&a, &b, &c], &everyone, true, SEEN).await;

    // A replay would start at the join; none comes.
    let nodes = [&a, &b, &c];
    let counts = || async {
        let mut counts = Vec::new();
        for node in nodes {
            counts.push(peer_writes(node).await);
        }
        counts
    };
    stays(
        Duration::from_secs(3),
        "peer writes after the flap",
        before.to_vec(),
        counts,
    )
    .await;
    // The values written before the pause are still served, by C from
    // its cache: none was dropped and loaded again.
    for key in &keys {
        assert_eq!(read(&c.url, key).await, format!("set {key}"));
    }
    assert_eq!(origin.total_hits(), 0, "no value reloaded");
}

/// A peer `PUT` body (`SetRequest`): group `g`, `key`, value `v`.
fn set_request(key: &[u8]) -> Bytes {
    fn field(body: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
        body.push(tag);
        let mut len = bytes.len();
        while len >= 0x80 {
            body.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        body.push(len as u8);
        body.extend_from_slice(bytes);
    }
    let mut body = Vec::with_capacity(key.len() + 16);
    field(&mut body, 0x0a, b"g");
    field(&mut body, 0x12, key);
    field(&mut body, 0x1a, b"v");
    Bytes::from(body)
}

/// The `kB` figure of `field` (`VmRSS`, `VmHWM`) in `/proc/{pid}/status`.
fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_peer_puts_are_not_remembered() {
    let port = free_ports(1)[0];
    let mut args: Vec<String> = WRITES.iter().map(|a| a.to_string()).collect();
    // Room to read four bodies at once.
    let sizes = ["--cache-bytes", "1MiB", "--load-budget", "8MiB"];
    args.extend(
        ["--group", "g=echo"]
            .iter()
            .chain(&sizes)
            .map(|a| a.to_string()),
    );
    let node = GcNode::start(port, &args).await;
    // 1,000 peer PUTs of distinct 1 MiB keys: each is too large for the
    // group's caches and refused.
    let puts: Vec<usize> = (0..1_000).collect();
    let url = node.url.clone();
    let statuses = bounded(4, puts, move |i| {
        let mut key = vec![b'k'; 1 << 20];
        key[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let put = format!("{url}/_groupcache/g/k{i}");
        async move {
            let reply = http_send("PUT", &put, set_request(&key)).await;
            reply
                .map(|r| r.status)
                .unwrap_or_else(|e| panic!("{put}: {e}"))
        }
    })
    .await;
    assert!(statuses.iter().all(|&s| s == 413), "not all 413");
    let pid = node.proc.child.id();
    let (rss, peak) = (proc_kb(pid, "VmRSS"), proc_kb(pid, "VmHWM"));
    eprintln!("after 1,000 refused 1 MiB peer PUTs: VmRSS {rss} kB, VmHWM {peak} kB");
    assert!(rss < 150 * 1000, "VmRSS {rss} kB");
    assert!(peak < 150 * 1000, "VmHWM {peak} kB");
}
