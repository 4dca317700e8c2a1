//! Real processes under test: a child killed on drop, `groupcached` nodes
//! on handed-over ports, and the front end they share with Go nodes.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::http::{http_get, Reply};
use super::origin::{value_of, Origin};
use super::ports::{hand_over_copy, hand_over_ports};
use super::wait::wait_healthy;

/// `https` if `args` contain `flag` (a TLS certificate flag), else `http`.
pub(crate) fn scheme(args: &[String], flag: &str) -> &'static str {
    if args.iter().any(|a| a == flag) {
        "https"
    } else {
        "http"
    }
}

/// A child process killed (and reaped) on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, command: &mut Command) -> Proc {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            child,
            name: name.to_string(),
        }
    }

    /// Sends `signal` (e.g. "TERM", "KILL", "STOP") to the process with
    /// kill(2); panics if it cannot be delivered.
    pub fn signal(&self, signal: &str) {
        use nix::sys::signal::{kill, Signal};
        let signal: Signal = format!("SIG{signal}")
            .parse()
            .unwrap_or_else(|_| panic!("no signal SIG{signal}"));
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        kill(pid, signal).unwrap_or_else(|e| panic!("kill -{signal} {}: {e}", self.name));
    }

    /// SIGSTOP, and waits until every thread of the process has stopped.
    /// kill(2) returns once the signal is queued, and the stop reaches the
    /// other threads only when the thread that takes the signal runs: on a
    /// loaded machine another thread may meanwhile still answer a request.
    pub async fn stop(&self) {
        self.signal("STOP");
        let tasks = format!("/proc/{}/task", self.child.id());
        let stopped = || async {
            let threads = std::fs::read_dir(&tasks).ok()?;
            let states: Vec<Option<char>> = threads
                .map(|thread| {
                    let stat = std::fs::read_to_string(thread.ok()?.path().join("stat")).ok()?;
                    // `pid (comm) STATE ...`: the state follows the last `)`.
                    stat.rsplit_once(')')?.1.trim_start().chars().next()
                })
                .collect();
            states
                .iter()
                .all(|state| matches!(state, Some('T' | 't')))
                .then_some(())
        };
        let what = format!("every thread of {} stopped", self.name);
        super::eventually(Duration::from_secs(10), what, stopped).await;
    }

    /// Waits up to `timeout` for the process to exit; its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        wait_for_exit(&mut self.child, timeout).await
    }
}

/// Waits up to `timeout` for `child` to exit; its exit code (-1 if a
/// signal ended it), or `None` if it is still running.
pub async fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let exited = async {
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code().unwrap_or(-1);
            }
            // Poll interval; the loop waits for the exit.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(timeout, exited).await.ok()
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `groupcached` process.
pub struct GcNode {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub url: String,
}

impl GcNode {
    /// Starts the real binary on `port` (from [`free_ports`]) with extra
    /// `args`, and waits until it answers `/healthz`.
    /// The URL is `https://` when `args` contain `--tls-cert`.
    pub async fn start(port: u16, args: &[String]) -> GcNode {
        GcNode::start_on(&[port], args).await
    }

    /// [`GcNode::start`] with `--peer-listen` on `peer_port` (also from
    /// [`free_ports`]), handed over as the second socket.
    pub async fn start_with_peer_port(port: u16, peer_port: u16, args: &[String]) -> GcNode {
        let mut args = args.to_vec();
        args.extend([
            "--peer-listen".to_string(),
            format!("127.0.0.1:{peer_port}"),
        ]);
        GcNode::start_on(&[port, peer_port], &args).await
    }

    async fn start_on(ports: &[u16], args: &[String]) -> GcNode {
        let addr: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().unwrap();
        GcNode::spawn(addr, args, |command| hand_over_ports(command, ports)).await
    }

    /// [`GcNode::start`] on a listener the test bound itself, on any
    /// loopback address; the node takes it over as fd 3.
    pub async fn start_on_listener(listener: std::net::TcpListener, args: &[String]) -> GcNode {
        let addr = listener.local_addr().expect("the listener's address");
        // The test's own copy closes when `listener` drops, here.
        GcNode::spawn(addr, args, |command| hand_over_copy(command, &listener)).await
    }

    /// The node's resident set size, from `/proc/PID/status`.
    pub fn rss_bytes(&self) -> u64 {
        let path = format!("/proc/{}/status", self.proc.child.id());
        let status = std::fs::read_to_string(path).expect("/proc/PID/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .expect("VmRSS");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("VmRSS in kB");
        kib * 1024
    }

    /// Starts the binary at `addr` with `args`, its listener handed over
    /// by `hand_over`, and waits until it answers `/healthz`.
    async fn spawn(
        addr: SocketAddr,
        args: &[String],
        hand_over: impl FnOnce(&mut Command),
    ) -> GcNode {
        let mut command = Command::new(env!("CARGO_BIN_EXE_groupcached"));
        command.args(args);
        hand_over(&mut command);
        command.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
        );
        let proc = Proc::spawn(&format!("groupcached:{addr}"), &mut command);
        drop(command); // closes the test's copy of the listener
        let node = GcNode {
            proc,
            addr,
            url: format!("{}://{addr}", scheme(args, "--tls-cert")),
        };
        wait_healthy(&node.url).await;
        node
    }
}

/// The HTTP front end every test node has, groupcached or Go: the user and
/// peer APIs and `/stats` (the same JSON shape on both).
pub trait Frontend {
    fn url(&self) -> &str;

    async fn get(&self, path: &str) -> Reply {
        http_get(&format!("{}{}", self.url(), path)).await
    }

