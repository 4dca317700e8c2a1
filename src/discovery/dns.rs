//! Peer discovery through DNS: the peer list comes from A/AAAA records
//! (`--peers-dns NAME[:PORT]`, one peer per address) or SRV records
//! (`--peers-srv NAME`, each target's addresses with the record's port),
//! the shape of a Kubernetes headless Service or Docker's embedded DNS.
//! The name is asked of the system resolver or of `--dns-server`, again
//! every `--dns-interval` (sooner when the records' TTL is shorter, never
//! more often than once a second). The resolver is hickory-resolver, with
//! its cache cleared before each round so every round asks the server.
//!
//! The list fed to the pool is the answer's URLs (scheme from `--self`)
//! and this node's own URL, sorted and de-duplicated, so every node that
//! sees the same answer builds the same ring; it is replaced only when it
//! changes. A failed round (NXDOMAIN, an empty answer, SERVFAIL, a timeout,
//! an unreachable server) or a refused answer (more than [`MAX_RECORDS`]
//! records, port 0, a name that does not end in addresses, such as a CNAME
//! loop) keeps the last good list; such an outcome is logged when it
//! begins and when it ends, not every round.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfigGroup, ResolveHosts, ResolverConfig,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::Record;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, TokioResolver};
use tokio::sync::watch;

use crate::discovery::{self, DnsStatus};
use crate::node::Node;

/// The most records one answer may hold (SRV records, or addresses in
/// all); a larger answer is refused, as no pool is that large and a
/// resolver that sends one is broken or hostile.
pub(crate) const MAX_RECORDS: usize = 1000;
/// The shortest wait between two rounds, whatever the records' TTL.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// How long one query waits for the server.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// What to ask and whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DnsConfig {
    pub query: DnsQuery,
    /// `None`: the system resolver (`/etc/resolv.conf`).
    pub server: Option<SocketAddr>,
    pub interval: Duration,
}

/// `--peers-dns` or `--peers-srv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DnsQuery {
    /// A and AAAA records of `name`; the port is `port`, else that of the
    /// listener peers reach this node on.
    Addresses { name: String, port: Option<u16> },
    /// SRV records of `name`.
    Srv { name: String },
}

/// A flag that names no usable query, or why a round kept the last list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DnsError {
    #[error("{0:?} is not a DNS name (dot-separated labels of letters, digits, '-' and '_', at most 253 characters)")]
    BadName(String),
    #[error("{0:?} is not a port from 1 to 65535")]
    BadPort(String),
    #[error("the DNS resolver cannot be set up: {0}")]
    Setup(String),
    #[error("NXDOMAIN: the name does not exist")]
    NxDomain,
    #[error("the answer is empty")]
    Empty,
    #[error("the server answered {0}")]
    ServerFailure(String),
    #[error("the server did not answer in time")]
    Timeout,
    #[error("the server is unreachable: {0}")]
    Unreachable(String),
    #[error("lookup failed: {0}")]
    Other(String),
    #[error("refused: {0} records, more than {MAX_RECORDS}")]
    TooMany(usize),
    #[error("refused: an SRV record for {0} has port 0")]
    PortZero(String),
}

impl DnsQuery {
    /// `--peers-dns NAME[:PORT]`.
    pub(crate) fn addresses(text: &str) -> Result<DnsQuery, DnsError> {
        let (name, port) = match text.rsplit_once(':') {
            Some((name, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0 && !port.starts_with('+'))
                    .ok_or_else(|| DnsError::BadPort(port.to_string()))?;
                (name, Some(port))
            }
            None => (text, None),
        };
        Ok(DnsQuery::Addresses {
            name: checked_name(name)?,
            port,
        })
    }

    /// `--peers-srv NAME`.
    pub(crate) fn srv(text: &str) -> Result<DnsQuery, DnsError> {
        Ok(DnsQuery::Srv {
            name: checked_name(text)?,
        })
    }

    fn name(&self) -> &str {
        match self {
            DnsQuery::Addresses { name, .. } | DnsQuery::Srv { name } => name,
        }
    }

    /// `A/AAAA` or `SRV`, for `/peers`.
    fn record_type(&self) -> &'static str {
        match self {
            DnsQuery::Addresses { .. } => "A/AAAA",
            DnsQuery::Srv { .. } => "SRV",
        }
    }
}

