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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use groupcached::consistenthash::DEFAULT_REPLICAS;
use groupcached::group::Group;
use groupcached::http_client::HttpClient;
use groupcached::node::{Node, PeerSource};
use groupcached::getter::GetterError;
use groupcached::peers::Peers;
use groupcached::server::Limits;
use groupcached::value::Value;
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

/// A getter whose values expire: the load time in Unix seconds, for 5 s.
async fn clock(_key: Vec<u8>) -> Result<Value, GetterError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| GetterError::Failed(e.to_string()))?;
    let text = now.as_secs().to_string();
    Ok(Value::expiring_in(text, Duration::from_secs(5)))
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
    let clock = Group::new("clock", 1 << 20, Arc::new(clock), peers.clone());

    // Use the groups directly...
    let value = squares.get(b"12").await.expect("12 is a number");
    println!("12² = {}", String::from_utf8_lossy(&value.bytes));
    let value = clock.get(b"now").await.expect("the clock works");
    println!("loaded at {}", String::from_utf8_lossy(&value.bytes));

    // ...and serve them over HTTP until Ctrl-C.
    let groups = HashMap::from([(b"squares".to_vec(), squares), (b"clock".to_vec(), clock)]);
    let node = Node::from_parts(groups, peers, DEFAULT_BASE_PATH.into(), PeerSource::Static);
    println!("serving on 127.0.0.1:8081; try: curl localhost:8081/cache/squares/12");
    groupcached::server::run(listener, node, Limits::default(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
