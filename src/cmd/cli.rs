//! The command line: every flag, its environment variable, its default
//! and the range its value must lie in (clap). `config` validates what was
//! given into a [`crate::cmd::config::Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::Parser;

use crate::consistenthash::DEFAULT_REPLICAS;
use crate::group::HotPolicy;
use crate::peers::protocol::Protocol;
use crate::units::{limits, parse_duration, parse_size};
use crate::wire::DEFAULT_BASE_PATH;

/// groupcached: a groupcache node that joins golang/groupcache HTTPPool clusters.
#[derive(Debug, Parser)]
#[command(version = VERSION, about, after_help = EXAMPLES)]
pub(crate) struct Args {
    /// Address to listen on for users and peers.
    #[arg(long, env = "GROUPCACHED_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// This node's URL as it appears in the peer list [default:
    /// http://LISTEN; for 0.0.0.0 or [::], the address the host's name
    /// resolves to, when that is not loopback].
    #[arg(long = "self", env = "GROUPCACHED_SELF", value_name = "URL")]
    pub self_url: Option<String>,

    /// Every peer's URL, comma-separated; give every node the same list in
    /// the same order. This node is appended if missing.
    #[arg(
        long,
        env = "GROUPCACHED_PEERS",
        value_delimiter = ',',
        value_name = "URL,URL,..."
    )]
    pub peers: Vec<String>,

    /// A group and its origin: NAME=http://host/path/{key} ({group} and
    /// {key} are replaced, percent-encoded), or NAME=echo (value = key).
    /// Repeatable; the environment variable takes several, space-separated.
    #[arg(
        long = "group",
        env = "GROUPCACHED_GROUP",
        value_delimiter = ' ',
        value_name = "NAME=ORIGIN",
        required_unless_present_any = ["generate", "health"]
    )]
    pub groups: Vec<String>,

    /// Lifetime of values whose origin gives none (no max-age, s-maxage or
    /// Expires): DUR for every group, NAME=DUR for one; repeatable
    /// [default: never expire].
    #[arg(
        long,
        env = "GROUPCACHED_DEFAULT_TTL",
        value_delimiter = ' ',
        value_name = "[NAME=]DUR"
    )]
    pub default_ttl: Vec<String>,

    /// The longest any value lives, whatever its origin says: DUR for every
    /// group, NAME=DUR for one; repeatable [default: no cap].
    #[arg(
        long,
        env = "GROUPCACHED_MAX_TTL",
        value_delimiter = ' ',
        value_name = "[NAME=]DUR"
    )]
    pub max_ttl: Vec<String>,

    /// How long after it expires a value is still served when reloading it
    /// fails (an error, a timeout, a 5xx), unless its origin says otherwise
    /// with stale-if-error, must-revalidate or s-maxage: DUR for every
    /// group, NAME=DUR for one; repeatable [default: 0, off].
    #[arg(
        long,
        env = "GROUPCACHED_STALE_IF_ERROR",
        value_delimiter = ' ',
        value_name = "[NAME=]DUR"
    )]
    pub stale_if_error: Vec<String>,

    /// How long after it expires a value is still served at once while
    /// one reload runs in the background, unless its origin says otherwise
    /// with stale-while-revalidate, must-revalidate or s-maxage: DUR for
    /// every group, NAME=DUR for one; repeatable [default: 0, off].
    #[arg(
        long,
        env = "GROUPCACHED_STALE_WHILE_REVALIDATE",
        value_delimiter = ' ',
        value_name = "[NAME=]DUR"
    )]
    pub stale_while_revalidate: Vec<String>,

    /// How long a key the origin does not have (404, 410) is remembered
    /// when the origin's reply gives no lifetime: DUR for every group,
    /// NAME=DUR for one; repeatable [default: 0, not remembered].
    #[arg(
        long,
        env = "GROUPCACHED_NEGATIVE_TTL",
        value_delimiter = ' ',
        value_name = "[NAME=]DUR"
    )]
    pub negative_ttl: Vec<String>,

    /// The longest a key the origin does not have is remembered, whatever
    /// the origin's reply says: DUR for every group, NAME=DUR for one;
    /// repeatable [default: --negative-ttl, or 1m without it].
    #[arg(
        long,
        env = "GROUPCACHED_NEGATIVE_MAX_TTL",
        value_delimiter = ' ',
        value_name = "[NAME=]DUR"
    )]
    pub negative_max_ttl: Vec<String>,

    /// The Content-Type users get with a group's values: NAME=MEDIA_TYPE,
    /// e.g. pages=text/html; charset=utf-8; repeatable; the environment
    /// variable takes several, comma-separated [default:
    /// application/octet-stream].
    #[arg(
        long,
        env = "GROUPCACHED_CONTENT_TYPE",
        value_delimiter = ',',
        value_name = "NAME=MEDIA_TYPE"
    )]
    pub content_type: Vec<String>,

    /// Send a group's values of 1 KiB or more compressed (gzip, br or zstd,
    /// as the client's Accept-Encoding prefers), each compressed once and
    /// kept in an eighth of --cache-bytes: NAME; repeatable; the
    /// environment variable takes several, space-separated.
    #[arg(
        long,
        env = "GROUPCACHED_COMPRESS",
        value_delimiter = ' ',
        value_name = "NAME"
    )]
    pub compress: Vec<String>,

    /// Cache size of each group (main + hot), e.g. 64MiB, 1G, 1048576.
    #[arg(long, env = "GROUPCACHED_CACHE_BYTES", default_value = "64MiB", value_parser = in_range(parse_size, limits::CACHE_BYTES))]
    pub cache_bytes: u64,

    /// URL path under which peers are served and fetched.
    #[arg(long, env = "GROUPCACHED_BASE_PATH", default_value = DEFAULT_BASE_PATH)]
    pub base_path: String,

    /// Which Go groupcache the pool speaks (its ring, statuses and writes);
    /// every node of a pool must use the same.
    #[arg(long, env = "GROUPCACHED_PROTOCOL", value_parser = protocol_parser(), default_value = "golang")]
    pub protocol: Protocol,

    /// How values fetched from their owners get into the hot cache.
    #[arg(long, env = "GROUPCACHED_HOT_POLICY", value_parser = hot_policy_parser(), default_value = "heat")]
    pub hot_policy: HotPolicy,

    /// Accept PUT and DELETE on /cache/{group}/{key} (mailgun and
    /// groupcache-go pools only).
    #[arg(long, env = "GROUPCACHED_ALLOW_WRITES")]
    pub allow_writes: bool,

    /// Check the flags and exit: 0 when a node would start with them
    /// (nothing is bound and no peer or origin is contacted), 2 when not.
    #[arg(long)]
    pub check: bool,

    /// Ask the node listening at --listen for /healthz and exit: 0 when it
    /// answers 200 within 2 s, 1 when not (a container's HEALTHCHECK; plain
    /// HTTP, so with --tls-cert only the connection is checked).
    #[arg(long)]
    pub health: bool,

    /// Print the man page (man) or a shell's completions (bash, zsh, fish)
    /// and exit: for packagers.
    #[arg(long, hide = true, value_name = "WHAT", value_parser = ["man", "bash", "zsh", "fish"])]
    pub generate: Option<String>,

    /// Ring points per peer (golang's default is 50).
    #[arg(long, env = "GROUPCACHED_REPLICAS", default_value_t = DEFAULT_REPLICAS, value_parser = count_in(limits::REPLICAS))]
    pub replicas: usize,

    /// What a peer fetch may take beyond the owner's own origin load (its
    /// deadline is --origin-timeout + this), e.g. 2s, 500ms.
    #[arg(long, env = "GROUPCACHED_PEER_TIMEOUT", default_value = "5s", value_parser = in_range(parse_duration, limits::PEER_TIMEOUT))]
    pub peer_timeout: Duration,

    /// How long a peer has to answer a liveness probe, sent once a fetch
    /// from it has waited half this long; a peer that does not answer is
    /// marked down and its keys load locally at once. 0 turns probes off.
    #[arg(long, env = "GROUPCACHED_PROBE_TIMEOUT", default_value = "1s", value_parser = in_range(parse_duration, limits::PROBE_TIMEOUT))]
    pub probe_timeout: Duration,

    /// How long a get whose expired value may answer if its reload fails
    /// (stale-if-error) waits for the reload before answering stale; the
    /// reload runs on. 0 answers stale at once.
    #[arg(long, env = "GROUPCACHED_STALE_WAIT", default_value = "1s", value_parser = in_range(parse_duration, limits::STALE_WAIT))]
    pub stale_wait: Duration,

    /// Write the main caches to FILE at shutdown and read them back at start
    /// (a warm restart); FILE is removed once read, so a crash restarts cold.
    #[arg(long, env = "GROUPCACHED_SNAPSHOT", value_name = "FILE")]
    pub snapshot: Option<std::path::PathBuf>,

    /// A --snapshot written longer ago than this is not read back.
    #[arg(long, env = "GROUPCACHED_SNAPSHOT_MAX_AGE", default_value = "10m", value_parser = in_range(parse_duration, limits::SNAPSHOT_MAX_AGE))]
    pub snapshot_max_age: Duration,

    /// How long an origin load may take, e.g. 10s, 500ms.
    #[arg(long, env = "GROUPCACHED_ORIGIN_TIMEOUT", default_value = "10s", value_parser = in_range(parse_duration, limits::ORIGIN_TIMEOUT))]
    pub origin_timeout: Duration,

    /// Largest value, e.g. 16MiB [default: 16MiB or --cache-bytes if less];
    /// at most --cache-bytes (unless that is 0).
    #[arg(long, env = "GROUPCACHED_MAX_VALUE_BYTES", value_parser = in_range(parse_size, limits::MAX_VALUE_BYTES))]
    pub max_value_bytes: Option<u64>,

    /// Most bytes held at once by values being read from origins and peers
    /// [default: --cache-bytes, at least --max-value-bytes]; loads over it get 503.
    #[arg(long, env = "GROUPCACHED_LOAD_BUDGET", value_parser = in_range(parse_size, limits::LOAD_BUDGET))]
    pub load_budget: Option<u64>,

    /// Most concurrent requests to one peer (or one origin).
    #[arg(long, env = "GROUPCACHED_MAX_CONNS_PER_PEER", default_value_t = 64, value_parser = count_in(limits::MAX_CONNS_PER_PEER))]
    pub max_conns_per_peer: usize,

    /// Most client connections open at once; more wait to be accepted
    /// [default: half the open-file limit].
    #[arg(long, env = "GROUPCACHED_MAX_CONNECTIONS", value_parser = count_in(limits::MAX_CONNECTIONS))]
    pub max_connections: Option<usize>,

    /// How long a client may take to send a request's headers.
    #[arg(long, env = "GROUPCACHED_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = in_range(parse_duration, limits::HEADER_READ_TIMEOUT))]
    pub header_read_timeout: Duration,

    /// How long a client may take to send a request's body (writes only);
    /// then it gets 408 and the connection is closed.
    #[arg(long, env = "GROUPCACHED_BODY_READ_TIMEOUT", default_value = "10s", value_parser = in_range(parse_duration, limits::BODY_READ_TIMEOUT))]
    pub body_read_timeout: Duration,

    /// etcd endpoints for peer discovery (instead of --peers), comma-separated.
    #[arg(
        long,
        env = "GROUPCACHED_ETCD",
        value_delimiter = ',',
        value_name = "URL,URL,..."
    )]
    pub etcd: Vec<String>,

    /// etcd key prefix under which nodes register.
    #[arg(
        long,
        env = "GROUPCACHED_ETCD_PREFIX",
        default_value = "/groupcache/peers/"
    )]
    pub etcd_prefix: String,

    /// Lease TTL of this node's etcd registration, e.g. 10s.
    #[arg(long, env = "GROUPCACHED_ETCD_TTL", default_value = "10s", value_parser = in_range(parse_duration, limits::ETCD_TTL))]
    pub etcd_ttl: Duration,

    /// Peers from DNS: one per A/AAAA address of NAME, on PORT [default:
    /// the port peers reach this node on], as a Kubernetes headless Service
    /// gives them (instead of --peers).
    #[arg(long, env = "GROUPCACHED_PEERS_DNS", value_name = "NAME[:PORT]")]
    pub peers_dns: Option<String>,

    /// Peers from the DNS SRV records of NAME: each target's addresses,
    /// on the record's port (instead of --peers).
    #[arg(long, env = "GROUPCACHED_PEERS_SRV", value_name = "NAME")]
    pub peers_srv: Option<String>,

    /// The DNS server --peers-dns and --peers-srv ask, IP:PORT [default:
    /// the system resolver].
    #[arg(long, env = "GROUPCACHED_DNS_SERVER", value_name = "IP:PORT")]
    pub dns_server: Option<SocketAddr>,

    /// How often --peers-dns and --peers-srv ask again, or the records'
    /// TTL if shorter (but at most once a second).
    #[arg(long, env = "GROUPCACHED_DNS_INTERVAL", default_value = "5s", value_parser = in_range(parse_duration, limits::DNS_INTERVAL))]
    pub dns_interval: Duration,

    /// Serve HTTPS with this PEM certificate chain (re-read when it changes).
    #[arg(
        long,
        env = "GROUPCACHED_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        env = "GROUPCACHED_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Trust only these PEM CA certificates for https origins [default: system roots].
    #[arg(long, env = "GROUPCACHED_ORIGIN_CA", value_name = "FILE")]
    pub origin_ca: Option<PathBuf>,

    /// Trust only these PEM CA certificates for https peers [default: system roots].
    #[arg(long, env = "GROUPCACHED_PEER_CA", value_name = "FILE")]
    pub peer_ca: Option<PathBuf>,

    /// Client certificate presented to https peers (mutual TLS).
    #[arg(
        long,
        env = "GROUPCACHED_PEER_CLIENT_CERT",
        value_name = "FILE",
        requires = "peer_client_key"
    )]
    pub peer_client_cert: Option<PathBuf>,

    /// The PEM private key of --peer-client-cert.
    #[arg(
        long,
        env = "GROUPCACHED_PEER_CLIENT_KEY",
        value_name = "FILE",
        requires = "peer_client_cert"
    )]
    pub peer_client_key: Option<PathBuf>,

    /// Require peers to present a client certificate signed by these PEM CAs.
    #[arg(long, env = "GROUPCACHED_PEER_CLIENT_CA", value_name = "FILE")]
    pub peer_client_ca: Option<PathBuf>,

    /// Serve the peer API on its own listener at this address; the main
    /// listener then answers it with 404.
    #[arg(long, env = "GROUPCACHED_PEER_LISTEN", value_name = "ADDR")]
    pub peer_listen: Option<SocketAddr>,

    /// The peer listener's own certificate [default: --tls-cert].
    #[arg(
        long,
        env = "GROUPCACHED_PEER_TLS_CERT",
        value_name = "FILE",
        requires = "peer_tls_key",
        requires = "peer_listen"
    )]
    pub peer_tls_cert: Option<PathBuf>,

    /// The PEM private key of --peer-tls-cert.
    #[arg(
        long,
        env = "GROUPCACHED_PEER_TLS_KEY",
        value_name = "FILE",
        requires = "peer_tls_cert"
    )]
    pub peer_tls_key: Option<PathBuf>,

    /// Log line format: text (human-readable) or json (one object a line).
    #[arg(long, env = "GROUPCACHED_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// `--version`: the crate's version and the git revision it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("GROUPCACHED_REVISION"),
    ")"
);

