//! Embedding groupcached in a Rust program with a getter of your own.
//!
//! The group `squares` computes its values in-process instead of calling an
//! HTTP origin. The program both uses the group directly and serves it to
//! peers and users on 127.0.0.1:8081, like the `groupcached` binary does:
//!
//! ```text
//! cargo run --example embedded
//! curl localhost:8081/cache/squares/12      # → 144
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use groupcached::consistenthash::DEFAULT_REPLICAS;
use groupcached::group::Group;
use groupcached::http_client::HttpClient;
use groupcached::node::{Node, PeerSource};
use groupcached::origin::GetterError;
use groupcached::peers::Peers;
use groupcached::wire::DEFAULT_BASE_PATH;

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

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
    let self_url = format!("http://{}", listener.local_addr()?);

    // The peer pool; add other nodes' URLs here (same list on every node).
    let http = HttpClient::new(Duration::from_secs(5), 64);
    let peers = Arc::new(Peers::new(
        self_url.clone(),
        DEFAULT_BASE_PATH.into(),
        DEFAULT_REPLICAS,
        http,
        64,
    ));
    peers.set(vec![self_url]);

    let squares = Group::new("squares", 64 << 20, Arc::new(square), peers.clone());

    // Use the group directly...
    let value = squares.get(b"12").await.expect("12 is a number");
    println!("12² = {}", String::from_utf8_lossy(&value));

    // ...and serve it over HTTP until Ctrl-C.
    let groups = HashMap::from([(b"squares".to_vec(), squares)]);
    let node = Node::from_parts(groups, peers, DEFAULT_BASE_PATH.into(), PeerSource::Static);
    println!("serving on 127.0.0.1:8081; try: curl localhost:8081/cache/squares/12");
    groupcached::server::run(listener, node, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
