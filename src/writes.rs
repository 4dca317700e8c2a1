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
//! owner and to every other node. The owner is always written first, the
//! others once it has answered, so no node can fetch the old value back.
//! Each node's answer is collected, so the user learns which nodes did not
//! confirm.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use tokio::task::JoinSet;

use crate::cache::Which;
use crate::freshness::{Lifetime, TtlPolicy};
use crate::group::{Counted, Group};
use crate::peer_client::PeerClient;
use crate::peers::Peers;
use crate::picker::{FetchPeer, PeerError};
use crate::value::Value;
use crate::wire::{self, WriteBodyError};

/// Why a write was refused, with the status it gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("{0}")]
    BadBody(#[from] WriteBodyError),
    #[error("value of {size} bytes with its key exceeds the largest entry of group {group}, {limit} bytes")]
    TooLarge {
        group: String,
        size: u64,
        limit: u64,
    },
    #[error("write failed: {0}")]
    Failed(String),
}

impl WriteError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            WriteError::BadBody(WriteBodyError::TooManyKeys(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            WriteError::BadBody(_) => StatusCode::BAD_REQUEST,
            WriteError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            WriteError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// A peer's `PUT`: stores the `SetRequest` in the main cache, its expiry
/// held to the group's `policy` as a loaded value's is.
pub(crate) fn peer_set(group: &Group, policy: &TtlPolicy, body: Bytes) -> Result<(), WriteError> {
    let (key, value) = wire::decode_set_request(body)?;
    let value = Value::new(value.bytes, policy.cap(value.expiry, crate::value::now()));
    store(group, &key, Which::Main, value)?;
    group.count(Counted::PeerSet);
    Ok(())
}

/// A peer's `DELETE`: removes `key` from both caches.
pub(crate) fn peer_remove(group: &Group, key: &[u8]) {
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
///
/// Decoding and removing run on a blocking thread: a long list costs CPU
/// that must not hold up the requests sharing this one's executor thread.
pub(crate) async fn peer_remove_keys(group: Group, body: Bytes) -> Result<(), WriteError> {
    let remove = move || {
        for key in wire::decode_remove_keys(&body)?.keys {
            peer_remove(&group, key.as_bytes());
        }
        Ok(())
    };
    match tokio::task::spawn_blocking(remove).await {
        Ok(removed) => removed,
        // The closure does not panic; if it did, the request fails.
        Err(e) => Err(WriteError::Failed(e.to_string())),
    }
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
pub(crate) fn max_value_bytes(group: &Group, key: &[u8]) -> u64 {
    group.max_entry_bytes().saturating_sub(key.len() as u64)
}

/// A user's Set: `ttl` (capped by the group's `--max-ttl`; without it the
/// group's `--default-ttl` applies) and whether this node keeps a hot copy.
pub(crate) struct SetOptions {
    pub ttl: Option<Duration>,
    pub hot: bool,
}

impl SetOptions {
    /// Parses a user PUT's query: `ttl=DUR` (more than zero: a value that
    /// must not live is a DELETE) and `hot=1` (or `0`), both optional and
    /// each at most once; anything else is refused with a one-line reason.
    pub(crate) fn from_query(query: &str) -> Result<SetOptions, String> {
        let mut options = SetOptions {
            ttl: None,
            hot: false,
        };
        let mut seen = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, text) = pair.split_once('=').unwrap_or((pair, ""));
            if seen.contains(&name) {
                return Err(format!("query parameter {name} given twice"));
            }
            seen.push(name);
            match (name, text) {
                ("ttl", text) => {
                    let ttl =
                        crate::units::parse_ttl(text).map_err(|e| format!("ttl={text}: {e}"))?;
                    if ttl.is_zero() {
                        let reason = "a written value must live; DELETE removes a key";
                        return Err(format!("ttl={text}: {reason}"));
                    }
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
pub(crate) struct Unconfirmed(pub Vec<(String, PeerError)>);

impl Unconfirmed {
    /// 200 `ok`, or 502 with one line per node that did not confirm.
    pub(crate) fn reply(&self) -> (StatusCode, String) {
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
///
/// The owner is written first and the other nodes only once it has
/// answered: a node that drops its hot copy and fetches the key again
/// then gets the new value from the owner, and a fetch it began before
/// dropping the copy is not mirrored (the key's write generation moved).
/// So once the user has a 200, no groupcached node serves the old value.
pub(crate) async fn user_set(
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
    let value = Value::new(bytes, policy.expiry(lifetime, crate::value::now()));
    let owner = peers.owner(key);
    let owned_here = owner
        .as_deref()
        .is_none_or(|owner| owner == peers.self_url());
    let everywhere = peers.protocol().set_goes_everywhere();
    let local = if owned_here || everywhere {
        Some(Which::Main)
    } else {
        options.hot.then_some(Which::Hot)
    };
    let mut failed = Vec::new();
    let (owners, others) = owner_first(peers, owner.as_deref());
    for (url, client) in owners {
        if let Err(e) = client.set(group.name().as_bytes(), key, &value).await {
            failed.push((url, e));
        }
    }
    // Checked above: the entry fits, so the store cannot be refused.
    let _ = group.write(key, local.map(|which| (which, value.clone())));
    let mut sends = JoinSet::new();
    for (url, client) in others {
        let (name, key, value) = (group.name().to_string(), key.to_vec(), value.clone());
        sends.spawn(async move {
            let sent = if everywhere {
                client.set(name.as_bytes(), &key, &value).await
            } else {
                client.remove(name.as_bytes(), &key).await
            };
            (url, sent)
        });
    }
    group.count(Counted::UserSet);
    Ok(collect(group, failed, sends).await)
}

/// A user's Remove of `key` through this node, whose pool is `peers`:
/// every node drops it, the owner first (as for a Set, so that no other
/// node can fetch the removed value back from it).
pub(crate) async fn user_remove(group: &Group, peers: &Peers, key: &[u8]) -> Unconfirmed {
    let owner = peers.owner(key);
    let mut failed = Vec::new();
    let (owners, others) = owner_first(peers, owner.as_deref());
    for (url, client) in owners {
        if let Err(e) = client.remove(group.name().as_bytes(), key).await {
            failed.push((url, e));
        }
    }
    remove_here(group, key);
    let mut sends = JoinSet::new();
    for (url, client) in others {
        let (name, key) = (group.name().to_string(), key.to_vec());
        sends.spawn(async move { (url, client.remove(name.as_bytes(), &key).await) });
    }
    group.count(Counted::UserRemove);
    collect(group, failed, sends).await
}

/// Sends each peer that `joined` the pool a Remove of every key written
/// here (by users or peers) in the last ten minutes, in the background. A
/// node that left and comes back with a snapshot (`--snapshot`) restored
/// values as they were when it stopped; this drops those written or
/// removed while it was away. Keys it never held cost it nothing but a
/// reload. Does nothing outside a tokio runtime or without recent writes.
pub(crate) fn replay(groups: Vec<Group>, joined: Vec<Arc<PeerClient>>) {
    let writes: Vec<(Group, Vec<Box<[u8]>>)> = groups
        .into_iter()
        .map(|group| {
            let keys = group.written_lately();
            (group, keys)
        })
        .filter(|(_, keys)| !keys.is_empty())
        .collect();
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if writes.is_empty() {
        return;
    }
    let writes = Arc::new(writes);
    for peer in joined {
        let writes = writes.clone();
        runtime.spawn(async move {
            for (group, keys) in writes.iter() {
                for key in keys {
                    if let Err(error) = peer.remove(group.name().as_bytes(), key).await {
                        tracing::warn!(peer = %peer.url(), %error, "replaying recent writes to a peer that joined failed");
                        return;
                    }
                }
            }
        });
    }
}

/// The other nodes of the pool, split into the key's `owner` (none when
/// it is this node) and the rest.
fn owner_first(peers: &Peers, owner: Option<&str>) -> (Vec<PeerLink>, Vec<PeerLink>) {
    peers
        .others()
        .into_iter()
        .partition(|(url, _)| Some(url.as_str()) == owner)
}

/// A node of the pool: its URL and the client that reaches it.
type PeerLink = (String, Arc<PeerClient>);

/// Waits for every send of a user's write and keeps the failures (with
/// those already `failed`), sorted by URL; a write with any is counted as
/// unconfirmed.
async fn collect(
    group: &Group,
    mut failed: Vec<(String, PeerError)>,
    mut sends: JoinSet<(String, Result<(), PeerError>)>,
) -> Unconfirmed {
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
