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
pub mod dialect;
pub mod discovery;
pub mod freshness;
pub mod getter;
pub mod group;
pub mod http_client;
pub mod metrics;
pub mod node;
pub mod origin;
pub mod peer_client;
pub mod peers;
pub mod server;
pub mod singleflight;
pub mod status;
pub mod tls;
pub mod value;
pub mod wire;
pub mod writes;

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

/// Runs a node on `listener` (and the peer API on `peer_listener`, for
/// `--peer-listen`) until `shutdown` resolves. With etcd, the node's lease
/// is revoked first, then in-flight requests drain.
pub async fn run(
    config: Config,
    listener: TcpListener,
    peer_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let self_url = match &config.self_url {
        Some(url) => url.clone(),
        None => {
            let (peer_api, tls) = match &peer_listener {
                Some(peer) => (peer, &config.tls.peer),
                None => (&listener, &config.tls.main),
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{}", peer_api.local_addr()?)
        }
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
        peer_addr = ?peer_listener.as_ref().map(TcpListener::local_addr).transpose()?,
        self_url = %self_url,
        peers = ?node.peers().list(),
        etcd = ?config.etcd.as_ref().map(|e| &e.endpoints),
        "groupcached serving"
    );
    let (stop_serving, serving) = watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        if let Some((stop, task)) = discovery {
            let _ = stop.send(());
            let _ = task.await;
        }
        let _ = stop_serving.send(true);
    };
    let stopped = |mut serving: watch::Receiver<bool>| async move {
        let _ = serving.wait_for(|stop| *stop).await;
    };
    let tls = config.tls;
    let reloads = [&tls.main, &tls.peer]
        .into_iter()
        .flatten()
        .map(|server| server.cert.clone())
        .collect();
    let reloads = tokio::spawn(tls::watch_reloads(reloads));
    let main_apis = match peer_listener {
        Some(_) => server::Apis::Users,
        None => server::Apis::All,
    };
    let limits = server::Limits {
        max_connections: config.max_connections,
        header_read_timeout: config.header_read_timeout,
    };
    let main = server::serve(
        listener,
        tls.main,
        main_apis,
        node.clone(),
        limits,
        stopped(serving.clone()),
    );
    let peer_api = async {
        if let Some(peer_listener) = peer_listener {
            let apis = server::Apis::Peers;
            server::serve(
                peer_listener,
                tls.peer,
                apis,
                node,
                limits,
                stopped(serving),
            )
            .await;
        }
    };
    tokio::join!(main, peer_api, shutdown);
    reloads.abort();
    Ok(())
}