/// The end of `--help`.
const EXAMPLES: &str = "\
Examples:
  # One node, its values from an HTTP origin; then: curl localhost:8080/cache/users/alice
  groupcached --group 'users=http://127.0.0.1:9000/users/{key}'

  # One of three nodes, on every address, with a 1 GiB cache per group
  groupcached --listen 0.0.0.0:8080 --self http://10.0.0.1:8080 \\
    --peers http://10.0.0.1:8080,http://10.0.0.2:8080,http://10.0.0.3:8080 \\
    --group 'users=http://origin.internal/users/{key}' --cache-bytes 1GiB";

/// `--protocol`: one of [`Protocol::ALL`]'s names, listed in `--help`.
fn protocol_parser() -> impl TypedValueParser<Value = Protocol> {
    let help = |protocol| match protocol {
        Protocol::Golang => "golang/groupcache: any method is a get, no writes",
        Protocol::Mailgun => "mailgun/groupcache v2",
        Protocol::GroupcacheGo => "groupcache/groupcache-go v3",
    };
    let names =
        Protocol::ALL.map(|protocol| PossibleValue::new(protocol.name()).help(help(protocol)));
    PossibleValuesParser::new(names).try_map(|name| name.parse::<Protocol>())
}

/// `--hot-policy`: `heat` or `golang`, listed in `--help`.
fn hot_policy_parser() -> impl TypedValueParser<Value = HotPolicy> {
    let names = [
        PossibleValue::new("heat").help(
            "keep a copy when there is room or it is asked for more than the entry it would evict",
        ),
        PossibleValue::new("golang").help(
            "as the Go nodes do: 1 fetched value in 10 at random (every value in a fork's pool)",
        ),
    ];
    PossibleValuesParser::new(names).try_map(|name| name.parse::<HotPolicy>())
}

/// A clap parser for a count flag in `min..=max`; out of range, it says
/// what the node builder says.
fn count_in(
    (min, max): (u64, u64),
) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync {
    let bound = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    in_range(parse_count, (bound(min), bound(max)))
}

/// "64" → 64.
fn parse_count(text: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|e| format!("{text:?} is not a count: {e}"))
}

/// A clap parser for a flag read by `parse` (such as [`parse_size`] or
/// [`parse_duration`]) whose value must lie in `min..=max`.
fn in_range<T>(
    parse: fn(&str) -> Result<T, String>,
    (min, max): (T, T),
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: PartialOrd + std::fmt::Debug + Copy + Send + Sync,
{
    move |text| {
        let value = parse(text)?;
        if min <= value && value <= max {
            Ok(value)
        } else {
            Err(format!("{value:?} is not between {min:?} and {max:?}"))
        }
    }
}
