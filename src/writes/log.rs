//! What a returning peer missed: the recent writes this node originated,
//! and since when each peer may lack them.
//!
//! Only the user writes accepted through this node are logged (a peer's
//! write is not propagated further, so each write is replayed by the one
//! node that sent it). The log keeps each (group, key) once, with the
//! time and kind of its latest write, in write order, so one key written
//! 20,000 times is one entry and pushes nothing else out. It is bounded by
//! entries and by bytes (group, key and value counted): a Set keeps its
//! value while the value fits the byte budget and is logged as a Remove
//! otherwise; past either bound the oldest entries go. Entries older than
//! [`KEPT`] are forgotten: a snapshot older than that is never restored
//! (see `units`), so a node away longer starts from nothing it could
//! serve stale.
//!
//! Every write gets a sequence number. A peer [`Behind`] is owed every
//! logged write numbered from its `since` on: the first number it did not
//! get because it left this node's peer list, or because a write to it
//! failed. A peer that comes back is sent those entries, each key once
//! with its latest kind; one that left and came back with no write in
//! between is owed nothing; one never seen (or away longer than [`KEPT`])
//! is owed the whole log.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::value::Value;

/// How long a write is remembered for peers that come back.
pub(crate) const KEPT: Duration = Duration::from_secs(600);
/// The most writes (distinct keys) the log keeps.
pub(crate) const MAX_ENTRIES: usize = 10_000;
/// The most bytes (groups, keys and values) the log keeps.
pub(crate) const MAX_BYTES: usize = 16 << 20;
/// The most peers whose lag is remembered; beyond, the longest away are
/// forgotten and, should they come back, are sent the whole log.
const MAX_PEERS_BEHIND: usize = 1024;

/// A logged write's group and key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct WriteKey {
    pub group: Box<str>,
    pub key: Box<[u8]>,
}

impl WriteKey {
    pub(crate) fn new(group: &str, key: &[u8]) -> WriteKey {
        WriteKey {
            group: group.into(),
            key: key.into(),
        }
    }

    fn bytes(&self) -> usize {
        self.group.len() + self.key.len()
    }
}

/// What the latest write of a key was.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Set(Value),
    Remove,
}

/// One logged write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Logged {
    pub seq: u64,
    pub at: Instant,
    pub kind: Kind,
}

/// The recent writes this node originated, one entry per key, oldest
/// first; not locked (its owner holds it under a mutex).
pub(crate) struct WriteLog {
    entries: ::lru::LruCache<WriteKey, Logged>,
    bytes: usize,
    next_seq: u64,
    max_entries: usize,
    max_bytes: usize,
}

impl Default for WriteLog {
    fn default() -> WriteLog {
        WriteLog::new(MAX_ENTRIES, MAX_BYTES)
    }
}

impl WriteLog {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> WriteLog {
        WriteLog {
            entries: ::lru::LruCache::unbounded(),
            bytes: 0,
            next_seq: 0,
            max_entries,
            max_bytes,
        }
    }

    /// Logs a write of `key` at `now`, replacing the key's older entry;
    /// its sequence number.
    pub(crate) fn record(&mut self, now: Instant, key: WriteKey, kind: Kind) -> u64 {
        if let Some(old) = self.entries.pop(&key) {
            self.bytes -= size(&key, &old.kind);
        }
        let kind = match kind {
            Kind::Set(value) if self.bytes + key.bytes() + value.bytes.len() <= self.max_bytes => {
                Kind::Set(value)
            }
            _ => Kind::Remove,
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += size(&key, &kind);
        self.entries.push(key, Logged { seq, at: now, kind });
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            self.pop_oldest();
        }
        self.forget_older(now);
        seq
    }

    /// The number the next write will get: a peer that leaves now is owed
    /// the writes from this one on.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The keys of the writes numbered `from..upto`, oldest first.
    pub(crate) fn keys_between(&mut self, now: Instant, from: u64, upto: u64) -> Vec<WriteKey> {
        self.forget_older(now);
        let mut keys: Vec<(u64, WriteKey)> = self
            .entries
            .iter()
            .filter(|(_, logged)| (from..upto).contains(&logged.seq))
            .map(|(key, logged)| (logged.seq, key.clone()))
            .collect();
        keys.sort_unstable_by_key(|(seq, _)| *seq);
        keys.into_iter().map(|(_, key)| key).collect()
    }

