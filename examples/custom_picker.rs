//! A peer picker of your own (golang's `RegisterPeerPicker`): the groups
//! of this node ask it which peer owns a key and fetch from the peer it
//! returns, instead of the consistent-hash ring and the HTTP client.
//!
//! Here keys that start with `remote-` belong to an in-process "peer" that
//! makes their values itself (a stand-in for a transport of your own: gRPC,
//! a message bus, a sidecar); every other key is loaded by this node's
//! getter. `cargo run --example custom_picker` prints where each value came
//! from; with `--check` (run by `scripts/test`) it also checks the values
//! and the group's stats, and exits 0.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use groupcached::{BoxFuture, FetchPeer, GetterError, NodeBuilder, PeerError, PickPeer, Value};

/// Owns every `remote-` key.
struct Picker {
    remote: Arc<InProcessPeer>,
}

impl PickPeer for Picker {
    fn pick(&self, key: &[u8]) -> Option<Arc<dyn FetchPeer>> {
        key.starts_with(b"remote-")
            .then(|| self.remote.clone() as Arc<dyn FetchPeer>)
    }

    fn protocol(&self) -> groupcached::Protocol {
        groupcached::Protocol::Golang
    }

    fn fetch_timeout(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// A "peer" that answers in-process.
struct InProcessPeer;

impl FetchPeer for InProcessPeer {
    fn fetch<'a>(
        &'a self,
        _group: &'a [u8],
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<Value, PeerError>> {
        Box::pin(async move {
            let mut value = b"fetched:".to_vec();
            value.extend_from_slice(key);
            Ok(Value::from(Bytes::from(value)))
        })
    }

    fn url(&self) -> &str {
        "in-process://remote"
    }
}

/// This node's own getter.
async fn local(key: Vec<u8>) -> Result<Bytes, GetterError> {
    let mut value = b"local:".to_vec();
    value.extend_from_slice(&key);
    Ok(Bytes::from(value))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let check = std::env::args().any(|arg| arg == "--check");
    let node = NodeBuilder::new("http://127.0.0.1:8081")
        .picker(Picker {
            remote: Arc::new(InProcessPeer),
        })
        .group("g", 1 << 20, local)
        .build()?;
    let remote = node.get("g", b"remote-1").await?;
    let here = node.get("g", b"x").await?;
    let (remote, here) = (
        String::from_utf8_lossy(&remote.bytes).into_owned(),
        String::from_utf8_lossy(&here.bytes).into_owned(),
    );
    println!("remote-1 → {remote}\nx → {here}");
    let stats = node.stats()["g"];
    println!(
        "{} from the peer, {} loaded here",
        stats.peer_loads, stats.local_loads
    );
    if check {
        let as_expected = remote == "fetched:remote-1"
            && here == "local:x"
            && (stats.peer_loads, stats.local_loads) == (1, 1);
        if !as_expected {
            return Err(format!("unexpected: {remote:?}, {here:?}, {stats:?}").into());
        }
        println!("check passed");
    }
    Ok(())
}
