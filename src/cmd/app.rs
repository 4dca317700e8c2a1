//! The `groupcached` binary's node: turning a checked [`Config`] into a
//! running node, its etcd or DNS discovery, its listeners and its shutdown.
//!
//! Two steps, so that nothing the flags say can fail once a port is bound:
//! the flags were checked into a [`Config`] (its node builder ran every
//! check), [`App::new`] adds what needs no listener (HTTP clients, the DNS
//! resolver), and [`App::run`] takes the bound listeners, learns this
//! node's URL from them when `--self` is not given, builds the node, and
//! serves until shutdown. A background task that ends before shutdown
//! stops the node, and [`App::run`] returns its error.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cmd::background::{Background, TaskEnded};
use crate::cmd::config::Config;
use crate::cmd::tls_flags::TlsSettings;
use crate::cmd::warm_restart::{restore_snapshot, save_snapshot};
use crate::discovery::dns::{self, DnsError, DnsResolver};
use crate::discovery::etcd::EtcdConfig;
use crate::discovery::{self, DnsStatus, EtcdStatus, PeerSource};
use crate::http::serve_options::ServeOptions;
use crate::http::{routes, server};
use crate::http_client::{HttpClient, LoadBudget};
use crate::node::builder::BuildError;
use crate::node::Node;
use crate::peers::protocol::Protocol;
use crate::snapshot::{SnapshotError, SnapshotFile};
use crate::tls::listener::{self as tls, ClientAuth};
use crate::wire;

