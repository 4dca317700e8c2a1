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
//!
//! A user's write is logged (see `write_log`), and a node it did not
//! reach, or that was out of the peer list, is sent what it missed once
//! it is back: a catch-up per peer in the background, each key once with
//! its latest kind, rate-limited, in groupcache-go's batches for Removes.

pub(crate) mod log;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use tokio::task::JoinSet;

use crate::backoff::Backoff;
use crate::cache::Which;
use crate::group::freshness::{Lifetime, TtlPolicy};
use crate::group::{Counted, Group};
use crate::peers::client::PeerClient;
use crate::peers::picker::PeerError;
use crate::peers::{Owed, Pass, Peers};
use crate::value::Value;
use crate::wire::{self, WriteBodyError};
use crate::writes::log::{Kind, WriteKey};

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

/// How many writes a catch-up sends a peer per second, at most, so a
/// returning node is not flooded while it warms up.
const CATCH_UP_RATE: u32 = 500;
/// The most keys of one groupcache-go remove-keys request.
const CATCH_UP_BATCH: usize = 100;
/// The wait before trying an unreachable peer again; it doubles up to
/// [`RETRY_MAX`].
const RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
/// How often a key written again while a catch-up sent it is sent again,
/// at most (each time its latest write).
const RESENDS: usize = 3;

/// Starts the catch-up of each peer in `urls` (see [`catch_up`]).
pub(crate) fn catch_up_all(peers: &Arc<Peers>, urls: Vec<String>) {
    for url in urls {
        catch_up(peers.clone(), url);
    }
}

/// Sends the peer at `url`, in the background, the writes it is owed
/// (see `write_log`): each key once with its latest kind, a Set as a Set
/// where the peer stores it (it owns the key, or every node does) and the
/// value still lives, else as a Remove. A key that fails is counted and
/// skipped; a peer that stops answering is tried again, with back-off,
/// from the first write it did not get; one that leaves the list ends the
/// task (a join starts another). One log line when it ends.
pub(crate) fn catch_up(peers: Arc<Peers>, url: String) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // No runtime to send from: the peer stays owed, for a later join.
        peers.stop_catch_up(&url, u64::MAX);
        return;
    };
    runtime.spawn(async move {
        let mut sent = Sent::default();
        let mut pace = Pace::default();
        let mut failures = 0;
        while let Some(pass) = peers.begin_pass(&url) {
            match send_pass(&peers, &url, &pass, &mut pace, &mut sent).await {
                PassEnd::Done => failures = 0,
                PassEnd::Gone => {
                    peers.stop_catch_up(&url, pass.from);
                    break;
                }
                PassEnd::Unreachable(seq) => {
                    peers.unreachable_at(&url, seq);
                    // The back-off between tries of a peer that does not answer.
                    failures += 1;
                    tokio::time::sleep(RETRY.after(failures)).await;
                }
            }
        }
        if sent != Sent::default() {
            tracing::info!(
                peer = %url,
                sets = sent.sets,
                removes = sent.removes,
                failed = sent.failed,
                "sent a returning peer the writes it missed"
            );
        }
    });
}

/// What a catch-up sent, for its log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sent {
    sets: u64,
    removes: u64,
    failed: u64,
}

/// How a pass ended.
enum PassEnd {
    Done,
    /// The peer left the list.
    Gone,
    /// The peer did not answer; the first write it did not get.
    Unreachable(u64),
}

/// Spaces a catch-up's writes [`CATCH_UP_RATE`] a second apart.
#[derive(Default)]
struct Pace {
    next: Option<tokio::time::Instant>,
}

impl Pace {
    /// Waits for the turn of a request carrying `writes` writes.
    async fn wait(&mut self, writes: usize) {
        if let Some(next) = self.next {
            // Rate limiting: the wait is the pace itself.
            tokio::time::sleep_until(next).await;
        }
        let per = Duration::from_secs(1) / CATCH_UP_RATE;
        let writes = u32::try_from(writes).unwrap_or(u32::MAX);
        self.next = Some(tokio::time::Instant::now() + per.saturating_mul(writes));
    }
}

/// A groupcache-go remove-keys batch: one group's keys with their write
/// numbers, in order.
#[derive(Default)]
struct Batch {
    group: Box<str>,
    keys: Vec<(WriteKey, u64)>,
}