    /// The latest write of `key`, if still logged.
    pub(crate) fn latest(&self, key: &WriteKey) -> Option<&Logged> {
        self.entries.peek(key)
    }

    /// How many entries the log holds, and their bytes.
    #[cfg(test)]
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.entries.len(), self.bytes)
    }

    fn forget_older(&mut self, now: Instant) {
        while self
            .entries
            .peek_lru()
            .is_some_and(|(_, logged)| now.saturating_duration_since(logged.at) > KEPT)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((key, logged)) = self.entries.pop_lru() {
            self.bytes -= size(&key, &logged.kind);
        }
    }
}

/// The bytes an entry counts for.
fn size(key: &WriteKey, kind: &Kind) -> usize {
    match kind {
        Kind::Set(value) => key.bytes() + value.bytes.len(),
        Kind::Remove => key.bytes(),
    }
}

/// One peer's lag: it may lack every logged write numbered `since` or
/// later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lag {
    since: u64,
    /// When it fell behind, for forgetting old lags.
    at: Instant,
    /// A catch-up task runs for it; while one does, `floor` is the first
    /// number of the pass it is sending.
    catching_up: Option<u64>,
}

/// The peers that may lack some of the logged writes, by URL.
#[derive(Default)]
pub(crate) struct Behind {
    peers: HashMap<String, Lag>,
}

/// Whether a catch-up task should start for a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Start {
    /// Start one: the peer is owed something and none runs.
    Task,
    /// One runs already, or nothing is owed.
    Nothing,
}

impl Behind {
    /// `url` left this node's peer list when the next write was to be
    /// numbered `next_seq`. A pass of a catch-up in flight may not have
    /// reached it, so it is owed that pass's writes again.
    pub(crate) fn left(&mut self, url: &str, next_seq: u64, now: Instant) {
        let lag = self.peers.entry(url.to_string()).or_insert(Lag {
            since: next_seq,
            at: now,
            catching_up: None,
        });
        lag.since = lag
            .since
            .min(next_seq)
            .min(lag.catching_up.unwrap_or(u64::MAX));
        self.bound(now);
    }

    /// A write numbered `seq` to `url` failed while it stayed listed.
    pub(crate) fn failed(&mut self, url: &str, seq: u64, now: Instant) -> Start {
        let lag = self.peers.entry(url.to_string()).or_insert(Lag {
            since: seq,
            at: now,
            catching_up: None,
        });
        lag.since = lag.since.min(seq);
        let start = lag.start();
        self.bound(now);
        start
    }

    /// `url` joined this node's peer list; `next_seq` as for [`left`]. A
    /// peer never seen, or forgotten, is owed the whole log.
    ///
    /// [`left`]: Behind::left
    pub(crate) fn joined(&mut self, url: &str, next_seq: u64, now: Instant) -> Start {
        let lag = self.peers.entry(url.to_string()).or_insert(Lag {
            since: 0,
            at: now,
            catching_up: None,
        });
        if lag.since >= next_seq && lag.catching_up.is_none() {
            // Left and came back with no write in between.
            self.peers.remove(url);
            return Start::Nothing;
        }
        lag.start()
    }

    /// A catch-up pass for `url` begins: the writes it must send are those
    /// numbered from the returned number up to `upto` (the next number
    /// now). `None` once nothing more is owed: the task ends.
    pub(crate) fn begin_pass(&mut self, url: &str, upto: u64) -> Option<u64> {
        let lag = self.peers.get_mut(url)?;
        if lag.since >= upto {
            self.peers.remove(url);
            return None;
        }
        let from = lag.since;
        lag.since = upto;
        lag.catching_up = Some(from);
        Some(from)
    }

