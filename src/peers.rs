//! The peer pool: who the peers are and which one owns a key.
//!
//! This is golang's `HTTPPool.Set` and `PickPeer`: [`Peers::set`] replaces
//! the whole list (and the ring built from it, in the given order), and
//! [`PickPeer::pick`] returns the owner's client, or `None` when this node owns
//! the key (by exact string equality with its own URL) or the list is empty.
//! The list comes from `--peers`, from etcd (see `discovery`) or from DNS
//! (see `dns`); a
//! [`PeerSource`] says which, and how fresh the list is. The ring is
//! golang's or the forks' as the pool's [`Protocol`] says.
//!
//! A group sees the pool only through [`PickPeer`] and the owner it picks
//! only through [`FetchPeer`] (golang's `PeerPicker` and `ProtoGetter`, in `picker`), so
//! its tests can put fake peers behind them. Writes and `/peers` are not
//! part of that seam: they use [`Peers`] itself.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::consistenthash::Ring;
use crate::dialect::Protocol;
use crate::health::{HealthReport, DEFAULT_PROBE_TIMEOUT};
use crate::http_client::{HttpClient, LoadBudget};
use crate::peer_client::PeerClient;
use crate::picker::{FetchPeer, PickPeer};

/// The current membership, shared by every group of the node.
pub(crate) struct Peers {
    self_url: String,
    base_path: String,
    replicas: usize,
    http: HttpClient,
    max_conns_per_peer: usize,
    probe_timeout: Duration,
    protocol: Protocol,
    current: RwLock<Arc<Membership>>,
}

/// One peer's entry in `GET /peers`'s `health` list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct PeerHealth {
    pub url: String,
    #[serde(flatten)]
    pub health: HealthReport,
}

/// One peer list and everything derived from it.
struct Membership {
    ring: Ring,
    clients: HashMap<String, Arc<PeerClient>>,
}

impl Peers {
    /// An empty pool: until [`Peers::set`] every key is local.
    pub(crate) fn new(
        self_url: String,
        base_path: String,
        replicas: usize,
        http: HttpClient,
        max_conns_per_peer: usize,
    ) -> Peers {
        Peers {
            self_url,
            base_path,
            replicas,
            http,
            max_conns_per_peer,
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
            protocol: Protocol::Golang,
            current: RwLock::new(Arc::new(Membership {
                ring: Ring::default(),
                clients: HashMap::new(),
            })),
        }
    }

    /// The pool speaks `protocol` (golang's by default); call before
    /// [`Peers::set`].
    pub(crate) fn with_protocol(mut self, protocol: Protocol) -> Peers {
        self.protocol = protocol;
        self
    }

    /// Peers are probed for liveness with `timeout` while a fetch waits
    /// (zero: never); call before [`Peers::set`].
    pub(crate) fn with_probe_timeout(mut self, timeout: Duration) -> Peers {
        self.probe_timeout = timeout;
        self
    }

    /// The load budget fetched values (and, at the server, request
    /// bodies) share.
    pub(crate) fn load_budget(&self) -> &LoadBudget {
        self.http.budget()
    }

    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// This node's own URL, as the peer list names it.
    pub(crate) fn self_url(&self) -> &str {
        &self.self_url
    }

    /// Replaces the peer list, like `HTTPPool.Set(peers...)`. Clients of
    /// peers that stay are kept, so their pooled connections survive; the
    /// clients of peers that joined are returned.
    pub(crate) fn set(&self, peers: Vec<String>) -> Vec<Arc<PeerClient>> {
        let old = self.membership();
        let mut joined = Vec::new();
        let clients = peers
            .iter()
            .filter(|peer| **peer != self.self_url)
            .map(|peer| {
                let client = old.clients.get(peer).cloned().unwrap_or_else(|| {
                    let client = Arc::new(PeerClient::new(
                        peer,
                        &self.base_path,
                        self.http.clone(),
                        self.max_conns_per_peer,
                        self.probe_timeout,
                    ));
                    joined.push(client.clone());
                    client
                });
                (peer.clone(), client)
            })
            .collect();
        let membership = Arc::new(Membership {
            ring: Ring::with_hashing(self.protocol.hashing(), self.replicas, &peers),
            clients,
        });
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = membership;
        joined
    }

    /// The current peer list, in ring order of insertion.
    pub(crate) fn list(&self) -> Vec<String> {
        self.membership().ring.peers().to_vec()
    }

    /// Every peer with its share of the ring (see [`Ring::shares`]).
    pub(crate) fn ring_shares(&self) -> Vec<(String, f64)> {
        let membership = self.membership();
        let ring = &membership.ring;
        ring.peers().iter().cloned().zip(ring.shares()).collect()
    }

    /// Every other peer's health, in peer-list order.
    pub(crate) fn health(&self) -> Vec<PeerHealth> {
        let membership = self.membership();
        membership
            .ring
            .peers()
            .iter()
            .filter_map(|url| {
                let client = membership.clients.get(url)?;
                Some(PeerHealth {
                    url: url.clone(),
                    health: client.health(),
                })
            })
            .collect()
    }

