//! The live status page: `GET /` is one self-contained HTML page
//! (`status.html`, no external assets) that polls `GET /status` every two
//! seconds and draws this node, every peer with its share of the ring, the
//! etcd or DNS discovery state, and per group the hit ratio, bytes against
//! capacity, loads and errors as small inline SVG charts, and the keys
//! asked for most.
//!
//! `GET /status` is everything the page shows, as one JSON document;
//! `GET /stats` and `GET /peers` are the narrower views built here too.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cache::{HotKey, Which};
use crate::discovery::{DnsStatus, EtcdStatus};
use crate::group::GroupStats;
use crate::node::Node;
use crate::peers::health::HealthReport;
use crate::peers::PeerHealth;
use crate::wire;

/// The page itself.
pub(crate) const PAGE: &str = include_str!("views.html");

/// What `GET /status` answers.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    #[serde(rename = "self")]
    pub self_url: String,
    pub version: &'static str,
    /// `static`, `etcd` or `dns`.
    pub source: &'static str,
    pub peers: Vec<PeerStatus>,
    pub groups: Vec<GroupStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsStatus>,
}

/// Discovery's status as `/peers` shows it, but with the 64-bit lease id
/// as a decimal string: a JSON number above 2^53 loses digits in a
/// browser.
#[derive(Debug, Serialize)]
pub(crate) struct EtcdView {
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub connected: bool,
    pub lease_id: Option<String>,
    pub revision: i64,
    pub last_error: Option<String>,
}

impl From<EtcdStatus> for EtcdView {
    fn from(status: EtcdStatus) -> EtcdView {
        EtcdView {
            endpoints: status.endpoints,
            prefix: status.prefix,
            connected: status.connected,
            lease_id: status.lease_id.map(|id| id.to_string()),
            revision: status.revision,
            last_error: status.last_error,
        }
    }
}

/// One peer of the current list.
#[derive(Debug, Serialize)]
pub(crate) struct PeerStatus {
    pub url: String,
    /// True for this node.
    #[serde(rename = "self")]
    pub is_self: bool,
    /// Its share of the hash ring (and so, on average, of the keys).
    pub ring_share: f64,
    /// `state`, `failures` and `retry_in_ms`, as `/peers` shows them; none
    /// for this node.
    #[serde(flatten)]
    pub health: Option<HealthReport>,
}

/// One group's counters, its cache capacity and its hottest keys.
#[derive(Debug, Serialize)]
pub(crate) struct GroupStatus {
    pub name: String,
    pub capacity_bytes: u64,
    pub stats: GroupStats,
    pub hot_keys: Vec<HotKeyStatus>,
}

/// One of the keys asked for most at this node.
#[derive(Debug, Serialize)]
pub(crate) struct HotKeyStatus {
    /// The key, percent-encoded as in a URL (keys are bytes).
    pub key: String,
    /// Estimated requests per second at this node.
    pub rate: f64,
    /// `main`, `hot`, or `none` when this node holds no copy.
    pub held: &'static str,
}

impl From<HotKey> for HotKeyStatus {
    fn from(hot: HotKey) -> HotKeyStatus {
        HotKeyStatus {
            key: wire::escape(&hot.key),
            // Two decimals are plenty for a display.
            rate: (hot.rate * 100.0).round() / 100.0,
            held: match hot.held {
                Some(Which::Main) => "main",
                Some(Which::Hot) => "hot",
                None => "none",
            },
        }
    }
}

/// The node's status now.
pub(crate) fn status(node: &Node) -> Status {
    let self_url = node.peers().self_url().to_string();
    let health = node.peers().health();
    let peers = node
        .peers()
        .ring_shares()
        .into_iter()
        .map(|(url, ring_share)| PeerStatus {
            is_self: url == self_url,
            health: health
                .iter()
                .find(|peer| peer.url == url)
                .map(|peer| peer.health.clone()),
            url,
            ring_share,
        })
        .collect();
    let mut groups: Vec<GroupStatus> = node
        .groups()
        .map(|g| GroupStatus {
            name: g.name().to_string(),
            capacity_bytes: g.cache_bytes(),
            stats: g.stats(),
            hot_keys: g.hot_keys().into_iter().map(HotKeyStatus::from).collect(),
        })
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let source = node.source().describe();
    Status {
        self_url,
        version: env!("CARGO_PKG_VERSION"),
        source: source.name,
        peers,
        groups,
        etcd: source.etcd.map(EtcdView::from),
        dns: source.dns,
    }
}

/// `GET /stats`: every group's counters, by name.
#[derive(serde::Serialize)]
pub(crate) struct StatsReply {
    groups: BTreeMap<String, GroupStats>,
}

/// What `GET /stats` answers.
pub(crate) fn stats(node: &Node) -> StatsReply {
    StatsReply {
        groups: node
            .groups()
            .map(|g| (g.name().to_string(), g.stats()))
            .collect(),
    }
}

/// `GET /peers`: the peer list, where it comes from and each peer's health.
#[derive(serde::Serialize)]
pub(crate) struct PeersReply {
    #[serde(rename = "self")]
    self_url: String,
    source: &'static str,
    peers: Vec<String>,
    health: Vec<PeerHealth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    etcd: Option<EtcdStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<DnsStatus>,
}

/// What `GET /peers` answers.
pub(crate) fn peers(node: &Node) -> PeersReply {
    let source = node.source().describe();
    PeersReply {
        self_url: node.peers().self_url().to_string(),
        source: source.name,
        peers: node.peers().list(),
        health: node.peers().health(),
        etcd: source.etcd,
        dns: source.dns,
    }
}
