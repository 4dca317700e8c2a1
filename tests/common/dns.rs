//! A throwaway dnsmasq (Debian's `dnsmasq-base`) on a loopback port, in
//! the foreground, answering only from its own files: A records from a
//! hosts file (`--addn-hosts`) that [`Dnsmasq::set_hosts`] rewrites and
//! reloads with SIGHUP, and SRV and TXT records from a configuration file
//! that dnsmasq reads only at start, so [`Dnsmasq::set_conf`] restarts it
//! on the same port. Names under `test.` that it has no record for get
//! NXDOMAIN (`--local=/test/`). It is killed and its files removed when
//! its handle drops; a panicking test also prints the end of its log.
//!
//! dnsmasq binds its port itself and cannot take a socket handed over, so
//! the port is one found free just before; a start that finds it taken
//! (dnsmasq exits) is retried on another. A restart binds the same port
//! again, as a restarted DNS server would.
//!
//! Also the helpers DNS tests share: listeners on one port of several
//! loopback addresses, and nodes started with `--peers-dns`/`--peers-srv`.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{eventually, log_tail, GcNode, Origin, Proc, Waiting};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";
/// The TTL of every answer: long, so `--dns-interval` decides how often
/// nodes ask.
const TTL_SECONDS: u32 = 60;

/// A running (or stopped) dnsmasq that keeps its port and files across
/// [`Dnsmasq::stop`] and [`Dnsmasq::start`].
pub struct Dnsmasq {
    port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl Dnsmasq {
    /// Starts dnsmasq answering from `hosts` (lines of `IP NAME`) and
    /// `conf` (dnsmasq options such as `srv-host=...`, one a line).
    pub async fn start_new(hosts: &str, conf: &str) -> Dnsmasq {
        assert!(
            Path::new(DNSMASQ).is_file(),
            "{DNSMASQ} is missing: run scripts/deps (scripts/test does)"
        );
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "groupcached-dnsmasq-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating dnsmasq's temporary directory");
        let mut dnsmasq = Dnsmasq {
            port: 0,
            dir,
            proc: None,
        };
        std::fs::write(dnsmasq.hosts_path(), hosts).expect("writing the hosts file");
        std::fs::write(dnsmasq.conf_path(), conf).expect("writing dnsmasq.conf");
        for _ in 0..20 {
            dnsmasq.port = free_udp_and_tcp_port();
            if dnsmasq.try_start().await {
                return dnsmasq;
            }
        }
        panic!("dnsmasq found no free port:\n{}", dnsmasq.log_tail());
    }

