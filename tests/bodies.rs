//! Request bodies against the real binary, sent byte by byte over raw TCP
//! as a careless or hostile client would: bodies share the load budget
//! (503 when it is full, so stalled uploads cannot grow the node's memory),
//! a body that does not arrive in time gets 408 and its connection closed,
//! shutdown does not wait for such a body, unsupported transfer codings
//! are 501, and a remove-keys list has a bound.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts a node with group `g=echo` and `args`.
async fn node(args: &[&str]) -> GcNode {
    let mut all = vec!["--group", "g=echo"];
    all.extend_from_slice(args);
    let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
    GcNode::start(free_ports(1)[0], &all).await
}

/// A connection to `node` that has sent `head` (the request line and
/// headers, without the blank line).
async fn send_head(node: &GcNode, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(node.addr).await.expect("connect");
    let head = format!("{head}\r\nHost: test\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("send head");
    stream
}

/// Everything the server sends until it closes the connection (at most
/// 20 s: a hang fails the test).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut reply));
    match read.await {
        Ok(Ok(_)) => {}
        // A reset after the reply (unread request bytes) ends it too.
        Ok(Err(_)) => {}
        Err(_) => panic!(
            "connection still open after 20 s: {:?}",
            String::from_utf8_lossy(&reply)
        ),
    }
    String::from_utf8_lossy(&reply).into_owned()
}

const MIB: usize = 1 << 20;

/// Thirty peer PUTs that each declare 15 MiB, send 14 MiB and stall, at a
/// node with a 16 MiB cache and a 64 MiB load budget: the budget admits
/// four of them and answers the rest 503 at once; the node's memory grows
/// by about the budget, not by thirty bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_stay_within_the_load_budget() {
    let node = node(&[
        "--protocol",
        "mailgun",
        "--cache-bytes",
        "16MiB",
        "--load-budget",
        "64MiB",
        "--body-read-timeout",
        "5m",
    ])
    .await;
    let budget = 64 * MIB as u64;
    let before = node.rss_bytes();
    // With `Expect: 100-continue` (as curl sends large bodies) the node
    // says whether it admits a body before any of it is sent.
    let mut open = Vec::new();
    let (mut stalled, mut refused) = (0, 0);
    for i in 0..30 {
        let head = format!(
            "PUT /_groupcache/g/k{i} HTTP/1.1\r\nContent-Length: {}\r\nExpect: 100-continue",
            15 * MIB
        );
        let mut stream = send_head(&node, &head).await;
        let mut reply = [0u8; 512];
        let n = stream.read(&mut reply).await.expect("a reply to the head");
        let reply = String::from_utf8_lossy(&reply[..n]).into_owned();
        if reply.starts_with("HTTP/1.1 100") {
            let chunk = vec![b'x'; MIB];
            for _ in 0..14 {
                stream
                    .write_all(&chunk)
                    .await
                    .expect("sending an admitted body");
            }
            stalled += 1;
            open.push(stream);
        } else {
            assert!(reply.starts_with("HTTP/1.1 503"), "{reply:?}");
            assert!(reply.to_lowercase().contains("retry-after: 1"), "{reply:?}");
            refused += 1;
        }
    }
    // The node has read what the kernel buffers let through: poll until
    // its memory stops growing.
    let mut during = node.rss_bytes();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Poll interval; the loop waits for the RSS to settle.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = node.rss_bytes();
        if now <= during || Instant::now() > deadline {
            during = during.max(now);
            break;
        }
        during = now;
    }
    let growth = during.saturating_sub(before);
    eprintln!(
        "30 stalled 15 MiB uploads: {stalled} admitted, {refused} refused (503); \
         RSS {} MiB before, {} MiB during, growth {} MiB against a {} MiB budget",
        before >> 20,
        during >> 20,
        growth >> 20,
        budget >> 20
    );
    assert_eq!(
        (stalled, refused),
        (4, 26),
        "64 MiB admits four 15 MiB bodies"
    );
    assert!(
        growth < budget + 32 * MIB as u64,
        "RSS grew {} MiB",
        growth >> 20
    );
    // The node still answers while they stall.
    assert_eq!(node.get("/healthz").await.status, 200);
    drop(open);
}

