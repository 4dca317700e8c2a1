//! Warm restarts: a node's main caches written to a file when it stops and
//! read back before it serves (`--snapshot FILE`).
//!
//! The file holds every group's main cache, from the least to the most
//! recently used entry: key, value and absolute expiry. It is written after
//! the drain to `FILE.tmp.PID` (created anew, never through a symlink),
//! synced, renamed over `FILE`, and the directory synced, so a crash while
//! writing leaves no file or a whole one. A temporary file left by a process
//! that died while writing is removed at the next start.
//!
//! At start it is read back before the node serves (and, with etcd, before
//! it registers), and read once: the file is removed as soon as it has been
//! read, whether it is used or refused, and it is used only once it is
//! gone. A node that crashes later restarts cold instead of bringing back
//! values that were overwritten after the file was written. Restored are
//! entries of groups this node has, not expired, no larger than
//! `--max-value-bytes`, capped by the group's `--max-ttl`, added in order so
//! that when the cache is smaller than it was, the most recently used stay.
//! A file written longer ago than `--snapshot-max-age`, or dated more than
//! a minute in the future, is refused.
//!
//! One process per path: `FILE.lock` carries an advisory lock (`flock`)
//! held from start to exit, so a second node given the same path does not
//! start, and no live process ever writes the temporary files the start
//! removes.
//!
//! Bad input never hurts: a missing, truncated, damaged, foreign or
//! other-version file, or one for other groups, is refused whole before any
//! entry is used, and the node starts empty. The checksum is verified in a
//! first pass over the file, so nothing is allocated for a damaged one;
//! every length is checked against what is left of the file, and every
//! entry is parsed into memory (so at most a few times the file's length)
//! before the first is restored. Errors name at most a few of the file's
//! group names, each cut short, so a log line stays short.
//!
//! The byte format is in `format`; `write` and `read` write and parse it,
//! `file` holds the lock, the temporary files and the directory syncs.

mod counts;
mod error;
mod file;
mod format;
mod read;
mod write;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::node::Node;

use counts::Counts;
pub(crate) use error::SnapshotError;
use file::Leftovers;

/// A `--snapshot` path claimed by this process: the lock on `FILE.lock` is
/// held as long as this value lives (the process's life, in the binary).
#[derive(Debug)]
pub(crate) struct SnapshotFile {
    path: PathBuf,
    /// Kept open for its lock, which closing it releases.
    _lock: std::fs::File,
}

impl SnapshotFile {
    /// Locks `FILE.lock` (created if missing) for this process; fails when
    /// another process holds it or the directory cannot be written.
    pub(crate) fn claim(path: &Path) -> Result<SnapshotFile, SnapshotError> {
        Ok(SnapshotFile {
            path: path.to_path_buf(),
            _lock: file::lock(path)?,
        })
    }

    /// The path given.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes `FILE.tmp` and `FILE.tmp.PID` files: no live process
    /// writes them, as this one holds the lock and has not written yet.
    pub(crate) fn remove_leftovers(&self) -> Result<Leftovers, SnapshotError> {
        file::remove_leftovers(&self.path)
    }

    /// Writes `node`'s main caches to the file, atomically.
    pub(crate) fn save(&self, node: &Node) -> Result<Counts, SnapshotError> {
        let temporary = file::with_suffix(&self.path, &format!(".tmp.{}", std::process::id()));
        // Created anew: whatever already has this name (a symlink planted
        // to make this process overwrite another file) makes the write fail.
        let out = file::private()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .map_err(|e| SnapshotError::Io("creating the temporary file", e))?;
        let written = write::write_file(node, out).and_then(|counts| {
            std::fs::rename(&temporary, &self.path)
                .map_err(|e| SnapshotError::Io("renaming", e))?;
            file::sync_directory(&self.path)
                .map_err(|e| SnapshotError::Io("syncing the directory", e))?;
            Ok(counts)
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    }

    /// Reads the file back into `node`'s main caches, once: the file is
    /// removed after it is read, used or refused, and its entries are used
    /// only when the whole file is valid and its removal is on disk. A file
    /// written more than `max_age` ago is refused.
    pub(crate) fn restore(&self, node: &Node, max_age: Duration) -> Result<Counts, SnapshotError> {
        let parsed = match read::read(node, &self.path, max_age) {
            Err(e) if e.is_missing() => return Err(e),
            parsed => parsed,
        };
        let removed =
            std::fs::remove_file(&self.path).and_then(|()| file::sync_directory(&self.path));
        let parsed = parsed?;
        removed.map_err(|e| SnapshotError::Io("removing it after reading", e))?;
        Ok(parsed.restore())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_on_one_path_is_refused_until_the_first_ends() {
        let dir = std::env::temp_dir().join(format!("groupcached-claim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cache.snap");
        let first = SnapshotFile::claim(&path).unwrap();
        let second = SnapshotFile::claim(&path).unwrap_err();
        assert!(matches!(second, SnapshotError::InUse(_)), "{second}");
        drop(first);
        assert!(SnapshotFile::claim(&path).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