/// `name` if it is a DNS name: dot-separated labels of 1 to 63 letters,
/// digits, `-` and `_` (SRV names start with `_`; no label starts or ends
/// with `-`), at most 253 characters without the optional final dot.
fn checked_name(name: &str) -> Result<String, DnsError> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if bare.is_empty() || bare.len() > 253 || !bare.split('.').all(label_ok) {
        return Err(DnsError::BadName(name.to_string()));
    }
    Ok(name.to_string())
}

/// One good answer: the peers' URLs and how long the records may be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    urls: Vec<String>,
    /// The shortest TTL among the records used.
    ttl: Option<Duration>,
}

/// A resolver asking one query, again and again.
pub(crate) struct DnsResolver {
    resolver: TokioResolver,
    config: DnsConfig,
}

impl DnsResolver {
    /// The resolver `config` asks; reads `/etc/resolv.conf` when no server
    /// is given.
    pub(crate) fn new(config: DnsConfig) -> Result<DnsResolver, DnsError> {
        let provider = TokioConnectionProvider::default();
        let mut builder = match config.server {
            Some(server) => {
                // UDP, and TCP for answers too large for a datagram.
                let servers =
                    NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
                let config = ResolverConfig::from_parts(None, vec![], servers);
                TokioResolver::builder_with_config(config, provider)
            }
            None => TokioResolver::builder(provider).map_err(|e| DnsError::Setup(e.to_string()))?,
        };
        let options = builder.options_mut();
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.timeout = QUERY_TIMEOUT;
        // No retry within a round: the next round is the retry.
        options.attempts = 0;
        if config.server.is_some() {
            options.use_hosts_file = ResolveHosts::Never;
        }
        Ok(DnsResolver {
            resolver: builder.build(),
            config,
        })
    }

    /// One round: the peers' URLs the server gives now, with `scheme` and
    /// (for A/AAAA) `default_port`.
    async fn resolve(&self, scheme: &str, default_port: u16) -> Result<Answer, DnsError> {
        self.resolver.clear_cache();
        match &self.config.query {
            DnsQuery::Addresses { name, port } => {
                let port = port.unwrap_or(default_port);
                let lookup = self
                    .resolver
                    .lookup_ip(name.as_str())
                    .await
                    .map_err(failure)?;
                let records = lookup.as_lookup().records();
                let ips: Vec<IpAddr> = lookup.iter().collect();
                let addrs = ips.into_iter().map(|ip| SocketAddr::new(ip, port));
                Ok(Answer {
                    urls: urls(scheme, addrs)?,
                    ttl: shortest_ttl(records),
                })
            }
            DnsQuery::Srv { name } => {
                let lookup = self
                    .resolver
                    .srv_lookup(name.as_str())
                    .await
                    .map_err(failure)?;
                let mut ttl = shortest_ttl(lookup.as_lookup().records());
                let targets = srv_targets(
                    lookup
                        .iter()
                        .map(|srv| (srv.target().to_ascii(), srv.port())),
                )?;
                let mut addrs = Vec::new();
                for (target, ports) in targets {
                    let found = self
                        .resolver
                        .lookup_ip(target.as_str())
                        .await
                        .map_err(failure)?;
                    let found_ttl = shortest_ttl(found.as_lookup().records());
                    ttl = [ttl, found_ttl].into_iter().flatten().min();
                    for ip in found.iter() {
                        addrs.extend(ports.iter().map(|&port| SocketAddr::new(ip, port)));
                    }
                    if addrs.len() > MAX_RECORDS {
                        return Err(DnsError::TooMany(addrs.len()));
                    }
                }
                Ok(Answer {
                    urls: urls(scheme, addrs.into_iter())?,
                    ttl,
                })
            }
        }
    }
}

/// The SRV records' targets, each with its ports; a `.` target (the
/// service is not offered there) is left out. Refuses port 0 and
/// absurdly many records.
fn srv_targets(
    records: impl Iterator<Item = (String, u16)>,
) -> Result<Vec<(String, BTreeSet<u16>)>, DnsError> {
    let records: Vec<(String, u16)> = records.collect();
    if records.len() > MAX_RECORDS {
        return Err(DnsError::TooMany(records.len()));
    }
    let mut targets: Vec<(String, BTreeSet<u16>)> = Vec::new();
    for (target, port) in records {
        if target == "." {
            continue;
        }
        if port == 0 {
            return Err(DnsError::PortZero(target));
        }
        match targets.iter_mut().find(|(t, _)| *t == target) {
            Some((_, ports)) => {
                ports.insert(port);
            }
            None => targets.push((target, BTreeSet::from([port]))),
        }
    }
    Ok(targets)
}

