//! The catch-up of a returning peer: the writes it missed (see
//! `writes::log`), sent in the background, each key once with its latest
//! kind, paced, in groupcache-go's batches for Removes, and tried again
//! with back-off while the peer does not answer.

use std::sync::Arc;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::peers::client::PeerClient;
use crate::peers::picker::PeerError;
use crate::peers::{Owed, Pass, Peers};
use crate::value::Value;
use crate::writes::log::WriteKey;

/// How many writes a catch-up sends a peer per second, at most, so a
/// returning node is not flooded while it warms up.
const CATCH_UP_RATE: u32 = 500;
/// The most keys of one groupcache-go remove-keys request.
const CATCH_UP_BATCH: usize = 100;
/// The wait before trying an unreachable peer again; it doubles with each
/// try, up to its cap.
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
/// (see `writes::log`): each key once with its latest kind, a Set as a Set
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
