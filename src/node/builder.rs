//! Embedding: a node from a self URL, its peers and its groups, in about
//! three calls (golang's `NewGroup`, `NewHTTPPoolOpts` and `Set`).
//!
//! ```no_run
//! # async fn square(key: Vec<u8>) -> Result<bytes::Bytes, groupcached::GetterError> {
//! #     Ok(key.into())
//! # }
//! # async fn embed() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! let node = groupcached::NodeBuilder::new("http://127.0.0.1:8081")
//!     .peers(["http://127.0.0.1:8082"])
//!     .group("squares", 64 << 20, square)
//!     .build()?;
//! let value = node.get("squares", b"12").await?;
//! groupcached::serve(listener, node, std::future::pending()).await;
//! # Ok(())
//! # }
//! ```
//!
//! Every option has the `groupcached` binary's default, and [`NodeBuilder::build`]
//! checks what the binary's flags check: peer URLs, the base path, group
//! names (each given once) and the numeric limits. Values never expire
//! unless the getter says so, and the node accepts no writes.

use std::sync::Arc;
use std::time::Duration;

use crate::consistenthash::DEFAULT_REPLICAS;
use crate::discovery::PeerSource;
use crate::group::freshness::TtlPolicy;
use crate::group::getter::Getter;
use crate::group::{HotPolicy, DEFAULT_STALE_WAIT};
use crate::http_client::{HttpClient, LoadBudget};
use crate::node::{GroupParts, Node, Parts};
use crate::peers::health::DEFAULT_PROBE_TIMEOUT;
use crate::peers::picker::PickPeer;
use crate::peers::protocol::Protocol;
use crate::peers::url::{self, base_path_is_valid, InvalidPeerUrl};
use crate::peers::Peers;
use crate::units::{limits, DEFAULT_MAX_VALUE_BYTES};
use crate::wire::{self, DEFAULT_BASE_PATH};

/// Builds a [`Node`]; start with [`NodeBuilder::new`].
#[must_use]
pub struct NodeBuilder {
    pub(crate) self_url: String,
    pub(crate) base_path: String,
    pub(crate) peers: Vec<String>,
    groups: Vec<GroupParts>,
    pub(crate) protocol: Protocol,
    pub(crate) replicas: usize,
    pub(crate) fetch_timeout: Duration,
    pub(crate) max_conns_per_peer: usize,
    /// `--probe-timeout`: liveness probes of a peer a fetch waits on.
    pub(crate) probe_timeout: Duration,
    /// `--stale-wait`: how long a get with a stale value waits for its
    /// reload.
    pub(crate) stale_wait: Duration,
    /// `--max-value-bytes`: the largest value fetched or written.
    pub(crate) max_value: u64,
    /// `--load-budget`: bytes of values and bodies being read at once.
    pub(crate) load_budget: u64,
    /// What only the binary sets: its own peer client (TLS, shared
    /// budget), where the peer list comes from, and user writes.
    peer_http: Option<HttpClient>,
    source: PeerSource,
    allow_writes: bool,
    picker: Option<Arc<dyn PickPeer>>,
    /// The stale windows and negative TTL of the groups `group` adds.
    policy: TtlPolicy,
    hot_policy: HotPolicy,
}

/// Why [`NodeBuilder::build`] made no node.
///
/// ```
/// use groupcached::{BuildError, NodeBuilder};
/// let error = NodeBuilder::new("http://10.0.0.1:8080").base_path("no-slashes").build();
/// assert!(matches!(error, Err(BuildError::BasePath(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A peer URL (or the node's own) is not `http://host:port`.
    #[error(transparent)]
    Url(#[from] InvalidPeerUrl),
    /// The base path is not `/SEGMENT/.../` or shadows the user API.
    #[error(
        "base path {0:?}: must be /SEGMENT/.../ of A-Z a-z 0-9 - . _ ~ and not start with /cache/"
    )]
    BasePath(String),
    /// A group name is empty or contains `/`.
    #[error("group name {0:?}: must be non-empty and contain no '/'")]
    GroupName(String),
    /// Two groups have the same name.
    #[error("group {0:?}: a group of that name was already given")]
    DuplicateGroup(String),
    /// A number outside the range the binary's flag of that name allows.
    #[error("{option}: {value} is not between {min} and {max}")]
    OutOfRange {
        /// The builder method.
        option: &'static str,
        /// The value given.
        value: u64,
        /// The smallest value allowed.
        min: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// A zero fetch timeout would fail every peer fetch.
    #[error("fetch_timeout: must be more than zero")]
    ZeroTimeout,
}

