//! The node: its groups and its peer pool behind one cheap-to-clone handle.
//! The HTTP layer (`server`) holds a `Node` and turns requests into group
//! lookups; a program embedding groupcached builds one with
//! `NodeBuilder::new` (`builder`), the binary from its flags (`app`).

pub(crate) mod builder;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::discovery::PeerSource;
use crate::group::counters::GroupStats;
use crate::group::freshness::TtlPolicy;
use crate::group::getter::Getter;
use crate::group::{Group, GroupError, HotPolicy};
use crate::peers::picker::{PeerError, PickPeer};
use crate::peers::protocol::Protocol;
use crate::peers::url::{self, InvalidPeerUrl};
use crate::peers::Peers;
use crate::representation::Representation;
use crate::value::Value;
use crate::writes;

/// A groupcache node: its groups and its peer pool, behind a
/// cheap-to-clone handle.
///
/// ```
/// use bytes::Bytes;
/// use groupcached::{GetterError, NodeBuilder};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = NodeBuilder::new("http://10.0.0.1:8080")
///     .group("upper", 64 << 20, |key: Vec<u8>| async move {
///         Ok::<_, GetterError>(Bytes::from(key.to_ascii_uppercase()))
///     })
///     .build()?;
/// // No other peers: this node owns every key and loads it once.
/// assert_eq!(node.get("upper", b"abc").await?.bytes, "ABC");
/// assert_eq!(node.get("upper", b"abc").await?.bytes, "ABC");
/// let stats = &node.stats()["upper"];
/// assert_eq!((stats.gets, stats.local_loads, stats.cache_hits), (2, 1, 1));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    groups: HashMap<Vec<u8>, Served, BuildHasherDefault<NameHasher>>,
    peers: Arc<Peers>,
    base_path: String,
    source: PeerSource,
    writes: Writes,
}

/// A group and how its values are sent to users.
struct Served {
    group: Group,
    representation: Representation,
}

/// Whether users may write, and each group's TTL policy for their values.
struct Writes {
    allowed: bool,
    /// `--max-value-bytes`: the largest value a write may carry.
    max_value: u64,
    ttls: HashMap<Vec<u8>, TtlPolicy>,
}

/// Everything a node is made of. `NodeBuilder` (which the binary's `app`
/// uses too) assembles every node through [`Node::assemble`],
/// which keys each group by its own name.
pub(crate) struct Parts {
    pub(crate) peers: Arc<Peers>,
    pub(crate) base_path: String,
    pub(crate) source: PeerSource,
    pub(crate) groups: Vec<GroupParts>,
    /// `--allow-writes`.
    pub(crate) allow_writes: bool,
    /// `--max-value-bytes`; 0: no limit beyond the caches'.
    pub(crate) max_value: u64,
    /// An embedder's own picker, which groups ask instead of `peers`.
    pub(crate) picker: Option<Arc<dyn PickPeer>>,
    /// Every group's stale wait (`--stale-wait`).
    pub(crate) stale_wait: std::time::Duration,
}

/// One group of [`Parts`].
pub(crate) struct GroupParts {
    pub(crate) name: String,
    pub(crate) cache_bytes: u64,
    pub(crate) getter: Arc<dyn Getter>,
    pub(crate) ttl: TtlPolicy,
    pub(crate) hot_policy: HotPolicy,
    /// `--content-type` and `--compress`.
    pub(crate) representation: Representation,
}

/// Why [`Node::get`] produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// The node has no group of that name.
    #[error("no such group: {0}")]
    NoGroup(String),
    /// The group's load failed.
    #[error(transparent)]
    Load(#[from] GroupError),
}

/// Why [`Node::set`] or [`Node::remove`] did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The node has no group of that name.
    #[error("no such group: {0}")]
    NoGroup(String),
    /// The pool's protocol has no writes (golang's has none; mailgun and
    /// groupcache-go pools do).
    #[error("a {0} pool has no writes (mailgun and groupcache-go pools do)")]
    NoWrites(Protocol),
    /// The write was refused before anything was sent (a value too large
    /// for the group's caches), with why.
    #[error("{0}")]
    Refused(String),
    /// Some nodes did not confirm the write: each node's URL and error.
    /// The nodes that did confirm keep it.
    #[error("not confirmed by {}", unconfirmed_list(.0))]
    Unconfirmed(Vec<(String, PeerError)>),
}

