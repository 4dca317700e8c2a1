//! Why a group's get produced no value ([`GroupError`]), and which of
//! those failures a stale value may answer instead.

use crate::group::getter::GetterError;

/// Why a get produced no value. The text is what peers and users see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The getter produced no value.
    #[error("{0}")]
    Getter(#[from] GetterError),
    /// The load panicked.
    #[error("load panicked")]
    Panicked,
    /// A fork's owner answered 404 or 503: its final word, passed on
    /// without a local load, as the forks' clients do.
    #[error("{message}")]
    Refused {
        /// True for 404 (the key does not exist), false for 503.
        not_found: bool,
        /// The owner's text.
        message: String,
    },
}

impl GroupError {
    /// True when the origin said the key does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            GroupError::Getter(e) => e.is_not_found(),
            GroupError::Panicked => false,
            GroupError::Refused { not_found, .. } => *not_found,
        }
    }

    /// True when the node had no room for the load (user API: 503).
    pub fn is_busy(&self) -> bool {
        matches!(self, GroupError::Getter(GetterError::Busy(_)))
    }

    /// True when the key cannot be loaded from the origin (user API: 400).
    pub fn is_bad_key(&self) -> bool {
        matches!(self, GroupError::Getter(GetterError::BadKey(_)))
    }

    /// True when a value within its `stale-if-error` window may answer
    /// instead: the load failed, rather than answering that the key does
    /// not exist or cannot be loaded.
    pub(super) fn allows_stale(&self) -> bool {
        match self {
            GroupError::Getter(e) => matches!(e, GetterError::Failed(_) | GetterError::Busy(_)),
            GroupError::Panicked => true,
            GroupError::Refused { not_found, .. } => !not_found,
        }
    }
}
