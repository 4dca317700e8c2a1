//! The getter: what a group calls to load a value that no cache holds
//! (golang's `Getter`).
//!
//! A Rust program embedding groupcached implements [`Getter`] for its own
//! loader, or passes any `async fn(Vec<u8>) -> Result<V, GetterError>`
//! where `V` is `Bytes` (a value that never expires) or a [`Value`] with an
//! expiry (see `examples/embedded.rs`). The `--group NAME=URL` flag's
//! getter is `origin::HttpOrigin`.

use std::future::Future;
use std::pin::Pin;

use crate::value::Value;

/// A boxed future, so getters can be stored as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a getter produced no value. The text is what peers and users see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GetterError {
    /// The origin has no such key (user API: 404). The group remembers it
    /// for its `--negative-ttl`, if it has one.
    #[error("{0}")]
    NotFound(String),
    /// The origin has no such key and says so until this expiry (user
    /// API: 404): the group remembers it that long. An expiry that has
    /// already passed remembers nothing.
    #[error("{0}")]
    NotFoundUntil(String, crate::value::Expiry),
    /// Loading failed (user API: 502). A value within its
    /// `stale-if-error` window is served instead.
    #[error("{0}")]
    Failed(String),
    /// This node has no room for the load right now (user API: 503).
    #[error("{0}")]
    Busy(String),
    /// The key cannot be loaded from this origin (user API: 400).
    #[error("{0}")]
    BadKey(String),
}

impl GetterError {
    /// True when the origin said the key does not exist.
    pub(super) fn is_not_found(&self) -> bool {
        matches!(
            self,
            GetterError::NotFound(_) | GetterError::NotFoundUntil(..)
        )
    }
}

/// Loads the value for a key that is in no cache, with its expiry.
///
/// A closure is a getter (see the impl below); a type of your own can be
/// one too:
///
/// ```
/// use std::time::Duration;
/// use groupcached::{BoxFuture, Getter, GetterError, Value};
///
/// /// Values from a fixed table, fresh for a minute; other keys do not exist.
/// struct Table(Vec<(&'static str, &'static str)>);
///
/// impl Getter for Table {
///     fn get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<Value, GetterError>> {
///         Box::pin(async move {
///             let (_, value) = self.0.iter().find(|(k, _)| k.as_bytes() == key).ok_or_else(|| {
///                 GetterError::NotFound(format!("no key {}", String::from_utf8_lossy(key)))
///             })?;
///             Ok(Value::expiring_in(*value, Duration::from_secs(60)))
///         })
///     }
/// }
///
/// let node = groupcached::NodeBuilder::new("http://10.0.0.1:8080")
///     .group("colours", 1 << 20, Table(vec![("sky", "blue")]))
///     .build()
///     .unwrap();
/// # let _ = node;
/// ```
pub trait Getter: Send + Sync + 'static {
    /// Loads `key`'s value; called at most once at a time per key and node.
    fn get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<Value, GetterError>>;
}

/// Any `Fn(key) -> future` is a getter. The future may yield `Bytes` (a
/// value that never expires) or a [`Value`] with an expiry.
impl<F, Fut, V> Getter for F
where
    F: Fn(Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<V, GetterError>> + Send + 'static,
    V: Into<Value>,
{
    fn get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<Value, GetterError>> {
        let loading = self(key.to_vec());
        Box::pin(async move { loading.await.map(Into::into) })
    }
}
