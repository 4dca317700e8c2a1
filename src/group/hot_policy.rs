//! How a group keeps hot copies of values it fetched from their owners
//! ([`HotPolicy`]), and golang's one-in-ten sample for its policy.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How a group decides to keep a hot copy of a value it fetched from the
/// key's owner.
///
/// ```
/// use groupcached::HotPolicy;
/// assert_eq!(HotPolicy::default(), HotPolicy::Heat);
/// assert_eq!("golang".parse::<HotPolicy>(), Ok(HotPolicy::Golang));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HotPolicy {
    /// By how often it is asked for: a copy is kept when there is room, or
    /// when its count here (or the owner's reported rate) beats that of the
    /// entry it would evict.
    #[default]
    Heat,
    /// As the pool's Go implementation does: one fetched value in ten at
    /// random in a golang pool, every fetched value in a fork's pool.
    Golang,
}

/// A hot policy name that is neither `heat` nor `golang`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hot policy {0:?}: expected heat or golang")]
pub struct UnknownHotPolicy(String);

impl std::str::FromStr for HotPolicy {
    type Err = UnknownHotPolicy;

    fn from_str(name: &str) -> Result<HotPolicy, UnknownHotPolicy> {
        match name {
            "heat" => Ok(HotPolicy::Heat),
            "golang" => Ok(HotPolicy::Golang),
            _ => Err(UnknownHotPolicy(name.to_string())),
        }
    }
}

/// True about one time in ten (golang's `rand.Intn(10) == 0`), from a
/// shared splitmix64 sequence: good enough to sample, and lock-free.
pub(super) fn one_in_ten() -> bool {
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut z = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_in_ten_is_about_a_tenth() {
        let hits = (0..100_000).filter(|_| one_in_ten()).count();
        assert!((8_000..12_000).contains(&hits), "{hits}");
    }
}