    /// Every other node, with its URL, in peer-list order.
    pub(crate) fn others(&self) -> Vec<(String, Arc<PeerClient>)> {
        let membership = self.membership();
        let peers = membership.ring.peers();
        peers
            .iter()
            .filter_map(|peer| Some((peer.clone(), membership.clients.get(peer)?.clone())))
            .collect()
    }

    /// The URL of the owner of `key` (this node's own URL included).
    pub(crate) fn owner(&self, key: &[u8]) -> Option<String> {
        self.membership().ring.get(key).map(str::to_string)
    }

    fn membership(&self) -> Arc<Membership> {
        // Writers replace the Arc in one step; a poisoned lock still holds a
        // complete membership.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl PickPeer for Peers {
    /// The owner's client, by the ring; `None` when this node owns the key
    /// or the list is empty.
    fn pick(&self, key: &[u8]) -> Option<Arc<dyn FetchPeer>> {
        let membership = self.membership();
        let owner = membership.ring.get(key)?;
        let client: Arc<dyn FetchPeer> = membership.clients.get(owner)?.clone();
        Some(client)
    }

    fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The peer client's request deadline: origin-timeout + peer-timeout
    /// in a node built from flags.
    fn fetch_timeout(&self) -> Duration {
        self.http.timeout()
    }
}

// Where the peer list comes from and how fresh it is: shown by `/peers`,
// `/status` and `/metrics`, fed by discovery, so that the core needs no
// knowledge of etcd's client.

/// Where the peer list comes from, for `GET /peers`.
#[derive(Clone)]
pub(crate) enum PeerSource {
    Static,
    /// etcd discovery's latest status.
    Etcd(tokio::sync::watch::Receiver<EtcdStatus>),
    /// DNS discovery's latest status.
    Dns(tokio::sync::watch::Receiver<DnsStatus>),
}

/// A [`PeerSource`] as the views show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceView {
    /// `static`, `etcd` or `dns`.
    pub name: &'static str,
    /// With etcd, discovery's latest status.
    pub etcd: Option<EtcdStatus>,
    /// With DNS, discovery's latest status.
    pub dns: Option<DnsStatus>,
}

impl PeerSource {
    /// The source's name and, with discovery, its latest status.
    pub(crate) fn describe(&self) -> SourceView {
        let mut view = SourceView {
            name: "static",
            etcd: None,
            dns: None,
        };
        match self {
            PeerSource::Static => {}
            PeerSource::Etcd(status) => {
                view.name = "etcd";
                view.etcd = Some(status.borrow().clone());
            }
            PeerSource::Dns(status) => {
                view.name = "dns";
                view.dns = Some(status.borrow().clone());
            }
        }
        view
    }
}

/// What `GET /peers` shows about etcd.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct EtcdStatus {
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// True while a session is registered and watching.
    pub connected: bool,
    /// The lease this node's key is attached to.
    pub lease_id: Option<i64>,
    /// The etcd revision of the last peer list seen.
    pub revision: i64,
    /// Why the last session ended, if it did.
    pub last_error: Option<String>,
}

/// What `GET /peers` shows about DNS discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct DnsStatus {
    /// `A/AAAA` (`--peers-dns`) or `SRV` (`--peers-srv`).
    pub record_type: &'static str,
    /// The name asked.
    pub name: String,
    /// `system` (the system resolver) or the `--dns-server` address.
    pub server: String,
    /// `--dns-interval`, in milliseconds.
    pub interval_ms: u64,
    /// True while the last resolution gave a usable answer.
    pub ok: bool,
    /// `ok: N peers in the answer`, or why the last resolution kept the
    /// last list; none before the first.
    pub last_outcome: Option<String>,
    /// When the last resolution ended, in milliseconds since the Unix
    /// epoch; none before the first.
    pub last_resolved_unix_ms: Option<u64>,
    /// Why the last resolution kept the last list, if it did.
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pool(self_url: &str) -> Peers {
        let http = HttpClient::new(Duration::from_secs(1), 1);
        Peers::new(self_url.into(), "/_groupcache/".into(), 50, http, 4)
    }

    #[test]
    fn empty_pool_keeps_everything_local() {
        assert!(pool("http://a").pick(b"k").is_none());
    }

    #[test]
    fn self_owned_keys_are_local_and_others_remote() {
        let peers = pool("http://10.0.0.1:8080");
        peers.set(vec![
            "http://10.0.0.1:8080".into(),
            "http://10.0.0.2:8080".into(),
            "http://10.0.0.3:8080".into(),
        ]);
        // Owners as golang's ring gives them (consistenthash's worked example).
        assert!(peers.pick(b"foo").is_none());
        assert!(peers.pick(b"user:42").is_none());
        assert!(peers.pick(b"bar").is_some());
        assert_eq!(
            peers.owner(b"hello").as_deref(),
            Some("http://10.0.0.3:8080")
        );
    }
}