/// `URL (error), URL (error)`, for [`WriteError::Unconfirmed`]'s message.
fn unconfirmed_list(nodes: &[(String, PeerError)]) -> String {
    let named: Vec<String> = nodes
        .iter()
        .map(|(url, error)| format!("{url} ({error})"))
        .collect();
    named.join(", ")
}

impl Node {
    /// The one constructor: groups keyed by their own names.
    pub(crate) fn assemble(parts: Parts) -> Node {
        let mut groups = HashMap::default();
        let mut ttls = HashMap::new();
        for spec in parts.groups {
            let picker: Arc<dyn PickPeer> = match &parts.picker {
                Some(picker) => picker.clone(),
                None => parts.peers.clone(),
            };
            let group = Group::new(
                &spec.name,
                spec.cache_bytes,
                spec.getter,
                picker,
                spec.ttl,
                spec.hot_policy,
            )
            .with_stale_wait(parts.stale_wait);
            let group = match spec.representation.compress {
                true => group.with_compressed_copies(),
                false => group,
            };
            ttls.insert(spec.name.as_bytes().to_vec(), spec.ttl);
            let served = Served {
                group,
                representation: spec.representation,
            };
            groups.insert(spec.name.into_bytes(), served);
        }
        Node {
            inner: Arc::new(Inner {
                groups,
                peers: parts.peers,
                base_path: parts.base_path,
                source: parts.source,
                writes: Writes {
                    allowed: parts.allow_writes,
                    max_value: parts.max_value,
                    ttls,
                },
            }),
        }
    }

    /// Gets `key` from the group `group`: from the caches, the owning
    /// peer, or the group's getter, exactly as a `GET /cache/...` would.
    pub async fn get(&self, group: &str, key: &[u8]) -> Result<Value, GetError> {
        let found = self.group(group.as_bytes());
        let group = found.ok_or_else(|| GetError::NoGroup(group.to_string()))?;
        Ok(group.get(key).await?)
    }

    /// Sets `key` of `group` to `value` across the pool, as mailgun's and
    /// groupcache-go's `Group.Set` do: stored at the key's owner (at every
    /// node in a groupcache-go pool), other nodes' hot copies dropped, the
    /// owner written first. `ttl` is the value's lifetime (capped by the
    /// group's `max_ttl`; `None`: the group's default, else never); `hot`
    /// also keeps a copy in this node's hot cache. A golang pool has no
    /// writes.
    pub async fn set(
        &self,
        group: &str,
        key: &[u8],
        value: impl Into<bytes::Bytes>,
        ttl: Option<std::time::Duration>,
        hot: bool,
    ) -> Result<(), WriteError> {
        let found = self.writable(group)?;
        let policy = self.ttl_policy(group.as_bytes());
        let options = writes::SetOptions { ttl, hot };
        let sent = writes::user_set(found, self.peers(), &policy, key, value.into(), options).await;
        let unconfirmed = sent.map_err(|e| WriteError::Refused(e.to_string()))?;
        unconfirmed.into_result().map_err(WriteError::Unconfirmed)
    }

    /// Removes `key` of `group` from every node of the pool, the owner
    /// first, as the forks' `Group.Remove` does; the next get loads it
    /// again, once for the pool. A golang pool has no writes.
    pub async fn remove(&self, group: &str, key: &[u8]) -> Result<(), WriteError> {
        let found = self.writable(group)?;
        let unconfirmed = writes::user_remove(found, self.peers(), key).await;
        unconfirmed.into_result().map_err(WriteError::Unconfirmed)
    }

