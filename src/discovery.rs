//! Peer discovery through etcd (placeholder until the etcd loop lands).

use std::time::Duration;

/// Where and how this node registers in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub ttl: Duration,
}
