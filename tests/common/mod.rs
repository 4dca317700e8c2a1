//! Shared test support: start real `groupcached` processes on free loopback
//! ports, a counting HTTP origin, and a small HTTP GET helper. Every process
//! is killed when its handle drops, so a failing test leaves nothing behind.
//!
//! Ports are never bound, released and bound again (another test could take
//! one in between): [`free_ports`] binds listeners on port 0 and keeps them,
//! and starting a node hands its listener over to the child as fd 3 with
//! `LISTEN_FDS=1` (systemd socket activation), so the node serves on the
//! very socket the test bound.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Listeners bound by [`free_ports`] and not yet handed to a node.
static HELD: Mutex<Vec<StdListener>> = Mutex::new(Vec::new());

/// `n` loopback ports, each bound (to port 0) and held until a node started
/// on it takes the socket over.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut held = HELD.lock().unwrap();
    (0..n)
        .map(|_| {
            let listener = StdListener::bind("127.0.0.1:0").expect("bind a free port");
            let port = listener.local_addr().unwrap().port();
            held.push(listener);
            port
        })
        .collect()
}

/// A loopback port nothing listens on (connections are refused), for a
/// peer that is down: a socket bound to it but never listening, held for
/// the rest of the process so that no other test (or test run) takes it.
pub fn closed_port() -> u16 {
    use nix::sys::socket::{
        bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    use std::os::fd::AsRawFd;
    static CLOSED: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());
    let socket = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("a TCP socket");
    bind(socket.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind a free port");
    let bound: SockaddrIn = getsockname(socket.as_raw_fd()).expect("the bound address");
    CLOSED.lock().unwrap().push(socket);
    bound.port()
}

/// Makes `command` start with the listener [`free_ports`] bound for `port`
/// as fd 3 and `LISTEN_FDS=1`. The test's own copy closes when `command`
/// drops, so once the node exits its port refuses connections.
pub fn hand_over_port(command: &mut Command, port: u16) {
    hand_over_ports(command, &[port]);
}

/// [`hand_over_port`] for several ports: fds 3, 4, ... and `LISTEN_FDS=n`.
pub fn hand_over_ports(command: &mut Command, ports: &[u16]) {
    use command_fds::{CommandFdExt, FdMapping};
    let mut held = HELD.lock().unwrap();
    let mappings = ports
        .iter()
        .zip(3..)
        .map(|(&port, child_fd)| {
            let index = held
                .iter()
                .position(|l| l.local_addr().unwrap().port() == port)
                .unwrap_or_else(|| {
                    panic!("port {port} is not held: use free_ports, once per node")
                });
            FdMapping {
                parent_fd: OwnedFd::from(held.swap_remove(index)),
                child_fd,
            }
        })
        .collect();
    command
        .fd_mappings(mappings)
        .expect("fds from 3 on are free in the child");
    command
        .env("LISTEN_FDS", ports.len().to_string())
        .env_remove("LISTEN_PID");
}

/// `https` if `args` contain `flag` (a TLS certificate flag), else `http`.
fn scheme(args: &[String], flag: &str) -> &'static str {
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

    /// Waits up to `timeout` for the process to exit; its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        wait_for_exit(&mut self.child, timeout).await
    }
}

/// Waits up to `timeout` for `child` to exit; its exit code (-1 if a
/// signal ended it), or `None` if it is still running.
pub async fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status.code().unwrap_or(-1));
        }
        // Poll interval; the loop waits for the exit.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
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
        let port = ports[0];
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_groupcached"));
        command.args(args);
        hand_over_ports(&mut command, ports);
        command.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
        );
        let proc = Proc::spawn(&format!("groupcached:{port}"), &mut command);
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

impl Frontend for GcNode {
    fn url(&self) -> &str {
        &self.url
    }
}

