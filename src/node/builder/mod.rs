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
//! Every option has the `groupcached` binary's default, and the builder
//! holds the one set of rules a node's settings must follow, for embedders
//! and the binary alike: [`NodeBuilder::build`] checks the peer URLs, the
//! base path, group names (each given once), origin templates, cache sizes,
//! TTLs and the numeric limits; the binary's flags are calls to this
//! builder, and its `--check` runs the same checks. Values never expire
//! unless the getter says so, and the node accepts no writes.

#[cfg(feature = "binary")]
mod binary;
mod group;
pub(crate) mod rules;

use std::cell::OnceCell;
use std::sync::Arc;
use std::time::Duration;

use crate::consistenthash::DEFAULT_REPLICAS;
use crate::discovery::PeerSource;
use crate::group::freshness::TtlPolicy;
use crate::group::getter::Getter;
use crate::group::{HotPolicy, DEFAULT_STALE_WAIT};
use crate::http_client::{HttpClient, LoadBudget};
use crate::node::{Node, Parts};
use crate::origin::Origin;
use crate::peers::health::DEFAULT_PROBE_TIMEOUT;
use crate::peers::picker::PickPeer;
use crate::peers::protocol::Protocol;
use crate::peers::url;
use crate::peers::Peers;
use crate::units::{limits, DEFAULT_MAX_VALUE_BYTES};
use crate::wire::{self, DEFAULT_BASE_PATH};

use group::Loader;
pub(crate) use group::NewGroup;
pub use rules::BuildError;
use rules::{check_base_path, count, duration, in_range, number};

/// Builds a [`Node`]; start with [`NodeBuilder::new`].
///
/// Each option is named after the binary's flag that sets it
/// (`replicas`, `--replicas`), so the binary can name the flag of an error.
#[must_use]
pub struct NodeBuilder {
    /// `None` only in the binary without `--self`, until its listener is
    /// bound.
    pub(crate) self_url: Option<String>,
    pub(crate) base_path: String,
    pub(crate) peers: Vec<String>,
    pub(crate) groups: Vec<NewGroup>,
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
    /// What only the binary sets: its own peer and origin clients (TLS,
    /// shared budget), where the peer list comes from, and user writes.
    peer_http: Option<HttpClient>,
    origin_http: Option<HttpClient>,
    source: PeerSource,
    allow_writes: bool,
    picker: Option<Arc<dyn PickPeer>>,
    /// The stale windows and negative TTL of the groups `group` adds.
    policy: TtlPolicy,
    hot_policy: HotPolicy,
    /// The first `content_type` or `compress` that named no group added
    /// before it.
    unknown_group: Option<(&'static str, String)>,
}

impl std::fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups: Vec<&str> = self.groups.iter().map(|g| g.name.as_str()).collect();
        f.debug_struct("NodeBuilder")
            .field("self_url", &self.self_url)
            .field("base_path", &self.base_path)
            .field("peers", &self.peers)
            .field("groups", &groups)
            .field("protocol", &self.protocol)
            .field("replicas", &self.replicas)
            .finish_non_exhaustive()
    }
}

impl NodeBuilder {
    /// Starts building a node whose peers know it as `self_url`
    /// (`http://host:port`).
    pub fn new(self_url: impl Into<String>) -> NodeBuilder {
        NodeBuilder {
            self_url: Some(self_url.into()),
            ..NodeBuilder::without_self_url()
        }
    }

