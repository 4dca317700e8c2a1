//! The peer client: fetches a value from the peer that owns it, with
//! `GET {peer}{base}{group}/{key}` as golang's `httpGetter` does.
//!
//! Keys are escaped byte for byte (see [`crate::wire::escape`]); any reply
//! but a 200 whose body decodes as a `GetResponse` is a peer error, which
//! the group answers by loading the key itself. The value comes back with
//! the owner's expiry, if it sent one.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{StatusCode, Uri};

use crate::http_client::{status_text, HostLimit, HttpClient, HttpError};
use crate::value::Value;
use crate::wire;

/// Why a fetch from a peer failed; the texts follow golang's client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PeerError {
    #[error("bad peer URL {0:?}")]
    BadUrl(String),
    #[error("{0}")]
    Http(#[from] HttpError),
    #[error("server returned: {}", status_text(*.0))]
    Status(StatusCode),
    #[error("decoding response body: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// A handle for one peer: its URL prefix and a bound on concurrent fetches.
#[derive(Clone)]
pub struct PeerClient {
    /// `{peer}{base_path}`, e.g. `http://10.0.0.2:8080/_groupcache/`.
    base: String,
    http: HttpClient,
    limit: HostLimit,
    warnings: Arc<WarnGate>,
}

impl PeerClient {
    pub fn new(peer: &str, base_path: &str, http: HttpClient, max_conns: usize) -> PeerClient {
        PeerClient {
            base: format!("{peer}{base_path}"),
            http,
            limit: HttpClient::host_limit(max_conns),
            warnings: Arc::new(WarnGate::new(WARN_INTERVAL)),
        }
    }

    /// `{peer}{base_path}`, for logs.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether a failed fetch from this peer should be logged: at most once
    /// a second, so a dead owner under load does not flood the log. `Some(n)`: log, and `n` failures went unlogged since the last.
    pub fn failure_to_log(&self) -> Option<u64> {
        self.warnings.admit()
    }

    /// Fetches `group`/`key` from this peer.
    pub async fn get(&self, group: &[u8], key: &[u8]) -> Result<Value, PeerError> {
        let url = format!("{}{}/{}", self.base, wire::escape(group), wire::escape(key));
        let uri: Uri = url
            .parse()
            .map_err(|_| PeerError::BadUrl(self.base.clone()))?;
        let (status, body) = self.http.get(uri, &self.limit).await?;
        if status != StatusCode::OK {
            return Err(PeerError::Status(status));
        }
        Ok(wire::decode_response(body)?)
    }
}

/// How often a failing peer may be logged.
const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// Admits one event per interval and counts the rest: the rate limit on
/// warnings about failing peers, origins and accepts.
pub(crate) struct WarnGate {
    start: Instant,
    interval_ms: u64,
    /// Milliseconds after `start` when the next event may be admitted.
    next_ms: AtomicU64,
    skipped: AtomicU64,
}

impl WarnGate {
    fn new(interval: Duration) -> WarnGate {
        WarnGate {
            start: Instant::now(),
            interval_ms: interval.as_millis().try_into().unwrap_or(u64::MAX),
            next_ms: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// `Some(n)`: log, and `n` events went unlogged since the last.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = self
            .start
            .elapsed()
            .as_millis()
            .try_into()
            .unwrap_or(u64::MAX);
        let next = self.next_ms.load(Relaxed);
        let due = now >= next
            && self
                .next_ms
                .compare_exchange(next, now.saturating_add(self.interval_ms), Relaxed, Relaxed)
                .is_ok();
        if due {
            Some(self.skipped.swap(0, Relaxed))
        } else {
            self.skipped.fetch_add(1, Relaxed);
            None
        }
    }
}

/// One warning a second.
impl Default for WarnGate {
    fn default() -> WarnGate {
        WarnGate::new(WARN_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warn_gate_admits_one_event_per_interval_and_counts_the_rest() {
        let gate = WarnGate::new(Duration::from_millis(200));
        assert_eq!(gate.admit(), Some(0));
        assert_eq!(gate.admit(), None);
        assert_eq!(gate.admit(), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(gate.admit(), Some(2));
        assert_eq!(gate.admit(), None);
    }
}
