//! Warm restarts (`--snapshot`): a node's caches survive a restart on the
//! same socket; a snapshot is read once, so a crash restarts cold and never
//! brings back an overwritten value; every kind of bad snapshot is logged
//! in one short line, consumed, and the node starts empty; the file is
//! never written through a symlink, leftovers of a dead writer are
//! removed, and two nodes cannot share a path; a key removed while a node
//! was away does not come back with its snapshot.

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

    fn spawn(&mut self) {
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
    }

    async fn start(&mut self) {
        self.spawn();
        wait_healthy(&self.url).await;
    }

    /// Starts the node expecting it to exit by itself; the exit code, or
    /// `None` (and the node killed) if it still runs after 10 s.
    async fn start_to_exit(&mut self) -> Option<i32> {
        self.spawn();
        let mut proc = self.proc.take().expect("just spawned");
        proc.wait_exit(Duration::from_secs(10)).await
    }

    /// SIGTERM; the exit code.
    async fn stop(&mut self) -> Option<i32> {
        let mut proc = self.proc.take().expect("a running node");
        proc.signal("TERM");
        proc.wait_exit(Duration::from_secs(20)).await
    }

    /// SIGKILL: a crash, nothing written.
    async fn kill(&mut self) {
        let mut proc = self.proc.take().expect("a running node");
        proc.signal("KILL");
        let code = proc.wait_exit(Duration::from_secs(20)).await;
        assert_eq!(code, Some(-1), "{} killed", self.url);
    }

    fn pid(&self) -> u32 {
        self.proc.as_ref().expect("a running node").child.id()
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

/// Now, in Unix nanoseconds, as a snapshot dates itself.
fn unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// A snapshot as a writer of `format` (1 or 2) would seal it, dated
/// `written_at`, declaring `groups`, holding `entries` (group index, key,
/// value) that never expire.
fn snapshot_file(
    format: u16,
    written_at: i64,
    groups: &[Vec<u8>],
    entries: &[(u32, &[u8], &[u8])],
) -> Vec<u8> {
    let len = |n: usize| u32::try_from(n).unwrap().to_le_bytes();
    let mut file = b"GCSNAP".to_vec();
    file.extend(format.to_le_bytes());
    file.extend(written_at.to_le_bytes());
    file.extend(len(groups.len()));
    for name in groups {
        file.extend(len(name.len()));
        file.extend(name);
    }
    for (group, key, value) in entries {
        file.extend(group.to_le_bytes());
        file.extend(len(key.len()));
        file.extend(*key);
        file.extend(len(value.len()));
        file.extend(*value);
        file.extend(0i64.to_le_bytes()); // never expires
        if format >= 2 {
            file.extend([0; 8]); // no stale windows of its own
        }
    }
    file.extend(u32::MAX.to_le_bytes());
    file.extend([0; 4]);
    resealed(file)
}

/// Starts a node of group `group` on a snapshot holding `contents` (none:
/// no file at all) `{case}.snap`: `expected` is logged in one line, and the
/// key `after-{case}` is loaded from the origin, not restored, so a file
/// may hold it to prove that none of its entries was used. The node, still
/// running.
async fn assert_refused(
    dir: &TempDir,
    origin: &Origin,
    case: &str,
    contents: Option<&[u8]>,
    group: &str,
    expected: &str,
) -> Restartable {
    let path = dir.join(&format!("{case}.snap"));
    if let Some(contents) = contents {
        std::fs::write(&path, contents).unwrap();
    }
    let mut args = snapshot_args(origin, &path);
    args[1] = format!("{group}={}", origin.template());
    let mut node = Restartable::new(dir, &args);
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
    node
}

/// Stops `node` cleanly while the directory `holding` its snapshot is
/// moved away, so the snapshot cannot be written (as on a full disk), and
/// moves the directory back.
async fn stop_failing_to_write(node: &mut Restartable, holding: &Path) {
    let away = holding.with_extension("away");
    std::fs::rename(holding, &away).unwrap();
    let code = node.stop().await;
    std::fs::rename(&away, holding).unwrap();
    assert_eq!(code, Some(0), "the exit stays clean");
    assert_eq!(
        node.lines("snapshot not written").len(),
        1,
        "{}",
        node.log()
    );
}

/// Every kind of bad snapshot is logged in one line, consumed, and the
/// node starts empty and serves; a snapshot that cannot be written is
/// logged and the exit is still clean; a directory that cannot hold one is
/// refused at start.
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
    let cases: [(&str, Option<Vec<u8>>, &str, &str); 8] = [
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
        (
            "other-groups",
            Some(bytes.clone()),
            "other",
            "holds none of this node's groups (it has g)",
        ),
    ];
    for (case, contents, group, expected) in cases {
        let mut node =
            assert_refused(&dir, &origin, case, contents.as_deref(), group, expected).await;
        // Read once, even when refused: a crash cannot bring it back.
        assert!(!dir.join(&format!("{case}.snap")).exists(), "{case}");
        assert_eq!(node.stop().await, Some(0), "{case}");
    }

    // A snapshot that cannot be written: logged, and the exit is clean.
    let holding = dir.join("holding");
    std::fs::create_dir(&holding).unwrap();
    let path = holding.join("cache.snap");
    let mut node = Restartable::new(&dir, &snapshot_args(&origin, &path));
    node.start().await;
    still_serves(&node.url, "unsaved").await;
    stop_failing_to_write(&mut node, &holding).await;
    assert!(!path.exists());

    // A directory that does not exist cannot take the lock: found at
    // start, not at the first stop.
    let nowhere = dir.join("no-such-directory/cache.snap");
    let mut node = Restartable::new(&dir, &snapshot_args(&origin, &nowhere));
    assert_eq!(node.start_to_exit().await, Some(2), "{}", node.log());
    let said = node.lines("--snapshot");
    assert_eq!(said.len(), 1, "{}", node.log());
    assert!(said[0].contains("No such file or directory"), "{said:?}");
}

