//! groupcached: a groupcache node that joins golang/groupcache HTTPPool
//! clusters as an equal peer.
//!
//! A request enters [`server`], becomes a [`group`] lookup, and is answered
//! from the [`cache`], fetched from the owning peer ([`peers`] picks it with
//! the [`consistenthash`] ring, [`peer_client`] fetches it), or loaded from
//! the [`origin`] once per key ([`singleflight`]). [`wire`] holds every
//! byte-level protocol detail; [`discovery`] feeds peer lists from etcd.

#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod consistenthash;
pub mod discovery;
pub mod freshness;
pub mod group;
pub mod http_client;
pub mod node;
pub mod origin;
pub mod peer_client;
pub mod peers;
pub mod server;
pub mod singleflight;
pub mod value;
pub mod wire;

use std::future::Future;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use discovery::EtcdStatus;

pub use config::{Args, Config};
pub use node::Node;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Node(#[from] node::NodeError),
    #[error("reading the listener's address: {0}")]
    Listener(#[from] std::io::Error),
}

/// Runs a node on `listener` until `shutdown` resolves. With etcd, the
/// node's lease is revoked first, then in-flight requests drain.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let self_url = match &config.self_url {
        Some(url) => url.clone(),
        None => format!("http://{}", listener.local_addr()?),
    };
    let (node, discovery) = match config.etcd.clone() {
        None => (Node::new(&config, self_url.clone(), None)?, None),
        Some(etcd) => {
            let (status, status_receiver) = watch::channel(EtcdStatus::default());
            let node = Node::new(&config, self_url.clone(), Some(status_receiver))?;
            let (stop, stopped) = oneshot::channel::<()>();
            let stopped = async {
                let _ = stopped.await;
            };
            let task = tokio::spawn(discovery::run(etcd, node.peers().clone(), status, stopped));
            (node, Some((stop, task)))
        }
    };
    tracing::info!(
        addr = %listener.local_addr()?,
        self_url = %self_url,
        peers = ?node.peers().list(),
        etcd = ?config.etcd.as_ref().map(|e| &e.endpoints),
        "groupcached serving"
    );
    let shutdown = async move {
        shutdown.await;
        if let Some((stop, task)) = discovery {
            let _ = stop.send(());
            let _ = task.await;
        }
    };
    let limits = server::Limits {
        max_connections: config.max_connections,
        header_read_timeout: config.header_read_timeout,
    };
    server::run(listener, node, limits, shutdown).await;
    Ok(())
}