    /// `127.0.0.1:PORT`, as `--dns-server` takes it.
    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn hosts_path(&self) -> PathBuf {
        self.dir.join("hosts")
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.join("dnsmasq.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("dnsmasq.log")
    }

    /// How many times dnsmasq has read the hosts file.
    fn hosts_reads(&self) -> usize {
        let read = format!("read {}", self.hosts_path().display());
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .matches(&read)
            .count()
    }

    /// Starts dnsmasq (again, on the same port) and waits until it has
    /// read its hosts file; panics if it exits, unless because the port
    /// was taken: then `false`.
    pub async fn start(&mut self) {
        assert!(self.try_start().await, "port {} was taken", self.port);
    }

    async fn try_start(&mut self) -> bool {
        assert!(self.proc.is_none(), "dnsmasq is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening dnsmasq.log");
        let reads_before = self.hosts_reads();
        let mut command = Command::new(DNSMASQ);
        command
            .arg("--keep-in-foreground")
            .arg(format!("--port={}", self.port))
            .args(["--listen-address=127.0.0.1", "--bind-interfaces"])
            // Only its own files: no /etc/resolv.conf, no /etc/hosts, no
            // upstream server, no /etc/dnsmasq.conf.
            .args(["--no-resolv", "--no-hosts", "--local=/test/"])
            .arg(format!("--addn-hosts={}", self.hosts_path().display()))
            .arg(format!("--conf-file={}", self.conf_path().display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.join("dnsmasq.pid").display()
            ))
            .arg(format!("--local-ttl={TTL_SECONDS}"))
            .args(["--log-queries", "--log-facility=-"])
            .stdout(log.try_clone().expect("a second handle on dnsmasq.log"))
            .stderr(log);
        let mut proc = Proc::spawn("dnsmasq", &mut command);
        let exited = eventually(
            Duration::from_secs(10),
            Waiting("dnsmasq serving", &self.log_path()),
            || {
                let exited = proc.child.try_wait().ok().flatten();
                let read = self.hosts_reads() > reads_before;
                async move {
                    match exited {
                        Some(_) => Some(true),
                        None if read => Some(false),
                        None => None,
                    }
                }
            },
        )
        .await;
        if exited {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            assert!(
                log.contains("Address already in use"),
                "dnsmasq exited:\n{}",
                self.log_tail()
            );
            return false;
        }
        self.proc = Some(proc);
        true
    }

    /// SIGTERM, then waits for dnsmasq to exit (SIGKILL after 10 s).
    pub async fn stop(&mut self) {
        let Some(mut proc) = self.proc.take() else {
            return;
        };
        proc.signal("TERM");
        proc.wait_exit(Duration::from_secs(10)).await;
        // Dropping `proc` kills it if it is still running, and reaps it.
    }

    /// Replaces the hosts file with `hosts` and has dnsmasq read it again
    /// (SIGHUP); returns once it has.
    pub async fn set_hosts(&self, hosts: &str) {
        let proc = self.proc.as_ref().expect("dnsmasq is not running");
        let reads_before = self.hosts_reads();
        std::fs::write(self.hosts_path(), hosts).expect("writing the hosts file");
        proc.signal("HUP");
        eventually(
            Duration::from_secs(10),
            Waiting("dnsmasq rereading its hosts", &self.log_path()),
            || {
                let read = self.hosts_reads() > reads_before;
                async move { read.then_some(()) }
            },
        )
        .await;
    }

    /// Replaces the configuration (SRV and TXT records) with `conf`:
    /// dnsmasq reads it only at start, so it is restarted on its port.
    pub async fn set_conf(&mut self, conf: &str) {
        self.stop().await;
        std::fs::write(self.conf_path(), conf).expect("writing dnsmasq.conf");
        self.start().await;
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log_path())
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- end of dnsmasq.log ({}) ---\n{}",
                self.server(),
                self.log_tail()
            );
        }
        drop(self.proc.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port free for both UDP and TCP right now.
fn free_udp_and_tcp_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
        let port = udp.local_addr().expect("its address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A hosts file giving `name` each of `ips`.
pub fn hosts_file(name: &str, ips: &[&str]) -> String {
    ips.iter().map(|ip| format!("{ip} {name}\n")).collect()
}

/// Listeners on one port of each of `ips` (loopback addresses such as
/// 127.0.0.2: Linux routes all of 127/8 to the loopback interface), for
/// nodes that DNS gives by address alone.
pub fn same_port_on(ips: &[&str]) -> (u16, Vec<TcpListener>) {
    for _ in 0..100 {
        let first = TcpListener::bind((ips[0], 0)).expect("bind a free port");
        let port = first.local_addr().expect("its address").port();
        let rest: Result<Vec<TcpListener>, _> = ips[1..]
            .iter()
            .map(|ip| TcpListener::bind((*ip, port)))
            .collect();
        if let Ok(rest) = rest {
            return (port, std::iter::once(first).chain(rest).collect());
        }
    }
    panic!("no port free on all of {ips:?}");
}

/// `FLAG QUERY --dns-server SERVER --dns-interval INTERVAL --group
/// g=ORIGIN`, where FLAG is `--peers-dns` or `--peers-srv`.
pub fn dns_args(
    flag: &str,
    query: &str,
    dnsmasq: &Dnsmasq,
    interval: Duration,
    origin: &Origin,
) -> Vec<String> {
    vec![
        flag.into(),
        query.into(),
        "--dns-server".into(),
        dnsmasq.server(),
        "--dns-interval".into(),
        format!("{}ms", interval.as_millis()),
        "--group".into(),
        format!("g={}", origin.template()),
    ]
}

/// One node per listener, each with `args`.
pub async fn start_nodes_on(listeners: Vec<TcpListener>, args: &[String]) -> Vec<GcNode> {
    let mut nodes = Vec::new();
    for listener in listeners {
        nodes.push(GcNode::start_on_listener(listener, args).await);
    }
    nodes
}