/// A body that stops arriving (a short one, or a chunk now and then) is
/// answered 408 once `--body-read-timeout` has passed, and its connection
/// is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_gets_408_and_its_connection_closes() {
    let node = node(&[
        "--protocol",
        "mailgun",
        "--allow-writes",
        "--body-read-timeout",
        "1s",
    ])
    .await;
    // Fewer bytes than declared.
    let started = Instant::now();
    let mut stream = send_head(&node, "PUT /cache/g/short HTTP/1.1\r\nContent-Length: 100").await;
    stream.write_all(b"only ten..").await.unwrap();
    let reply = read_until_closed(&mut stream).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
    assert!(
        reply.contains("request body not received within 1s"),
        "{reply:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));

    // A chunk every 300 ms, forever: the timeout bounds the whole body.
    let mut stream = send_head(
        &node,
        "PUT /cache/g/trickle HTTP/1.1\r\nTransfer-Encoding: chunked",
    )
    .await;
    let trickle = async {
        loop {
            if stream.write_all(b"1\r\nx\r\n").await.is_err() {
                break;
            }
            // The client's pace: one byte every 300 ms.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut probe = [0u8; 512];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
            {
                return String::from_utf8_lossy(&probe[..n]).into_owned();
            }
        }
        String::new()
    };
    let reply = tokio::time::timeout(Duration::from_secs(20), trickle)
        .await
        .expect("no reply to a trickling body within 20 s");
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
    // Nothing was stored.
    assert_eq!(node.get("/cache/g/trickle").await.body, b"trickle"[..]);
}

/// SIGTERM with a body still arriving: the node exits at once instead of
/// waiting its 30 s drain for a request that is not coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_body_that_is_not_arriving() {
    let mut node = node(&[
        "--protocol",
        "mailgun",
        "--allow-writes",
        "--body-read-timeout",
        "5m",
    ])
    .await;
    let mut stream = send_head(&node, "PUT /cache/g/k HTTP/1.1\r\nContent-Length: 100").await;
    stream.write_all(b"partial").await.unwrap();
    // A request on another connection: the node has read the PUT's head.
    assert_eq!(node.get("/healthz").await.status, 200);
    let signalled = Instant::now();
    node.proc.signal("TERM");
    let exit = node.proc.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(exit, Some(0), "exit status");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "took {:?} to exit",
        signalled.elapsed()
    );
}

/// `Transfer-Encoding` other than `chunked` alone is 501 on both APIs, as
/// Go's server answers, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_transfer_codings_are_501() {
    let node = node(&["--protocol", "mailgun", "--allow-writes"]).await;
    for path in ["/cache/g/k", "/_groupcache/g/k"] {
        for coding in ["gzip, chunked", "chunked, chunked", "identity, chunked"] {
            let head = format!("PUT {path} HTTP/1.1\r\nTransfer-Encoding: {coding}");
            let mut stream = send_head(&node, &head).await;
            let _ = stream.write_all(b"5\r\nhello\r\n0\r\n\r\n").await;
            let reply = read_until_closed(&mut stream).await;
            assert!(
                reply.starts_with("HTTP/1.1 501"),
                "{path} {coding}: {reply:?}"
            );
            assert!(reply.contains("unsupported transfer coding"), "{reply:?}");
        }
        // Without chunked last the length is unknown: 400, as RFC 9112 says.
        let head = format!("PUT {path} HTTP/1.1\r\nTransfer-Encoding: gzip");
        let reply = read_until_closed(&mut send_head(&node, &head).await).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{path}: {reply:?}");
    }
    assert_eq!(
        node.get("/cache/g/k").await.body,
        b"k"[..],
        "nothing stored"
    );
    // chunked alone is fine.
    let mut stream = send_head(
        &node,
        "PUT /cache/g/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close",
    )
    .await;
    stream.write_all(b"3\r\nnew\r\n0\r\n\r\n").await.unwrap();
    let reply = read_until_closed(&mut stream).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
    assert_eq!(node.get("/cache/g/k").await.body, b"new"[..]);
}

/// groupcache-go's remove-keys: a list of more than 10,000 keys is refused
/// (413) without building it; a normal list still removes its keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_keys_lists_are_bounded() {
    let node = node(&["--protocol", "groupcache-go"]).await;
    let url = format!("{}/_groupcache/g/_remove-keys/", node.url);
    let mut many = String::from(r#"{"group":"g","keys":["#);
    many.push_str(&vec![r#""""#; 100_001].join(","));
    many.push_str("]}");
    let reply = http_send("POST", &url, many.into()).await.unwrap();
    assert_eq!(
        (
            reply.status,
            String::from_utf8_lossy(&reply.body).into_owned()
        ),
        (413, "remove-keys lists more than 10000 keys\n".to_string())
    );
    let put = b"\x0a\x01g\x12\x01k\x1a\x03new\x20\x00";
    let set = format!("{}/_groupcache/g/k", node.url);
    assert_eq!(
        http_send("PUT", &set, put[..].into()).await.unwrap().status,
        200
    );
    assert_eq!(node.get("/cache/g/k").await.body, b"new"[..]);
    let few = r#"{"group":"g","keys":["k","other"]}"#;
    let reply = http_send("POST", &url, few.into()).await.unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(node.get("/cache/g/k").await.body, b"k"[..], "removed");
}
