//! Warm restarts (`--snapshot`): a node's caches survive a restart on the
//! same socket; every kind of bad snapshot is logged in one line and the
//! node starts empty; a key removed while a node was away does not come
//! back with its snapshot.

#![cfg(feature = "binary")]

mod common;

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::etcd::{await_peers, etcd_args, Etcd, PROMPTLY, TTL};
use common::*;
use groupcached::consistenthash::{Ring, DEFAULT_REPLICAS};
use groupcached::Protocol;

/// A `groupcached` started, stopped and started again on one listening
/// socket the test keeps (as systemd keeps a service's socket), logging at
/// `info` to a file.
struct Restartable {
    listener: StdListener,
    url: String,
    args: Vec<String>,
    log: PathBuf,
    proc: Option<Proc>,
}

impl Restartable {
    fn new(dir: &TempDir, args: &[String]) -> Restartable {
        let port = free_ports(1)[0];
        Restartable {
            listener: take_listener(port),
            url: format!("http://127.0.0.1:{port}"),
            args: args.to_vec(),
            log: dir.join(&format!("node-{port}.log")),
            proc: None,
        }
    }

    async fn start(&mut self) {
        assert!(self.proc.is_none(), "{} is running", self.url);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_groupcached"));
        command.args(&self.args).env("RUST_LOG", "info").stderr(log);
        hand_over_copy(&mut command, &self.listener);
        self.proc = Some(Proc::spawn(
            &format!("groupcached {}", self.url),
            &mut command,
        ));
        wait_healthy(&self.url).await;
    }

