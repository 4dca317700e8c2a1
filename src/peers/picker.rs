//! What a group needs of its peers, and nothing more (golang's
//! `peers.go`): [`PickPeer`] names the owner of a key, [`FetchPeer`]
//! fetches a value from it, and [`PeerError`] says why a fetch failed. The
//! pool (`peers`) and the HTTP client (`peers::client`) implement them; a
//! group's tests put fakes behind them.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;

use crate::group::getter::BoxFuture;
use crate::http_client::{status_text, HttpError};
use crate::peers::protocol::Protocol;
use crate::value::Value;

/// What a group asks of its peer pool (golang's `PeerPicker`). Give a
/// node your own with [`crate::NodeBuilder::picker`];
/// `examples/custom_picker.rs` routes keys to an in-process peer.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use groupcached::{FetchPeer, PickPeer, Protocol};
///
/// /// Every key is this node's: a cache with no peers at all.
/// struct AlwaysLocal;
///
/// impl PickPeer for AlwaysLocal {
///     fn pick(&self, _key: &[u8]) -> Option<Arc<dyn FetchPeer>> {
///         None
///     }
///     fn protocol(&self) -> Protocol {
///         Protocol::Golang
///     }
///     fn fetch_timeout(&self) -> Duration {
///         Duration::from_secs(5)
///     }
/// }
///
/// let node = groupcached::NodeBuilder::new("http://10.0.0.1:8080")
///     .peers(["http://10.0.0.2:8080"])
///     .picker(AlwaysLocal)
///     .build()
///     .unwrap();
/// # let _ = node;
/// ```
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

    /// [`FetchPeer::fetch`], with the owner's estimate of the key's
    /// requests per second (`GetResponse.minute_qps`) when it sends one. A
    /// group decides from it (and its own count) whether to keep a hot
    /// copy; the default sends none.
    fn fetch_with_rate<'a>(
        &'a self,
        group: &'a [u8],
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<(Value, Option<f64>), PeerError>> {
        Box::pin(async move { self.fetch(group, key).await.map(|value| (value, None)) })
    }

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
    /// The owner's origin has no such key: a groupcached owner's 404 (in a
    /// golang pool, only to groupcached requesters), with its text.
    #[error("{0}")]
    NotFound(String),
    /// The peer failed recently and is not asked until its back-off ends.
    #[error("peer is marked down")]
    Down,
    /// While the fetch waited, the peer did not answer a liveness probe
    /// within this long.
    #[error("no answer to a liveness probe within {0:?}")]
    NoAnswer(Duration),
}

/// Fakes of the seams for unit tests: a pool that names one owner (or
/// none) for every key, and an owner that answers every fetch alike.
#[cfg(test)]
pub(crate) mod fake {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::sync::Mutex;

    use bytes::Bytes;

    use super::*;

    /// The fake pool's fetch timeout.
    pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

    /// A pool that names one owner for every key (or none: every key is
    /// local) and counts how often it was asked.
    pub(crate) struct FakePool {
        owner: Option<Arc<FakePeer>>,
        protocol: Protocol,
        /// How many times a key's owner was asked for.
        pub(crate) picks: AtomicUsize,
    }

    impl FakePool {
        pub(crate) fn new(owner: Option<Arc<FakePeer>>, protocol: Protocol) -> Arc<FakePool> {
            Arc::new(FakePool {
                owner,
                protocol,
                picks: AtomicUsize::new(0),
            })
        }
    }

    impl PickPeer for FakePool {
        fn pick(&self, _key: &[u8]) -> Option<Arc<dyn FetchPeer>> {
            self.picks.fetch_add(1, Relaxed);
            let owner: Arc<dyn FetchPeer> = self.owner.clone()?;
            Some(owner)
        }

        fn protocol(&self) -> Protocol {
            self.protocol
        }

        fn fetch_timeout(&self) -> Duration {
            FETCH_TIMEOUT
        }
    }

    /// How a fake owner answers every fetch.
    pub(crate) enum Answer {
        Value(&'static str),
        Error(PeerError),
        Hang,
    }

    /// An owner that records the keys it was asked for.
    pub(crate) struct FakePeer {
        answer: Answer,
        fetched: Mutex<Vec<Vec<u8>>>,
    }

    impl FakePeer {
        pub(crate) fn new(answer: Answer) -> Arc<FakePeer> {
            Arc::new(FakePeer {
                answer,
                fetched: Mutex::new(Vec::new()),
            })
        }

        /// The keys fetched so far, in order; a test lock cannot be poisoned
        /// by a fetch, which never panics.
        pub(crate) fn fetched(&self) -> Vec<Vec<u8>> {
            self.fetched.lock().unwrap().clone()
        }
    }

    impl FetchPeer for FakePeer {
        fn fetch<'a>(
            &'a self,
            group: &'a [u8],
            key: &'a [u8],
        ) -> BoxFuture<'a, Result<Value, PeerError>> {
            assert_eq!(group, b"g");
            self.fetched.lock().unwrap().push(key.to_vec());
            Box::pin(async move {
                match &self.answer {
                    Answer::Value(value) => Ok(Value::from(Bytes::from_static(value.as_bytes()))),
                    Answer::Error(error) => Err(error.clone()),
                    Answer::Hang => std::future::pending().await,
                }
            })
        }

        fn url(&self) -> &str {
            "http://fake-owner"
        }
    }
}
