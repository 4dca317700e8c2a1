//! The library as an embedder uses it: two nodes built with `NodeBuilder`,
//! each serving its peer API with `groupcached::serve` on a port-0
//! listener, in a mailgun pool, written through `Node::set` and
//! `Node::remove`; no binary involved.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use bytes::Bytes;
use groupcached::{GetterError, Node, NodeBuilder, Protocol, WriteError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A node serving on its own port-0 listener until the token is
/// cancelled (on drop).
struct Served {
    node: Node,
    stop: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Binds `n` listeners, then builds and serves one node on each, all in
/// one pool of `protocol`; every node's getter answers `origin:KEY` and
/// counts in `loads`.
async fn pool(n: usize, protocol: Protocol, loads: &Arc<AtomicUsize>) -> Vec<Served> {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let urls: Vec<String> = listeners
        .iter()
        .map(|l| format!("http://{}", l.local_addr().unwrap()))
        .collect();
    let mut served = Vec::new();
    for (listener, url) in listeners.into_iter().zip(&urls) {
        let loads = loads.clone();
        let getter = move |key: Vec<u8>| {
            loads.fetch_add(1, SeqCst);
            async move {
                let mut value = b"origin:".to_vec();
                value.extend_from_slice(&key);
                Ok::<Bytes, GetterError>(Bytes::from(value))
            }
        };
        let node = NodeBuilder::new(url.clone())
            .peers(urls.clone())
            .protocol(protocol)
            .group("g", 1 << 20, getter)
            .build()
            .unwrap();
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        tokio::spawn(groupcached::serve(listener, node.clone(), shutdown));
        served.push(Served { node, stop });
    }
    served
}

async fn value(node: &Node, key: &[u8]) -> String {
    let value = node.get("g", key).await.unwrap();
    String::from_utf8_lossy(&value.bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_nodes_set_and_remove_across_the_pool() {
    let loads = Arc::new(AtomicUsize::new(0));
    let nodes = pool(2, Protocol::Mailgun, &loads).await;
    let (a, b) = (&nodes[0].node, &nodes[1].node);
    for key in [&b"k1"[..], b"k2", b"k3"] {
        a.set("g", key, &b"written"[..], None, false).await.unwrap();
        assert_eq!(value(a, key).await, "written");
        assert_eq!(value(b, key).await, "written");
    }
    assert_eq!(loads.load(SeqCst), 0, "a written value is never loaded");

    b.remove("g", b"k1").await.unwrap();
    assert_eq!(value(a, b"k1").await, "origin:k1");
    assert_eq!(value(b, b"k1").await, "origin:k1");
    assert_eq!(loads.load(SeqCst), 1, "loaded once for the pool");

    let unknown = a.set("nope", b"k", &b"v"[..], None, false).await;
    assert!(matches!(unknown, Err(WriteError::NoGroup(name)) if name == "nope"));
    let too_large = a.set("g", b"k", vec![0; 2 << 20], None, false).await;
    assert!(
        matches!(too_large, Err(WriteError::Refused(_))),
        "{too_large:?}"
    );
}

#[tokio::test]
async fn a_golang_pool_has_no_writes() {
    let loads = Arc::new(AtomicUsize::new(0));
    let nodes = pool(1, Protocol::Golang, &loads).await;
    let set = nodes[0].node.set("g", b"k", &b"v"[..], None, false).await;
    assert!(matches!(set, Err(WriteError::NoWrites(Protocol::Golang))));
    let removed = nodes[0].node.remove("g", b"k").await;
    assert_eq!(
        removed.unwrap_err().to_string(),
        "a golang pool has no writes (mailgun and groupcache-go pools do)"
    );
}
