//! The `groupcached` binary's node: turning a validated [`Config`] into a
//! running node, its etcd or DNS discovery, its listeners and its shutdown.
//!
//! Two steps, so that nothing the flags say can fail once a port is bound:
//! [`App::new`] builds everything that needs no listener (HTTP clients, TLS
//! material, every group's getter), and [`App::run`] takes the bound
//! listeners, learns this node's URL from them when `--self` is not given,
//! assembles the node, and serves until shutdown.
//!
//! Long-lived background tasks (etcd or DNS discovery, the TLS reload watcher) are
//! watched: one that panics or ends before shutdown is logged by name and
//! stops the node, and [`App::run`] returns the error, instead of the node
//! running on silently without membership or certificate reloads.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::cmd::config::{Config, GroupSpec};
use crate::discovery;
use crate::discovery::dns::{self, DnsError, DnsResolver};
use crate::discovery::{DnsStatus, EtcdStatus, PeerSource};
use crate::group::freshness::Lifetime;
use crate::group::getter::{Getter, GetterError};
use crate::http::routes;
use crate::http::serve_options::ServeOptions;
use crate::http::server;
use crate::http_client::{HttpClient, LoadBudget};
use crate::node::builder::{BuildError, NodeBuilder};
use crate::node::{GroupParts, Node};
use crate::origin::{HttpOrigin, TemplateError};
use crate::snapshot::{SnapshotError, SnapshotFile};
use crate::tls::{self, ClientAuth};
use crate::value::Value;
use crate::wire;

/// Why the node could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// A `--group` origin that cannot be used.
    #[error("--group {group}: {error}")]
    Origin {
        /// The group's name.
        group: String,
        /// What is wrong with its origin template.
        error: TemplateError,
    },
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

/// A node checked and built as far as it can be without its listeners.
pub(crate) struct App {
    config: Config,
    groups: Vec<GroupParts>,
    peer_http: HttpClient,
    /// With `--peers-dns` or `--peers-srv`.
    dns: Option<DnsResolver>,
    /// With `--snapshot`: the path, locked for this process's life.
    snapshot: Option<Arc<SnapshotFile>>,
}

