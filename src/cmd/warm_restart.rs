//! `--snapshot`: the caches read back from the file at start, before the
//! node serves, and written to it at shutdown, after the drain. Any
//! problem is logged in one line; the node starts empty or exits cleanly.

use std::sync::Arc;
use std::time::Duration;

use crate::node::Node;
use crate::snapshot::SnapshotFile;

/// Removes temporary files left by a process that died while writing,
/// then reads `--snapshot` back into `node`'s caches, once; any problem is
/// logged in one line and the node starts empty.
pub(crate) async fn restore_snapshot(node: &Node, snapshot: &Arc<SnapshotFile>, max_age: Duration) {
    let path = snapshot.path().display().to_string();
    let (reader, file) = (node.clone(), Arc::clone(snapshot));
    let read = tokio::task::spawn_blocking(move || {
        let leftovers = file.remove_leftovers();
        (leftovers, file.restore(&reader, max_age))
    });
    let (leftovers, restored) = match read.await {
        Ok(done) => done,
        Err(e) => {
            tracing::warn!(error = %e, "snapshot not used; starting empty");
            return;
        }
    };
    match leftovers {
        Ok(removed) if removed.files > 0 => tracing::info!(
            files = removed.files,
            bytes = removed.bytes,
            "removed the temporary snapshot files of a process that died while writing"
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(path = %path, error = %e, "temporary snapshot files left in place")
        }
    }
    match restored {
        Ok(counts) => tracing::info!(
            path = %path,
            values = counts.values,
            bytes = counts.bytes,
            skipped = counts.skipped,
            "snapshot restored"
        ),
        Err(e) if e.is_missing() => {
            tracing::info!(path = %path, "no snapshot yet; starting empty");
        }
        Err(e) => {
            tracing::warn!(path = %path, error = %e, "snapshot not used; starting empty");
        }
    }
}

/// Writes `node`'s main caches to `--snapshot`; a failure is logged and
/// the exit stays clean.
pub(crate) async fn save_snapshot(node: Node, snapshot: Arc<SnapshotFile>) {
    let path = snapshot.path().display().to_string();
    match tokio::task::spawn_blocking(move || snapshot.save(&node)).await {
        Ok(Ok(counts)) => tracing::info!(
            path = %path,
            values = counts.values,
            bytes = counts.bytes,
            "snapshot written"
        ),
        Ok(Err(e)) => tracing::error!(path = %path, error = %e, "snapshot not written"),
        Err(e) => tracing::error!(error = %e, "snapshot not written"),
    }
}