/// Why the node could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// The listener's address cannot be read.
    #[error("reading the listener's address: {0}")]
    Listener(#[from] std::io::Error),
    /// The node cannot be built from the configuration.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The DNS resolver of `--peers-dns` or `--peers-srv` cannot be set up.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// The `--snapshot` path is used by another process, or its lock
    /// file cannot be created.
    #[error("--snapshot {path}: {error}")]
    Snapshot {
        /// The path given.
        path: String,
        /// Why it cannot be claimed.
        error: SnapshotError,
    },
    /// A background task panicked or ended before shutdown.
    #[error(transparent)]
    Task(#[from] TaskEnded),
}

/// A node checked and set up as far as it can be without its listeners.
pub(crate) struct App {
    config: Config,
    /// With `--peers-dns` or `--peers-srv`.
    dns: Option<DnsResolver>,
    /// With `--snapshot`: the path, locked for this process's life.
    snapshot: Option<Arc<SnapshotFile>>,
}

/// The discovery the flags ask for (at most one source), and where it
/// reports for `/peers` and the status page.
#[derive(Default)]
struct Discovery {
    etcd: Option<(EtcdConfig, watch::Sender<EtcdStatus>)>,
    dns: Option<(DnsResolver, watch::Sender<DnsStatus>)>,
}

impl App {
    /// Gives the node its HTTP clients and sets up the DNS resolver: every
    /// error the flags can cause shows here or before, before anything is
    /// bound.
    pub(crate) fn new(mut config: Config) -> Result<App, StartError> {
        let (origin_http, peer_http) = http_clients(&config);
        config.node.set_clients(origin_http, peer_http);
        let dns = config.dns.clone().map(DnsResolver::new).transpose()?;
        Ok(App {
            config,
            dns,
            snapshot: None,
        })
    }

    /// Locks the `--snapshot` path for this process, before anything is
    /// bound: a second node on the same path stops here. Not part of
    /// [`App::new`], so that `--check` leaves a running node's lock alone.
    pub(crate) fn claim_snapshot(mut self) -> Result<App, StartError> {
        if let Some(path) = self.config.snapshot.as_deref() {
            let claimed = SnapshotFile::claim(path).map_err(|error| StartError::Snapshot {
                path: path.display().to_string(),
                error,
            })?;
            self.snapshot = Some(Arc::new(claimed));
        }
        Ok(self)
    }

    /// Runs the node on `listener` (and the peer API on `peer_listener`,
    /// for `--peer-listen`) until `shutdown` resolves or a background task
    /// ends. With etcd, the node's lease is revoked first, then in-flight
    /// requests drain.
    pub(crate) async fn run(
        self,
        listener: TcpListener,
        peer_listener: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), StartError> {
        let App {
            config,
            dns,
            snapshot,
        } = self;
        // Before any task is spawned: an error here leaves nothing running.
        let addr = listener.local_addr()?;
        let peer_addr = peer_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let self_url = match &config.node.self_url {
            Some(url) => url.clone(),
            None => default_self_url(&config, addr, peer_addr),
        };
        let (source, discovery) = peer_source(config.etcd.clone(), dns);
        let protocol = config.node.protocol;
        let node = config
            .node
            .self_url(self_url.clone())
            .source(source)
            .build()?;
        // Before the node registers or serves: a warm cache from the start.
        if let Some(snapshot) = &snapshot {
            restore_snapshot(&node, snapshot, config.snapshot_max_age).await;
        }
        // --peers-dns without a port: the port peers reach this node on.
        let port = peer_addr.unwrap_or(addr).port();
        let mut background = discovery.spawn(&node, port);
        tracing::info!(
            addr = %addr,
            peer_addr = ?peer_addr,
            self_url = %self_url,
            peers = ?node.peers().list(),
            etcd = ?config.etcd.as_ref().map(|e| &e.endpoints),
            dns = ?config.dns.as_ref().map(|d| &d.query),
            "groupcached serving"
        );
        warn_of_open_writes(protocol, &config.tls, addr, peer_addr.is_some());
        watch_certificates(&mut background, &config.tls);
        let mut options = ServeOptions::new()
            .header_read_timeout(config.header_read_timeout)
            .body_read_timeout(config.body_read_timeout);
        if let Some(max) = config.max_connections {
            options = options.max_connections(max);
        }
        let listeners = (listener, peer_listener);
        let ended = serve(
            node.clone(),
            listeners,
            config.tls,
            options,
            background,
            shutdown,
        )
        .await;
        // After the drain: nothing changes the caches any more.
        if let Some(snapshot) = snapshot {
            save_snapshot(node, snapshot).await;
        }
        match ended {
            Some(ended) => Err(ended.into()),
            None => Ok(()),
        }
    }
}

/// This node's URL without `--self`: the address of the listener peers
/// use (its host's own address for an unspecified one), `https` when it
/// serves TLS.
fn default_self_url(config: &Config, addr: SocketAddr, peer_addr: Option<SocketAddr>) -> String {
    let (peer_api, tls) = match peer_addr {
        Some(peer) => (peer, &config.tls.peer),
        None => (addr, &config.tls.main),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let peer_api = match config.host_address {
        Some(ip) if peer_api.ip().is_unspecified() => SocketAddr::new(ip, peer_api.port()),
        _ => peer_api,
    };
    format!("{scheme}://{peer_api}")
}

/// Where the peer list comes from: the static list, etcd or DNS (the
/// flags allow one), with the discovery that feeds it.
fn peer_source(etcd: Option<EtcdConfig>, dns: Option<DnsResolver>) -> (PeerSource, Discovery) {
    if let Some(etcd) = etcd {
        let (status, status_receiver) = watch::channel(EtcdStatus::default());
        let discovery = Discovery {
            etcd: Some((etcd, status)),
            dns: None,
        };
        return (PeerSource::Etcd(status_receiver), discovery);
    }
    if let Some(resolver) = dns {
        let (status, status_receiver) = watch::channel(DnsStatus::default());
        let discovery = Discovery {
            etcd: None,
            dns: Some((resolver, status)),
        };
        return (PeerSource::Dns(status_receiver), discovery);
    }
    (PeerSource::Static, Discovery::default())
}

impl Discovery {
    /// Starts the discovery task feeding `node`, if there is one; DNS
    /// names without a port get `port`.
    fn spawn(self, node: &Node, port: u16) -> Background {
        let mut background = Background::default();
        if let Some((etcd, status)) = self.etcd {
            let node = node.clone();
            background.spawn("etcd discovery", move |stop| {
                discovery::etcd::run(etcd, node, status, stop.cancelled_owned())
            });
        }
        if let Some((resolver, status)) = self.dns {
            let node = node.clone();
            background.spawn("DNS discovery", move |stop| {
                dns::run(resolver, node, port, status, stop.cancelled_owned())
            });
        }
        background
    }
}

/// Warns when a pool with writes serves its peer API, which takes
/// PUT and DELETE, to anyone who reaches the main listener.
fn warn_of_open_writes(protocol: Protocol, tls: &TlsSettings, addr: SocketAddr, peer_listen: bool) {
    let open_peer_api = tls
        .main
        .as_ref()
        .is_none_or(|t| t.client_auth == ClientAuth::Off);
    if protocol.has_writes() && !peer_listen && open_peer_api {
        tracing::warn!(
            "the peer API on {addr} accepts PUT/DELETE from anyone who reaches it \
             ({protocol} pool): serve it on a private address with --peer-listen, or require \
             client certificates with --peer-client-ca"
        );
    }
}

/// Re-reads the listeners' certificates when their files change.
fn watch_certificates(background: &mut Background, tls: &TlsSettings) {
    let reloads: Vec<_> = [&tls.main, &tls.peer]
        .into_iter()
        .flatten()
        .map(|server| server.cert.clone())
        .collect();
    if !reloads.is_empty() {
        background.spawn("TLS reload watcher", move |stop| async move {
            stop.run_until_cancelled(tls::watch_reloads(reloads)).await;
        });
    }
}

/// Serves `node` on the main listener and the peer listener, if any, until
/// `shutdown` resolves or a background task ends (which it returns). At
/// shutdown the background tasks stop first (discovery revokes its lease),
/// then the servers, which drain.
async fn serve(
    node: Node,
    (listener, peer_listener): (TcpListener, Option<TcpListener>),
    tls: TlsSettings,
    options: ServeOptions,
    mut background: Background,
    shutdown: impl Future<Output = ()>,
) -> Option<TaskEnded> {
    let serving = CancellationToken::new();
    let shutdown = {
        let serving = serving.clone();
        async move {
            let ended = tokio::select! {
                () = shutdown => None,
                ended = background.first_ended() => Some(ended),
            };
            if let Some(ended) = &ended {
                tracing::error!(task = ended.task, error = %ended, "shutting down");
            }
            background.stop().await;
            serving.cancel();
            ended
        }
    };
    let main_apis = match peer_listener {
        Some(_) => routes::Apis::Users,
        None => routes::Apis::All,
    };
    let main = server::serve_with(
        listener,
        node.clone(),
        options.clone().server_tls(tls.main).apis(main_apis),
        serving.clone().cancelled_owned(),
    );
    let peer_api = async {
        if let Some(peer_listener) = peer_listener {
            let options = options.server_tls(tls.peer).apis(routes::Apis::Peers);
            server::serve_with(peer_listener, node, options, serving.cancelled_owned()).await;
        }
    };
    let ((), (), ended) = tokio::join!(main, peer_api, shutdown);
    ended
}

/// The clients for origin loads and for peer fetches (each with its own TLS
/// configuration) and the one load budget they share. Origins get `--origin-timeout` and values up to
/// `--max-value-bytes`. A peer fetch may have to wait for the owner's own
/// origin load, so it gets `--origin-timeout` + `--peer-timeout`, and
/// accepts a `GetResponse` carrying a value of up to `--max-value-bytes`:
/// what an owner loads, a requester accepts.
fn http_clients(config: &Config) -> (HttpClient, HttpClient) {
    let node = &config.node;
    let max_value = usize::try_from(node.max_value).unwrap_or(usize::MAX);
    let budget = LoadBudget::new(node.load_budget);
    let client = |tls| {
        HttpClient::with_tls(config.peer_timeout, node.max_conns_per_peer, tls)
            .with_budget(budget.clone())
    };
    let origin = client(config.tls.origin_client.clone())
        .with_timeout(config.origin_timeout)
        .with_max_body(max_value);
    let peer = client(config.tls.peer_client.clone())
        .with_timeout(config.origin_timeout.saturating_add(config.peer_timeout))
        .with_max_body(wire::max_response_len(max_value));
    (origin, peer)
}

/// For the unit tests of the layers above the node: the node the binary
/// would run with `flags`, known to its (static) peers as
/// `http://127.0.0.1:1`.
#[cfg(test)]
pub(crate) fn test_node(flags: &[&str]) -> crate::node::Node {
    use clap::Parser;
    let args = ["groupcached"].iter().chain(flags);
    let args = crate::cmd::cli::Args::try_parse_from(args).expect("valid flags");
    let config = args.into_config().expect("valid config");
    let App { config, .. } = App::new(config).expect("valid groups");
    let url = "http://127.0.0.1:1".to_string();
    config.node.self_url(url).build().expect("a valid node")
}

#[cfg(test)]
mod tests {
    use crate::node::builder::NodeBuilder;
    use clap::Parser;

    /// An embedder who sets nothing gets the node the binary runs with no
    /// flags but a group.
    #[test]
    fn builder_defaults_are_the_binarys() {
        let args =
            crate::cmd::cli::Args::try_parse_from(["groupcached", "--group", "g=echo"]).unwrap();
        let config = args.into_config().unwrap();
        let flags = &config.node;
        let builder = NodeBuilder::new("http://127.0.0.1:1");
        assert_eq!(builder.base_path, flags.base_path);
        assert_eq!(builder.protocol, flags.protocol);
        assert_eq!(builder.replicas, flags.replicas);
        assert_eq!(builder.max_conns_per_peer, flags.max_conns_per_peer);
        assert_eq!(builder.probe_timeout, flags.probe_timeout);
        assert_eq!(builder.stale_wait, flags.stale_wait);
        assert_eq!(
            builder.fetch_timeout,
            config.origin_timeout + config.peer_timeout,
            "a fetch may wait for the owner's own origin load"
        );
        assert_eq!(builder.max_value, flags.max_value);
        assert_eq!(builder.load_budget, flags.load_budget);
        assert!(builder.peers.is_empty() && flags.peers.is_empty());
    }
}