    /// The group `name`, if the pool takes writes.
    fn writable(&self, name: &str) -> Result<&Group, WriteError> {
        if !self.protocol().has_writes() {
            return Err(WriteError::NoWrites(self.protocol()));
        }
        self.group(name.as_bytes())
            .ok_or_else(|| WriteError::NoGroup(name.to_string()))
    }

    /// The group named `name`.
    pub fn group(&self, name: impl AsRef<[u8]>) -> Option<&Group> {
        self.served(name).map(|(group, _)| group)
    }

    /// The group named `name` and how its values are sent to users.
    pub(crate) fn served(&self, name: impl AsRef<[u8]>) -> Option<(&Group, &Representation)> {
        let served = self.inner.groups.get(name.as_ref())?;
        Some((&served.group, &served.representation))
    }

    /// Replaces the peer list at any time (golang's `HTTPPool.Set`), for an
    /// embedder's own discovery (Kubernetes, Consul, ...): every node must
    /// be given the same list; this node's own URL is added if missing.
    /// Nothing changes if a URL is not `http(s)://host[:port]`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = groupcached::NodeBuilder::new("http://10.0.0.1:8080").build()?;
    /// node.set_peers(["http://10.0.0.2:8080", "http://10.0.0.3:8080"])?;
    /// assert_eq!(node.peer_list().len(), 3);
    /// assert!(node.set_peers(["ftp://10.0.0.2"]).is_err());
    /// assert_eq!(node.peer_list().len(), 3, "a bad list changes nothing");
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_peers<I>(&self, peers: I) -> Result<(), InvalidPeerUrl>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let mut list: Vec<String> = peers.into_iter().map(Into::into).collect();
        url::check_peer_urls(&list)?;
        let self_url = self.inner.peers.self_url().to_string();
        if !list.contains(&self_url) {
            list.push(self_url);
        }
        self.replace_peers(list);
        Ok(())
    }

    /// Replaces the peer list with `list` (checked, self included). In a
    /// pool with writes, each peer that joined is sent the writes made
    /// through this node that it missed (see [`writes::catch_up`]), so a
    /// node that returns with a snapshot serves none of the values they
    /// replaced.
    pub(crate) fn replace_peers(&self, list: Vec<String>) {
        let owed = self.inner.peers.set(list);
        if self.protocol().has_writes() {
            writes::catch_up_all(&self.inner.peers, owed);
        }
    }

    /// The current peer list, this node included.
    pub fn peer_list(&self) -> Vec<String> {
        self.inner.peers.list()
    }

    /// Every group's counters, by group name (what `GET /stats` shows).
    pub fn stats(&self) -> BTreeMap<String, GroupStats> {
        self.groups()
            .map(|g| (g.name().to_string(), g.stats()))
            .collect()
    }

    /// Every group of the node, in no particular order.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.inner.groups.values().map(|served| &served.group)
    }

    pub(crate) fn peers(&self) -> &Arc<Peers> {
        &self.inner.peers
    }

    /// The peer API's path prefix, `/_groupcache/` unless set otherwise.
    pub fn base_path(&self) -> &str {
        &self.inner.base_path
    }

    /// The protocol of the pool.
    pub(crate) fn protocol(&self) -> Protocol {
        self.inner.peers.protocol()
    }

    /// Whether users may write (`--allow-writes`).
    pub(crate) fn allows_writes(&self) -> bool {
        self.inner.writes.allowed
    }

    /// The largest value a write may carry (`--max-value-bytes`; none for
    /// embedded nodes, whose writes are bounded by their caches alone).
    pub(crate) fn max_write_bytes(&self) -> u64 {
        match self.inner.writes.max_value {
            0 => u64::MAX,
            max => max,
        }
    }

    /// The TTL policy of the group `name` (none for embedded groups).
    pub(crate) fn ttl_policy(&self, name: &[u8]) -> TtlPolicy {
        self.inner
            .writes
            .ttls
            .get(name)
            .copied()
            .unwrap_or_default()
    }

    pub(crate) fn source(&self) -> &PeerSource {
        &self.inner.source
    }
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
