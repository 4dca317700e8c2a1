//! What writing or restoring a snapshot did, for its log line.

/// What a write or a restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Values written, or restored into the caches.
    pub values: u64,
    /// Their bytes (keys and values).
    pub bytes: u64,
    /// Entries left out: expired, too large, or of groups this node lacks.
    pub skipped: u64,
}