    /// The catch-up task of `url` stops before it is done (the peer left
    /// the list, or stopped answering at the write numbered `from`): it is
    /// owed the writes from `from` on.
    pub(crate) fn stop_pass(&mut self, url: &str, from: u64, now: Instant) {
        let lag = self.peers.entry(url.to_string()).or_insert(Lag {
            since: from,
            at: now,
            catching_up: None,
        });
        lag.since = lag.since.min(from);
        lag.catching_up = None;
    }

    /// A catch-up pass for `url` could not reach it at the write numbered
    /// `seq`; the task goes on, once the peer answers, from there.
    pub(crate) fn unreachable_at(&mut self, url: &str, seq: u64) {
        if let Some(lag) = self.peers.get_mut(url) {
            lag.since = lag.since.min(seq);
        }
    }

    /// Whether `url` is behind at all.
    #[cfg(test)]
    pub(crate) fn is_behind(&self, url: &str) -> bool {
        self.peers.contains_key(url)
    }

    /// Forgets lags older than [`KEPT`] with no task running (such a
    /// peer, should it come back, is owed the whole log, which is no more
    /// than it was owed), and the oldest beyond [`MAX_PEERS_BEHIND`].
    fn bound(&mut self, now: Instant) {
        self.peers.retain(|_, lag| {
            lag.catching_up.is_some() || now.saturating_duration_since(lag.at) <= KEPT
        });
        while self.peers.len() > MAX_PEERS_BEHIND {
            let oldest = self
                .peers
                .iter()
                .filter(|(_, lag)| lag.catching_up.is_none())
                .min_by_key(|(_, lag)| lag.at)
                .map(|(url, _)| url.clone());
            match oldest {
                Some(url) => self.peers.remove(&url),
                None => break,
            };
        }
    }
}

