//! What a group needs of its peers, and nothing more (golang's
//! `peers.go`): [`PickPeer`] names the owner of a key, [`FetchPeer`]
//! fetches a value from it, and [`PeerError`] says why a fetch failed. The
//! pool (`peers`) and the HTTP client (`peer_client`) implement them; a
//! group's tests put fakes behind them.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;

use crate::dialect::Protocol;
use crate::getter::BoxFuture;
use crate::http_client::{status_text, HttpError};
use crate::value::Value;

/// What a group asks of its peer pool (golang's `PeerPicker`).
pub trait PickPeer: Send + Sync + 'static {
    /// The owner of `key` when it is another node; `None` when this node
    /// loads the key itself.
    fn pick(&self, key: &[u8]) -> Option<Arc<dyn FetchPeer>>;

    /// The pool's protocol: whether an owner's refusal is final and how
    /// often fetched values are mirrored into the hot cache.
    fn protocol(&self) -> Protocol;

    /// How long a fetch from an owner may take; after that the group stops
    /// waiting for it and loads the key itself.
    fn fetch_timeout(&self) -> Duration;
}

/// One other node a group fetches values from (golang's `ProtoGetter`).
pub trait FetchPeer: Send + Sync + 'static {
    /// Fetches `group`/`key` from this peer, with the owner's expiry.
    fn fetch<'a>(
        &'a self,
        group: &'a [u8],
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<Value, PeerError>>;

    /// The peer's URL, for logs.
    fn url(&self) -> &str;

    /// Whether a failed fetch from this peer should be logged now:
    /// `Some(n)` when it should, with `n` failures left unlogged since the
    /// last one.
    fn failure_to_log(&self) -> Option<u64> {
        Some(0)
    }
}

/// Why a fetch from a peer failed; the texts follow golang's client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The key or group made no valid URL with the peer's.
    #[error("bad peer URL {0:?}")]
    BadUrl(String),
    /// The request failed before a status came back.
    #[error("{0}")]
    Http(#[from] HttpError),
    /// A reply other than 200, with the first line of its body.
    #[error("server returned: {}{}{}", status_text(*.0), if .1.is_empty() { "" } else { ": " }, .1)]
    Status(StatusCode, String),
    /// The reply was not a `GetResponse`.
    #[error("decoding response body: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The value was over the largest value this node takes.
    #[error("value of {0} bytes is over the value size limit")]
    TooLarge(usize),
    /// The peer failed recently and is not asked until its back-off ends.
    #[error("peer is marked down")]
    Down,
}