/// Polls `condition` every 10 ms until it holds; panics after `within`.
pub async fn poll_until(within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "condition still false after {within:?}"
        );
        // Poll interval; the loop waits for `condition`.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `{url}/healthz` until it answers 200 (at most 10 s).
pub async fn wait_healthy(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(reply) = try_get(&format!("{url}/healthz")).await {
            if reply.status == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{url} never became healthy");
        // Poll interval; the loop waits for a 200.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An HTTP reply, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client for `http://` and `https://` URLs.
pub type TestClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The default test client: `https://` servers must have certificates from
/// [`tls::Pki::shared`], and it presents [`tls::Pki::shared_client`].
fn client() -> &'static TestClient {
    static CLIENT: std::sync::OnceLock<TestClient> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        let pki = tls::Pki::shared();
        https_client(pki.client_config(Some(tls::Pki::shared_client())))
    })
}

/// A client whose `https://` requests use `config`.
pub fn https_client(config: Arc<rustls::ClientConfig>) -> TestClient {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(Arc::unwrap_or_clone(config))
        .https_or_http()
        .enable_http1()
        .build();
    // A node closes a keep-alive connection that sends no request within
    // its header-read timeout (1 s in some tests); reusing one just as it
    // closes fails the request. Idle connections are reused only briefly.
    Client::builder(TokioExecutor::new())
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .pool_idle_timeout(Duration::from_millis(300))
        .build(connector)
}