/// Sends one pass's writes to the peer at `url`.
async fn send_pass(
    peers: &Peers,
    url: &str,
    pass: &Pass,
    pace: &mut Pace,
    sent: &mut Sent,
) -> PassEnd {
    let batching = peers.protocol() == crate::peers::protocol::Protocol::GroupcacheGo;
    let mut batch = Batch::default();
    for key in &pass.keys {
        let (seq, set) = match peers.owed(url, key, pass.upto) {
            Owed::Gone => return PassEnd::Gone,
            Owed::Skip => continue,
            Owed::Send { seq, set } => (seq, set),
        };
        let utf8 = std::str::from_utf8(&key.key).is_ok();
        if set.is_none() && batching && utf8 {
            if batch.group != key.group || batch.keys.len() == CATCH_UP_BATCH {
                if let Err(at) = flush(peers, url, &pass.client, &mut batch, pace, sent).await {
                    return PassEnd::Unreachable(at);
                }
                batch.group = key.group.clone();
            }
            batch.keys.push((key.clone(), seq));
            continue;
        }
        if let Err(at) = send_latest(peers, url, &pass.client, key, (seq, set), pace, sent).await {
            let first = batch.keys.first().map_or(at, |(_, seq)| *seq);
            return PassEnd::Unreachable(first.min(at));
        }
    }
    match flush(peers, url, &pass.client, &mut batch, pace, sent).await {
        Ok(()) => PassEnd::Done,
        Err(at) => PassEnd::Unreachable(at),
    }
}

/// Sends one key's write, then again while it is written anew meanwhile
/// (a live write may have reached the peer before this one); `Err` with
/// the write's number when the peer does not answer.
async fn send_latest(
    peers: &Peers,
    url: &str,
    client: &PeerClient,
    key: &WriteKey,
    (mut seq, mut set): (u64, Option<Value>),
    pace: &mut Pace,
    sent: &mut Sent,
) -> Result<(), u64> {
    for _ in 0..RESENDS {
        pace.wait(1).await;
        let group = key.group.as_bytes();
        let result = match &set {
            Some(value) => client.set(group, &key.key, value).await,
            None => client.remove(group, &key.key).await,
        };
        count(sent, set.is_some(), 1, &result).map_err(|()| seq)?;
        if peers.is_latest(key, seq) {
            break;
        }
        match peers.owed(url, key, u64::MAX) {
            Owed::Send {
                seq: latest,
                set: latest_set,
            } => (seq, set) = (latest, latest_set),
            Owed::Gone | Owed::Skip => break,
        }
    }
    Ok(())
}

/// Sends the batch's Removes in one request, then each key written anew
/// meanwhile on its own; empties the batch.
async fn flush(
    peers: &Peers,
    url: &str,
    client: &PeerClient,
    batch: &mut Batch,
    pace: &mut Pace,
    sent: &mut Sent,
) -> Result<(), u64> {
    let keys = std::mem::take(&mut batch.keys);
    let Some(&(_, first)) = keys.first() else {
        return Ok(());
    };
    pace.wait(keys.len()).await;
    let names = keys
        .iter()
        .map(|(key, _)| String::from_utf8_lossy(&key.key).into_owned())
        .collect();
    let result = client.remove_keys(&batch.group, names).await;
    count(sent, false, keys.len() as u64, &result).map_err(|()| first)?;
    for (key, seq) in keys {
        if peers.is_latest(&key, seq) {
            continue;
        }
        if let Owed::Send { seq, set } = peers.owed(url, &key, u64::MAX) {
            send_latest(peers, url, client, &key, (seq, set), pace, sent).await?;
        }
    }
    Ok(())
}

/// Counts a request's `writes`; `Err` when the peer did not answer (or
/// this node had no room to ask), which ends the pass. A refusal is
/// counted as failed and the catch-up goes on.
fn count(
    sent: &mut Sent,
    set: bool,
    writes: u64,
    result: &Result<(), PeerError>,
) -> Result<(), ()> {
    match result {
        Ok(()) if set => sent.sets += writes,
        Ok(()) => sent.removes += writes,
        Err(PeerError::Http(e)) if e.is_unreachable() || e.is_busy() => return Err(()),
        Err(_) => sent.failed += writes,
    }
    Ok(())
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