impl NodeBuilder {
    /// Starts building a node whose peers know it as `self_url`
    /// (`http://host:port`).
    pub fn new(self_url: impl Into<String>) -> NodeBuilder {
        NodeBuilder {
            self_url: self_url.into(),
            base_path: DEFAULT_BASE_PATH.to_string(),
            peers: Vec::new(),
            groups: Vec::new(),
            protocol: Protocol::default(),
            replicas: DEFAULT_REPLICAS,
            // The binary's --origin-timeout + --peer-timeout: a fetch may
            // wait for the owner's own origin load.
            fetch_timeout: Duration::from_secs(15),
            max_conns_per_peer: 64,
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
            stale_wait: DEFAULT_STALE_WAIT,
            max_value: DEFAULT_MAX_VALUE_BYTES,
            // The binary's default: its 64 MiB --cache-bytes.
            load_budget: 64 << 20,
            peer_http: None,
            source: PeerSource::Static,
            allow_writes: false,
            picker: None,
            policy: TtlPolicy::default(),
            hot_policy: HotPolicy::default(),
        }
    }

    /// The peer API's path prefix (`--base-path`; default `/_groupcache/`),
    /// the same on every node of the pool.
    pub fn base_path(mut self, base_path: impl Into<String>) -> NodeBuilder {
        self.base_path = base_path.into();
        self
    }

