//! The command line's flags (`cli`) read into a [`Config`]: what the
//! process runs with, and the node as calls to its builder. The builder
//! holds the rules a node's settings follow (the same for embedders);
//! here its errors get the name of the flag that set the value. Every bad
//! value is a one-line error naming the flag.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::cmd::cli::Args;
use crate::cmd::tls_flags::{TlsFlagError, TlsSettings};
use crate::discovery::dns::{DnsConfig, DnsError, DnsQuery};
use crate::discovery::etcd::EtcdConfig;
use crate::group::freshness::TtlPolicy;
use crate::node::builder::rules::{BASE_PATH_RULE, GROUP_NAME_RULE};
use crate::node::builder::{BuildError, NewGroup, NodeBuilder};
use crate::origin::TemplateError;
use crate::peers::url::{self, BadPeerUrl};
use crate::units::{check_ttl, parse_duration, DEFAULT_MAX_VALUE_BYTES};

/// What the process runs with: the node, checked (all but its own URL
/// when `--self` is not given), and what surrounds it.
#[derive(Debug)]
pub(crate) struct Config {
    /// The node the flags describe.
    pub(crate) node: NodeBuilder,
    /// The address of the default `--self` when the peer API listens on an
    /// unspecified address: what this host's name resolves to.
    pub(crate) host_address: Option<IpAddr>,
    pub(crate) peer_timeout: Duration,
    pub(crate) origin_timeout: Duration,
    pub(crate) snapshot: Option<std::path::PathBuf>,
    pub(crate) snapshot_max_age: Duration,
    /// `None`: half the open-file limit (see `server`).
    pub(crate) max_connections: Option<usize>,
    pub(crate) header_read_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) etcd: Option<EtcdConfig>,
    pub(crate) dns: Option<DnsConfig>,
    pub(crate) tls: TlsSettings,
}

/// Where a TTL flag's value goes in a group's policy.
type TtlField = fn(&mut TtlPolicy) -> &mut Option<Duration>;