    /// The binary's builder without `--self`: its URL comes from the
    /// listener, bound after every check, and [`NodeBuilder::self_url`]
    /// sets it.
    pub(crate) fn without_self_url() -> NodeBuilder {
        NodeBuilder {
            self_url: None,
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
            origin_http: None,
            source: PeerSource::Static,
            allow_writes: false,
            picker: None,
            policy: TtlPolicy::default(),
            hot_policy: HotPolicy::default(),
            unknown_group: None,
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
        let loader = Loader::Getter(Arc::new(getter));
        let group = NewGroup::new(name, cache_bytes, loader, self.policy, self.hot_policy);
        self.groups.push(group);
        self
    }

    /// A group whose misses are loaded from an HTTP origin, the getter
    /// the binary's `--group NAME=URL` uses: `url` is a template in which
    /// `{key}` stands for the key, percent-escaped (or `echo`, whose value
    /// for a key is the key itself, for trying things out). The origin's
    /// status and freshness headers say what is kept and for how long
    /// (a 404 is a not-found; `Cache-Control`, `Expires` and the
    /// `stale-*` windows are obeyed). A bad template is refused by
    /// [`build`](NodeBuilder::build) as a [`BuildError::Origin`].
    ///
    /// ```
    /// let node = groupcached::NodeBuilder::new("http://127.0.0.1:8081")
    ///     .http_group("users", 64 << 20, "http://127.0.0.1:9000/users/{key}")
    ///     .build()
    ///     .unwrap();
    /// assert!(node.group("users").is_some());
    /// let bad = groupcached::NodeBuilder::new("http://127.0.0.1:8081")
    ///     .http_group("users", 64 << 20, "ftp://nowhere/{key}")
    ///     .build();
    /// assert!(bad.is_err());
    /// ```
    pub fn http_group(self, name: &str, cache_bytes: u64, url: &str) -> NodeBuilder {
        let ttl = self.policy;
        self.origin_group(name, cache_bytes, url, ttl)
    }

    /// A group as `--group NAME=ORIGIN` gives it: `origin` is `echo` or a
    /// URL template, read here once; `ttl` is the group's own policy.
    pub(crate) fn origin_group(
        mut self,
        name: &str,
        cache_bytes: u64,
        origin: &str,
        ttl: TtlPolicy,
    ) -> NodeBuilder {
        let loader = Loader::Origin(Origin::parse(name, origin));
        let group = NewGroup::new(name, cache_bytes, loader, ttl, self.hot_policy);
        self.groups.push(group);
        self
    }

    /// The `Content-Type` users get with the values of the group `group`
    /// (`--content-type GROUP=MEDIA_TYPE`; default
    /// `application/octet-stream`), for a group already added. A media
    /// type that is not `type/subtype[; name=value]...` is refused by
    /// [`build`](NodeBuilder::build) as a [`BuildError::ContentType`].
    ///
    /// ```
    /// let node = groupcached::NodeBuilder::new("http://127.0.0.1:8081")
    ///     .http_group("pages", 64 << 20, "http://127.0.0.1:9000/{key}")
    ///     .content_type("pages", "text/html; charset=utf-8")
    ///     .build();
    /// assert!(node.is_ok());
    /// ```
    pub fn content_type(mut self, group: &str, media_type: &str) -> NodeBuilder {
        match self.groups.iter_mut().find(|g| g.name == group) {
            Some(found) => found.set_content_type(media_type),
            None => self.note_unknown_group("content_type", group),
        }
        self
    }

    /// Sends the values of the group `group` (one already added)
    /// compressed to clients that accept it (`--compress GROUP`): gzip,
    /// br or zstd by `Accept-Encoding`, for values of 1 KiB or more that
    /// shrink, with `Vary: Accept-Encoding` on every reply. A compressed
    /// copy is made once per value and coding and kept in an eighth of
    /// the group's `cache_bytes`.
    pub fn compress(mut self, group: &str) -> NodeBuilder {
        match self.groups.iter_mut().find(|g| g.name == group) {
            Some(found) => found.compress = true,
            None => self.note_unknown_group("compress", group),
        }
        self
    }

    /// Remembers the first group setting that named no group, for the
    /// checks to report.
    fn note_unknown_group(&mut self, option: &'static str, group: &str) {
        self.unknown_group
            .get_or_insert_with(|| (option, group.to_string()));
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

    /// Checks every setting, by the rules the binary's flags follow too, and makes the node;
    /// with static peers it is ready to [`Node::get`] and [`crate::serve`]
    /// at once.
    pub fn build(mut self) -> Result<Node, BuildError> {
        // Only the binary leaves it unset, and sets it before building:
        // an empty URL is refused as any bad one is.
        let self_url = self.self_url.get_or_insert_with(String::new).clone();
        self.check()?;
        let (max_conns, budget) = (self.max_conns_per_peer, self.load_budget);
        let max_value = usize::try_from(self.max_value).unwrap_or(usize::MAX);
        let client = |max_body| {
            HttpClient::new(self.fetch_timeout, max_conns)
                .with_budget(LoadBudget::new(budget))
                .with_max_body(max_body)
        };
        let http = match self.peer_http.take() {
            Some(http) => http,
            None => client(wire::max_response_len(max_value)),
        };
        // Made only for a node with an origin: a client loads the system's
        // certificates.
        let origin_http = OnceCell::new();
        if let Some(given) = self.origin_http.take() {
            origin_http.get_or_init(|| given);
        }
        let origin_http = || origin_http.get_or_init(|| client(max_value)).clone();
        let groups = std::mem::take(&mut self.groups)
            .into_iter()
            .map(|group| group.into_parts(origin_http, max_conns))
            .collect::<Result<_, _>>()?;
        let peers = Peers::new(
            self_url.clone(),
            self.base_path.clone(),
            self.replicas,
            http,
            self.max_conns_per_peer,
        )
        .with_protocol(self.protocol)
        .with_probe_timeout(self.probe_timeout);
        let mut list = self.peers;
        if !list.contains(&self_url) {
            list.push(self_url);
        }
        peers.set(list);
        Ok(Node::assemble(Parts {
            peers: Arc::new(peers),
            base_path: self.base_path,
            source: self.source,
            groups,
            allow_writes: self.allow_writes,
            max_value: self.max_value,
            picker: self.picker,
            stale_wait: self.stale_wait,
        }))
    }
}

impl NodeBuilder {
    /// Checks every setting: [`NodeBuilder::build`] runs it, and the
    /// binary's flags run it before anything is bound (without the node's
    /// own URL when `--self` is not given: the listener gives it later).
    pub(crate) fn check(&self) -> Result<(), BuildError> {
        url::check_peer_urls(self.self_url.iter().chain(&self.peers))?;
        check_base_path(&self.base_path)?;
        self.check_groups()?;
        in_range(count(self.replicas), limits::REPLICAS, number("replicas"))?;
        let max_conns = count(self.max_conns_per_peer);
        let max_conns_range = limits::MAX_CONNS_PER_PEER;
        in_range(max_conns, max_conns_range, number("max_conns_per_peer"))?;
        if self.fetch_timeout.is_zero() {
            return Err(BuildError::ZeroTimeout);
        }
        let probe_timeout = self.probe_timeout;
        in_range(
            probe_timeout,
            limits::PROBE_TIMEOUT,
            duration("probe_timeout"),
        )?;
        in_range(self.stale_wait, limits::STALE_WAIT, duration("stale_wait"))
    }

    /// The groups' rules, group by group in the order they were given:
    /// the binary checks each `--group` as it reads it.
    pub(crate) fn check_groups(&self) -> Result<(), BuildError> {
        for (i, group) in self.groups.iter().enumerate() {
            group.check(&self.groups[..i])?;
        }
        match &self.unknown_group {
            Some((option, group)) => Err(BuildError::NoSuchGroup {
                option,
                group: group.clone(),
            }),
            None => Ok(()),
        }
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