/// A snapshot whose checksum is right but whose content is not valid all
/// through restores nothing, not even the entries before the bad one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_invalid_snapshot_restores_nothing() {
    let origin = Origin::start().await;
    let dir = TempDir::new("partly");
    let file = snapshot_file(
        2,
        unix_nanos(),
        &[b"g".to_vec()],
        &[
            (0, b"after-partly-invalid", b"from the snapshot"),
            (7, b"undeclared", b"of group 7"),
        ],
    );
    let mut node = assert_refused(
        &dir,
        &origin,
        "partly-invalid",
        Some(&file),
        "g",
        "snapshot is damaged: entry of an undeclared group",
    )
    .await;
    assert_eq!(node.stop().await, Some(0));
}

/// A snapshot dated beyond a minute in the future is refused (its age
/// would otherwise count as zero and pass any --snapshot-max-age); one a
/// few seconds ahead, as clocks differ, is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_dated_in_the_future_is_refused() {
    let origin = Origin::start().await;
    let dir = TempDir::new("future");
    let hour = 3_600_000_000_000;
    let entry: (u32, &[u8], &[u8]) = (0, b"after-future", b"from the future");
    let file = snapshot_file(2, unix_nanos() + hour, &[b"g".to_vec()], &[entry]);
    let mut node = assert_refused(&dir, &origin, "future", Some(&file), "g", "in the future").await;
    assert_eq!(node.stop().await, Some(0));

    let path = dir.join("skewed.snap");
    let skew = 10_000_000_000;
    let entry: (u32, &[u8], &[u8]) = (0, b"skewed", b"from a clock ahead");
    let file = snapshot_file(2, unix_nanos() + skew, &[b"g".to_vec()], &[entry]);
    std::fs::write(&path, file).unwrap();
    let mut node = Restartable::new(&dir, &snapshot_args(&origin, &path));
    node.start().await;
    let reply = http_get(&format!("{}/cache/g/skewed", node.url)).await;
    assert_eq!(&reply.body[..], b"from a clock ahead", "{}", node.log());
    assert_eq!(node.stop().await, Some(0));
}