    /// The other nodes of the pool (`HTTPPool.Set`); this node's own URL is
    /// added if missing. Every node must list the same peers.
    pub fn peers<I>(mut self, peers: I) -> NodeBuilder
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.peers.extend(peers.into_iter().map(Into::into));
        self
    }

    /// A group named `name` whose main and hot caches hold up to
    /// `cache_bytes` together, loading misses from `getter` (golang's
    /// `NewGroup`).
    pub fn group(mut self, name: &str, cache_bytes: u64, getter: impl Getter) -> NodeBuilder {
        self.groups.push(GroupParts {
            name: name.to_string(),
            cache_bytes,
            getter: Arc::new(getter),
            ttl: self.policy,
            hot_policy: self.hot_policy,
        });
        self
    }

    /// How groups keep hot copies of values fetched from their owners
    /// (`--hot-policy`; default [`HotPolicy::Heat`]), for every group.
    pub fn hot_policy(mut self, policy: HotPolicy) -> NodeBuilder {
        self.hot_policy = policy;
        for group in &mut self.groups {
            group.hot_policy = policy;
        }
        self
    }

    /// How long after expiry every group's values are still served when
    /// reloading them fails, and served at once while one reload runs in
    /// the background (`--stale-if-error`, `--stale-while-revalidate`;
    /// default zero, off), for values whose getter gives no
    /// [`Value::grace`](crate::Value::grace) of its own.
    pub fn stale(mut self, if_error: Duration, while_revalidate: Duration) -> NodeBuilder {
        self.policy.stale_if_error = Some(if_error);
        self.policy.stale_while_revalidate = Some(while_revalidate);
        self.apply_policy()
    }

    /// How long a get whose expired value may answer if its reload fails
    /// (it is within `stale-if-error`) waits for the reload before
    /// answering stale (`--stale-wait`; default 1 s): a hanging origin
    /// holds no one for its whole deadline. The reload runs on and its
    /// value, if one comes, replaces the stale one. `Duration::ZERO`
    /// answers stale at once.
    pub fn stale_wait(mut self, wait: Duration) -> NodeBuilder {
        self.stale_wait = wait;
        self
    }

    /// How long every group remembers a key its getter answered with
    /// [`GetterError::NotFound`](crate::GetterError::NotFound)
    /// (`--negative-ttl`; default zero, not at all).
    pub fn negative_ttl(mut self, ttl: Duration) -> NodeBuilder {
        self.policy.negative_ttl = Some(ttl);
        self.apply_policy()
    }

    /// The longest every group remembers a not-found whose getter gave no
    /// expiry of its own (`--negative-max-ttl`; default the negative TTL,
    /// or a minute without one). It caps what an HTTP origin's headers
    /// say for a 404.
    pub fn negative_max_ttl(mut self, ttl: Duration) -> NodeBuilder {
        self.policy.negative_max_ttl = Some(ttl);
        self.apply_policy()
    }

    /// The stale windows and negative TTLs, on the groups added so far.
    fn apply_policy(mut self) -> NodeBuilder {
        for group in &mut self.groups {
            group.ttl.stale_if_error = self.policy.stale_if_error;
            group.ttl.stale_while_revalidate = self.policy.stale_while_revalidate;
            group.ttl.negative_ttl = self.policy.negative_ttl;
            group.ttl.negative_max_ttl = self.policy.negative_max_ttl;
        }
        self
    }

    /// Which Go groupcache the pool speaks (`--protocol`; default golang's).
    pub fn protocol(mut self, protocol: Protocol) -> NodeBuilder {
        self.protocol = protocol;
        self
    }

    /// Points per peer on the ring (`--replicas`; default 50).
    pub fn replicas(mut self, replicas: usize) -> NodeBuilder {
        self.replicas = replicas;
        self
    }

    /// The deadline of one fetch from a peer, including the owner's own
    /// load (default 15 s, the binary's `--origin-timeout` +
    /// `--peer-timeout`).
    pub fn fetch_timeout(mut self, timeout: Duration) -> NodeBuilder {
        self.fetch_timeout = timeout;
        self
    }

    /// Most concurrent requests to one peer (`--max-conns-per-peer`;
    /// default 64).
    pub fn max_conns_per_peer(mut self, max: usize) -> NodeBuilder {
        self.max_conns_per_peer = max;
        self
    }

    /// How long a peer has to answer a liveness probe (`--probe-timeout`;
    /// default 1 s). Once a fetch has waited half of it, the owner is
    /// probed with a `GET` of the base path; a peer that does not answer
    /// in time is marked down and its keys load locally at once, instead
    /// of after the whole `fetch_timeout`. `Duration::ZERO` turns probes
    /// off.
    pub fn probe_timeout(mut self, timeout: Duration) -> NodeBuilder {
        self.probe_timeout = timeout;
        self
    }

    /// Groups ask `picker` which peer owns a key, and fetch from the peer it
    /// returns, instead of this node's ring and HTTP client (golang's
    /// `RegisterPeerPicker`): for a transport or placement of the
    /// embedder's own. The peer list, `/peers` and user writes still use
    /// the ring.
    pub fn picker(mut self, picker: impl PickPeer) -> NodeBuilder {
        self.picker = Some(Arc::new(picker));
        self
    }

    /// The binary's peer client (its TLS settings, its deadline, the load
    /// budget it shares with origins), instead of one made from
    /// `fetch_timeout` and `max_conns_per_peer`.
    pub(crate) fn peer_client(mut self, http: HttpClient) -> NodeBuilder {
        self.peer_http = Some(http);
        self
    }

    /// Where the peer list comes from, for `/peers` and the status page.
    pub(crate) fn source(mut self, source: PeerSource) -> NodeBuilder {
        self.source = source;
        self
    }

    /// `--allow-writes` and `--max-value-bytes`.
    pub(crate) fn writes(mut self, allowed: bool, max_value: u64) -> NodeBuilder {
        self.allow_writes = allowed;
        self.max_value = max_value;
        self
    }

    /// A group as the binary makes it, with its TTL policy.
    pub(crate) fn group_parts(mut self, parts: GroupParts) -> NodeBuilder {
        self.groups.push(parts);
        self
    }

    /// Checks everything and makes the node; with static peers it is
    /// ready to [`Node::get`] and [`crate::serve`] at once.
    pub fn build(self) -> Result<Node, BuildError> {
        url::check_peer_urls(std::iter::once(&self.self_url).chain(&self.peers))?;
        if !base_path_is_valid(&self.base_path) {
            return Err(BuildError::BasePath(self.base_path));
        }
        for (i, group) in self.groups.iter().enumerate() {
            if group.name.is_empty() || group.name.contains('/') {
                return Err(BuildError::GroupName(group.name.clone()));
            }
            if self.groups[..i].iter().any(|g| g.name == group.name) {
                return Err(BuildError::DuplicateGroup(group.name.clone()));
            }
        }
        in_range("replicas", self.replicas, limits::REPLICAS)?;
        in_range(
            "max_conns_per_peer",
            self.max_conns_per_peer,
            limits::MAX_CONNS_PER_PEER,
        )?;
        if self.fetch_timeout.is_zero() {
            return Err(BuildError::ZeroTimeout);
        }
        let http = self.peer_http.unwrap_or_else(|| {
            let max_value = usize::try_from(self.max_value).unwrap_or(usize::MAX);
            HttpClient::new(self.fetch_timeout, self.max_conns_per_peer)
                .with_budget(LoadBudget::new(self.load_budget))
                .with_max_body(wire::max_response_len(max_value))
        });
        let peers = Peers::new(
            self.self_url.clone(),
            self.base_path.clone(),
            self.replicas,
            http,
            self.max_conns_per_peer,
        )
        .with_protocol(self.protocol)
        .with_probe_timeout(self.probe_timeout);
        let mut list = self.peers;
        if !list.contains(&self.self_url) {
            list.push(self.self_url);
        }
        peers.set(list);
        Ok(Node::assemble(Parts {
            peers: Arc::new(peers),
            base_path: self.base_path,
            source: self.source,
            groups: self.groups,
            allow_writes: self.allow_writes,
            max_value: self.max_value,
            picker: self.picker,
            stale_wait: self.stale_wait,
        }))
    }
}

