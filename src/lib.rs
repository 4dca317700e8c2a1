//! groupcached: a groupcache node that joins golang/groupcache HTTPPool
//! clusters as an equal peer, as a binary (`groupcached`) or embedded in a
//! Rust program.
//!
//! Embedding takes about three calls and a [`Getter`] (golang's
//! `NewGroup`, `NewHTTPPoolOpts` and `Set`): [`NodeBuilder::new`] with this
//! node's URL, [`NodeBuilder::peers`] and [`NodeBuilder::group`], then
//! [`NodeBuilder::build`]. [`Node::get`] loads a key through the cluster;
//! [`serve`] serves the user and peer APIs on a listener the caller
//! bound (see `examples/embedded.rs`). [`consistenthash`] computes which
//! peer owns a key; [`wire`] has the protocol details a client needs
//! (escaping keys into URLs, the peer reply's encoding).
//!
//! Inside, a request enters `http` (the listener, then the routes),
//! becomes a `group` lookup, and is answered from the `cache`, fetched
//! from the owning peer (`peers` picks it with the ring, `peers::client`
//! fetches it), or loaded through the group's getter (`origin` for
//! `--group NAME=URL`) once per key (`singleflight`). `writes` sends Sets
//! and Removes across the pool; `cmd` turns the binary's flags into a
//! running node; `discovery` feeds it peer lists from etcd or DNS.
//!
//! Cargo features: `binary` (default) is the `groupcached` command with
//! `etcd` and `dns` (discovery) and `metrics` (`GET /metrics`). Without default
//! features this is the library alone, and building it needs no `protoc`.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
// Without the command, the parts of the core only it uses (HTTP origins,
// TLS files, flag limits) are unused; the default build checks them.

pub mod consistenthash;
pub mod wire;

mod backoff;
mod cache;
#[cfg(feature = "binary")]
mod cmd;
mod discovery;
mod group;
mod http;
mod http_client;
mod log_gate;
mod node;
mod origin;
mod peers;
mod representation;
mod singleflight;
#[cfg(feature = "binary")]
mod snapshot;
mod tls;
mod units;
mod value;
mod writes;

pub use cache::CacheStats;
pub use group::counters::GroupStats;
pub use group::getter::{BoxFuture, Getter, GetterError};
pub use group::{Group, GroupError, HotPolicy, UnknownHotPolicy};
pub use http::reply::{ReplyBody, ReplyChunk};
pub use http::routes::{respond, NodeService};
pub use http::serve_options::ServeOptions;
pub use http::server::{serve, serve_with};
pub use http_client::HttpError;
pub use node::builder::{BuildError, NodeBuilder};
pub use node::{GetError, Node, WriteError};
pub use origin::TemplateError;
pub use peers::picker::{FetchPeer, PeerError, PickPeer};
pub use peers::protocol::{Protocol, UnknownProtocol};
pub use peers::url::{BadPeerUrl, InvalidPeerUrl};
pub use representation::media_type::MediaTypeError;
pub use value::{Expiry, Grace, Value};

/// The `groupcached` command's `main`, for `src/main.rs`: not part of the
/// library's API.
#[cfg(feature = "binary")]
#[doc(hidden)]
pub use cmd::main as command_main;
