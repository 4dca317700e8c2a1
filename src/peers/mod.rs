//! The peer pool: who the peers are and which one owns a key.
//!
//! This is golang's `HTTPPool.Set` and `PickPeer`: [`Peers::set`] replaces
//! the whole list (and the ring built from it, in the given order), and
//! [`PickPeer::pick`] returns the owner's client, or `None` when this node owns
//! the key (by exact string equality with its own URL) or the list is empty.
//! The list comes from `--peers`, from etcd (see `discovery::etcd`) or from DNS
//! (see `dns`); a
//! [`PeerSource`] says which, and how fresh the list is. The ring is
//! golang's or the forks' as the pool's [`Protocol`] says.
//!
//! A group sees the pool only through [`PickPeer`] and the owner it picks
//! only through [`FetchPeer`] (golang's `PeerPicker` and `ProtoGetter`, in `picker`), so
//! its tests can put fake peers behind them. Writes and `/peers` are not
//! part of that seam: they use [`Peers`] itself.
//!
//! In a pool with writes, the pool also keeps the writes this node
//! originated and which peers may lack them (see `write_log`), under one
//! lock with each change of the peer list: a write takes its recipients
//! and its place in the log in one step, so every write either reaches a
//! peer with the list or is owed to it when it comes back.

pub(crate) mod client;
pub(crate) mod health;
pub(crate) mod picker;
pub(crate) mod protocol;
pub(crate) mod url;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::consistenthash::Ring;
use crate::http_client::{HttpClient, LoadBudget};
use crate::peers::client::PeerClient;
use crate::peers::health::{HealthReport, DEFAULT_PROBE_TIMEOUT};
use crate::peers::picker::{FetchPeer, PickPeer};
use crate::peers::protocol::Protocol;
use crate::value::Value;
use crate::writes::log::{Behind, Kind, Start, WriteKey, WriteLog};

/// The current membership, shared by every group of the node.
pub(crate) struct Peers {
    self_url: String,
    base_path: String,
    replicas: usize,
    http: HttpClient,
    max_conns_per_peer: usize,
    probe_timeout: Duration,
    protocol: Protocol,
    current: ArcSwap<Membership>,
    /// Taken before `current` is written, never while it is held.
    ledger: Mutex<Ledger>,
}

/// The writes this node originated and who may lack them.
#[derive(Default)]
struct Ledger {
    log: WriteLog,
    behind: Behind,
}

/// Where a user's write goes: its number in the log, the key's owner and
/// every other node, all from one peer list.
pub(crate) struct Recipients {
    pub seq: u64,
    pub owner: Option<String>,
    pub others: Vec<(String, Arc<PeerClient>)>,
}

/// One pass of a catch-up: the keys of the writes numbered `from..upto`
/// that the peer reached by `client` is owed, oldest first.
pub(crate) struct Pass {
    pub client: Arc<PeerClient>,
    pub from: u64,
    pub upto: u64,
    pub keys: Vec<WriteKey>,
}

/// What a catch-up sends a peer for one key of its pass.
pub(crate) enum Owed {
    /// The peer left the list: the task stops.
    Gone,
    /// Written again since the pass began: the write itself reached the
    /// peer, or is owed to it by a later pass.
    Skip,
    /// The value, when the peer owns the key (or every node stores a
    /// Set) and it has not expired; else a Remove (`None`). `seq`: the
    /// write's number, to tell whether it was written again meanwhile.
    Send { seq: u64, set: Option<Value> },
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
            current: ArcSwap::from_pointee(Membership {
                ring: Ring::default(),
                clients: HashMap::new(),
            }),
            ledger: Mutex::default(),
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
    /// peers that stay are kept, so their pooled connections survive. A
    /// peer that leaves is owed the writes logged from now on; the peers
    /// that joined and are owed writes are returned, for a catch-up.
    pub(crate) fn set(&self, peers: Vec<String>) -> Vec<String> {
        let mut ledger = self.ledger();
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
                    joined.push(peer.clone());
                    client
                });
                (peer.clone(), client)
            })
            .collect::<HashMap<_, _>>();
        let (now, next) = (Instant::now(), ledger.log.next_seq());
        for url in old.clients.keys().filter(|url| !clients.contains_key(*url)) {
            ledger.behind.left(url, next, now);
        }
        joined.retain(|url| ledger.behind.joined(url, next, now) == Start::Task);
        let membership = Arc::new(Membership {
            ring: Ring::with_hashing(self.protocol.hashing(), self.replicas, &peers),
            clients,
        });
        self.current.store(membership);
        joined
    }

    /// Logs a user's write of `key` in `group` and says where it goes,
    /// in one step with any change of the peer list.
    pub(crate) fn begin_write(&self, group: &str, key: &[u8], kind: Kind) -> Recipients {
        let mut ledger = self.ledger();
        let seq = ledger
            .log
            .record(Instant::now(), WriteKey::new(group, key), kind);
        Recipients {
            seq,
            owner: self.owner(key),
            others: self.others(),
        }
    }

    /// The write numbered `seq` did not reach `url`: it is owed that
    /// write and every later one. True when a catch-up should start.
    pub(crate) fn write_failed(&self, url: &str, seq: u64) -> bool {
        let mut ledger = self.ledger();
        ledger.behind.failed(url, seq, Instant::now()) == Start::Task
    }

    /// Begins a catch-up pass for `url`; `None` when it is owed nothing
    /// more or is not listed (the task then ends: a join starts another).
    pub(crate) fn begin_pass(&self, url: &str) -> Option<Pass> {
        let mut ledger = self.ledger();
        let Some(client) = self.membership().clients.get(url).cloned() else {
            ledger.behind.stop_pass(url, u64::MAX, Instant::now());
            return None;
        };
        let upto = ledger.log.next_seq();
        let from = ledger.behind.begin_pass(url, upto)?;
        let keys = ledger.log.keys_between(Instant::now(), from, upto);
        Some(Pass {
            client,
            from,
            upto,
            keys,
        })
    }

    /// What the catch-up of `url` sends for `key` in a pass up to `upto`.
    pub(crate) fn owed(&self, url: &str, key: &WriteKey, upto: u64) -> Owed {
        let ledger = self.ledger();
        let membership = self.membership();
        if !membership.clients.contains_key(url) {
            return Owed::Gone;
        }
        let Some(logged) = ledger.log.latest(key).filter(|logged| logged.seq < upto) else {
            return Owed::Skip;
        };
        let set = match &logged.kind {
            Kind::Set(value)
                if !value.expiry.is_expired()
                    && (self.protocol.set_goes_everywhere()
                        || membership.ring.get(&key.key) == Some(url)) =>
            {
                Some(value.clone())
            }
            _ => None,
        };
        Owed::Send {
            seq: logged.seq,
            set,
        }
    }

    /// Whether `key`'s latest write is still the one numbered `seq`.
    pub(crate) fn is_latest(&self, key: &WriteKey, seq: u64) -> bool {
        let ledger = self.ledger();
        ledger
            .log
            .latest(key)
            .is_some_and(|logged| logged.seq == seq)
    }

    /// The catch-up of `url` could not reach it at the write numbered
    /// `seq`: its next pass starts there.
    pub(crate) fn unreachable_at(&self, url: &str, seq: u64) {
        self.ledger().behind.unreachable_at(url, seq);
    }

    /// The catch-up of `url` stops, owing the writes from `seq` on.
    pub(crate) fn stop_catch_up(&self, url: &str, seq: u64) {
        self.ledger().behind.stop_pass(url, seq, Instant::now());
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock()
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
        self.current.load_full()
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