/// An error about a snapshot declaring 100,000 group names (one of them
/// 60 KB long, one holding a newline) is one short line: a few names, each
/// cut short and escaped, and how many more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_naming_many_groups_stays_one_short_line() {
    let origin = Origin::start().await;
    let dir = TempDir::new("names");
    let mut names = vec![vec![b'x'; 60_000], b"two\nlines".to_vec()];
    names.extend((2..100_000).map(|i| format!("group-{i}").into_bytes()));
    let file = snapshot_file(2, unix_nanos(), &names, &[]);
    let mut node = assert_refused(
        &dir,
        &origin,
        "names",
        Some(&file),
        "g",
        "holds none of this node's groups",
    )
    .await;
    let log = node.log();
    let said: Vec<&str> = log.lines().filter(|l| l.contains("holds none")).collect();
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 1_000, "a log line of {longest} bytes");
    assert!(said[0].contains(r"two\nlines"), "{said:?}");
    assert!(said[0].contains("and 99995 more"), "{said:?}");
    assert_eq!(node.stop().await, Some(0));
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
    let v1 = snapshot_file(
        1,
        unix_nanos(),
        &[b"g".to_vec()],
        &[(0, b"old-format", b"from v1")],
    );
    std::fs::write(&path, v1).unwrap();
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

/// The snapshot is never written through a symlink: neither the old
/// temporary name `FILE.tmp` nor this process's own `FILE.tmp.PID`, planted
/// as links to another file, makes the node overwrite that file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_never_writes_through_a_symlink() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let origin = Origin::start().await;
    let dir = TempDir::new("symlink");
    let path = dir.join("cache.snap");
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let untouched = || {
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode();
        (std::fs::read(&victim).unwrap(), mode & 0o777)
    };
    symlink(&victim, dir.join("cache.snap.tmp")).unwrap();
    let mut node = Restartable::new(&dir, &snapshot_args(&origin, &path));
    node.start().await;
    still_serves(&node.url, "planted").await;
    let own = dir.join(&format!("cache.snap.tmp.{}", node.pid()));
    symlink(&victim, &own).unwrap();
    assert_eq!(node.stop().await, Some(0));
    assert_eq!(untouched(), (b"precious".to_vec(), 0o644));
    assert_eq!(
        node.lines("snapshot not written").len(),
        1,
        "{}",
        node.log()
    );

    // Without a planted link, the snapshot is written, a file of its own.
    node.start().await;
    still_serves(&node.url, "planted").await;
    assert_eq!(node.stop().await, Some(0));
    assert_eq!(untouched(), (b"precious".to_vec(), 0o644));
    let written = std::fs::symlink_metadata(&path).unwrap();
    assert!(written.is_file(), "{written:?}");
    assert_eq!(written.permissions().mode() & 0o777, 0o600);
}

/// Temporary files a process killed while writing left behind (`FILE.tmp`
/// of older versions, `FILE.tmp.PID`) are removed at the next start;
/// files that merely look alike are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftover_temporary_files_are_removed_at_start() {
    let origin = Origin::start().await;
    let dir = TempDir::new("leftovers");
    let path = dir.join("cache.snap");
    let leftovers = [
        dir.join("cache.snap.tmp"),
        dir.join("cache.snap.tmp.4194303"),
    ];
    for leftover in &leftovers {
        std::fs::write(leftover, vec![0; 1 << 20]).unwrap();
    }
    let alike = dir.join("cache.snap.tmp.notes");
    std::fs::write(&alike, "kept").unwrap();
    let mut node = Restartable::new(&dir, &snapshot_args(&origin, &path));
    node.start().await;
    for leftover in &leftovers {
        assert!(!leftover.exists(), "{leftover:?} left after the start");
    }
    assert_eq!(std::fs::read_to_string(&alike).unwrap(), "kept");
    let said = node.lines("removed the temporary snapshot files");
    assert_eq!(said.len(), 1, "{}", node.log());
    assert!(said[0].contains("files=2"), "{said:?}");
    assert!(said[0].contains("bytes=2097152"), "{said:?}");
    assert_eq!(node.stop().await, Some(0));
}

/// A second node given the path another node uses exits 2 at start with
/// one line saying so, before it serves; once the first has stopped, its
/// snapshot is whole and the second node restores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_cannot_share_a_snapshot_path() {
    let origin = Origin::start().await;
    let dir = TempDir::new("shared");
    let path = dir.join("cache.snap");
    let mut first = Restartable::new(&dir, &snapshot_args(&origin, &path));
    first.start().await;
    still_serves(&first.url, "shared").await;
    let mut second = Restartable::new(&dir, &snapshot_args(&origin, &path));
    assert_eq!(second.start_to_exit().await, Some(2), "{}", second.log());
    let said = second.lines("another process uses this path");
    assert_eq!(said.len(), 1, "{}", second.log());
    assert!(said[0].starts_with("groupcached: --snapshot "), "{said:?}");
    // `--check` of the same flags leaves the running node's lock alone.
    let checked = std::process::Command::new(env!("CARGO_BIN_EXE_groupcached"))
        .args(snapshot_args(&origin, &path))
        .args(["--self", "http://127.0.0.1:1", "--check"])
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    assert_eq!(first.stop().await, Some(0));
    second.start().await;
    let restored = second.lines("snapshot restored");
    assert!(restored[0].contains("values=1"), "{}", second.log());
    still_serves(&second.url, "shared").await;
    assert_eq!(origin.hits(b"shared"), 1, "restored, not loaded");
    assert_eq!(second.stop().await, Some(0));
}

