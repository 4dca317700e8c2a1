//! A throwaway single-member etcd (Debian's `/usr/bin/etcd`) on loopback
//! with its own temporary directory, and `scripts/etcd-register` runs. etcd
//! binds port 0 and the harness reads the port it got from etcd's log; a
//! restart binds that same client port again, as a restarted etcd would. Both are stopped and cleaned up when their handles drop, also when
//! a test panics; a panicking test also prints the end of etcd's log. Also
//! the helpers etcd tests share: starting groupcached nodes with `--etcd`,
//! reading and awaiting any node's `/peers`, and the keys in etcd.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{
    esc, eventually, log_tail, try_get, until_ok, value_of, wait_for_exit, Frontend, GcNode,
    Origin, Proc, Waiting,
};

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "etcdctl";
/// What etcd's `/health` says once it has a leader.
const HEALTHY: &str = r#""health":"true""#;

/// What etcd logs once it serves clients, followed by `127.0.0.1:PORT`.
const SERVING: &str = "serving insecure client requests on ";

/// A running (or stopped) etcd that keeps its client port and data
/// directory across [`Etcd::stop`] and [`Etcd::start`].
pub struct Etcd {
    /// 0 until the first start has bound one.
    client_port: u16,
    /// Holds `data/` (etcd's `--data-dir`) and `etcd.log`.
    dir: PathBuf,
    proc: Option<Proc>,
}

impl Etcd {
    /// Starts a fresh etcd and waits until it answers.
    pub async fn start_new() -> Etcd {
        assert!(
            std::path::Path::new(ETCD).is_file(),
            "{ETCD} is missing: run scripts/deps (scripts/test does)"
        );
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "groupcached-etcd-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating etcd's temporary directory");
        let mut etcd = Etcd {
            client_port: 0,
            dir,
            proc: None,
        };
        etcd.start().await;
        etcd
    }

    /// The client URL, as `--etcd` takes it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// Starts etcd (again, on the same client port) and waits until
    /// `/health` says it has a leader.
    pub async fn start(&mut self) {
        assert!(self.proc.is_none(), "etcd is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening etcd.log");
        let logged_before = log.metadata().map_or(0, |m| m.len() as usize);
        // The peer URL is only advertised, never dialled: one member.
        let advertised_peer = "http://127.0.0.1:2380";
        let mut command = Command::new(ETCD);
        command
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen-client-urls")
            .arg(self.endpoint())
            .arg("--advertise-client-urls")
            .arg(self.endpoint())
            .args(["--listen-peer-urls", "http://127.0.0.1:0"])
            .args(["--initial-advertise-peer-urls", advertised_peer])
            .arg("--initial-cluster")
            .arg(format!("default={advertised_peer}"))
            // A single member elects itself; no need to wait a whole second.
            .args(["--heartbeat-interval", "50", "--election-timeout", "250"])
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut proc = Proc::spawn("etcd", &mut command);
        let within = Duration::from_secs(15);
        let log_path = self.log_path();
        let tail = Waiting("", &log_path);
        self.client_port = eventually(within, Waiting("etcd serving", &log_path), || {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!("etcd exited with {status}:\n{tail}");
            }
            let port = log.get(logged_before..).and_then(|new| {
                let at = new.find(SERVING)? + SERVING.len();
                let addr = new[at..].split([',', ' ', '\n']).next()?;
                addr.rsplit(':').next()?.parse().ok()
            });
            async move { port }
        })
        .await;
        let health = format!("{}/health", self.endpoint());
        eventually(within, Waiting("etcd healthy", &log_path), || {
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!("etcd exited with {status}:\n{tail}");
            }
            async {
                let reply = try_get(&health).await.ok()?;
                (reply.status == 200 && String::from_utf8_lossy(&reply.body).contains(HEALTHY))
                    .then_some(())
            }
        })
        .await;
        self.proc = Some(proc);
    }

    /// SIGTERM, then waits for etcd to exit (SIGKILL after 10 s).
    pub async fn stop(&mut self) {
        let Some(mut proc) = self.proc.take() else {
            return;
        };
        proc.signal("TERM");
        proc.wait_exit(Duration::from_secs(10)).await;
        // Dropping `proc` kills it if it is still running, and reaps it.
    }

    /// SIGSTOP: etcd keeps its connections open but answers nothing, as a
    /// hung server or a silent network partition would.
    pub async fn freeze(&self) {
        self.proc
            .as_ref()
            .expect("etcd is not running")
            .stop()
            .await;
    }

    /// SIGCONT after [`Etcd::freeze`].
    pub fn thaw(&self) {
        self.proc
            .as_ref()
            .expect("etcd is not running")
            .signal("CONT");
    }

    /// Stops etcd and deletes its data: the next [`Etcd::start`] is a new,
    /// empty cluster on the same client port.
    pub async fn wipe(&mut self) {
        self.stop().await;
        std::fs::remove_dir_all(self.data_dir()).expect("deleting etcd's data directory");
    }

    /// `etcdctl get --prefix --keys-only PREFIX`: the keys under `prefix`.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let output = tokio::process::Command::new(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .args(["--command-timeout=2s", "get", "--prefix", "--keys-only"])
            .arg(prefix)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(10), output)
            .await
            .expect("etcdctl get took over 10 s")
            .expect("running etcdctl");
        assert!(
            output.status.success(),
            "etcdctl get failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The last 40 lines of etcd's log.
    fn log_tail(&self) -> String {
        log_tail(&self.log_path())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- end of etcd.log ({}) ---\n{}",
                self.endpoint(),
                self.log_tail()
            );
        }
        drop(self.proc.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `scripts/etcd-register URL ENDPOINT PREFIX TTL`: `URL` stays
/// registered until [`Registration::stop`] or drop. The script and the
/// `etcdctl` it starts share their own process group, so both end.
pub struct Registration {
    child: Child,
}

impl Registration {
    pub fn start(url: &str, etcd: &Etcd, prefix: &str, ttl_seconds: u64) -> Registration {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/etcd-register");
        let child = Command::new(script)
            .args([url, &etcd.endpoint(), prefix, &ttl_seconds.to_string()])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting scripts/etcd-register");
        Registration { child }
    }

    /// Sends `signal` to the script's whole process group.
    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .status();
    }

    /// SIGTERM: the script revokes its lease and exits. Waits up to 10 s.
    pub async fn stop(&mut self) {
        self.signal_group("TERM");
        wait_for_exit(&mut self.child, Duration::from_secs(10)).await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.signal_group("KILL");
        let _ = self.child.wait();
    }
}