/// The URLs of `addrs`, sorted and de-duplicated; refuses an empty answer
/// and more than [`MAX_RECORDS`] addresses.
fn urls(scheme: &str, addrs: impl Iterator<Item = SocketAddr>) -> Result<Vec<String>, DnsError> {
    let urls: BTreeSet<String> = addrs.map(|addr| format!("{scheme}://{addr}")).collect();
    match urls.len() {
        0 => Err(DnsError::Empty),
        n if n > MAX_RECORDS => Err(DnsError::TooMany(n)),
        _ => Ok(urls.into_iter().collect()),
    }
}

/// The shortest TTL among `records`.
fn shortest_ttl(records: &[Record]) -> Option<Duration> {
    records
        .iter()
        .map(|r| Duration::from_secs(u64::from(r.ttl())))
        .min()
}

/// Why a lookup failed, in the terms `/peers` and the log use.
fn failure(error: ResolveError) -> DnsError {
    let Some(proto) = error.proto() else {
        return DnsError::Other(error.to_string());
    };
    match proto.kind() {
        ProtoErrorKind::NoRecordsFound { response_code, .. } => match *response_code {
            ResponseCode::NXDomain => DnsError::NxDomain,
            ResponseCode::NoError => DnsError::Empty,
            code => DnsError::ServerFailure(code.to_string()),
        },
        ProtoErrorKind::Timeout => DnsError::Timeout,
        ProtoErrorKind::Io(e) => DnsError::Unreachable(e.to_string()),
        ProtoErrorKind::NoConnections | ProtoErrorKind::Busy => {
            DnsError::Unreachable(proto.to_string())
        }
        _ => DnsError::Other(proto.to_string()),
    }
}

/// How long to wait for the next round: the interval, or the records'
/// TTL if shorter, but at least [`MIN_INTERVAL`].
fn next_wait(interval: Duration, ttl: Option<Duration>) -> Duration {
    ttl.map_or(interval, |ttl| ttl.min(interval))
        .max(MIN_INTERVAL)
}

/// Keeps `node`'s peer list in step with DNS until `stop` resolves. `port`
/// is the port of the listener peers reach this node on (the default port
/// of `--peers-dns`). Each round's outcome is published on `status`.
pub(crate) async fn run(
    resolver: DnsResolver,
    node: Node,
    port: u16,
    status: watch::Sender<DnsStatus>,
    stop: impl Future<Output = ()>,
) {
    let self_url = node.peers().self_url().to_string();
    // The scheme of every peer: this node's own.
    let scheme = if self_url.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let config = &resolver.config;
    status.send_modify(|s| {
        s.record_type = config.query.record_type();
        s.name = config.query.name().to_string();
        s.server = config
            .server
            .map_or_else(|| "system".to_string(), |server| server.to_string());
        s.interval_ms = millis(config.interval);
    });
    tokio::pin!(stop);
    // The last outcome's message; a change of it is logged.
    let mut last_outcome: Option<Result<(), String>> = None;
    loop {
        let round = tokio::select! {
            round = resolver.resolve(scheme, port) => round,
            () = &mut stop => return,
        };
        let ttl = round.as_ref().ok().and_then(|answer| answer.ttl);
        let outcome = match round {
            Ok(answer) => {
                let count = answer.urls.len();
                let list = discovery::with_self(answer.urls, &self_url);
                publish(&node, list);
                status.send_modify(|s| {
                    s.ok = true;
                    s.last_outcome = Some(format!("ok: {count} peers in the answer"));
                    s.last_resolved_unix_ms = Some(now_ms());
                    s.last_error = None;
                });
                Ok(())
            }
            Err(error) => {
                let message = error.to_string();
                status.send_modify(|s| {
                    s.ok = false;
                    s.last_outcome = Some(message.clone());
                    s.last_resolved_unix_ms = Some(now_ms());
                    s.last_error = Some(message.clone());
                });
                Err(message)
            }
        };
        if last_outcome.as_ref() != Some(&outcome) {
            match &outcome {
                Ok(()) if last_outcome.is_some() => tracing::info!(
                    name = config.query.name(),
                    "DNS answers again; the peer list follows it"
                ),
                Ok(()) => {}
                Err(error) => tracing::warn!(
                    name = config.query.name(),
                    %error,
                    "DNS peer discovery keeps the last peer list"
                ),
            }
            last_outcome = Some(outcome);
        }
        tokio::select! {
            () = tokio::time::sleep(next_wait(config.interval, ttl)) => {}
            () = &mut stop => return,
        }
    }
}

