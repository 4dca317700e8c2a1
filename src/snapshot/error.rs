//! Why a snapshot was not written or not used, or its path not claimed.

use std::time::Duration;

use crate::snapshot::format::{CLOCK_SKEW, FORMAT};

/// Why a snapshot was not written or not used, or its path not claimed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("not a groupcached snapshot")]
    Foreign,
    #[error("snapshot format {0}, this node reads formats 1 and {FORMAT}")]
    Format(u16),
    #[error("snapshot is damaged: {0}")]
    Damaged(&'static str),
    #[error("snapshot was written {0:?} ago, longer than --snapshot-max-age")]
    TooOld(Duration),
    #[error(
        "snapshot is dated {0:?} in the future, more than the {CLOCK_SKEW:?} of clock skew allowed"
    )]
    Future(Duration),
    #[error("snapshot holds none of this node's groups (it has {0})")]
    OtherGroups(String),
    #[error("another process uses this path: {0} is locked")]
    InUse(String),
}

impl SnapshotError {
    /// True when there was no file to read.
    pub(crate) fn is_missing(&self) -> bool {
        matches!(self, SnapshotError::Io(_, e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}