/// GET `url`, panicking on transport errors.
pub async fn http_get(url: &str) -> Reply {
    try_get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// GET `url` with a 20 s deadline.
pub async fn try_get(url: &str) -> Result<Reply, String> {
    http_request("GET", url).await
}

/// Any method, no body, 20 s deadline.
pub async fn http_request(method: &str, url: &str) -> Result<Reply, String> {
    http_send(method, url, Bytes::new()).await
}

/// Any method with `body` (empty: none), 20 s deadline.
pub async fn http_send(method: &str, url: &str, body: Bytes) -> Result<Reply, String> {
    send_with(client(), method, url, body).await
}

/// [`http_request`] with `client`.
pub async fn request_with(client: &TestClient, method: &str, url: &str) -> Result<Reply, String> {
    send_with(client, method, url, Bytes::new()).await
}

/// [`http_send`] with `client`.
async fn send_with(
    client: &TestClient,
    method: &str,
    url: &str,
    body: Bytes,
) -> Result<Reply, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{e}"))?;
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let work = async {
        let response = client.request(request).await.map_err(|e| error_chain(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(Duration::from_secs(20), work)
        .await
        .map_err(|_| format!("{method} {url}: timed out"))?
}

/// "outer: inner: innermost".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Percent-encodes every byte outside `A-Za-z0-9-_.~`.
pub fn esc(bytes: &[u8]) -> String {
    groupcached::wire::escape(bytes)
}

/// The value the test origin serves for `key`: `value-of-` + key bytes.
pub fn value_of(key: &[u8]) -> Vec<u8> {
    let mut value = b"value-of-".to_vec();
    value.extend_from_slice(key);
    value
}

/// An in-process HTTP origin on a free port that counts requests per key.
///
/// `GET /v/{key}` (key percent-encoded) answers `value-of-{key}`; keys that
/// start with `missing` get 404, keys that start with `fail` get 500, keys
/// that start with `big` get 1 MiB of a repeating pattern, and keys that
/// start with `slow` are answered after one second.
#[derive(Clone)]
pub struct Origin {
    pub url: String,
    hits: Arc<Mutex<HashMap<Vec<u8>, usize>>>,
}

impl Origin {
    pub async fn start() -> Origin {
        Origin::start_with(None).await
    }

    /// An `https://` origin serving `identity`.
    pub async fn start_tls(pki: &tls::Pki, identity: &tls::Issued) -> Origin {
        Origin::start_with(Some(pki.acceptor(identity))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Origin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let origin = Origin {
            url,
            hits: Arc::default(),
        };
        let hits = origin.hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (hits, tls) = (hits.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let hits = hits.clone();
                        async move {
                            if request.uri().path().starts_with("/v/slow") {
                                // A deliberately slow origin (`slow` keys), to keep a load in flight.
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                            Ok::<_, Infallible>(serve_origin(&hits, request))
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        None => http.serve_connection(TokioIo::new(stream), service).await,
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => {
                                http.serve_connection(TokioIo::new(stream), service).await
                            }
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        origin
    }

    /// The `--group` origin template for this origin.
    pub fn template(&self) -> String {
        format!("{}/v/{{key}}", self.url)
    }

    pub fn hits(&self, key: &[u8]) -> usize {
        self.hits.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    pub fn total_hits(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }

    pub fn distinct_keys(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    /// Every key that was loaded more than once, with its count.
    pub fn repeated(&self) -> Vec<(Vec<u8>, usize)> {
        let hits = self.hits.lock().unwrap();
        hits.iter()
            .filter(|(_, &n)| n > 1)
            .map(|(k, &n)| (k.clone(), n))
            .collect()
    }
}

/// A 1 MiB value for keys starting with `big`.
pub fn big_value(key: &[u8]) -> Vec<u8> {
    let mut value: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    value[..key.len().min(64)].copy_from_slice(&key[..key.len().min(64)]);
    value
}

fn serve_origin(
    hits: &Mutex<HashMap<Vec<u8>, usize>>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
    };
    let Some(raw) = request.uri().path().strip_prefix("/v/") else {
        return reply(StatusCode::BAD_REQUEST, b"bad origin path".to_vec());
    };
    let Ok(key) = groupcached::wire::unescape(raw.as_bytes()) else {
        return reply(StatusCode::BAD_REQUEST, b"bad escape".to_vec());
    };
    let loads = {
        let mut hits = hits.lock().unwrap();
        let count = hits.entry(key.clone()).or_default();
        *count += 1;
        *count
    };
    if let Some(rest) = key.strip_prefix(b"ver/") {
        let mut response = reply(StatusCode::OK, format!("version {loads}").into_bytes());
        let cache_control = rest.split(|&b| b == b'/').next().unwrap_or_default();
        if !cache_control.is_empty() {
            let value = hyper::header::HeaderValue::from_bytes(cache_control).unwrap();
            response.headers_mut().insert("cache-control", value);
        }
        response
    } else if key.starts_with(b"missing") {
        reply(StatusCode::NOT_FOUND, b"no such key".to_vec())
    } else if key.starts_with(b"fail") {
        reply(StatusCode::INTERNAL_SERVER_ERROR, b"origin broke".to_vec())
    } else if key.starts_with(b"big") {
        reply(StatusCode::OK, big_value(&key))
    } else {
        reply(StatusCode::OK, value_of(&key))
    }
}

/// `--peers a,b,c` for the given ports.
pub fn peer_list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",")
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

/// The Go test peer built by `scripts/build-gopeer`; panics if it is missing.
pub fn gopeer_path() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/gopeer/gopeer");
    assert!(
        path.is_file(),
        "{} does not exist: run scripts/build-gopeer (scripts/test does) before these tests",
        path.display()
    );
    path
}

/// The fork test peer built by `scripts/build-gopeer`; panics if it is missing.
pub fn forkpeer_path() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/gopeer/forkpeer");
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

/// Runs `task(item)` for every item with at most `limit` in flight, each on
/// its own tokio task; the results in the order of `items`.
pub async fn bounded<T, F, Fut>(limit: usize, items: Vec<T>, task: F) -> Vec<Fut::Output>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(limit));
    let mut handles = Vec::with_capacity(items.len());
    for item in items {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let work = task(item);
        handles.push(tokio::spawn(async move {
            let output = work.await;
            drop(permit);
            output
        }));
    }
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("bounded task"));
    }
    outputs
}
pub mod etcd;
pub mod tls;
