//! The files around a snapshot: the lock that gives one process a path,
//! the private options every created file gets, the temporary files a
//! dead process left, and the directory syncs that make a rename or a
//! removal durable.

use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::snapshot::error::SnapshotError;

/// Temporary files of dead processes removed at start.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Leftovers {
    pub files: u64,
    pub bytes: u64,
}

/// Locks `FILE.lock` (created if missing) for this process, returning it
/// open: closing it releases the lock.
pub(super) fn lock(path: &Path) -> Result<File, SnapshotError> {
    let lock_path = with_suffix(path, ".lock");
    let lock = private()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| SnapshotError::Io("opening the lock file", e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(SnapshotError::InUse(lock_path.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(SnapshotError::Io("locking", e)),
    }
}

/// Removes the `FILE.tmp` and `FILE.tmp.PID` files of `path`.
pub(super) fn remove_leftovers(path: &Path) -> Result<Leftovers, SnapshotError> {
    let io = |e| SnapshotError::Io("removing leftover temporary files", e);
    let mut removed = Leftovers::default();
    let Some(name) = path.file_name() else {
        return Ok(removed);
    };
    for entry in std::fs::read_dir(directory_of(path)).map_err(io)? {
        let entry = entry.map_err(io)?;
        if !is_temporary(name.as_bytes(), entry.file_name().as_bytes()) {
            continue;
        }
        // Of the entry itself: a symlink is removed, not followed.
        let bytes = entry.metadata().map_or(0, |m| m.len());
        std::fs::remove_file(entry.path()).map_err(io)?;
        removed.files += 1;
        removed.bytes += bytes;
    }
    Ok(removed)
}

/// Options for the files a snapshot creates: readable by this user only
/// (the values may be anyone's data), never opened through a symlink.
pub(super) fn private() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    options
}

/// `path` with `suffix` appended to its file name.
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The directory holding `path`.
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Syncs the directory holding `path`, so that a rename or removal in it
/// survives a power loss.
pub(super) fn sync_directory(path: &Path) -> std::io::Result<()> {
    File::open(directory_of(path))?.sync_all()
}

/// Whether `candidate` is `{name}.tmp` (an older version's temporary file)
/// or `{name}.tmp.{digits}`.
fn is_temporary(name: &[u8], candidate: &[u8]) -> bool {
    let Some(rest) = candidate
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(b".tmp"))
    else {
        return false;
    };
    match rest.strip_prefix(b".") {
        None => rest.is_empty(),
        Some(pid) => !pid.is_empty() && pid.iter().all(u8::is_ascii_digit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_temporary_names_of_this_file_are_leftovers() {
        let name = b"cache.snap";
        for leftover in [
            "cache.snap.tmp",
            "cache.snap.tmp.1",
            "cache.snap.tmp.4194303",
        ] {
            assert!(is_temporary(name, leftover.as_bytes()), "{leftover}");
        }
        for kept in [
            "cache.snap",
            "cache.snap.lock",
            "cache.snap.tmp.",
            "cache.snap.tmp.12x",
            "cache.snap.tmp.notes",
            "cache.snap.tmpfoo",
            "other.snap.tmp.1",
        ] {
            assert!(!is_temporary(name, kept.as_bytes()), "{kept}");
        }
    }
}
