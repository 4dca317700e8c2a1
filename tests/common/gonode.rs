//! Go groupcache nodes under test (`tests/gopeer`, `tests/forkpeer`) and
//! the Go rings' owners of keys, from the programs themselves.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::ports::hand_over_port;
use super::process::{scheme, Frontend, Proc};
use super::wait::wait_healthy;

/// The Go test peer built by `scripts/build-gopeer`; panics if it is missing.
pub fn gopeer_path() -> std::path::PathBuf {
    built_program("gopeer")
}

/// The fork test peer built by `scripts/build-gopeer`; panics if it is missing.
pub fn forkpeer_path() -> std::path::PathBuf {
    built_program("forkpeer")
}

fn built_program(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/gopeer")
        .join(name);
    assert!(
        path.is_file(),
        "{} does not exist: run scripts/build-gopeer (scripts/test does) before these tests",
        path.display()
    );
    path
}

/// A running Go groupcache node (`tests/gopeer` or `tests/forkpeer`), killed on drop.
pub struct GoNode {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub url: String,
    /// Kept open so the node never writes to a closed pipe.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl GoNode {
    /// Starts `gopeer ARGS...` on `port` (from [`free_ports`]), waits for its
    /// `listening on` line and then for `/healthz`. Unlike groupcached,
    /// gopeer does not add itself to `-peers`: pass the full list.
    pub async fn start(port: u16, args: &[String]) -> GoNode {
        GoNode::start_program(&gopeer_path(), port, args).await
    }

    /// Starts `forkpeer ARGS...` (a mailgun or groupcache-go node, by its
    /// `-dialect`) as [`GoNode::start`] starts gopeer.
    pub async fn start_fork(port: u16, args: &[String]) -> GoNode {
        GoNode::start_program(&forkpeer_path(), port, args).await
    }

    async fn start_program(program: &std::path::Path, port: u16, args: &[String]) -> GoNode {
        use std::io::BufRead;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut command = Command::new(program);
        command.args(args).stdout(Stdio::piped());
        hand_over_port(&mut command, port);
        let mut proc = Proc::spawn(&format!("gopeer:{port}"), &mut command);
        drop(command); // closes the test's copy of the listener
        let stdout = proc.child.stdout.take().expect("gopeer stdout");
        let read_line = tokio::task::spawn_blocking(move || {
            let mut reader = std::io::BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            (reader, line)
        });
        // On a timeout the blocking read ends when `proc` drops (kills the node).
        let (stdout, line) = tokio::time::timeout(Duration::from_secs(10), read_line)
            .await
            .unwrap_or_else(|_| panic!("gopeer:{port} printed nothing for 10 s"))
            .unwrap();
        assert!(
            line.starts_with("listening on"),
            "gopeer:{port} did not start (stdout: {line:?}; see its stderr above)"
        );
        let node = GoNode {
            proc,
            addr,
            url: format!("{}://{addr}", scheme(args, "-tls-cert")),
            _stdout: stdout,
        };
        wait_healthy(&node.url).await;
        node
    }
}

impl Frontend for GoNode {
    fn url(&self) -> &str {
        &self.url
    }
}

/// golang's `consistenthash` owner of each key, from `gopeer -ring`, for a
/// ring of `peers` (added in this order) with `replicas` points per peer.
pub fn go_ring_owners(peers: &[String], replicas: usize, keys: &[Vec<u8>]) -> Vec<String> {
    ring_owners(Command::new(gopeer_path()), peers, replicas, keys)
}

/// The fork's owner of each key, from `forkpeer -ring -dialect DIALECT`.
pub fn fork_ring_owners(
    dialect: &str,
    peers: &[String],
    replicas: usize,
    keys: &[Vec<u8>],
) -> Vec<String> {
    let mut command = Command::new(forkpeer_path());
    command.arg("-dialect").arg(dialect);
    ring_owners(command, peers, replicas, keys)
}

fn ring_owners(
    mut command: Command,
    peers: &[String],
    replicas: usize,
    keys: &[Vec<u8>],
) -> Vec<String> {
    use std::io::{Read, Write};
    command
        .arg("-ring")
        .arg("-peers")
        .arg(peers.join(","))
        .arg("-replicas")
        .arg(replicas.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("starting gopeer -ring: {e}"));
    let mut proc = Proc {
        child,
        name: "ring owners".into(),
    };
    let mut input = String::with_capacity(keys.len() * 20);
    for key in keys {
        for byte in key {
            input.push_str(&format!("{byte:02x}"));
        }
        input.push('\n');
    }
    let mut stdin = proc.child.stdin.take().unwrap();
    // Written from another thread so a full stdout pipe cannot deadlock us.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut output = String::new();
    proc.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    writer
        .join()
        .unwrap()
        .expect("writing keys to gopeer -ring");
    let status = proc.child.wait().unwrap();
    assert!(status.success(), "gopeer -ring failed: {status}");
    let owners: Vec<String> = output.lines().map(str::to_string).collect();
    assert_eq!(owners.len(), keys.len(), "gopeer -ring: one owner per key");
    owners
}

/// GETs 80 keys (`mixed-N`) through each of `nodes` in a pool of
/// `everyone` (sorted, the Go node `go` among them): each key is loaded
/// once, and the Go node, which owns at least five, served and loaded
/// exactly its own.
pub async fn go_keys_are_loaded_once_by_go(
    nodes: &[super::GcNode],
    go: &GoNode,
    everyone: &[String],
    origin: &super::Origin,
) {
    use super::Frontend;
    let ring = groupcached::consistenthash::Ring::new(
        groupcached::consistenthash::DEFAULT_REPLICAS,
        everyone,
    );
    let keys: Vec<String> = (0..80).map(|i| format!("mixed-{i}")).collect();
    let go_keys = keys
        .iter()
        .filter(|k| ring.get(k.as_bytes()) == Some(go.url.as_str()))
        .count() as u64;
    assert!(go_keys >= 5, "only {go_keys} keys owned by Go");
    for key in &keys {
        for node in nodes {
            super::etcd::get_ok(node, key).await;
        }
    }
    for key in &keys {
        assert_eq!(origin.hits(key.as_bytes()), 1, "origin loads of {key}");
    }
    let stats = go.stats().await;
    let served = super::stat(&stats, "g", "ServerRequests");
    assert!(served >= go_keys, "Go node served {served}: {stats}");
    let loaded = super::stat(&stats, "g", "LocalLoads");
    assert_eq!(loaded, go_keys, "Go node's origin loads: {stats}");
}
