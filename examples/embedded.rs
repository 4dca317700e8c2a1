//! Embedding groupcached in a Rust program with a getter of your own.
//!
//! The group `squares` computes its values in-process instead of calling an
//! HTTP origin; its values never expire. The group `clock` shows a getter
//! whose values expire: a key's value is the time it was loaded, cached for
//! five seconds. The program both uses the groups directly and serves them
//! to peers and users on 127.0.0.1:8081, like the `groupcached` binary does:
//!
//! ```text
//! cargo run --example embedded
//! curl localhost:8081/cache/squares/12      # → 144
//! curl -i localhost:8081/cache/clock/now    # Cache-Control: max-age=4 or 5
//! ```
//!
//! With `--check` (run by `scripts/test`), it serves on a free port
//! instead, GETs its own `/cache/squares/12` over HTTP, checks the answer is
//! 144, shuts down and exits 0.

use std::time::Duration;

use bytes::Bytes;
use groupcached::{GetterError, NodeBuilder, Value};
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

    // Use the groups directly...
    let value = node.get("squares", b"12").await?;
    println!("12² = {}", String::from_utf8_lossy(&value.bytes));
    let value = node.get("clock", b"now").await?;
    println!("loaded at {}", String::from_utf8_lossy(&value.bytes));

    // ...and serve them over HTTP until Ctrl-C (or, with --check, until
    // the node has answered its own request).
    if !check {
        println!(
            "serving on {addr}; try: curl localhost:{}/cache/squares/12",
            addr.port()
        );
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        groupcached::serve(listener, node, ctrl_c).await;
        return Ok(());
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(groupcached::serve(listener, node, async {
        let _ = stopped.await;
    }));
    let body = http_get(addr, "/cache/squares/12").await?;
    let _ = stop.send(());
    serving.await?;
    if body != "144" {
        return Err(format!("GET /cache/squares/12: expected 144, got {body:?}").into());
    }
    println!("check passed: GET /cache/squares/12 = 144");
    Ok(())
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