/// A flag value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("--group {0:?}: expected NAME=ORIGIN with a non-empty NAME")]
    GroupSyntax(String),
    #[error("--group {0:?}: the name {rule}", rule = GROUP_NAME_RULE)]
    GroupName(String),
    #[error("--group: an empty entry (a stray space in the list?); expected NAME=ORIGIN")]
    EmptyGroup,
    #[error("--etcd-prefix \"\": must not be empty (the node would watch all of etcd)")]
    EmptyEtcdPrefix,
    #[error("--allow-writes needs --protocol mailgun or groupcache-go: golang/groupcache pools have no writes")]
    WritesInGolang,
    #[error("--group {0:?}: a group of that name was already given")]
    DuplicateGroup(String),
    #[error("--group {group}: {error}")]
    Origin { group: String, error: TemplateError },
    #[error("--base-path {0:?}: {rule}", rule = BASE_PATH_RULE)]
    BasePath(String),
    #[error("{flag} {url:?}: {error}")]
    Url {
        flag: &'static str,
        url: String,
        error: BadPeerUrl,
    },
    #[error("{flag}: {value} is not between {min} and {max}")]
    Range {
        flag: String,
        value: String,
        min: String,
        max: String,
    },
    /// What no flag sets (the fetch timeout comes from two).
    #[error(transparent)]
    Node(BuildError),
    #[error("{0} {1}: an unspecified address needs --self (the URL peers reach this node at): this host's name resolves to no address but loopback")]
    ListenNeedsSelf(&'static str, SocketAddr),
    #[error("{flag} {value:?}: {reason}")]
    Ttl {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error(transparent)]
    Tls(#[from] TlsFlagError),
    #[error("{0} and {1} cannot be used together: the peer list comes from one source")]
    PeerSources(&'static str, &'static str),
    #[error("{flag} {value:?}: {error}")]
    Dns {
        flag: &'static str,
        value: String,
        error: DnsError,
    },
    #[error("--dns-server needs --peers-dns or --peers-srv")]
    DnsServerAlone,
    #[error("--max-value-bytes {0} is more than --cache-bytes {1}")]
    MaxValue(u64, u64),
    #[error("--load-budget {0} is less than --max-value-bytes {1}")]
    LoadBudget(u64, u64),
    #[error("--content-type {0:?}: expected NAME=MEDIA_TYPE, e.g. pages=text/html")]
    ContentTypeSyntax(String),
    #[error("--content-type {spec:?}: {error}")]
    ContentType {
        spec: String,
        error: crate::representation::media_type::MediaTypeError,
    },
    #[error("{0} {1:?}: no group named {2:?}")]
    NoSuchGroup(String, String, String),
    #[error("{0} {1:?}: given twice for that group")]
    Twice(&'static str, String),
}

impl Args {
    /// Reads the flags into a [`Config`], checking the node they describe.
    pub(crate) fn into_config(self) -> Result<Config, ConfigError> {
        let node = self.node_builder()?;
        node.check().map_err(|error| self.flag_error(error))?;
        let host_address = self.host_address()?;
        for url in &self.etcd {
            check_url("--etcd", url)?;
        }
        let dns = self.dns_config()?;
        if self.etcd_prefix.is_empty() {
            return Err(ConfigError::EmptyEtcdPrefix);
        }
        if self.allow_writes && !self.protocol.has_writes() {
            return Err(ConfigError::WritesInGolang);
        }
        let tls = self.tls_settings()?;
        let (max_value, load_budget) = self.value_limits()?;
        let node = node
            .writes(self.allow_writes, max_value)
            .load_budget(load_budget);
        let etcd = if self.etcd.is_empty() {
            None
        } else {
            Some(EtcdConfig {
                endpoints: self.etcd,
                prefix: self.etcd_prefix,
                ttl: self.etcd_ttl,
            })
        };
        Ok(Config {
            node,
            tls,
            host_address,
            peer_timeout: self.peer_timeout,
            origin_timeout: self.origin_timeout,
            snapshot: self.snapshot,
            snapshot_max_age: self.snapshot_max_age,
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            etcd,
            dns,
        })
    }

    /// The node the flags describe, as builder calls; only the flags'
    /// syntax is checked here. Each `--group` is checked as it is read, so
    /// an error names the first bad one.
    fn node_builder(&self) -> Result<NodeBuilder, ConfigError> {
        let node = match &self.self_url {
            Some(url) => NodeBuilder::new(url.clone()),
            None => NodeBuilder::without_self_url(),
        };
        let mut node = node
            .base_path(self.base_path.clone())
            .peers(self.peers.clone())
            .protocol(self.protocol)
            .hot_policy(self.hot_policy)
            .replicas(self.replicas)
            .max_conns_per_peer(self.max_conns_per_peer)
            .probe_timeout(self.probe_timeout)
            .stale_wait(self.stale_wait);
        for spec in &self.groups {
            if spec.is_empty() {
                return Err(ConfigError::EmptyGroup);
            }
            let (name, origin) = spec
                .split_once('=')
                .filter(|(name, _)| !name.is_empty())
                .ok_or_else(|| ConfigError::GroupSyntax(spec.clone()))?;
            let ttl = TtlPolicy::default();
            node = node.origin_group(name, self.cache_bytes, origin, ttl);
            node.check_groups()
                .map_err(|error| self.flag_error(error))?;
        }
        let ttl_flags: [(&'static str, &[String], TtlField); 6] = [
            ("--default-ttl", &self.default_ttl, |ttl| {
                &mut ttl.default_ttl
            }),
            ("--max-ttl", &self.max_ttl, |ttl| &mut ttl.max_ttl),
            ("--stale-if-error", &self.stale_if_error, |ttl| {
                &mut ttl.stale_if_error
            }),
            (
                "--stale-while-revalidate",
                &self.stale_while_revalidate,
                |ttl| &mut ttl.stale_while_revalidate,
            ),
            ("--negative-ttl", &self.negative_ttl, |ttl| {
                &mut ttl.negative_ttl
            }),
            ("--negative-max-ttl", &self.negative_max_ttl, |ttl| {
                &mut ttl.negative_max_ttl
            }),
        ];
        for (flag, values, field) in ttl_flags {
            apply_ttls(flag, values, &mut node.groups, field)?;
        }
        self.representation(node)
    }

    /// `--content-type NAME=MEDIA_TYPE` and `--compress NAME` as builder
    /// calls; each given once per group.
    fn representation(&self, mut node: NodeBuilder) -> Result<NodeBuilder, ConfigError> {
        let mut typed: Vec<&str> = Vec::new();
        for spec in &self.content_type {
            let (name, media_type) = spec
                .split_once('=')
                .ok_or_else(|| ConfigError::ContentTypeSyntax(spec.clone()))?;
            if typed.contains(&name) {
                return Err(ConfigError::Twice("--content-type", spec.clone()));
            }
            typed.push(name);
            node = node.content_type(name, media_type);
        }
        for (i, name) in self.compress.iter().enumerate() {
            if self.compress[..i].contains(name) {
                return Err(ConfigError::Twice("--compress", name.clone()));
            }
            node = node.compress(name);
        }
        Ok(node)
    }

    /// The builder's `error`, naming the flag that set the value: each
    /// builder option is named after its flag.
    fn flag_error(&self, error: BuildError) -> ConfigError {
        let range = |option: &str, [value, min, max]: [String; 3]| ConfigError::Range {
            flag: format!("--{}", option.replace('_', "-")),
            value,
            min,
            max,
        };
        match error {
            BuildError::Url(bad) => ConfigError::Url {
                flag: match &self.self_url {
                    Some(own) if *own == bad.url => "--self",
                    _ => "--peers",
                },
                url: bad.url,
                error: bad.error,
            },
            BuildError::BasePath(path) => ConfigError::BasePath(path),
            BuildError::GroupName(name) => {
                let spec = self.groups.iter().find(|spec| {
                    spec.split_once('=')
                        .is_some_and(|(spec_name, _)| spec_name == name)
                });
                ConfigError::GroupName(spec.cloned().unwrap_or(name))
            }
            BuildError::DuplicateGroup(name) => ConfigError::DuplicateGroup(name),
            BuildError::Origin { group, error } => ConfigError::Origin { group, error },
            BuildError::OutOfRange {
                option,
                value,
                min,
                max,
            } => range(option, [value, min, max].map(|n| n.to_string())),
            BuildError::DurationOutOfRange {
                option,
                value,
                min,
                max,
            } => range(option, [value, min, max].map(|d| format!("{d:?}"))),
            BuildError::ContentType {
                group,
                value,
                error,
            } => ConfigError::ContentType {
                spec: format!("{group}={value}"),
                error,
            },
            BuildError::NoSuchGroup { option, group } => {
                let prefix = format!("{group}=");
                let spec = self.content_type.iter().find(|s| s.starts_with(&prefix));
                let given = match (option, spec) {
                    ("content_type", Some(spec)) => spec.clone(),
                    _ => group.clone(),
                };
                let flag = format!("--{}", option.replace('_', "-"));
                ConfigError::NoSuchGroup(flag, given, group)
            }
            error @ BuildError::ZeroTimeout => ConfigError::Node(error),
        }
    }

    /// The address of the default `--self`, when the listener peers use
    /// has an unspecified one: the host's own (a container's or pod's).
    fn host_address(&self) -> Result<Option<IpAddr>, ConfigError> {
        if self.self_url.is_some() {
            return Ok(None);
        }
        let (flag, addr) = match self.peer_listen {
            Some(addr) => ("--peer-listen", addr),
            None => ("--listen", self.listen),
        };
        if !addr.ip().is_unspecified() {
            return Ok(None);
        }
        let address = this_host_address().ok_or(ConfigError::ListenNeedsSelf(flag, addr))?;
        Ok(Some(address))
    }
}

/// Sets one TTL of the groups' policies from a repeatable `[NAME=]DUR`
/// flag: a bare DUR sets every group's, NAME=DUR one group's, and a
/// group's own value wins over the bare one whatever their order.
fn apply_ttls(
    flag: &'static str,
    values: &[String],
    groups: &mut [NewGroup],
    field: TtlField,
) -> Result<(), ConfigError> {
    let error = |value: &String, reason| ConfigError::Ttl {
        flag,
        value: value.clone(),
        reason,
    };
    let mut everywhere = None;
    let mut named = Vec::new();
    for value in values {
        let (name, text) = match value.split_once('=') {
            Some((name, text)) => (Some(name), text),
            None => (None, value.as_str()),
        };
        let ttl = parse_duration(text)
            .map_err(|_| error(value, "expected DUR or NAME=DUR, e.g. 30s, 5m or 1h"))?;
        let ttl = check_ttl(ttl).map_err(|reason| error(value, reason))?;
        match name {
            None if everywhere.is_some() => return Err(error(value, "given twice")),
            None => everywhere = Some(ttl),
            Some(name) if !groups.iter().any(|g| g.name == name) => {
                return Err(error(value, "no --group of that name"))
            }
            Some(name) if named.iter().any(|(n, _)| *n == name) => {
                return Err(error(value, "given twice for that group"))
            }
            Some(name) => named.push((name, ttl)),
        }
    }
    for group in groups {
        let own = named.iter().find(|(n, _)| *n == group.name);
        *field(&mut group.ttl) = own.map(|&(_, ttl)| ttl).or(everywhere);
    }
    Ok(())
}

impl Args {
    /// `--peers-dns` or `--peers-srv` with `--dns-server` and
    /// `--dns-interval`; at most one source of peers.
    fn dns_config(&self) -> Result<Option<DnsConfig>, ConfigError> {
        let given = [
            ("--peers", !self.peers.is_empty()),
            ("--etcd", !self.etcd.is_empty()),
            ("--peers-dns", self.peers_dns.is_some()),
            ("--peers-srv", self.peers_srv.is_some()),
        ];
        let mut sources = given
            .iter()
            .filter(|(_, given)| *given)
            .map(|(flag, _)| *flag);
        if let (Some(first), Some(second)) = (sources.next(), sources.next()) {
            return Err(ConfigError::PeerSources(first, second));
        }
        let (flag, value, query) = match (&self.peers_dns, &self.peers_srv) {
            (Some(name), _) => ("--peers-dns", name, DnsQuery::addresses(name)),
            (None, Some(name)) => ("--peers-srv", name, DnsQuery::srv(name)),
            (None, None) if self.dns_server.is_some() => return Err(ConfigError::DnsServerAlone),
            (None, None) => return Ok(None),
        };
        let query = query.map_err(|error| ConfigError::Dns {
            flag,
            value: value.clone(),
            error,
        })?;
        Ok(Some(DnsConfig {
            query,
            server: self.dns_server,
            interval: self.dns_interval,
        }))
    }
}

impl Args {
    /// `--max-value-bytes` and `--load-budget`, defaulted and checked
    /// against `--cache-bytes` and each other.
    fn value_limits(&self) -> Result<(u64, u64), ConfigError> {
        let cache = self.cache_bytes;
        let max_value = match self.max_value_bytes {
            Some(max) if cache > 0 && max > cache => return Err(ConfigError::MaxValue(max, cache)),
            Some(max) => max,
            None if cache > 0 => DEFAULT_MAX_VALUE_BYTES.min(cache),
            None => DEFAULT_MAX_VALUE_BYTES,
        };
        let budget = match self.load_budget {
            Some(budget) if budget < max_value => {
                return Err(ConfigError::LoadBudget(budget, max_value))
            }
            Some(budget) => budget,
            None => cache.max(max_value),
        };
        Ok((max_value, budget))
    }
}

/// What this host's name resolves to, loopback left out: in a container
/// or a pod, its own address on the network its peers share.
fn this_host_address() -> Option<IpAddr> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let addresses = (name.trim(), 0).to_socket_addrs().ok()?;
    host_address(addresses.map(|a| a.ip()))
}

/// The first IPv4 address that is neither loopback nor unspecified, else
/// the first such IPv6 address.
fn host_address(addresses: impl Iterator<Item = IpAddr>) -> Option<IpAddr> {
    addresses
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .min_by_key(IpAddr::is_ipv6)
}

/// An etcd URL must be plain `http://host[:port]` or `https://host[:port]`,
/// as a peer's (see [`url::check_peer_url`]).
fn check_url(flag: &'static str, url: &str) -> Result<(), ConfigError> {
    url::check_peer_url(url).map_err(|error| ConfigError::Url {
        flag,
        url: url.to_string(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::limits;
    use clap::Parser;

    fn config(args: &[&str]) -> Result<Config, String> {
        let args = Args::try_parse_from(std::iter::once("groupcached").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        args.into_config().map_err(|e| e.to_string())
    }

    #[test]
    fn good_flags() {
        let c = config(&[
            "--group",
            "users=http://127.0.0.1:9/u/{key}",
            "--peers",
            "http://a:1,http://b:2",
        ])
        .unwrap();
        assert_eq!(c.node.groups[0].name, "users");
        assert_eq!(c.node.peers, ["http://a:1", "http://b:2"]);
        assert_eq!(c.node.base_path, "/_groupcache/");
        assert_eq!(c.node.replicas, 50);
        assert_eq!(c.origin_timeout, Duration::from_secs(10));
        assert_eq!((c.node.max_value, c.node.load_budget), (16 << 20, 64 << 20));
    }

    /// An origin is read once, by the builder: a bad template is refused
    /// by an embedder's build and by the flags for the same reason.
    #[test]
    fn the_builder_and_the_flags_refuse_the_same_origins() {
        let cases = [
            ("ftp://x/{key}", "must start with http:// or https://"),
            ("http://x/fixed", "must contain {key}"),
            ("http://[x/{key}", "is not a valid URL"),
        ];
        for (origin, reason) in cases {
            let reason = format!("origin URL {reason}: {origin}");
            let node = NodeBuilder::new("http://127.0.0.1:1").origin_group(
                "a",
                1 << 20,
                origin,
                TtlPolicy::default(),
            );
            let built = node.build().map(|_| ()).unwrap_err().to_string();
            assert_eq!(built, format!("group \"a\": {reason}"));
            let flagged = config(&["--group", &format!("a={origin}")]).unwrap_err();
            assert_eq!(flagged, format!("--group a: {reason}"));
        }
        let echo = NodeBuilder::new("http://127.0.0.1:1").origin_group(
            "a",
            0,
            "echo",
            TtlPolicy::default(),
        );
        assert!(echo.build().is_ok());
    }

    #[test]
    fn value_limits_follow_the_cache_size() {
        let limits = |extra: &[&str]| {
            let mut args = vec!["--group", "a=echo"];
            args.extend_from_slice(extra);
            config(&args).map(|c| (c.node.max_value, c.node.load_budget))
        };
        assert_eq!(limits(&["--cache-bytes", "1MiB"]), Ok((1 << 20, 1 << 20)));
        assert_eq!(limits(&["--cache-bytes", "0"]), Ok((16 << 20, 16 << 20)));
        assert_eq!(
            limits(&["--max-value-bytes", "1MiB", "--load-budget", "3MiB"]),
            Ok((1 << 20, 3 << 20))
        );
        let err = |extra: &[&str]| limits(extra).unwrap_err();
        assert!(err(&["--cache-bytes", "1MiB", "--max-value-bytes", "2MiB"])
            .contains("--max-value-bytes 2097152 is more than --cache-bytes 1048576"));
        assert!(err(&["--max-value-bytes", "2GiB"]).contains("--max-value-bytes"));
        assert!(err(&["--max-value-bytes", "0"]).contains("--max-value-bytes"));
        assert!(err(&["--load-budget", "1MiB"]).contains("--load-budget"));
        assert!(err(&["--origin-timeout", "0"]).contains("--origin-timeout"));
        assert!(err(&["--origin-timeout", "2h"]).contains("--origin-timeout"));
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        let err = |args: &[&str]| config(args).unwrap_err();
        assert!(err(&["--group", "=x"]).contains("NAME=ORIGIN"));
        assert!(err(&["--group", "a=echo", "--group", "a=echo"]).contains("already"));
        assert!(err(&["--group", "a=echo", "--peers", "http://a:1/"]).contains("trailing"));
        assert!(err(&["--group", "a=echo", "--peers", "a:1"]).contains("http://host:port"));
        assert!(err(&["--group", "a=echo", "--base-path", "x"]).contains("--base-path"));
        assert!(err(&["--group", "a=echo", "--replicas", "0"]).contains("--replicas"));
        assert!(err(&["--group", "a=ftp://x/{key}"]).contains("--group a: origin URL"));
        assert!(err(&["--group", "a=http://x/fixed"]).contains("{key}"));
        assert!(err(&["--group", "a=echo", "--cache-bytes", "lots"]).contains("size"));
        assert!(err(&[
            "--group",
            "a=echo",
            "--peers",
            "http://a:1",
            "--etcd",
            "http://e:2379"
        ])
        .contains("cannot be used"));
    }

    #[test]
    fn one_source_of_peers() {
        let err = |args: &[&str]| config(&[&["--group", "a=echo"], args].concat()).unwrap_err();
        let sources = [
            ["--peers", "http://a:1"],
            ["--etcd", "http://e:2379"],
            ["--peers-dns", "gc.test"],
            ["--peers-srv", "_gc._tcp.gc.test"],
        ];
        for (i, first) in sources.iter().enumerate() {
            for second in &sources[i + 1..] {
                assert_eq!(
                    err(&[&first[..], &second[..]].concat()),
                    format!(
                        "{} and {} cannot be used together: the peer list comes from one source",
                        first[0], second[0]
                    )
                );
            }
        }
        assert_eq!(
            err(&["--dns-server", "127.0.0.1:53"]),
            "--dns-server needs --peers-dns or --peers-srv"
        );
        assert_eq!(
            err(&["--peers-dns", "gc.test:0"]),
            "--peers-dns \"gc.test:0\": \"0\" is not a port from 1 to 65535"
        );
        assert!(err(&["--peers-srv", "a b"])
            .starts_with("--peers-srv \"a b\": \"a b\" is not a DNS name"));
        assert!(err(&["--peers-dns", "a", "--dns-interval", "999ms"]).contains("--dns-interval"));
        let c = config(&[
            "--group",
            "a=echo",
            "--peers-srv",
            "_gc._tcp.gc.test",
            "--dns-server",
            "127.0.0.1:5353",
        ])
        .unwrap();
        assert_eq!(
            c.dns,
            Some(DnsConfig {
                query: DnsQuery::Srv {
                    name: "_gc._tcp.gc.test".into()
                },
                server: Some("127.0.0.1:5353".parse().unwrap()),
                interval: Duration::from_secs(5),
            })
        );
        assert_eq!(config(&["--group", "a=echo"]).unwrap().dns, None);
    }

    #[test]
    fn ttl_flags_per_group_win_over_the_bare_value() {
        let c = config(&[
            "--group",
            "a=echo",
            "--group",
            "b=echo",
            "--group",
            "c=echo",
            "--max-ttl",
            "b=10s",
            "--max-ttl",
            "1h",
            "--default-ttl",
            "c=30s",
        ])
        .unwrap();
        let ttls: Vec<_> = c.node.groups.iter().map(|g| g.ttl).collect();
        let secs = |n| Some(Duration::from_secs(n));
        assert_eq!(
            ttls,
            [
                TtlPolicy {
                    default_ttl: None,
                    max_ttl: secs(3600),
                    ..TtlPolicy::default()
                },
                TtlPolicy {
                    default_ttl: None,
                    max_ttl: secs(10),
                    ..TtlPolicy::default()
                },
                TtlPolicy {
                    default_ttl: secs(30),
                    max_ttl: secs(3600),
                    ..TtlPolicy::default()
                },
            ]
        );
        let none = config(&["--group", "a=echo"]).unwrap();
        assert_eq!(
            none.node.groups[0].ttl,
            TtlPolicy::default(),
            "never expire"
        );
    }

    #[test]
    fn negative_max_ttl_caps_not_founds_per_group() {
        let c = config(&[
            "--group",
            "a=echo",
            "--group",
            "b=echo",
            "--negative-ttl",
            "5s",
            "--negative-max-ttl",
            "b=1m",
        ])
        .unwrap();
        let caps: Vec<_> = c.node.groups.iter().map(|g| g.ttl.negative_cap()).collect();
        let secs = Duration::from_secs;
        assert_eq!(caps, [secs(5), secs(60)]);
        let bad = config(&["--group", "a=echo", "--negative-max-ttl", "soon"]).unwrap_err();
        assert!(bad.starts_with("--negative-max-ttl \"soon\""), "{bad}");
    }

    #[test]
    fn bad_ttl_flags_name_the_flag() {
        let err = |args: &[&str]| config(args).unwrap_err();
        assert_eq!(
            err(&["--group", "a=echo", "--default-ttl", "soon"]),
            "--default-ttl \"soon\": expected DUR or NAME=DUR, e.g. 30s, 5m or 1h"
        );
        assert_eq!(
            err(&["--group", "a=echo", "--max-ttl", "b=1s"]),
            "--max-ttl \"b=1s\": no --group of that name"
        );
        assert!(
            err(&["--group", "a=echo", "--max-ttl", "1s", "--max-ttl", "2s"]).contains("twice")
        );
        assert!(err(&[
            "--group",
            "a=echo",
            "--max-ttl",
            "a=1s",
            "--max-ttl",
            "a=2s"
        ])
        .contains("twice"));
        // The longest TTL is accepted, one second more is not.
        assert!(config(&["--group", "a=echo", "--max-ttl", "2147483648s"]).is_ok());
        assert!(config(&["--group", "a=echo", "--default-ttl", "a=596523h"]).is_ok());
        assert_eq!(
            err(&["--group", "a=echo", "--default-ttl", "a=2147483649"]),
            "--default-ttl \"a=2147483649\": longer than the longest TTL, 2147483648s (about 68 years)"
        );
        assert_eq!(
            err(&["--group", "a=echo", "--max-ttl", "999999999999h"]),
            "--max-ttl \"999999999999h\": longer than the longest TTL, 2147483648s (about 68 years)"
        );
        assert_eq!(
            limits::MAX_TTL.as_secs(),
            2147483648,
            "TTL_TOO_LONG names it"
        );
    }

    /// Each flag's bounds, and one value past each end.
    #[test]
    fn numbers_and_durations_are_range_checked() {
        let ok = |flag: &str, value: &str| config(&["--group", "a=echo", flag, value]).is_ok();
        let cases = [
            ("--replicas", "1", "10000", "0", "10001"),
            (
                "--max-conns-per-peer",
                "1",
                "100000",
                "0",
                "2305843009213693952",
            ),
            (
                "--max-connections",
                "1",
                "10000000",
                "0",
                "18446744073709551615",
            ),
            ("--cache-bytes", "0", "1TiB", "1025GiB", "99999999999T"),
            ("--peer-timeout", "1ms", "60m", "0", "61m"),
            ("--header-read-timeout", "100ms", "10m", "99ms", "11m"),
            ("--body-read-timeout", "100ms", "10m", "99ms", "11m"),
            ("--etcd-ttl", "1s", "86400s", "999ms", "86401"),
            ("--dns-interval", "1s", "1h", "999ms", "3601s"),
        ];
        for (flag, min, max, below, above) in cases {
            assert!(ok(flag, min) && ok(flag, max), "{flag} {min} / {max}");
            assert!(
                !ok(flag, below) && !ok(flag, above),
                "{flag} {below} / {above}"
            );
        }
        let c = config(&["--group", "a=echo"]).unwrap();
        assert_eq!(c.max_connections, None);
        assert_eq!(c.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.body_read_timeout, Duration::from_secs(10));
    }

    #[test]
    fn base_path_may_not_shadow_the_user_api() {
        let ok = |base: &str| config(&["--group", "a=echo", "--base-path", base]).is_ok();
        for good in [
            "/_groupcache/",
            "/a/",
            "/a/b-c.d~e_f/",
            "/cachex/",
            "/stats/",
        ] {
            assert!(ok(good), "{good}");
        }
        for bad in [
            "/",
            "/cache/",
            "/cache/g/",
            "//",
            "/a//",
            "a/",
            "/a",
            "/a b/",
            "/%41/",
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }

    #[test]
    fn an_unspecified_listen_address_needs_self() {
        let listen = |extra: &[&str]| {
            let mut args = vec!["--group", "a=echo", "--listen", "0.0.0.0:8001"];
            args.extend_from_slice(extra);
            config(&args)
        };
        assert!(listen(&["--self", "http://127.0.0.1:8001"]).is_ok());
        // Without --self, the host's name decides (in a container, its own
        // address): never a loopback or unspecified address.
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let pick = |list: &[&str]| host_address(list.iter().map(|s| ip(s)));
        assert_eq!(pick(&["127.0.1.1", "::1"]), None);
        assert_eq!(pick(&["0.0.0.0"]), None);
        assert_eq!(
            pick(&["fd00::2", "127.0.0.1", "10.0.0.7"]),
            Some(ip("10.0.0.7"))
        );
        assert_eq!(pick(&["::1", "fd00::2"]), Some(ip("fd00::2")));
    }

    #[test]
    fn tls_flags() {
        let err = |args: &[&str]| config(args).unwrap_err();
        let c = config(&["--group", "a=echo", "--peers", "https://a:1,https://b:2"]).unwrap();
        assert_eq!(c.node.peers, ["https://a:1", "https://b:2"]);
        assert!(c.tls.main.is_none() && c.tls.peer.is_none());
        let missing = ["--group", "a=echo", "--tls-cert", "/nonexistent/c.pem"];
        assert!(err(&missing).contains("--tls-key"));
        let missing = [&missing[..], &["--tls-key", "/nonexistent/k.pem"]].concat();
        assert!(err(&missing).starts_with("--tls-cert /nonexistent/c.pem: "));
        let ca = ["--group", "a=echo", "--origin-ca", "/nonexistent/ca.pem"];
        assert!(err(&ca).starts_with("--origin-ca "));
        let client_ca = [
            "--group",
            "a=echo",
            "--peer-client-ca",
            "/nonexistent/ca.pem",
        ];
        assert!(err(&client_ca).contains("needs a TLS peer API"));
        assert!(err(&[
            "--group",
            "a=echo",
            "--peer-tls-cert",
            "c",
            "--peer-tls-key",
            "k"
        ])
        .contains("--peer-listen"));
    }
}
