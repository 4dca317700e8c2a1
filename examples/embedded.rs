//! Embedding groupcached in a Rust program with a getter of your own.
//!
//! The group `squares` computes its values in-process instead of calling an
//! HTTP origin; its values never expire. The group `clock` shows a getter
//! whose values expire: a key's value is the time it was loaded, cached for
//! five seconds. The program sets its peer list itself (as its own
//! discovery would), uses the groups directly, reads their stats, and
//! serves them to peers and users on 127.0.0.1:8081 from its own hyper
//! server, next to a route of its own (`/hello`):
//!
//! ```text
//! cargo run --example embedded
//! curl localhost:8081/cache/squares/12      # → 144
//! curl -i localhost:8081/cache/clock/now    # Cache-Control: max-age=4 or 5
//! ```
//!
//! With `--check` (run by `scripts/test`), it serves on a free port
//! instead, GETs its own `/cache/squares/12` and `/hello` over HTTP, checks
//! the answers and the group's stats, and exits 0.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use groupcached::{GetterError, NodeBuilder, ReplyBody, Value};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service};
use hyper::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The getter: the key must be a decimal number; the value is its square.
async fn square(key: Vec<u8>) -> Result<Bytes, GetterError> {
    let n: u64 = std::str::from_utf8(&key)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            GetterError::NotFound(format!("not a number: {}", String::from_utf8_lossy(&key)))
        })?;
    let square = n
        .checked_mul(n)
        .ok_or_else(|| GetterError::Failed(format!("{n}² overflows")))?;
    Ok(Bytes::from(square.to_string()))
}

/// A getter whose values expire: the load time in Unix seconds, for 5 s.
async fn clock(_key: Vec<u8>) -> Result<Value, GetterError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| GetterError::Failed(e.to_string()))?;
    let text = now.as_secs().to_string();
    Ok(Value::expiring_in(text, Duration::from_secs(5)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let check = std::env::args().any(|arg| arg == "--check");
    let addr = if check {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:8081"
    };
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;

    // The node: its own URL and its groups. With other nodes, list them
    // all, the same on every node: `.peers(["http://127.0.0.1:8082"])`.
    let node = NodeBuilder::new(format!("http://{addr}"))
        .group("squares", 64 << 20, square)
        .group("clock", 1 << 20, clock)
        .build()?;

    // An embedder with discovery of its own (Kubernetes, Consul, ...)
    // hands the node each new peer list; here, just this node.
    node.set_peers([format!("http://{addr}")])?;
    println!("peers: {:?}", node.peer_list());

    // Use the groups directly...
    let value = node.get("squares", b"12").await?;
    println!("12² = {}", String::from_utf8_lossy(&value.bytes));
    let value = node.get("clock", b"now").await?;
    println!("loaded at {}", String::from_utf8_lossy(&value.bytes));

    // ...and serve them inside this program's own hyper server, next to
    // a route of its own, until Ctrl-C (or, with --check, until the node
    // has answered its own requests).
    let server = tokio::spawn(serve_with_own_route(listener, node.clone()));
    if !check {
        println!(
            "serving on {addr}; try: curl localhost:{}/cache/squares/12 or /hello",
            addr.port()
        );
        let _ = tokio::signal::ctrl_c().await;
        server.abort();
        return Ok(());
    }
    let squared = http_get(addr, "/cache/squares/12").await?;
    let hello = http_get(addr, "/hello").await?;
    server.abort();
    if squared != "144" || hello != "hello from the embedding program" {
        return Err(format!("got {squared:?} and {hello:?}").into());
    }
    let stats = node.stats();
    let squares = &stats["squares"];
    println!(
        "squares: {} gets, {} loads, {} cache hits",
        squares.gets, squares.loads, squares.cache_hits
    );
    if (squares.gets, squares.loads) != (2, 1) {
        return Err(format!("unexpected stats: {squares:?}").into());
    }
    println!("check passed: GET /cache/squares/12 = 144, GET /hello answered, stats agree");
    Ok(())
}

/// This program's HTTP server: `/hello` is its own; every other path is
/// the node's (the peer API and the user API), answered by its
/// `NodeService`.
async fn serve_with_own_route(listener: TcpListener, node: groupcached::Node) {
    let apis = groupcached::NodeService::new(node);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let apis = apis.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let apis = apis.clone();
                async move {
                    if request.uri().path() == "/hello" {
                        let body = Bytes::from_static(b"hello from the embedding program");
                        return Ok::<_, Infallible>(Response::new(ReplyBody::from(body)));
                    }
                    apis.call(request).await
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

/// The body of a `200 OK` answer to `GET path` on `addr`, over HTTP/1.1.
async fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    let (head, body) = reply.split_once("\r\n\r\n").ok_or("no end of headers")?;
    if !head.starts_with("HTTP/1.1 200 ") {
        return Err(format!("GET {path}: {}", head.lines().next().unwrap_or("")).into());
    }
    Ok(body.to_string())
}