impl App {
    /// Builds the clients and every group's getter from `config`: every
    /// error the flags can cause shows here, before anything is bound.
    pub(crate) fn new(config: Config) -> Result<App, StartError> {
        let (origin_http, peer_http) = http_clients(&config);
        let groups = config
            .groups
            .iter()
            .map(|spec| {
                Ok(GroupParts {
                    name: spec.name.clone(),
                    cache_bytes: config.cache_bytes,
                    getter: origin_getter(spec, &origin_http, config.max_conns_per_peer)?,
                    ttl: spec.ttl,
                    hot_policy: config.hot_policy,
                })
            })
            .collect::<Result<_, StartError>>()?;
        let dns = config.dns.clone().map(DnsResolver::new).transpose()?;
        Ok(App {
            config,
            groups,
            peer_http,
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
            groups,
            peer_http,
            dns,
            snapshot,
        } = self;
        // Before any task is spawned: an error here leaves nothing running.
        let addr = listener.local_addr()?;
        let peer_addr = peer_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let self_url = match &config.self_url {
            Some(url) => url.clone(),
            None => {
                let (peer_api, tls) = match peer_addr {
                    Some(peer) => (peer, &config.tls.peer),
                    None => (addr, &config.tls.main),
                };
                let scheme = if tls.is_some() { "https" } else { "http" };
                let peer_api = match config.host_address {
                    Some(ip) if peer_api.ip().is_unspecified() => {
                        SocketAddr::new(ip, peer_api.port())
                    }
                    _ => peer_api,
                };
                format!("{scheme}://{peer_api}")
            }
        };
        let (source, etcd) = match config.etcd.clone() {
            None => (PeerSource::Static, None),
            Some(etcd) => {
                let (status, status_receiver) = watch::channel(EtcdStatus::default());
                (PeerSource::Etcd(status_receiver), Some((etcd, status)))
            }
        };
        // Flags allow one source: DNS replaces the static one.
        let (source, dns) = match dns {
            None => (source, None),
            Some(resolver) => {
                let (status, status_receiver) = watch::channel(DnsStatus::default());
                (PeerSource::Dns(status_receiver), Some((resolver, status)))
            }
        };
        let node = node_builder(&config, groups, peer_http, self_url.clone())
            .source(source)
            .build()?;
        // Before the node registers or serves: a warm cache from the start.
        if let Some(snapshot) = &snapshot {
            restore_snapshot(&node, snapshot, config.snapshot_max_age).await;
        }
        let mut background = Background::default();
        if let Some((etcd, status)) = etcd {
            let node = node.clone();
            background.spawn("etcd discovery", move |stop| {
                discovery::etcd::run(etcd, node, status, stop.cancelled_owned())
            });
        }
        if let Some((resolver, status)) = dns {
            let node = node.clone();
            // --peers-dns without a port: the port peers reach this node on.
            let port = peer_addr.unwrap_or(addr).port();
            background.spawn("DNS discovery", move |stop| {
                dns::run(resolver, node, port, status, stop.cancelled_owned())
            });
        }
        tracing::info!(
            addr = %addr,
            peer_addr = ?peer_addr,
            self_url = %self_url,
            peers = ?node.peers().list(),
            etcd = ?config.etcd.as_ref().map(|e| &e.endpoints),
            dns = ?config.dns.as_ref().map(|d| &d.query),
            "groupcached serving"
        );
        let tls = config.tls;
        let open_peer_api = tls
            .main
            .as_ref()
            .is_none_or(|t| t.client_auth == ClientAuth::Off);
        if config.protocol.has_writes() && peer_addr.is_none() && open_peer_api {
            tracing::warn!(
                "the peer API on {addr} accepts PUT/DELETE from anyone who reaches it \
                 ({} pool): serve it on a private address with --peer-listen, or require \
                 client certificates with --peer-client-ca",
                config.protocol
            );
        }
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
        // Shutdown: stop the background tasks (discovery revokes its lease
        // first), then the servers, which drain.
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
        let mut options = ServeOptions::new()
            .header_read_timeout(config.header_read_timeout)
            .body_read_timeout(config.body_read_timeout);
        if let Some(max) = config.max_connections {
            options = options.max_connections(max);
        }
        let main = server::serve_with(
            listener,
            node.clone(),
            options.clone().server_tls(tls.main).apis(main_apis),
            serving.clone().cancelled_owned(),
        );
        let snapshot_of = node.clone();
        let peer_api = async {
            if let Some(peer_listener) = peer_listener {
                let options = options.server_tls(tls.peer).apis(routes::Apis::Peers);
                server::serve_with(peer_listener, node, options, serving.cancelled_owned()).await;
            }
        };
        let ((), (), ended) = tokio::join!(main, peer_api, shutdown);
        // After the drain: nothing changes the caches any more.
        if let Some(snapshot) = snapshot {
            save_snapshot(snapshot_of, snapshot).await;
        }
        match ended {
            Some(ended) => Err(ended.into()),
            None => Ok(()),
        }
    }
}

/// Removes temporary files left by a process that died while writing,
/// then reads `--snapshot` back into `node`'s caches, once; any problem is
/// logged in one line and the node starts empty.
async fn restore_snapshot(node: &Node, snapshot: &Arc<SnapshotFile>, max_age: Duration) {
    let path = snapshot.path().display().to_string();
    let (reader, file) = (node.clone(), Arc::clone(snapshot));
    let read = tokio::task::spawn_blocking(move || {
        let leftovers = file.remove_leftovers();
        (leftovers, file.restore(&reader, max_age))
    });
    let (leftovers, restored) = match read.await {
        Ok(done) => done,
        Err(e) => {
            tracing::warn!(error = %e, "snapshot not used; starting empty");
            return;
        }
    };
    match leftovers {
        Ok(removed) if removed.files > 0 => tracing::info!(
            files = removed.files,
            bytes = removed.bytes,
            "removed the temporary snapshot files of a process that died while writing"
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(path = %path, error = %e, "temporary snapshot files left in place")
        }
    }
    match restored {
        Ok(counts) => tracing::info!(
            path = %path,
            values = counts.values,
            bytes = counts.bytes,
            skipped = counts.skipped,
            "snapshot restored"
        ),
        Err(e) if e.is_missing() => {
            tracing::info!(path = %path, "no snapshot yet; starting empty");
        }
        Err(e) => {
            tracing::warn!(path = %path, error = %e, "snapshot not used; starting empty");
        }
    }
}

/// Writes `node`'s main caches to `--snapshot`; a failure is logged and
/// the exit stays clean.
async fn save_snapshot(node: Node, snapshot: Arc<SnapshotFile>) {
    let path = snapshot.path().display().to_string();
    match tokio::task::spawn_blocking(move || snapshot.save(&node)).await {
        Ok(Ok(counts)) => tracing::info!(
            path = %path,
            values = counts.values,
            bytes = counts.bytes,
            "snapshot written"
        ),
        Ok(Err(e)) => tracing::error!(path = %path, error = %e, "snapshot not written"),
        Err(e) => tracing::error!(error = %e, "snapshot not written"),
    }
}

/// The clients for origin loads and for peer fetches (each with its own TLS
/// configuration) and the one load budget they share. Origins get `--origin-timeout` and values up to
/// `--max-value-bytes`. A peer fetch may have to wait for the owner's own
/// origin load, so it gets `--origin-timeout` + `--peer-timeout`, and
/// accepts a `GetResponse` carrying a value of up to `--max-value-bytes`:
/// what an owner loads, a requester accepts.
fn http_clients(config: &Config) -> (HttpClient, HttpClient) {
    let max_value = usize::try_from(config.max_value_bytes).unwrap_or(usize::MAX);
    let budget = LoadBudget::new(config.load_budget);
    let client = |tls| {
        HttpClient::with_tls(config.peer_timeout, config.max_conns_per_peer, tls)
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

/// The getter of a `--group`: the built-in `echo`, or an HTTP origin.
fn origin_getter(
    spec: &GroupSpec,
    http: &HttpClient,
    max_conns: usize,
) -> Result<Arc<dyn Getter>, StartError> {
    if spec.origin == "echo" {
        // The echo origin sends no caching headers: only the policy applies.
        let ttl = spec.ttl;
        return Ok(Arc::new(move |key: Vec<u8>| async move {
            let expiry = ttl.expiry(Lifetime::Unspecified, crate::value::now());
            Ok::<_, GetterError>(Value::new(key, expiry))
        }));
    }
    let origin = HttpOrigin::new(&spec.name, &spec.origin, http.clone(), max_conns, spec.ttl)
        .map_err(|error| StartError::Origin {
            group: spec.name.clone(),
            error,
        })?;
    Ok(Arc::new(origin))
}

/// The node's long-lived background tasks (etcd discovery, the TLS reload
/// watcher): any that ends before shutdown, or panics, is an error.
#[derive(Default)]
struct Background {
    tasks: JoinSet<()>,
    names: HashMap<Id, &'static str>,
    /// Cancelled at shutdown; each task is handed a child of it.
    stop: CancellationToken,
}

/// A background task panicked or ended before shutdown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("background task {task} {how}")]
pub(crate) struct TaskEnded {
    /// The task's name.
    pub(crate) task: &'static str,
    /// `ended`, `panicked: MESSAGE` or `was cancelled`.
    pub(crate) how: String,
}

impl Background {
    /// Spawns the task `start` makes; it must end once its token is
    /// cancelled.
    fn spawn<F>(&mut self, name: &'static str, start: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let task = self.tasks.spawn(start(self.stop.child_token()));
        self.names.insert(task.id(), name);
    }

    /// Resolves when the first task ends, saying which and how; never when
    /// there are none.
    async fn first_ended(&mut self) -> TaskEnded {
        let Some(ended) = self.tasks.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, how) = match ended {
            Ok((id, ())) => (id, "ended".to_string()),
            Err(e) if e.is_panic() => {
                let id = e.id();
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                (id, format!("panicked: {message}"))
            }
            Err(e) => (e.id(), "was cancelled".to_string()),
        };
        let task = self.names.get(&id).copied().unwrap_or("unnamed");
        TaskEnded { task, how }
    }

    /// Cancels every task and waits for them to finish.
    async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The node `config` describes, over `groups` and the binary's peer
/// client, known to its peers as `self_url`: the one way the binary builds
/// a node.
fn node_builder(
    config: &Config,
    groups: Vec<GroupParts>,
    peer_http: HttpClient,
    self_url: String,
) -> NodeBuilder {
    let mut builder = NodeBuilder::new(self_url)
        .base_path(config.base_path.clone())
        .protocol(config.protocol)
        .replicas(config.replicas)
        .max_conns_per_peer(config.max_conns_per_peer)
        .probe_timeout(config.probe_timeout)
        .stale_wait(config.stale_wait)
        .peers(config.peers.clone())
        .peer_client(peer_http)
        .writes(config.allow_writes, config.max_value_bytes);
    for group in groups {
        builder = builder.group_parts(group);
    }
    builder
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
    let App {
        config,
        groups,
        peer_http,
        ..
    } = App::new(config).expect("valid groups");
    let url = "http://127.0.0.1:1".to_string();
    let builder = node_builder(&config, groups, peer_http, url);
    builder.build().expect("a valid node")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// An embedder who sets nothing gets the node the binary runs with no
    /// flags but a group.
    #[test]
    fn builder_defaults_are_the_binarys() {
        let args =
            crate::cmd::cli::Args::try_parse_from(["groupcached", "--group", "g=echo"]).unwrap();
        let config = args.into_config().unwrap();
        let builder = NodeBuilder::new("http://127.0.0.1:1");
        assert_eq!(builder.base_path, config.base_path);
        assert_eq!(builder.protocol, config.protocol);
        assert_eq!(builder.replicas, config.replicas);
        assert_eq!(builder.max_conns_per_peer, config.max_conns_per_peer);
        assert_eq!(builder.probe_timeout, config.probe_timeout);
        assert_eq!(builder.stale_wait, config.stale_wait);
        assert_eq!(
            builder.fetch_timeout,
            config.origin_timeout + config.peer_timeout,
            "a fetch may wait for the owner's own origin load"
        );
        assert_eq!(builder.max_value, config.max_value_bytes);
        assert_eq!(builder.load_budget, config.load_budget);
        assert!(builder.peers.is_empty() && config.peers.is_empty());
    }

    #[tokio::test]
    async fn a_panicking_task_is_reported_by_name() {
        let mut background = Background::default();
        background.spawn("idle", |stop| async move { stop.cancelled().await });
        background.spawn("doomed", |_| async {
            tokio::task::yield_now().await;
            panic!("lost the lease");
        });
        let ended = background.first_ended().await;
        assert_eq!(
            ended.to_string(),
            "background task doomed panicked: lost the lease"
        );
        // Stopping waits for "idle", which ends when told to.
        background.stop().await;
    }

    #[tokio::test]
    async fn a_task_that_returns_is_reported_too() {
        let mut background = Background::default();
        background.spawn("quitter", |_| async {});
        let ended = background.first_ended().await;
        assert_eq!(ended.to_string(), "background task quitter ended");
    }

    #[tokio::test]
    async fn no_tasks_never_end() {
        let mut background = Background::default();
        let mut never = std::pin::pin!(background.first_ended());
        let polled =
            std::future::poll_fn(|cx| std::task::Poll::Ready(never.as_mut().poll(cx))).await;
        assert!(polled.is_pending());
    }
}