    /// SIGTERM; the exit code.
    async fn stop(&mut self) -> Option<i32> {
        let mut proc = self.proc.take().expect("a running node");
        proc.signal("TERM");
        proc.wait_exit(Duration::from_secs(20)).await
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's lines that contain `text`.
    fn lines(&self, text: &str) -> Vec<String> {
        let log = self.log();
        log.lines()
            .filter(|l| l.contains(text))
            .map(str::to_string)
            .collect()
    }
}

impl Frontend for Restartable {
    fn url(&self) -> &str {
        &self.url
    }
}

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `--group g=ORIGIN --snapshot PATH`.
fn snapshot_args(origin: &Origin, path: &Path) -> Vec<String> {
    args(&[
        "--group",
        &format!("g={}", origin.template()),
        "--snapshot",
        path.to_str().unwrap(),
    ])
}

/// Loads 100 keys, restarts, and serves them again without the origin;
/// restarted with `--max-ttl 0`, the restored values obey it and are
/// loaded again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caches_survive_a_restart() {
    let origin = Origin::start().await;
    let dir = TempDir::new("survive");
    let path = dir.join("cache.snap");
    let mut node = Restartable::new(&dir, &snapshot_args(&origin, &path));
    node.start().await;
    assert_eq!(node.lines("no snapshot yet").len(), 1, "{}", node.log());
    let keys: Vec<String> = (0..100).map(|i| format!("warm-{i}")).collect();
    for key in &keys {
        still_serves(&node.url, key).await;
    }
    assert_eq!(node.stop().await, Some(0));
    let written = node.lines("snapshot written");
    assert_eq!(written.len(), 1, "{}", node.log());
    assert!(written[0].contains("values=100"), "{written:?}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "only its user reads the values");

    node.start().await;
    let restored = node.lines("snapshot restored");
    assert!(restored[0].contains("values=100"), "{restored:?}");
    for key in &keys {
        still_serves(&node.url, key).await;
    }
    assert_eq!(origin.total_hits(), 100, "nothing loaded again");
    assert_eq!(stat(&node.stats().await, "g", "MainCache.Items"), 100);

    // The same rules as for loaded values: --max-ttl 0 stores nothing.
    assert_eq!(node.stop().await, Some(0));
    node.args.extend(args(&["--max-ttl", "0"]));
    node.start().await;
    let restored = node.lines("snapshot restored");
    assert!(restored[1].contains("values=0"), "{restored:?}");
    assert!(restored[1].contains("skipped=100"), "{restored:?}");
    still_serves(&node.url, &keys[0]).await;
    assert_eq!(origin.hits(keys[0].as_bytes()), 2);
    assert_eq!(node.stop().await, Some(0));
}

/// `bytes` with its trailing CRC-32 recomputed, as a writer would have.
fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Every kind of bad snapshot is logged in one line, the node starts empty
/// and serves; a snapshot that cannot be written is logged and the exit is
/// still clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_snapshots_leave_the_node_empty() {
    let origin = Origin::start().await;
    let dir = TempDir::new("bad");
    let good = dir.join("good.snap");
    let mut node = Restartable::new(&dir, &snapshot_args(&origin, &good));
    node.start().await;
    for i in 0..10 {
        still_serves(&node.url, &format!("some-{i}")).await;
    }
    assert_eq!(node.stop().await, Some(0));
    let bytes = std::fs::read(&good).unwrap();
    assert_eq!(&bytes[..6], b"GCSNAP");

    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0xff;
    let mut other_format = bytes.clone();
    other_format[6..8].copy_from_slice(&0u16.to_le_bytes());
    let mut old = bytes.clone();
    let hour_ago = i64::from_le_bytes(old[8..16].try_into().unwrap()) - 3_600_000_000_000;
    old[8..16].copy_from_slice(&hour_ago.to_le_bytes());
    let cases: [(&str, Option<Vec<u8>>, &str, &str); 7] = [
        ("missing", None, "g", "no snapshot yet"),
        (
            "truncated",
            Some(bytes[..bytes.len() / 2].to_vec()),
            "g",
            "checksum mismatch",
        ),
        (
            "short",
            Some(bytes[..10].to_vec()),
            "g",
            "snapshot is damaged: truncated",
        ),
        ("damaged", Some(flipped), "g", "checksum mismatch"),
        (
            "foreign",
            Some(resealed(b"%PDF-1.7 not a snapshot at all....".to_vec())),
            "g",
            "not a groupcached snapshot",
        ),
        (
            "format",
            Some(resealed(other_format)),
            "g",
            "snapshot format 0, this node reads formats 1 and 2",
        ),
        (
            "old",
            Some(resealed(old)),
            "g",
            "longer than --snapshot-max-age",
        ),
    ];
    for (case, contents, group, expected) in cases.into_iter().chain([(
        "other-groups",
        Some(bytes.clone()),
        "other",
        "holds none of this node's groups (it has g)",
    )]) {
        let path = dir.join(&format!("{case}.snap"));
        if let Some(contents) = &contents {
            std::fs::write(&path, contents).unwrap();
        }
        let mut args = snapshot_args(&origin, &path);
        args[1] = format!("{group}={}", origin.template());
        let mut node = Restartable::new(&dir, &args);
        node.start().await;
        let said = node.lines(expected);
        assert_eq!(said.len(), 1, "{case}: {}", node.log());
        let key = format!("after-{case}");
        let reply = http_get(&format!("{}/cache/{group}/{key}", node.url)).await;
        assert_eq!(
            (reply.status, &reply.body[..]),
            (200, &value_of(key.as_bytes())[..]),
            "{case}"
        );
        assert_eq!(
            origin.hits(key.as_bytes()),
            1,
            "{case}: loaded, not restored"
        );
        assert_eq!(node.stop().await, Some(0), "{case}");
    }

    // A snapshot that cannot be written: logged, and the exit is clean.
    let nowhere = dir.join("no-such-directory/cache.snap");
    let mut node = Restartable::new(&dir, &snapshot_args(&origin, &nowhere));
    node.start().await;
    still_serves(&node.url, "unsaved").await;
    assert_eq!(node.stop().await, Some(0));
    assert_eq!(
        node.lines("snapshot not written").len(),
        1,
        "{}",
        node.log()
    );
    assert!(!nowhere.exists());
}

