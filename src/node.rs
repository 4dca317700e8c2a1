//! The node: its groups and its peer pool behind one cheap-to-clone handle,
//! built from the [`Config`]. The HTTP layer (`server`) holds a `Node` and
//! turns requests into group lookups.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;

use crate::config::{Config, GroupSpec};
use crate::dialect::Protocol;
use crate::discovery::EtcdStatus;
use crate::freshness::{Lifetime, TtlPolicy};
use crate::group::Group;
use crate::http_client::{HttpClient, LoadBudget};
use crate::getter::{Getter, GetterError};
use crate::origin::{HttpOrigin, TemplateError};
use crate::peers::Peers;
use crate::value::Value;
use crate::wire;

/// A cheap-to-clone handle on the node's state.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    groups: HashMap<Vec<u8>, Group, BuildHasherDefault<NameHasher>>,
    peers: Arc<Peers>,
    base_path: String,
    source: PeerSource,
    writes: Writes,
}

/// Whether users may write, and each group's TTL policy for their values.
#[derive(Default)]
struct Writes {
    allowed: bool,
    /// `--max-value-bytes`: the largest value a write may carry.
    max_value: u64,
    ttls: HashMap<Vec<u8>, TtlPolicy>,
}

/// Where the peer list comes from, for `GET /peers`.
#[derive(Clone)]
pub enum PeerSource {
    Static,
    /// Discovery's latest status.
    Etcd(watch::Receiver<EtcdStatus>),
}

impl PeerSource {
    /// `static` or `etcd`, and with etcd, discovery's latest status.
    pub fn describe(&self) -> (&'static str, Option<EtcdStatus>) {
        match self {
            PeerSource::Static => ("static", None),
            PeerSource::Etcd(status) => ("etcd", Some(status.borrow().clone())),
        }
    }
}

/// A group that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("--group {group}: {error}")]
    Origin { group: String, error: TemplateError },
}

impl Node {
    /// Builds the node's groups and peer pool. `self_url` is this node's
    /// URL in the peer list; with static peers it is appended if missing.
    /// With etcd, `etcd_status` is the status discovery publishes.
    pub fn new(
        config: &Config,
        self_url: String,
        etcd_status: Option<watch::Receiver<EtcdStatus>>,
    ) -> Result<Node, NodeError> {
        let (origin_http, peer_http) = http_clients(config);
        let peers = Arc::new(
            Peers::new(
                self_url.clone(),
                config.base_path.clone(),
                config.replicas,
                peer_http,
                config.max_conns_per_peer,
            )
            .with_protocol(config.protocol),
        );
        let source = if let Some(status) = etcd_status {
            PeerSource::Etcd(status)
        } else {
            let mut list = config.peers.clone();
            if !list.contains(&self_url) {
                list.push(self_url);
            }
            peers.set(list);
            PeerSource::Static
        };
        let mut groups = HashMap::new();
        let mut writes = Writes {
            allowed: config.allow_writes,
            max_value: config.max_value_bytes,
            ttls: HashMap::new(),
        };
        for spec in &config.groups {
            writes.ttls.insert(spec.name.as_bytes().to_vec(), spec.ttl);
            let getter = origin_getter(spec, &origin_http, config.max_conns_per_peer)?;
            let group = Group::new(&spec.name, config.cache_bytes, getter, peers.clone());
            groups.insert(spec.name.as_bytes().to_vec(), group);
        }
        let mut node = Node::from_parts(groups, peers, config.base_path.clone(), source);
        // Just built, so this is the only handle.
        if let Some(inner) = Arc::get_mut(&mut node.inner) {
            inner.writes = writes;
        }
        Ok(node)
    }

    /// A node over groups built by the caller (for embedding with custom
    /// getters; see `examples/embedded.rs`).
    pub fn from_parts(
        groups: HashMap<Vec<u8>, Group>,
        peers: Arc<Peers>,
        base_path: String,
        source: PeerSource,
    ) -> Node {
        Node {
            inner: Arc::new(Inner {
                groups: groups.into_iter().collect(),
                peers,
                base_path,
                source,
                writes: Writes::default(),
            }),
        }
    }

    pub fn group(&self, name: &[u8]) -> Option<&Group> {
        self.inner.groups.get(name)
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.inner.groups.values()
    }

    pub fn peers(&self) -> &Arc<Peers> {
        &self.inner.peers
    }

    pub fn base_path(&self) -> &str {
        &self.inner.base_path
    }

    /// The protocol of the pool.
    pub fn protocol(&self) -> Protocol {
        self.inner.peers.protocol()
    }

    /// Whether users may write (`--allow-writes`).
    pub fn allows_writes(&self) -> bool {
        self.inner.writes.allowed
    }

    /// The largest value a write may carry (`--max-value-bytes`; none for
    /// embedded nodes, whose writes are bounded by their caches alone).
    pub fn max_write_bytes(&self) -> u64 {
        match self.inner.writes.max_value {
            0 => u64::MAX,
            max => max,
        }
    }

    /// The TTL policy of the group `name` (none for embedded groups).
    pub fn ttl_policy(&self, name: &[u8]) -> TtlPolicy {
        self.inner
            .writes
            .ttls
            .get(name)
            .copied()
            .unwrap_or_default()
    }

    pub fn source(&self) -> &PeerSource {
        &self.inner.source
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

fn origin_getter(
    spec: &GroupSpec,
    http: &HttpClient,
    max_conns: usize,
) -> Result<Arc<dyn Getter>, NodeError> {
    if spec.origin == "echo" {
        // The echo origin sends no caching headers: only the policy applies.
        let ttl = spec.ttl;
        return Ok(Arc::new(move |key: Vec<u8>| async move {
            let expiry = ttl.expiry(Lifetime::Unspecified, SystemTime::now());
            Ok::<_, GetterError>(Value::new(key, expiry))
        }));
    }
    let origin = HttpOrigin::new(&spec.name, &spec.origin, http.clone(), max_conns, spec.ttl)
        .map_err(|error| NodeError::Origin {
            group: spec.name.clone(),
            error,
        })?;
    Ok(Arc::new(origin))
}

/// FNV-1a for the group-name map. Every request looks a group up by name,
/// and std's SipHash costs ~250 instructions of a ~10k-instruction cache
/// hit; this costs a few per byte. The map's names come from the
/// configuration, not from requests, so it needs no defence against
/// chosen collisions.
struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> NameHasher {
        NameHasher(0xcbf2_9ce4_8422_2325) // FNV-1a's 64-bit offset basis
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
