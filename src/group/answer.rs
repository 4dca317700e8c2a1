//! What a get answers ([`Traced`]: a value or an error, and its
//! [`Source`]), and what a cache lookup alone answers: a hit or a
//! remembered not-found, counted, or what is left to do.

use crate::cache::{Lookup, StaleHit, Which};
use crate::group::counters::{Counted, Stats};
use crate::group::error::GroupError;
use crate::group::getter::GetterError;
use crate::value::{Expiry, Value};

/// A get's value, or why there is none.
pub(crate) type Loaded = Result<Value, GroupError>;

/// A get's answer and where this node got it.
pub(crate) type Traced = (Loaded, Source);

/// Where a get's answer came from: for the `Cache-Status` a user gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// This node's main cache.
    Main,
    /// This node's hot cache (a copy of another owner's value).
    Hot,
    /// The owning peer, just now.
    Peer,
    /// This node's getter (the origin), just now.
    Origin,
    /// A not-found this node remembers, until this expiry.
    NotFound(Expiry),
    /// This node's getter, just now: the key does not exist, and this
    /// node now remembers so until this expiry.
    OriginNotFound(Expiry),
    /// An expired value within `stale-while-revalidate`, answered at once
    /// while one reload runs in the background.
    Revalidating,
    /// An expired value within `stale-if-error`, answered because its
    /// reload failed with this error, or at once (`None`) because a recent
    /// one did and the next is not due.
    StaleOnError(Option<GroupError>),
    /// An expired value within `stale-if-error`, answered because its
    /// reload had not ended within the stale wait; the reload runs on.
    StaleOnSlowLoad,
}

impl From<Which> for Source {
    fn from(which: Which) -> Source {
        match which {
            Which::Main => Source::Main,
            Which::Hot => Source::Hot,
        }
    }
}

/// What the caches `found`, as an answer (a hit or a remembered
/// not-found, counted in `stats`), or what is left to do: `Err(Some)` a
/// stale value, `Err(None)` a miss.
pub(super) fn answer(found: Lookup, stats: &Stats) -> Result<Traced, Option<StaleHit>> {
    match found {
        Lookup::Hit(value, which) => {
            stats.count(Counted::CacheHit);
            Ok((Ok(value), which.into()))
        }
        Lookup::NotFound(message, expiry) => {
            stats.count(Counted::NegativeHit);
            let error = GroupError::Getter(GetterError::NotFound(message));
            Ok((Err(error), Source::NotFound(expiry)))
        }
        Lookup::Stale(stale) => Err(Some(stale)),
        Lookup::Miss => Err(None),
    }
}

/// What a load that panicked answers.
pub(super) fn panicked() -> Traced {
    (Err(GroupError::Panicked), Source::Origin)
}