/// In a mailgun pool on etcd, a key removed while its owner was away does
/// not come back with the owner's snapshot: the other nodes replay their
/// recent writes to a node that joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_while_a_node_is_away_does_not_come_back() {
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let dir = TempDir::new("away");
    let mut common_args = etcd_args(&etcd, &origin, TTL);
    common_args.extend(args(&["--protocol", "mailgun", "--allow-writes"]));
    let ports = free_ports(2);
    let a = GcNode::start(ports[0], &common_args).await;
    let b = GcNode::start(ports[1], &common_args).await;
    let mut c_args = common_args.clone();
    c_args.extend(args(&["--snapshot", dir.join("c.snap").to_str().unwrap()]));
    let mut c = Restartable::new(&dir, &c_args);
    c.start().await;
    let mut everyone = vec![a.url.clone(), b.url.clone(), c.url.clone()];
    everyone.sort();
    await_peers(&[&a, &b], &everyone, true, PROMPTLY).await;
    await_peers(&[&c], &everyone, true, PROMPTLY).await;
    let ring = Ring::with_hashing(Protocol::Mailgun.hashing(), DEFAULT_REPLICAS, &everyone);
    // `ver/` keys answer "version N" on their Nth load.
    let key = key_owned_by(&ring, &c.url, "ver/public/away");
    let get = |node: &str| {
        let url = format!("{node}/cache/g/{}", esc(key.as_bytes()));
        async move { http_get(&url).await }
    };
    assert_eq!(&get(&a.url).await.body[..], b"version 1");
    assert_eq!(c.stop().await, Some(0));
    assert!(
        c.lines("snapshot written")[0].contains("values=1"),
        "{}",
        c.log()
    );

    let mut rest = vec![a.url.clone(), b.url.clone()];
    rest.sort();
    await_peers(&[&a, &b], &rest, true, PROMPTLY).await;
    let removed = http_send(
        "DELETE",
        &format!("{}/cache/g/{}", a.url, esc(key.as_bytes())),
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(removed.status, 200, "{:?}", removed.body);

    c.start().await;
    assert!(
        c.lines("snapshot restored")[0].contains("values=1"),
        "{}",
        c.log()
    );
    await_peers(&[&a, &b], &everyone, true, PROMPTLY).await;
    // A and B each replay the Remove to C once they see it join.
    eventually(
        Duration::from_secs(10),
        "the Remove replayed to C",
        || async { (stat(&c.stats().await, "g", "PeerRemoves") >= 1).then_some(()) },
    )
    .await;
    assert_eq!(
        &get(&c.url).await.body[..],
        b"version 2",
        "not the removed value"
    );
    assert_eq!(&get(&a.url).await.body[..], b"version 2");
    assert_eq!(origin.hits(key.as_bytes()), 2);
    assert_eq!(c.stop().await, Some(0));
}

/// A snapshot in format 1 (before values carried their stale windows) is
/// still read; a value's windows survive a restart in format 2, so a value
/// that may be served stale still is after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_snapshots_are_read_and_stale_windows_survive() {
    let origin = Origin::start().await;
    let dir = TempDir::new("formats");
    let path = dir.join("v1.snap");
    let mut v1 = b"GCSNAP".to_vec();
    v1.extend(1u16.to_le_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    v1.extend(now.to_le_bytes());
    v1.extend(1u32.to_le_bytes());
    v1.extend(1u32.to_le_bytes());
    v1.extend(b"g");
    v1.extend(0u32.to_le_bytes()); // group 0
    v1.extend(10u32.to_le_bytes());
    v1.extend(b"old-format");
    v1.extend(7u32.to_le_bytes());
    v1.extend(b"from v1");
    v1.extend(0i64.to_le_bytes()); // never expires
    v1.extend(u32::MAX.to_le_bytes());
    v1.extend([0; 4]);
    std::fs::write(&path, resealed(v1)).unwrap();
    let mut node = Restartable::new(&dir, &snapshot_args(&origin, &path));
    node.start().await;
    let reply = http_get(&format!("{}/cache/g/old-format", node.url)).await;
    assert_eq!((reply.status, &reply.body[..]), (200, &b"from v1"[..]));
    assert_eq!(origin.hits(b"old-format"), 0, "restored, not loaded");

    // Format 2 keeps a value's stale-if-error across the restart.
    let key = "ver/max-age=2,stale-if-error=600/kept";
    let url = |node: &Restartable| format!("{}/cache/g/{}", node.url, esc(key.as_bytes()));
    assert_eq!(http_get(&url(&node)).await.body, "version 1");
    assert_eq!(node.stop().await, Some(0));
    node.start().await;
    origin.set_state(OriginState::Closing);
    // Once it has expired, it is answered stale.
    eventually(Duration::from_secs(10), "the value to expire", || async {
        let reply = http_get(&url(&node)).await;
        assert_eq!((reply.status, &reply.body[..]), (200, &b"version 1"[..]));
        let status = reply.header("cache-status").unwrap_or_default().to_string();
        status.contains("stale-if-error").then_some(())
    })
    .await;
    assert_eq!(origin.hits(key.as_bytes()), 1);
    assert_eq!(node.stop().await, Some(0));
}
