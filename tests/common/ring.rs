//! Keys by owner: which keys a ring gives to which peer.

use groupcached::consistenthash::Ring;

/// The first `n` keys `{prefix}-{i}` whose owner on `ring` is `owner`.
pub fn keys_owned_by(ring: &Ring, owner: &str, prefix: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|key| ring.get(key.as_bytes()) == Some(owner))
        .take(n)
        .collect()
}

/// The first key `{prefix}-{i}` whose owner on `ring` is `owner`.
pub fn key_owned_by(ring: &Ring, owner: &str, prefix: &str) -> String {
    keys_owned_by(ring, owner, prefix, 1).remove(0)
}