/// `value` if it lies in `min..=max`.
fn in_range(option: &'static str, value: usize, (min, max): (u64, u64)) -> Result<(), BuildError> {
    let value = u64::try_from(value).unwrap_or(u64::MAX);
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(BuildError::OutOfRange {
            option,
            value,
            min,
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::getter::GetterError;

    async fn echo(key: Vec<u8>) -> Result<bytes::Bytes, GetterError> {
        Ok(key.into())
    }

    fn builder() -> NodeBuilder {
        NodeBuilder::new("http://127.0.0.1:1").group("g", 1 << 20, echo)
    }

    fn error(builder: NodeBuilder) -> String {
        match builder.build() {
            Ok(_) => panic!("built"),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn a_built_node_gets_through_its_getter() {
        let node = builder().build().unwrap();
        let value = node.get("g", b"k").await.unwrap();
        assert_eq!(&value.bytes[..], b"k");
        assert_eq!(node.group("g").unwrap().name(), "g");
        assert_eq!(node.base_path(), "/_groupcache/");
        let missing = node.get("nope", b"k").await.unwrap_err();
        assert_eq!(missing.to_string(), "no such group: nope");
    }

    /// Two nodes built and served in one process, each on a listener bound
    /// to port 0: a key owned by the other node is loaded there, once, and
    /// reaches the asker over the peer API; `serve` returns on shutdown.
    #[tokio::test]
    async fn two_built_nodes_fetch_from_each_other_over_http() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        use tokio::net::TcpListener;

        let mut listeners = Vec::new();
        let mut urls = Vec::new();
        for _ in 0..2 {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            urls.push(format!("http://{}", listener.local_addr().unwrap()));
            listeners.push(listener);
        }
        let loads: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let mut nodes = Vec::new();
        let mut served = Vec::new();
        let (stop, stopped) = tokio::sync::watch::channel(());
        for (i, listener) in listeners.into_iter().enumerate() {
            let loads = loads.clone();
            let getter = move |key: Vec<u8>| {
                loads[i].fetch_add(1, SeqCst);
                async move { Ok::<_, GetterError>(bytes::Bytes::from([b"v:", &key[..]].concat())) }
            };
            let node = NodeBuilder::new(urls[i].clone())
                .peers(urls.clone())
                .group("g", 1 << 20, getter)
                .build()
                .unwrap();
            nodes.push(node.clone());
            let mut stopped = stopped.clone();
            served.push(tokio::spawn(crate::serve(listener, node, async move {
                let _ = stopped.changed().await;
            })));
        }

        let ring = crate::consistenthash::Ring::new(DEFAULT_REPLICAS, &urls);
        let key = (0..)
            .map(|i| format!("key-{i}"))
            .find(|key| ring.get(key.as_bytes()) == Some(urls[1].as_str()))
            .unwrap(); // the ring has two nodes, so some key is node 1's
        for _ in 0..3 {
            let value = nodes[0].get("g", key.as_bytes()).await.unwrap();
            assert_eq!(value.bytes, format!("v:{key}").as_bytes());
        }
        // Node 1 loaded it once; node 0 asked node 1 (and at most mirrored
        // it in its hot cache), never its own getter.
        assert_eq!(loads[1].load(SeqCst), 1);
        assert_eq!(loads[0].load(SeqCst), 0);

        stop.send(()).unwrap();
        for serving in served {
            serving.await.unwrap();
        }
    }

    #[test]
    fn bad_options_are_one_line_errors() {
        let cases = [
            (builder().base_path("/cache/x/"), "base path \"/cache/x/\""),
            (builder().base_path("nope"), "base path \"nope\""),
            (builder().peers(["http://a:1/"]), "peer URL \"http://a:1/\""),
            (NodeBuilder::new("localhost"), "peer URL \"localhost\""),
            (
                builder().group("g", 1, echo),
                "group \"g\": a group of that name",
            ),
            (builder().group("a/b", 1, echo), "group name \"a/b\""),
            (builder().group("", 1, echo), "group name \"\""),
            (
                builder().replicas(0),
                "replicas: 0 is not between 1 and 10000",
            ),
            (builder().max_conns_per_peer(0), "max_conns_per_peer: 0"),
            (builder().fetch_timeout(Duration::ZERO), "fetch_timeout"),
        ];
        for (builder, expected) in cases {
            let error = error(builder);
            assert!(error.starts_with(expected), "{error}");
            assert_eq!(error.lines().count(), 1, "{error}");
        }
    }

    #[tokio::test]
    async fn peers_can_be_set_at_any_time_and_bad_lists_change_nothing() {
        let node = builder().build().unwrap();
        node.set_peers(["http://127.0.0.1:2"]).unwrap();
        let mut want = vec![
            "http://127.0.0.1:1".to_string(),
            "http://127.0.0.1:2".into(),
        ];
        want.sort();
        let mut list = node.peer_list();
        list.sort();
        assert_eq!(list, want, "this node is added");
        let error = node
            .set_peers(["http://127.0.0.1:3", "http://a:0"])
            .unwrap_err();
        assert_eq!(error.url, "http://a:0");
        list = node.peer_list();
        list.sort();
        assert_eq!(list, want, "a bad list changes nothing");
    }
}