/// The default `--etcd-prefix`.
pub const PREFIX: &str = "/groupcache/peers/";
/// The lease TTL most nodes here register with; short to keep tests fast.
pub const TTL: Duration = Duration::from_secs(3);
/// How soon every node must see a join or a graceful leave: generous for a
/// loaded machine, yet well under the 10 s lease TTL of the graceful-leave
/// tests, so a leave seen in time was not a lease running out.
pub const PROMPTLY: Duration = Duration::from_secs(5);

pub fn url_of(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The peer list every node must show: the URLs sorted as strings.
pub fn sorted_urls(ports: &[u16]) -> Vec<String> {
    let mut urls: Vec<String> = ports.iter().map(|&p| url_of(p)).collect();
    urls.sort();
    urls
}

/// The etcd keys nodes with these URLs register: `{PREFIX}{url}`.
pub fn keys_of(urls: &[String]) -> Vec<String> {
    urls.iter().map(|url| format!("{PREFIX}{url}")).collect()
}

/// The keys under [`PREFIX`] in etcd, sorted.
pub async fn registered(etcd: &Etcd) -> Vec<String> {
    let mut keys = etcd.keys(PREFIX).await;
    keys.sort();
    keys
}

/// Polls etcd until the keys under [`PREFIX`] are `want` (sorted); how long
/// that took. Panics with the keys last seen after `within`.
pub async fn await_registered(etcd: &Etcd, want: &[String], within: Duration) -> Duration {
    let start = Instant::now();
    let what = format!("keys {want:?} in etcd");
    until_ok(within, what, || async {
        let registered = registered(etcd).await;
        (registered == want)
            .then_some(())
            .ok_or_else(|| format!("{registered:?}"))
    })
    .await;
    start.elapsed()
}

/// `--etcd ENDPOINT --etcd-ttl TTL --group g=ORIGIN`. gopeer takes the same
/// arguments (Go's flag package reads `--flag` as `-flag`).
pub fn etcd_args(etcd: &Etcd, origin: &Origin, ttl: Duration) -> Vec<String> {
    vec![
        "--etcd".into(),
        etcd.endpoint(),
        "--etcd-ttl".into(),
        format!("{}s", ttl.as_secs()),
        "--group".into(),
        format!("g={}", origin.template()),
    ]
}

pub async fn start_nodes(ports: &[u16], etcd: &Etcd, origin: &Origin) -> Vec<GcNode> {
    let mut nodes = Vec::new();
    for &port in ports {
        nodes.push(GcNode::start(port, &etcd_args(etcd, origin, TTL)).await);
    }
    nodes
}

/// `GET /peers` as JSON.
pub async fn peers_of(node: &impl Frontend) -> Value {
    let reply = node.get("/peers").await;
    assert_eq!(reply.status, 200, "{}/peers", node.url());
    serde_json::from_slice(&reply.body).expect("/peers JSON")
}

pub fn peer_list_of(peers: &Value) -> Vec<String> {
    peers["peers"]
        .as_array()
        .unwrap_or_else(|| panic!("no peers list in {peers}"))
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// Polls every node's (groupcached's or gopeer's) `/peers` until each one's `peers` is `want` and
/// `etcd.connected` is `connected`; how long that took. Panics with every
/// node's last `/peers` after `within`.
pub async fn await_peers<N: Frontend>(
    nodes: &[&N],
    want: &[String],
    connected: bool,
    within: Duration,
) -> Duration {
    let what = format!("with connected={connected}");
    await_peers_where(nodes, want, &what, within, |p| {
        p["etcd"]["connected"] == connected
    })
    .await
}

/// Polls every node's `/peers` until each one's `peers` is `want` and
/// `holds` is true of it; how long that took. Panics with every node's
/// last `/peers` after `within`, naming `what` `holds` checks.
pub async fn await_peers_where<N: Frontend>(
    nodes: &[&N],
    want: &[String],
    what: &str,
    within: Duration,
    holds: impl Fn(&Value) -> bool,
) -> Duration {
    let start = Instant::now();
    let what = format!("every node showing peers {want:?} {what}");
    until_ok(within, what, || async {
        let mut seen = Vec::new();
        for node in nodes {
            seen.push(peers_of(*node).await);
        }
        let done = seen.iter().all(|p| peer_list_of(p) == want && holds(p));
        done.then_some(()).ok_or_else(|| {
            let all: Vec<String> = seen.iter().map(|p| p.to_string()).collect();
            format!("their /peers:\n{}", all.join("\n"))
        })
    })
    .await;
    start.elapsed()
}

/// GETs `key` through `node`, asserting the origin's value.
pub async fn get_ok(node: &impl Frontend, key: &str) {
    let reply = node.get(&format!("/cache/g/{}", esc(key.as_bytes()))).await;
    assert_eq!(
        (reply.status, &reply.body[..]),
        (200, &value_of(key.as_bytes())[..]),
        "GET {key} through {}",
        node.url()
    );
}
