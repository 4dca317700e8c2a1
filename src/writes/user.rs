//! A user's write (`PUT`/`DELETE /cache/{group}/{key}` with
//! `--allow-writes`), propagated from here: a Set goes to the key's owner
//! and removes every other node's hot copy (groupcache-go's pools store it
//! at every node instead, as its `Set` does); a Remove goes to the owner
//! and to every other node. The owner is always written first, the others
//! once it has answered, so no node can fetch the old value back. Each
//! node's answer is collected, so the user learns which nodes did not
//! confirm, and each node a write did not reach is owed it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use tokio::task::JoinSet;

use crate::cache::Which;
use crate::group::freshness::{Lifetime, TtlPolicy};
use crate::group::{Counted, Group};
use crate::peers::client::PeerClient;
use crate::peers::picker::PeerError;
use crate::peers::Peers;
use crate::value::Value;
use crate::writes::catch_up::catch_up;
use crate::writes::error::WriteError;
use crate::writes::log::Kind;
use crate::writes::peer::remove_here;

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
    /// `Ok` when every node confirmed, else the nodes that did not.
    pub(crate) fn into_result(self) -> Result<(), Vec<(String, PeerError)>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }

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
    peers: &Arc<Peers>,
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
    let to = peers.begin_write(group.name(), key, Kind::Set(value.clone()));
    let owner = to.owner;
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
    let (owners, others) = owner_first(to.others, owner.as_deref());
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
    Ok(collect(group, peers, to.seq, failed, sends).await)
}

/// A user's Remove of `key` through this node, whose pool is `peers`:
/// every node drops it, the owner first (as for a Set, so that no other
/// node can fetch the removed value back from it).
pub(crate) async fn user_remove(group: &Group, peers: &Arc<Peers>, key: &[u8]) -> Unconfirmed {
    let to = peers.begin_write(group.name(), key, Kind::Remove);
    let mut failed = Vec::new();
    let (owners, others) = owner_first(to.others, to.owner.as_deref());
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
    collect(group, peers, to.seq, failed, sends).await
}

/// The other nodes of the pool, split into the key's `owner` (none when
/// it is this node) and the rest.
fn owner_first(others: Vec<PeerLink>, owner: Option<&str>) -> (Vec<PeerLink>, Vec<PeerLink>) {
    others
        .into_iter()
        .partition(|(url, _)| Some(url.as_str()) == owner)
}

/// A node of the pool: its URL and the client that reaches it.
type PeerLink = (String, Arc<PeerClient>);

/// Waits for every send of a user's write and keeps the failures (with
/// those already `failed`), sorted by URL; a write with any is counted as
/// unconfirmed, and each node it did not reach is owed it (the write
/// numbered `seq`) from then on.
async fn collect(
    group: &Group,
    peers: &Arc<Peers>,
    seq: u64,
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
    for (url, _) in &failed {
        if peers.write_failed(url, seq) {
            catch_up(peers.clone(), url.clone());
        }
    }
    Unconfirmed(failed)
}