    /// `/stats` as JSON.
    async fn stats(&self) -> serde_json::Value {
        let reply = self.get("/stats").await;
        assert_eq!(reply.status, 200);
        serde_json::from_slice(&reply.body).expect("stats JSON")
    }
}

/// `groups.{group}.{path}` of a `/stats` reply as a number, where `path`
/// is a field (`LocalLoads`) or a dotted path (`MainCache.Items`); Go's
/// `/stats` and groupcached's share the shape.
pub fn stat(stats: &serde_json::Value, group: &str, path: &str) -> u64 {
    path.split('.')
        .fold(&stats["groups"][group], |value, field| &value[field])
        .as_u64()
        .unwrap_or_else(|| panic!("no {group}.{path} in {stats}"))
}

impl Frontend for GcNode {
    fn url(&self) -> &str {
        &self.url
    }
}

/// The loopback URL of each port.
pub fn peer_urls(ports: &[u16]) -> Vec<String> {
    ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect()
}

/// `--peers a,b,c` for the given ports.
pub fn peer_list(ports: &[u16]) -> String {
    peer_urls(ports).join(",")
}

/// Starts one groupcached node per port, all with the same peer list and
/// group `g` loading from `origin`, plus any `extra` args.
pub async fn start_cluster(ports: &[u16], origin: &Origin, extra: &[&str]) -> Vec<GcNode> {
    let peers = peer_list(ports);
    let mut nodes = Vec::new();
    for &port in ports {
        let mut args = vec![
            "--peers".to_string(),
            peers.clone(),
            "--group".to_string(),
            format!("g={}", origin.template()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        nodes.push(GcNode::start(port, &args).await);
    }
    nodes
}

/// Asserts that the node at `url` answers `key` of group `g` with the test
/// origin's value for it (use a key no earlier step loaded).
pub async fn still_serves(url: &str, key: &str) {
    let reply = http_get(&format!("{url}/cache/g/{key}")).await;
    assert_eq!(
        (reply.status, &reply.body[..]),
        (200, &value_of(key.as_bytes())[..]),
        "{url} no longer serves {key}"
    );
}

/// The last 40 lines of the log at `path`.
pub fn log_tail(path: &std::path::Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// What is awaited, and the tail of the log at the path, read when it is
/// displayed (a message for [`super::eventually`]).
pub struct Waiting<'a>(pub &'static str, pub &'a std::path::Path);

impl std::fmt::Display for Waiting<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n{}", self.0, log_tail(self.1))
    }
}

/// Runs the binary with `args` until it exits; its exit code and stderr.
pub fn run_binary(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_groupcached"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running groupcached");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// GETs `url`; anything but a 200 with the body `want` is added to
/// `failures`.
pub async fn get_expecting(url: &str, want: &[u8], failures: &std::sync::Mutex<Vec<String>>) {
    match super::try_get(url).await {
        Ok(reply) if reply.status == 200 && reply.body == want => {}
        Ok(reply) => failures
            .lock()
            .unwrap()
            .push(format!("{url}: {} {:?}", reply.status, reply.body)),
        Err(e) => failures.lock().unwrap().push(format!("{url}: {e}")),
    }
}

/// Reads through a pool while something goes wrong: 20 loops, each
/// GETting a key (`outage-N`, 300 keys) every 10 ms from the nodes in
/// turn, until `duration` has passed; every reply must be the origin's
/// value.
pub struct ReadLoad {
    loops: Vec<tokio::task::JoinHandle<()>>,
    gets: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    failures: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ReadLoad {
    pub fn start(nodes: std::sync::Arc<Vec<GcNode>>, duration: Duration) -> ReadLoad {
        use std::sync::atomic::Ordering::SeqCst;
        let until = std::time::Instant::now() + duration;
        let gets = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let failures = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let loops = (0..20)
            .map(|l| {
                let (nodes, gets, failures) = (nodes.clone(), gets.clone(), failures.clone());
                tokio::spawn(async move {
                    let mut i = l;
                    while std::time::Instant::now() < until {
                        let node = &nodes[i % nodes.len()];
                        let key = format!("outage-{}", (i * 7) % 300);
                        let url = format!("{}/cache/g/{key}", node.url);
                        get_expecting(&url, &value_of(key.as_bytes()), &failures).await;
                        gets.fetch_add(1, SeqCst);
                        i += 1;
                        // Paces each loop of GETs; `duration` is the wait.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
            .collect();
        ReadLoad {
            loops,
            gets,
            failures,
        }
    }

    /// Waits for the loops to end; asserts that no GET failed and that
    /// there were over 1,000.
    pub async fn finish_without_failures(self) {
        for handle in self.loops {
            handle.await.expect("a read loop");
        }
        let failures = self.failures.lock().unwrap().clone();
        let gets = self.gets.load(std::sync::atomic::Ordering::SeqCst);
        eprintln!("{gets} GETs under load");
        assert_eq!(failures, Vec::<String>::new(), "failed GETs under load");
        assert!(gets > 1000, "only {gets} GETs");
    }
}

/// Runs the binary with each case's flags (after `--listen 127.0.0.1:0
/// --group g=echo`), asserting it exits 2 with one line of stderr that
/// contains the case's message.
pub fn assert_bad_flags(cases: &[(&[&str], &str)]) {
    for &(args, message) in cases {
        let mut all = vec!["--listen", "127.0.0.1:0", "--group", "g=echo"];
        all.extend_from_slice(args);
        let (code, stderr) = run_binary(&all);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