/// Feeds `list` to the pool if it differs from the current one, logging
/// what was added and removed.
fn publish(node: &Node, list: Vec<String>) {
    if let Some(diff) = discovery::diff(&node.peer_list(), &list) {
        tracing::info!(
            added = %diff.added,
            removed = %diff.removed,
            total = list.len(),
            "peer list from DNS changed"
        );
        node.replace_peers(list);
    }
}

fn millis(duration: Duration) -> u64 {
    duration.as_millis().try_into().unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_name_a_query() {
        assert_eq!(
            DnsQuery::addresses("gc.default.svc.cluster.local"),
            Ok(DnsQuery::Addresses {
                name: "gc.default.svc.cluster.local".into(),
                port: None
            })
        );
        assert_eq!(
            DnsQuery::addresses("gc.test.:8080"),
            Ok(DnsQuery::Addresses {
                name: "gc.test.".into(),
                port: Some(8080)
            })
        );
        assert_eq!(
            DnsQuery::srv("_http._tcp.gc.test"),
            Ok(DnsQuery::Srv {
                name: "_http._tcp.gc.test".into()
            })
        );
        for bad in [
            "",
            ".",
            "a..b",
            "a b",
            "-",
            "a/b",
            "http://a",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(DnsQuery::srv(bad), Err(DnsError::BadName(_))),
                "{bad:?}"
            );
        }
        let long = ["a".repeat(63).as_str(); 4].join(".");
        assert!(DnsQuery::srv(&long[..253]).is_ok());
        assert!(DnsQuery::srv(&format!("{long}a")).is_err());
        for bad in ["a:0", "a:65536", "a:", "a:+1", "a:x"] {
            assert!(
                matches!(DnsQuery::addresses(bad), Err(DnsError::BadPort(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            DnsError::BadPort("0".into()).to_string(),
            "\"0\" is not a port from 1 to 65535"
        );
    }

    #[test]
    fn addresses_become_sorted_unique_urls() {
        let addrs: Vec<SocketAddr> = ["127.0.0.3:80", "[::1]:80", "127.0.0.2:80", "127.0.0.3:80"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(
            urls("https", addrs.into_iter()),
            Ok(vec![
                "https://127.0.0.2:80".to_string(),
                "https://127.0.0.3:80".into(),
                "https://[::1]:80".into(),
            ])
        );
        assert_eq!(urls("http", std::iter::empty()), Err(DnsError::Empty));
        let many = (0..=MAX_RECORDS as u16).map(|p| SocketAddr::from(([127, 0, 0, 1], p + 1)));
        assert_eq!(urls("http", many), Err(DnsError::TooMany(MAX_RECORDS + 1)));
    }

    #[test]
    fn srv_records_group_ports_by_target_and_refuse_port_zero() {
        let records = |list: &[(&str, u16)]| {
            let list: Vec<(String, u16)> = list.iter().map(|&(t, p)| (t.into(), p)).collect();
            srv_targets(list.into_iter())
        };
        assert_eq!(
            records(&[("b.", 2), ("a.", 1), ("b.", 3), (".", 9)]),
            Ok(vec![
                ("b.".to_string(), BTreeSet::from([2, 3])),
                ("a.".to_string(), BTreeSet::from([1])),
            ])
        );
        assert_eq!(
            records(&[("a.", 1), ("b.", 0)]),
            Err(DnsError::PortZero("b.".into()))
        );
        let many: Vec<(String, u16)> = (0..5000).map(|i| (format!("t{i}."), 1)).collect();
        assert_eq!(srv_targets(many.into_iter()), Err(DnsError::TooMany(5000)));
    }

    #[test]
    fn the_next_round_follows_a_shorter_ttl_but_not_below_a_second() {
        let s = Duration::from_secs;
        assert_eq!(next_wait(s(5), None), s(5));
        assert_eq!(next_wait(s(5), Some(s(300))), s(5));
        assert_eq!(next_wait(s(5), Some(s(2))), s(2));
        assert_eq!(next_wait(s(5), Some(s(0))), MIN_INTERVAL);
    }
}
