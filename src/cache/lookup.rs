//! What a lookup in a group's caches answers: a live value and the cache
//! that held it, a remembered not-found, a stale value within its grace, or
//! nothing.

use crate::value::{Expiry, Value};

/// Which of a group's two caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    Main,
    Hot,
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A live value, and the cache that held it.
    Hit(Value, Which),
    /// A remembered not-found: the origin's message, until `expiry`.
    NotFound(String, Expiry),
    /// An expired value still within its grace.
    Stale(StaleHit),
    /// Nothing usable.
    Miss,
}

/// An expired value within its grace, and what the group may do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StaleHit {
    /// The value, with the expiry that has passed.
    pub value: Value,
    /// Within its `stale-while-revalidate` window: answer at once.
    pub revalidating: bool,
    /// A reload has failed since it expired: answer at once and reload in
    /// the background, as the back-off allows.
    pub failing: bool,
}