/// Waits until every node has every node in its peer list.
async fn all_up(nodes: &[Restartable], everyone: &[String]) {
    let nodes: Vec<&Restartable> = nodes.iter().collect();
    await_peers(&nodes, everyone, true, PROMPTLY).await;
}

/// `key` of group `g` read through each node in turn: the bodies.
async fn read_all(nodes: &[Restartable], key: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    for node in nodes {
        let url = format!("{}/cache/g/{key}", node.url);
        let reply = http_get(&url).await;
        assert_eq!(reply.status, 200, "{url}");
        bodies.push(String::from_utf8_lossy(&reply.body).into_owned());
    }
    bodies
}

/// How a node goes down without writing a snapshot.
#[derive(Debug, Clone, Copy)]
enum Crash {
    /// `kill -9`.
    Killed,
    /// A clean stop whose snapshot write fails.
    WriteFailed,
}

/// A three-node write pool on etcd, each node with its own `--snapshot`:
/// after a value is overwritten (200), going down without a snapshot
/// (`kill -9`, or a failed write) and starting again never brings back the
/// older value a clean restart had snapshotted: the nodes restart cold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_never_brings_back_an_overwritten_value() {
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let dir = TempDir::new("crash");
    let mut common = etcd_args(&etcd, &origin, TTL);
    common.extend(args(&["--protocol", "mailgun", "--allow-writes"]));
    let mut nodes = Vec::new();
    let mut holdings = Vec::new();
    for i in 0..3 {
        let holding = dir.join(&format!("node-{i}"));
        std::fs::create_dir(&holding).unwrap();
        let mut node_args = common.clone();
        let path = holding.join("cache.snap");
        node_args.extend(args(&["--snapshot", path.to_str().unwrap()]));
        nodes.push(Restartable::new(&dir, &node_args));
        holdings.push(holding);
    }
    let mut everyone: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    everyone.sort();
    for node in &mut nodes {
        node.start().await;
    }
    all_up(&nodes, &everyone).await;

    for crash in [Crash::Killed, Crash::WriteFailed] {
        let key = format!("overwritten-{crash:?}");
        let put = |node: &Restartable, value: &'static str| {
            let url = format!("{}/cache/g/{key}", node.url);
            async move {
                let reply = http_send("PUT", &url, value.into()).await.unwrap();
                assert_eq!(reply.status, 200, "PUT {value}: {:?}", reply.body);
            }
        };
        put(&nodes[0], "v1").await;
        // A clean restart: the owner writes v1 to its snapshot and reads
        // it back.
        for node in &mut nodes {
            assert_eq!(node.stop().await, Some(0));
        }
        for node in &mut nodes {
            node.start().await;
        }
        all_up(&nodes, &everyone).await;
        assert_eq!(
            read_all(&nodes, &key).await,
            ["v1", "v1", "v1"],
            "warm restart"
        );
        put(&nodes[1], "v2").await;
        assert_eq!(read_all(&nodes, &key).await, ["v2", "v2", "v2"]);

        for (node, holding) in nodes.iter_mut().zip(&holdings) {
            match crash {
                Crash::Killed => node.kill().await,
                Crash::WriteFailed => stop_failing_to_write(node, holding).await,
            }
        }
        for node in &mut nodes {
            node.start().await;
        }
        all_up(&nodes, &everyone).await;
        let cold = String::from_utf8(value_of(key.as_bytes())).unwrap();
        assert_eq!(
            read_all(&nodes, &key).await,
            [cold.as_str(); 3],
            "{crash:?}: loaded again, never v1"
        );
    }
    for node in &mut nodes {
        assert_eq!(node.stop().await, Some(0));
    }
}