impl Lag {
    /// Marks a task as started unless one runs.
    fn start(&mut self) -> Start {
        if self.catching_up.is_some() {
            return Start::Nothing;
        }
        // The task's first pass sets the real floor.
        self.catching_up = Some(self.since);
        Start::Task
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(bytes: &'static [u8]) -> Kind {
        Kind::Set(Value::new(bytes, crate::value::Expiry::Never))
    }

    fn key(name: &str) -> WriteKey {
        WriteKey::new("g", name.as_bytes())
    }

    fn names(keys: &[WriteKey]) -> Vec<String> {
        keys.iter()
            .map(|k| String::from_utf8_lossy(&k.key).into_owned())
            .collect()
    }

    #[test]
    fn one_key_written_many_times_is_one_entry_with_its_latest_kind() {
        let now = Instant::now();
        let mut log = WriteLog::new(10, 1 << 20);
        for other in ["a", "b"] {
            log.record(now, key(other), Kind::Remove);
        }
        for _ in 0..20_000 {
            log.record(now, key("hot"), Kind::Remove);
        }
        let last = log.record(now, key("hot"), set(b"final"));
        assert_eq!(log.size().0, 3);
        let keys = log.keys_between(now, 0, log.next_seq());
        assert_eq!(names(&keys), ["a", "b", "hot"]);
        let latest = log.latest(&key("hot")).unwrap();
        assert_eq!((latest.seq, &latest.kind), (last, &set(b"final")));
        // A key written again moves after the others.
        log.record(now, key("a"), Kind::Remove);
        let keys = log.keys_between(now, 0, log.next_seq());
        assert_eq!(names(&keys), ["b", "hot", "a"]);
    }

    #[test]
    fn bounded_by_entries_oldest_first() {
        let now = Instant::now();
        let mut log = WriteLog::new(3, 1 << 20);
        for name in ["a", "b", "c", "d"] {
            log.record(now, key(name), Kind::Remove);
        }
        let keys = log.keys_between(now, 0, log.next_seq());
        assert_eq!(names(&keys), ["b", "c", "d"]);
    }

    #[test]
    fn bounded_by_bytes_values_first() {
        let now = Instant::now();
        // Room for 2 + 20 bytes, then keys only.
        let mut log = WriteLog::new(100, 22);
        log.record(now, key("a"), set(&[1; 20]));
        assert_eq!(log.size(), (1, 22));
        // No room for its value: logged as a Remove.
        log.record(now, key("b"), set(&[2; 20]));
        assert_eq!(log.latest(&key("b")).unwrap().kind, Kind::Remove);
        assert_eq!(log.size(), (1, 2), "the oldest went to make room");
        assert_eq!(log.latest(&key("a")), None);
        // Rewriting a key frees its old bytes first.
        log.record(now, key("b"), set(&[3; 20]));
        assert_eq!(log.size(), (1, 22));
        assert_eq!(log.latest(&key("b")).unwrap().kind, set(&[3; 20]));
    }

    #[test]
    fn forgets_writes_older_than_ten_minutes() {
        let start = Instant::now();
        let mut log = WriteLog::default();
        log.record(start, key("old"), Kind::Remove);
        log.record(start + Duration::from_secs(300), key("new"), Kind::Remove);
        let later = start + KEPT + Duration::from_secs(1);
        let keys = log.keys_between(later, 0, log.next_seq());
        assert_eq!(names(&keys), ["new"]);
        assert_eq!(log.size(), (1, 4));
    }

    #[test]
    fn keys_between_takes_only_the_range() {
        let now = Instant::now();
        let mut log = WriteLog::default();
        for name in ["a", "b", "c", "d"] {
            log.record(now, key(name), Kind::Remove);
        }
        assert_eq!(names(&log.keys_between(now, 1, 3)), ["b", "c"]);
    }

    #[test]
    fn a_peer_that_flapped_with_no_write_between_is_owed_nothing() {
        let now = Instant::now();
        let mut behind = Behind::default();
        behind.left("p", 7, now);
        assert!(behind.is_behind("p"));
        assert_eq!(behind.joined("p", 7, now), Start::Nothing);
        assert!(!behind.is_behind("p"));
    }

    #[test]
    fn a_returning_peer_is_owed_what_was_written_while_away() {
        let now = Instant::now();
        let mut behind = Behind::default();
        behind.left("p", 7, now);
        assert_eq!(behind.joined("p", 9, now), Start::Task);
        assert_eq!(behind.begin_pass("p", 9), Some(7));
        // Nothing written during the pass: done.
        assert_eq!(behind.begin_pass("p", 9), None);
        assert!(!behind.is_behind("p"));
        // A peer never seen is owed the whole log.
        assert_eq!(behind.joined("new", 9, now), Start::Task);
        assert_eq!(behind.begin_pass("new", 9), Some(0));
    }

    #[test]
    fn a_failed_write_makes_a_listed_peer_behind_from_that_write() {
        let now = Instant::now();
        let mut behind = Behind::default();
        assert_eq!(behind.failed("p", 4, now), Start::Task);
        // A second failure while its task runs starts no other.
        assert_eq!(behind.failed("p", 6, now), Start::Nothing);
        assert_eq!(behind.begin_pass("p", 8), Some(4));
        // A write fails during the pass: a second pass from it.
        assert_eq!(behind.failed("p", 8, now), Start::Nothing);
        assert_eq!(behind.begin_pass("p", 9), Some(8));
        // Unreachable at 8: the next pass starts there again.
        behind.unreachable_at("p", 8);
        assert_eq!(behind.begin_pass("p", 9), Some(8));
        assert_eq!(behind.begin_pass("p", 9), None);
    }

    #[test]
    fn a_peer_leaving_during_a_pass_is_owed_that_pass_again() {
        let now = Instant::now();
        let mut behind = Behind::default();
        behind.left("p", 2, now);
        assert_eq!(behind.joined("p", 5, now), Start::Task);
        assert_eq!(behind.begin_pass("p", 5), Some(2));
        behind.left("p", 5, now);
        // The task notices and stops; the join starts a new one.
        behind.stop_pass("p", 2, now);
        assert_eq!(behind.joined("p", 5, now), Start::Task);
        assert_eq!(behind.begin_pass("p", 5), Some(2));
    }

    #[test]
    fn lags_older_than_the_log_are_forgotten() {
        let start = Instant::now();
        let mut behind = Behind::default();
        behind.left("old", 1, start);
        behind.left("new", 1, start + KEPT + Duration::from_secs(1));
        assert!(!behind.is_behind("old"));
        assert!(behind.is_behind("new"));
    }
}
