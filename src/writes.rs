//! Set and Remove: what a node does when a peer or a user writes a key.
//!
//! From a peer (the forks' peer API): a `PUT` body is a `SetRequest` whose
//! key (from the body, not the URL) goes into the main cache, dropping any
//! hot copy; a `DELETE` removes the URL's key from both caches; a
//! groupcache-go `POST .../_remove-keys/` removes every key of its JSON
//! list. Nothing is propagated further.
//!
//! From a user (`PUT`/`DELETE /cache/{group}/{key}` with `--allow-writes`),
//! the write is propagated here, in one place: a Set goes to the key's
//! owner and removes every other node's hot copy (groupcache-go's pools
//! store it at every node instead, as its `Set` does); a Remove goes to the
//! owner and to every other node. Each node's answer is collected, so the
//! user learns which nodes did not confirm.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::StatusCode;
use tokio::task::JoinSet;

use crate::cache::Which;
use crate::freshness::{Lifetime, TtlPolicy};
use crate::group::{Counted, Group};
use crate::peer_client::PeerError;
use crate::peers::Peers;
use crate::value::Value;
use crate::wire::{self, WriteBodyError};

/// Why a write was refused, with the status it gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    BadBody(#[from] WriteBodyError),
    #[error("value of {size} bytes with its key exceeds the largest entry of group {group}, {limit} bytes")]
    TooLarge {
        group: String,
        size: u64,
        limit: u64,
    },
}

impl WriteError {
    pub fn status(&self) -> StatusCode {
        match self {
            WriteError::BadBody(_) => StatusCode::BAD_REQUEST,
            WriteError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// A peer's `PUT`: stores the `SetRequest` in the main cache.
pub fn peer_set(group: &Group, body: Bytes) -> Result<(), WriteError> {
    let (key, value) = wire::decode_set_request(body)?;
    store(group, &key, Which::Main, value)?;
    group.count(Counted::PeerSet);
    Ok(())
}

/// A peer's `DELETE`: removes `key` from both caches.
pub fn peer_remove(group: &Group, key: &[u8]) {
    remove_here(group, key);
    group.count(Counted::PeerRemove);
}

/// Removes `key` from both caches of `group` at this node.
fn remove_here(group: &Group, key: &[u8]) {
    // A removal stores nothing, so it cannot be too large.
    let _ = group.write(key, None);
}

/// groupcache-go's `POST {base}{group}/_remove-keys/`: removes every key
/// of the JSON list.
pub fn peer_remove_keys(group: &Group, body: &[u8]) -> Result<(), WriteError> {
    for key in wire::decode_remove_keys(body)?.keys {
        peer_remove(group, key.as_bytes());
    }
    Ok(())
}

/// Stores `value` under `key` in one cache of `group`, or says why not.
fn store(group: &Group, key: &[u8], which: Which, value: Value) -> Result<(), WriteError> {
    group
        .write(key, Some((which, value)))
        .map_err(|size| WriteError::TooLarge {
            group: group.name().to_string(),
            size,
            limit: group.max_entry_bytes(),
        })
}

/// The largest body a user `PUT` of `key` may carry in `group`.
pub fn max_value_bytes(group: &Group, key: &[u8]) -> u64 {
    group.max_entry_bytes().saturating_sub(key.len() as u64)
}

/// A user's Set: `ttl` (capped by the group's `--max-ttl`; without it the
/// group's `--default-ttl` applies) and whether this node keeps a hot copy.
pub struct SetOptions {
    pub ttl: Option<Duration>,
    pub hot: bool,
}

impl SetOptions {
    /// Parses a user PUT's query: `ttl=DUR` and `hot=1` (or `0`), both
    /// optional; anything else is refused with a one-line reason.
    pub fn from_query(query: &str) -> Result<SetOptions, String> {
        let mut options = SetOptions {
            ttl: None,
            hot: false,
        };
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=').unwrap_or((pair, "")) {
                ("ttl", text) => {
                    let ttl =
                        crate::config::parse_ttl(text).map_err(|e| format!("ttl={text}: {e}"))?;
                    options.ttl = Some(ttl);
                }
                ("hot", "1" | "true") => options.hot = true,
                ("hot", "0" | "false") => options.hot = false,
                _ => {
                    return Err(format!(
                        "unknown or bad query parameter {pair:?} (ttl=DUR, hot=1)"
                    ))
                }
            }
        }
        Ok(options)
    }
}

/// The nodes that did not confirm a write, with their errors; empty when
/// every node did.
#[derive(Debug, Default)]
pub struct Unconfirmed(pub Vec<(String, PeerError)>);

impl Unconfirmed {
    /// 200 `ok`, or 502 with one line per node that did not confirm.
    pub fn reply(&self) -> (StatusCode, String) {
        if self.0.is_empty() {
            return (StatusCode::OK, "ok".into());
        }
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|(node, error)| format!("not confirmed by {node}: {error}"))
            .collect();
        (StatusCode::BAD_GATEWAY, lines.join("\n"))
    }
}

