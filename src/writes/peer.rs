//! A peer's write (the forks' peer API): a `PUT` body is a `SetRequest`
//! whose key (from the body, not the URL) goes into the main cache,
//! dropping any hot copy; a `DELETE` removes the URL's key from both
//! caches; a groupcache-go `POST .../_remove-keys/` removes every key of
//! its JSON list. Nothing is propagated further.

use bytes::Bytes;

use crate::cache::Which;
use crate::group::freshness::TtlPolicy;
use crate::group::{Counted, Group};
use crate::value::Value;
use crate::wire;
use crate::writes::error::WriteError;

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
pub(super) fn remove_here(group: &Group, key: &[u8]) {
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
