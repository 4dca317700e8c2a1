//! groupcached: a groupcache node that joins golang/groupcache HTTPPool
//! clusters as an equal peer.
//!
//! A request enters [`server`], becomes a [`group`] lookup, and is answered
//! from the [`cache`], fetched from the owning peer ([`peers`] picks it with
//! the [`consistenthash`] ring, [`peer_client`] fetches it), or loaded from
//! the [`origin`] once per key ([`singleflight`]). [`wire`] holds every
//! byte-level protocol detail; [`discovery`] feeds peer lists from etcd.

#![forbid(unsafe_code)]

pub mod app;
pub mod builder;
pub mod cache;
pub mod config;
pub mod consistenthash;
pub mod dialect;
pub mod discovery;
pub mod freshness;
pub mod getter;
pub mod group;
pub mod http_client;
pub mod metrics;
pub mod node;
pub mod origin;
pub mod peer_client;
pub mod peers;
pub mod server;
pub mod singleflight;
pub mod status;
pub mod tls;
pub mod value;
pub mod wire;
pub mod writes;

pub use app::{run, App, StartError};
pub use builder::{BuildError, NodeBuilder};
pub use config::{Args, Config};
pub use dialect::Protocol;
pub use getter::{BoxFuture, Getter, GetterError};
pub use group::{Group, GroupError};
pub use node::{GetError, Node};
pub use value::{Expiry, Value};