/// A user's Set of `key` through this node, whose pool is `peers`.
pub async fn user_set(
    group: &Group,
    peers: &Peers,
    policy: &TtlPolicy,
    key: &[u8],
    bytes: Bytes,
    options: SetOptions,
) -> Result<Unconfirmed, WriteError> {
    let size = (key.len() as u64).saturating_add(bytes.len() as u64);
    if size > group.max_entry_bytes() {
        return Err(WriteError::TooLarge {
            group: group.name().to_string(),
            size,
            limit: group.max_entry_bytes(),
        });
    }
    let lifetime = options.ttl.map_or(Lifetime::Unspecified, Lifetime::Fresh);
    let value = Value::new(bytes, policy.expiry(lifetime, SystemTime::now()));
    let owner = peers.owner(key);
    let everywhere = peers.protocol().set_goes_everywhere();
    let mut sends = JoinSet::new();
    for (url, client) in peers.others() {
        let is_owner = owner.as_deref() == Some(url.as_str());
        let (name, key, value) = (group.name().to_string(), key.to_vec(), value.clone());
        sends.spawn(async move {
            let sent = if is_owner || everywhere {
                client.set(name.as_bytes(), &key, &value).await
            } else {
                client.remove(name.as_bytes(), &key).await
            };
            (url, sent)
        });
    }
    let local = if owner.as_deref() == Some(peers.self_url()) || everywhere {
        Some(Which::Main)
    } else {
        options.hot.then_some(Which::Hot)
    };
    // Checked above: the entry fits, so the store cannot be refused.
    let _ = group.write(key, local.map(|which| (which, value)));
    group.count(Counted::UserSet);
    Ok(collect(group, sends).await)
}

/// A user's Remove of `key` through this node, whose pool is `peers`:
/// every node drops it.
pub async fn user_remove(group: &Group, peers: &Peers, key: &[u8]) -> Unconfirmed {
    let mut sends = JoinSet::new();
    for (url, client) in peers.others() {
        let (name, key) = (group.name().to_string(), key.to_vec());
        sends.spawn(async move { (url, client.remove(name.as_bytes(), &key).await) });
    }
    remove_here(group, key);
    group.count(Counted::UserRemove);
    collect(group, sends).await
}

/// Waits for every send of a user's write and keeps the failures, sorted
/// by URL; a write with any is counted as unconfirmed.
async fn collect(
    group: &Group,
    mut sends: JoinSet<(String, Result<(), PeerError>)>,
) -> Unconfirmed {
    let mut failed = Vec::new();
    while let Some(joined) = sends.join_next().await {
        match joined {
            Ok((url, Err(error))) => failed.push((url, error)),
            Ok((_, Ok(()))) => {}
            Err(e) => tracing::warn!(error = %e, "write task failed"),
        }
    }
    failed.sort_by(|a, b| a.0.cmp(&b.0));
    if !failed.is_empty() {
        group.count(Counted::UnconfirmedWrite);
    }
    Unconfirmed(failed)
}
