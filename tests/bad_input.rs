//! The bad-input matrix: what a careless operator or an attacker can send a
//! node — malformed requests on the user and peer APIs, raw HTTP that
//! breaks the rules, hostile origins and hostile peers (small loopback
//! servers here), bad etcd values and bad flags. Every case asserts the
//! exact status or exit code, and every test then checks that the node
//! still serves correct values.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::*;
use groupcached::consistenthash::{Ring, DEFAULT_REPLICAS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Writes `request` on a fresh connection, shuts down the write side when
/// `half_close`, and reads until the server closes (at most 10 s).
async fn exchange(addr: SocketAddr, request: &[u8], half_close: bool) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may close before reading everything (a 431, say).
    let _ = stream.write_all(request).await;
    if half_close {
        stream.shutdown().await.expect("shutdown(SHUT_WR)");
    }
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply));
    let _ = read.await;
    reply
}

/// The status code of a raw HTTP/1.x reply (0 if there is none).
fn status_of(reply: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(reply);
    text.strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// The body of a raw reply: everything after the blank line.
fn body_of(reply: &[u8]) -> &[u8] {
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(reply.len(), |i| i + 4);
    &reply[end..]
}

/// A request (method, path) and the status and body it must get.
type Case = (&'static str, &'static str, u16, &'static [u8]);

async fn assert_answers(node: &GcNode, cases: &[Case]) {
    for &(method, path, status, body) in cases {
        let reply = http_request(method, &format!("{}{path}", node.url))
            .await
            .unwrap();
        assert_eq!(
            (reply.status, &reply.body[..]),
            (status, body),
            "{method} {path}"
        );
    }
}

/// A single node with group `g` (the counting origin) and group `e` (echo).
async fn one_node(origin: &Origin, extra: &[&str]) -> GcNode {
    let mut args = vec![
        "--group".to_string(),
        format!("g={}", origin.template()),
        "--group".to_string(),
        "e=echo".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    GcNode::start(free_ports(1)[0], &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_api_refuses_bad_requests_with_exact_statuses() {
    let origin = Origin::start().await;
    let node = one_node(&origin, &[]).await;
    let cases: &[Case] = &[
        ("GET", "/cache/g", 400, b"bad request\n"),
        ("GET", "/cache/nosuch/k", 404, b"no such group: nosuch\n"),
        ("GET", "/cache/g/%zz", 400, b"bad request\n"),
        (
            "GET",
            "/cache/g/missing-u",
            404,
            b"origin returned 404 Not Found\n",
        ),
        (
            "GET",
            "/cache/g/fail-u",
            502,
            b"origin returned 500 Internal Server Error\n",
        ),
        ("GET", "/nowhere", 404, b"not found\n"),
        ("GET", "/cache/e/%FF%00%2F", 200, b"\xff\x00/"),
    ];
    assert_answers(&node, cases).await;
    // A wrong method is a 405 that says which methods are allowed.
    for (method, path) in [
        ("POST", "/cache/g/k"),
        ("DELETE", "/stats"),
        ("PUT", "/healthz"),
    ] {
        let reply = http_request(method, &format!("{}{path}", node.url))
            .await
            .unwrap();
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method} {path}");
    }
    still_serves(&node.url, "after-user-api").await;
    assert_eq!(origin.hits(b"after-user-api"), 1);
}

/// Raw HTTP/1.x that a library client would never send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_http_that_breaks_the_rules() {
    let origin = Origin::start().await;
    // golang's exact peer replies: no minute_qps.
    let node = one_node(&origin, &["--hot-policy", "golang"]).await;
    let addr = node.addr;

    // HTTP/1.1 needs Host (Go: 400); HTTP/1.0 does not.
    let reply = exchange(
        addr,
        b"GET /cache/e/k HTTP/1.1\r\nConnection: close\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(
        status_of(&reply),
        400,
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(
        body_of(&reply),
        b"400 Bad Request: missing required Host header"
    );
    let reply = exchange(
        addr,
        b"GET /_groupcache/e/k HTTP/1.1\r\nConnection: close\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(status_of(&reply), 400);
    let reply = exchange(addr, b"GET /cache/e/k10 HTTP/1.0\r\n\r\n", false).await;
    assert_eq!((status_of(&reply), body_of(&reply)), (200, &b"k10"[..]));

    // A client that half-closes after its request gets the reply,
    // on both APIs.
    let reply = exchange(addr, b"GET /cache/g/half HTTP/1.1\r\nHost: x\r\n\r\n", true).await;
    assert_eq!(
        (status_of(&reply), body_of(&reply)),
        (200, &value_of(b"half")[..]),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let reply = exchange(
        addr,
        b"GET /_groupcache/g/half HTTP/1.1\r\nHost: x\r\n\r\n",
        true,
    )
    .await;
    assert_eq!(
        status_of(&reply),
        200,
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(body_of(&reply), b"\x0a\x0dvalue-of-half");

    // Not HTTP at all, a bad Content-Length, a header section far over
    // hyper's buffer limit.
    let reply = exchange(addr, b"HELLO THERE\r\n\r\n", false).await;
    assert_eq!(status_of(&reply), 400);
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n";
    assert_eq!(status_of(&exchange(addr, request, false).await), 400);
    let mut request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    request.resize(request.len() + (1 << 20), b'a');
    request.extend_from_slice(b"\r\n\r\n");
    assert_eq!(status_of(&exchange(addr, &request, false).await), 431);

    still_serves(&node.url, "after-raw").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_api_refuses_bad_requests_like_golang() {
    let origin = Origin::start().await;
    // golang's exact peer replies: no minute_qps.
    let node = one_node(&origin, &["--hot-policy", "golang"]).await;
    let cases: &[Case] = &[
        ("GET", "/_groupcache/g", 400, b"bad request\n"),
        ("GET", "/_groupcache/", 400, b"bad request\n"),
        (
            "GET",
            "/_groupcache/nosuch/k",
            404,
            b"no such group: nosuch\n",
        ),
        ("GET", "/_groupcache/g/%zz", 400, b"400 Bad Request"),
        ("GET", "/_groupcache/g/%", 400, b"400 Bad Request"),
        (
            "GET",
            "/_groupcache/g/fail-p",
            500,
            b"origin returned 500 Internal Server Error\n",
        ),
        // Any method is a get, as in golang.
        ("PUT", "/_groupcache/e/put", 200, b"\x0a\x03put"),
        ("DELETE", "/_groupcache/e/del", 200, b"\x0a\x03del"),
    ];
    assert_answers(&node, cases).await;
    let reply = node.get("/_groupcache/g/after-peer-api").await;
    assert_eq!(&reply.body[..], b"\x0a\x17value-of-after-peer-api");
    still_serves(&node.url, "after-peer-api").await;
    assert_eq!(origin.hits(b"after-peer-api"), 1);
}

/// What a hostile server does with a request.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Writes these bytes and closes.
    Reply(&'static [u8]),
    /// Closes without a word.
    Close,
    /// Holds the connection open and says nothing.
    Hang,
}

/// A loopback server that reads each request's head and does what `act`
/// says for its path. It lives until the test's runtime ends.
async fn hostile_server(act: fn(&str) -> Act) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("").to_string();
                match act(&path) {
                    Act::Reply(bytes) => {
                        let _ = stream.write_all(bytes).await;
                        let _ = stream.shutdown().await;
                    }
                    Act::Close => {}
                    Act::Hang => {
                        std::future::pending::<()>().await;
                        drop(stream);
                    }
                }
            });
        }
    });
    addr
}

fn hostile_origin(path: &str) -> Act {
    let key = path.rsplit('/').next().unwrap_or("");
    match key {
        "ok" => Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        "close" => Act::Close,
        "hang" => Act::Hang,
        "garbage" => Act::Reply(b"NOT HTTP AT ALL\r\n\r\n"),
        "short" => Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly5"),
        "badchunk" => Act::Reply(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        ),
        "redirect" => Act::Reply(
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n",
        ),
        "teapot" => Act::Reply(b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n"),
        "gone" => Act::Reply(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        "badlength" => Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nx"),
        _ => Act::Reply(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_origins_are_load_errors_not_wrong_values() {
    let origin = Origin::start().await;
    let hostile = hostile_server(hostile_origin).await;
    let node = GcNode::start(
        free_ports(1)[0],
        &[
            "--group".into(),
            format!("g={}", origin.template()),
            "--group".into(),
            format!("h=http://{hostile}/{{key}}"),
            "--origin-timeout".into(),
            "1s".into(),
        ],
    )
    .await;
    let cases: &[(&str, u16, &str)] = &[
        ("ok", 200, "ok"),
        ("gone", 404, "origin returned 404 Not Found\n"),
        ("teapot", 502, "origin returned 418 I'm a teapot\n"),
        ("redirect", 502, "origin returned 301 Moved Permanently\n"),
        ("close", 502, "origin request failed"),
        ("garbage", 502, "origin request failed"),
        ("short", 502, "origin request failed"),
        ("badchunk", 502, "origin request failed"),
        ("badlength", 502, "origin request failed"),
        ("hang", 502, "origin request failed"),
    ];
    for &(key, status, body) in cases {
        let reply = node.get(&format!("/cache/h/{key}")).await;
        let text = String::from_utf8_lossy(&reply.body);
        assert_eq!(reply.status, status, "{key}: {text}");
        assert!(text.starts_with(body), "{key}: {text}");
    }
    // Nothing hostile was cached: a bad reply is never a value.
    let stats = node.stats().await;
    assert_eq!(stats["groups"]["h"]["MainCache"]["Items"], 1, "{stats}");
    still_serves(&node.url, "after-hostile-origins").await;
}

fn hostile_peer(path: &str) -> Act {
    let key = path.rsplit('/').next().unwrap_or("");
    let behaviour = key.split('-').next().unwrap_or("");
    match behaviour {
        "junk" => Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n\xff\xff\xff"),
        "truncated" => Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n\x0a\x64short"),
        "wiretype" => Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n\x08\x05"),
        "hugelen" => {
            Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n\x0a\xff\xff\xff\xff\x0fab")
        }
        "html" => Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n<html></html>"),
        "status" => Act::Reply(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"),
        "close" => Act::Close,
        "hang" => Act::Hang,
        _ => Act::Reply(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"),
    }
}

/// A peer that answers with junk, lies about lengths, errs, closes or
/// hangs: the requester loads the key itself and serves the right value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_make_local_loads_not_wrong_values() {
    let origin = Origin::start().await;
    let hostile = format!("http://{}", hostile_server(hostile_peer).await);
    let port = free_ports(1)[0];
    let self_url = format!("http://127.0.0.1:{port}");
    let peers = vec![self_url.clone(), hostile.clone()];
    let node = GcNode::start(
        port,
        &[
            "--peers".into(),
            peers.join(","),
            "--group".into(),
            format!("g={}", origin.template()),
            "--peer-timeout".into(),
            "1s".into(),
            "--origin-timeout".into(),
            "1s".into(),
        ],
    )
    .await;
    let ring = Ring::new(DEFAULT_REPLICAS, &peers);
    let behaviours = [
        "junk",
        "truncated",
        "wiretype",
        "hugelen",
        "html",
        "status",
        "close",
        "hang",
    ];
    for (i, behaviour) in behaviours.iter().enumerate() {
        let key = key_owned_by(&ring, &hostile, behaviour);
        // A peer that closed on us is marked down for a back-off; wait
        // until the next fetch may go to it, so every case reaches it.
        wait_until_askable(&node.url, &hostile).await;
        still_serves(&node.url, &key).await;
        let stats = node.stats().await;
        assert_eq!(
            stats["groups"]["g"]["PeerErrors"],
            i + 1,
            "{behaviour}: {stats}"
        );
        assert_eq!(stats["groups"]["g"]["PeerLoads"], 0, "{behaviour}: {stats}");
    }
    let mine = key_owned_by(&ring, &self_url, "mine");
    still_serves(&node.url, &mine).await;
}

/// Polls `{node}/peers` until `peer` is up or its back-off has passed.
async fn wait_until_askable(node: &str, peer: &str) {
    until_ok(
        Duration::from_secs(10),
        format!("{peer} askable"),
        || async {
            let peers: serde_json::Value =
                serde_json::from_slice(&http_get(&format!("{node}/peers")).await.body).unwrap();
            let health = &peers["health"][0];
            assert_eq!(health["url"], peer, "{peers}");
            (health["state"] == "up" || health["retry_in_ms"] == 0)
                .then_some(())
                .ok_or_else(|| peers.to_string())
        },
    )
    .await
}

/// The flag checks: every bad flag exits 2 with one line
/// naming the flag, before anything is bound.
#[test]
fn bad_flags_exit_2_with_one_line_naming_the_flag() {
    let long_host = format!("http://{}:1", "h".repeat(5000));
    let cases: &[(&[&str], &str)] = &[
        (&["--peer-timeout", "0"], "--peer-timeout"),
        (&["--peer-timeout", "999999999m"], "--peer-timeout"),
        (&["--replicas", "18446744073709551615"], "--replicas"),
        (&["--replicas", "1000000000"], "--replicas"),
        (&["--replicas", "0"], "--replicas"),
        (
            &["--max-conns-per-peer", "2305843009213693952"],
            "--max-conns-per-peer",
        ),
        (&["--max-connections", "0"], "--max-connections"),
        (&["--header-read-timeout", "0"], "--header-read-timeout"),
        (&["--cache-bytes", "99999999T"], "--cache-bytes"),
        (&["--cache-bytes", "lots"], "--cache-bytes"),
        (
            &[
                "--etcd",
                "http://127.0.0.1:1",
                "--etcd-ttl",
                "9999999999999",
            ],
            "--etcd-ttl",
        ),
        (&["--base-path", "/cache/g/"], "--base-path"),
        (&["--base-path", "/"], "--base-path"),
        (&["--peers", "http://127.0.0.1:1/"], "--peers"),
        (&["--peers", "not a url at all"], "--peers"),
        (&["--peers", &long_host], "--peers"),
        (&["--self", "http://127.0.0.1:1/x"], "--self"),
        (&["--group", "x=ftp://127.0.0.1/{key}"], "--group"),
        (&["--group", "x=http://127.0.0.1/fixed"], "--group"),
        (&["--group", "=echo"], "--group"),
        (&["--listen", "nonsense"], "--listen"),
        (
            &[
                "--peers",
                "http://127.0.0.1:1",
                "--etcd",
                "http://127.0.0.1:2",
            ],
            "--peers and --etcd cannot be used together",
        ),
        (&["--no-such-flag"], "--no-such-flag"),
        (&["--etcd-prefix", ""], "--etcd-prefix"),
        (&["--allow-writes"], "--allow-writes needs --protocol"),
        (&["--group", "a\nb=echo"], "--group"),
        (&["--group", "a b=echo"], "--group"),
        (&["--group", "a=echo\nb=echo"], "--group a"),
        (&["--group", " g=echo"], "--group: an empty entry"),
    ];
    assert_bad_flags(cases);
}

/// An empty `GROUPCACHED_ETCD_PREFIX` would watch all of etcd: refused
/// like the flag.
#[test]
fn an_empty_etcd_prefix_from_the_environment_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_groupcached"))
        .args(["--listen", "127.0.0.1:0", "--group", "g=echo"])
        .args(["--etcd", "http://127.0.0.1:1"])
        .env("GROUPCACHED_ETCD_PREFIX", "")
        .stdin(Stdio::null())
        .output()
        .expect("running groupcached");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--etcd-prefix"), "{stderr}");
}

/// A bad origin template is a flag error even when the listen port is
/// taken: it is parsed before the listener is bound.
#[test]
fn a_bad_origin_template_fails_before_binding() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run_binary(&["--listen", &listen, "--group", "g=http://a b/{key}"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--group g"), "{stderr}");
    let (code, stderr) = run_binary(&["--listen", &listen, "--group", "g=echo"]);
    assert_eq!(code, Some(1), "a taken port is a run-time error: {stderr}");
}

/// A client that never finishes its headers does not delay
/// SIGTERM, while a request in flight still gets its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_does_not_wait_for_a_client_stuck_in_its_headers() {
    let origin = Origin::start().await;
    let mut node = one_node(&origin, &["--header-read-timeout", "60s"]).await;
    let mut stuck = TcpStream::connect(node.addr).await.unwrap();
    stuck
        .write_all(b"GET /cache/g/k HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let url = format!("{}/cache/g/slow-in-flight", node.url);
    let in_flight = tokio::spawn(async move { http_get(&url).await });
    // Wait until the slow request has reached the origin.
    poll_until(Duration::from_secs(10), || {
        origin.hits(b"slow-in-flight") > 0
    })
    .await;
    node.proc.signal("TERM");
    let reply = in_flight.await.unwrap();
    assert_eq!(
        (reply.status, &reply.body[..]),
        (200, &value_of(b"slow-in-flight")[..])
    );
    // Well under the 60 s header timeout.
    assert_eq!(node.proc.wait_exit(Duration::from_secs(15)).await, Some(0));
    let mut rest = Vec::new();
    let _ = stuck.read_to_end(&mut rest).await;
}

/// Idle connections beyond `--max-connections` wait in the
/// backlog instead of taking file descriptors, and are served once the
/// header timeout frees the slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_and_idle_ones_time_out() {
    let origin = Origin::start().await;
    let node = one_node(
        &origin,
        // 40 idle connections, 8 at a time, 1 s each: the node sits at its
        // cap for 5 s, long enough to be seen even by a starved test.
        &["--max-connections", "8", "--header-read-timeout", "1s"],
    )
    .await;
    let (pid, port) = (node.proc.child.id(), node.addr.port());
    let accepted = || accepted_connections(pid, port);
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(node.addr).await.unwrap());
    }
    // The node accepts up to the cap (the test client's keep-alive
    // connection from start-up may hold one slot)...
    poll_until(Duration::from_secs(10), || accepted() >= 7).await;
    assert!(accepted() <= 8, "{} connections, cap 8", accepted());
    // ...drops each idle one after the header timeout, and serves a real
    // client queued behind all 40.
    still_serves(&node.url, "after-idle-flood").await;
    assert!(accepted() <= 8, "{} connections, cap 8", accepted());
    for mut stream in idle {
        let mut rest = Vec::new();
        let read = stream.read_to_end(&mut rest);
        let closed = tokio::time::timeout(Duration::from_secs(10), read).await;
        assert!(closed.is_ok(), "an idle connection was never closed");
    }
}

/// How many client connections process `pid` holds open on its loopback
/// listening `port`: its socket descriptors that /proc/net/tcp lists as
/// connected with that local port (not its listener, not its connections
/// to origins or peers, not connections still waiting in the backlog).
fn accepted_connections(pid: u32, port: u16) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy();
            Some(
                link.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        // sl, local, remote, state (0A is LISTEN), ..., inode.
        .filter(|f| f.len() > 9 && f[1] == local && f[3] != "0A" && inodes.contains(f[9]))
        .count()
}

/// A node whose warnings go to a log file: started as `wrapper...
/// groupcached --group g=ORIGIN args...` on a held port.
struct LoggingNode {
    _proc: Proc,
    url: String,
    log: std::path::PathBuf,
}

impl LoggingNode {
    async fn start(wrapper: &[&str], origin: &Origin, args: &[&str]) -> LoggingNode {
        LoggingNode::start_at("warn", wrapper, origin, args).await
    }

    /// [`LoggingNode::start`] logging at `level` (`RUST_LOG`).
    async fn start_at(
        level: &str,
        wrapper: &[&str],
        origin: &Origin,
        args: &[&str],
    ) -> LoggingNode {
        let port = free_ports(1)[0];
        let log = std::env::temp_dir().join(format!("groupcached-bad-input-{port}.log"));
        let binary = env!("CARGO_BIN_EXE_groupcached");
        let (program, wrapper_args) = match wrapper.split_first() {
            Some((program, rest)) => (*program, [rest, &[binary]].concat()),
            None => (binary, vec![]),
        };
        let mut command = Command::new(program);
        command
            .args(wrapper_args)
            .args(["--group", &format!("g={}", origin.template())])
            .args(args)
            .env("RUST_LOG", level)
            .stderr(std::fs::File::create(&log).unwrap());
        hand_over_port(&mut command, port);
        let proc = Proc::spawn("groupcached (logging)", &mut command);
        drop(command); // closes the test's copy of the listener
        let url = format!("http://127.0.0.1:{port}");
        wait_healthy(&url).await;
        LoggingNode {
            _proc: proc,
            url,
            log,
        }
    }

    /// The whole log so far.
    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log lines that contain `text`.
    fn lines(&self, text: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(text))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for LoggingNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Out of file descriptors: accept fails, and the node backs off and logs
/// it once a second instead of spinning and flooding the log, then serves
/// again once connections close. `prlimit` (util-linux) caps the node's
/// hard open-file limit at 64, below `--max-connections`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_failures_back_off_and_are_logged_rate_limited() {
    let origin = Origin::start().await;
    let node = LoggingNode::start(
        &["prlimit", "--nofile=64:64", "--"],
        &origin,
        &["--max-connections", "1000", "--header-read-timeout", "1s"],
    )
    .await;
    let lines = || node.lines("accept failed");
    let start = Instant::now();
    let addr: SocketAddr = node.url["http://".len()..].parse().unwrap();
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    poll_until(Duration::from_secs(10), || !lines().is_empty()).await;
    // Keep the node out of descriptors until the header timeout drops the
    // first connection (a second), so a node that retried without backing
    // off would have logged many lines by then.
    let mut first = idle.remove(0);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), first.read_to_end(&mut rest));
    assert!(
        closed.await.is_ok(),
        "the header timeout never closed an idle connection"
    );
    drop(idle);
    still_serves(&node.url, "after-emfile").await;
    let lines = lines();
    let seconds = start.elapsed().as_secs() as usize;
    assert!(
        lines.len() <= seconds + 2,
        "{} lines in {seconds} s: {lines:?}",
        lines.len()
    );
}

/// Origin failures are logged, at most once a second, with the
/// number of failures not logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_failures_are_logged_rate_limited() {
    let origin = Origin::start().await;
    let node = LoggingNode::start(&[], &origin, &[]).await;
    let url = &node.url;
    let lines = || node.lines("origin load failed");
    // Fail until a second line appears (a second or so later).
    let mut failures = 0;
    eventually(Duration::from_secs(10), "a second log line", || {
        let failing = (lines().len() < 2).then(|| {
            failures += 1;
            format!("{url}/cache/g/fail-{failures}")
        });
        async move {
            match failing {
                Some(url) => assert_eq!(http_get(&url).await.status, 502),
                None => return Some(()),
            }
            None
        }
    })
    .await;
    // A 404 is an answer, not a failure.
    assert_eq!(
        http_get(&format!("{url}/cache/g/missing-1")).await.status,
        404
    );
    let lines = lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(failures > 2, "only {failures} failures in a second");
    assert!(lines[0].contains("unlogged=0"), "{lines:?}");
    assert!(
        lines[1].contains(&format!("unlogged={}", failures - 2)),
        "{failures} failures: {lines:?}"
    );
    still_serves(url, "after-logging").await;
}

/// `etcdctl put KEY VALUE`.
async fn etcd_put(etcd: &Etcd, key: &str, value: &str) {
    let status = tokio::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", etcd.endpoint()))
        .args(["--command-timeout=2s", "put", key, value])
        .stdout(Stdio::null())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(Duration::from_secs(10), status)
        .await
        .expect("etcdctl put took over 10 s")
        .expect("running etcdctl");
    assert!(status.success(), "etcdctl put {key} failed");
}

/// The `peers` list of a node's `/peers`.
async fn peer_list(node: &GcNode) -> Vec<String> {
    let peers = node.get("/peers").await;
    let peers: serde_json::Value = serde_json::from_slice(&peers.body).unwrap();
    serde_json::from_value(peers["peers"].clone()).unwrap()
}

/// Values under the prefix that are not peer URLs never reach
/// the ring, whether they were there before a node listed the prefix or
/// arrive while it watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_values_that_are_not_peer_urls_are_ignored() {
    const PREFIX: &str = "/groupcache/peers/";
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let ports = free_ports(2);
    let args = |_| {
        vec![
            "--etcd".to_string(),
            etcd.endpoint(),
            "--group".to_string(),
            format!("g={}", origin.template()),
        ]
    };
    let long_host = format!("http://{}:1", "h".repeat(5000));
    let bad = [
        "not a url at all",
        "http://127.0.0.1:1/",
        long_host.as_str(),
        "",
        "http://a:+80",
        "http://a:0",
        "http://-:1",
        "http://x'+alert(1)+'y:80",
    ];
    // Before the first node lists the prefix...
    for (i, value) in bad.iter().enumerate() {
        etcd_put(&etcd, &format!("{PREFIX}before-{i}"), value).await;
    }
    let first = GcNode::start(ports[0], &args(0)).await;
    // ...and while it watches, then a good node: once it shows up, every
    // earlier event has been seen.
    for (i, value) in bad.iter().enumerate() {
        etcd_put(&etcd, &format!("{PREFIX}during-{i}"), value).await;
    }
    let second = GcNode::start(ports[1], &args(1)).await;
    let mut want = vec![first.url.clone(), second.url.clone()];
    want.sort();
    for node in [&first, &second] {
        let what = format!("{} listing {want:?}", node.url);
        until_ok(Duration::from_secs(10), what, || async {
            let list = peer_list(node).await;
            (list == want)
                .then_some(())
                .ok_or_else(|| format!("{list:?}"))
        })
        .await;
    }
    still_serves(&first.url, "after-etcd-junk").await;
    still_serves(&second.url, "after-etcd-junk").await;
    assert_eq!(origin.hits(b"after-etcd-junk"), 1);
}

/// The value of `key` in `etcd`, or `None`.
async fn etcd_value(etcd: &Etcd, key: &str) -> Option<String> {
    let mut client = etcd_client::Client::connect([etcd.endpoint()], None)
        .await
        .expect("connecting to etcd");
    let reply = client.get(key, None).await.expect("etcd get");
    let kv = reply.kvs().first()?;
    Some(String::from_utf8_lossy(kv.value()).into_owned())
}

/// A registry anyone can write to: a node whose own key is overwritten
/// registers again (and stays in its own ring); a value with a newline and
/// a terminal escape is logged as one escaped line; thousands of bad and
/// good values cost a few log lines, not one per value or a full peer list
/// per change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_registry_abuse_is_survived_and_logged_briefly() {
    const PREFIX: &str = "/groupcache/peers/";
    let etcd = Etcd::start_new().await;
    let origin = Origin::start().await;
    let node = LoggingNode::start_at("info", &[], &origin, &["--etcd", &etcd.endpoint()]).await;
    let own_key = format!("{PREFIX}{}", node.url);
    let registered = || async {
        (etcd_value(&etcd, &own_key).await.as_deref() == Some(node.url.as_str())).then_some(())
    };
    eventually(Duration::from_secs(10), "the node registered", registered).await;

    // Someone overwrites this node's key: it takes it back and says so.
    etcd_put(&etcd, &own_key, "http://127.0.0.1:1").await;
    until_ok(Duration::from_secs(10), "its key taken back", || async {
        let value = etcd_value(&etcd, &own_key).await;
        let peers = peer_list_of_url(&node.url).await;
        (value.as_deref() == Some(node.url.as_str()) && peers == [node.url.clone()])
            .then_some(())
            .ok_or_else(|| format!("own key holds {value:?}, peers {peers:?}"))
    })
    .await;
    assert_eq!(node.lines("overwritten").len(), 1, "{}", node.text());

    // A value that would forge a log line and colour a terminal.
    etcd_put(
        &etcd,
        &format!("{PREFIX}forged"),
        "x\nFAKE LINE \x1b[31mred",
    )
    .await;
    poll_until(Duration::from_secs(10), || {
        !node.lines("FAKE LINE").is_empty()
    })
    .await;
    let log = node.text();
    assert!(!log.contains('\x1b'), "an escape reached the log: {log:?}");
    let forged = node.lines("FAKE LINE");
    assert_eq!(forged.len(), 1, "{forged:?}");
    assert!(!forged[0].starts_with("FAKE"), "a forged line: {forged:?}");
    assert!(
        forged[0].contains("x\\nFAKE LINE \\u{1b}[31mred"),
        "{forged:?}"
    );

    // 2,000 bad values and 2,000 peers, 100 to a transaction.
    let before = node.text().len();
    let mut client = etcd_client::Client::connect([etcd.endpoint()], None)
        .await
        .expect("connecting to etcd");
    for batch in 0..40 {
        let ops: Vec<etcd_client::TxnOp> = (0..100)
            .map(|i| {
                let n = batch * 100 + i;
                let (key, value) = if batch % 2 == 0 {
                    (format!("{PREFIX}junk-{n}"), format!("junk {n}"))
                } else {
                    let url = format!("http://10.1.{}.{}:80", n / 250, n % 250 + 1);
                    (format!("{PREFIX}{url}"), url)
                };
                etcd_client::TxnOp::put(key, value, None)
            })
            .collect();
        let txn = etcd_client::Txn::new().and_then(ops);
        client.txn(txn).await.expect("etcd txn");
    }
    eventually(Duration::from_secs(20), "2,000 peers", || async {
        (peer_list_of_url(&node.url).await.len() == 2_001).then_some(())
    })
    .await;
    let added = &node.text()[before..];
    eprintln!(
        "4,000 registry values: {} log lines, {} bytes",
        added.lines().count(),
        added.len()
    );
    assert!(added.lines().count() < 60, "{added}");
    assert!(added.len() < 64 << 10, "{} bytes of log", added.len());
}

/// The `peers` list of `url`'s `/peers`.
async fn peer_list_of_url(url: &str) -> Vec<String> {
    let peers = http_get(&format!("{url}/peers")).await;
    let peers: serde_json::Value = serde_json::from_slice(&peers.body).unwrap();
    serde_json::from_value(peers["peers"].clone()).unwrap()
}
